"""A SAML IdP for tests, from pysaml2 (a real SAML implementation): key pairs, and the
metadata a pysaml2 IdP publishes."""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from saml2 import BINDING_HTTP_REDIRECT
from saml2.config import IdPConfig
from saml2.metadata import entity_descriptor, metadata_tostring_fix

IDP = "https://idp.example.org/metadata"
SSO_REDIRECT = "https://idp.example.org/sso/redirect"
SLO = "https://idp.example.org/slo"
PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
NOW = dt.datetime(2026, 3, 14, 15, 9, 26, 535897, tzinfo=dt.UTC)


@dataclass(frozen=True)
class KeyPair:
    cert_file: str
    key_file: str
    certificate: x509.Certificate

    @property
    def b64(self) -> str:
        der = self.certificate.public_bytes(serialization.Encoding.DER)
        return base64.b64encode(der).decode()

    @property
    def pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()


def key_pair(folder: Path, name: str) -> KeyPair:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / f"{name}.crt", folder / f"{name}.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return KeyPair(str(cert_file), str(key_file), certificate)


def idp_descriptor(
    *,
    signing: tuple[KeyPair, ...] = (),
    encryption: tuple[KeyPair, ...] = (),
    entity_id: str = IDP,
    sso: tuple[tuple[str, str], ...] = ((SSO_REDIRECT, BINDING_HTTP_REDIRECT),),
) -> Any:
    """A pysaml2 IdP's EntityDescriptor, as its `make_metadata` would publish it (unsigned)."""
    config: dict[str, Any] = {
        "entityid": entity_id,
        "service": {
            "idp": {
                "endpoints": {
                    "single_sign_on_service": list(sso),
                    "single_logout_service": [(SLO, BINDING_HTTP_REDIRECT)],
                },
                "name_id_format": [PERSISTENT],
            }
        },
    }
    if signing:
        config |= {
            "cert_file": signing[0].cert_file,
            "key_file": signing[0].key_file,
            "additional_cert_files": [pair.cert_file for pair in signing[1:]],
        }
    if encryption:
        config["encryption_keypairs"] = [
            {"cert_file": pair.cert_file, "key_file": pair.key_file} for pair in encryption
        ]
    idp = IdPConfig()
    idp.load(config)
    return entity_descriptor(idp)


def metadata_xml(descriptor: Any) -> bytes:
    xml: bytes = metadata_tostring_fix(descriptor, {"xs": "http://www.w3.org/2001/XMLSchema"})
    return xml


def idp_xml(**kwargs: Any) -> bytes:
    return metadata_xml(idp_descriptor(**kwargs))
