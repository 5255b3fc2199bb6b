"""SSO configuration of tenants: connections to their IdPs, e-mail domains, return URLs.

Every read and write is scoped by tenant, except `tenant_for_domain` (home-realm discovery).
Names are unique per tenant, domains across tenants: a duplicate raises `ConflictError`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, Text, delete, func, insert, literal, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from scim.errors import ConflictError
from storage.database import autocommit, is_unique_violation
from storage.filter_sql import emails_contain
from storage.tables import (
    scim_tokens,
    sso_assertions,
    sso_connections,
    sso_identities,
    sso_requests,
    tenant_domains,
    tenant_return_urls,
    tenants,
    users,
)


@dataclass(frozen=True)
class Connection:
    id: uuid.UUID
    tenant_id: uuid.UUID
    name: str
    type: str  # "saml" | "oidc"
    settings: dict[str, Any]  # the IdP's side
    secrets: dict[str, Any]  # our side's keys and client secret
    jit: bool
    idp_initiated: bool
    created_at: datetime
    updated_at: datetime | None = None


class SsoStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        # Domains are unique across tenants: home-realm discovery must not be ambiguous.
        # The callers pass them lower-cased (sso.connections.check_domain).
        self.domains = TenantValues(
            engine, tenant_domains, "domain", "domain {value!r} already belongs to a tenant"
        )
        self.return_urls = TenantValues(
            engine, tenant_return_urls, "url", "{value} is already allowed"
        )

    # --- connections -----------------------------------------------------------------

    async def add_connection(
        self,
        tenant_id: uuid.UUID,
        name: str,
        kind: str,
        settings: dict[str, Any],
        secrets: dict[str, Any],
        *,
        jit: bool,
        idp_initiated: bool,
        now: datetime,
    ) -> Connection:
        connection = Connection(
            uuid.uuid4(), tenant_id, name, kind, settings, secrets, jit, idp_initiated, now, now
        )
        try:
            async with self.engine.begin() as conn:
                await conn.execute(
                    insert(sso_connections).values(
                        id=connection.id,
                        tenant_id=tenant_id,
                        name=name,
                        type=kind,
                        settings=settings,
                        secrets=secrets,
                        jit=jit,
                        idp_initiated=idp_initiated,
                        created_at=now,
                        updated_at=now,
                    )
                )
        except IntegrityError as exc:
            if is_unique_violation(exc):
                raise ConflictError(
                    f"this tenant already has a connection named {name!r}"
                ) from None
            raise
        return connection

    async def get_connection(self, tenant_id: uuid.UUID, name: str) -> Connection | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(sso_connections).where(
                        sso_connections.c.tenant_id == tenant_id, sso_connections.c.name == name
                    )
                )
            ).one_or_none()
        return _connection(row) if row else None

    async def list_connections(self, tenant_id: uuid.UUID) -> list[Connection]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(sso_connections)
                .where(sso_connections.c.tenant_id == tenant_id)
                .order_by(sso_connections.c.name)
            )
            return [_connection(r) for r in rows]

    async def update_settings(
        self, tenant_id: uuid.UUID, name: str, settings: dict[str, Any], now: datetime
    ) -> bool:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(sso_connections)
                .where(sso_connections.c.tenant_id == tenant_id, sso_connections.c.name == name)
                .values(settings=settings, updated_at=now)
            )
            return result.rowcount == 1

    async def remove_connection(self, tenant_id: uuid.UUID, name: str) -> list[uuid.UUID] | None:
        """Remove a connection with its identities; the users they were linked to (whose
        grants may have come from its claims), or None if there was no such connection."""
        async with self.engine.begin() as conn:
            removed = (
                await conn.execute(
                    delete(sso_connections)
                    .where(sso_connections.c.tenant_id == tenant_id, sso_connections.c.name == name)
                    .returning(sso_connections.c.id)
                )
            ).scalar_one_or_none()
            if removed is None:
                return None
            linked = await conn.scalars(
                select(sso_identities.c.user_id).where(sso_identities.c.connection_id == removed)
            )
            return list(linked.all())

    async def tenant_for_domain(self, domain: str) -> str | None:
        """The slug of the tenant that owns an e-mail domain (home-realm discovery)."""
        async with self.engine.connect() as conn:
            return (
                await conn.execute(
                    select(tenants.c.slug)
                    .select_from(tenant_domains.join(tenants))
                    .where(tenant_domains.c.domain == domain.lower())
                )
            ).scalar_one_or_none()


class TenantValues:
    """A tenant's list of strings kept in a table of (tenant_id, value, created_at): its
    e-mail domains, its return URLs. A value already present raises `ConflictError` saying
    `taken`."""

    def __init__(self, engine: AsyncEngine, table: Table, column: str, taken: str) -> None:
        self.engine = engine
        self.table = table
        self.column = table.c[column]
        self.taken = taken

    async def add(self, tenant_id: uuid.UUID, value: str, now: datetime) -> None:
        try:
            async with self.engine.begin() as conn:
                await conn.execute(
                    insert(self.table).values(
                        {self.column.name: value, "tenant_id": tenant_id, "created_at": now}
                    )
                )
        except IntegrityError as exc:
            if is_unique_violation(exc):
                raise ConflictError(self.taken.format(value=value)) from None
            raise

    async def list(self, tenant_id: uuid.UUID) -> list[str]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(self.column).where(self.table.c.tenant_id == tenant_id).order_by(self.column)
            )
            return list(rows.scalars())

    async def remove(self, tenant_id: uuid.UUID, value: str) -> bool:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                delete(self.table).where(self.table.c.tenant_id == tenant_id, self.column == value)
            )
            return result.rowcount == 1


class LoginState:
    """What must outlive one request of a login, shared by every replica: the requests sent
    to IdPs (each answered once), and the assertions already accepted (replay)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.single = autocommit(engine)

    async def save_request(
        self,
        request_id: str,
        connection_id: uuid.UUID,
        data: dict[str, Any],
        expires_at: datetime,
    ) -> None:
        async with self.single.connect() as conn:
            await conn.execute(
                insert(sso_requests).values(
                    id=request_id, connection_id=connection_id, data=data, expires_at=expires_at
                )
            )

    async def take_request(
        self, request_id: str, connection_id: uuid.UUID, now: datetime
    ) -> dict[str, Any] | None:
        """The data saved with a request of this connection, if it is still valid; the
        request is used up, so a second answer to it finds nothing."""
        async with self.single.connect() as conn:
            row = (
                await conn.execute(
                    delete(sso_requests)
                    .where(
                        sso_requests.c.id == request_id,
                        sso_requests.c.connection_id == connection_id,
                    )
                    .returning(sso_requests.c.data, sso_requests.c.expires_at)
                )
            ).one_or_none()
        if row is None or row.expires_at <= now:
            return None
        data: dict[str, Any] = row.data
        return data

    async def first_use(
        self, connection_id: uuid.UUID, assertion_id: str, expires_at: datetime
    ) -> bool:
        """Record an accepted assertion until it expires; False if it was accepted before
        (a replay). Concurrent uses of one assertion: exactly one is the first."""
        async with self.single.connect() as conn:
            inserted = (
                await conn.execute(
                    pg_insert(sso_assertions)
                    .values(
                        connection_id=connection_id,
                        assertion_id=assertion_id,
                        expires_at=expires_at,
                    )
                    .on_conflict_do_nothing()
                    .returning(sso_assertions.c.assertion_id)
                )
            ).one_or_none()
        return inserted is not None

    async def prune(self, now: datetime) -> int:
        """Forget requests and assertions that have expired."""
        async with self.single.connect() as conn:
            requests = await conn.execute(
                delete(sso_requests).where(sso_requests.c.expires_at <= now)
            )
            assertions = await conn.execute(
                delete(sso_assertions).where(sso_assertions.c.expires_at <= now)
            )
        return int(requests.rowcount) + int(assertions.rowcount)


@dataclass(frozen=True)
class LinkedUser:
    user_id: uuid.UUID
    active: bool
    created_by_login: bool  # made just-in-time by a login through this connection


@dataclass(frozen=True)
class Account:
    """An existing account a first login's e-mail names, and who manages it."""

    user_id: uuid.UUID
    active: bool
    linked_here: bool  # already linked to another subject of this connection
    created_by_connection: str | None  # a connection whose login created it just in time
    token_connection: str | None  # the connection the SCIM token that created it is tied to


class Identities:
    """Links from (connection, subject) to users: how a returning login finds its user."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.single = autocommit(engine)

    async def accounts_with_email(
        self, tenant_id: uuid.UUID, connection_id: uuid.UUID, email: str
    ) -> list[Account]:
        """The tenant's accounts whose userName or an e-mail is `email` (any case), at most
        two (more than one is already too many to choose from)."""
        other = sso_connections.alias("other")
        creator = sso_identities.alias("creator")
        token_connection = (
            select(other.c.name)
            .select_from(scim_tokens.join(other, other.c.id == scim_tokens.c.connection_id))
            .where(literal("scim:", Text) + scim_tokens.c.id == users.c.created_by)
            .scalar_subquery()
        )
        created_by_connection = (
            select(other.c.name)
            .select_from(creator.join(other, other.c.id == creator.c.connection_id))
            .where(
                creator.c.user_id == users.c.id,
                creator.c.created_user.is_(True),
                creator.c.connection_id != connection_id,
            )
            .limit(1)
            .scalar_subquery()
        )
        linked_here = (
            select(sso_identities.c.user_id)
            .where(
                sso_identities.c.user_id == users.c.id,
                sso_identities.c.connection_id == connection_id,
            )
            .exists()
        )
        query = (
            select(
                users.c.id,
                (users.c.active & users.c.blocked_at.is_(None)).label("active"),
                linked_here.label("linked_here"),
                created_by_connection.label("created_by_connection"),
                token_connection.label("token_connection"),
            )
            .where(
                users.c.tenant_id == tenant_id,
                or_(
                    func.lower(users.c.user_name) == func.lower(literal(email, Text)),
                    emails_contain(email),
                ),
            )
            .limit(2)
        )
        async with self.single.connect() as conn:
            return [
                Account(r.id, r.active, r.linked_here, r.created_by_connection, r.token_connection)
                for r in await conn.execute(query)
            ]

    async def find(
        self,
        connection_id: uuid.UUID,
        subject: str,
        now: datetime,
        claims: Mapping[str, Any] | None = None,
    ) -> LinkedUser | None:
        """The linked user, recording the login (and its claims, which the mapping rules
        read)."""
        async with self.engine.begin() as conn:
            row = (
                await conn.execute(
                    update(sso_identities)
                    .where(
                        sso_identities.c.connection_id == connection_id,
                        sso_identities.c.subject == subject,
                    )
                    .values(
                        last_login_at=now,
                        **({"claims": dict(claims)} if claims is not None else {}),
                    )
                    .returning(sso_identities.c.user_id, sso_identities.c.created_user)
                )
            ).one_or_none()
            if row is None:
                return None
            active = (
                await conn.execute(
                    select(users.c.active & users.c.blocked_at.is_(None)).where(
                        users.c.id == row.user_id
                    )
                )
            ).scalar_one()
        return LinkedUser(row.user_id, active, row.created_user)

    async def link(
        self,
        connection_id: uuid.UUID,
        subject: str,
        user_id: uuid.UUID,
        now: datetime,
        *,
        created_user: bool = False,
        claims: Mapping[str, Any] | None = None,
    ) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(sso_identities).values(
                    connection_id=connection_id,
                    subject=subject,
                    user_id=user_id,
                    created_at=now,
                    last_login_at=now,
                    created_user=created_user,
                    claims=dict(claims or {}),
                )
            )


def _connection(row: Any) -> Connection:
    return Connection(
        row.id,
        row.tenant_id,
        row.name,
        row.type,
        row.settings,
        row.secrets,
        row.jit,
        row.idp_initiated,
        row.created_at,
        row.updated_at,
    )


__all__ = [
    "Account",
    "Connection",
    "Identities",
    "LinkedUser",
    "LoginState",
    "SsoStore",
    "TenantValues",
]
