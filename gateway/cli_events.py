"""`idgate events`, `idgate webhook` and `idgate api-key`: a tenant's events, the endpoints
they are delivered to (with their deliveries), and the API keys of `/api/v1/...`."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

import click

from gateway.admin.callers import SCOPES
from gateway.app import utc_now
from gateway.cli_base import Context, echo_json, on_tenant
from gateway.credentials import new_api_key
from gateway.webhooks import event_json, new_endpoint_id, new_secret
from sso.connections import check_url
from storage.api_key_store import ApiKeyStore
from storage.event_store import EventStore
from storage.scim_store import ScimStore, Tenant
from storage.webhook_store import DEAD, DELIVERED, PENDING, WebhookStore

T = TypeVar("T")


# --- events -----------------------------------------------------------------------------------


@click.command("events")
@click.argument("slug")
@click.option("--after", default=0, show_default=True, type=click.IntRange(0), help="Sequence.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--type", "types", multiple=True, help="Only this event type (repeatable).")
@click.pass_obj
def events(obj: Context, slug: str, after: int, limit: int, types: tuple[str, ...]) -> None:
    """Tenant SLUG's events after sequence number --after, oldest first, as JSON lines (what
    webhooks deliver and `GET /api/v1/events` returns)."""

    async def work(tenant: Tenant, store: ScimStore) -> list[Any]:
        found = await EventStore(store.engine).after(tenant.id, after, limit, types)
        return [event_json(e, tenant.slug) for e in found]

    for item in on_tenant(obj, slug, work):
        click.echo(json.dumps(item, ensure_ascii=False))


# --- webhooks ---------------------------------------------------------------------------------


@click.group()
def webhook() -> None:
    """Where a tenant's events are POSTed, signed the Standard Webhooks way (docs/events.md)."""


@webhook.command("add")
@click.argument("slug")
@click.argument("url")
@click.option("--event", "types", multiple=True, help="Only this event type (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def webhook_add(obj: Context, slug: str, url: str, types: tuple[str, ...], as_json: bool) -> None:
    """POST tenant SLUG's events from now on to URL. Prints the signing secret once."""
    try:
        check_url(url, "the webhook URL")
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    secret = new_secret()

    async def work(tenant: Tenant, store: ScimStore) -> Any:
        return await WebhookStore(store.engine).add_endpoint(
            tenant.id, new_endpoint_id(), url, types, secret, utc_now()
        )

    added = on_tenant(obj, slug, work)
    shown = {"id": added.id, "url": url, "events": list(types) or "all", "secret": secret}
    if as_json:
        echo_json(shown)
        return
    click.echo(f"endpoint id: {added.id}\nsigning secret: {secret}")
    click.echo("The secret is shown only now; give it to the receiver to verify signatures.")


@webhook.command("list")
@click.argument("slug")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def webhook_list(obj: Context, slug: str, as_json: bool) -> None:
    """Tenant SLUG's endpoints (never their secrets)."""

    async def work(tenant: Tenant, store: ScimStore) -> Any:
        return await WebhookStore(store.engine).endpoints(tenant.id)

    rows = [
        {
            "id": e.id,
            "url": e.url,
            "events": list(e.event_types) or "all",
            "enabled": e.enabled,
            "secrets": len(e.secrets),
            "cursor": e.cursor,
        }
        for e in on_tenant(obj, slug, work)
    ]
    if as_json:
        echo_json(rows)
        return
    for row in rows:
        state = "enabled" if row["enabled"] else "disabled"
        click.echo(f"{row['id']}\t{row['url']}\t{state}\t{row['events']}")


def _endpoint_command(
    name: str, help_text: str, change: Callable[[WebhookStore, Tenant, str], Awaitable[bool]]
) -> click.Command:
    @click.command(name, help=help_text)
    @click.argument("slug")
    @click.argument("endpoint_id")
    @click.pass_obj
    def command(obj: Context, slug: str, endpoint_id: str) -> None:
        async def work(tenant: Tenant, store: ScimStore) -> bool:
            return await change(WebhookStore(store.engine), tenant, endpoint_id)

        if not on_tenant(obj, slug, work):
            raise click.ClickException(f"no endpoint {endpoint_id!r} in {slug}")
        click.echo(f"{endpoint_id}: {name} done")

    return command


webhook.add_command(
    _endpoint_command(
        "remove",
        "Remove endpoint ENDPOINT_ID and its deliveries.",
        lambda s, t, e: s.remove_endpoint(t.id, e),
    )
)
webhook.add_command(
    _endpoint_command(
        "disable",
        "Stop delivering to ENDPOINT_ID (events keep queueing).",
        lambda s, t, e: s.set_enabled(t.id, e, False),
    )
)
webhook.add_command(
    _endpoint_command(
        "enable", "Deliver to ENDPOINT_ID again.", lambda s, t, e: s.set_enabled(t.id, e, True)
    )
)


@webhook.command("rotate-secret")
@click.argument("slug")
@click.argument("endpoint_id")
@click.option(
    "--overlap-hours",
    default=24.0,
    show_default=True,
    type=click.FloatRange(0),
    help="How long the secrets in use keep signing beside the new one.",
)
@click.pass_obj
def webhook_rotate(obj: Context, slug: str, endpoint_id: str, overlap_hours: float) -> None:
    """A new signing secret for ENDPOINT_ID, printed once. Deliveries carry a signature by
    each secret in use, so the receiver can switch over during the overlap."""
    secret = new_secret()

    async def work(tenant: Tenant, store: ScimStore) -> bool:
        now = utc_now()
        return await WebhookStore(store.engine).rotate_secret(
            tenant.id, endpoint_id, secret, now, now + timedelta(hours=overlap_hours)
        )

    if not on_tenant(obj, slug, work):
        raise click.ClickException(f"no endpoint {endpoint_id!r} in {slug}")
    click.echo(f"new signing secret: {secret}")


@webhook.command("deliveries")
@click.argument("slug")
@click.option("--endpoint", help="Only this endpoint.")
@click.option("--status", type=click.Choice((PENDING, DELIVERED, DEAD)))
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def webhook_deliveries(
    obj: Context, slug: str, endpoint: str | None, status: str | None, limit: int, as_json: bool
) -> None:
    """Tenant SLUG's latest deliveries: which event, to which endpoint, how it went."""

    async def work(tenant: Tenant, store: ScimStore) -> Any:
        return await WebhookStore(store.engine).deliveries(
            tenant.id, endpoint_id=endpoint, status=status, limit=limit
        )

    rows = [
        {
            "endpoint": d.endpoint_id,
            "sequence": d.seq,
            "event": d.event_id,
            "resource": d.resource,
            "status": d.status,
            "attempts": d.attempts,
            "next_attempt_at": d.next_attempt_at.isoformat(),
            "last_status": d.last_status,
            "last_error": d.last_error,
        }
        for d in on_tenant(obj, slug, work)
    ]
    if as_json:
        echo_json(rows)
        return
    for row in rows:
        why = row["last_error"] or row["last_status"] or ""
        click.echo(
            f"{row['sequence']}\t{row['event']}\t{row['endpoint']}\t{row['status']}\t"
            f"{row['attempts']}\t{why}"
        )


@webhook.command("redeliver")
@click.argument("slug")
@click.argument("endpoint_id")
@click.option("--event", "event_ids", multiple=True, help="This event (repeatable).")
@click.option("--dead", is_flag=True, help="Every dead delivery of the endpoint.")
@click.pass_obj
def webhook_redeliver(
    obj: Context, slug: str, endpoint_id: str, event_ids: tuple[str, ...], dead: bool
) -> None:
    """Send deliveries to ENDPOINT_ID again, from now, with a fresh retry schedule."""
    if not event_ids and not dead:
        raise click.UsageError("name --event EVT (repeatable) or --dead")

    async def work(tenant: Tenant, store: ScimStore) -> int:
        return await WebhookStore(store.engine).redeliver(
            tenant.id, endpoint_id, utc_now(), event_ids=event_ids, dead=dead
        )

    click.echo(f"{on_tenant(obj, slug, work)} deliveries queued again")


# --- API keys ---------------------------------------------------------------------------------


@click.group("api-key")
def api_key() -> None:
    """Keys for `/api/v1/...`. Scopes: `events:read` (`GET /api/v1/events`), `admin:read`
    (every administration read), `admin` (an admin's reads and writes), `owner` (an
    owner's: everything, other owners included)."""


@api_key.command("create")
@click.argument("slug")
@click.option("--name", default="api", show_default=True)
@click.option("--scope", "scopes", multiple=True, type=click.Choice(SCOPES), required=True)
@click.option("--expires-days", type=click.FloatRange(min=0, min_open=True))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def api_key_create(
    obj: Context,
    slug: str,
    name: str,
    scopes: tuple[str, ...],
    expires_days: float | None,
    as_json: bool,
) -> None:
    """A new API key for tenant SLUG; the secret is shown once, stored hashed."""
    key_id, secret, secret_hash = new_api_key()
    now = utc_now()
    expires = now + timedelta(days=expires_days) if expires_days else None

    async def work(tenant: Tenant, store: ScimStore) -> None:
        await ApiKeyStore(store.engine).create(
            tenant.id, key_id, name, secret_hash, scopes, now, expires
        )

    on_tenant(obj, slug, work)
    shown = {
        "id": key_id,
        "key": secret,
        "scopes": list(scopes),
        "expires_at": expires.isoformat() if expires else None,
    }
    if as_json:
        echo_json(shown)
        return
    click.echo(f"key id: {key_id}\nkey:    {secret}\nThe key is shown only now.")


@api_key.command("list")
@click.argument("slug")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def api_key_list(obj: Context, slug: str, as_json: bool) -> None:
    async def work(tenant: Tenant, store: ScimStore) -> Any:
        return await ApiKeyStore(store.engine).list(tenant.id)

    rows = [
        {
            "id": k.id,
            "name": k.name,
            "scopes": list(k.scopes),
            "created_at": k.created_at,
            "expires_at": k.expires_at,
            "last_used_at": k.last_used_at,
            "revoked_at": k.revoked_at,
        }
        for k in on_tenant(obj, slug, work)
    ]
    if as_json:
        echo_json(rows)
        return
    for row in rows:
        state = "revoked" if row["revoked_at"] else "live"
        click.echo(f"{row['id']}\t{row['name']}\t{','.join(row['scopes'])}\t{state}")


@api_key.command("revoke")
@click.argument("slug")
@click.argument("key_id")
@click.pass_obj
def api_key_revoke(obj: Context, slug: str, key_id: str) -> None:
    async def work(tenant: Tenant, store: ScimStore) -> bool:
        return await ApiKeyStore(store.engine).revoke(tenant.id, key_id, utc_now())

    if not on_tenant(obj, slug, work):
        raise click.ClickException(f"no live key {key_id!r} in {slug}")
    click.echo(f"{key_id} revoked")
