"""SAML metadata: IdP metadata written by pysaml2 (a real SAML implementation) read by
`sso.saml`, the manual IdP form, our SP key pair, and our SP metadata read back by pysaml2.
Pure: no database, no network, no clock."""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from lxml import etree
from saml2 import BINDING_HTTP_ARTIFACT, BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, md
from saml2.attribute_converter import ac_factory
from saml2.mdstore import InMemoryMetaData

from sso.saml import (
    SP_NAME_ID_FORMAT,
    IdpMetadata,
    SamlMetadataError,
    SpKey,
    idp_from_fields,
    new_sp_key,
    parse_idp_metadata,
    sp_metadata,
)
from tests.saml_idp import (
    IDP,
    NOW,
    PERSISTENT,
    SLO,
    SSO_REDIRECT,
    KeyPair,
    idp_descriptor,
    idp_xml,
    key_pair,
    metadata_xml,
)

SSO_POST = "https://idp.example.org/sso/post"
SP = "https://id.example/sso/acme/okta/metadata"
ACS = "https://id.example/sso/acme/okta/acs"
MD_NS = "urn:oasis:names:tc:SAML:2.0:metadata"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[KeyPair, KeyPair, KeyPair]:
    folder = tmp_path_factory.mktemp("idp-keys")
    return (key_pair(folder, "one"), key_pair(folder, "two"), key_pair(folder, "three"))


@pytest.fixture(scope="module")
def sp_key() -> SpKey:
    return new_sp_key("idgate acme/okta", NOW)


# --- IdP metadata from pysaml2 -------------------------------------------------------------


def test_pysaml2_idp_metadata_is_read(keys: tuple[KeyPair, ...]) -> None:
    xml = idp_xml(
        signing=keys[:1],
        sso=((SSO_POST, BINDING_HTTP_POST), (SSO_REDIRECT, BINDING_HTTP_REDIRECT)),
    )
    assert parse_idp_metadata(xml) == IdpMetadata(
        entity_id=IDP,
        sso_url=SSO_REDIRECT,  # HTTP-Redirect is preferred even when listed second
        sso_binding=BINDING_HTTP_REDIRECT,
        slo_url=SLO,
        certificates=(keys[0].b64,),
        name_id_format=PERSISTENT,
    )


def test_metadata_as_text_is_read_like_bytes(keys: tuple[KeyPair, ...]) -> None:
    xml = idp_xml(signing=keys[:1])
    assert parse_idp_metadata(xml.decode()) == parse_idp_metadata(xml)


def test_http_post_sso_when_the_idp_has_no_redirect(keys: tuple[KeyPair, ...]) -> None:
    idp = parse_idp_metadata(idp_xml(signing=keys[:1], sso=((SSO_POST, BINDING_HTTP_POST),)))
    assert (idp.sso_url, idp.sso_binding) == (SSO_POST, BINDING_HTTP_POST)


def test_every_signing_certificate_is_kept_for_rotation(keys: tuple[KeyPair, ...]) -> None:
    idp = parse_idp_metadata(idp_xml(signing=keys[:2]))
    assert idp.certificates == (keys[0].b64, keys[1].b64)


def test_encryption_certificates_are_not_signing_certificates(
    keys: tuple[KeyPair, ...],
) -> None:
    idp = parse_idp_metadata(idp_xml(signing=keys[:1], encryption=keys[1:2]))
    assert idp.certificates == (keys[0].b64,)


def test_a_key_descriptor_without_use_is_a_signing_key(keys: tuple[KeyPair, ...]) -> None:
    # SAML metadata §2.4.1.1: with no `use`, the key serves both signing and encryption.
    xml = idp_xml(signing=keys[:1]).replace(b' use="signing"', b"")
    assert b"use=" not in xml
    assert parse_idp_metadata(xml).certificates == (keys[0].b64,)


# --- refusals ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "xml",
    ["", "not xml at all", b"<md:EntityDescriptor xmlns:md='" + MD_NS.encode(), b"\xff\xfe\x00"],
)
def test_not_xml_is_refused(xml: str | bytes) -> None:
    with pytest.raises(SamlMetadataError, match="not well-formed XML"):
        parse_idp_metadata(xml)


def _xxe(secret: Path, *, in_attribute: bool) -> str:
    entity_id = "&leak;" if in_attribute else IDP
    return (
        '<?xml version="1.0"?>'
        f'<!DOCTYPE md [<!ENTITY leak SYSTEM "file://{secret}">]>'
        f'<EntityDescriptor xmlns="{MD_NS}" entityID="{entity_id}"><IDPSSODescriptor>'
        "<NameIDFormat>&leak;</NameIDFormat></IDPSSODescriptor></EntityDescriptor>"
    )


def _billion_laughs() -> str:
    levels = "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)).replace(
        "&lol0;", "lol"
    )
    return (
        f'<?xml version="1.0"?><!DOCTYPE lolz [{levels}]>'
        f'<EntityDescriptor xmlns="{MD_NS}" entityID="&lol9;"><IDPSSODescriptor>'
        "<NameIDFormat>&lol9;</NameIDFormat></IDPSSODescriptor></EntityDescriptor>"
    )


@pytest.mark.parametrize(
    ("encoding", "in_attribute", "message"),
    [
        ("utf-8", False, "DOCTYPE or entity declarations"),
        ("utf-8", True, "DOCTYPE or entity declarations"),
        # Our DOCTYPE check cannot see UTF-16: python3-saml's parser, which refuses any
        # DOCTYPE, stops it, and libxml2 refuses an external entity in an attribute.
        ("utf-16", False, "DOCTYPE or entity declarations"),
        ("utf-16", True, "references external entity"),
    ],
)
def test_xxe_is_refused_without_reading_the_file(
    tmp_path: Path, encoding: str, in_attribute: bool, message: str
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-VALUE")
    xml = _xxe(secret, in_attribute=in_attribute)
    payload = xml.replace('version="1.0"', f'version="1.0" encoding="{encoding}"').encode(encoding)
    assert (b"<!DOCTYPE" in payload) is (encoding == "utf-8")
    with pytest.raises(SamlMetadataError, match=message) as refused:
        parse_idp_metadata(payload)
    assert "TOP-SECRET" not in str(refused.value)


def test_billion_laughs_is_refused() -> None:
    with pytest.raises(SamlMetadataError, match="DOCTYPE or entity declarations"):
        parse_idp_metadata(_billion_laughs())


def test_billion_laughs_in_utf16_is_refused_by_the_parser() -> None:
    # Past our DOCTYPE check; libxml2's entity amplification limit stops the expansion.
    payload = _billion_laughs().replace('version="1.0"', 'version="1.0" encoding="utf-16"')
    with pytest.raises(SamlMetadataError, match=r"amplification|DOCTYPE"):
        parse_idp_metadata(payload.encode("utf-16"))


def test_an_external_dtd_is_refused(tmp_path: Path) -> None:
    xml = (
        f'<!DOCTYPE EntityDescriptor SYSTEM "file://{tmp_path}/x.dtd">'
        f'<EntityDescriptor xmlns="{MD_NS}" entityID="{IDP}"/>'
    )
    with pytest.raises(SamlMetadataError, match="DOCTYPE"):
        parse_idp_metadata(xml)


def test_metadata_without_an_entity_descriptor_is_refused() -> None:
    with pytest.raises(SamlMetadataError, match="no EntityDescriptor"):
        parse_idp_metadata(f'<EntitiesDescriptor xmlns="{MD_NS}"/>')


def test_sp_metadata_is_not_idp_metadata(sp_key: SpKey) -> None:
    xml = sp_metadata(entity_id=SP, acs_url=ACS, certificate_pem=sp_key.certificate_pem)
    with pytest.raises(SamlMetadataError, match="no IDPSSODescriptor"):
        parse_idp_metadata(xml)


def test_an_idp_without_redirect_or_post_sso_is_refused(keys: tuple[KeyPair, ...]) -> None:
    xml = idp_xml(signing=keys[:1], sso=((SSO_POST, BINDING_HTTP_ARTIFACT),))
    with pytest.raises(SamlMetadataError, match="HTTP-Redirect or HTTP-POST"):
        parse_idp_metadata(xml)


def test_an_idp_without_any_certificate_is_refused() -> None:
    with pytest.raises(SamlMetadataError, match="no signing certificate"):
        parse_idp_metadata(idp_xml())


def test_an_idp_with_only_an_encryption_certificate_is_refused(
    keys: tuple[KeyPair, ...],
) -> None:
    xml = idp_xml(encryption=keys[:1])
    assert b'use="encryption"' in xml
    with pytest.raises(SamlMetadataError, match="no signing certificate"):
        parse_idp_metadata(xml)


def test_a_certificate_that_is_not_x509_is_refused(keys: tuple[KeyPair, ...]) -> None:
    xml = idp_xml(signing=keys[:1]).replace(keys[0].b64.encode(), b"bm90IGEgY2VydGlmaWNhdGU=")
    with pytest.raises(SamlMetadataError, match=r"not an X\.509 certificate"):
        parse_idp_metadata(xml)


def test_an_idp_sso_url_in_clear_text_is_refused(keys: tuple[KeyPair, ...]) -> None:
    xml = idp_xml(signing=keys[:1], sso=(("http://idp.example.org/sso", BINDING_HTTP_REDIRECT),))
    with pytest.raises(SamlMetadataError, match="must be https"):
        parse_idp_metadata(xml)


# --- aggregates ----------------------------------------------------------------------------

OTHER = "https://other-idp.example.net/saml"


@pytest.fixture(scope="module")
def aggregate(keys: tuple[KeyPair, ...]) -> bytes:
    return metadata_xml(
        md.EntitiesDescriptor(
            entity_descriptor=[
                idp_descriptor(signing=keys[:1]),
                idp_descriptor(
                    signing=keys[1:2],
                    entity_id=OTHER,
                    sso=(("https://other-idp.example.net/sso", BINDING_HTTP_REDIRECT),),
                ),
            ]
        )
    )


def test_an_aggregate_needs_an_entity_id(aggregate: bytes) -> None:
    with pytest.raises(SamlMetadataError, match="2 entities") as refused:
        parse_idp_metadata(aggregate)
    assert IDP in str(refused.value) and OTHER in str(refused.value)


def test_each_entity_of_an_aggregate_can_be_chosen(
    aggregate: bytes, keys: tuple[KeyPair, ...]
) -> None:
    first, second = parse_idp_metadata(aggregate, IDP), parse_idp_metadata(aggregate, OTHER)
    assert (first.entity_id, first.sso_url, first.certificates) == (
        IDP,
        SSO_REDIRECT,
        (keys[0].b64,),
    )
    assert (second.entity_id, second.sso_url, second.certificates) == (
        OTHER,
        "https://other-idp.example.net/sso",
        (keys[1].b64,),
    )


@pytest.mark.parametrize(
    ("entity_id", "message"),
    [
        ("https://absent.example/saml", "no EntityDescriptor with entityID"),
        ("https://x.example/' or '1'='1", "cannot be selected"),
        ("", "cannot be selected"),
    ],
)
def test_an_entity_that_is_not_there_is_refused(
    aggregate: bytes, entity_id: str, message: str
) -> None:
    with pytest.raises(SamlMetadataError, match=message):
        parse_idp_metadata(aggregate, entity_id)


# --- the manual form -----------------------------------------------------------------------


def test_the_manual_form_accepts_pem_and_bare_base64(keys: tuple[KeyPair, ...]) -> None:
    wrapped = "\n".join(keys[1].b64[i : i + 64] for i in range(0, len(keys[1].b64), 64))
    idp = idp_from_fields(f"  {IDP} ", SSO_REDIRECT, [keys[0].pem, f"\n{wrapped}\n"])
    assert idp == IdpMetadata(
        entity_id=IDP,
        sso_url=SSO_REDIRECT,
        sso_binding=BINDING_HTTP_REDIRECT,
        slo_url=None,
        certificates=(keys[0].b64, keys[1].b64),
        name_id_format=None,
    )


@pytest.mark.parametrize(
    "url", ["http://localhost:8080/sso", "http://127.0.0.1/sso", "https://idp.example.org/x"]
)
def test_the_manual_form_accepts_https_and_local_http(keys: tuple[KeyPair, ...], url: str) -> None:
    assert idp_from_fields(IDP, url, [keys[0].pem]).sso_url == url


@pytest.mark.parametrize(
    "url", ["http://idp.example.org/sso", "ftp://idp.example.org/sso", "idp.example.org", ""]
)
def test_the_manual_form_refuses_other_sso_urls(keys: tuple[KeyPair, ...], url: str) -> None:
    with pytest.raises(SamlMetadataError, match="must be https"):
        idp_from_fields(IDP, url, [keys[0].pem])


@pytest.mark.parametrize(
    "certificate",
    [
        "not base64!",
        "bm90IGEgY2VydGlmaWNhdGU=",
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----",
    ],
)
def test_the_manual_form_refuses_what_is_not_a_certificate(certificate: str) -> None:
    with pytest.raises(SamlMetadataError, match=r"not an X\.509 certificate"):
        idp_from_fields(IDP, SSO_REDIRECT, [certificate])


def test_the_manual_form_refuses_a_private_key(sp_key: SpKey) -> None:
    with pytest.raises(SamlMetadataError, match=r"not an X\.509 certificate"):
        idp_from_fields(IDP, SSO_REDIRECT, [sp_key.private_key_pem])


def test_the_manual_form_needs_an_entity_id_and_a_certificate(
    keys: tuple[KeyPair, ...],
) -> None:
    with pytest.raises(SamlMetadataError, match="entity ID is empty"):
        idp_from_fields("  ", SSO_REDIRECT, [keys[0].pem])
    with pytest.raises(SamlMetadataError, match="at least one"):
        idp_from_fields(IDP, SSO_REDIRECT, [])


# --- our key pair --------------------------------------------------------------------------


def test_new_sp_key_pairs_a_certificate_with_its_private_key(sp_key: SpKey) -> None:
    certificate = x509.load_pem_x509_certificate(sp_key.certificate_pem.encode())
    private_key = serialization.load_pem_private_key(sp_key.private_key_pem.encode(), None)
    assert isinstance(private_key, rsa.RSAPrivateKey)
    assert private_key.key_size == 3072
    assert certificate.public_key() == private_key.public_key()
    assert isinstance(certificate.signature_hash_algorithm, hashes.SHA256)
    certificate.verify_directly_issued_by(certificate)  # self-signed
    common_name = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert [a.value for a in common_name] == ["idgate acme/okta"]


def test_new_sp_key_is_valid_from_a_day_before_now_for_ten_years(sp_key: SpKey) -> None:
    certificate = x509.load_pem_x509_certificate(sp_key.certificate_pem.encode())
    second = NOW.replace(microsecond=0)
    assert certificate.not_valid_before_utc == second - dt.timedelta(days=1)
    assert certificate.not_valid_after_utc == second.replace(year=2036)


def test_new_sp_key_takes_the_years_asked_and_any_timezone() -> None:
    leap_day = dt.datetime(2028, 2, 29, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    certificate = x509.load_pem_x509_certificate(
        new_sp_key("x", leap_day, years=1).certificate_pem.encode()
    )
    assert certificate.not_valid_before_utc == dt.datetime(2028, 2, 28, 10, 0, tzinfo=dt.UTC)
    assert certificate.not_valid_after_utc == dt.datetime(2029, 2, 28, 10, 0, tzinfo=dt.UTC)


def test_new_sp_key_needs_an_aware_now() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        new_sp_key("x", dt.datetime(2026, 1, 1))


# --- our SP metadata -----------------------------------------------------------------------


def _der_b64(pem: str) -> str:
    der = x509.load_pem_x509_certificate(pem.encode()).public_bytes(serialization.Encoding.DER)
    return base64.b64encode(der).decode()


def test_sp_metadata_as_pysaml2_reads_it(sp_key: SpKey) -> None:
    xml = sp_metadata(entity_id=SP, acs_url=ACS, certificate_pem=sp_key.certificate_pem)
    descriptor = md.entity_descriptor_from_string(xml)
    assert descriptor.entity_id == SP
    assert descriptor.valid_until is None
    (sp,) = descriptor.spsso_descriptor
    assert (sp.authn_requests_signed, sp.want_assertions_signed) == ("false", "true")
    assert [(a.binding, a.location) for a in sp.assertion_consumer_service] == [
        (BINDING_HTTP_POST, ACS)
    ]
    assert [n.text for n in sp.name_id_format] == [SP_NAME_ID_FORMAT]
    assert SP_NAME_ID_FORMAT.endswith(":unspecified")
    certificates = {
        k.use: "".join(k.key_info.x509_data[0].x509_certificate.text.split())
        for k in sp.key_descriptor
    }
    assert certificates == {
        "signing": _der_b64(sp_key.certificate_pem),
        "encryption": _der_b64(sp_key.certificate_pem),
    }


def test_pysaml2_metadata_store_finds_our_acs_and_certificate(sp_key: SpKey) -> None:
    # What a pysaml2 IdP looks up when it answers an AuthnRequest; `&` and `"` survive.
    acs = ACS + '?tenant=acme&quote="'
    store = InMemoryMetaData(
        ac_factory(),
        sp_metadata(entity_id=SP, acs_url=acs, certificate_pem=sp_key.certificate_pem),
    )
    store.load()
    found = store.service(SP, "spsso_descriptor", "assertion_consumer_service", BINDING_HTTP_POST)
    assert [s["location"] for s in found] == [acs]
    signing = ["".join(cert.split()) for _, cert in store.certs(SP, "spsso", "signing")]
    assert signing == [_der_b64(sp_key.certificate_pem)]


def test_sp_metadata_values_cannot_add_attributes(sp_key: SpKey) -> None:
    entity_id = SP + '" validUntil="2000-01-01T00:00:00Z'
    xml = sp_metadata(entity_id=entity_id, acs_url=ACS, certificate_pem=sp_key.certificate_pem)
    root = etree.fromstring(xml.encode())
    assert root.get("entityID") == entity_id
    assert root.get("validUntil") is None


def test_sp_metadata_valid_until_is_written_in_utc_whatever_the_clock(sp_key: SpKey) -> None:
    # Long past: the function does not compare it with the system clock.
    until = dt.datetime(2001, 2, 3, 6, 5, 6, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    xml = sp_metadata(
        entity_id=SP, acs_url=ACS, certificate_pem=sp_key.certificate_pem, valid_until=until
    )
    assert etree.fromstring(xml.encode()).get("validUntil") == "2001-02-03T04:05:06Z"


def test_sp_metadata_is_checked_against_the_schema(sp_key: SpKey) -> None:
    # The metadata schema limits entityID to 1024 characters.
    with pytest.raises(SamlMetadataError, match="not valid: invalid_xml"):
        sp_metadata(
            entity_id="https://id.example/" + "x" * 1024,
            acs_url=ACS,
            certificate_pem=sp_key.certificate_pem,
        )


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"acs_url": "ftp://id.example/acs"}, "not an http"),
        ({"acs_url": "https://not a host/acs"}, "sp_acs_url_invalid"),
        ({"entity_id": ""}, "sp_entityId_not_found"),
        ({"certificate_pem": "-----BEGIN CERTIFICATE-----\nAA==\n"}, r"not a PEM X\.509"),
    ],
)
def test_sp_metadata_refuses_bad_input(
    sp_key: SpKey, arguments: dict[str, str], message: str
) -> None:
    given = {"entity_id": SP, "acs_url": ACS, "certificate_pem": sp_key.certificate_pem}
    with pytest.raises(SamlMetadataError, match=message):
        sp_metadata(**(given | arguments))


def test_sp_metadata_needs_an_aware_valid_until(sp_key: SpKey) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        sp_metadata(
            entity_id=SP,
            acs_url=ACS,
            certificate_pem=sp_key.certificate_pem,
            valid_until=dt.datetime(2030, 1, 1),
        )
