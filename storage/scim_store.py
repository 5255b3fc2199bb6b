"""The Postgres store behind the SCIM endpoints: tenants, tokens, users, groups, memberships.

Contract (kept by every method; tests/test_scim_*.py prove it through the app on Postgres):
- every read and write is scoped by `tenant_id`; another tenant's id is "not found";
- writes are single transactions: a method that raises has changed no row;
- userName is unique per tenant case-insensitively: a duplicate raises `UniquenessError`
  (also under concurrent inserts, by the unique index, never by a prior SELECT);
- replaces are version-checked and bump `version`: a stale `If-Match` raises
  `PreconditionFailedError`, and a write without one that loses a race is built again on the
  newer resource (no update is lost, no lock is held while the change is built);
- SCIM sees only groups of origin 'scim'; a product group's name is never a SCIM group's;
- group members are changed set-wise, and a member id unknown in the tenant raises
  `InvalidValueError` before anything is written;
- `within(connection)` gives a store whose user and group methods run as savepoints of the
  caller's transaction and never take another connection (which could wait on a row lock
  that transaction holds);
- results are fresh dicts in SCIM shape (`id`, `meta` without `location`, users' `groups`,
  groups' `members` with `value`/`type`/`display`) that the caller may modify.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    Boolean,
    ColumnElement,
    DateTime,
    Integer,
    Select,
    String,
    Uuid,
    all_,
    and_,
    any_,
    bindparam,
    column,
    delete,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    text,
    type_coerce,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, aggregate_order_by
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from scim.errors import (
    ConflictError,
    InvalidValueError,
    NotFoundError,
    PreconditionFailedError,
    UniquenessError,
)
from scim.patch import MemberChanges
from scim.schema import GROUP_SCHEMA_ID
from storage.database import autocommit, is_unique_violation
from storage.filter_sql import parse_uuid
from storage.tables import (
    group_members,
    groups,
    resource_counts,
    role_grants,
    scim_tokens,
    sessions,
    tenants,
    users,
)

# A version-checked write that finds the row changed since it was read is built again on the
# newer row; the last of this many attempts locks the row first.
_WRITE_ATTEMPTS = 3
# A group's origin: pushed by SCIM (the only groups SCIM reads or writes), or made in the
# product by an admin or the CLI.
SCIM_ORIGIN = "scim"
PRODUCT_ORIGIN = "product"
# A tenant's `delete_policy` for users: soft (kept in deleted_users for `keep_deleted_days`,
# then purged) or hard.
DELETE_POLICIES = ("soft", "hard")
KEEP_DELETED_DAYS = 30


@dataclass(frozen=True)
class Tenant:
    id: uuid.UUID
    slug: str
    name: str
    created_at: datetime
    settings: dict[str, Any] = field(default_factory=dict)  # the tenant's own overrides


@dataclass(frozen=True)
class TokenRecord:
    id: str
    tenant_slug: str
    name: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    connection_id: uuid.UUID | None = None  # the SSO connection whose IdP pushes through it


@dataclass(frozen=True)
class Principal:
    """Who a SCIM request authenticated as."""

    token_id: str
    tenant_id: uuid.UUID
    tenant_slug: str


@dataclass(frozen=True)
class ProductGroup:
    id: uuid.UUID
    name: str
    created_at: datetime


@dataclass(frozen=True)
class GroupKeys:
    """What identifies SCIM groups to the mapping rules: display names and externalIds."""

    names: frozenset[str] = frozenset()
    external_ids: frozenset[str] = frozenset()

    def __or__(self, other: GroupKeys) -> GroupKeys:
        return GroupKeys(self.names | other.names, self.external_ids | other.external_ids)

    @staticmethod
    def of(resource: Mapping[str, Any]) -> GroupKeys:
        name, external_id = resource.get("displayName"), resource.get("externalId")
        return GroupKeys(
            frozenset({name} if isinstance(name, str) else ()),
            frozenset({external_id} if isinstance(external_id, str) and external_id else ()),
        )


@dataclass(frozen=True)
class Page:
    total: int
    resources: list[dict[str, Any]]


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def user_name_taken(user_name: str) -> UniquenessError:
    """The error of a create whose userName another user of the tenant has."""
    return UniquenessError(f"userName {user_name!r} is already taken in this tenant")


def etag(version: int) -> str:
    return f'W/"{version}"'


# --- row -> SCIM dict ------------------------------------------------------------------------

_user_groups = (
    select(
        func.coalesce(
            func.jsonb_agg(
                func.jsonb_build_object(
                    "value",
                    type_coerce(groups.c.id, String),
                    "display",
                    groups.c.display_name,
                    "type",
                    "direct",
                )
            ),
            literal_column("'[]'::jsonb"),
        )
    )
    .select_from(group_members.join(groups, groups.c.id == group_members.c.group_id))
    .where(group_members.c.member_id == users.c.id, groups.c.origin == SCIM_ORIGIN)
    .scalar_subquery()
    .label("groups")
)

# The organisation roles the gateway gives (by the mapping rules or by hand) join the roles a
# SCIM client set, each with its source as `type`; they are read-only: a write drops them.
GIVEN_ROLE_TYPES = ("mapped", "manual")
_user_given_roles = (
    select(
        func.coalesce(
            func.jsonb_agg(
                aggregate_order_by(
                    func.jsonb_build_object(
                        "value", role_grants.c.role, "type", role_grants.c.source
                    ),
                    role_grants.c.role,
                    role_grants.c.source,
                )
            ),
            literal_column("'[]'::jsonb"),
        )
    )
    .where(
        role_grants.c.user_id == users.c.id,
        role_grants.c.project_id.is_(None),
        role_grants.c.source.in_(GIVEN_ROLE_TYPES),
    )
    .scalar_subquery()
    .label("given_roles")
)

_USER_COLUMNS = (
    users.c.id,
    users.c.data,
    users.c.version,
    users.c.created_at,
    users.c.updated_at,
    _user_groups,
    _user_given_roles,
)
# Hot-path statements built once: SQLAlchemy then reuses their cache key and compiled form.
_GET_USER = select(*_USER_COLUMNS).where(
    users.c.tenant_id == bindparam("tenant_id"), users.c.id == bindparam("user_id")
)
_AUTHENTICATE = (
    select(scim_tokens.c.id, scim_tokens.c.last_used_at, tenants.c.id.label("tid"))
    .select_from(scim_tokens.join(tenants))
    .where(
        scim_tokens.c.secret_hash == bindparam("secret_hash"),
        scim_tokens.c.revoked_at.is_(None),
        tenants.c.slug == bindparam("slug"),
    )
)

_NAMED = and_(
    users.c.tenant_id == bindparam("tenant_id"),
    func.lower(users.c.user_name) == func.lower(bindparam("user_name", type_=String)),
)
_GET_USER_FOR_UPDATE = _GET_USER.with_for_update(of=users)
_USERS_NAMED = (
    select(*_USER_COLUMNS, func.count().over().label("total"))
    .where(_NAMED)
    .order_by(users.c.id)
    .offset(bindparam("offset"))
    .limit(bindparam("limit"))
)
_COUNT_USERS_NAMED = select(func.count()).select_from(users).where(_NAMED)
# Executed with the columns to write as parameters (the statement's compiled form is cached
# per set of columns).
_INSERT_USER = insert(users).returning(users.c.created_at, users.c.updated_at, users.c.version)
# Many users at once (Bulk): one row per array position; a userName already taken (or taken
# by an earlier row) inserts nothing and returns no row.
_INSERT_USERS = (
    text(
        """
        INSERT INTO users (id, tenant_id, user_name, external_id, display_name, active, data,
                           password_hash, version, created_at, updated_at, created_by)
        SELECT id, :tenant_id, user_name, external_id, display_name, active, data,
               password_hash, 1, :now, :now, :created_by
        FROM unnest(:ids, :user_names, :external_ids, :display_names, :actives, :datas,
                    :password_hashes)
             AS n(id, user_name, external_id, display_name, active, data, password_hash)
        ON CONFLICT DO NOTHING
        RETURNING id, created_at, updated_at, version
        """
    )
    .bindparams(
        bindparam("tenant_id", type_=Uuid),
        bindparam("now", type_=DateTime(timezone=True)),
        bindparam("ids", type_=ARRAY(Uuid)),
        bindparam("user_names", type_=ARRAY(String)),
        bindparam("external_ids", type_=ARRAY(String)),
        bindparam("display_names", type_=ARRAY(String)),
        bindparam("actives", type_=ARRAY(Boolean)),
        bindparam("datas", type_=ARRAY(JSONB)),
        bindparam("password_hashes", type_=ARRAY(String)),
        bindparam("created_by", type_=String),
    )
    .columns(
        column("id", Uuid),
        column("created_at", DateTime(timezone=True)),
        column("updated_at", DateTime(timezone=True)),
        column("version", Integer),
    )
)
_UPDATE_USER = (
    update(users)
    .where(users.c.id == bindparam("b_id"), users.c.version == bindparam("b_version"))
    .returning(*_USER_COLUMNS)
)

_GROUP_COLUMNS = (
    groups.c.id,
    groups.c.data,
    groups.c.version,
    groups.c.created_at,
    groups.c.updated_at,
)


_GET_GROUP = select(*_GROUP_COLUMNS).where(
    groups.c.tenant_id == bindparam("tenant_id"),
    groups.c.id == bindparam("group_id"),
    groups.c.origin == SCIM_ORIGIN,
)
_UPDATE_GROUP = (
    update(groups)
    .where(groups.c.id == bindparam("b_id"), groups.c.version == bindparam("b_version"))
    .returning(*_GROUP_COLUMNS)
)
_UUIDS = ARRAY(Uuid)
# Membership changes are single statements over arrays of ids: one prepared statement
# whatever the number of members, and no member list is ever read to change it.
# `found`: which of the ids in :add are a User or a SCIM Group of the tenant, and which.
_FOUND_MEMBERS = """found AS (
      SELECT id, 'User' AS kind FROM users WHERE tenant_id = :tenant_id AND id = ANY(:add)
      UNION ALL
      SELECT id, 'Group' FROM groups
      WHERE tenant_id = :tenant_id AND id = ANY(:add) AND origin = 'scim'
    )"""
_ADD_MEMBERS = text(
    f"""
    WITH {_FOUND_MEMBERS}, added AS (
      INSERT INTO group_members (group_id, member_id, tenant_id, member_type)
      SELECT :group_id, id, :tenant_id, kind FROM found
      ON CONFLICT DO NOTHING
    )
    SELECT id FROM found
    """
).bindparams(
    bindparam("tenant_id", type_=Uuid),
    bindparam("group_id", type_=Uuid),
    bindparam("add", type_=_UUIDS),
)


def _patch_group_statement(removal: str, members_only: bool = False) -> Any:
    """A group PATCH that keeps its name, as one statement: the version-checked UPDATE of
    the group's row, the removal of members and the set-wise addition of the ids in `add`,
    all or nothing. The row is updated only if every id in `add` is a User or SCIM Group of
    the tenant; the statement returns the updated row (none if the version or a member did
    not match) and the ids it found. `removal` is "listed" (the ids in `remove`), "keep"
    (every member not in `add`: a replace) or "all".

    `members_only`: the PATCH changes members only; the row's body is left as it is, its
    version is bumped whatever it was, and `group_exists` tells a missing group from missing
    members."""
    if members_only:
        assignments, guard = "data = data", "origin = 'scim'"
    else:
        assignments = "display_name = :display_name, external_id = :external_id, data = :data"
        guard = "version = :version"
    condition = {
        "listed": "AND member_id = ANY(:remove)",
        "keep": "AND member_id <> ALL(:add)",
        "all": "",
    }[removal]
    sql = f"""
            WITH {_FOUND_MEMBERS}, g AS (
              UPDATE groups
              SET {assignments}, version = version + 1, updated_at = :now
              WHERE id = :group_id AND tenant_id = :tenant_id AND {guard}
                AND (SELECT count(*) FROM found) = cardinality(:add)
              RETURNING id, data, version, created_at, updated_at
            ), removed AS (
              DELETE FROM group_members
              WHERE group_id = :group_id AND EXISTS (SELECT 1 FROM g) {condition}
            ), added AS (
              INSERT INTO group_members (group_id, member_id, tenant_id, member_type)
              SELECT :group_id, id, :tenant_id, kind FROM found WHERE EXISTS (SELECT 1 FROM g)
              ON CONFLICT DO NOTHING
            )
            SELECT g.id, g.data, g.version, g.created_at, g.updated_at,
                   (SELECT coalesce(array_agg(id), '{{}}') FROM found) AS found,
                   EXISTS (SELECT 1 FROM groups WHERE id = :group_id AND tenant_id = :tenant_id
                           AND origin = 'scim') AS group_exists
            FROM (SELECT 1) AS one LEFT JOIN g ON true
            """
    types: dict[str, Any] = {
        "tenant_id": Uuid,
        "group_id": Uuid,
        "version": Integer,
        "display_name": String,
        "external_id": String,
        "data": JSONB,
        "now": DateTime(timezone=True),
        "add": _UUIDS,
        "remove": _UUIDS,
    }
    return (
        text(sql)
        .bindparams(*(bindparam(n, type_=t) for n, t in types.items() if f":{n}" in sql))
        .columns(
            column("id", Uuid),
            column("data", JSONB),
            column("version", Integer),
            column("created_at", DateTime(timezone=True)),
            column("updated_at", DateTime(timezone=True)),
            column("found", _UUIDS),
            column("group_exists", Boolean),
        )
    )


_REMOVALS = ("listed", "keep", "all")
_PATCH_GROUP = {removal: _patch_group_statement(removal) for removal in _REMOVALS}
_PATCH_GROUP_MEMBERS = {removal: _patch_group_statement(removal, True) for removal in _REMOVALS}
_REMOVE_MEMBERS = delete(group_members).where(
    group_members.c.group_id == bindparam("group_id"),
    group_members.c.member_id == any_(bindparam("ids", type_=_UUIDS)),
)
_KEEP_ONLY_MEMBERS = delete(group_members).where(
    group_members.c.group_id == bindparam("group_id"),
    group_members.c.member_id != all_(bindparam("ids", type_=_UUIDS)),
)
_REMOVE_ALL_MEMBERS = delete(group_members).where(group_members.c.group_id == bindparam("group_id"))


_member_user = users.alias("mu")
_member_group = groups.alias("mg")
_MEMBERS = (
    select(
        group_members.c.group_id,
        group_members.c.member_id,
        group_members.c.member_type,
        func.coalesce(
            _member_user.c.display_name, _member_user.c.user_name, _member_group.c.display_name
        ).label("display"),
    )
    .select_from(
        group_members.outerjoin(
            _member_user, _member_user.c.id == group_members.c.member_id
        ).outerjoin(_member_group, _member_group.c.id == group_members.c.member_id)
    )
    .order_by(group_members.c.group_id, group_members.c.member_id)
)


# A soft-deleted user as kept: the resource, its group memberships and role grants.
_KEEP_DELETED = text(
    """
    INSERT INTO deleted_users (id, tenant_id, user_name, external_id, data, deleted_at,
                               deleted_by)
    SELECT u.id, u.tenant_id, u.user_name, u.external_id,
           u.data || jsonb_build_object(
             'groups', (SELECT coalesce(jsonb_agg(m.group_id), '[]'::jsonb)
                        FROM group_members m WHERE m.member_id = u.id),
             'grants', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                          'role', g.role, 'project_id', g.project_id, 'source', g.source)),
                          '[]'::jsonb)
                        FROM role_grants g WHERE g.user_id = u.id)),
           clock_timestamp(), :deleted_by
    FROM users u WHERE u.id = :user_id
    """
).bindparams(bindparam("user_id", type_=Uuid))

_PURGE_DELETED = text(
    f"""
    DELETE FROM deleted_users d USING tenants t
    WHERE d.tenant_id = t.id
      AND d.deleted_at < :now - make_interval(
            days => least(coalesce(nullif(t.settings ->> 'keep_deleted_days', '')::numeric,
                                   {KEEP_DELETED_DAYS}), 3650)::int)
    """
).bindparams(bindparam("now", type_=DateTime(timezone=True)))


def _member(row: Any) -> dict[str, Any]:
    member = {"value": str(row.member_id), "type": row.member_type}
    if row.display is not None:
        member["display"] = row.display
    return member


def _meta(resource_type: str, row: Any) -> dict[str, Any]:
    return {
        "resourceType": resource_type,
        "created": _iso(row.created_at),
        "lastModified": _iso(row.updated_at),
        "version": etag(row.version),
    }


def _user(row: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {"id": str(row.id), **row.data}
    if row.groups:
        resource["groups"] = row.groups
    if row.given_roles:
        resource["roles"] = [*resource.get("roles", []), *row.given_roles]
    resource["meta"] = _meta("User", row)
    return resource


def _group(row: Any, members: list[dict[str, Any]]) -> dict[str, Any]:
    resource: dict[str, Any] = {"id": str(row.id), **row.data}
    if members:
        resource["members"] = members
    resource["meta"] = _meta("Group", row)
    return resource


def _user_columns(resource: dict[str, Any]) -> dict[str, Any]:
    return {
        "user_name": resource["userName"],
        "external_id": resource.get("externalId"),
        "display_name": resource.get("displayName"),
        "active": resource.get("active") is not False,
    }


def _user_data(resource: dict[str, Any]) -> dict[str, Any]:
    data = {k: v for k, v in resource.items() if k not in ("id", "meta", "groups", "password")}
    if isinstance(data.get("roles"), list):
        pushed = [
            r
            for r in data["roles"]
            if not (isinstance(r, dict) and str(r.get("type")).lower() in GIVEN_ROLE_TYPES)
        ]
        if pushed:
            data["roles"] = pushed
        else:
            del data["roles"]
    return data


def _group_data(resource: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if k not in ("id", "meta", "members")}


ReplaceUser = Callable[[dict[str, Any]], Awaitable[tuple[dict[str, Any], str | None]]]
ReplaceGroup = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
PatchGroup = Callable[[dict[str, Any]], Awaitable[tuple[dict[str, Any], MemberChanges]]]


class ScimStore:
    def __init__(self, engine: AsyncEngine, connection: AsyncConnection | None = None) -> None:
        self.engine = engine
        self.single = autocommit(engine)
        self._connection = connection

    def within(self, connection: AsyncConnection) -> ScimStore:
        """This store working inside `connection`'s open transaction: each method's work is
        a savepoint of it (released on success, rolled back on error), and nothing is
        committed until the caller commits. Bulk runs its operations so."""
        return ScimStore(self.engine, connection)

    def _statement(self) -> contextlib.AbstractAsyncContextManager[AsyncConnection]:
        """A connection for reads and for writes of a single statement (autocommitted)."""
        return self._scope(self.single.connect())

    def _transaction(self) -> contextlib.AbstractAsyncContextManager[AsyncConnection]:
        """A connection in a transaction."""
        return self._scope(self.engine.begin())

    @contextlib.asynccontextmanager
    async def _scope(
        self, own: contextlib.AbstractAsyncContextManager[AsyncConnection]
    ) -> AsyncIterator[AsyncConnection]:
        """`own` (a connection of this store's), or a savepoint of the caller's transaction
        when the store works `within` one."""
        if self._connection is None:
            async with own as conn:
                yield conn
        else:
            async with _savepoint(self._connection) as conn:
                yield conn

    # --- tenants and tokens -------------------------------------------------------------

    async def create_tenant(self, slug: str, name: str, now: datetime) -> Tenant:
        tenant = Tenant(uuid.uuid4(), slug, name, now)
        try:
            async with self.engine.begin() as conn:
                await conn.execute(
                    insert(tenants).values(
                        id=tenant.id, slug=slug, name=name, settings={}, created_at=now
                    )
                )
        except IntegrityError as exc:
            if is_unique_violation(exc):
                raise ConflictError(f"tenant {slug!r} already exists") from None
            raise
        return tenant

    async def get_tenant(self, slug: str) -> Tenant | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(tenants).where(tenants.c.slug == slug))).one_or_none()
        return Tenant(row.id, row.slug, row.name, row.created_at, row.settings) if row else None

    async def update_tenant_settings(self, slug: str, changes: dict[str, Any]) -> bool:
        """Merge `changes` into a tenant's settings; a None value removes that setting."""
        async with self.engine.begin() as conn:
            row = (
                await conn.execute(
                    select(tenants.c.settings).where(tenants.c.slug == slug).with_for_update()
                )
            ).one_or_none()
            if row is None:
                return False
            merged = {k: v for k, v in ({**row.settings, **changes}).items() if v is not None}
            await conn.execute(
                update(tenants).where(tenants.c.slug == slug).values(settings=merged)
            )
        return True

    async def list_tenants(self) -> list[Tenant]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(tenants).order_by(tenants.c.slug))
            return [Tenant(r.id, r.slug, r.name, r.created_at, r.settings) for r in rows]

    async def create_token(
        self,
        tenant: Tenant,
        token_id: str,
        name: str,
        secret_hash: bytes,
        now: datetime,
        connection_id: uuid.UUID | None = None,
    ) -> None:
        """`connection_id`: the SSO connection whose IdP pushes through this token; no other
        connection may then take over the users it creates by their e-mail."""
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(scim_tokens).values(
                    id=token_id,
                    tenant_id=tenant.id,
                    name=name,
                    secret_hash=secret_hash,
                    created_at=now,
                    connection_id=connection_id,
                )
            )

    async def list_tokens(self, tenant: Tenant) -> list[TokenRecord]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(scim_tokens)
                .where(scim_tokens.c.tenant_id == tenant.id)
                .order_by(scim_tokens.c.created_at)
            )
            return [
                TokenRecord(
                    r.id,
                    tenant.slug,
                    r.name,
                    r.created_at,
                    r.last_used_at,
                    r.revoked_at,
                    r.connection_id,
                )
                for r in rows
            ]

    async def revoke_token(self, tenant: Tenant, token_id: str, now: datetime) -> bool:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(scim_tokens)
                .where(
                    scim_tokens.c.id == token_id,
                    scim_tokens.c.tenant_id == tenant.id,
                    scim_tokens.c.revoked_at.is_(None),
                )
                .values(revoked_at=now)
            )
            return result.rowcount == 1

    async def rotate_token(
        self, tenant: Tenant, token_id: str, new_id: str, secret_hash: bytes, now: datetime
    ) -> TokenRecord | None:
        """Replace a live token by a new one of the same name and connection, in one
        transaction: there is never a moment with both or neither, and two rotations of one
        token cannot both succeed (the second finds it revoked). The new token, or None when
        `token_id` is no live token of the tenant."""
        async with self.engine.begin() as conn:
            old = (
                await conn.execute(
                    update(scim_tokens)
                    .where(
                        scim_tokens.c.id == token_id,
                        scim_tokens.c.tenant_id == tenant.id,
                        scim_tokens.c.revoked_at.is_(None),
                    )
                    .values(revoked_at=now)
                    .returning(scim_tokens.c.name, scim_tokens.c.connection_id)
                )
            ).one_or_none()
            if old is None:
                return None
            await conn.execute(
                insert(scim_tokens).values(
                    id=new_id,
                    tenant_id=tenant.id,
                    name=old.name,
                    secret_hash=secret_hash,
                    created_at=now,
                    connection_id=old.connection_id,
                )
            )
        return TokenRecord(new_id, tenant.slug, old.name, now, None, None, old.connection_id)

    async def revoke_tokens_named(self, tenant: Tenant, name: str, now: datetime) -> int:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(scim_tokens)
                .where(
                    scim_tokens.c.tenant_id == tenant.id,
                    scim_tokens.c.name == name,
                    scim_tokens.c.revoked_at.is_(None),
                )
                .values(revoked_at=now)
            )
            return result.rowcount

    async def authenticate(
        self, secret_hash: bytes, tenant_slug: str, now: datetime, touch_after: float
    ) -> Principal | None:
        """The live token with this hash for this tenant, recording its use.

        `last_used_at` is written at most once per `touch_after` seconds per token, so that
        authentication is one read on the hot path.
        """
        async with self.single.connect() as conn:
            params = {"secret_hash": secret_hash, "slug": tenant_slug}
            row = (await conn.execute(_AUTHENTICATE, params)).one_or_none()
            if row is None:
                return None
            if row.last_used_at is None or (now - row.last_used_at).total_seconds() > touch_after:
                await conn.execute(
                    update(scim_tokens).where(scim_tokens.c.id == row.id).values(last_used_at=now)
                )
        return Principal(row.id, row.tid, tenant_slug)

    # --- users -------------------------------------------------------------------------

    async def create_user(
        self,
        tenant_id: uuid.UUID,
        resource: dict[str, Any],
        password_hash: str | None,
        now: datetime,
        created_by: str | None = None,
    ) -> dict[str, Any]:
        """`created_by`: the actor creating the user (`scim:<token id>`, `sso:<connection>`)."""
        user_id = uuid.uuid4()
        # A new user is active unless the client says otherwise. A later PUT or PATCH may
        # unassign `active`; the `active` column then still reads true (not deactivated).
        data = {"active": True} | _user_data(resource)
        try:
            # One INSERT (its count trigger runs in the same statement's transaction).
            params = {
                "id": user_id,
                "tenant_id": tenant_id,
                "data": data,
                "password_hash": password_hash,
                "created_by": created_by,
                "version": 1,
                "created_at": now,
                "updated_at": now,
                **_user_columns(data),
            }
            async with self._statement() as conn:
                row = (await conn.execute(_INSERT_USER, params)).one()
        except IntegrityError as exc:
            if is_unique_violation(exc):
                raise user_name_taken(resource["userName"]) from None
            raise
        return {"id": str(user_id), **data, "meta": _meta("User", row)}

    async def create_users(
        self,
        tenant_id: uuid.UUID,
        items: Sequence[tuple[dict[str, Any], str | None]],
        now: datetime,
        created_by: str | None = None,
    ) -> list[dict[str, Any] | None]:
        """Create several users in one statement, as `create_user` would one by one: each
        (resource, password hash) gives the created user, or None when its userName is
        taken (also by an earlier item of the same call)."""
        ids = [uuid.uuid4() for _ in items]
        datas = [{"active": True} | _user_data(resource) for resource, _ in items]
        columns = [_user_columns(data) for data in datas]
        params = {
            "tenant_id": tenant_id,
            "now": now,
            "ids": ids,
            "user_names": [c["user_name"] for c in columns],
            "external_ids": [c["external_id"] for c in columns],
            "display_names": [c["display_name"] for c in columns],
            "actives": [c["active"] for c in columns],
            "datas": datas,
            "password_hashes": [password_hash for _, password_hash in items],
            "created_by": created_by,
        }
        async with self._statement() as conn:
            rows = {r.id: r for r in await conn.execute(_INSERT_USERS, params)}
        return [
            {"id": str(user_id), **data, "meta": _meta("User", rows[user_id])}
            if user_id in rows
            else None
            for user_id, data in zip(ids, datas, strict=True)
        ]

    def _user_select(self, tenant_id: uuid.UUID) -> Select[Any]:
        return select(*_USER_COLUMNS).where(users.c.tenant_id == tenant_id)

    async def get_user(self, tenant_id: uuid.UUID, user_id: str) -> dict[str, Any] | None:
        uid = parse_uuid(user_id)
        if uid is None:
            return None
        async with self._statement() as conn:
            params = {"tenant_id": tenant_id, "user_id": uid}
            row = (await conn.execute(_GET_USER, params)).one_or_none()
        return _user(row) if row else None

    async def replace_user(
        self,
        tenant_id: uuid.UUID,
        user_id: str,
        replace: ReplaceUser,
        if_match: str | None,
        now: datetime,
    ) -> dict[str, Any]:
        """Read the user, let `replace(current)` build the new resource, write it if the
        version is still the one read.

        Two autocommitted statements and no lock: the UPDATE is conditional on the version.
        If another write came in between, that is a 412 when the client named a version
        (If-Match), and otherwise the change is built again on the newer resource; the last
        of `_WRITE_ATTEMPTS` attempts locks the row first, so busy writers queue.
        """
        uid = parse_uuid(user_id)
        if uid is None:
            raise NotFoundError(f"User {user_id} not found")
        params = {"tenant_id": tenant_id, "user_id": uid}
        try:
            for attempt in range(_WRITE_ATTEMPTS):
                locked = attempt == _WRITE_ATTEMPTS - 1
                scope = self._transaction() if locked else self._statement()
                async with scope as conn:
                    read = _GET_USER_FOR_UPDATE if locked else _GET_USER
                    row = (await conn.execute(read, params)).one_or_none()
                    if row is None:
                        raise NotFoundError(f"User {user_id} not found")
                    _check_version(if_match, row.version)
                    resource, password_hash = await replace(_user(row))
                    data = _user_data(resource)
                    values: dict[str, Any] = {
                        "b_id": uid,
                        "b_version": row.version,
                        "data": data,
                        "version": row.version + 1,
                        "updated_at": now,
                        **_user_columns(data),
                    }
                    if password_hash is not None:
                        values["password_hash"] = password_hash
                    updated = (await conn.execute(_UPDATE_USER, values)).one_or_none()
                if updated is not None:
                    return _user(updated)
                if if_match is not None:
                    raise PreconditionFailedError(
                        f"resource version changed during the request; it was {if_match}"
                    )
        except IntegrityError as exc:
            if is_unique_violation(exc):
                raise UniquenessError("userName is already taken in this tenant") from None
            raise
        raise AssertionError("the locked attempt cannot lose a race")

    async def delete_user(
        self,
        tenant_id: uuid.UUID,
        user_id: str,
        if_match: str | None,
        deleted_by: str | None = None,
        hard: bool | None = None,
    ) -> None:
        """Delete a user: soft (`hard` False, or None under the tenant's soft-delete policy,
        the default) keeps the user, its groups and grants in `deleted_users` until purged;
        its userName and externalId are free again at once."""
        uid = parse_uuid(user_id)
        if uid is None:
            raise NotFoundError(f"User {user_id} not found")
        async with self._transaction() as conn:
            version = (
                await conn.execute(
                    select(users.c.version)
                    .where(users.c.id == uid, users.c.tenant_id == tenant_id)
                    .with_for_update()
                )
            ).scalar_one_or_none()
            if version is None:
                raise NotFoundError(f"User {user_id} not found")
            _check_version(if_match, version)
            policy = (
                await conn.execute(
                    select(tenants.c.settings["delete_policy"].astext).where(
                        tenants.c.id == tenant_id
                    )
                )
            ).scalar_one_or_none()
            if not (hard if hard is not None else policy == "hard"):
                await conn.execute(_KEEP_DELETED, {"user_id": uid, "deleted_by": deleted_by})
            # Its sessions end as a deactivation's do (session.revoked), then go with it.
            await conn.execute(
                update(sessions)
                .where(sessions.c.user_id == uid, sessions.c.revoked_at.is_(None))
                .values(revoked_at=func.clock_timestamp())
            )
            await conn.execute(
                delete(group_members).where(
                    group_members.c.tenant_id == tenant_id, group_members.c.member_id == uid
                )
            )
            await conn.execute(delete(users).where(users.c.id == uid))

    async def list_users(
        self,
        tenant_id: uuid.UUID,
        where: ColumnElement[bool] | None,
        order_by: ColumnElement[Any] | None,
        descending: bool,
        start_index: int,
        count: int,
    ) -> Page:
        query = self._user_select(tenant_id)
        return await self._page(
            tenant_id, query, users.c, where, order_by, descending, start_index, count, _user
        )

    async def find_users_by_name(
        self, tenant_id: uuid.UUID, user_name: str, start_index: int, count: int
    ) -> Page:
        """`filter=userName eq "v"`, as `list_users` answers it (same SQL condition, same
        order), from a statement prepared once."""
        params = {
            "tenant_id": tenant_id,
            "user_name": user_name,
            "offset": start_index - 1,
            "limit": count,
        }
        async with self._statement() as conn:
            if count > 0:
                rows = (await conn.execute(_USERS_NAMED, params)).all()
                if rows:
                    return Page(int(rows[0].total), [_user(r) for r in rows])
            total = (await conn.execute(_COUNT_USERS_NAMED, params)).scalar_one()
        return Page(int(total), [])

    # --- groups ------------------------------------------------------------------------

    async def _add_members(
        self,
        conn: AsyncConnection,
        tenant_id: uuid.UUID,
        group_id: uuid.UUID,
        values: Sequence[str],
    ) -> None:
        """Add members set-wise (present ones stay); any id that is not a User or a SCIM Group
        of the tenant raises `InvalidValueError`, and the caller's transaction rolls back."""
        ids = _member_ids(group_id, values)
        found: set[uuid.UUID] = set()
        if ids:
            params = {"tenant_id": tenant_id, "group_id": group_id, "add": _distinct(ids)}
            found = set((await conn.execute(_ADD_MEMBERS, params)).scalars())
        _check_found(ids, found)

    async def _members(
        self, conn: AsyncConnection, group_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, list[dict[str, Any]]]:
        rows = await conn.execute(_MEMBERS.where(group_members.c.group_id.in_(group_ids)))
        out: dict[uuid.UUID, list[dict[str, Any]]] = {gid: [] for gid in group_ids}
        for r in rows:
            out[r.group_id].append(_member(r))
        return out

    @contextlib.asynccontextmanager
    async def streaming_group(
        self, tenant_id: uuid.UUID, group_id: str, chunk: int = 1000
    ) -> AsyncIterator[tuple[dict[str, Any], AsyncIterator[list[dict[str, Any]]]] | None]:
        """The group (without members) and its members in chunks of `chunk`, read from one
        snapshot through a server-side cursor: a group of any size is never held whole in
        memory. None if there is no such group."""
        gid = parse_uuid(group_id)
        if gid is None:
            yield None
            return
        repeatable = self.engine.execution_options(isolation_level="REPEATABLE READ")
        async with repeatable.connect() as conn:
            params = {"tenant_id": tenant_id, "group_id": gid}
            row = (await conn.execute(_GET_GROUP, params)).one_or_none()
            if row is None:
                yield None
                return

            async def chunks() -> AsyncIterator[list[dict[str, Any]]]:
                result = await conn.stream(
                    _MEMBERS.where(group_members.c.group_id == gid),
                    execution_options={"yield_per": chunk},
                )
                async for partition in result.partitions(chunk):
                    yield [_member(r) for r in partition]

            yield _group(row, []), chunks()

    async def create_group(
        self, tenant_id: uuid.UUID, resource: dict[str, Any], now: datetime
    ) -> dict[str, Any]:
        group_id = uuid.uuid4()
        data = _group_data(resource)
        values = [m["value"] for m in resource.get("members", ())]
        async with self._transaction() as conn:
            await _claim_group_name(conn, tenant_id, data["displayName"])
            row = (
                await conn.execute(
                    insert(groups)
                    .values(
                        id=group_id,
                        tenant_id=tenant_id,
                        display_name=data["displayName"],
                        external_id=data.get("externalId"),
                        data=data,
                        version=1,
                        created_at=now,
                        updated_at=now,
                    )
                    .returning(*_GROUP_COLUMNS)
                )
            ).one()
            await self._add_members(conn, tenant_id, group_id, values)
            members = (await self._members(conn, [group_id]))[group_id] if values else []
        return _group(row, members)

    async def get_group(
        self, tenant_id: uuid.UUID, group_id: str, with_members: bool = True
    ) -> dict[str, Any] | None:
        gid = parse_uuid(group_id)
        if gid is None:
            return None
        async with self._transaction() as conn:  # the group and its members in one snapshot
            params = {"tenant_id": tenant_id, "group_id": gid}
            row = (await conn.execute(_GET_GROUP, params)).one_or_none()
            if row is None:
                return None
            members = (await self._members(conn, [gid]))[gid] if with_members else []
        return _group(row, members)

    async def replace_group(
        self,
        tenant_id: uuid.UUID,
        group_id: str,
        replace: ReplaceGroup,
        if_match: str | None,
        now: datetime,
    ) -> dict[str, Any]:
        gid = parse_uuid(group_id)
        if gid is None:
            raise NotFoundError(f"Group {group_id} not found")
        async with self._transaction() as conn:
            row = await _lock_group(conn, tenant_id, gid, group_id, if_match)
            current = _group(row, (await self._members(conn, [gid]))[gid])
            resource = await replace(current)
            values = [m["value"] for m in resource.get("members", ())]
            updated = await _write_group(conn, tenant_id, row, _group_data(resource), now)
            keep = [u for u in map(parse_uuid, values) if u is not None]
            await conn.execute(_KEEP_ONLY_MEMBERS, {"group_id": gid, "ids": keep})
            await self._add_members(conn, tenant_id, gid, values)
            members = (await self._members(conn, [gid]))[gid]
        return _group(updated, members)

    async def patch_group(
        self,
        tenant_id: uuid.UUID,
        group_id: str,
        patch: PatchGroup,
        if_match: str | None,
        now: datetime,
        with_members: bool,
    ) -> dict[str, Any]:
        """Read the group (not its members), let `patch(current)` build the new resource and
        the membership changes, then write both with the version read as the condition: one
        statement when the name stays, a transaction when it changes (the new name is
        claimed). Members change set-wise: the member list is never loaded, so the cost
        follows the size of the change, not of the group.

        A PATCH without If-Match that loses a race is built again on the newer group; after
        `_WRITE_ATTEMPTS - 1` lost races the last attempt locks the row, so that a busy
        group's writers queue instead of failing."""
        gid = parse_uuid(group_id)
        if gid is None:
            raise NotFoundError(f"Group {group_id} not found")
        params = {"tenant_id": tenant_id, "group_id": gid}
        for attempt in range(_WRITE_ATTEMPTS):
            if attempt == _WRITE_ATTEMPTS - 1:
                async with self._transaction() as conn:
                    row = await _lock_group(conn, tenant_id, gid, group_id, if_match)
                    resource, changes = await patch(_group(row, []))
                    data = _group_data(resource)
                    updated = await self._patch_group_in_steps(
                        conn, tenant_id, row, data, changes, now
                    )
                break
            async with self._statement() as conn:
                row = (await conn.execute(_GET_GROUP, params)).one_or_none()
            if row is None:
                raise NotFoundError(f"Group {group_id} not found")
            _check_version(if_match, row.version)
            resource, changes = await patch(_group(row, []))
            data = _group_data(resource)
            if data["displayName"].lower() == row.data["displayName"].lower():
                updated = await self._patch_group_at_once(tenant_id, row, data, changes, now)
            else:  # a rename also claims the new name: a transaction of several statements
                async with self._transaction() as conn:
                    updated = await self._patch_group_in_steps(
                        conn, tenant_id, row, data, changes, now
                    )
            if updated is not None:
                break
            if if_match is not None:
                raise PreconditionFailedError(
                    f"resource version changed during the request; it was {if_match}"
                )
        assert updated is not None  # the locked attempt cannot lose a race
        if not with_members:
            return _group(updated, [])
        async with self._statement() as conn:
            return _group(updated, (await self._members(conn, [gid]))[gid])

    async def patch_group_members(
        self, tenant_id: uuid.UUID, group_id: str, changes: MemberChanges, now: datetime
    ) -> dict[str, Any]:
        """A PATCH that changes only members, in one statement and without reading the group
        first: its body stays, its version is bumped. What IdPs send for every membership
        change."""
        gid = parse_uuid(group_id)
        if gid is None:
            raise NotFoundError(f"Group {group_id} not found")
        ids = _member_ids(gid, [member["value"] for member in (changes.replace or changes.add)])
        params = {
            "tenant_id": tenant_id,
            "group_id": gid,
            "now": now,
            "add": _distinct(ids),
            "remove": [u for u in map(parse_uuid, changes.remove) if u is not None],
        }
        async with self._statement() as conn:
            result = (await conn.execute(_PATCH_GROUP_MEMBERS[_removal(changes)], params)).one()
        if not result.group_exists:
            raise NotFoundError(f"Group {group_id} not found")
        _check_found(ids, set(result.found))
        return _group(result, [])

    async def _patch_group_at_once(
        self,
        tenant_id: uuid.UUID,
        row: Any,
        data: dict[str, Any],
        changes: MemberChanges,
        now: datetime,
    ) -> Any:
        """The group's new row, or None if its version changed since `row` was read."""
        ids = _member_ids(row.id, [member["value"] for member in (changes.replace or changes.add)])
        params = {
            "tenant_id": tenant_id,
            "group_id": row.id,
            "version": row.version,
            "display_name": data["displayName"],
            "external_id": data.get("externalId"),
            "data": data,
            "now": now,
            "add": _distinct(ids),
            "remove": [u for u in map(parse_uuid, changes.remove) if u is not None],
        }
        async with self._statement() as conn:
            result = (await conn.execute(_PATCH_GROUP[_removal(changes)], params)).one()
        _check_found(ids, set(result.found))
        return result if result.id is not None else None

    async def _patch_group_in_steps(
        self,
        conn: AsyncConnection,
        tenant_id: uuid.UUID,
        row: Any,
        data: dict[str, Any],
        changes: MemberChanges,
        now: datetime,
    ) -> Any:
        """As `_patch_group_at_once`, as several statements of the caller's transaction."""
        gid = row.id
        updated = await _write_group(conn, tenant_id, row, data, now)
        if updated is None:
            return None
        incoming = [member["value"] for member in (changes.replace or changes.add)]
        if changes.replace is not None:
            keep = [u for u in map(parse_uuid, incoming) if u is not None]
            await conn.execute(_KEEP_ONLY_MEMBERS, {"group_id": gid, "ids": keep})
        elif changes.remove_all:
            await conn.execute(_REMOVE_ALL_MEMBERS, {"group_id": gid})
        else:
            gone = [u for u in map(parse_uuid, changes.remove) if u is not None]
            if gone:
                await conn.execute(_REMOVE_MEMBERS, {"group_id": gid, "ids": gone})
        await self._add_members(conn, tenant_id, gid, incoming)
        return updated

    async def delete_group(self, tenant_id: uuid.UUID, group_id: str, if_match: str | None) -> None:
        gid = parse_uuid(group_id)
        if gid is None:
            raise NotFoundError(f"Group {group_id} not found")
        async with self._transaction() as conn:
            version = (
                await conn.execute(
                    select(groups.c.version)
                    .where(
                        groups.c.id == gid,
                        groups.c.tenant_id == tenant_id,
                        groups.c.origin == SCIM_ORIGIN,
                    )
                    .with_for_update()
                )
            ).scalar_one_or_none()
            if version is None:
                raise NotFoundError(f"Group {group_id} not found")
            _check_version(if_match, version)
            # Its members, and its memberships of other groups, go before the group itself
            # (so the events read: members removed, then the group deleted).
            await conn.execute(
                delete(group_members).where(
                    group_members.c.tenant_id == tenant_id,
                    or_(group_members.c.member_id == gid, group_members.c.group_id == gid),
                )
            )
            await conn.execute(delete(groups).where(groups.c.id == gid))

    async def list_groups(
        self,
        tenant_id: uuid.UUID,
        where: ColumnElement[bool] | None,
        order_by: ColumnElement[Any] | None,
        descending: bool,
        start_index: int,
        count: int,
        with_members: bool = True,
    ) -> Page:
        query = select(*_GROUP_COLUMNS).where(
            groups.c.tenant_id == tenant_id, groups.c.origin == SCIM_ORIGIN
        )
        page = await self._page(
            tenant_id,
            query,
            groups.c,
            where,
            order_by,
            descending,
            start_index,
            count,
            lambda r: r,
        )
        rows: list[Any] = page.resources
        if not rows:
            return Page(page.total, [])
        if with_members:
            async with self._statement() as conn:  # one statement: no transaction
                members = await self._members(conn, [r.id for r in rows])
        else:
            members = {r.id: [] for r in rows}
        return Page(page.total, [_group(r, members[r.id]) for r in rows])

    async def group_keys(self, tenant_id: uuid.UUID, group_id: str) -> GroupKeys | None:
        """A SCIM group's name and externalId; None if there is no such group."""
        gid = parse_uuid(group_id)
        if gid is None:
            return None
        async with self._statement() as conn:
            row = (
                await conn.execute(
                    select(groups.c.display_name, groups.c.external_id).where(
                        groups.c.tenant_id == tenant_id,
                        groups.c.id == gid,
                        groups.c.origin == SCIM_ORIGIN,
                    )
                )
            ).one_or_none()
        if row is None:
            return None
        return GroupKeys(
            frozenset({row.display_name}),
            frozenset({row.external_id} if row.external_id else ()),
        )

    async def members_of_groups(self, tenant_id: uuid.UUID, keys: GroupKeys) -> set[uuid.UUID]:
        """The users directly in any SCIM group of the tenant with one of these names (any
        case) or externalIds."""
        names = sorted({name.lower() for name in keys.names})
        if not names and not keys.external_ids:
            return set()
        async with self._statement() as conn:
            rows = await conn.scalars(
                select(group_members.c.member_id)
                .select_from(group_members.join(groups))
                .where(
                    groups.c.tenant_id == tenant_id,
                    groups.c.origin == SCIM_ORIGIN,
                    or_(
                        func.lower(groups.c.display_name).in_(names),
                        groups.c.external_id.in_(sorted(keys.external_ids)),
                    ),
                    group_members.c.member_type == "User",
                )
            )
            return set(rows.all())

    async def purge_deleted(self, now: datetime) -> int:
        """Forget soft-deleted users kept longer than their tenant's `keep_deleted_days`."""
        async with self.single.connect() as conn:
            return int((await conn.execute(_PURGE_DELETED, {"now": now})).rowcount)

    async def set_blocked(
        self, tenant_id: uuid.UUID, user_id: uuid.UUID, reason: str | None, now: datetime
    ) -> bool:
        """Block a user (`reason` given: out at once, like a deactivated user, whatever SCIM
        says) or unblock (None); False if there is no such user."""
        async with self.single.connect() as conn:
            result = await conn.execute(
                update(users)
                .where(users.c.tenant_id == tenant_id, users.c.id == user_id)
                .values(blocked_at=now if reason is not None else None, blocked_reason=reason)
            )
            return result.rowcount == 1

    # --- product groups ------------------------------------------------------------------

    async def create_product_group(
        self, tenant_id: uuid.UUID, name: str, now: datetime
    ) -> ProductGroup:
        """A group made in the product (by an admin or the CLI). SCIM never sees it, and no
        SCIM group may take its name."""
        group_id = uuid.uuid4()
        data = {"schemas": [GROUP_SCHEMA_ID], "displayName": name}
        try:
            async with self.engine.begin() as conn:
                await _lock_group_name(conn, tenant_id, name)
                if await _group_named(conn, tenant_id, name, SCIM_ORIGIN):
                    raise ConflictError(f"a group pushed by SCIM is already named {name!r}")
                await conn.execute(
                    insert(groups).values(
                        id=group_id,
                        tenant_id=tenant_id,
                        display_name=name,
                        data=data,
                        version=1,
                        created_at=now,
                        updated_at=now,
                        origin=PRODUCT_ORIGIN,
                    )
                )
        except IntegrityError as exc:
            if is_unique_violation(exc):
                raise ConflictError(f"a group named {name!r} already exists") from None
            raise
        return ProductGroup(group_id, name, now)

    async def list_product_groups(self, tenant_id: uuid.UUID) -> list[ProductGroup]:
        async with self.single.connect() as conn:
            rows = await conn.execute(
                select(groups.c.id, groups.c.display_name, groups.c.created_at)
                .where(groups.c.tenant_id == tenant_id, groups.c.origin == PRODUCT_ORIGIN)
                .order_by(func.lower(groups.c.display_name))
            )
            return [ProductGroup(r.id, r.display_name, r.created_at) for r in rows]

    # --- paging --------------------------------------------------------------------------

    async def _page(
        self,
        tenant_id: uuid.UUID,
        query: Select[Any],
        columns: Any,
        where: ColumnElement[bool] | None,
        order_by: ColumnElement[Any] | None,
        descending: bool,
        start_index: int,
        count: int,
        build: Callable[[Any], Any],
    ) -> Page:
        """One statement reads a page and its exact total, in one snapshot.

        Unfiltered, the total is the trigger-kept count; filtered, a window count over the
        matches.
        """
        tenant_filter = query.whereclause
        assert tenant_filter is not None
        condition = and_(tenant_filter, where) if where is not None else tenant_filter
        table = columns.id.table
        counting: Select[Any]
        if where is None:
            kind = "User" if table is users else "Group"
            counting = select(func.coalesce(func.sum(resource_counts.c.n), 0)).where(
                resource_counts.c.tenant_id == tenant_id, resource_counts.c.kind == kind
            )
            total_column: ColumnElement[Any] = counting.scalar_subquery()
        else:
            counting = select(func.count()).select_from(table).where(condition)
            total_column = func.count().over()
        async with self._statement() as conn:
            if count == 0:
                return Page(int((await conn.execute(counting)).scalar_one()), [])
            ordering: list[ColumnElement[Any]] = []
            if order_by is not None:
                ordering.append(
                    order_by.desc().nulls_last() if descending else order_by.asc().nulls_last()
                )
            ordering.append(columns.id)  # a stable order across pages
            if where is None:
                # Deep offsets over a whole tenant: find the page's ids first (an index-only
                # scan), then read only those rows, never the skipped rows' bodies.
                page_ids = (
                    select(columns.id.label("page_id"), total_column.label("total"))
                    .where(condition)
                    .order_by(*ordering)
                    .offset(start_index - 1)
                    .limit(count)
                    .subquery()
                )
                statement = (
                    query.join(page_ids, page_ids.c.page_id == columns.id)
                    .add_columns(page_ids.c.total)
                    .order_by(*ordering)
                )
            else:
                statement = (
                    query.where(where)
                    .add_columns(total_column.label("total"))
                    .order_by(*ordering)
                    .offset(start_index - 1)
                    .limit(count)
                )
            rows = (await conn.execute(statement)).all()
            if rows:
                return Page(int(rows[0].total), [build(r) for r in rows])
            if start_index == 1 and where is not None:
                return Page(0, [])  # nothing matches
            # Past the end of the list: the page is empty, the total still exact.
            return Page(int((await conn.execute(counting)).scalar_one()), [])


async def _lock_group(
    conn: AsyncConnection,
    tenant_id: uuid.UUID,
    gid: uuid.UUID,
    group_id: str,
    if_match: str | None,
) -> Any:
    """The group's row, locked for this transaction, after the If-Match check."""
    statement = (
        select(*_GROUP_COLUMNS)
        .where(groups.c.tenant_id == tenant_id, groups.c.id == gid, groups.c.origin == SCIM_ORIGIN)
        .with_for_update()
    )
    row = (await conn.execute(statement)).one_or_none()
    if row is None:
        raise NotFoundError(f"Group {group_id} not found")
    _check_version(if_match, row.version)
    return row


# One name for every savepoint: the statements stay the same (prepared once per connection),
# and savepoints of one name nest (RELEASE and ROLLBACK TO act on the latest).
_SAVEPOINT = text("SAVEPOINT idgate_op")
_RELEASE_SAVEPOINT = text("RELEASE SAVEPOINT idgate_op")
_ROLLBACK_TO_SAVEPOINT = text("ROLLBACK TO SAVEPOINT idgate_op")


@contextlib.asynccontextmanager
async def _savepoint(conn: AsyncConnection) -> AsyncIterator[AsyncConnection]:
    """Work in `conn`'s transaction that is undone alone if it raises."""
    await conn.execute(_SAVEPOINT)
    try:
        yield conn
    except BaseException:
        await conn.execute(_ROLLBACK_TO_SAVEPOINT)
        await conn.execute(_RELEASE_SAVEPOINT)
        raise
    await conn.execute(_RELEASE_SAVEPOINT)


def _removal(changes: MemberChanges) -> str:
    """Which members a group PATCH statement removes (see `_patch_group_statement`)."""
    return "keep" if changes.replace is not None else "all" if changes.remove_all else "listed"


def _member_ids(group_id: uuid.UUID, values: Sequence[str]) -> dict[str, uuid.UUID]:
    """Each member value's id, parsed once; a value that is no id is refused before any
    statement runs."""
    parsed = {value: parse_uuid(value) for value in values}
    _refuse_missing([value for value, u in parsed.items() if u is None])
    ids = {value: u for value, u in parsed.items() if u is not None}
    if group_id in ids.values():
        raise InvalidValueError("a group cannot be a member of itself")
    return ids


def _distinct(ids: Mapping[str, uuid.UUID]) -> list[uuid.UUID]:
    return list(set(ids.values()))


def _check_found(ids: Mapping[str, uuid.UUID], found: set[uuid.UUID]) -> None:
    """Every member value must be the id of a User or SCIM Group of the tenant."""
    _refuse_missing([value for value, u in ids.items() if u not in found])


def _refuse_missing(missing: Sequence[str]) -> None:
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise InvalidValueError(f"members not found in this tenant: {shown}")


async def _write_group(
    conn: AsyncConnection, tenant_id: uuid.UUID, row: Any, data: dict[str, Any], now: datetime
) -> Any:
    """Write a group's new body if its version is still `row`'s, bumping it; None if not."""
    if data["displayName"].lower() != row.data["displayName"].lower():
        await _claim_group_name(conn, tenant_id, data["displayName"])
    params = {
        "b_id": row.id,
        "b_version": row.version,
        "display_name": data["displayName"],
        "external_id": data.get("externalId"),
        "data": data,
        "version": row.version + 1,
        "updated_at": now,
    }
    return (await conn.execute(_UPDATE_GROUP, params)).one_or_none()


async def _lock_group_name(conn: AsyncConnection, tenant_id: uuid.UUID, name: str) -> None:
    """Serialise, until this transaction ends, every claim on one group name in a tenant."""
    key = func.hashtextextended(
        literal(str(tenant_id), String) + ":" + func.lower(literal(name, String)), 0
    )
    await conn.execute(select(func.pg_advisory_xact_lock(key)))


async def _group_named(conn: AsyncConnection, tenant_id: uuid.UUID, name: str, origin: str) -> bool:
    statement = select(groups.c.id).where(
        groups.c.tenant_id == tenant_id,
        func.lower(groups.c.display_name) == func.lower(literal(name, String)),
        groups.c.origin == origin,
    )
    return (await conn.execute(statement.limit(1))).first() is not None


async def _claim_group_name(conn: AsyncConnection, tenant_id: uuid.UUID, name: str) -> None:
    """SCIM never adopts a product group: a SCIM group may not take a product group's name."""
    await _lock_group_name(conn, tenant_id, name)
    if await _group_named(conn, tenant_id, name, PRODUCT_ORIGIN):
        raise UniquenessError(
            f"displayName {name!r} is a group made in the product; SCIM cannot create or join it"
        )


def _check_version(if_match: str | None, version: int) -> None:
    """RFC 7644 §3.14: a write with If-Match fails with 412 unless the version matches."""
    if if_match is None or if_match.strip() == "*":
        return
    wanted = {tag.strip() for tag in if_match.split(",")}
    current = etag(version)
    if current not in wanted and current.removeprefix("W/") not in wanted:
        raise PreconditionFailedError(f"resource version is {current}, not {if_match}")


__all__ = [
    "Page",
    "Principal",
    "ProductGroup",
    "ScimStore",
    "Tenant",
    "TokenRecord",
    "etag",
    "user_name_taken",
]
