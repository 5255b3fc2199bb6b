"""`/api/v1/me`: who the caller is and the organisations they may act in, with their level in
each (their own; a reseller's dependents, as admin at most; the other organisations where
the same person has a user, linked to their account), and the two things a person does
across organisations: accept an invitation to another one with the account they are logged
in with, and switch to another one without logging in again."""

from __future__ import annotations

import uuid

from aiohttp import web
from pydantic import BaseModel, Field

from gateway.admin.api import Api, Call, Need
from gateway.admin.callers import Level, level_of_roles, standing
from gateway.admin.problems import ApiError, not_found
from gateway.admin.users import Strict
from gateway.auth_api import SESSION_COOKIE, start_session
from gateway.credentials import hash_token
from gateway.keys import ACCOUNTS, ADMIN_STORE, AUDIT, CLOCK, SESSION_CACHE, STORE
from storage.audit_store import AuditEntry

api = Api()
TAG = "Me"


class OrgStanding(BaseModel):
    slug: str
    name: str
    level: str = Field(description="owner, admin, read or none.")
    via: str | None = Field(
        description="The reseller this standing comes through, or `account` for another "
        "organisation of the same person (switch to it first)."
    )


class Me(BaseModel):
    actor: str
    user_id: uuid.UUID | None
    api_key: str | None
    scopes: list[str]
    roles: list[str]
    organisations: list[OrgStanding]


@api.route("GET", "/me", "Who is calling, and where they stand", Need.SIGNED_IN, TAG,
           response=Me)  # fmt: skip
async def me(call: Call) -> Me:
    caller = call.caller
    config = call.request.config_dict
    store = config[ADMIN_STORE]
    home = await store.org(caller.tenant_slug)
    orgs = [home] if home is not None else []
    if caller.home_level > Level.NONE:
        orgs += await store.dependents(caller.tenant_id)
    standings = [s for s in (standing(caller, org) for org in orgs) if s is not None]
    listed = [
        OrgStanding(slug=s.org.slug, name=s.org.name, level=s.level.name.lower(), via=s.via)
        for s in standings
    ]
    if caller.user_id is not None:
        listed += [
            OrgStanding(slug=o.slug, name=o.name, level=level_of_roles(o.roles).name.lower(),
                        via="account")
            for o in await config[ACCOUNTS].linked(caller.user_id)
        ]  # fmt: skip
    return Me(
        actor=caller.actor,
        user_id=caller.user_id,
        api_key=caller.key_id,
        scopes=list(caller.scopes),
        roles=list(caller.roles),
        organisations=listed,
    )


def _person(call: Call) -> uuid.UUID:
    if call.caller.user_id is None:
        raise ApiError(403, "forbidden", "this needs a person's session, not an API key")
    return call.caller.user_id


class AcceptBody(Strict):
    secret: str = Field(min_length=8, max_length=256, description="The invitation link's end.")


class Joined(BaseModel):
    organisation: str
    user_id: uuid.UUID


@api.route(
    "POST", "/invitations/accept", "Accept an invitation with your account", Need.SIGNED_IN,
    TAG, body=AcceptBody, response=Joined, errors=(409,),
    description="For a person logged in to one organisation and invited (at one of their "
    "e-mails) to another: the invited user joins their account, and they can switch to it.",
)  # fmt: skip
async def accept_invitation(call: Call) -> Joined:
    person = _person(call)
    config = call.request.config_dict
    tenant_id, user_id = await config[ACCOUNTS].accept(
        hash_token(call.body.secret), person, config[CLOCK]()
    )
    org = await config[ADMIN_STORE].org_by_id(tenant_id)
    assert org is not None
    return Joined(organisation=org.slug, user_id=user_id)


class SwitchBody(Strict):
    organisation: str = Field(min_length=1, max_length=128)


@api.route(
    "POST", "/me/switch", "Switch to another of your organisations", Need.SIGNED_IN, TAG,
    body=SwitchBody, response=Joined,
    description="Ends this session and starts one as your user in that organisation (the "
    "new cookie is in the answer).",
)  # fmt: skip
async def switch(call: Call) -> web.StreamResponse:
    person = _person(call)
    config = call.request.config_dict
    wanted = call.body.organisation
    target = next((o for o in await config[ACCOUNTS].linked(person) if o.slug == wanted), None)
    if target is None:
        raise not_found("organisation of yours")
    tenant = await config[STORE].get_tenant(target.slug)
    assert tenant is not None
    answer = Joined(organisation=target.slug, user_id=target.user_id)
    response = web.Response(body=answer.model_dump_json(), content_type="application/json")
    await start_session(
        call.request, tenant, target.user_id, None, response, call.caller.session_started
    )
    now = config[CLOCK]()
    await config[SESSION_CACHE].revoke(hash_token(call.request.cookies[SESSION_COOKIE]), now)
    entry = AuditEntry("session.switched", f"user:{target.user_id}",
                       {"from": call.caller.tenant_slug, **call.context})  # fmt: skip
    await config[AUDIT].record(target.tenant_id, now, f"user:{person}", entry)
    return response
