"""`/api/v1/orgs/{org}/groups`, `/roles` and `/projects`: the organisation's groups (members
added and removed in bulk), its role catalogue (custom roles beside owner, admin, member and
readonly) and its projects, with who holds which role in each.

Groups pushed by the IdP (SCIM) are the IdP's: listed here, but their names and members
change only through SCIM. Groups made in the product are the admins'.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from gateway.admin.api import Api, Call, Need
from gateway.admin.callers import Level
from gateway.admin.problems import conflict, invalid, not_found
from gateway.admin.users import Strict
from gateway.keys import ACCESS, ADMIN_STORE, CLOCK, INVITATIONS, STORE
from sso.mapping import BUILTIN_ROLES
from storage.admin_store import GroupRow, UserFilter
from storage.invitation_store import Access

api = Api()
MAX_MEMBERS = 1000  # users per add or remove request


class GroupOut(BaseModel):
    id: uuid.UUID
    name: str
    origin: str = Field(description="scim (the IdP's: read-only here) or product.")
    external_id: str | None
    members: int
    created_at: datetime


class GroupList(BaseModel):
    data: list[GroupOut]


class NewGroup(Strict):
    name: str = Field(min_length=1, max_length=256)


class Members(Strict):
    user_ids: list[uuid.UUID] = Field(min_length=1, max_length=MAX_MEMBERS)


class MembersChanged(BaseModel):
    changed: int = Field(description="How many users were added (or removed).")
    group: GroupOut


def _group_out(row: GroupRow) -> GroupOut:
    return GroupOut(**row.__dict__)


async def _product_group(call: Call) -> GroupRow:
    try:
        group_id = uuid.UUID(call.param("group"))
    except ValueError:
        raise not_found("group") from None
    group = await call.request.config_dict[ADMIN_STORE].group(call.org.id, group_id)
    if group is None:
        raise not_found("group")
    if group.origin != "product":
        raise conflict("this group is the IdP's: change it through SCIM")
    return group


@api.route("GET", "/orgs/{org}/groups", "List groups", Need.READ, "Groups",
           response=GroupList)  # fmt: skip
async def list_groups(call: Call) -> GroupList:
    rows = await call.request.config_dict[ADMIN_STORE].groups(call.org.id)
    return GroupList(data=[_group_out(r) for r in rows])


@api.route(
    "POST", "/orgs/{org}/groups", "Create a product group", Need.ADMIN, "Groups",
    body=NewGroup, response=GroupOut, status=201, errors=(409,),
)  # fmt: skip
async def create_group(call: Call) -> GroupOut:
    config = call.request.config_dict
    made = await config[STORE].create_product_group(call.org.id, call.body.name, config[CLOCK]())
    group = await config[ADMIN_STORE].group(call.org.id, made.id)
    assert group is not None
    return _group_out(group)


@api.route(
    "DELETE", "/orgs/{org}/groups/{group}", "Delete a product group", Need.ADMIN, "Groups",
    status=204, errors=(409,),
)  # fmt: skip
async def delete_group(call: Call) -> None:
    group = await _product_group(call)
    await call.request.config_dict[ADMIN_STORE].delete_product_group(call.org.id, group.id)


async def _members(call: Call) -> list[uuid.UUID]:
    """The users named, all of this organisation; owners only for an owner to move."""
    ids = list(dict.fromkeys(call.body.user_ids))
    store = call.request.config_dict[ADMIN_STORE]
    known = await store.known_users(call.org.id, ids)
    unknown = [str(i) for i in ids if i not in known]
    if unknown:
        raise invalid(f"no such user: {', '.join(unknown[:10])}", "user_ids")
    if call.standing is not None and call.standing.level < Level.OWNER:
        owners = await store.users_by_id(call.org.id, ids, UserFilter(role="owner"))
        if owners:
            call.require(Level.OWNER, "only an owner may change an owner's groups")
    return ids


@api.route(
    "POST", "/orgs/{org}/groups/{group}/members", "Add members", Need.ADMIN, "Groups",
    body=Members, response=MembersChanged, errors=(409,),
    description=f"Up to {MAX_MEMBERS} users at once; all or none.",
)  # fmt: skip
async def add_members(call: Call) -> MembersChanged:
    group = await _product_group(call)
    ids = await _members(call)
    config = call.request.config_dict
    added = await config[INVITATIONS].add_access(
        call.org.id, [(u, Access(groups=(group.id,))) for u in ids], config[CLOCK](), call.actor
    )
    fresh = await config[ADMIN_STORE].group(call.org.id, group.id)
    assert fresh is not None
    return MembersChanged(changed=added, group=_group_out(fresh))


@api.route(
    "POST", "/orgs/{org}/groups/{group}/members/remove", "Remove members", Need.ADMIN,
    "Groups", body=Members, response=MembersChanged, errors=(409,),
)  # fmt: skip
async def remove_members(call: Call) -> MembersChanged:
    group = await _product_group(call)
    ids = await _members(call)
    config = call.request.config_dict
    removed = await config[ADMIN_STORE].remove_members(
        call.org.id, group.id, ids, config[CLOCK](), call.actor
    )
    fresh = await config[ADMIN_STORE].group(call.org.id, group.id)
    assert fresh is not None
    return MembersChanged(changed=removed, group=_group_out(fresh))


# --- roles and projects ----------------------------------------------------------------------


class NamedOut(BaseModel):
    name: str
    description: str
    built_in: bool = False
    created_at: datetime | None = None


class NamedList(BaseModel):
    data: list[NamedOut]


class NewNamed(Strict):
    name: str = Field(min_length=1, max_length=128, pattern=r"^[^\s,;|:][^,;|:]*$")
    description: str = Field("", max_length=1000)


BUILT_IN = {
    "owner": "Everything, including the organisation itself and other owners.",
    "admin": "Manages users, groups, roles, connections and mappings; not owners.",
    "member": "Uses the product.",
    "readonly": "Sees, changes nothing.",
}


@api.route("GET", "/orgs/{org}/roles", "The role catalogue", Need.READ, "Roles",
           response=NamedList)  # fmt: skip
async def list_roles(call: Call) -> NamedList:
    custom = await call.request.config_dict[ACCESS].store.list_roles(call.org.id)
    built = [NamedOut(name=r, description=BUILT_IN[r], built_in=True) for r in BUILTIN_ROLES]
    return NamedList(
        data=built
        + [NamedOut(name=r.name, description=r.description, created_at=r.created_at)
           for r in custom]
    )  # fmt: skip


@api.route(
    "POST", "/orgs/{org}/roles", "Add a custom role", Need.ADMIN, "Roles",
    body=NewNamed, response=NamedOut, status=201, errors=(409,),
)  # fmt: skip
async def add_role(call: Call) -> NamedOut:
    body: NewNamed = call.body
    if body.name.lower() in BUILTIN_ROLES:
        raise conflict(f"{body.name} is a built-in role")
    now = call.request.config_dict[CLOCK]()
    await call.request.config_dict[ACCESS].store.add_role(
        call.org.id, body.name, body.description, now
    )
    return NamedOut(name=body.name, description=body.description, created_at=now)


@api.route(
    "DELETE", "/orgs/{org}/roles/{role}", "Remove a custom role", Need.ADMIN, "Roles",
    status=204, errors=(409,), description="Every grant of it is taken back (audited).",
)  # fmt: skip
async def remove_role(call: Call) -> None:
    name = call.param("role")
    if name.lower() in BUILTIN_ROLES:
        raise conflict(f"{name} is a built-in role")
    config = call.request.config_dict
    if not await config[ACCESS].store.remove_role(call.org.id, name, config[CLOCK](), call.actor):
        raise not_found("role")


@api.route("GET", "/orgs/{org}/projects", "List projects", Need.READ, "Projects",
           response=NamedList)  # fmt: skip
async def list_projects(call: Call) -> NamedList:
    found = await call.request.config_dict[ACCESS].store.list_projects(call.org.id)
    return NamedList(
        data=[NamedOut(name=p.name, description=p.description, created_at=p.created_at)
              for p in found]
    )  # fmt: skip


@api.route(
    "POST", "/orgs/{org}/projects", "Add a project", Need.ADMIN, "Projects",
    body=NewNamed, response=NamedOut, status=201, errors=(409,),
)  # fmt: skip
async def add_project(call: Call) -> NamedOut:
    body: NewNamed = call.body
    now = call.request.config_dict[CLOCK]()
    await call.request.config_dict[ACCESS].store.add_project(
        call.org.id, body.name, body.description, now
    )
    return NamedOut(name=body.name, description=body.description, created_at=now)


@api.route(
    "DELETE", "/orgs/{org}/projects/{project}", "Remove a project", Need.ADMIN, "Projects",
    status=204, description="Every role held in it goes with it.",
)  # fmt: skip
async def remove_project(call: Call) -> None:
    if not await call.request.config_dict[ACCESS].store.remove_project(
        call.org.id, call.param("project")
    ):
        raise not_found("project")
