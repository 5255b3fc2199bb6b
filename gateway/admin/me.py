"""`GET /api/v1/me`: who the caller is, and the organisations they may act in with their
level in each (their own; a reseller's dependents, as admin), for a console to offer an
organisation switcher."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, Field

from gateway.admin.api import Api, Call, Need
from gateway.admin.callers import Level, standing
from gateway.keys import ADMIN_STORE

api = Api()


class OrgStanding(BaseModel):
    slug: str
    name: str
    level: str = Field(description="owner, admin, read or none.")
    via: str | None = Field(description="The reseller this standing comes through.")


class Me(BaseModel):
    actor: str
    user_id: uuid.UUID | None
    api_key: str | None
    scopes: list[str]
    roles: list[str]
    organisations: list[OrgStanding]


@api.route("GET", "/me", "Who is calling, and where they stand", Need.SIGNED_IN, "Me",
           response=Me)  # fmt: skip
async def me(call: Call) -> Me:
    caller = call.caller
    store = call.request.config_dict[ADMIN_STORE]
    home = await store.org(caller.tenant_slug)
    orgs = [home] if home is not None else []
    if caller.home_level > Level.NONE:
        orgs += await store.dependents(caller.tenant_id)
    standings = [s for s in (standing(caller, org) for org in orgs) if s is not None]
    return Me(
        actor=caller.actor,
        user_id=caller.user_id,
        api_key=caller.key_id,
        scopes=list(caller.scopes),
        roles=list(caller.roles),
        organisations=[
            OrgStanding(slug=s.org.slug, name=s.org.name, level=s.level.name.lower(), via=s.via)
            for s in standings
        ],
    )
