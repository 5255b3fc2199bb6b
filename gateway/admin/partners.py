"""Partners (agencies) on a client's projects.

The client's admins enable a partner organisation on a project
(`/orgs/{client}/projects/{project}/partners`) and give the partner's members roles there;
the partner's owner chooses which of its users work on it
(`/orgs/{partner}/partnerships/{client}/{project}/members`). Each side sees only this: the
partner stands nowhere in the client's organisation (its other routes answer 404), and the
client sees the partner's members on its projects, not the partner's other users.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from gateway.admin.api import Api, Call, Need
from gateway.admin.problems import ApiError, invalid, not_found
from gateway.admin.users import Strict
from gateway.keys import ADMIN_STORE, CLOCK, PARTNERS
from sso.mapping import BUILTIN_ROLES
from storage.partner_store import Partnership

api = Api()
TAG = "Partners"


class MemberOut(BaseModel):
    user_id: uuid.UUID
    user_name: str
    name: str | None
    email: str | None
    roles: list[str] = Field(description="Roles in the project.")


class PartnershipOut(BaseModel):
    client: str
    client_name: str
    partner: str
    partner_name: str
    project: str
    enabled_at: datetime
    members: list[MemberOut]


class PartnershipList(BaseModel):
    data: list[PartnershipOut]


def _out(p: Partnership) -> PartnershipOut:
    return PartnershipOut(
        client=p.client,
        client_name=p.client_name,
        partner=p.partner,
        partner_name=p.partner_name,
        project=p.project,
        enabled_at=p.enabled_at,
        members=[
            MemberOut(user_id=m.user_id, user_name=m.user_name, name=m.name, email=m.email,
                      roles=list(m.roles))
            for m in p.members
        ],
    )  # fmt: skip


async def _project_id(call: Call, org_id: uuid.UUID, name: str) -> uuid.UUID:
    catalogue = await call.request.config_dict[ADMIN_STORE].catalogue(org_id)
    found = {n.lower(): i for n, i in catalogue.projects.items()}.get(name.lower())
    if found is None:
        raise not_found("project")
    return found


async def _org_id(call: Call, slug: str) -> uuid.UUID:
    org = await call.request.config_dict[ADMIN_STORE].org(slug)
    if org is None:
        raise not_found("organisation")
    return org.id


# --- the client's side -----------------------------------------------------------------------


@api.route(
    "GET", "/orgs/{org}/projects/{project}/partners", "Partners on a project", Need.READ, TAG,
    response=PartnershipList,
)  # fmt: skip
async def project_partners(call: Call) -> PartnershipList:
    project_id = await _project_id(call, call.org.id, call.param("project"))
    found = await call.request.config_dict[PARTNERS].of_project(call.org.id, project_id)
    return PartnershipList(data=[_out(p) for p in found])


class EnablePartner(Strict):
    partner: str = Field(min_length=1, max_length=128, description="The partner's slug.")


@api.route(
    "POST", "/orgs/{org}/projects/{project}/partners", "Enable a partner on a project",
    Need.ADMIN, TAG, body=EnablePartner, response=PartnershipList, status=201, errors=(409,),
)  # fmt: skip
async def enable_partner(call: Call) -> PartnershipList:
    config = call.request.config_dict
    project_id = await _project_id(call, call.org.id, call.param("project"))
    partner_id = await _org_id(call, call.body.partner)
    await config[PARTNERS].enable(call.org.id, project_id, partner_id, config[CLOCK](), call.actor)
    found = await config[PARTNERS].of_project(call.org.id, project_id)
    return PartnershipList(data=[_out(p) for p in found])


@api.route(
    "DELETE", "/orgs/{org}/projects/{project}/partners/{partner}", "Take a partner off a project",
    Need.ADMIN, TAG, status=204, description="Its members lose their roles in the project.",
)  # fmt: skip
async def disable_partner(call: Call) -> None:
    config = call.request.config_dict
    project_id = await _project_id(call, call.org.id, call.param("project"))
    partner_id = await _org_id(call, call.param("partner"))
    if not await config[PARTNERS].disable(
        call.org.id, project_id, partner_id, config[CLOCK](), call.actor
    ):
        raise not_found("partner on this project")


class ProjectRoles(Strict):
    roles: list[str] = Field(max_length=16)


@api.route(
    "PUT", "/orgs/{org}/projects/{project}/partners/{partner}/members/{user}/roles",
    "Set a partner member's roles in a project", Need.ADMIN, TAG, body=ProjectRoles,
    response=PartnershipList,
)  # fmt: skip
async def set_member_roles(call: Call) -> PartnershipList:
    config = call.request.config_dict
    project_id = await _project_id(call, call.org.id, call.param("project"))
    partner_id = await _org_id(call, call.param("partner"))
    try:
        user_id = uuid.UUID(call.param("user"))
    except ValueError:
        raise not_found("member") from None
    catalogue = await config[ADMIN_STORE].catalogue(call.org.id)
    known = {r.lower(): r for r in (*BUILTIN_ROLES, *catalogue.roles)}
    unknown = sorted({r for r in call.body.roles if r.lower() not in known})
    if unknown:
        raise invalid(f"unknown: {', '.join(unknown)}", "roles")
    if "owner" in {r.lower() for r in call.body.roles}:
        raise ApiError(403, "forbidden", "a partner's member cannot own a client's project")
    roles = sorted({known[r.lower()] for r in call.body.roles})
    await config[PARTNERS].set_roles(
        call.org.id, project_id, partner_id, user_id, roles, config[CLOCK](), call.actor
    )
    found = await config[PARTNERS].of_project(call.org.id, project_id)
    return PartnershipList(data=[_out(p) for p in found])


# --- the partner's side ----------------------------------------------------------------------


@api.route(
    "GET", "/orgs/{org}/partnerships", "The client projects this organisation works on",
    Need.READ, TAG, response=PartnershipList,
)  # fmt: skip
async def partnerships(call: Call) -> PartnershipList:
    found = await call.request.config_dict[PARTNERS].of_partner(call.org.id)
    return PartnershipList(data=[_out(p) for p in found])


class MemberIds(Strict):
    user_ids: list[uuid.UUID] = Field(max_length=1000)


@api.route(
    "PUT", "/orgs/{org}/partnerships/{client}/{project}/members",
    "Choose who works on a client's project", Need.OWNER, TAG, body=MemberIds,
    response=PartnershipList,
    description="The organisation's users who work there become exactly these; those taken "
    "out lose their roles in the project.",
)  # fmt: skip
async def set_members(call: Call) -> PartnershipList:
    config = call.request.config_dict
    client, project = call.param("client"), call.param("project").lower()
    # Found among this organisation's own partnerships only: whether the client has other
    # projects, or exists at all, is not for the partner to learn.
    mine = await config[PARTNERS].of_partner(call.org.id)
    link = next((p for p in mine if p.client == client and p.project.lower() == project), None)
    if link is None:
        raise not_found("partnership")
    await config[PARTNERS].set_members(
        call.org.id, link.project_id, list(dict.fromkeys(call.body.user_ids)), config[CLOCK](),
        call.actor,
    )  # fmt: skip
    found = await config[PARTNERS].of_partner(call.org.id)
    return PartnershipList(data=[_out(p) for p in found if p.project_id == link.project_id])
