"""Access from the IdP: the tenant's mapping rules (`sso.mapping`) applied to its users.

A user's `mapped` grants (organisation roles, project roles, product groups) and the roles a
SCIM client may push (`scim` grants) are recomputed from what the rules read: the user's SCIM
attributes and groups, and the claims of each identity's last login. That happens when SCIM
changes the user or a group they are (or were) in, at each SSO login, and for every user when
the rules change. Grants given by hand (`manual`) are never recomputed.

A tenant without a mapping document has no mapped grants and accepts no SCIM roles; its
users hold the default role only (`DEFAULT_ROLE`), unless given one by hand.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from sso.mapping import (
    BUILTIN_ROLES,
    DEFAULT_ROLE,
    Assignment,
    Catalogue,
    GroupRef,
    Subject,
    accepted_scim_roles,
    assign,
    empty_mapping,
    parse_mapping,
    subject_attributes,
    to_document,
)
from sso.mapping import Mapping as Rules
from sso.profile import profile
from storage.access_store import (
    MAPPED,
    SCIM,
    AccessStore,
    CatalogueNames,
    Desired,
    GrantRow,
    Recomputation,
    SubjectRow,
)

_BATCH = 500  # users per transaction (each holds one advisory lock per user)


def catalogue(names: CatalogueNames) -> Catalogue:
    return Catalogue(
        roles=frozenset((*BUILTIN_ROLES, *names.roles)),
        groups=frozenset(names.groups),
        projects=frozenset(names.projects),
    )


def subject(rules: Rules, row: SubjectRow) -> Subject:
    """What the rules see of a user: SCIM attributes and groups, and each last login's
    claims and group claims (read with that connection's field map)."""
    scim_groups = tuple(
        GroupRef(g.name, frozenset(i for i in (g.id, g.external_id) if i), g.ambiguous)
        for g in row.groups
    )

    def claim_groups(name: str, claims: Mapping[str, Any]) -> tuple[GroupRef, ...]:
        found = profile(claims, None, rules.fields_for(name)).groups
        return tuple(GroupRef(value, frozenset({value})) for value in found)

    # The roles a SCIM client pushes count only through `scim_roles`, never as an attribute
    # (a `roles_from` rule would otherwise take them past that allow-list).
    scim = {k: v for k, v in row.scim.items() if k != "roles"}
    by_connection: dict[str, list[Mapping[str, Any]]] = {}
    for name, claims in row.claims:
        by_connection.setdefault(name, []).append(claims)
    scoped = {
        name: Subject(
            attributes=subject_attributes(scim, claims),
            groups=scim_groups + tuple(g for c in claims for g in claim_groups(name, c)),
            connections=frozenset({name}),
        )
        for name, claims in by_connection.items()
    }
    return Subject(
        attributes=subject_attributes(scim, [claims for _, claims in row.claims]),
        groups=scim_groups + tuple(g for n, c in row.claims for g in claim_groups(n, c)),
        connections=frozenset(scoped),
        scoped=scoped,
    )


def pushed_roles(scim_user: Mapping[str, Any]) -> list[str]:
    """The role values a SCIM client set on the user, as stored (the store keeps none of the
    entries the gateway shows for its own grants: `storage.scim_store.GIVEN_ROLE_TYPES`)."""
    entries = scim_user.get("roles")
    if not isinstance(entries, list):
        return []
    return [e["value"] for e in entries if isinstance(e, dict) and isinstance(e.get("value"), str)]


def desired(rules: Rules, row: SubjectRow) -> tuple[Desired, Assignment]:
    """What the rules give the user (nothing while deactivated or blocked: the grants are
    suspended, and come back when the user does), and the rules' explanation."""
    assignment = assign(rules, subject(rules, row))
    if not row.enabled:
        return Desired((), {}), assignment
    grants = assignment.grants
    roles = [GrantRow(None, g.target, MAPPED, g.rules) for g in grants if g.kind == "role"]
    roles += [
        GrantRow(g.target, g.role, MAPPED, g.rules)
        for g in grants
        if g.kind == "project" and g.role is not None
    ]
    roles += [GrantRow(None, r, SCIM) for r in accepted_scim_roles(rules, pushed_roles(row.scim))]
    groups = {g.target: g.rules for g in grants if g.kind == "group"}
    return Desired(tuple(roles), groups), assignment


class Access:
    def __init__(self, store: AccessStore, clock: Callable[[], datetime]) -> None:
        self.store = store
        self.clock = clock

    async def rules(self, tenant_id: uuid.UUID) -> Rules | None:
        """The tenant's rules, or None when it has no mapping document."""
        document = await self.store.document(tenant_id)
        if document is None:
            return None
        return parse_mapping(document, catalogue(await self.store.catalogue(tenant_id)))

    async def recompute(
        self, tenant_id: uuid.UUID, user_ids: Iterable[uuid.UUID], actor: str
    ) -> int:
        """Recompute these users' grants (`_BATCH` per transaction); the changes made.

        A tenant without rules is seen in one statement and left (its users have no mapped
        or SCIM grants; should rules arrive meanwhile, `set_rules` recomputes everyone after
        storing them, reading what this write left)."""
        ids = sorted(set(user_ids))
        if not ids or not await self.store.has_document(tenant_id):
            return 0
        changes = 0
        for start in range(0, len(ids), _BATCH):
            async with self.store.recomputing(tenant_id) as tx:
                changes += await self._recompute(tx, ids[start : start + _BATCH], actor)
        return changes

    async def _recompute(self, tx: Recomputation, ids: list[uuid.UUID], actor: str) -> int:
        document = await tx.document()
        if document is None:
            return 0
        rules = parse_mapping(document, catalogue(await tx.catalogue()))
        rows = await tx.subjects(ids)
        wanted = {row.user_id: desired(rules, row)[0] for row in rows}
        return len(await tx.write(wanted, self.clock(), actor))

    async def set_rules(
        self, tenant_id: uuid.UUID, document: dict[str, Any] | None, actor: str
    ) -> tuple[int, int]:
        """Validate and store the tenant's mapping document (None removes it), then
        recompute every user; (users recomputed, changes made). A document that does not
        validate raises `sso.mapping.MappingError` and changes nothing."""
        if document is not None:
            # Stored as parsed: canonical names, every default filled in.
            rules = parse_mapping(document, catalogue(await self.store.catalogue(tenant_id)))
            document = to_document(rules)
        await self.store.set_document(tenant_id, document, self.clock())
        return await self.recompute_all(tenant_id, actor)

    async def recompute_all(self, tenant_id: uuid.UUID, actor: str) -> tuple[int, int]:
        """Recompute every user of the tenant, in batches of users (each its own
        transaction); (users recomputed, changes made). Without rules, every mapped and
        SCIM grant is removed (finishing a `mapping clear` that stopped half-way)."""
        users = changes = 0
        after: uuid.UUID | None = None
        while ids := await self.store.user_ids(tenant_id, after, _BATCH):
            after = ids[-1]
            async with self.store.recomputing(tenant_id) as tx:
                if await tx.document() is None:
                    rows = await tx.subjects(ids)
                    empty = Desired((), {})
                    changes += len(
                        await tx.write({r.user_id: empty for r in rows}, self.clock(), actor)
                    )
                else:
                    changes += await self._recompute(tx, ids, actor)
            users += len(ids)
        return users, changes

    async def explain_user(
        self, tenant_id: uuid.UUID, user_id: uuid.UUID
    ) -> tuple[Assignment, list[str]] | None:
        """What the rules give a user now and why, and the SCIM roles accepted from it;
        None if there is no such user. Nothing is written."""
        rules = await self.rules(tenant_id) or empty_mapping(DEFAULT_ROLE)
        async with self.store.recomputing(tenant_id) as tx:
            rows = await tx.subjects([user_id])
        if not rows:
            return None
        want, assignment = desired(rules, rows[0])
        return assignment, [g.role for g in want.roles if g.source == SCIM]

    async def explain_claims(
        self,
        tenant_id: uuid.UUID,
        claims: Mapping[str, Any],
        connection: str | None,
    ) -> Assignment:
        """What the rules would give someone logging in with these claims (through
        `connection`, if named) who has no SCIM attributes or groups."""
        rules = await self.rules(tenant_id) or empty_mapping(DEFAULT_ROLE)
        row = SubjectRow(uuid.UUID(int=0), {}, True, ((connection or "", dict(claims)),), ())
        found = subject(rules, row)
        if connection is None:
            found = Subject(found.attributes, found.groups, frozenset())
        return assign(rules, found)
