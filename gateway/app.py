"""Application factory: `create_app(settings) -> web.Application`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import aiohttp
import orjson
from aiohttp import web
from sqlalchemy import text

from gateway import auth_api, local_login
from gateway.access import Access
from gateway.admin import create_api_app
from gateway.audit_writer import AuditWriter, writing
from gateway.errors import Handler
from gateway.identity_tokens import TokenIssuer
from gateway.keys import (
    ACCESS,
    ACCOUNTS,
    ADMIN_STORE,
    API_KEYS,
    AUDIT,
    CLOCK,
    ENGINE,
    EVENTS,
    IDENTITIES,
    INVITATIONS,
    LOCAL_LOGINS,
    LOGIN_STATE,
    OIDC_DIRECTORY,
    PARTNERS,
    PROVISIONING,
    REQUEST_ID,
    REQUEST_LOG,
    SESSION_CACHE,
    SESSIONS,
    SETTINGS,
    SSO_STORE,
    STORE,
    TOKEN_CACHE,
    TOKEN_ISSUER,
)
from gateway.oidc_client import OidcDirectory
from gateway.provisioning import Provisioning
from gateway.request_log import RequestLog, running
from gateway.scim_api import create_scim_app
from gateway.session_cache import CHANNEL, SessionCache
from gateway.settings import Settings
from gateway.sso_api import create_sso_app
from gateway.token_cache import TokenCache
from gateway.webhooks import EVENTS_CHANNEL, WebhookWorker, delivering
from sso.mapping import DEFAULT_ROLE
from storage.access_store import AccessStore
from storage.account_store import AccountStore
from storage.admin_store import AdminStore
from storage.api_key_store import ApiKeyStore
from storage.audit_store import AuditLog
from storage.database import create_engine
from storage.event_store import EventStore
from storage.invitation_store import InvitationStore
from storage.key_store import KeyStore
from storage.local_login_store import LocalLoginStore
from storage.notifications import listening
from storage.partner_store import PartnerStore
from storage.request_log import RequestLogStore
from storage.scim_store import ScimStore
from storage.session_store import SessionStore
from storage.sso_store import Identities, LoginState, SsoStore
from storage.webhook_store import WebhookStore


def utc_now() -> datetime:
    return datetime.now(UTC)


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    try:
        async with request.app[ENGINE].connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:  # any failure to reach the database means "not ready"
        body = {"status": "unavailable", "database": type(exc).__name__}
        return web.json_response(body, status=503, dumps=lambda o: orjson.dumps(o).decode())
    return web.json_response({"status": "ok"})


PURGE_SECONDS = 3600.0  # how often what is past its keeping time is purged


async def _purge(app: web.Application, settings: Settings, now: datetime) -> None:
    """Soft-deleted users past their tenant's keeping time; audit entries past
    `audit_days`; events past `events_days` (and finished deliveries of them)."""
    await app[STORE].purge_deleted(now)
    if settings.audit_days > 0:
        await app[AUDIT].purge(now - timedelta(days=settings.audit_days))
    if settings.events_days > 0:
        await app[EVENTS].purge(now - timedelta(days=settings.events_days))


@web.middleware
async def request_ids(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every request has an id: the caller's `X-Request-Id` when it is a sane token, else a
    new one; it is sent back, and audit entries carry it."""
    given = request.headers.get("X-Request-Id", "")
    ok = 0 < len(given) <= 128 and all(c.isalnum() or c in "-_.:" for c in given)
    request[REQUEST_ID] = given if ok else "req_" + secrets.token_hex(8)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers["X-Request-Id"] = request[REQUEST_ID]
        raise
    response.headers["X-Request-Id"] = request[REQUEST_ID]
    return response


@contextlib.asynccontextmanager
async def every(seconds: float, work: Callable[[], Awaitable[object]]) -> AsyncIterator[None]:
    """Run `work` now and every `seconds` while the context is open."""

    async def loop() -> None:
        while True:
            try:
                await work()
            except Exception:  # the next round tries again
                logging.getLogger(__name__).exception("periodic work failed")
            await asyncio.sleep(seconds)

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _calling(calls: list[Callable[[], None]]) -> Callable[[], None]:
    def call_each() -> None:
        for call in calls:
            call()

    return call_each


def create_app(settings: Settings, clock: Callable[[], datetime] = utc_now) -> web.Application:
    if settings.database_url is None:
        raise ValueError("create_app needs settings.database_url (the CLI starts the embedded one)")
    app = web.Application(middlewares=[request_ids])
    app[SETTINGS] = settings
    app[CLOCK] = clock
    app[TOKEN_CACHE] = TokenCache(settings.token_cache_seconds)

    async def database(app: web.Application) -> AsyncIterator[None]:
        assert settings.database_url is not None
        engine = create_engine(settings.database_url, pool_size=settings.db_pool_size)
        app[ENGINE] = engine
        app[STORE] = ScimStore(engine)
        app[SSO_STORE] = SsoStore(engine)
        app[SESSIONS] = SessionStore(engine, DEFAULT_ROLE)
        app[SESSION_CACHE] = SessionCache(app[SESSIONS], settings.session_cache_seconds)
        app[LOGIN_STATE] = LoginState(engine)
        app[IDENTITIES] = Identities(engine)
        app[TOKEN_ISSUER] = TokenIssuer(KeyStore(engine))
        app[ACCESS] = Access(AccessStore(engine), clock)
        app[AUDIT] = AuditLog(engine)
        app[API_KEYS] = ApiKeyStore(engine)
        app[EVENTS] = EventStore(engine)
        app[ADMIN_STORE] = AdminStore(engine)
        app[INVITATIONS] = InvitationStore(engine)
        app[PARTNERS] = PartnerStore(engine)
        app[ACCOUNTS] = AccountStore(engine)
        app[LOCAL_LOGINS] = LocalLoginStore(engine)
        audit = AuditWriter(app[AUDIT], clock, settings.audit_flush_seconds)
        app[PROVISIONING] = Provisioning(app[STORE], clock, app[ACCESS], audit)
        async with contextlib.AsyncExitStack() as stack:
            http = await stack.enter_async_context(aiohttp.ClientSession())
            await stack.enter_async_context(writing(audit))
            app[OIDC_DIRECTORY] = OidcDirectory(http)
            # One connection listens for every process-local reaction to the database's
            # notifications: new events wake the webhook worker; changes of sessions, users,
            # grants and rules drop the session cache's copies.
            handlers: dict[str, Callable[[str], None]] = {}
            downs: list[Callable[[], None]] = []
            ups: list[Callable[[], None]] = []
            if settings.webhook_delivery:
                # A session of its own: slow receivers never hold up OIDC calls.
                hooks_http = await stack.enter_async_context(aiohttp.ClientSession())
                worker = WebhookWorker(
                    WebhookStore(engine),
                    hooks_http,
                    clock,
                    batch=settings.webhook_batch,
                    timeout=settings.webhook_timeout_seconds,
                )
                handlers[EVENTS_CHANNEL] = lambda _tenant: worker.wake.set()
                ups.append(worker.wake.set)
                await stack.enter_async_context(delivering(worker))
            if settings.session_cache_seconds > 0:
                cache = app[SESSION_CACHE]
                handlers[CHANNEL] = cache.notified
                downs.append(cache.listener_down)
                ups.append(cache.listener_up)
            if handlers:
                await stack.enter_async_context(
                    listening(
                        settings.database_url,
                        handlers,
                        _calling(downs),
                        _calling(ups),
                    )
                )
            await stack.enter_async_context(
                every(PURGE_SECONDS, lambda: _purge(app, settings, clock()))
            )
            if settings.request_log_days > 0:
                app[REQUEST_LOG] = RequestLog(
                    RequestLogStore(engine),
                    clock,
                    keep_days=settings.request_log_days,
                    body_bytes=settings.request_log_body_bytes,
                    flush_seconds=settings.request_log_flush_seconds,
                )
                await stack.enter_async_context(running(app[REQUEST_LOG]))
            yield
        await engine.dispose()

    scim = create_scim_app(client_max_size=settings.max_body_bytes)
    app.cleanup_ctx.append(database)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.add_subapp("/scim/v2", scim)
    auth_api.add_routes(app)
    local_login.add_routes(app)
    app.add_subapp("/api/v1", create_api_app(settings.max_body_bytes))
    app.add_subapp("/sso", create_sso_app())
    return app
