"""SSO connections: names, URLs and checks (pure), and their management through the CLI and
the SP metadata endpoint, on Postgres."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from lxml import etree

from sso.connections import check_domain, check_name, check_url, connection_urls, oidc_settings
from tests.conftest import TenantAccess
from tests.saml_idp import IDP, SSO_REDIRECT, idp_xml, key_pair
from tests.test_cli import _cli

MD = "urn:oasis:names:tc:SAML:2.0:metadata"


def test_connection_urls_live_under_the_tenant_and_connection() -> None:
    urls = connection_urls("https://id.example/", "acme", "okta")
    assert urls.entity_id == urls.metadata_url == "https://id.example/sso/acme/okta/metadata"
    assert urls.acs_url == "https://id.example/sso/acme/okta/acs"
    assert urls.login_url == "https://id.example/sso/acme/okta/login"
    assert urls.redirect_uri == "https://id.example/sso/acme/okta/callback"


@pytest.mark.parametrize("name", ["okta", "entra-id", "g_suite2", "a"])
def test_good_names(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", "Okta", "-x", "has space", "a/b", "x" * 64, "ünï"])
def test_bad_names(name: str) -> None:
    with pytest.raises(ValueError, match="connection name"):
        check_name(name)


def test_domains_are_folded_and_checked() -> None:
    assert check_domain(" Corp.Example. ") == "corp.example"
    for bad in ("corp", "jane@corp.example", "https://corp.example", "corp..example", "-a.com"):
        with pytest.raises(ValueError, match="domain"):
            check_domain(bad)


def test_urls_must_be_https_except_on_this_machine() -> None:
    assert check_url("https://app.example/home", "x") == "https://app.example/home"
    assert check_url("http://localhost:8080/cb", "x") == "http://localhost:8080/cb"
    for bad in (
        "http://app.example/",
        "javascript:alert(1)",
        "//app.example/",
        "https://user:pw@app.example/",
        "https://app.example/#frag",
    ):
        with pytest.raises(ValueError):
            check_url(bad, "a return URL")


def test_oidc_settings_need_openid_and_a_client_id() -> None:
    settings = oidc_settings("https://idp.example/", "client-1", ("openid", "email"))
    assert settings == {
        "issuer": "https://idp.example/",
        "client_id": "client-1",
        "scopes": ["openid", "email"],
    }
    with pytest.raises(ValueError, match="openid"):
        oidc_settings("https://idp.example", "c", ("email",))
    with pytest.raises(ValueError, match="client id"):
        oidc_settings("https://idp.example", " ", ("openid",))
    with pytest.raises(ValueError, match="https"):
        oidc_settings("http://idp.example", "c", ("openid",))


# --- through the CLI and the app, on Postgres ---------------------------------------------


@pytest.fixture
def idp_metadata_file(tmp_path: Path) -> Path:
    pair = key_pair(tmp_path, "idp")
    path = tmp_path / "idp-metadata.xml"
    path.write_bytes(idp_xml(signing=(pair,)))
    return path


async def test_saml_connection_from_metadata_serves_sp_metadata(
    database_url: str,
    client: TestClient[Any, Any],
    tenant: TenantAccess,
    idp_metadata_file: Path,
) -> None:
    slug = tenant.slug
    added = await _cli(
        database_url,
        "connection", "add", slug, "okta", "--type", "saml",
        "--metadata-file", str(idp_metadata_file), "--json",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    shown = json.loads(added.output)
    root = f"https://idgate.example/sso/{slug}/okta"
    assert shown["entity_id"] == shown["metadata_url"] == f"{root}/metadata"
    assert (shown["acs_url"], shown["login_url"]) == (f"{root}/acs", f"{root}/login")
    assert (shown["idp_entity_id"], shown["idp_sso_url"]) == (IDP, SSO_REDIRECT)
    assert (shown["jit"], shown["idp_initiated"], shown["idp_certificates"]) == (True, False, 1)
    again = await _cli(
        database_url, "connection", "add", slug, "okta", "--type", "saml",
        "--metadata-file", str(idp_metadata_file),
    )  # fmt: skip
    assert again.exit_code == 1 and "already has a connection" in again.output
    show = await _cli(database_url, "connection", "show", slug, "okta", "--json")
    assert json.loads(show.output) == shown
    assert "PRIVATE KEY" not in show.output

    resp = await client.get(f"/sso/{slug}/okta/metadata")
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "application/samlmetadata+xml; charset=utf-8"
    document = etree.fromstring(await resp.read())
    # The app's public URL in the tests is http://scim.test.
    assert document.get("entityID") == f"http://scim.test/sso/{slug}/okta/metadata"
    acs = document.find(f".//{{{MD}}}AssertionConsumerService")
    assert acs is not None and acs.get("Location") == f"http://scim.test/sso/{slug}/okta/acs"
    assert (await client.get(f"/sso/{slug}/nope/metadata")).status == 404
    assert (await client.get("/sso/no-such-tenant/okta/metadata")).status == 404

    removed = await _cli(database_url, "connection", "remove", slug, "okta")
    assert removed.exit_code == 0, removed.output
    assert (await client.get(f"/sso/{slug}/okta/metadata")).status == 404


@pytest.fixture
def idp_metadata(idp_metadata_file: Path) -> bytes:
    return idp_metadata_file.read_bytes()


async def test_saml_connection_from_a_metadata_url(
    database_url: str,
    aiohttp_server: Any,
    tenant: TenantAccess,
    idp_metadata: bytes,
    tmp_path: Path,
) -> None:
    served = {"document": idp_metadata}

    async def metadata(_request: web.Request) -> web.Response:
        return web.Response(body=served["document"], content_type="text/xml")

    app = web.Application()
    app.router.add_get("/metadata", metadata)
    server = await aiohttp_server(app)
    url = f"http://127.0.0.1:{server.port}/metadata"
    added = await _cli(
        database_url, "connection", "add", tenant.slug, "entra", "--type", "saml",
        "--metadata-url", url, "--no-jit", "--idp-initiated", "--json",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    shown = json.loads(added.output)
    assert (shown["idp_entity_id"], shown["jit"], shown["idp_initiated"]) == (IDP, False, True)
    bad = await _cli(
        database_url, "connection", "add", tenant.slug, "other", "--type", "saml",
        "--metadata-url", f"http://127.0.0.1:{server.port}/missing",
    )  # fmt: skip
    assert bad.exit_code == 1 and "could not fetch" in bad.output

    # The IdP adds a second signing certificate (a rotation): refresh trusts both.
    old, new = key_pair(tmp_path, "old"), key_pair(tmp_path, "new")
    served["document"] = idp_xml(signing=(old, new))
    refreshed = await _cli(database_url, "connection", "refresh", tenant.slug, "entra")
    assert refreshed.exit_code == 0, refreshed.output
    assert "2 signing certificate(s), 2 new, 1 no longer trusted" in refreshed.output
    show = await _cli(database_url, "connection", "show", tenant.slug, "entra", "--json")
    assert json.loads(show.output)["idp_certificates"] == 2
    no_url = await _cli(database_url, "connection", "refresh", tenant.slug, "missing")
    assert no_url.exit_code == 1


async def test_oidc_connection_keeps_its_secret_to_itself(
    database_url: str, client: TestClient[Any, Any], tenant: TenantAccess
) -> None:
    added = await _cli(
        database_url, "connection", "add", tenant.slug, "google", "--type", "oidc",
        "--issuer", "https://accounts.example", "--client-id", "cid",
        "--client-secret", "s3cr3t-value", "--json",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    shown = json.loads(added.output)
    assert shown["redirect_uri"] == f"https://idgate.example/sso/{tenant.slug}/google/callback"
    assert (shown["issuer"], shown["client_id"]) == ("https://accounts.example", "cid")
    assert shown["scopes"] == ["openid", "email", "profile"]
    listed = await _cli(database_url, "connection", "list", tenant.slug, "--json")
    assert [c["name"] for c in json.loads(listed.output)] == ["google"]
    assert "s3cr3t-value" not in added.output + listed.output
    # An OIDC connection has no SAML metadata.
    assert (await client.get(f"/sso/{tenant.slug}/google/metadata")).status == 404
    incomplete = await _cli(
        database_url, "connection", "add", tenant.slug, "x", "--type", "oidc",
        "--issuer", "https://accounts.example",
    )  # fmt: skip
    assert incomplete.exit_code == 1 and "--client-id" in incomplete.output


async def test_bad_connections_are_refused_with_a_reason(
    database_url: str, tenant: TenantAccess, tmp_path: Path, idp_metadata_file: Path
) -> None:
    not_xml = tmp_path / "not.xml"
    not_xml.write_text("hello")
    cases = [
        (["Bad Name", "--type", "saml", "--metadata-file", str(idp_metadata_file)], "name"),
        (["x", "--type", "saml", "--metadata-file", str(not_xml)], "XML"),
        (["x", "--type", "saml"], "--metadata-url"),
        (["x", "--type", "saml", "--entity-id", IDP], "--sso-url"),
    ]
    for args, reason in cases:
        result = await _cli(database_url, "connection", "add", tenant.slug, *args)
        assert result.exit_code == 1 and reason in result.output, (args, result.output)
    listed = await _cli(database_url, "connection", "list", tenant.slug)
    assert listed.output == ""


async def test_domains_and_return_urls(
    database_url: str, tenant: TenantAccess, other_tenant: TenantAccess
) -> None:
    # Domains are unique across tenants (and tests share a database): one of this test's own.
    domain = f"{tenant.slug}.example"
    added = await _cli(database_url, "domain", "add", tenant.slug, domain.upper())
    assert added.exit_code == 0 and domain in added.output
    taken = await _cli(database_url, "domain", "add", other_tenant.slug, domain)
    assert taken.exit_code == 1 and "already belongs" in taken.output
    assert (await _cli(database_url, "domain", "add", tenant.slug, "not a domain")).exit_code == 1
    listed = await _cli(database_url, "domain", "list", tenant.slug)
    assert listed.output.split() == [domain]
    assert (await _cli(database_url, "domain", "remove", tenant.slug, domain)).exit_code == 0
    assert (await _cli(database_url, "domain", "list", tenant.slug)).output == ""

    url = "https://app.corp.example/after-login"
    assert (await _cli(database_url, "return-url", "add", tenant.slug, url)).exit_code == 0
    clear = await _cli(database_url, "return-url", "add", tenant.slug, "http://app.corp.example/")
    assert clear.exit_code == 1 and "https" in clear.output
    listed = await _cli(database_url, "return-url", "list", tenant.slug)
    assert listed.output.split() == [url]


async def test_connections_from_a_json_file(
    database_url: str, tenant: TenantAccess, tmp_path: Path, idp_metadata_file: Path
) -> None:
    config = tmp_path / "connections.json"
    config.write_text(
        json.dumps(
            [
                {"name": "okta", "type": "saml", "metadata_file": idp_metadata_file.name,
                 "idp_initiated": True},
                {"name": "google", "type": "oidc", "issuer": "https://accounts.example",
                 "client_id": "cid", "client_secret": "secret", "scopes": ["openid", "email"],
                 "jit": False},
                {"name": "broken", "type": "saml", "metadata_file": "missing.xml"},
                {"name": "odd", "type": "oidc", "colour": "blue"},
            ]
        )
    )  # fmt: skip
    result = await _cli(database_url, "connection", "import", tenant.slug, str(config))
    assert result.exit_code == 1 and "2 of 4 connection(s) refused" in result.output
    assert "broken: refused: cannot read" in result.output
    assert "odd: refused: needs name and type; unknown keys: colour" in result.output
    listed = json.loads(
        (await _cli(database_url, "connection", "list", tenant.slug, "--json")).output
    )
    by_name = {c["name"]: c for c in listed}
    assert set(by_name) == {"google", "okta"}
    assert by_name["okta"]["idp_initiated"] is True and by_name["okta"]["idp_entity_id"] == IDP
    assert by_name["google"]["jit"] is False and by_name["google"]["scopes"] == ["openid", "email"]
