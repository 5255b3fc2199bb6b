"""SAML login: our AuthnRequest answered by a real pysaml2 IdP that signs (and encrypts)
through xmlsec1, and the Response checked by `sso.saml.process_response`. Responses are made
at the current time, so the IdP's assertion lifetime decides what is still valid."""

from __future__ import annotations

import base64
import datetime as dt
from urllib.parse import parse_qs, urlsplit

import pytest
from saml2 import BINDING_HTTP_REDIRECT
from saml2.xmldsig import DIGEST_SHA1, SIG_RSA_SHA1

from sso.saml import (
    ALLOWED_CLOCK_SKEW,
    ExternalIdentity,
    IdpMetadata,
    SamlLoginError,
    SamlSp,
    authn_request,
    new_sp_key,
    parse_idp_metadata,
    process_response,
    sp_metadata,
)
from tests.saml_idp import (
    IDP,
    NOW,
    NS,
    SSO_REDIRECT,
    KeyPair,
    TestIdp,
    encode_answer,
    idp_xml,
    key_pair,
    parse_answer,
    wrapped,
)

SP = "https://id.example/sso/acme/okta/metadata"
ACS = "https://id.example/sso/acme/okta/acs"
OTHER_SP = "https://other.example/saml/metadata"
EMAIL_CLAIM = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress"
JANE = "jane@corp.example"
IDENTITY = {EMAIL_CLAIM: [JANE], "email": [JANE], "groups": ["admins", "staff"]}


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[KeyPair, KeyPair, KeyPair]:
    folder = tmp_path_factory.mktemp("idp-keys")
    return (key_pair(folder, "one"), key_pair(folder, "two"), key_pair(folder, "three"))


@pytest.fixture(scope="module")
def sp() -> SamlSp:
    key = new_sp_key("idgate acme/okta", NOW)
    return SamlSp(SP, ACS, key.certificate_pem, key.private_key_pem)


@pytest.fixture(scope="module")
def sps(sp: SamlSp) -> list[str]:
    """Our SP's metadata and another SP's, so the IdP can be told to address either."""
    return [
        sp_metadata(entity_id=SP, acs_url=ACS, certificate_pem=sp.certificate_pem),
        sp_metadata(entity_id=OTHER_SP, acs_url=ACS, certificate_pem=sp.certificate_pem),
    ]


@pytest.fixture(scope="module")
def idp(keys: tuple[KeyPair, ...]) -> IdpMetadata:
    return parse_idp_metadata(idp_xml(signing=keys[:1]))


@pytest.fixture(scope="module")
def server(keys: tuple[KeyPair, ...], sps: list[str]) -> TestIdp:
    return TestIdp(keys[0], sps)


def _login(
    server: TestIdp, sp: SamlSp, idp: IdpMetadata, name_id: str = JANE, **kwargs: object
) -> tuple[str, str]:
    request_id, url = authn_request(sp, idp, "state-1")
    kwargs.setdefault("sign_assertion", True)
    return request_id, server.answer(url, name_id=name_id, identity=IDENTITY, **kwargs)


def _refused(
    sp: SamlSp, idp: IdpMetadata, response: str, request_id: str | None, match: str
) -> None:
    with pytest.raises(SamlLoginError, match=match):
        process_response(sp, idp, response, request_id=request_id, allow_unsolicited=False)


# --- the AuthnRequest ----------------------------------------------------------------------


def test_the_authn_request_as_pysaml2_reads_it(
    server: TestIdp, sp: SamlSp, idp: IdpMetadata
) -> None:
    request_id, url = authn_request(sp, idp, "state-1")
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == SSO_REDIRECT
    query = parse_qs(parts.query)
    assert query["RelayState"] == ["state-1"]
    message = server.server.parse_authn_request(
        query["SAMLRequest"][0], BINDING_HTTP_REDIRECT
    ).message
    assert message.id == request_id
    assert message.issuer.text == SP
    assert message.assertion_consumer_service_url == ACS
    assert message.destination == SSO_REDIRECT
    assert message.name_id_policy.format.endswith(":unspecified")
    assert message.force_authn in (None, "false")
    assert message.signature is None


def test_the_authn_request_without_relay_state_sends_none(sp: SamlSp, idp: IdpMetadata) -> None:
    _, url = authn_request(sp, idp, None)
    assert "RelayState" not in parse_qs(urlsplit(url).query)
    with pytest.raises(ValueError, match="80 bytes"):
        authn_request(sp, idp, "x" * 81)


# --- good logins ---------------------------------------------------------------------------


def test_a_good_login(server: TestIdp, sp: SamlSp, idp: IdpMetadata) -> None:
    request_id, response = _login(server, sp, idp)
    before = dt.datetime.now(dt.UTC)
    identity = process_response(sp, idp, response, request_id=request_id, allow_unsolicited=False)
    assertion = parse_answer(response).find("saml:Assertion", NS)
    assert assertion is not None
    assert identity == ExternalIdentity(
        subject=JANE,
        name_id_format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
        attributes={EMAIL_CLAIM: [JANE], "email": [JANE], "groups": ["admins", "staff"]},
        session_index=identity.session_index,
        assertion_id=assertion.get("ID"),
        not_on_or_after=identity.not_on_or_after,
        in_response_to=request_id,
        issuer=IDP,
    )
    assert identity.session_index
    # The IdP's assertions live 15 minutes; the confirmation ends first.
    assert identity.not_on_or_after is not None
    left = identity.not_on_or_after - before
    assert dt.timedelta(minutes=14) < left <= dt.timedelta(minutes=15)


def test_an_encrypted_assertion_is_decrypted(server: TestIdp, sp: SamlSp, idp: IdpMetadata) -> None:
    request_id, response = _login(server, sp, idp, encrypt_assertion=True)
    root = parse_answer(response)
    assert root.find("saml:EncryptedAssertion", NS) is not None
    assert root.find("saml:Assertion", NS) is None
    identity = process_response(sp, idp, response, request_id=request_id, allow_unsolicited=False)
    assert (identity.subject, identity.attributes["groups"]) == (JANE, ["admins", "staff"])


def test_a_response_signed_by_the_second_certificate_is_accepted(
    keys: tuple[KeyPair, ...], sps: list[str], sp: SamlSp
) -> None:
    rotating = parse_idp_metadata(idp_xml(signing=keys[:2]))
    assert rotating.certificates == (keys[0].b64, keys[1].b64)
    request_id, response = _login(TestIdp(keys[1], sps), sp, rotating)
    identity = process_response(
        sp, rotating, response, request_id=request_id, allow_unsolicited=False
    )
    assert identity.subject == JANE


def test_an_unsolicited_response_is_accepted_when_allowed(
    server: TestIdp, sp: SamlSp, idp: IdpMetadata
) -> None:
    _, response = _login(server, sp, idp, in_response_to=None)
    assert parse_answer(response).get("InResponseTo") is None
    identity = process_response(sp, idp, response, request_id=None, allow_unsolicited=True)
    assert (identity.subject, identity.in_response_to) == (JANE, None)


def test_the_clock_skew_is_python3_saml_s_five_minutes() -> None:
    assert dt.timedelta(minutes=5) == ALLOWED_CLOCK_SKEW


# --- refused -------------------------------------------------------------------------------


@pytest.mark.parametrize("sign_response", [False, True])
def test_an_unsigned_assertion_is_refused(
    server: TestIdp, sp: SamlSp, idp: IdpMetadata, sign_response: bool
) -> None:
    request_id, response = _login(
        server, sp, idp, sign_assertion=False, sign_response=sign_response
    )
    assert parse_answer(response).find("saml:Assertion/ds:Signature", NS) is None
    _refused(sp, idp, response, request_id, "not signed|No Signature")


def test_a_response_for_another_audience_is_refused(
    server: TestIdp, sp: SamlSp, idp: IdpMetadata
) -> None:
    request_id, response = _login(server, sp, idp, sp_entity_id=OTHER_SP)
    _refused(sp, idp, response, request_id, "not a valid audience")


@pytest.mark.parametrize(
    "destination",
    ["https://evil.example/sso/acme/okta/acs", ACS + "-other", ACS.replace("acme", "other")],
)
def test_a_response_for_another_acs_is_refused(
    server: TestIdp, sp: SamlSp, idp: IdpMetadata, destination: str
) -> None:
    # ACS + "-other" starts with our ACS URL, which is all python3-saml compares.
    request_id, response = _login(server, sp, idp, destination=destination)
    assert parse_answer(response).get("Destination") == destination
    _refused(sp, idp, response, request_id, "received at|is for")


def test_a_recipient_that_only_contains_our_acs_is_refused(
    server: TestIdp, sp: SamlSp, idp: IdpMetadata
) -> None:
    # No Destination, and a Recipient holding our ACS URL: python3-saml accepts both.
    request_id, response = _login(server, sp, idp, destination=ACS + "?next=x")
    root = parse_answer(response)
    del root.attrib["Destination"]
    _refused(sp, idp, encode_answer(root), request_id, "no bearer SubjectConfirmationData")


def test_an_expired_assertion_is_refused(
    keys: tuple[KeyPair, ...], sps: list[str], sp: SamlSp, idp: IdpMetadata
) -> None:
    expired = TestIdp(keys[0], sps, lifetime={"minutes": -10})
    request_id, response = _login(expired, sp, idp)
    _refused(sp, idp, response, request_id, "expired|SubjectConfirmation")


def test_a_response_to_another_request_is_refused(
    server: TestIdp, sp: SamlSp, idp: IdpMetadata
) -> None:
    other_id, _ = authn_request(sp, idp, None)
    _, response = _login(server, sp, idp)
    _refused(sp, idp, response, other_id, "does not match the ID")


def test_a_response_without_in_response_to_is_refused_when_a_request_is_pending(
    server: TestIdp, sp: SamlSp, idp: IdpMetadata
) -> None:
    request_id, response = _login(server, sp, idp, in_response_to=None)
    _refused(sp, idp, response, request_id, "no InResponseTo")


def test_an_unsolicited_response_is_refused_unless_allowed(
    server: TestIdp, sp: SamlSp, idp: IdpMetadata
) -> None:
    _, response = _login(server, sp, idp, in_response_to=None)
    _refused(sp, idp, response, None, "unsolicited response")


def test_a_solicited_response_is_refused_when_no_request_is_pending(
    server: TestIdp, sp: SamlSp, idp: IdpMetadata
) -> None:
    _, response = _login(server, sp, idp)
    with pytest.raises(SamlLoginError, match="no login request pending"):
        process_response(sp, idp, response, request_id=None, allow_unsolicited=True)


def test_a_response_with_its_in_response_to_removed_is_refused(
    server: TestIdp, sp: SamlSp, idp: IdpMetadata
) -> None:
    # The Response's InResponseTo is not signed; the assertion's confirmation still names
    # the request, so the response cannot pass as unsolicited.
    _, response = _login(server, sp, idp)
    root = parse_answer(response)
    del root.attrib["InResponseTo"]
    with pytest.raises(SamlLoginError, match="no bearer SubjectConfirmationData"):
        process_response(sp, idp, encode_answer(root), request_id=None, allow_unsolicited=True)


def test_a_response_signed_by_an_unknown_key_is_refused(
    keys: tuple[KeyPair, ...], sps: list[str], sp: SamlSp, idp: IdpMetadata
) -> None:
    request_id, response = _login(TestIdp(keys[2], sps), sp, idp)
    _refused(sp, idp, response, request_id, "Signature validation failed")


def test_a_tampered_name_id_is_refused(server: TestIdp, sp: SamlSp, idp: IdpMetadata) -> None:
    request_id, response = _login(server, sp, idp)
    root = parse_answer(response)
    name_id = root.find("saml:Assertion/saml:Subject/saml:NameID", NS)
    assert name_id is not None and name_id.text == JANE
    name_id.text = "admin@corp.example"
    _refused(sp, idp, encode_answer(root), request_id, "Signature validation failed")


@pytest.mark.parametrize("wrap", ["before", "inside"])
def test_signature_wrapping_is_refused(
    server: TestIdp, sp: SamlSp, idp: IdpMetadata, wrap: str
) -> None:
    request_id, response = _login(server, sp, idp)
    # "before": the forged assertion first, the signed one after it; "inside": the signed
    # assertion hidden inside the forged one, which takes its place.
    forged = wrapped(response, "admin@corp.example", inside=wrap == "inside")
    _refused(sp, idp, forged, request_id, "must contain 1 assertion")


def test_a_comment_in_the_name_id_does_not_cut_it(
    server: TestIdp, sp: SamlSp, idp: IdpMetadata
) -> None:
    request_id, response = _login(server, sp, idp, name_id=JANE + ".evil.example")
    raw = base64.b64decode(response)
    injected = raw.replace(
        f">{JANE}.evil.example<".encode(), f">{JANE}<!---->.evil.example<".encode()
    )
    assert injected.count(b"<!---->") == 1
    identity = process_response(
        sp, idp, encode_answer(injected), request_id=request_id, allow_unsolicited=False
    )
    assert identity.subject == JANE + ".evil.example"


def test_a_sha1_signature_is_refused(server: TestIdp, sp: SamlSp, idp: IdpMetadata) -> None:
    request_id, response = _login(server, sp, idp, sign_alg=SIG_RSA_SHA1, digest_alg=DIGEST_SHA1)
    _refused(sp, idp, response, request_id, "Deprecated signature algorithm")


@pytest.mark.parametrize("text", ["not base64!", base64.b64encode(b"<x/>").decode()])
def test_what_is_not_a_response_is_refused(sp: SamlSp, idp: IdpMetadata, text: str) -> None:
    _refused(sp, idp, text, "ONELOGIN_x", "not base64-encoded XML|not a Response")
