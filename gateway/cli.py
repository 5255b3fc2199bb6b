"""The `idgate` command line."""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import multiprocessing
import os
import signal
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import click
from aiohttp import web

from gateway.access import Access
from gateway.app import create_app, utc_now
from gateway.cli_access import audit, group_add_member, mapping, project, role, user
from gateway.cli_base import Context, _run, _tenant, _with_store
from gateway.cli_events import api_key, events, webhook
from gateway.cli_owner import owner
from gateway.credentials import new_token
from gateway.settings import Settings
from scim.errors import ConflictError, ScimError
from sso import saml, tokens
from sso.connections import (
    DEFAULT_OIDC_SCOPES,
    SAML,
    TYPES,
    check_domain,
    check_name,
    check_url,
    connection_urls,
    oidc_settings,
)
from storage import migrate as migrations
from storage.access_store import AccessStore
from storage.admin_store import AdminStore
from storage.database import create_engine
from storage.key_store import KeyStore, SigningKey
from storage.request_log import RequestLogStore
from storage.scim_store import DELETE_POLICIES, KEEP_DELETED_DAYS, ScimStore, Tenant
from storage.sso_store import SsoStore, TenantValues

DEMO_TENANT = "demo"
DEMO_TOKEN_NAME = "demo"


def scim_base_url(settings: Settings, slug: str) -> str:
    return f"{settings.base_url}/scim/v2/{slug}"


@click.group()
@click.option(
    "--config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="TOML settings file (also IDGATE_CONFIG). Environment variables IDGATE_* override it.",
)
@click.pass_context
def main(ctx: click.Context, config: Path | None) -> None:
    """idgate: SCIM 2.0 provisioning and SSO gateway for multi-tenant products."""
    ctx.obj = Context(config)


@main.command()
@click.pass_obj
def migrate(obj: Context) -> None:
    """Apply database migrations (the embedded database is migrated on every start)."""
    settings = obj.settings
    if not obj.embedded:
        assert settings.database_url is not None
        _run(migrations.upgrade(settings.database_url))
    click.echo(f"database at revision {migrations.head_revision()}")


# --- tenants ----------------------------------------------------------------------------------


@main.group()
def tenant() -> None:
    """Manage tenants (organisations)."""


@tenant.command("create")
@click.argument("slug")
@click.option("--name", help="Display name (defaults to the slug).")
@click.pass_obj
def tenant_create(obj: Context, slug: str, name: str | None) -> None:
    """Create a tenant with URL-safe SLUG."""
    if not slug.replace("-", "").replace("_", "").isalnum() or not slug.isascii():
        raise click.ClickException("a slug holds only letters, digits, '-' and '_'")
    settings = obj.settings

    async def work(store: ScimStore) -> Tenant:
        try:
            return await store.create_tenant(slug, name or slug, utc_now())
        except ConflictError as exc:
            raise click.ClickException(exc.detail) from None

    created = _run(_with_store(settings, work))
    click.echo(f"tenant {created.slug} created; SCIM base URL {scim_base_url(settings, slug)}")


@tenant.command("list")
@click.pass_obj
def tenant_list(obj: Context) -> None:
    """List tenants."""
    for t in _run(_with_store(obj.settings, lambda s: s.list_tenants())):
        click.echo(f"{t.slug}\t{t.name}\t{t.created_at.isoformat()}")


@tenant.command("set")
@click.argument("slug")
@click.option(
    "--session-idle-minutes",
    type=click.FloatRange(min=0),
    help="Login sessions end after this long without a request (0: the gateway's default).",
)
@click.option(
    "--session-lifetime-hours",
    type=click.FloatRange(min=0),
    help="Login sessions end this long after the login (0: the gateway's default).",
)
@click.option(
    "--delete-policy",
    type=click.Choice(DELETE_POLICIES),
    help="What a SCIM DELETE of a user does: soft (the default: kept apart, then purged) "
    "or hard (gone at once).",
)
@click.option(
    "--keep-deleted-days",
    type=click.IntRange(min=0, max=3650),
    help=f"How long soft-deleted users are kept (0: the default, {KEEP_DELETED_DAYS}).",
)
@click.option(
    "--admin-overrides/--no-admin-overrides",
    default=None,
    help="Whether the admin API may change the name and e-mail of users the IdP manages.",
)
@click.option(
    "--reseller",
    help="The tenant (slug) this one depends on: its admins manage this one's users. "
    "An empty value removes it.",
)
@click.pass_obj
def tenant_set(
    obj: Context,
    slug: str,
    session_idle_minutes: float | None,
    session_lifetime_hours: float | None,
    delete_policy: str | None,
    keep_deleted_days: int | None,
    admin_overrides: bool | None,
    reseller: str | None,
) -> None:
    """Set tenant SLUG's own values for the settings above; print them all."""
    given = {
        "session_idle_minutes": session_idle_minutes,
        "session_lifetime_hours": session_lifetime_hours,
        "delete_policy": delete_policy,
        "keep_deleted_days": keep_deleted_days,
        "admin_overrides": admin_overrides,
    }
    changes = {key: (value or None) for key, value in given.items() if value is not None}

    async def work(store: ScimStore) -> Any:
        try:
            if reseller is not None:
                await AdminStore(store.engine).set_parent(slug, reseller or None)
        except ScimError as exc:
            raise click.ClickException(exc.detail) from None
        if not await store.update_tenant_settings(slug, changes):
            raise click.ClickException(f"no tenant {slug!r}")
        return await store.get_tenant(slug)

    updated = _run(_with_store(obj.settings, work))
    click.echo(json.dumps(updated.settings, sort_keys=True))


# --- SCIM tokens ------------------------------------------------------------------------------


async def _create_token(
    store: ScimStore, slug: str, name: str, connection_name: str | None = None
) -> tuple[str, str]:
    tenant = await _tenant(store, slug)
    connection_id = None
    if connection_name is not None:
        found = await SsoStore(store.engine).get_connection(tenant.id, connection_name)
        if found is None:
            raise click.ClickException(f"no connection {connection_name!r} in {slug}")
        connection_id = found.id
    token_id, secret, secret_hash = new_token()
    await store.create_token(tenant, token_id, name, secret_hash, utc_now(), connection_id)
    return token_id, secret


@main.group()
def token() -> None:
    """Manage SCIM bearer tokens. Several may be active at once, for rotation."""


@token.command("create")
@click.argument("slug")
@click.option("--name", default="scim", show_default=True, help="A label for the token.")
@click.option(
    "--connection",
    help="The SSO connection whose IdP pushes through this token: no other connection "
    "trusting its IdP's e-mail may take over the users it creates.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (token, scim_base_url, ...).")
@click.pass_obj
def token_create(obj: Context, slug: str, name: str, connection: str | None, as_json: bool) -> None:
    """Create a SCIM token for tenant SLUG. The secret is shown once, stored hashed."""
    settings = obj.settings
    token_id, secret = _run(
        _with_store(settings, lambda s: _create_token(s, slug, name, connection))
    )
    base = scim_base_url(settings, slug)
    if as_json:
        payload = {"id": token_id, "name": name, "token": secret, "scim_base_url": base}
        click.echo(json.dumps(payload))
    else:
        click.echo(f"token id:      {token_id}\nSCIM base URL: {base}\nbearer token:  {secret}")
        click.echo("The token is shown only now; store it in the IdP's provisioning settings.")


@token.command("list")
@click.argument("slug")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def token_list(obj: Context, slug: str, as_json: bool) -> None:
    """List tenant SLUG's tokens (never their secrets)."""

    async def work(store: ScimStore) -> Any:
        return await store.list_tokens(await _tenant(store, slug))

    records = _run(_with_store(obj.settings, work))

    def iso(when: datetime | None) -> str | None:
        return when.isoformat() if when else None

    rows = [
        {
            "id": r.id,
            "name": r.name,
            "created_at": iso(r.created_at),
            "last_used_at": iso(r.last_used_at),
            "revoked_at": iso(r.revoked_at),
        }
        for r in records
    ]
    if as_json:
        click.echo(json.dumps(rows))
        return
    for row in rows:
        state = "revoked" if row["revoked_at"] else "active"
        click.echo(f"{row['id']}\t{row['name']}\t{state}\tlast used {row['last_used_at']}")


@token.command("revoke")
@click.argument("slug")
@click.argument("token_id")
@click.pass_obj
def token_revoke(obj: Context, slug: str, token_id: str) -> None:
    """Revoke TOKEN_ID of tenant SLUG; requests with it fail from now on."""

    async def work(store: ScimStore) -> bool:
        return await store.revoke_token(await _tenant(store, slug), token_id, utc_now())

    if not _run(_with_store(obj.settings, work)):
        raise click.ClickException(f"no active token {token_id} in tenant {slug}")
    click.echo(f"token {token_id} revoked")


# --- product groups ---------------------------------------------------------------------------


@main.group("group")
def group_() -> None:
    """Manage groups made in the product. SCIM neither sees nor joins them."""


@group_.command("create")
@click.argument("slug")
@click.argument("name")
@click.pass_obj
def group_create(obj: Context, slug: str, name: str) -> None:
    """Create group NAME in tenant SLUG. A SCIM client that later pushes a group of the same
    name is refused (409), so IdP group names never grant what this group grants."""
    if not name.strip():
        raise click.ClickException("a group name may not be empty")

    async def work(store: ScimStore) -> Any:
        tenant = await _tenant(store, slug)
        try:
            return await store.create_product_group(tenant.id, name, utc_now())
        except ConflictError as exc:
            raise click.ClickException(exc.detail) from None

    created = _run(_with_store(obj.settings, work))
    click.echo(f"group {created.name!r} created in {slug} (id {created.id})")


@group_.command("list")
@click.argument("slug")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def group_list(obj: Context, slug: str, as_json: bool) -> None:
    """List the groups made in the product for tenant SLUG."""

    async def work(store: ScimStore) -> Any:
        return await store.list_product_groups((await _tenant(store, slug)).id)

    found = _run(_with_store(obj.settings, work))
    rows = [
        {"id": str(g.id), "name": g.name, "created_at": g.created_at.isoformat()} for g in found
    ]
    if as_json:
        click.echo(json.dumps(rows))
        return
    for row in rows:
        click.echo(f"{row['id']}\t{row['name']}\t{row['created_at']}")


# --- SSO connections, domains, return URLs ------------------------------------------------------


def _fetch(url: str) -> bytes:
    """An IdP's metadata document from its URL."""
    check_url(url, "the metadata URL")
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            body: bytes = response.read(5 * 2**20 + 1)
    except urllib.error.HTTPError as exc:
        exc.close()  # it holds the connection
        raise click.ClickException(f"could not fetch {url}: {exc}") from None
    except OSError as exc:
        raise click.ClickException(f"could not fetch {url}: {exc}") from None
    if len(body) > 5 * 2**20:
        raise click.ClickException(f"{url} is larger than 5 MiB; is it SAML metadata?")
    return body


def _saml_side(
    name: str,
    metadata_url: str | None,
    metadata_file: Path | None,
    entity: str | None,
    entity_id: str | None,
    sso_url: str | None,
    certificates: tuple[Path, ...],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The stored settings and secrets of a new SAML connection (our key pair is new)."""
    sources = [x for x in (metadata_url, metadata_file, entity_id) if x]
    if len(sources) != 1:
        raise click.ClickException(
            "give the IdP as one of --metadata-url, --metadata-file, or --entity-id with "
            "--sso-url and --certificate"
        )
    try:
        if metadata_url or metadata_file:
            xml = _fetch(metadata_url) if metadata_url else Path(metadata_file or "").read_bytes()
            idp = saml.parse_idp_metadata(xml, entity)
        else:
            if not sso_url or not certificates:
                raise click.ClickException("--entity-id needs --sso-url and --certificate")
            pems = [path.read_text() for path in certificates]
            idp = saml.idp_from_fields(entity_id or "", sso_url, pems)
    except OSError as exc:
        raise click.ClickException(f"cannot read {exc.filename}: {exc.strerror}") from None
    key = saml.new_sp_key(f"idgate {name}", utc_now())
    settings = {"idp": dataclasses.asdict(idp), "sp_certificate": key.certificate_pem}
    if metadata_url:
        settings["metadata_url"] = metadata_url  # for `idgate connection refresh`
        if entity:
            settings["metadata_entity"] = entity
    return settings, {"sp_private_key": key.private_key_pem}


def _connection_json(settings: Settings, slug: str, found: Any) -> dict[str, Any]:
    urls = connection_urls(settings.base_url, slug, found.name)
    shown: dict[str, Any] = {
        "tenant": slug,
        "name": found.name,
        "type": found.type,
        "jit": found.jit,
        "idp_initiated": found.idp_initiated,
        "trust_email": found.settings.get("trust_email", False),
        "login_url": urls.login_url,
    }
    if found.type == SAML:
        shown |= {
            "entity_id": urls.entity_id,
            "acs_url": urls.acs_url,
            "metadata_url": urls.metadata_url,
            "idp_entity_id": found.settings["idp"]["entity_id"],
            "idp_sso_url": found.settings["idp"]["sso_url"],
            "idp_certificates": len(found.settings["idp"]["certificates"]),
            "update_profile": found.settings.get("update_profile", True),
        }
    else:
        shown |= {"redirect_uri": urls.redirect_uri} | found.settings
    return shown


@main.group()
def connection() -> None:
    """Manage a tenant's SSO connections (SAML 2.0, OpenID Connect)."""


@connection.command("add")
@click.argument("slug")
@click.argument("name")
@click.option("--type", "kind", type=click.Choice(TYPES), required=True)
@click.option("--metadata-url", help="SAML: the IdP's metadata URL.")
@click.option(
    "--metadata-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="SAML: the IdP's metadata as a file.",
)
@click.option("--entity", help="SAML: which IdP, when the metadata describes several.")
@click.option("--entity-id", help="SAML without metadata: the IdP's entity ID.")
@click.option("--sso-url", help="SAML without metadata: the IdP's single sign-on URL.")
@click.option(
    "--certificate",
    "certificates",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="SAML without metadata: an IdP signing certificate (PEM); repeat for rotation.",
)
@click.option("--issuer", help="OIDC: the issuer URL (its discovery document is used).")
@click.option("--client-id", help="OIDC: the client id registered at the IdP.")
@click.option("--client-secret", help="OIDC: the client secret.")
@click.option("--scopes", default=" ".join(DEFAULT_OIDC_SCOPES), show_default=True)
@click.option("--jit/--no-jit", default=True, show_default=True, help="Create unknown users.")
@click.option(
    "--update-profile/--keep-profile",
    default=True,
    show_default=True,
    help="Update users a login created from the attributes of each later login.",
)
@click.option("--idp-initiated", is_flag=True, help="SAML: accept IdP-initiated logins.")
@click.option(
    "--trust-email",
    is_flag=True,
    help="Link a first login to the existing account with its e-mail (if no other "
    "connection manages it); off: such a login is refused.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON, as `connection show`.")
@click.pass_obj
def connection_add(
    obj: Context,
    slug: str,
    name: str,
    kind: str,
    metadata_url: str | None,
    metadata_file: Path | None,
    entity: str | None,
    entity_id: str | None,
    sso_url: str | None,
    certificates: tuple[Path, ...],
    issuer: str | None,
    client_id: str | None,
    client_secret: str | None,
    scopes: str,
    jit: bool,
    update_profile: bool,
    idp_initiated: bool,
    trust_email: bool,
    as_json: bool,
) -> None:
    """Add connection NAME to tenant SLUG; print the URLs to give the IdP."""
    try:
        check_name(name)
        if kind == SAML:
            public, secrets = _saml_side(
                name, metadata_url, metadata_file, entity, entity_id, sso_url, certificates
            )
        else:
            if idp_initiated:
                raise click.ClickException("--idp-initiated is for SAML connections")
            if not (issuer and client_id and client_secret):
                raise click.ClickException("OIDC needs --issuer, --client-id and --client-secret")
            public = oidc_settings(issuer, client_id, tuple(scopes.split()))
            secrets = {"client_secret": client_secret}
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    public["update_profile"] = update_profile
    public["trust_email"] = trust_email

    async def work(store: ScimStore) -> Any:
        tenant = await _tenant(store, slug)
        try:
            return await SsoStore(store.engine).add_connection(
                tenant.id,
                name,
                kind,
                public,
                secrets,
                jit=jit,
                idp_initiated=idp_initiated,
                now=utc_now(),
            )
        except ConflictError as exc:
            raise click.ClickException(exc.detail) from None

    added = _run(_with_store(obj.settings, work))
    _print_connection(_connection_json(obj.settings, slug, added), as_json)


_IMPORT_KEYS = {
    "name", "type", "metadata_url", "metadata_file", "entity", "entity_id", "sso_url",
    "certificates", "issuer", "client_id", "client_secret", "scopes", "jit", "update_profile",
    "idp_initiated", "trust_email",
}  # fmt: skip


@connection.command("import")
@click.argument("slug")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_context
def connection_import(ctx: click.Context, slug: str, file: Path) -> None:
    """Add the connections a JSON file describes to tenant SLUG: a list of objects whose keys
    are `connection add`'s options (name, type, metadata_url, metadata_file, entity,
    entity_id, sso_url, certificates, issuer, client_id, client_secret, scopes, jit,
    update_profile, idp_initiated, trust_email); file paths are relative to FILE. Each is
    added or refused on its own; the command fails if any is refused."""
    try:
        entries = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"{file}: {exc}") from None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise click.ClickException(f"{file}: expected a JSON list of objects")
    refused = 0
    for number, entry in enumerate(entries, 1):
        label = f"{file.name}[{number}] {entry.get('name', '?')}"
        unknown = set(entry) - _IMPORT_KEYS
        try:
            if unknown or "name" not in entry or "type" not in entry:
                raise click.ClickException(
                    f"needs name and type; unknown keys: {', '.join(sorted(unknown)) or 'none'}"
                )

            def path(value: str) -> Path:
                return (file.parent / value).resolve()

            scopes = entry.get("scopes", list(DEFAULT_OIDC_SCOPES))
            ctx.invoke(
                connection_add,
                slug=slug,
                name=entry["name"],
                kind=entry["type"],
                metadata_url=entry.get("metadata_url"),
                metadata_file=path(entry["metadata_file"]) if "metadata_file" in entry else None,
                entity=entry.get("entity"),
                entity_id=entry.get("entity_id"),
                sso_url=entry.get("sso_url"),
                certificates=tuple(path(c) for c in entry.get("certificates", ())),
                issuer=entry.get("issuer"),
                client_id=entry.get("client_id"),
                client_secret=entry.get("client_secret"),
                scopes=" ".join(scopes) if isinstance(scopes, list) else str(scopes),
                jit=bool(entry.get("jit", True)),
                update_profile=bool(entry.get("update_profile", True)),
                idp_initiated=bool(entry.get("idp_initiated", False)),
                trust_email=bool(entry.get("trust_email", False)),
                as_json=True,
            )
        except click.ClickException as exc:
            refused += 1
            click.echo(f"{label}: refused: {exc.message}", err=True)
    if refused:
        raise click.ClickException(f"{refused} of {len(entries)} connection(s) refused")


def _print_connection(shown: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(shown))
        return
    width = max(len(k) for k in shown)
    for key, value in shown.items():
        click.echo(f"{key + ':':{width + 1}} {value}")


@connection.command("show")
@click.argument("slug")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def connection_show(obj: Context, slug: str, name: str, as_json: bool) -> None:
    """Show connection NAME of tenant SLUG (never its secrets)."""

    async def work(store: ScimStore) -> Any:
        return await SsoStore(store.engine).get_connection((await _tenant(store, slug)).id, name)

    found = _run(_with_store(obj.settings, work))
    if found is None:
        raise click.ClickException(f"tenant {slug} has no connection {name!r}")
    _print_connection(_connection_json(obj.settings, slug, found), as_json)


@connection.command("list")
@click.argument("slug")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def connection_list(obj: Context, slug: str, as_json: bool) -> None:
    """List tenant SLUG's connections."""

    async def work(store: ScimStore) -> Any:
        return await SsoStore(store.engine).list_connections((await _tenant(store, slug)).id)

    shown = [_connection_json(obj.settings, slug, c) for c in _run(_with_store(obj.settings, work))]
    if as_json:
        click.echo(json.dumps(shown))
        return
    for item in shown:
        click.echo(f"{item['name']}\t{item['type']}\t{item['login_url']}")


@connection.command("refresh")
@click.argument("slug")
@click.argument("name")
@click.pass_obj
def connection_refresh(obj: Context, slug: str, name: str) -> None:
    """Fetch SAML connection NAME's IdP metadata again from its URL (after the IdP rotated its
    signing certificate, say); logins use the new certificates at once."""

    async def load(store: ScimStore) -> Any:
        tenant = await _tenant(store, slug)
        return tenant, await SsoStore(store.engine).get_connection(tenant.id, name)

    tenant, found = _run(_with_store(obj.settings, load))
    url = found.settings.get("metadata_url") if found is not None else None
    if found is None or found.type != SAML or not url:
        raise click.ClickException(
            f"tenant {slug} has no SAML connection {name!r} with a metadata URL"
        )
    try:
        idp = saml.parse_idp_metadata(_fetch(url), found.settings.get("metadata_entity"))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    before = set(found.settings["idp"]["certificates"])
    settings = found.settings | {"idp": dataclasses.asdict(idp)}

    async def save(store: ScimStore) -> None:
        await SsoStore(store.engine).update_settings(tenant.id, name, settings, utc_now())

    _run(_with_store(obj.settings, save))
    after = set(idp.certificates)
    click.echo(
        f"connection {name}: {len(after)} signing certificate(s), "
        f"{len(after - before)} new, {len(before - after)} no longer trusted"
    )


@connection.command("remove")
@click.argument("slug")
@click.argument("name")
@click.pass_obj
def connection_remove(obj: Context, slug: str, name: str) -> None:
    """Remove connection NAME of tenant SLUG; logins through it stop at once, and what the
    mapping rules gave from its logins' claims is taken back."""

    async def work(store: ScimStore) -> bool:
        tenant = await _tenant(store, slug)
        linked = await SsoStore(store.engine).remove_connection(tenant.id, name)
        if linked is None:
            return False
        await Access(AccessStore(store.engine), utc_now).recompute(tenant.id, linked, "cli")
        return True

    if not _run(_with_store(obj.settings, work)):
        raise click.ClickException(f"tenant {slug} has no connection {name!r}")
    click.echo(f"connection {name} removed")


def _tenant_values(
    group: click.Group, noun: str, check: Callable[[str], str], values: Callable[[SsoStore], Any]
) -> None:
    """`add`, `list` and `remove` commands for a tenant's list of `noun`s, kept in the
    `TenantValues` that `values(store)` gives."""

    async def on(store: ScimStore, slug: str) -> tuple[Tenant, TenantValues]:
        return await _tenant(store, slug), values(SsoStore(store.engine))

    @group.command("add")
    @click.argument("slug")
    @click.argument("value")
    @click.pass_obj
    def add_value(obj: Context, slug: str, value: str) -> None:
        try:
            checked = check(value)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None

        async def work(store: ScimStore) -> None:
            tenant, kept = await on(store, slug)
            try:
                await kept.add(tenant.id, checked, utc_now())
            except ConflictError as exc:
                raise click.ClickException(exc.detail) from None

        _run(_with_store(obj.settings, work))
        click.echo(f"{noun} {checked} added to {slug}")

    @group.command("list")
    @click.argument("slug")
    @click.pass_obj
    def list_values(obj: Context, slug: str) -> None:
        async def work(store: ScimStore) -> list[str]:
            tenant, kept = await on(store, slug)
            return await kept.list(tenant.id)

        for value in _run(_with_store(obj.settings, work)):
            click.echo(value)

    @group.command("remove")
    @click.argument("slug")
    @click.argument("value")
    @click.pass_obj
    def remove_value(obj: Context, slug: str, value: str) -> None:
        # As it was stored (a domain lower-cased); a value that cannot have been stored is
        # looked for as given, and reported absent.
        with contextlib.suppress(ValueError):
            value = check(value)

        async def work(store: ScimStore) -> bool:
            tenant, kept = await on(store, slug)
            return await kept.remove(tenant.id, value)

        if not _run(_with_store(obj.settings, work)):
            raise click.ClickException(f"tenant {slug} has no {noun} {value}")
        click.echo(f"{noun} {value} removed from {slug}")

    add_value.help = f"Add a {noun} to tenant SLUG."
    list_values.help = f"List tenant SLUG's {noun}s."
    remove_value.help = f"Remove a {noun} from tenant SLUG."


@main.group()
def domain() -> None:
    """A tenant's e-mail domains: `/sso/login?email=...` finds the tenant by them."""


@main.group("return-url")
def return_url() -> None:
    """URLs a login may send the browser back to (`return_to`, RelayState)."""


_tenant_values(domain, "domain", check_domain, lambda store: store.domains)
_tenant_values(
    return_url,
    "return URL",
    lambda url: check_url(url, "a return URL"),
    lambda store: store.return_urls,
)


# --- identity token keys ------------------------------------------------------------------------


@main.group()
def keys() -> None:
    """The keys that sign the identity tokens of /auth/token (published at
    /.well-known/jwks.json)."""


@keys.command("rotate")
@click.option(
    "--grace-hours",
    default=24.0,
    show_default=True,
    help="Keys superseded longer ago than this are no longer published.",
)
@click.pass_obj
def keys_rotate(obj: Context, grace_hours: float) -> None:
    """Add a new signing key (every process signs with it within a minute) and stop
    publishing keys superseded for longer than the grace period."""

    async def work(store: ScimStore) -> tuple[str, int]:
        key_store, now = KeyStore(store.engine), utc_now()
        kid, pem = tokens.new_key()
        await key_store.add(SigningKey(kid, pem, now))
        return kid, await key_store.prune(now, timedelta(hours=grace_hours))

    kid, pruned = _run(_with_store(obj.settings, work))
    click.echo(f"new signing key {kid}; {pruned} old key(s) no longer published")


# --- SCIM request log -------------------------------------------------------------------------


@main.command("scim-log")
@click.argument("slug")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--errors", is_flag=True, help="Only requests answered with a status >= 400.")
@click.option("--method", help="Only this HTTP method (GET, POST, PUT, PATCH, DELETE).")
@click.option("--bodies", is_flag=True, help="Also print the (redacted) bodies.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines, bodies included.")
@click.pass_obj
def scim_log(
    obj: Context,
    slug: str,
    limit: int,
    errors: bool,
    method: str | None,
    bodies: bool,
    as_json: bool,
) -> None:
    """Tenant SLUG's latest SCIM requests, newest first: what the IdP sent, what it got."""

    async def work(store: ScimStore) -> Any:
        tenant = await _tenant(store, slug)
        return await RequestLogStore(store.engine).recent(
            tenant.id, limit, min_status=400 if errors else 0, method=method
        )

    for entry in _run(_with_store(obj.settings, work)):
        if as_json:
            row = {k: v for k, v in vars(entry).items() if k != "tenant_id"}
            row["at"] = entry.at.isoformat()
            click.echo(json.dumps(row))
            continue
        click.echo(
            f"{entry.at.isoformat()}  {entry.status}  {entry.method:6} {entry.path}  "
            f"{entry.duration_ms:.1f} ms  {entry.token_id}  {entry.user_agent or '-'}"
        )
        if bodies:
            click.echo(f"  > {entry.request_body or ''}\n  < {entry.response_body or ''}")


# --- serving ----------------------------------------------------------------------------------


async def _ensure_demo(store: ScimStore) -> str:
    tenant = await store.get_tenant(DEMO_TENANT)
    if tenant is None:
        tenant = await store.create_tenant(DEMO_TENANT, "Demo organisation", utc_now())
    await store.revoke_tokens_named(tenant, DEMO_TOKEN_NAME, utc_now())
    _token_id, secret = await _create_token(store, DEMO_TENANT, DEMO_TOKEN_NAME)
    return secret


async def _freeze_heap(_app: web.Application) -> None:
    # Everything allocated at start-up lives as long as the process: move it out of the
    # collector's generations so that full collections stay short (request tail latency).
    gc.collect()
    gc.freeze()


def _serve_one(settings: Settings, reuse_port: bool) -> None:
    app = create_app(settings)
    app.on_startup.append(_freeze_heap)
    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        reuse_port=reuse_port,
        print=None,
        access_log=None,
    )


async def _check_revision(settings: Settings) -> None:
    assert settings.database_url is not None
    engine = create_engine(settings.database_url, pool_size=1)
    try:
        current = await migrations.current_revision(engine)
    finally:
        await engine.dispose()
    if current != migrations.head_revision():
        raise click.ClickException(
            f"database is at revision {current}, code expects {migrations.head_revision()}: "
            "run `idgate migrate`"
        )


@main.command()
@click.option("--host", help="Listen address (default from settings: 127.0.0.1).")
@click.option("--port", type=int, help="Listen port (default from settings: 8000).")
@click.option("--workers", type=int, help="Worker processes sharing the port (default 1).")
@click.pass_obj
def serve(obj: Context, host: str | None, port: int | None, workers: int | None) -> None:
    """Run the gateway. With no database URL, on an embedded PostgreSQL with a demo tenant."""
    updates = {k: v for k, v in (("host", host), ("port", port), ("workers", workers)) if v}
    settings = obj.settings.model_copy(update=updates)
    _run(_check_revision(settings))
    if obj.embedded:
        secret = _run(_with_store(settings, _ensure_demo))
        click.echo(
            f"Embedded PostgreSQL in {settings.data_dir}; demo tenant '{DEMO_TENANT}'.\n"
            f"SCIM base URL: {scim_base_url(settings, DEMO_TENANT)}\n"
            f"Bearer token:  {secret}\n"
            f"Try: curl -H 'Authorization: Bearer {secret}' "
            f"{scim_base_url(settings, DEMO_TENANT)}/Users"
        )
    click.echo(
        f"listening on http://{settings.host}:{settings.port} ({settings.workers} worker(s))"
    )
    sys.stdout.flush()
    if settings.workers == 1:
        _serve_one(settings, reuse_port=False)
        return
    # Several processes bind the same port with SO_REUSEPORT; the kernel spreads connections.
    spawn = multiprocessing.get_context("spawn")
    procs = [
        spawn.Process(target=_serve_one, args=(settings, True), daemon=False)
        for _ in range(settings.workers)
    ]
    for proc in procs:
        proc.start()

    def stop(signum: int, _frame: Any) -> None:
        for proc in procs:
            if proc.pid is not None:
                os.kill(proc.pid, signal.SIGINT)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for proc in procs:
        proc.join()


if __name__ == "__main__":
    main()


group_.add_command(group_add_member)
main.add_command(role)
main.add_command(project)
main.add_command(mapping)
main.add_command(audit)
main.add_command(user)
main.add_command(events)
main.add_command(webhook)
main.add_command(api_key)
main.add_command(owner)
