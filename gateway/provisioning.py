"""SCIM writes as use cases: create, replace, patch and delete a User or Group in one tenant.

The HTTP handlers (gateway.scim_api) and Bulk (gateway.scim_bulk) both call these, so a write
means the same thing whichever way it arrives. Each call is one transaction of the store: it
either happens whole or changes nothing. Protocol rules come from scim/; this module only
composes them with the store, the clock and password hashing.

After a write, the grants of the users it may change are recomputed (`gateway.access`): the
user written, and for a group, the members it gained or lost (and, when it is created,
changed or deleted, the members of every SCIM group sharing its old or new name or
externalId, since a rule matches only a name or externalId no other SCIM group has). Then
the write is audited (attributes changed, actor, request id, address). A Provisioning made
`deferred` (Bulk, inside its transaction) collects both and does them at `flush`, after
commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from gateway.access import Access
from gateway.audit_writer import AuditWriter
from gateway.credentials import hash_password
from scim.errors import ScimError
from scim.patch import MemberChanges, apply_patch, changes_members_only, parse_patch_request
from scim.quirks import normalise_patch_request, normalise_resource
from scim.resources import parse_resource
from scim.schema import GROUP, USER, ResourceType
from storage.audit_store import AuditEntry
from storage.scim_store import GroupKeys, ScimStore, user_name_taken

_NO_KEYS = GroupKeys()


class Provisioning:
    def __init__(
        self,
        store: ScimStore,
        clock: Callable[[], datetime],
        access: Access | None = None,
        audit: AuditWriter | None = None,
        *,
        actor: str = "system",
        context: Mapping[str, str] | None = None,
        deferred: bool = False,
    ) -> None:
        self.store = store
        self.clock = clock
        self.access = access
        self.audit = audit
        self.actor = actor
        self.context = dict(context or {})  # request id, source IP: added to audit entries
        self.deferred = deferred
        self._pending: dict[uuid.UUID, set[uuid.UUID]] = {}
        self._entries: dict[uuid.UUID, list[AuditEntry]] = {}

    def acting(
        self,
        actor: str,
        *,
        context: Mapping[str, str] | None = None,
        store: ScimStore | None = None,
        deferred: bool = False,
    ) -> Provisioning:
        """These use cases on behalf of `actor` (who the audit log names, with `context`:
        the request id and source IP), optionally on another store (one working within a
        transaction) and `deferred`."""
        return Provisioning(
            store or self.store,
            self.clock,
            self.access,
            self.audit,
            actor=actor,
            context=context,
            deferred=deferred,
        )

    async def audited(
        self, tenant_id: uuid.UUID, action: str, target: str, details: dict[str, Any]
    ) -> None:
        """An audit entry for a write that committed (after it, batched: the write's own
        record is its event, written in its transaction)."""
        if self.audit is None:
            return
        entry = AuditEntry(action, target, details | self.context)
        if self.deferred:
            self._entries.setdefault(tenant_id, []).append(entry)
        else:
            await self.audit.add(tenant_id, self.actor, entry)

    async def _user_written(
        self, tenant_id: uuid.UUID, action: str, user: dict[str, Any], fields: list[str]
    ) -> None:
        await self.changed(tenant_id, [uuid.UUID(user["id"])])
        await self.audited(tenant_id, action, f"user:{user['id']}", {"fields": fields})

    async def _group_written(
        self, tenant_id: uuid.UUID, action: str, group_id: str, details: dict[str, Any]
    ) -> None:
        await self.audited(tenant_id, action, f"group:{group_id}", details)

    async def changed(self, tenant_id: uuid.UUID, user_ids: Iterable[uuid.UUID]) -> None:
        """The grants of these users may have changed: recompute them now, or at `flush`
        when deferred."""
        if self.access is None:
            return
        if self.deferred:
            self._pending.setdefault(tenant_id, set()).update(user_ids)
        else:
            await self.access.recompute(tenant_id, user_ids, self.actor)

    async def set_blocked(
        self, tenant_id: uuid.UUID, user_id: uuid.UUID, reason: str | None
    ) -> bool:
        """Block a user with a reason (out at once, whatever SCIM says), or unblock them
        (None); False if there is no such user. Their mapped grants are suspended or come
        back."""
        if not await self.store.set_blocked(tenant_id, user_id, reason, self.clock()):
            return False
        action = "user.blocked" if reason is not None else "user.unblocked"
        details = {"reason": reason} if reason is not None else {}
        await self.audited(tenant_id, action, f"user:{user_id}", details)
        await self.changed(tenant_id, [user_id])
        return True

    async def flush(self) -> None:
        """Recompute the users a deferred Provisioning's writes changed, and audit them."""
        pending, self._pending = self._pending, {}
        entries, self._entries = self._entries, {}
        if self.access is not None:
            for tenant_id, user_ids in pending.items():
                await self.access.recompute(tenant_id, user_ids, self.actor)
        if self.audit is not None:
            for tenant_id, written in entries.items():
                await self.audit.add(tenant_id, self.actor, *written)

    async def _group_members(
        self, tenant_id: uuid.UUID, group_id: str | None, new: GroupKeys = _NO_KEYS
    ) -> tuple[set[uuid.UUID], GroupKeys] | None:
        """Before a group write: the users whose grants it may change, and what decides
        which: the group's name and externalId (a rule matches only one no other SCIM group
        shares), as they are and as `new` makes them. Read whatever the rules are now: they
        may change before the write."""
        if self.access is None:
            return None
        keys = new
        if group_id is not None and (current := await self.store.group_keys(tenant_id, group_id)):
            keys = keys | current
        return await self.store.members_of_groups(tenant_id, keys), keys

    async def _group_changed(
        self,
        tenant_id: uuid.UUID,
        before: tuple[set[uuid.UUID], GroupKeys] | None,
        after: dict[str, Any] | None,
    ) -> None:
        """After a group write: recompute the members it had and those it (and any group
        sharing its old or new name or externalId) has now."""
        if before is None:
            return
        members, keys = before
        if after is not None:
            keys = keys | GroupKeys.of(after)
        await self.changed(tenant_id, members | await self.store.members_of_groups(tenant_id, keys))

    async def create(
        self, tenant_id: uuid.UUID, resource_type: ResourceType, body: Any
    ) -> dict[str, Any]:
        if resource_type is USER:
            resource, password_hash = await _new_user(body)
            user = await self.store.create_user(
                tenant_id, resource, password_hash, self.clock(), self.actor
            )
            await self._user_written(tenant_id, "user.created", user, _fields(resource))
            return user
        resource = parse_resource(GROUP, normalise_resource(GROUP, body))
        before = await self._group_members(tenant_id, None, GroupKeys.of(resource))
        group = await self.store.create_group(tenant_id, resource, self.clock())
        await self._group_changed(tenant_id, before, None)
        created = {"fields": _fields(resource), "members": len(resource.get("members", []))}
        await self._group_written(tenant_id, "group.created", group["id"], created)
        return group

    async def create_users(
        self, tenant_id: uuid.UUID, bodies: Sequence[Any]
    ) -> list[dict[str, Any] | ScimError]:
        """Create users as `create` would one by one, in one statement: each body gives the
        created user or the error that refused it."""
        results: list[dict[str, Any] | ScimError] = []
        positions: list[int] = []
        valid: list[tuple[dict[str, Any], str | None]] = []
        for body in bodies:
            try:
                new = await _new_user(body)
            except ScimError as error:
                results.append(error)
                continue
            positions.append(len(results))
            results.append(new[0])  # replaced below by what was created
            valid.append(new)
        created = await self.store.create_users(tenant_id, valid, self.clock(), self.actor)
        for position, (resource, _), user in zip(positions, valid, created, strict=True):
            results[position] = user or user_name_taken(resource["userName"])
        for (resource, _), user in zip(valid, created, strict=True):
            if user is not None:
                await self._user_written(tenant_id, "user.created", user, _fields(resource))
        return results

    async def replace(
        self,
        tenant_id: uuid.UUID,
        resource_type: ResourceType,
        resource_id: str,
        body: Any,
        if_match: str | None,
    ) -> dict[str, Any]:
        """PUT (RFC 7644 §3.5.1): readOnly attributes kept, immutable ones checked."""
        now = self.clock()
        if resource_type is USER:
            return await self._write_user(tenant_id, resource_id, lambda _: body, if_match, now)

        group_read: dict[str, Any] = {}

        async def build_group(current: dict[str, Any]) -> dict[str, Any]:
            group_read["current"] = current
            return parse_resource(GROUP, normalise_resource(GROUP, body), existing=current)

        before = await self._group_members(tenant_id, resource_id)
        group = await self.store.replace_group(tenant_id, resource_id, build_group, if_match, now)
        await self._group_changed(tenant_id, before, group)
        fields = _changed_fields(group_read["current"], group, False)
        await self._group_written(tenant_id, "group.updated", group["id"], {"fields": fields})
        return group

    async def _write_user(
        self,
        tenant_id: uuid.UUID,
        resource_id: str,
        make: Callable[[dict[str, Any]], Any],
        if_match: str | None,
        now: datetime,
    ) -> dict[str, Any]:
        """PUT or PATCH of a user: `make(current)` is the body that replaces it (readOnly
        attributes kept, immutable ones checked); then grants and the audit follow."""
        read: dict[str, Any] = {}

        async def build_user(current: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
            built = await _user_replacing(current, make(current))
            read.update(current=current, password=built[1] is not None)
            return built

        user = await self.store.replace_user(tenant_id, resource_id, build_user, if_match, now)
        fields = _changed_fields(read["current"], user, read["password"])
        await self._user_written(tenant_id, "user.updated", user, fields)
        return user

    async def patch(
        self,
        tenant_id: uuid.UUID,
        resource_type: ResourceType,
        resource_id: str,
        body: Any,
        if_match: str | None,
        with_members: bool = False,
    ) -> dict[str, Any]:
        """PATCH (RFC 7644 §3.5.2), all operations or none. A Group's members are changed
        set-wise and read back only `with_members`."""
        operations = parse_patch_request(normalise_patch_request(body))
        now = self.clock()
        if resource_type is USER:

            def patched(current: dict[str, Any]) -> Any:
                return apply_patch(USER, current, operations)[0]

            return await self._write_user(tenant_id, resource_id, patched, if_match, now)

        if if_match is None and not with_members and changes_members_only(GROUP, operations):
            # What IdPs send for membership changes: applied without reading the group.
            stub = {"schemas": [GROUP.schema.id], "id": resource_id, "displayName": "-"}
            _, changes = apply_patch(GROUP, stub, operations, split_members=True)
            if changes.replace is not None or changes.remove_all:
                before = await self._group_members(tenant_id, resource_id)
                group = await self.store.patch_group_members(tenant_id, resource_id, changes, now)
                await self._group_changed(tenant_id, before, None)
            else:
                group = await self.store.patch_group_members(tenant_id, resource_id, changes, now)
                touched = [m["value"] for m in changes.add] + sorted(changes.remove)
                await self.changed(tenant_id, _uuids(touched))
            await self._group_written(
                tenant_id, "group.members_changed", group["id"], _member_summary(changes)
            )
            return group

        patch_read: dict[str, Any] = {}

        async def build_group(current: dict[str, Any]) -> tuple[dict[str, Any], MemberChanges]:
            patched, changes = apply_patch(GROUP, current, operations, split_members=True)
            resource = parse_resource(GROUP, normalise_resource(GROUP, patched), existing=current)
            patch_read.update(current=current, changes=changes)
            return resource, changes

        before = await self._group_members(tenant_id, resource_id)
        group = await self.store.patch_group(
            tenant_id, resource_id, build_group, if_match, now, with_members=with_members
        )
        await self._group_changed(tenant_id, before, group)
        details = _member_summary(patch_read["changes"]) | {
            "fields": _changed_fields(patch_read["current"], group, False, ignore=("members",))
        }
        await self._group_written(tenant_id, "group.updated", group["id"], details)
        return group

    async def delete(
        self,
        tenant_id: uuid.UUID,
        resource_type: ResourceType,
        resource_id: str,
        if_match: str | None,
        hard: bool | None = None,
    ) -> None:
        """Delete a resource. A user's grants go with it; `hard` (else the tenant's policy)
        says whether it is kept apart until purged."""
        if resource_type is USER:
            await self.store.delete_user(tenant_id, resource_id, if_match, self.actor, hard)
            details = {} if hard is None else {"hard": hard}
            await self.audited(tenant_id, "user.deleted", f"user:{resource_id}", details)
            return
        before = await self._group_members(tenant_id, resource_id)
        await self.store.delete_group(tenant_id, resource_id, if_match)
        await self._group_changed(tenant_id, before, None)
        await self._group_written(tenant_id, "group.deleted", resource_id, {})


_NOT_FIELDS = ("id", "meta", "schemas", "groups")


def _fields(resource: Mapping[str, Any]) -> list[str]:
    """The attributes a new resource sets (names only: the audit log holds no values)."""
    return sorted(k for k in resource if k not in _NOT_FIELDS)


def _changed_fields(
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    password_set: bool,
    ignore: Sequence[str] = (),
) -> list[str]:
    """The attributes a write changed (names only; `password` when one was set)."""
    skip = (*_NOT_FIELDS, *ignore)
    names = {k for k in (*before, *after) if k not in skip and before.get(k) != after.get(k)}
    return sorted(names | ({"password"} if password_set else set()))


def _member_summary(changes: MemberChanges) -> dict[str, Any]:
    if changes.replace is not None:
        return {"members": "replaced", "count": len(changes.replace)}
    if changes.remove_all:
        return {"members": "all removed"}
    return {"added": len(changes.add), "removed": len(changes.remove)}


def _uuids(values: Iterable[Any]) -> list[uuid.UUID]:
    out = []
    for value in values:
        try:
            out.append(uuid.UUID(str(value)))
        except ValueError:
            continue
    return out


async def _new_user(body: Any) -> tuple[dict[str, Any], str | None]:
    """The user a POST body describes, and the hash of the password it sets, if any."""
    resource = parse_resource(USER, normalise_resource(USER, body))
    return resource, await _password_hash(resource)


async def _user_replacing(current: dict[str, Any], body: Any) -> tuple[dict[str, Any], str | None]:
    """The user `body` makes of `current` (readOnly kept, immutable checked), and the hash of
    the password it sets, if any."""
    resource = parse_resource(USER, normalise_resource(USER, body), existing=current)
    return resource, await _password_hash(resource)


async def _password_hash(resource: dict[str, Any]) -> str | None:
    """Take the write-only `password` out of the resource, returning its hash."""
    password = resource.pop("password", None)
    return await hash_password(password) if password else None
