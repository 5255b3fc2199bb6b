"""Who calls `/api/v1`, and what they may do in an organisation.

A caller is an API key of a tenant (`Authorization: Bearer idgk_...`: hashed, scoped,
expiring) or a person logged in through the tenant's SSO (the session cookie). Their
standing in the organisation a route names is one of four levels:

- owner: everything, including other owners and the organisation's own settings;
- admin: users, groups, roles, projects, connections, mappings, tokens, webhooks; never an
  owner (granting or taking the owner role, or changing, blocking or deleting an owner);
- read: every read an admin has, no write (API keys with the `admin:read` scope only);
- none: members and read-only users have no administration at all.

A key's level is its scope (`owner`, `admin`, `admin:read`); a person's is their roles in
their own organisation. A reseller's people and keys stand at their level, capped at admin
in each organisation that depends on it: every such call is marked `via` the reseller, in
the answer's `X-Idgate-Acting-As` header and in the audit log.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from storage.admin_store import Org

EVENTS_SCOPE = "events:read"
ADMIN_READ_SCOPE = "admin:read"
ADMIN_SCOPE = "admin"
OWNER_SCOPE = "owner"
SCOPES = (EVENTS_SCOPE, ADMIN_READ_SCOPE, ADMIN_SCOPE, OWNER_SCOPE)


class Level(enum.IntEnum):
    NONE = 0
    READ = 1
    ADMIN = 2
    OWNER = 3


_SCOPE_LEVELS = {OWNER_SCOPE: Level.OWNER, ADMIN_SCOPE: Level.ADMIN, ADMIN_READ_SCOPE: Level.READ}
_ROLE_LEVELS = {"owner": Level.OWNER, "admin": Level.ADMIN}


def level_of_roles(roles: Iterable[str]) -> Level:
    """A person's level from their organisation roles."""
    return max((_ROLE_LEVELS.get(r, Level.NONE) for r in roles), default=Level.NONE)


@dataclass(frozen=True)
class Caller:
    tenant_id: uuid.UUID
    tenant_slug: str
    key_id: str | None = None  # an API key's
    scopes: tuple[str, ...] = ()
    user_id: uuid.UUID | None = None  # a logged-in person's
    roles: tuple[str, ...] = ()
    session_started: datetime | None = None

    @property
    def actor(self) -> str:
        """The audit log's name for them."""
        return f"apikey:{self.key_id}" if self.key_id else f"user:{self.user_id}"

    @property
    def by_session(self) -> bool:
        return self.user_id is not None

    @property
    def home_level(self) -> Level:
        """Their level in their own organisation."""
        if self.key_id is not None:
            return max((_SCOPE_LEVELS.get(s, Level.NONE) for s in self.scopes), default=Level.NONE)
        return level_of_roles(self.roles)


@dataclass(frozen=True)
class Standing:
    """A caller's level in one organisation; `via` names the reseller they act through."""

    caller: Caller
    org: Org
    level: Level
    via: str | None = None

    @property
    def actor(self) -> str:
        return f"{self.caller.actor}@{self.via}" if self.via else self.caller.actor


def standing(caller: Caller, org: Org) -> Standing | None:
    """The caller's standing in `org`, or None when they have no relation to it at all (the
    API then answers 404, so that organisations cannot be discovered)."""
    if org.id == caller.tenant_id:
        return Standing(caller, org, caller.home_level)
    if org.parent_id == caller.tenant_id:
        level = min(caller.home_level, Level.ADMIN)
        return Standing(caller, org, level, via=caller.tenant_slug) if level else None
    return None
