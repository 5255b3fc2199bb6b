"""`/api/v1/orgs/{org}/invitations` and `/imports`: adding people by e-mail, one by one or
from a CSV file.

An invited person is a user with status `pending` until they accept their link; the link is
answered once (idgate sends no mail: the product or the console passes it on), expires after
`invitation_days` (7), and can be sent again (a new link; the old one stops working) or
revoked (the pending user is deleted). Roles, project roles and product groups are given in
the same transaction as the user.

A CSV import (`gateway.csv_import` plans it) is previewed, then confirmed with the same file.
Its new people are invited as above; people who exist get the roles and groups the file
adds. A confirm is recorded by the digest of the work it does: the same file confirmed twice
at once is done once, and a file confirmed again once done answers the first outcome and
changes nothing.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timedelta
from typing import Any

import orjson
from pydantic import BaseModel, Field

from gateway.admin.api import Api, Call, Need
from gateway.admin.callers import Level
from gateway.admin.problems import ApiError, invalid, not_found
from gateway.admin.users import ProjectRole, Strict, is_owner, patch_body, provisioning
from gateway.credentials import new_invitation
from gateway.csv_import import (
    ExistingUser,
    ImportContext,
    ImportFileError,
    Plan,
    error_csv,
    plan_import,
)
from gateway.keys import ADMIN_STORE, CLOCK, ENGINE, INVITATIONS, PROVISIONING, SETTINGS, STORE
from scim.schema import USER
from sso.mapping import BUILTIN_ROLES, OWNER
from storage.admin_store import Catalogue
from storage.invitation_store import Access, Invitation, Invitee

api = Api()
TAG = "Invitations"
IMPORTS = "Imports"


class InviteBody(Strict):
    email: str = Field(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    name: str | None = Field(None, max_length=256)
    roles: list[str] = Field(default_factory=list, max_length=64)
    project_roles: list[ProjectRole] = Field(default_factory=list, max_length=256)
    groups: list[str] = Field(default_factory=list, max_length=256, description="Product groups.")


class InvitationOut(BaseModel):
    id: str
    user_id: uuid.UUID | None
    email: str
    status: str = Field(description="pending, expired, accepted or revoked.")
    created_by: str
    created_at: datetime
    sent_at: datetime
    sends: int
    expires_at: datetime


class InvitationSent(BaseModel):
    invitation: InvitationOut
    link: str = Field(description="The link to pass on; shown only now.")


class InvitationList(BaseModel):
    data: list[InvitationOut]


def _out(invitation: Invitation, now: datetime) -> InvitationOut:
    return InvitationOut(
        id=invitation.id,
        user_id=invitation.user_id,
        email=invitation.email,
        status=invitation.state(now),
        created_by=invitation.created_by,
        created_at=invitation.created_at,
        sent_at=invitation.sent_at,
        sends=invitation.sends,
        expires_at=invitation.expires_at,
    )


def _link(call: Call, secret: str) -> str:
    return f"{call.request.config_dict[SETTINGS].base_url}/invite/{secret}"


def _expiry(call: Call, now: datetime) -> datetime:
    return now + timedelta(days=call.request.config_dict[SETTINGS].invitation_days)


def _resolve(names: dict[str, Any], wanted: list[str], field: str) -> list[Any]:
    """Each wanted name's entry in `names`, compared in any case (400 naming the unknown)."""
    lower = {n.lower(): v for n, v in names.items()}
    unknown = sorted({w for w in wanted if w.lower() not in lower})
    if unknown:
        raise invalid(f"unknown: {', '.join(unknown)}", field)
    return [lower[w.lower()] for w in wanted]


def _access(call: Call, catalogue: Catalogue, body: InviteBody) -> Access:
    role_names = {r: r for r in (*BUILTIN_ROLES, *catalogue.roles)}
    roles = _resolve(role_names, body.roles, "roles")
    if OWNER in roles:
        call.require(Level.OWNER, "only an owner may give the owner role")
    project_ids = _resolve(catalogue.projects, [p.project for p in body.project_roles],
                           "project_roles")  # fmt: skip
    project_roles = _resolve(role_names, [p.role for p in body.project_roles], "project_roles")
    return Access(
        tuple(dict.fromkeys(roles)),
        tuple(dict.fromkeys(zip(project_ids, project_roles, strict=True))),
        tuple(dict.fromkeys(_resolve(catalogue.groups, body.groups, "groups"))),
    )


@api.route(
    "POST", "/orgs/{org}/invitations", "Invite a person", Need.ADMIN, TAG,
    body=InviteBody, response=InvitationSent, status=201, errors=(409,),
    description="Creates the user (status pending) with the roles, project roles and groups "
    "given, and answers the invitation link.",
)  # fmt: skip
async def invite(call: Call) -> InvitationSent:
    body: InviteBody = call.body
    config = call.request.config_dict
    access = _access(call, await config[ADMIN_STORE].catalogue(call.org.id), body)
    invitation_id, secret, secret_hash = new_invitation()
    now = config[CLOCK]()
    email = body.email.strip().lower()
    person = Invitee(email, body.name, access, invitation_id, secret_hash)
    [user_id] = await config[INVITATIONS].invite(
        call.org.id, [person], now, _expiry(call, now), call.actor
    )
    await provisioning(call).changed(call.org.id, [user_id])
    invitation = await config[INVITATIONS].get(call.org.id, invitation_id)
    assert invitation is not None
    return InvitationSent(invitation=_out(invitation, now), link=_link(call, secret))


@api.route("GET", "/orgs/{org}/invitations", "List invitations", Need.READ, TAG,
           response=InvitationList)  # fmt: skip
async def list_invitations(call: Call) -> InvitationList:
    config = call.request.config_dict
    now = config[CLOCK]()
    found = await config[INVITATIONS].recent(call.org.id)
    return InvitationList(data=[_out(i, now) for i in found])


@api.route(
    "POST", "/orgs/{org}/invitations/{invitation}/resend", "Send an invitation again",
    Need.ADMIN, TAG, response=InvitationSent,
    description="A new link and a new expiry; the previous link stops working.",
)  # fmt: skip
async def resend_invitation(call: Call) -> InvitationSent:
    config = call.request.config_dict
    await _may_handle(call, call.param("invitation"))
    _, secret, secret_hash = new_invitation()
    now = config[CLOCK]()
    invitation = await config[INVITATIONS].resend(
        call.org.id, call.param("invitation"), secret_hash, now, _expiry(call, now), call.actor
    )
    if invitation is None:
        raise not_found("open invitation")
    return InvitationSent(invitation=_out(invitation, now), link=_link(call, secret))


async def _may_handle(call: Call, invitation_id: str) -> None:
    """An invitation to become an owner is an owner's to send again or revoke."""
    config = call.request.config_dict
    invitation = await config[INVITATIONS].get(call.org.id, invitation_id)
    if invitation is None or invitation.user_id is None:
        return
    user = await config[ADMIN_STORE].user(call.org.id, invitation.user_id)
    if user is not None and await is_owner(call, user):
        call.require(Level.OWNER, "only an owner may handle an owner's invitation")


@api.route(
    "DELETE", "/orgs/{org}/invitations/{invitation}", "Revoke an invitation", Need.ADMIN, TAG,
    status=204, description="The link stops working and the pending user is deleted.",
)  # fmt: skip
async def revoke_invitation(call: Call) -> None:
    config = call.request.config_dict
    await _may_handle(call, call.param("invitation"))
    async with config[ENGINE].begin() as conn:
        found, user_id = await config[INVITATIONS].revoke(
            conn, call.org.id, call.param("invitation"), config[CLOCK](), call.actor
        )
        if not found:
            raise not_found("open invitation")
        writer = config[PROVISIONING].acting(
            call.actor, context=call.context, store=config[STORE].within(conn), deferred=True
        )
        if user_id is not None:
            await writer.delete(call.org.id, USER, str(user_id), None, hard=True)
    await writer.flush()


# --- CSV import --------------------------------------------------------------------------------


class RowProblem(BaseModel):
    line: int
    column: str
    code: str
    message: str


class ImportPreview(BaseModel):
    counts: dict[str, int] = Field(description="Rows to add, update, skip, and rows in error.")
    errors: list[RowProblem]
    digest: str
    error_csv: str = Field(description="The rows in error with their reasons, as CSV.")


class Invited(BaseModel):
    email: str
    user_id: uuid.UUID
    invitation_id: str
    link: str


class ImportResult(BaseModel):
    counts: dict[str, int]
    invited: list[Invited] = Field(description="New people and their links; shown only now.")
    replayed: bool = Field(description="This file was confirmed before: nothing changed.")


async def _plan(call: Call) -> tuple[Plan, Catalogue]:
    config = call.request.config_dict
    store = config[ADMIN_STORE]
    catalogue = await store.catalogue(call.org.id)
    context = ImportContext(
        roles=frozenset(catalogue.roles),
        groups=frozenset(catalogue.groups),
        can_grant_owner=call.standing is not None and call.standing.level >= Level.OWNER,
        allow_scim_override=bool(call.org.settings.get("admin_overrides")),
    )
    try:
        first = plan_import(call.body, context)
        emails = sorted({a.email for a in first.actions})
        people = await store.people(call.org.id, emails)
        existing = {
            address.lower(): ExistingUser(p.id, p.display_name, p.roles, p.groups, p.managed)
            for p in people
            for address in (p.user_name, *p.emails)
        }
        plan = plan_import(call.body, _with_users(context, existing)) if existing else first
    except ImportFileError as exc:
        raise ApiError(400, exc.code, exc.message) from None
    return plan, catalogue


def _with_users(context: ImportContext, users: dict[str, ExistingUser]) -> ImportContext:
    return ImportContext(
        context.roles, context.groups, users, context.can_grant_owner, context.allow_scim_override
    )


@api.route(
    "POST", "/orgs/{org}/imports/preview", "Preview a CSV import", Need.ADMIN, IMPORTS,
    raw_body="text/csv", response=ImportPreview,
    description="Columns `email,name,role,groups` (groups and roles separated by `;`), up "
    "to 1,000 rows. Changes nothing.",
)  # fmt: skip
async def preview_import(call: Call) -> ImportPreview:
    plan, _ = await _plan(call)
    return ImportPreview(
        counts=plan.counts,
        errors=[RowProblem(line=e.line, column=e.column, code=e.code, message=e.message)
                for e in plan.errors],
        digest=plan.digest,
        error_csv=error_csv(plan),
    )  # fmt: skip


def _work_digest(plan: Plan) -> str:
    """What a confirm would do, as a digest: the same file planned against the same state by
    an equally entitled admin. Two confirms of it at once do it once; a file whose rows
    could not all be done (an unknown group since created, an owner row an admin could not
    import) is done again when they can."""
    work = [(a.kind, a.email, a.name, a.roles, a.groups) for a in plan.actions if a.kind != "skip"]
    return hashlib.sha256(orjson.dumps([plan.digest, work])).hexdigest()


@api.route(
    "POST", "/orgs/{org}/imports", "Confirm a CSV import", Need.ADMIN, IMPORTS,
    raw_body="text/csv", response=ImportResult,
    description="Carries out the preview of the same file: invites the new people, adds roles "
    "and groups to the others, all or nothing. Rows in error are left out. The same file "
    "confirmed again changes nothing.",
)  # fmt: skip
async def confirm_import(call: Call) -> ImportResult:
    config = call.request.config_dict
    plan, catalogue = await _plan(call)
    counts = plan.counts
    now = config[CLOCK]()
    group_ids = {name.lower(): gid for name, gid in catalogue.groups.items()}
    people: list[Invitee] = []
    links: dict[str, str] = {}
    given: list[tuple[uuid.UUID, Access]] = []
    for action in plan.actions:
        access = Access(action.roles, (), tuple(group_ids[g.lower()] for g in action.groups))
        if action.kind == "add":
            invitation_id, secret, secret_hash = new_invitation()
            people.append(Invitee(action.email, action.name, access, invitation_id, secret_hash))
            links[invitation_id] = secret
        elif action.kind == "update" and action.user_id is not None:
            given.append((action.user_id, access))
    renamed = [a for a in plan.actions if a.kind == "update" and a.name and a.user_id]
    if not people and not given:
        # Nothing to do: say whether that is because this file was imported already.
        before = await config[INVITATIONS].imported(call.org.id, plan.digest)
        if before is not None:
            return ImportResult(counts=before["counts"], invited=[], replayed=True)
        return ImportResult(counts=counts, invited=[], replayed=False)
    async with config[ENGINE].begin() as conn:
        ids, first = await config[INVITATIONS].run_import(
            conn, call.org.id, _work_digest(plan), people, given,
            {"counts": counts, "file": plan.digest}, now, _expiry(call, now), call.actor,
        )  # fmt: skip
        if first is not None:  # the same work was done by an import that ran meanwhile
            return ImportResult(counts=first["counts"], invited=[], replayed=True)
        writer = config[PROVISIONING].acting(
            call.actor, context=call.context, store=config[STORE].within(conn), deferred=True
        )
        for action in renamed:
            operations = [{"op": "replace", "path": "displayName", "value": action.name}]
            await writer.patch(call.org.id, USER, str(action.user_id), patch_body(operations), None)
        await writer.changed(call.org.id, [*ids, *(u for u, _ in given)])
    await writer.flush()
    invited = [
        Invited(email=p.email, user_id=u, invitation_id=p.invitation_id,
                link=_link(call, links[p.invitation_id]))
        for p, u in zip(people, ids, strict=True)
    ]  # fmt: skip
    return ImportResult(counts=counts, invited=invited, replayed=False)
