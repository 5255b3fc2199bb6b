"""SAML 2.0 metadata: read an IdP's, describe ours, and make our key pair.

The one module that imports python3-saml (`onelogin.saml2`). Pure functions over plain data:
nothing here reads the clock, the network or storage; callers pass `now`.

Specs: SAML 2.0 Metadata (saml-metadata-2.0-os) and Bindings (saml-bindings-2.0-os).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from lxml import etree
from onelogin.saml2.constants import OneLogin_Saml2_Constants as Saml2
from onelogin.saml2.errors import OneLogin_Saml2_Error
from onelogin.saml2.idp_metadata_parser import OneLogin_Saml2_IdPMetadataParser
from onelogin.saml2.metadata import OneLogin_Saml2_Metadata
from onelogin.saml2.settings import OneLogin_Saml2_Settings
from onelogin.saml2.xml_utils import OneLogin_Saml2_XML
from onelogin.saml2.xmlparser import DTDForbidden, EntitiesForbidden

REDIRECT = Saml2.BINDING_HTTP_REDIRECT
POST = Saml2.BINDING_HTTP_POST
# Our SP asks for no particular NameID format: each IdP sends the one configured for the app
# (Okta: unspecified, Entra: emailAddress or persistent). Users are found by (connection,
# NameID), never by an e-mail address match, so requiring emailAddress would gain nothing.
SP_NAME_ID_FORMAT = Saml2.NAMEID_UNSPECIFIED

_LOCAL_HOSTS = ("localhost", "127.0.0.1")
_PEM_ARMOUR = re.compile(r"-----(BEGIN|END) CERTIFICATE-----")
_SHOWN_ENTITIES = 5


class SamlMetadataError(ValueError):
    """SAML metadata or a connection's IdP fields that cannot be used; the message says why."""


@dataclass(frozen=True)
class IdpMetadata:
    """What the SP needs from an IdP."""

    entity_id: str
    sso_url: str  # https, or http on localhost / 127.0.0.1
    sso_binding: str  # HTTP-Redirect when the IdP offers it, else HTTP-POST
    slo_url: str | None  # the HTTP-Redirect SingleLogoutService, if any
    certificates: tuple[str, ...]  # signing certs, base64 DER bodies (no PEM armour)
    name_id_format: str | None  # the IdP's first NameIDFormat, if it lists one


@dataclass(frozen=True)
class SpKey:
    """A connection's SP key pair: PEM certificate and unencrypted PKCS#8 PEM private key."""

    certificate_pem: str
    private_key_pem: str


def parse_idp_metadata(xml: str | bytes, entity_id: str | None = None) -> IdpMetadata:
    """The IdP described by `xml`, the EntityDescriptor `entity_id` when it holds several.

    Guarantees, else SamlMetadataError: the document is XML with no DOCTYPE (so no entity
    declarations: XXE, entity expansion); the entity has an IDPSSODescriptor with a
    SingleSignOnService for HTTP-Redirect (preferred) or HTTP-POST at an https URL (http only on
    localhost); it has at least one signing certificate and each parses as X.509. Every signing
    certificate is kept, so an IdP that publishes its next one alongside keeps working through
    a rotation.
    """
    raw = xml.encode() if isinstance(xml, str) else xml
    # python3-saml's parser refuses any DOCTYPE too, but only after libxml2 has read it;
    # refuse before parsing. Its check still covers encodings (UTF-16) this search misses.
    if b"<!DOCTYPE" in raw:
        raise _dtd_refused()
    if entity_id is not None and (not entity_id or "'" in entity_id):
        # python3-saml puts it in an XPath string literal, which cannot hold a "'".
        raise SamlMetadataError(f"entity ID {entity_id!r} cannot be selected")
    try:
        dom = OneLogin_Saml2_XML.to_etree(raw)
    except (DTDForbidden, EntitiesForbidden):
        raise _dtd_refused() from None
    except etree.XMLSyntaxError as exc:
        raise SamlMetadataError(f"the metadata is not well-formed XML: {exc}") from None
    entity = _select_entity(OneLogin_Saml2_XML.query(dom, "//md:EntityDescriptor"), entity_id)

    found = _parse(dom, REDIRECT, entity_id)
    sso = found.get("singleSignOnService")
    if sso is None:
        sso = _parse(dom, POST, entity_id).get("singleSignOnService")
    if sso is None:
        raise SamlMetadataError(
            "the IDPSSODescriptor has no SingleSignOnService with the HTTP-Redirect or "
            "HTTP-POST binding"
        )
    certificates = _signing_certificates(found, entity)
    return IdpMetadata(
        entity_id=found["entityId"],
        sso_url=_check_sso_url(sso["url"]),
        sso_binding=sso["binding"],
        slo_url=found.get("singleLogoutService", {}).get("url"),
        certificates=tuple(_normalise_certificate(cert) for cert in certificates),
        name_id_format=found.get("nameIdFormat"),
    )


def idp_from_fields(entity_id: str, sso_url: str, certificates: Sequence[str]) -> IdpMetadata:
    """The IdP as typed into the manual form: its entity ID, SSO URL (used with HTTP-Redirect)
    and signing certificates, each PEM or bare base64.

    Guarantees, else SamlMetadataError: a non-empty entity ID; an https SSO URL (http only on
    localhost / 127.0.0.1); at least one certificate, each an X.509 certificate, returned as
    bare base64 DER.
    """
    entity_id = entity_id.strip()
    if not entity_id:
        raise SamlMetadataError("the IdP entity ID is empty")
    if not certificates:
        raise SamlMetadataError("give at least one IdP signing certificate")
    return IdpMetadata(
        entity_id=entity_id,
        sso_url=_check_sso_url(sso_url.strip()),
        sso_binding=REDIRECT,
        slo_url=None,
        certificates=tuple(_normalise_certificate(cert) for cert in certificates),
        name_id_format=None,
    )


def new_sp_key(common_name: str, now: dt.datetime, years: int = 10) -> SpKey:
    """A new RSA 3072 key and its SHA-256 self-signed certificate for `common_name`, valid from
    a day before `now` (tolerating IdP clocks behind ours) to `years` after it (29 February
    becomes 28 February). `now` must be timezone-aware."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    try:
        until = now.replace(year=now.year + years)
    except ValueError:
        until = now.replace(year=now.year + years, day=28)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return SpKey(
        certificate_pem=certificate.public_bytes(serialization.Encoding.PEM).decode(),
        private_key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
    )


def sp_metadata(
    *,
    entity_id: str,
    acs_url: str,
    certificate_pem: str,
    valid_until: dt.datetime | None = None,
) -> str:
    """Our SP's metadata XML for one connection, valid against the SAML metadata schema.

    It says: AuthnRequestsSigned="false", WantAssertionsSigned="true", NameIDFormat
    unspecified, one AssertionConsumerService at `acs_url` with the HTTP-POST binding, and
    `certificate_pem` as both the signing and the encryption key. An IdP that sees the
    encryption key may encrypt assertions (Shibboleth does by default), so the ACS must hold
    the connection's private key. `valid_until` (timezone-aware) becomes validUntil; without
    it the document has none. cacheDuration is python3-saml's one week.
    """
    certificate = _load_pem_certificate(certificate_pem)
    if urlsplit(acs_url).scheme not in ("https", "http"):
        raise SamlMetadataError(f"the ACS URL {acs_url!r} is not an http(s) URL")
    if valid_until is not None and valid_until.tzinfo is None:
        raise ValueError("valid_until must be timezone-aware")
    # python3-saml's builder pastes values into its XML template unescaped.
    quoted = {'"': "&quot;"}
    settings = _settings(
        {
            "entityId": escape(entity_id, quoted),
            "assertionConsumerService": {"url": escape(acs_url, quoted), "binding": POST},
            "NameIDFormat": SP_NAME_ID_FORMAT,
            "x509cert": certificate,
        }
    )
    built = OneLogin_Saml2_Metadata.builder(
        settings.get_sp_data(),
        authnsign=False,
        wsign=True,
        # The builder reads the clock when given None; "" leaves validUntil out.
        valid_until=valid_until.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        if valid_until is not None
        else "",
    )
    xml: str = OneLogin_Saml2_Metadata.add_x509_key_descriptors(
        built, certificate, add_encryption=True
    ).decode()
    # "expired_xml" compares validUntil with the system clock; the caller chose valid_until.
    errors = [e for e in settings.validate_metadata(xml) if e != "expired_xml"]
    if errors:
        raise SamlMetadataError(f"the SP metadata is not valid: {', '.join(errors)}")
    return xml


def _dtd_refused() -> SamlMetadataError:
    return SamlMetadataError(
        "the metadata has a DOCTYPE or entity declarations, which are refused (XXE, entity "
        "expansion)"
    )


def _select_entity(entities: list[Any], entity_id: str | None) -> Any:
    if not entities:
        raise SamlMetadataError("the metadata has no EntityDescriptor")
    if entity_id is None:
        if len(entities) > 1:
            ids = [str(e.get("entityID")) for e in entities[:_SHOWN_ENTITIES]]
            more = ", ..." if len(entities) > _SHOWN_ENTITIES else ""
            raise SamlMetadataError(
                f"the metadata describes {len(entities)} entities ({', '.join(ids)}{more}); "
                "choose the IdP's entity ID"
            )
        return entities[0]
    for entity in entities:
        if entity.get("entityID") == entity_id:
            return entity
    raise SamlMetadataError(f"the metadata has no EntityDescriptor with entityID {entity_id!r}")


def _parse(dom: Any, binding: str, entity_id: str | None) -> dict[str, Any]:
    """python3-saml's reading of the entity: its `idp` settings plus `nameIdFormat`."""
    data = OneLogin_Saml2_IdPMetadataParser.parse(
        dom, required_sso_binding=binding, required_slo_binding=REDIRECT, entity_id=entity_id
    )
    if "idp" not in data:
        raise SamlMetadataError("the entity has no IDPSSODescriptor")
    if not data["idp"].get("entityId"):
        raise SamlMetadataError("the EntityDescriptor has no entityID")
    found: dict[str, Any] = data["idp"]
    name_id_format = data.get("sp", {}).get("NameIDFormat")
    return found | {"nameIdFormat": name_id_format} if name_id_format else found


def _signing_certificates(found: dict[str, Any], entity: Any) -> list[str]:
    if "x509certMulti" in found:
        signing: list[str] = found["x509certMulti"].get("signing", [])
    elif found.get("x509cert"):
        # python3-saml gives a lone certificate as x509cert whether its use is signing,
        # unspecified (both), or encryption only; an encryption-only key verifies nothing.
        keys = OneLogin_Saml2_XML.query(
            entity, "./md:IDPSSODescriptor[1]/md:KeyDescriptor[not(contains(@use, 'encryption'))]"
        )
        signing = [found["x509cert"]] if keys else []
    else:
        signing = []
    if not signing:
        raise SamlMetadataError("the IDPSSODescriptor has no signing certificate")
    return list(dict.fromkeys(signing))


def _normalise_certificate(text: str) -> str:
    """Bare base64 of the DER certificate in `text` (PEM or base64, any whitespace)."""
    body = "".join(_PEM_ARMOUR.sub("", text).split())
    try:
        der = base64.b64decode(body, validate=True)
        x509.load_der_x509_certificate(der)
    except (binascii.Error, ValueError):
        raise SamlMetadataError(f"not an X.509 certificate: {body[:40]!r}...") from None
    return base64.b64encode(der).decode()


def _load_pem_certificate(pem: str) -> str:
    try:
        x509.load_pem_x509_certificate(pem.encode())
    except ValueError:
        raise SamlMetadataError("the SP certificate is not a PEM X.509 certificate") from None
    return pem


def _check_sso_url(url: str) -> str:
    parts = urlsplit(url)
    secure = parts.scheme == "https" and parts.hostname
    local = parts.scheme == "http" and parts.hostname in _LOCAL_HOSTS
    if not (secure or local):
        raise SamlMetadataError(
            f"the IdP SSO URL {url!r} must be https (http only on localhost or 127.0.0.1)"
        )
    return url


def _settings(sp: dict[str, Any]) -> Any:
    try:
        return OneLogin_Saml2_Settings({"strict": True, "sp": sp}, sp_validation_only=True)
    except OneLogin_Saml2_Error as exc:
        raise SamlMetadataError(f"the SP settings are not valid: {exc}") from None
