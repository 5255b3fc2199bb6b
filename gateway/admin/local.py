"""`/api/v1/orgs/{org}/users/{user}/unlock`: the way back in after five refused local logins
in a row (`gateway.local_login`) locked a person's password login. An admin unlocks; an
owner's local login only an owner, as with every other change to an owner."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, Field

from gateway.admin.api import Api, Call, Need
from gateway.admin.problems import not_found
from gateway.admin.users import target
from gateway.keys import CLOCK, LOCAL_LOGINS

api = Api()
TAG = "Local logins"


class Unlocked(BaseModel):
    user_id: uuid.UUID
    was_locked: bool = Field(
        description="Whether the local login was locked; either way its count of refused "
        "attempts starts again from zero."
    )


@api.route(
    "POST", "/orgs/{org}/users/{user}/unlock", "Unlock a local login", Need.ADMIN, TAG,
    response=Unlocked,
    description="Clears the lock that five refused local logins in a row set, and the count "
    "of refusals. 404 when the user has no local login. An owner's only an owner may unlock.",
)  # fmt: skip
async def unlock(call: Call) -> Unlocked:
    user = await target(call)
    config = call.request.config_dict
    was_locked = await config[LOCAL_LOGINS].unlock(
        call.org.id, user.row.id, config[CLOCK](), call.actor, call.context
    )
    if was_locked is None:
        raise not_found("local login")
    return Unlocked(user_id=user.row.id, was_locked=was_locked)
