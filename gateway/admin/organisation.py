"""`/api/v1/orgs/{org}/settings` and `/dependents`: the organisation's own settings (session
limits, deletion policy, whether admins may override what the IdP manages; owners only), and
for a reseller, the organisations that depend on it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from gateway.admin.api import Api, Call, Need
from gateway.admin.users import Strict
from gateway.keys import ADMIN_STORE, STORE
from storage.scim_store import KEEP_DELETED_DAYS

api = Api()
TAG = "Organisation"


class OrgSettings(BaseModel):
    slug: str
    name: str
    reseller: str | None = Field(description="The organisation this one depends on.")
    session_idle_minutes: float | None = Field(description="None: the gateway's default.")
    session_lifetime_hours: float | None = Field(description="None: the gateway's default.")
    delete_policy: Literal["soft", "hard"]
    keep_deleted_days: int
    admin_overrides: bool = Field(
        description="Admins may change the name and e-mail of users the IdP manages."
    )


class SettingsEdit(Strict):
    session_idle_minutes: float | None = Field(None, gt=0, le=60 * 24 * 30)
    session_lifetime_hours: float | None = Field(None, gt=0, le=24 * 365)
    delete_policy: Literal["soft", "hard"] | None = None
    keep_deleted_days: int | None = Field(None, ge=1, le=3650)
    admin_overrides: bool | None = None


async def _settings(call: Call) -> OrgSettings:
    store = call.request.config_dict[ADMIN_STORE]
    org = await store.org(call.org.slug)
    assert org is not None
    parent = await store.org_by_id(org.parent_id) if org.parent_id else None
    values = org.settings
    return OrgSettings(
        slug=org.slug,
        name=org.name,
        reseller=parent.slug if parent else None,
        session_idle_minutes=values.get("session_idle_minutes"),
        session_lifetime_hours=values.get("session_lifetime_hours"),
        delete_policy=values.get("delete_policy") or "soft",
        keep_deleted_days=values.get("keep_deleted_days") or KEEP_DELETED_DAYS,
        admin_overrides=bool(values.get("admin_overrides")),
    )


@api.route("GET", "/orgs/{org}/settings", "The organisation's settings", Need.READ, TAG,
           response=OrgSettings)  # fmt: skip
async def get_settings(call: Call) -> OrgSettings:
    return await _settings(call)


@api.route(
    "PATCH", "/orgs/{org}/settings", "Change the organisation's settings", Need.OWNER, TAG,
    body=SettingsEdit, response=OrgSettings,
    description="Only the fields given change; null puts back the gateway's default.",
)  # fmt: skip
async def edit_settings(call: Call) -> OrgSettings:
    changes = call.body.model_dump(exclude_unset=True)
    if changes.get("admin_overrides") is False:
        changes["admin_overrides"] = None  # stored only when on
    await call.request.config_dict[STORE].update_tenant_settings(call.org.slug, changes)
    return await _settings(call)


class Dependent(BaseModel):
    slug: str
    name: str


class DependentList(BaseModel):
    data: list[Dependent]


@api.route(
    "GET", "/orgs/{org}/dependents", "The organisations that depend on this reseller",
    Need.READ, TAG, response=DependentList,
    description="Their admins' work is done through `/orgs/{dependent}/...` as an admin.",
)  # fmt: skip
async def list_dependents(call: Call) -> DependentList:
    found = await call.request.config_dict[ADMIN_STORE].dependents(call.org.id)
    return DependentList(data=[Dependent(slug=o.slug, name=o.name) for o in found])
