"""SCIM writes as use cases: create, replace, patch and delete a User or Group in one tenant.

The HTTP handlers (gateway.scim_api) and Bulk (gateway.scim_bulk) both call these, so a write
means the same thing whichever way it arrives. Each call is one transaction of the store: it
either happens whole or changes nothing. Protocol rules come from scim/; this module only
composes them with the store, the clock and password hashing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from gateway.credentials import hash_password
from scim.errors import ScimError
from scim.patch import MemberChanges, apply_patch, changes_members_only, parse_patch_request
from scim.quirks import normalise_patch_request, normalise_resource
from scim.resources import parse_resource
from scim.schema import GROUP, USER, ResourceType
from storage.scim_store import ScimStore, user_name_taken


class Provisioning:
    def __init__(self, store: ScimStore, clock: Callable[[], datetime]) -> None:
        self.store = store
        self.clock = clock

    async def create(
        self, tenant_id: uuid.UUID, resource_type: ResourceType, body: Any
    ) -> dict[str, Any]:
        if resource_type is USER:
            resource, password_hash = await _new_user(body)
            return await self.store.create_user(tenant_id, resource, password_hash, self.clock())
        resource = parse_resource(GROUP, normalise_resource(GROUP, body))
        return await self.store.create_group(tenant_id, resource, self.clock())

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
        created = await self.store.create_users(tenant_id, valid, self.clock())
        for position, (resource, _), user in zip(positions, valid, created, strict=True):
            results[position] = user or user_name_taken(resource["userName"])
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

            async def build_user(current: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
                return await _user_replacing(current, body)

            return await self.store.replace_user(tenant_id, resource_id, build_user, if_match, now)

        async def build_group(current: dict[str, Any]) -> dict[str, Any]:
            return parse_resource(GROUP, normalise_resource(GROUP, body), existing=current)

        return await self.store.replace_group(tenant_id, resource_id, build_group, if_match, now)

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

            async def build_user(current: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
                patched, _ = apply_patch(USER, current, operations)
                return await _user_replacing(current, patched)

            return await self.store.replace_user(tenant_id, resource_id, build_user, if_match, now)

        if if_match is None and not with_members and changes_members_only(GROUP, operations):
            # What IdPs send for membership changes: applied without reading the group.
            stub = {"schemas": [GROUP.schema.id], "id": resource_id, "displayName": "-"}
            _, changes = apply_patch(GROUP, stub, operations, split_members=True)
            return await self.store.patch_group_members(tenant_id, resource_id, changes, now)

        async def build_group(current: dict[str, Any]) -> tuple[dict[str, Any], MemberChanges]:
            patched, changes = apply_patch(GROUP, current, operations, split_members=True)
            resource = parse_resource(GROUP, normalise_resource(GROUP, patched), existing=current)
            return resource, changes

        return await self.store.patch_group(
            tenant_id, resource_id, build_group, if_match, now, with_members=with_members
        )

    async def delete(
        self,
        tenant_id: uuid.UUID,
        resource_type: ResourceType,
        resource_id: str,
        if_match: str | None,
    ) -> None:
        if resource_type is USER:
            await self.store.delete_user(tenant_id, resource_id, if_match)
        else:
            await self.store.delete_group(tenant_id, resource_id, if_match)


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
