"""`/api/v1/orgs/{org}/users`: the users list (search, filters, cursor pages, CSV export),
a user's page, edits, block and unblock with a reason, deactivation, deletion, and roles
with a preview of what a change gives and takes.

Deactivation and reactivation are SCIM's (`active`), through the same use case, so events,
sessions and grants follow the same way. A user an IdP manages (pushed by a SCIM token or
created at an SSO login) keeps its profile as the IdP says: the admin API may not change
those fields unless the organisation allows overrides (`admin_overrides`).
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from gateway.access import pushed_roles
from gateway.admin.api import Api, Call, Need
from gateway.admin.callers import Level
from gateway.admin.problems import ApiError, conflict, invalid, not_found
from gateway.keys import ACCESS, ADMIN_STORE, CLOCK, ENGINE, PROVISIONING, SESSIONS, STORE
from scim.errors import ScimError
from scim.patch import PATCH_OP
from scim.schema import USER
from sso.mapping import BUILTIN_ROLES
from storage.admin_store import UserDetail, UserFilter, UserRow, idp_managed

api = Api()
TAG = "Users"
EXPORT_PAGE = 1000
REAUTH = timedelta(minutes=5)  # a hard delete by session needs a login this recent


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _iso(value: Any) -> Any:
    """Query times are ISO 8601 (what the document says), not numbers read as epochs."""
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            return parsed.astimezone(UTC)  # out of range here, not in the database
        except (ValueError, OverflowError):
            raise ValueError("an ISO 8601 date-time is required") from None
    return value


IsoTime = Annotated[datetime, BeforeValidator(_iso)]
# A page's cursor: the URL-safe base64 this API writes.
Cursor = Annotated[str | None, Field(max_length=1024, pattern=r"^[A-Za-z0-9_=-]*$")]


class UserQuery(BaseModel):
    q: str = Field("", max_length=200, description="Part of the id, name or an e-mail.")
    role: str | None = Field(None, max_length=64, description="Holds this organisation role.")
    group: uuid.UUID | None = Field(None, description="Member of this group (id).")
    status: Literal["active", "pending", "blocked", "deactivated"] | None = None
    last_login_from: IsoTime | None = Field(None, description="Last login at or after.")
    last_login_to: IsoTime | None = Field(None, description="Last login before.")
    never_logged_in: bool = False
    cursor: Cursor = Field(None, description="`next_cursor` of a page.")
    limit: int = Field(50, ge=1, le=200)

    def filter(self) -> UserFilter:
        return UserFilter(
            q=self.q.strip(),
            role=self.role,
            group=self.group,
            status=self.status,
            login_from=self.last_login_from,
            login_to=self.last_login_to,
            never_logged_in=self.never_logged_in,
        )


class UserSummary(BaseModel):
    id: uuid.UUID
    user_name: str
    name: str | None
    email: str | None
    status: str
    roles: list[str]
    last_login_at: datetime | None
    created_at: datetime


class UserPage(BaseModel):
    data: list[UserSummary]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


class GrantOut(BaseModel):
    role: str
    source: str = Field(description="mapped (rules), scim (pushed) or manual (an admin).")
    project_id: uuid.UUID | None
    project: str | None


class UserGroup(BaseModel):
    id: uuid.UUID
    name: str
    origin: str = Field(description="scim (pushed by the IdP) or product.")
    source: str


class Activity(BaseModel):
    last_login_at: datetime | None
    logins: int
    failed_logins: int
    last_failed_login_at: datetime | None


class UserOut(UserSummary):
    updated_at: datetime
    version: int
    given_name: str | None
    family_name: str | None
    timezone: str | None
    locale: str | None
    managed_by: str | None = Field(description="scim:<token> or sso:<connection>; None: admin.")
    blocked_at: datetime | None
    blocked_reason: str | None
    roles_detail: list[GrantOut]
    project_roles: list[GrantOut]
    groups: list[UserGroup]
    activity: Activity
    session_idle_minutes: float | None = Field(
        description="This user's own session idle limit; None: the organisation's."
    )
    custom_attributes: dict[str, Any] = Field(description="SCIM extension attributes.")


def _summary(row: UserRow) -> UserSummary:
    return UserSummary(
        id=row.id,
        user_name=row.user_name,
        name=row.name,
        email=row.email,
        status=row.status,
        roles=list(row.roles),
        last_login_at=row.last_login_at,
        created_at=row.created_at,
    )


def _detail(user: UserDetail) -> UserOut:
    data = user.data
    name: dict[str, Any] = data["name"] if isinstance(data.get("name"), dict) else {}
    grants = [
        GrantOut(role=g.role, source=g.source, project_id=g.project_id, project=g.project)
        for g in user.grants
    ]
    return UserOut(
        **_summary(user.row).model_dump(),
        updated_at=user.updated_at,
        version=user.version,
        given_name=name.get("givenName"),
        family_name=name.get("familyName"),
        timezone=data.get("timezone"),
        locale=data.get("locale"),
        managed_by=user.created_by if idp_managed(user.created_by) else None,
        blocked_at=user.blocked_at,
        blocked_reason=user.blocked_reason,
        roles_detail=[g for g in grants if g.project_id is None],
        project_roles=[g for g in grants if g.project_id is not None],
        groups=[
            UserGroup(id=m.group_id, name=m.name, origin=m.origin, source=m.source)
            for m in user.groups
        ],
        activity=Activity(
            last_login_at=user.row.last_login_at,
            logins=user.logins,
            failed_logins=user.failed_logins,
            last_failed_login_at=user.last_failed_login_at,
        ),
        session_idle_minutes=(
            None if user.session_idle_seconds is None else user.session_idle_seconds / 60
        ),
        custom_attributes={k: v for k, v in data.items() if k.startswith("urn:")},
    )


def _user_id(call: Call) -> uuid.UUID:
    try:
        return uuid.UUID(call.param("user"))
    except ValueError:
        raise not_found("user") from None


async def load_user(call: Call) -> UserDetail:
    user = await call.request.config_dict[ADMIN_STORE].user(call.org.id, _user_id(call))
    if user is None:
        raise not_found("user")
    return user


async def is_owner(call: Call, user: UserDetail) -> bool:
    """Whether the user is an owner, or would be one again once back: a blocked or
    deactivated user's grants from the rules and the IdP are suspended, not gone."""
    if "owner" in user.row.roles:
        return True
    if user.row.status not in ("blocked", "deactivated"):
        return False
    explained = await call.request.config_dict[ACCESS].explain_user(call.org.id, user.row.id)
    from_rules = explained is not None and "owner" in explained[0].roles()
    return from_rules or "owner" in pushed_roles(user.data)


async def target(call: Call) -> UserDetail:
    """The user a write is about; an owner only an owner may change."""
    user = await load_user(call)
    if await is_owner(call, user):
        call.require(Level.OWNER, "only an owner may change an owner")
    return user


@api.route(
    "GET", "/orgs/{org}/users", "List and search users", Need.READ, TAG,
    query=UserQuery, response=UserPage,
    description="Search matches part of the id, the userName, the name or any e-mail, "
    "in any case. Ordered by userName; follow `next_cursor` for the next page.",
)  # fmt: skip
async def list_users(call: Call) -> UserPage:
    query: UserQuery = call.query
    return await _page(call, query.filter(), query.cursor, query.limit)


async def _page(call: Call, found: UserFilter, cursor: str | None, limit: int) -> UserPage:
    try:
        rows, after = await call.request.config_dict[ADMIN_STORE].users(
            call.org.id, found, cursor, limit
        )
    except ValueError:
        raise invalid("not a cursor this API gave", "cursor") from None
    return UserPage(data=[_summary(r) for r in rows], next_cursor=after)


_EXPORT_COLUMNS = ("id", "user_name", "name", "email", "status", "roles", "last_login_at",
                   "created_at")  # fmt: skip


@api.route(
    "GET", "/orgs/{org}/users.csv", "Export users as CSV", Need.READ, TAG,
    query=UserQuery, content_type="text/csv",
    description="Every user the filters match (the `cursor` and `limit` are ignored).",
)  # fmt: skip
async def export_users(call: Call) -> web.StreamResponse:
    query: UserQuery = call.query
    store = call.request.config_dict[ADMIN_STORE]
    response = web.StreamResponse(
        headers={
            **call.headers,
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="{call.org.slug}-users.csv"',
        }
    )

    async def pages() -> AsyncIterator[list[UserRow]]:
        cursor = None
        while True:
            rows, cursor = await store.users(call.org.id, query.filter(), cursor, EXPORT_PAGE)
            yield rows
            if cursor is None:
                return

    await response.prepare(call.request)
    await response.write(_csv_lines([list(_EXPORT_COLUMNS)]))
    async for rows in pages():
        await response.write(_csv_lines([_csv_row(r) for r in rows]))
    await response.write_eof()
    return response


def _csv_row(row: UserRow) -> list[str]:
    def text(value: Any) -> str:
        if value is None:
            return ""
        return value.isoformat() if isinstance(value, datetime) else str(value)

    values = [row.id, row.user_name, row.name, row.email, row.status, ";".join(row.roles),
              row.last_login_at, row.created_at]  # fmt: skip
    # A cell a spreadsheet would run as a formula is quoted as text (CSV injection).
    return ["'" + t if t[:1] in ("=", "+", "-", "@", "\t", "\r") else t for t in map(text, values)]


def _csv_lines(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return out.getvalue().encode()


@api.route("GET", "/orgs/{org}/users/{user}", "A user", Need.READ, TAG, response=UserOut)
async def get_user(call: Call) -> UserOut:
    return _detail(await load_user(call))


class UserEdit(Strict):
    given_name: str | None = Field(None, max_length=256)
    family_name: str | None = Field(None, max_length=256)
    display_name: str | None = Field(None, max_length=256)
    email: str | None = Field(None, max_length=320, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    timezone: str | None = Field(None, max_length=64)
    locale: str | None = Field(None, max_length=35)


def _patch_operations(edit: UserEdit) -> list[dict[str, Any]]:
    paths = {
        "given_name": "name.givenName",
        "family_name": "name.familyName",
        "display_name": "displayName",
        "timezone": "timezone",
        "locale": "locale",
    }
    changes = edit.model_dump(exclude_unset=True)
    operations: list[dict[str, Any]] = []
    for field, path in paths.items():
        if field in changes:
            value = changes[field]
            operations.append(
                {"op": "remove", "path": path}
                if value in (None, "")
                else {"op": "replace", "path": path, "value": value}
            )
    if "email" in changes:
        email = changes["email"]
        operations.append(
            {"op": "remove", "path": "emails"}
            if not email
            else {"op": "replace", "path": "emails", "value": [
                {"value": email, "type": "work", "primary": True}]}
        )  # fmt: skip
    return operations


_IDP_FIELDS = {"given_name", "family_name", "display_name", "email"}


@api.route(
    "PATCH", "/orgs/{org}/users/{user}", "Edit a user's profile", Need.ADMIN, TAG,
    body=UserEdit, response=UserOut, errors=(409,),
    description="Only the fields given change; null or empty removes one. The name and "
    "e-mail of a user the IdP manages are the IdP's unless the organisation allows overrides.",
)  # fmt: skip
async def edit_user(call: Call) -> UserOut:
    user = await target(call)
    edit: UserEdit = call.body
    changed = set(edit.model_dump(exclude_unset=True))
    if (
        idp_managed(user.created_by)
        and changed & _IDP_FIELDS
        and not call.org.settings.get("admin_overrides")
    ):
        fields = ", ".join(sorted(changed & _IDP_FIELDS))
        raise ApiError(409, "idp_managed", f"the IdP manages {fields} of this user")
    operations = _patch_operations(edit)
    if operations:
        await provisioning(call).patch(
            call.org.id, USER, str(user.row.id), patch_body(operations), None
        )
    return _detail(await load_user(call))


def provisioning(call: Call) -> Any:
    return call.request.config_dict[PROVISIONING].acting(call.actor, context=call.context)


def patch_body(operations: list[dict[str, Any]]) -> dict[str, Any]:
    """A SCIM PATCH of these operations: the admin API's edits are SCIM's writes."""
    return {"schemas": [PATCH_OP], "Operations": operations}


class BlockBody(Strict):
    reason: str = Field(min_length=1, max_length=1000, description="Why; kept and audited.")

    @field_validator("reason")
    @classmethod
    def not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("a reason is required")
        return value.strip()


@api.route(
    "POST", "/orgs/{org}/users/{user}/block", "Block a user", Need.ADMIN, TAG,
    body=BlockBody, response=UserOut, errors=(409,),
    description="Out at once: sessions end on every replica, mapped grants are suspended.",
)  # fmt: skip
async def block_user(call: Call) -> UserOut:
    user = await target(call)
    if user.row.id == call.caller.user_id:
        raise conflict("you cannot block yourself")
    await provisioning(call).set_blocked(call.org.id, user.row.id, call.body.reason)
    return _detail(await load_user(call))


@api.route(
    "POST", "/orgs/{org}/users/{user}/unblock", "Unblock a user", Need.ADMIN, TAG,
    body=BlockBody, response=UserOut,
)  # fmt: skip
async def unblock_user(call: Call) -> UserOut:
    user = await target(call)
    writer = provisioning(call)
    writer.context["reason"] = call.body.reason
    await writer.set_blocked(call.org.id, user.row.id, None)
    return _detail(await load_user(call))


class SessionPolicy(Strict):
    idle_minutes: float | None = Field(
        gt=0, le=60 * 24 * 30,
        description="Sessions of this user end after this long without a request; "
        "null: the organisation's limit.",
    )  # fmt: skip


@api.route(
    "PUT", "/orgs/{org}/users/{user}/session-policy", "Set a user's session idle limit",
    Need.ADMIN, TAG, body=SessionPolicy, response=UserOut,
    description="Applies at once to the user's live sessions on every replica, and to its "
    "next logins.",
)  # fmt: skip
async def set_session_policy(call: Call) -> UserOut:
    user = await target(call)
    minutes = call.body.idle_minutes
    seconds = None if minutes is None else max(1, round(minutes * 60))
    clock = call.request.config_dict[CLOCK]
    await call.request.config_dict[ADMIN_STORE].set_session_idle(
        call.org.id, user.row.id, seconds, clock(), call.actor
    )
    return _detail(await load_user(call))


async def _set_active(call: Call, active: bool) -> UserOut:
    user = await target(call)
    if not active and user.row.id == call.caller.user_id:
        raise conflict("you cannot deactivate yourself")
    operations = [{"op": "replace", "path": "active", "value": active}]
    await provisioning(call).patch(
        call.org.id, USER, str(user.row.id), patch_body(operations), None
    )
    return _detail(await load_user(call))


@api.route(
    "POST", "/orgs/{org}/users/{user}/deactivate", "Deactivate a user", Need.ADMIN, TAG,
    response=UserOut, errors=(409,),
    description="As SCIM `active: false`: login refused, sessions revoked, data kept.",
)  # fmt: skip
async def deactivate_user(call: Call) -> UserOut:
    return await _set_active(call, False)


@api.route(
    "POST", "/orgs/{org}/users/{user}/reactivate", "Reactivate a user", Need.ADMIN, TAG,
    response=UserOut,
)  # fmt: skip
async def reactivate_user(call: Call) -> UserOut:
    return await _set_active(call, True)


class DeleteQuery(BaseModel):
    mode: Literal["soft", "hard"] | None = Field(
        None, description="soft keeps the user until purged; hard erases it. Default: the "
        "organisation's policy. A hard delete needs an owner key or a login of 5 minutes ago.",
    )  # fmt: skip


@api.route(
    "DELETE", "/orgs/{org}/users/{user}", "Delete a user", Need.ADMIN, TAG,
    query=DeleteQuery, status=204, errors=(409,),
)  # fmt: skip
async def delete_user(call: Call) -> None:
    user = await target(call)
    if user.row.id == call.caller.user_id:
        raise conflict("you cannot delete yourself")
    hard = None if call.query.mode is None else call.query.mode == "hard"
    if hard or (hard is None and call.org.settings.get("delete_policy") == "hard"):
        _check_recent_login(call)
    await provisioning(call).delete(call.org.id, USER, str(user.row.id), None, hard)


def _check_recent_login(call: Call) -> None:
    caller = call.caller
    if caller.key_id is not None:
        if call.standing is None or call.standing.level < Level.OWNER:
            raise ApiError(403, "forbidden", "a hard delete by API key needs an owner key")
        return
    started = caller.session_started
    if started is None or call.request.config_dict[CLOCK]() - started > REAUTH:
        raise ApiError(
            401,
            "reauthentication_required",
            "a hard delete needs a login of the last 5 minutes: sign in again",
        )


# --- roles -----------------------------------------------------------------------------------


class ProjectRole(Strict):
    project: str = Field(min_length=1, max_length=256)
    role: str = Field(min_length=1, max_length=128)


class RolesBody(Strict):
    roles: list[str] = Field(max_length=64, description="Organisation roles given by hand.")
    project_roles: list[ProjectRole] = Field(default_factory=list, max_length=256)


class RoleImpact(BaseModel):
    roles_before: list[str]
    roles_after: list[str]
    gained: list[str]
    lost: list[str]
    project_roles_gained: list[ProjectRole]
    project_roles_lost: list[ProjectRole]
    kept_by_rules: list[str] = Field(
        description="Roles the mapping rules or the IdP give, which this change cannot take."
    )
    applied: bool


Pair = tuple[str | None, str]  # (project, role); project None: the organisation


def _pairs(user: UserDetail, manual: bool) -> set[Pair]:
    return {(g.project, g.role) for g in user.grants if (g.source == "manual") == manual}


def _canonical(names: Iterable[str], wanted: Iterable[str], field: str) -> dict[str, str]:
    """Each wanted name as the catalogue spells it (names compare in any case)."""
    known = {n.lower(): n for n in names}
    unknown = sorted({w for w in wanted if w.lower() not in known})
    if unknown:
        raise invalid(f"unknown: {', '.join(unknown)}", field)
    return {w: known[w.lower()] for w in wanted}


async def _wanted(call: Call, body: RolesBody) -> set[Pair]:
    names = await call.request.config_dict[ACCESS].store.catalogue(call.org.id)
    roles = _canonical([*BUILTIN_ROLES, *names.roles], body.roles, "roles")
    project_roles = _canonical(
        [*BUILTIN_ROLES, *names.roles], [p.role for p in body.project_roles], "project_roles"
    )
    projects = _canonical(names.projects, [p.project for p in body.project_roles], "project_roles")
    return {(None, roles[r]) for r in body.roles} | {
        (projects[p.project], project_roles[p.role]) for p in body.project_roles
    }


def _impact(call: Call, user: UserDetail, wanted: set[Pair]) -> RoleImpact:
    manual, other = _pairs(user, True), _pairs(user, False)
    if ((None, "owner") in manual) != ((None, "owner") in wanted):
        call.require(Level.OWNER, "only an owner may give or take the owner role")
    before, after = manual | other, wanted | other

    def org(pairs: set[Pair]) -> list[str]:
        return sorted({r for p, r in pairs if p is None})

    def projects(pairs: set[Pair]) -> list[ProjectRole]:
        return [ProjectRole(project=p, role=r) for p, r in sorted(pairs, key=str) if p]

    return RoleImpact(
        roles_before=org(before),
        roles_after=org(after),
        gained=org(after - before),
        lost=org(before - after),
        project_roles_gained=projects(after - before),
        project_roles_lost=projects(before - after),
        kept_by_rules=org(other),
        applied=False,
    )


@api.route(
    "POST", "/orgs/{org}/users/{user}/roles/preview", "Preview a change of roles", Need.ADMIN,
    TAG, body=RolesBody, response=RoleImpact,
    description="What the user would gain and lose if their hand-given roles became these. "
    "Changes nothing.",
)  # fmt: skip
async def preview_roles(call: Call) -> RoleImpact:
    user = await target(call)
    return _impact(call, user, await _wanted(call, call.body))


@api.route(
    "PUT", "/orgs/{org}/users/{user}/roles", "Set the roles given by hand", Need.ADMIN, TAG,
    body=RolesBody, response=RoleImpact,
    description="The user's hand-given roles become these; roles from the rules or the IdP "
    "stay. Answers what was gained and lost.",
)  # fmt: skip
async def set_roles(call: Call) -> RoleImpact:
    user = await target(call)
    wanted = await _wanted(call, call.body)
    impact = _impact(call, user, wanted)
    manual = _pairs(user, True)
    await call.request.config_dict[ACCESS].store.set_manual(
        call.org.id,
        user.row.id,
        sorted(wanted - manual, key=str),
        sorted(manual - wanted, key=str),
        call.request.config_dict[CLOCK](),
        call.actor,
    )
    return impact.model_copy(update={"applied": True})


# --- sessions and access review --------------------------------------------------------------


class Revoked(BaseModel):
    revoked: int = Field(description="Sessions ended.")


@api.route(
    "POST", "/orgs/{org}/users/{user}/sessions/revoke", "Sign a user out everywhere",
    Need.ADMIN, TAG, response=Revoked,
)  # fmt: skip
async def revoke_sessions(call: Call) -> Revoked:
    user = await target(call)
    config = call.request.config_dict
    count = await config[SESSIONS].revoke_user(user.row.id, config[CLOCK]())
    await provisioning(call).audited(call.org.id, "session.revoked_all",
                                         f"user:{user.row.id}", {"sessions": count})  # fmt: skip
    return Revoked(revoked=count)


REVIEW = "Access review"


class ReviewQuery(BaseModel):
    inactive_days: int = Field(90, ge=1, le=3650, description="No login for this many days.")
    cursor: Cursor = Field(None, description="`next_cursor` of a page.")
    limit: int = Field(50, ge=1, le=200)


def _inactive_since(call: Call, days: int) -> datetime:
    return call.request.config_dict[CLOCK]() - timedelta(days=days)


@api.route(
    "GET", "/orgs/{org}/access-review", "Users inactive for N days", Need.READ, REVIEW,
    query=ReviewQuery, response=UserPage,
    description="Active users with no login for `inactive_days` (90) days; one who never "
    "logged in counts from their creation.",
)  # fmt: skip
async def access_review(call: Call) -> UserPage:
    query: ReviewQuery = call.query
    since = _inactive_since(call, query.inactive_days)
    return await _page(call, UserFilter(inactive_since=since), query.cursor, query.limit)


class ReviewDeactivation(Strict):
    user_ids: list[uuid.UUID] = Field(min_length=1, max_length=1000)
    inactive_days: int = Field(90, ge=1, le=3650)


class Deactivated(BaseModel):
    deactivated: list[uuid.UUID]
    skipped: list[uuid.UUID] = Field(
        description="Not deactivated: no longer inactive, not active, not found, an owner "
        "(for an admin), or yourself."
    )


@api.route(
    "POST", "/orgs/{org}/access-review/deactivate", "Deactivate inactive users", Need.ADMIN,
    REVIEW, body=ReviewDeactivation, response=Deactivated,
    description="The one-click outcome of a review: each user still inactive is deactivated "
    "as SCIM `active: false` would.",
)  # fmt: skip
async def deactivate_inactive(call: Call) -> Deactivated:
    body: ReviewDeactivation = call.body
    store = call.request.config_dict[ADMIN_STORE]
    since = _inactive_since(call, body.inactive_days)
    wanted = list(dict.fromkeys(body.user_ids))
    still = {r.id: r for r in await store.users_by_id(
        call.org.id, wanted, UserFilter(inactive_since=since))}  # fmt: skip
    may_touch_owners = call.standing is not None and call.standing.level >= Level.OWNER
    done: list[uuid.UUID] = []
    config = call.request.config_dict
    # One transaction: each user's change is a savepoint of it, so one that fails (deleted
    # meanwhile) is skipped without undoing the others.
    async with config[ENGINE].begin() as conn:
        writer = config[PROVISIONING].acting(
            call.actor, context=call.context, store=config[STORE].within(conn), deferred=True
        )
        for user_id in wanted:
            row = still.get(user_id)
            if row is None or user_id == call.caller.user_id:
                continue
            if "owner" in row.roles and not may_touch_owners:
                continue
            operations = [{"op": "replace", "path": "active", "value": False}]
            try:
                await writer.patch(call.org.id, USER, str(user_id), patch_body(operations), None)
            except ScimError:
                continue
            done.append(user_id)
    await writer.flush()
    return Deactivated(deactivated=done, skipped=[u for u in wanted if u not in done])
