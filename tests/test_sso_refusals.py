"""SAML answers the app must refuse, posted through HTTP to a connection's ACS after a real
login start, from the browser that started it. Each answer is made by the pysaml2 IdP of
tests/saml_idp.py (asked for the fault, or re-signed / altered after signing); only the XXE
payloads are written by hand. A refusal sets no session, creates no user and, once the answer
has been checked, leaves a `login.failed` entry with its reason in the audit log."""

from __future__ import annotations

import base64
import datetime as dt
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from lxml import etree
from saml2 import saml, time_util
from saml2.xmldsig import DIGEST_SHA1, SIG_RSA_SHA1

from gateway.auth_api import SESSION_COOKIE
from sso.saml import sp_metadata
from tests.conftest import Scim, TenantAccess
from tests.saml_idp import NS, KeyPair, TestIdp, encode_answer, key_pair, parse_answer, wrapped
from tests.test_cli import _cli
from tests.test_sso_login import HOME, JANE, Login, _audit, _connection, _verify

ADMIN = "00u-admin"


@pytest.fixture
def signing(tmp_path: Path) -> KeyPair:
    return key_pair(tmp_path, "okta")


@pytest.fixture
async def okta(
    database_url: str,
    client: TestClient[Any, Any],
    tenant: TenantAccess,
    signing: KeyPair,
    tmp_path: Path,
) -> Login:
    assert (await _cli(database_url, "return-url", "add", tenant.slug, HOME)).exit_code == 0
    return await _connection(database_url, client, tenant, signing, tmp_path, "okta")


@dataclass
class Scene:
    """A login started at the app, for a forger to answer."""

    login: Login
    location: str  # the IdP redirect, holding our AuthnRequest
    sp_xml: str  # our SP metadata, as the IdP has it
    signing: KeyPair  # the connection's IdP key
    folder: Path

    def _sp(self, xpath: str) -> str:
        found = etree.fromstring(self.sp_xml.encode()).xpath(xpath, namespaces=NS)
        assert len(found) == 1
        return "".join(str(found[0]).split())

    @property
    def acs(self) -> str:
        return self._sp("//md:AssertionConsumerService/@Location")

    @property
    def sp_certificate(self) -> str:
        body = self._sp("//md:KeyDescriptor[@use='signing']//ds:X509Certificate/text()")
        return f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n"

    def answer(self, idp: TestIdp | None = None, **kwargs: Any) -> str:
        kwargs.setdefault("sign_assertion", True)
        return (idp or self.login.idp).answer(
            self.location, name_id="00u-jane", identity=JANE, **kwargs
        )


def _recipient(url: str) -> dict[str, Any]:
    """pysaml2's `farg`: a bearer confirmation for Recipient `url` (InResponseTo as usual)."""
    confirmation = {"method": saml.SCM_BEARER, "subject_confirmation_data": {"recipient": url}}
    return {"assertion": {"subject": {"subject_confirmation": confirmation}}}


class _ShiftedTime:
    """The `time` module, with gmtime() (no argument: now) `shift` seconds off."""

    def __init__(self, shift: float) -> None:
        self._shift = shift

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    def gmtime(self, secs: float | None = None) -> time.struct_time:
        return time.gmtime(time.time() + self._shift if secs is None else secs)


@contextmanager
def _idp_clock(shift: dt.timedelta) -> Iterator[None]:
    """pysaml2's clock set `shift` away from ours: it reads the time only through
    saml2.time_util's `time.gmtime()` and `datetime.now()`."""

    class Shifted(dt.datetime):
        @classmethod
        def now(cls, tz: dt.tzinfo | None = None) -> Any:
            return dt.datetime.now(tz) + shift

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(time_util, "time", _ShiftedTime(shift.total_seconds()))
        patch.setattr(time_util, "datetime", Shifted)
        yield


def _unsigned(scene: Scene) -> str:
    answer = scene.answer(sign_assertion=False)
    root = parse_answer(answer)
    assert root.find("ds:Signature", NS) is None
    assert root.find("saml:Assertion/ds:Signature", NS) is None
    return answer


def _unsigned_in_a_signed_response(scene: Scene) -> str:
    answer = scene.answer(sign_assertion=False, sign_response=True)
    root = parse_answer(answer)
    assert root.find("ds:Signature", NS) is not None
    assert root.find("saml:Assertion/ds:Signature", NS) is None
    return answer


def _unknown_key(scene: Scene) -> str:
    return scene.answer(TestIdp(key_pair(scene.folder, "stranger"), [scene.sp_xml]))


def _wrapped(scene: Scene, *, inside: bool) -> str:
    return wrapped(scene.answer(), ADMIN, inside=inside)


def _no_in_response_to(scene: Scene) -> str:
    answer = scene.answer(in_response_to=None)
    assert parse_answer(answer).get("InResponseTo") is None
    return answer


def _expired(scene: Scene) -> str:
    return scene.answer(TestIdp(scene.signing, [scene.sp_xml], lifetime={"minutes": -10}))


def _not_yet_valid(scene: Scene) -> str:
    # An IdP whose clock runs ahead of ours by more than the accepted skew.
    with _idp_clock(dt.timedelta(minutes=10)):
        return scene.answer()


def _other_audience(scene: Scene) -> str:
    other = "https://other.example/saml/metadata"
    sps = [
        scene.sp_xml,
        sp_metadata(entity_id=other, acs_url=scene.acs, certificate_pem=scene.sp_certificate),
    ]
    answer = scene.answer(TestIdp(scene.signing, sps), sp_entity_id=other)
    audience = parse_answer(answer).find(".//saml:Audience", NS)
    assert audience is not None and audience.text == other
    return answer


def _other_recipient(url: Callable[[str], str]) -> Callable[[Scene], str]:
    def forge(scene: Scene) -> str:
        answer = scene.answer(farg=_recipient(url(scene.acs)))
        root = parse_answer(answer)
        assert root.get("Destination") == scene.acs
        found = root.find(".//saml:SubjectConfirmationData", NS)
        assert found is not None and found.get("Recipient") == url(scene.acs)
        return answer

    return forge


def _other_destination(url: Callable[[str], str]) -> Callable[[Scene], str]:
    def forge(scene: Scene) -> str:
        answer = scene.answer(destination=url(scene.acs), farg=_recipient(scene.acs))
        root = parse_answer(answer)
        assert root.get("Destination") == url(scene.acs)
        found = root.find(".//saml:SubjectConfirmationData", NS)
        assert found is not None and found.get("Recipient") == scene.acs
        return answer

    return forge


def _other_issuer(scene: Scene) -> str:
    answer = scene.answer(issuer="https://evil.example/idp")
    issuer = parse_answer(answer).find("saml:Assertion/saml:Issuer", NS)
    assert issuer is not None and issuer.text == "https://evil.example/idp"
    return answer


def _sha1(scene: Scene) -> str:
    answer = scene.answer(sign_alg=SIG_RSA_SHA1, digest_alg=DIGEST_SHA1)
    method = parse_answer(answer).find(".//ds:SignatureMethod", NS)
    assert method is not None and method.get("Algorithm") == SIG_RSA_SHA1
    return answer


# Attack payloads, not IdP answers: a DOCTYPE with entities must never reach an XML parser
# that expands them.
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE samlp:Response [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="_x" Version="2.0"
 IssueInstant="2026-01-01T00:00:00Z">&xxe;</samlp:Response>"""
ENTITY_EXPANSION = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="_x" Version="2.0"
 IssueInstant="2026-01-01T00:00:00Z">&lol9;</samlp:Response>"""


def _case(forge: Callable[[Scene], str], reason: str, name: str, *marks: Any) -> Any:
    return pytest.param(forge, reason, id=name, marks=marks)


REFUSED = [
    _case(_unsigned, "Assertion of the Response is not signed", "nothing signed"),
    _case(
        _unsigned_in_a_signed_response,
        "Assertion of the Response is not signed",
        "unsigned assertion, signed response",
    ),
    _case(_unknown_key, "Signature validation failed", "unknown key"),
    _case(lambda s: _wrapped(s, inside=False), "must contain 1 assertion", "wrapping, before"),
    _case(lambda s: _wrapped(s, inside=True), "must contain 1 assertion", "wrapping, inside"),
    _case(_no_in_response_to, "has no InResponseTo", "no InResponseTo"),
    _case(_expired, "timestamp: expired", "expired"),
    _case(_not_yet_valid, "timestamp: not yet valid", "not yet valid"),
    _case(_other_audience, "is not a valid audience", "other audience"),
    _case(
        _other_recipient(lambda acs: "https://evil.example/acs"),
        "A valid SubjectConfirmation was not found",
        "other Recipient",
    ),
    _case(
        _other_recipient(lambda acs: acs + "?next=x"),
        "no bearer SubjectConfirmationData for Recipient",
        "Recipient only containing ours",
    ),
    _case(
        _other_destination(lambda acs: "https://evil.example/acs"),
        "instead of https://evil.example/acs",
        "other Destination",
    ),
    _case(
        _other_destination(lambda acs: acs + "-other"),
        "-other', not this connection's ACS",
        "Destination only starting with ours",
    ),
    _case(_other_issuer, "Invalid issuer", "other Issuer"),
    _case(_sha1, "Deprecated signature algorithm", "SHA-1 signature"),
    _case(lambda s: encode_answer(EXTERNAL_ENTITY), "has a DOCTYPE", "external entity"),
    _case(lambda s: encode_answer(ENTITY_EXPANSION), "has a DOCTYPE", "entity expansion"),
]


async def _users(scim: Scim) -> int:
    status, page, _ = await scim.get("/Users")
    assert status == 200
    total: int = page["totalResults"]
    return total


def _no_session(resp: Any) -> None:
    assert SESSION_COOKIE not in resp.cookies
    assert not any(SESSION_COOKIE in c for c in resp.headers.getall("Set-Cookie", []))


async def _failures(database_url: str, login: Login) -> list[dict[str, Any]]:
    return await _audit(database_url, login.tenant, "--action", "login.failed")


@pytest.mark.parametrize(("forge", "reason"), REFUSED)
async def test_a_bad_answer_is_refused_with_its_reason(
    forge: Callable[[Scene], str],
    reason: str,
    okta: Login,
    signing: KeyPair,
    scim: Scim,
    database_url: str,
    tmp_path: Path,
) -> None:
    sp_xml = await (await okta.client.get(f"{okta.root}/metadata")).text()
    location, relay_state = await okta.start()
    answer = forge(Scene(okta, location, sp_xml, signing, tmp_path))
    users = await _users(scim)

    refused = await okta.post(answer, relay_state)
    page = await refused.text()
    assert refused.status == 403, page
    assert "answer is not valid" in page and "root:" not in page and "lollol" not in page
    _no_session(refused)
    assert await _users(scim) == users
    (logged,) = await _failures(database_url, okta)
    assert (logged["actor"], logged["target"]) == ("sso:okta", "subject:okta/?")
    assert logged["details"]["connection"] == "okta"
    assert logged["details"]["reason"].startswith("invalid answer: ")
    assert reason in logged["details"]["reason"]


async def test_a_comment_in_the_name_id_logs_in_the_whole_name_id(
    okta: Login, scim: Scim, database_url: str
) -> None:
    whole, head = "jane@corp.example.evil.example", "jane@corp.example"
    location, relay_state = await okta.start()
    raw = base64.b64decode(okta.answer(location, whole, {}))
    injected = raw.replace(f">{whole}<".encode(), f">{head}<!---->.evil.example<".encode())
    assert injected.count(b"<!---->") == 1

    resp = await okta.post(encode_answer(injected), relay_state)
    assert resp.status == 302, await resp.text()
    verified = await _verify(okta.client, resp)
    assert verified.headers["X-Idgate-Email"] == whole
    _, page, _ = await scim.get("/Users")
    (user,) = page["Resources"]
    assert (user["id"], user["userName"]) == (verified.headers["X-Idgate-User"], whole)
    assert not await _failures(database_url, okta)
    # The identity is linked under the whole NameID: an answer naming it finds the same user.
    again = await okta.login(whole, {})
    assert (await _verify(okta.client, again)).headers["X-Idgate-User"] == user["id"]
    assert (await scim.get("/Users"))[1]["totalResults"] == 1


async def test_an_answer_to_another_request_is_refused(
    okta: Login, scim: Scim, database_url: str
) -> None:
    first, _ = await okta.start()
    _, relay_state = await okta.start()  # the browser's login is now the second one
    answer = okta.answer(first, "00u-jane", JANE)

    refused = await okta.post(answer, relay_state)
    assert refused.status == 403
    _no_session(refused)
    assert await _users(scim) == 0
    (logged,) = await _failures(database_url, okta)
    assert "does not match the ID" in logged["details"]["reason"]


async def test_a_replayed_answer_is_refused(okta: Login, scim: Scim, database_url: str) -> None:
    location, relay_state = await okta.start()
    answer = okta.answer(location, "00u-jane", JANE)
    assert (await okta.post(answer, relay_state)).status == 302
    users = await _users(scim)

    # Posted again: its saved request is used up, so it is refused before being read.
    replayed = await okta.post(answer, relay_state)
    assert replayed.status == 400 and "already used" in await replayed.text()
    _no_session(replayed)
    assert not await _failures(database_url, okta)
    # Posted into a new login of the same browser: it answers another request.
    _, fresh = await okta.start()
    again = await okta.post(answer, fresh)
    assert again.status == 403
    _no_session(again)
    assert await _users(scim) == users
    (logged,) = await _failures(database_url, okta)
    assert "does not match the ID" in logged["details"]["reason"]


async def test_a_replayed_unsolicited_answer_is_refused(
    database_url: str,
    client: TestClient[Any, Any],
    tenant: TenantAccess,
    scim: Scim,
    tmp_path: Path,
) -> None:
    portal = await _connection(
        database_url, client, tenant, key_pair(tmp_path, "portal"), tmp_path, "portal",
        "--idp-initiated",
    )  # fmt: skip
    location, _ = await portal.start(return_to=None)
    answer = portal.answer(location, "00u-jane", JANE, in_response_to=None)
    assert (await portal.post(answer, None)).status == 200
    users = await _users(scim)

    replayed = await portal.post(answer, None)
    assert replayed.status == 403 and "used before" in await replayed.text()
    _no_session(replayed)
    assert await _users(scim) == users
    (logged,) = await _failures(database_url, portal)
    assert (logged["target"], logged["details"]) == (
        "subject:portal/00u-jane",
        {"connection": "portal", "reason": "answer replayed", "subject": "00u-jane"},
    )


@pytest.mark.parametrize(
    ("relay_state", "same_browser", "message"),
    [
        (None, True, "start here"),  # unsolicited: IdP-initiated logins are off
        (HOME, True, "expired"),  # unsolicited, with a RelayState naming where to go
        ("", False, "another browser"),  # the login's RelayState, from another browser
    ],
)
async def test_an_answer_without_a_saved_request_is_refused_unread(
    okta: Login,
    scim: Scim,
    database_url: str,
    relay_state: str | None,
    same_browser: bool,
    message: str,
) -> None:
    location, started = await okta.start()
    solicited = relay_state == ""
    answer = okta.answer(
        location, "00u-jane", JANE, **({} if solicited else {"in_response_to": None})
    )

    refused = await okta.post(
        answer, started if solicited else relay_state, same_browser=same_browser
    )
    assert refused.status == 400 and message in await refused.text()
    _no_session(refused)
    assert await _users(scim) == 0
    # Refused before the answer is read: nothing is audited.
    assert not await _failures(database_url, okta)
