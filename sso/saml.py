"""SAML 2.0 service provider: read an IdP's metadata, describe ours, make our key pair, send
an AuthnRequest and check the IdP's Response.

The one module that imports python3-saml (`onelogin.saml2`). Functions over plain data: nothing
here touches the network or storage, and the metadata functions take `now` from the caller.
The one exception is `process_response`: python3-saml compares the assertion's validity
window with the system clock (`OneLogin_Saml2_Utils.now()`) and offers no way to pass a time.

Specs: SAML 2.0 Core (saml-core-2.0-os), Profiles (saml-profiles-2.0-os, 4.1 Web Browser SSO),
Metadata (saml-metadata-2.0-os) and Bindings (saml-bindings-2.0-os).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
import secrets
from collections.abc import Sequence
from copy import deepcopy
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from lxml import etree
from onelogin.saml2.authn_request import OneLogin_Saml2_Authn_Request
from onelogin.saml2.constants import OneLogin_Saml2_Constants as Saml2
from onelogin.saml2.errors import OneLogin_Saml2_Error, OneLogin_Saml2_ValidationError
from onelogin.saml2.idp_metadata_parser import OneLogin_Saml2_IdPMetadataParser
from onelogin.saml2.metadata import OneLogin_Saml2_Metadata
from onelogin.saml2.response import OneLogin_Saml2_Response
from onelogin.saml2.settings import OneLogin_Saml2_Settings
from onelogin.saml2.utils import OneLogin_Saml2_Utils
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


# --- login ---------------------------------------------------------------------------------

# python3-saml accepts an assertion whose Conditions NotBefore / NotOnOrAfter are up to this far
# from our clock; the window is fixed (OneLogin_Saml2_Constants.ALLOWED_CLOCK_DRIFT, 300 s in
# python3-saml 1.16) and cannot be configured. The bearer SubjectConfirmationData's NotBefore
# and NotOnOrAfter get no such allowance, in python3-saml or here.
ALLOWED_CLOCK_SKEW = dt.timedelta(seconds=Saml2.ALLOWED_CLOCK_DRIFT)

# saml-bindings-2.0-os 3.4.3: "RelayState data MUST NOT exceed 80 bytes in length".
_MAX_RELAY_STATE = 80
_QUOTED = {'"': "&quot;"}


class SamlLoginError(Exception):
    """A SAML login that cannot go on: a Response we refuse, or an IdP we cannot send a user
    to. The message says why; it names no secret but may quote the IdP's values."""


@dataclass(frozen=True)
class SamlSp:
    """Our side of one SAML connection."""

    entity_id: str
    acs_url: str  # the AssertionConsumerService (HTTP-POST) as published in our metadata
    certificate_pem: str
    private_key_pem: str  # decrypts EncryptedAssertions


@dataclass(frozen=True)
class ExternalIdentity:
    """Who the IdP says signed in, from one verified assertion."""

    subject: str  # the NameID, whole (text split by comments is joined, never cut)
    name_id_format: str | None
    attributes: dict[str, list[str]]  # by Attribute Name; repeated Attributes are merged
    session_index: str | None
    assertion_id: str  # keep until `not_on_or_after` to refuse a replay
    not_on_or_after: dt.datetime | None  # UTC; the last moment this assertion is accepted
    in_response_to: str | None
    issuer: str


def authn_request(sp: SamlSp, idp: IdpMetadata, relay_state: str | None) -> tuple[str, str]:
    """(request ID, URL to redirect the browser to): an unsigned AuthnRequest from `sp` to
    `idp.sso_url` with the HTTP-Redirect binding, asking for the Response at `sp.acs_url` by
    HTTP-POST, NameIDPolicy unspecified (AllowCreate), ForceAuthn and IsPassive false.

    Keep the request ID with the browser's login state: `process_response` needs it.
    `relay_state` is sent back by the IdP unchanged; at most 80 bytes (SAML Bindings 3.4.3).
    """
    if idp.sso_binding != REDIRECT:
        raise SamlLoginError(
            f"the IdP {idp.entity_id!r} takes AuthnRequests by HTTP-POST only; "
            "only HTTP-Redirect is sent"
        )
    if relay_state is not None and len(relay_state.encode()) > _MAX_RELAY_STATE:
        raise ValueError(f"RelayState may be at most {_MAX_RELAY_STATE} bytes")
    # python3-saml pastes these values into its AuthnRequest template unescaped.
    settings = _login_settings(sp, idp, quote=lambda value: escape(value, _QUOTED))
    request = OneLogin_Saml2_Authn_Request(
        settings, force_authn=False, is_passive=False, set_nameid_policy=True
    )
    parameters = {"SAMLRequest": request.get_request()}
    if relay_state is not None:
        parameters["RelayState"] = relay_state
    url: str = OneLogin_Saml2_Utils.redirect(idp.sso_url, parameters)
    return request.get_id(), url


def process_response(
    sp: SamlSp,
    idp: IdpMetadata,
    saml_response: str,
    *,
    request_id: str | None,
    allow_unsolicited: bool,
) -> ExternalIdentity:
    """The identity in `saml_response` (the SAMLResponse form field, base64) posted to
    `sp.acs_url`, else SamlLoginError.

    `request_id` is the ID of the AuthnRequest this browser was sent with, or None when it
    was sent with none (an IdP-initiated login), which `allow_unsolicited` must permit.

    Accepted only when: the status is Success; there is exactly one assertion (an
    EncryptedAssertion is decrypted with `sp.private_key_pem`); the assertion is signed by one
    of `idp.certificates` (the Response may be signed too), with neither SHA-1 nor DSA; its
    Issuer (and the Response's, if any) is `idp.entity_id`; its Audience is `sp.entity_id`;
    it has a NameID and is within its Conditions (`ALLOWED_CLOCK_SKEW` either side, against
    the system clock); the Response's Destination, if any, is exactly `sp.acs_url`; a bearer
    SubjectConfirmationData has Recipient exactly `sp.acs_url`, a NotOnOrAfter still ahead,
    and InResponseTo equal to `request_id` (absent when unsolicited); the Response's own
    InResponseTo is `request_id` (absent when unsolicited). The Response is schema-valid.

    Replay is the caller's to refuse: keep `assertion_id` until `not_on_or_after`.
    """
    in_response_to = _in_response_to(saml_response)
    if request_id is None:
        if in_response_to is not None:
            raise SamlLoginError(
                f"the Response answers request {in_response_to!r}, but this browser has no "
                "login request pending"
            )
        if not allow_unsolicited:
            raise SamlLoginError(
                "unsolicited response (IdP-initiated login) refused: it is not allowed for "
                "this connection"
            )
    elif in_response_to is None:
        # python3-saml compares InResponseTo with the request ID only when it is present.
        raise SamlLoginError(
            f"the Response has no InResponseTo; it must answer request {request_id!r}"
        )

    settings = _login_settings(sp, idp, quote=lambda value: value)
    try:
        response = _Response(settings, saml_response)
    except (DTDForbidden, EntitiesForbidden):
        raise SamlLoginError("the Response has a DOCTYPE or entity declarations") from None
    except (
        OneLogin_Saml2_Error,
        OneLogin_Saml2_ValidationError,
        etree.LxmlError,
        ValueError,
        xmlsec.Error,
    ) as exc:
        raise SamlLoginError(f"the Response cannot be read or decrypted: {exc}") from None
    if not response.is_valid(_acs_request_data(sp.acs_url, saml_response), request_id):
        raise SamlLoginError(f"the Response was refused: {response.get_error()}")

    try:
        assertion = _the_assertion(response)
        destination = response.document.get("Destination")
        # python3-saml accepts any Destination that starts with the ACS URL.
        if destination is not None and destination != sp.acs_url:
            raise SamlLoginError(
                f"the Response is for {destination!r}, not this connection's ACS {sp.acs_url!r}"
            )
        confirmed_until = _bearer_confirmation(assertion, sp.acs_url, request_id)
        identity = ExternalIdentity(
            subject=response.get_nameid(),
            name_id_format=response.get_nameid_format(),
            attributes=_attributes(response.get_attributes()),
            session_index=response.get_session_index(),
            assertion_id=response.get_assertion_id(),
            not_on_or_after=_not_on_or_after(assertion, confirmed_until),
            in_response_to=in_response_to,
            issuer=_text(assertion, "saml:Issuer") or "",
        )
    except (OneLogin_Saml2_Error, OneLogin_Saml2_ValidationError) as exc:
        raise SamlLoginError(f"the Response was refused: {exc}") from None
    return identity


class _Response(OneLogin_Saml2_Response):  # type: ignore[misc]
    """python3-saml's Response, decrypting so that the assertion's signature still verifies.

    python3-saml moves the decrypted Assertion under the Response with lxml, and lxml then
    rewrites the Assertion's namespace prefixes to the Response's when both declare the same
    namespace URI under different prefixes (pysaml2 does; so may any IdP). Exclusive c14n
    keeps prefixes, so the signature no longer verifies. Here the decrypted Assertion is
    serialised and spliced into the Response's text instead, which keeps its prefixes.
    """

    def _decrypt_assertion(self, xml: Any) -> Any:
        encrypted = OneLogin_Saml2_XML.query(xml, "/samlp:Response/saml:EncryptedAssertion")
        data = OneLogin_Saml2_XML.query(
            xml, "/samlp:Response/saml:EncryptedAssertion/xenc:EncryptedData"
        )
        if len(encrypted) != 1 or len(data) != 1:
            raise SamlLoginError("the Response must hold one EncryptedAssertion with EncryptedData")
        key_info = OneLogin_Saml2_XML.query(data[0], "./ds:KeyInfo")
        if not key_info:
            raise SamlLoginError("the EncryptedData has no KeyInfo")
        # An EncryptedKey beside the EncryptedData, pointed to by a RetrievalMethod.
        for method in OneLogin_Saml2_XML.query(key_info[0], "./ds:RetrievalMethod"):
            uri = method.get("URI", "")
            if method.get("Type") != "http://www.w3.org/2001/04/xmlenc#EncryptedKey":
                raise SamlLoginError("the EncryptedData has an unsupported RetrievalMethod")
            if uri.startswith("#"):
                key_info[0].extend(
                    OneLogin_Saml2_XML.query(
                        encrypted[0], "./xenc:EncryptedKey[@Id=$tagid]", None, uri[1:]
                    )
                )
        # Without its Type (Element), xmlsec returns the plaintext as the IdP wrote it rather
        # than an element it has already re-namespaced.
        detached = deepcopy(data[0])
        detached.attrib.pop("Type", None)
        manager = xmlsec.KeysManager()
        manager.add_key(
            xmlsec.Key.from_memory(
                self._settings.get_sp_key(), xmlsec.constants.KeyDataFormatPem, None
            )
        )
        plaintext = xmlsec.EncryptionContext(manager).decrypt(detached)
        if not isinstance(plaintext, bytes) or plaintext.lstrip().startswith(b"<?"):
            raise SamlLoginError("the EncryptedAssertion does not hold an Assertion element")
        marker = etree.Comment(secrets.token_hex(16))
        xml.replace(encrypted[0], marker)
        text = etree.tostring(xml)
        if text.count(etree.tostring(marker)) != 1:
            raise SamlLoginError("the decrypted Response cannot be rebuilt")
        return OneLogin_Saml2_XML.to_etree(text.replace(etree.tostring(marker), plaintext))


def _login_settings(sp: SamlSp, idp: IdpMetadata, quote: Any) -> Any:
    settings = {
        "strict": True,
        "debug": False,
        "sp": {
            "entityId": quote(sp.entity_id),
            "assertionConsumerService": {"url": quote(sp.acs_url), "binding": POST},
            "NameIDFormat": SP_NAME_ID_FORMAT,
            "x509cert": sp.certificate_pem,
            "privateKey": sp.private_key_pem,
        },
        "idp": {
            "entityId": quote(idp.entity_id),
            "singleSignOnService": {"url": quote(idp.sso_url), "binding": idp.sso_binding},
            # Every signing certificate verifies, so an IdP rotating its key keeps working.
            "x509certMulti": {"signing": list(idp.certificates)},
        },
        "security": {
            "authnRequestsSigned": False,
            "wantAssertionsSigned": True,
            "wantMessagesSigned": False,
            # Not required, but an EncryptedAssertion is decrypted with the SP private key.
            "wantAssertionsEncrypted": False,
            "wantNameId": True,
            "wantNameIdEncrypted": False,
            # Okta and Entra send no AttributeStatement when no attribute is configured.
            "wantAttributeStatement": False,
            "requestedAuthnContext": False,
            # Some IdPs split a multi-valued attribute over several Attribute elements.
            "allowRepeatAttributeName": True,
            # RSA-SHA1, DSA-SHA1 and SHA-1 digests are refused.
            "rejectDeprecatedAlgorithm": True,
            "signatureAlgorithm": Saml2.RSA_SHA256,
            "digestAlgorithm": Saml2.SHA256,
        },
    }
    try:
        return OneLogin_Saml2_Settings(settings)
    except OneLogin_Saml2_Error as exc:
        raise SamlLoginError(f"the connection's SAML settings are not valid: {exc}") from None


def _acs_request_data(acs_url: str, saml_response: str) -> dict[str, Any]:
    """The request as python3-saml sees it, built from the configured ACS URL and never from
    the Host header, so Destination and Recipient are compared with what we published."""
    parts = urlsplit(acs_url)
    return {
        "https": "on" if parts.scheme == "https" else "off",
        "http_host": parts.netloc,
        "script_name": parts.path,
        "post_data": {"SAMLResponse": saml_response},
    }


def _in_response_to(saml_response: str) -> str | None:
    try:
        raw = base64.b64decode(saml_response)
    except ValueError:
        raise SamlLoginError("the SAMLResponse is not base64-encoded XML") from None
    # As for metadata: refused before libxml2 reads it, whose own limits would otherwise
    # stop an entity expansion first and hide why.
    if b"<!DOCTYPE" in raw or b"<!ENTITY" in raw:
        raise SamlLoginError("the Response has a DOCTYPE or entity declarations")
    try:
        root = OneLogin_Saml2_XML.to_etree(raw)
    except (DTDForbidden, EntitiesForbidden):
        raise SamlLoginError("the Response has a DOCTYPE or entity declarations") from None
    except (ValueError, etree.LxmlError):
        raise SamlLoginError("the SAMLResponse is not base64-encoded XML") from None
    if root.tag != f"{{{Saml2.NS_SAMLP}}}Response":
        raise SamlLoginError(f"the SAMLResponse is a {etree.QName(root).localname}, not a Response")
    value: str | None = root.get("InResponseTo")
    return value


def _the_assertion(response: Any) -> Any:
    # python3-saml has checked that the document holds one assertion and that it is signed.
    found = OneLogin_Saml2_XML.query(response.get_xml_document(), "/samlp:Response/saml:Assertion")
    if len(found) != 1:
        raise SamlLoginError("the Response must hold exactly one Assertion")
    return found[0]


def _bearer_confirmation(assertion: Any, acs_url: str, request_id: str | None) -> int:
    """The NotOnOrAfter (unix time) of a bearer SubjectConfirmationData for this request.

    saml-profiles-2.0-os 4.1.4.2: "at least one bearer <SubjectConfirmation> element [...]
    MUST contain a Recipient attribute containing the service provider's assertion consumer
    service URL and a NotOnOrAfter attribute [...] It MAY contain an Address attribute [...]
    If the containing message is in response to an <AuthnRequest>, then the InResponseTo
    attribute MUST match the request's ID." python3-saml accepts a Recipient that merely
    contains the ACS URL, a missing NotOnOrAfter, and compares InResponseTo with the
    Response's unsigned attribute, not with the request.
    """
    now = OneLogin_Saml2_Utils.now()
    confirmations = OneLogin_Saml2_XML.query(
        assertion,
        f"./saml:Subject/saml:SubjectConfirmation[@Method='{Saml2.CM_BEARER}']"
        "/saml:SubjectConfirmationData",
    )
    for data in confirmations:
        if data.get("Recipient") != acs_url or data.get("InResponseTo") != request_id:
            continue
        until = _time(data.get("NotOnOrAfter"))
        since = _time(data.get("NotBefore"))
        if until is not None and until > now and (since is None or since <= now):
            return until
    raise SamlLoginError(
        f"the assertion has no bearer SubjectConfirmationData for Recipient {acs_url!r} and "
        f"InResponseTo {request_id!r} that is valid now"
    )


def _not_on_or_after(assertion: Any, confirmed_until: int) -> dt.datetime:
    """The last moment python3-saml would accept this assertion: the earlier of the bearer
    confirmation's NotOnOrAfter and the Conditions' NotOnOrAfter plus the clock skew."""
    last = confirmed_until
    conditions = OneLogin_Saml2_XML.query(assertion, "./saml:Conditions")
    if conditions:
        until = _time(conditions[0].get("NotOnOrAfter"))
        if until is not None:
            last = min(last, until + Saml2.ALLOWED_CLOCK_DRIFT)
    return dt.datetime.fromtimestamp(last, dt.UTC)


def _attributes(found: dict[str, list[Any]]) -> dict[str, list[str]]:
    # A value holding a NameID (eduPersonTargetedID) comes back from python3-saml as a dict.
    return {
        name: [
            value if isinstance(value, str) else str(value["NameID"]["value"] or "")
            for value in values
        ]
        for name, values in found.items()
    }


def _text(node: Any, xpath: str) -> str | None:
    found = OneLogin_Saml2_XML.query(node, f"./{xpath}")
    if not found:
        return None
    text: str | None = OneLogin_Saml2_XML.element_text(found[0])
    return text


def _time(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        parsed: int = OneLogin_Saml2_Utils.parse_SAML_to_time(value)
    except Exception:  # python3-saml raises a bare Exception for a malformed time
        raise SamlLoginError(f"{value!r} is not a SAML time") from None
    return parsed
