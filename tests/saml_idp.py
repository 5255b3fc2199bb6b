"""A SAML IdP for tests, from pysaml2 (a real SAML implementation): key pairs, the metadata a
pysaml2 IdP publishes, and a pysaml2 IdP server that answers AuthnRequests with signed
Responses (it signs through the `xmlsec1` program)."""

from __future__ import annotations

import base64
import datetime as dt
import warnings
from collections.abc import Sequence
from copy import deepcopy
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import NameOID
from lxml import etree
from saml2 import BINDING_HTTP_REDIRECT, saml
from saml2.attribute_converter import AttributeConverter
from saml2.authn_context import PASSWORDPROTECTEDTRANSPORT as AUTHN_PASSWORD_PROTECTED
from saml2.config import IdPConfig
from saml2.metadata import entity_descriptor, metadata_tostring_fix
from saml2.saml import NAME_FORMAT_URI, NAMEID_FORMAT_EMAILADDRESS
from saml2.sigver import get_xmlsec_binary
from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

with warnings.catch_warnings():
    # pysaml2 7.5's saml2.cryptography.symmetric names cryptography's CFB mode at import,
    # which cryptography deprecates (moved to `decrepit`); nothing here uses CFB.
    warnings.filterwarnings("ignore", "CFB has been moved", CryptographyDeprecationWarning)
    from saml2.server import Server

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
        .not_valid_after(NOW + dt.timedelta(days=20 * 365))  # no expiry while tests run
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


class TestIdp:
    """A pysaml2 IdP server that answers our AuthnRequests with really signed Responses.

    `sps` are SP metadata documents (ours, and any other SP the IdP may be told to address);
    `signing` is the key the IdP signs with; `lifetime` (pysaml2 policy) sets how long its
    assertions are valid, negative for assertions that expired before they were made.
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        signing: KeyPair,
        sps: Sequence[str],
        *,
        entity_id: str = IDP,
        lifetime: dict[str, int] | None = None,
    ) -> None:
        config: dict[str, Any] = {
            "entityid": entity_id,
            "service": {
                "idp": {
                    "endpoints": {
                        "single_sign_on_service": [(SSO_REDIRECT, BINDING_HTTP_REDIRECT)]
                    },
                    "name_id_format": [PERSISTENT],
                    # pysaml2 signs with RSA-SHA1 unless told otherwise.
                    "signing_algorithm": SIG_RSA_SHA256,
                    "digest_algorithm": DIGEST_SHA256,
                    "policy": {
                        "default": {
                            "lifetime": lifetime or {"minutes": 15},
                            "attribute_restrictions": None,
                            "name_form": NAME_FORMAT_URI,
                        }
                    },
                }
            },
            "cert_file": signing.cert_file,
            "key_file": signing.key_file,
            "metadata": {"inline": list(sps)},
            "xmlsec_binary": get_xmlsec_binary(),
        }
        idp = IdPConfig()
        idp.load(config)
        # Attribute names as given, like Okta and Entra send them (pysaml2's own maps would
        # turn `email` into an OID).
        verbatim = AttributeConverter(NAME_FORMAT_URI)
        verbatim.from_dict({"identifier": NAME_FORMAT_URI, "to": {}, "fro": {}})
        idp.attribute_converters = [verbatim]
        self.server = Server(config=idp)

    def answer(
        self,
        redirect_url: str,
        *,
        name_id: str,
        identity: dict[str, list[str]],
        sp_entity_id: str | None = None,
        destination: str | None = None,
        in_response_to: str | None = "",
        **kwargs: Any,
    ) -> str:
        """The base64 SAMLResponse answering the AuthnRequest in `redirect_url`.

        By default it answers the request's issuer at its AssertionConsumerServiceURL with
        InResponseTo the request's ID; each can be overridden (`in_response_to=None`: an
        unsolicited response). `kwargs` go to pysaml2's `create_authn_response`
        (sign_assertion, sign_response, encrypt_assertion, sign_alg, ...)."""
        query = parse_qs(urlsplit(redirect_url).query)
        request = self.server.parse_authn_request(query["SAMLRequest"][0], BINDING_HTTP_REDIRECT)
        message = request.message
        response = self.server.create_authn_response(
            identity=identity,
            in_response_to=message.id if in_response_to == "" else in_response_to,
            destination=destination or message.assertion_consumer_service_url,
            sp_entity_id=sp_entity_id or message.issuer.text,
            name_id=saml.NameID(format=NAMEID_FORMAT_EMAILADDRESS, text=name_id),
            userid=name_id,
            authn={"class_ref": AUTHN_PASSWORD_PROTECTED},
            **kwargs,
        )
        return base64.b64encode(str(response).encode()).decode()


# --- altering an answer, for the attacks the tests replay -------------------------------------

NS = {
    "samlp": "urn:oasis:names:tc:SAML:2.0:protocol",
    "saml": "urn:oasis:names:tc:SAML:2.0:assertion",
    "ds": "http://www.w3.org/2000/09/xmldsig#",
    "md": "urn:oasis:names:tc:SAML:2.0:metadata",
}


def parse_answer(answer: str) -> etree._Element:
    """The XML of a base64 SAMLResponse."""
    return etree.fromstring(base64.b64decode(answer))


def encode_answer(root: etree._Element | bytes) -> str:
    raw = root if isinstance(root, bytes) else etree.tostring(root)
    return base64.b64encode(raw).decode()


def wrapped(answer: str, name_id: str, *, inside: bool) -> str:
    """Signature wrapping (XSW): the signed assertion kept, and a forged unsigned copy naming
    `name_id` put before it, or (`inside`) wrapped around it and taking its place."""
    root = parse_answer(answer)
    signed = root.find("saml:Assertion", NS)
    assert signed is not None
    evil = deepcopy(signed)
    evil.set("ID", "id-evil")
    evil.remove(evil.find("ds:Signature", NS))
    evil_name_id = evil.find("saml:Subject/saml:NameID", NS)
    assert evil_name_id is not None
    evil_name_id.text = name_id
    signed.addprevious(evil)
    if inside:
        evil.append(signed)
    assert len(root.findall(".//saml:Assertion", NS)) == 2
    return encode_answer(root)
