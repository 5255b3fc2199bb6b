"""A local certificate authority and a server certificate for the sample webhook receiver.

    python webhook_certs.py FOLDER HOSTNAME [UID]

writes into FOLDER: ca.pem (the authority), HOSTNAME.pem and HOSTNAME.key (the receiver's
certificate and key) and bundle.pem (the system's authorities followed by this one, for
SSL_CERT_FILE of the gateway, which sends webhooks to https URLs only). Files already there
are kept, so that a restart does not change what the gateways trust. With UID, the files are
given to that user (the receiver runs as it). Needs the `cryptography` package (in the idgate
image).
"""

from __future__ import annotations

import datetime
import os
import ssl
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DAYS = 825  # the longest validity clients accept for a server certificate


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def make(folder: Path, hostname: str, now: datetime.datetime) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    if (folder / "ca.pem").exists() and (folder / f"{hostname}.pem").exists():
        return
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("idgate sample webhook CA")
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hostname))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=DAYS))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_pem = ca.public_bytes(serialization.Encoding.PEM)
    key_path = folder / f"{hostname}.key"
    key_path.write_bytes(_pem_key(key))
    key_path.chmod(0o600)
    (folder / f"{hostname}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "ca.pem").write_bytes(ca_pem)
    system = ssl.get_default_verify_paths().openssl_cafile
    trusted = Path(system).read_bytes() if system and Path(system).is_file() else b""
    (folder / "bundle.pem").write_bytes(trusted.rstrip(b"\n") + b"\n" + ca_pem)


def main(argv: list[str]) -> None:
    if len(argv) not in (2, 3):
        raise SystemExit(__doc__)
    folder, hostname = Path(argv[0]), argv[1]
    make(folder, hostname, datetime.datetime.now(datetime.UTC))
    if len(argv) == 3:
        uid = int(argv[2])
        for path in (folder, *folder.iterdir()):
            os.chown(path, uid, uid)
    print(f"certificates for {hostname} in {folder}")


if __name__ == "__main__":
    main(sys.argv[1:])
