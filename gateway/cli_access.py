"""`idgate role`, `idgate project`, `idgate mapping` and `idgate audit`: a tenant's roles and
projects, grants given by hand, the mapping rules that give roles, groups and project roles
from the IdP, and the audit log."""

from __future__ import annotations

import dataclasses
import json
import tomllib
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import yaml

from gateway.access import Access, catalogue
from gateway.app import utc_now
from gateway.audit_writer import AuditWriter
from gateway.cli_base import Context, echo_json, on_tenant
from gateway.provisioning import Provisioning
from sso.mapping import BUILTIN_ROLES, Assignment, MappingError, parse_mapping, to_document
from storage.access_store import AccessStore
from storage.audit_store import AuditEntry, AuditLog
from storage.scim_store import ScimStore, Tenant

T = TypeVar("T")
CLI_ACTOR = "cli"
BUILTIN_DESCRIPTIONS = {
    "owner": "Everything, including the organisation itself and its billing.",
    "admin": "Manages users, groups, roles and settings.",
    "member": "Uses the product.",
    "readonly": "Sees, changes nothing. The default role.",
}


def _on_tenant(
    obj: Context, slug: str, work: Callable[[Tenant, Access, ScimStore], Awaitable[T]]
) -> T:
    """Run `work` on tenant SLUG with its access rules at hand."""

    async def with_access(tenant: Tenant, store: ScimStore) -> T:
        return await work(tenant, Access(AccessStore(store.engine), utc_now), store)

    return on_tenant(obj, slug, with_access)


async def _user_id(store: ScimStore, tenant: Tenant, user: str) -> uuid.UUID:
    """A user named by id or by userName."""
    try:
        user_id = uuid.UUID(user)
    except ValueError:
        page = await store.find_users_by_name(tenant.id, user, 1, 1)
        if not page.resources:
            raise click.ClickException(f"no user {user!r} in {tenant.slug}") from None
        return uuid.UUID(page.resources[0]["id"])
    if await store.get_user(tenant.id, str(user_id)) is None:
        raise click.ClickException(f"no user {user!r} in {tenant.slug}")
    return user_id


async def _role_name(access: Access, tenant: Tenant, role: str) -> str:
    """The catalogue's name for `role` (any case)."""
    known = catalogue(await access.store.catalogue(tenant.id)).roles
    found = next((name for name in known if name.lower() == role.lower()), None)
    if found is None:
        raise click.ClickException(f"no role {role!r}; see `idgate role list {tenant.slug}`")
    return found


# --- roles ------------------------------------------------------------------------------------


@click.group()
def role() -> None:
    """A tenant's roles, and roles given to users by hand.

    Built-in roles: owner, admin, member, readonly (the default: what a user holds when
    nothing gives them a role). Roles given by hand are kept when the mapping rules are
    applied again; roles from the rules come and go with the rules."""


@role.command("add")
@click.argument("slug")
@click.argument("name")
@click.option("--description", default="", help="What the role lets its holders do.")
@click.pass_obj
def role_add(obj: Context, slug: str, name: str, description: str) -> None:
    """Add custom role NAME to tenant SLUG (e.g. "chat-operator")."""
    if not name.strip() or name.lower() in BUILTIN_ROLES:
        raise click.ClickException(f"{name!r} is empty or a built-in role")

    async def work(tenant: Tenant, access: Access, _store: ScimStore) -> None:
        await access.store.add_role(tenant.id, name.strip(), description, utc_now())

    _on_tenant(obj, slug, work)
    click.echo(f"role {name.strip()!r} added to {slug}")


@role.command("list")
@click.argument("slug")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def role_list(obj: Context, slug: str, as_json: bool) -> None:
    """List tenant SLUG's roles: the built-in ones, then its own."""

    async def work(tenant: Tenant, access: Access, _store: ScimStore) -> Any:
        return await access.store.list_roles(tenant.id)

    custom = _on_tenant(obj, slug, work)
    rows = [{"name": n, "description": d, "builtin": True} for n, d in BUILTIN_DESCRIPTIONS.items()]
    rows += [{"name": r.name, "description": r.description, "builtin": False} for r in custom]
    if as_json:
        echo_json(rows)
        return
    for row in rows:
        kind = "built-in" if row["builtin"] else "custom"
        click.echo(f"{row['name']}\t{kind}\t{row['description']}")


@role.command("remove")
@click.argument("slug")
@click.argument("name")
@click.pass_obj
def role_remove(obj: Context, slug: str, name: str) -> None:
    """Remove custom role NAME and every grant of it. Refused while the mapping rules name
    it."""
    if name.lower() in BUILTIN_ROLES:
        raise click.ClickException(f"{name!r} is a built-in role")

    async def work(tenant: Tenant, access: Access, _store: ScimStore) -> bool:
        await _refuse_if_named(access, tenant, "roles", name)
        return await access.store.remove_role(tenant.id, name, utc_now(), CLI_ACTOR)

    if not _on_tenant(obj, slug, work):
        raise click.ClickException(f"no custom role {name!r} in {slug}")
    click.echo(f"role {name!r} removed from {slug}")


async def _refuse_if_named(access: Access, tenant: Tenant, kind: str, name: str) -> None:
    """Refuse to remove what the tenant's rules name: they would no longer validate."""
    document = await access.store.document(tenant.id)
    if document is None:
        return
    names = await access.store.catalogue(tenant.id)
    kept = [n for n in getattr(names, kind) if n.lower() != name.lower()]
    try:
        parse_mapping(document, catalogue(dataclasses.replace(names, **{kind: tuple(kept)})))
    except MappingError as exc:
        raise click.ClickException(f"the mapping rules of {tenant.slug} name it: {exc}") from None


@role.command("grant")
@click.argument("slug")
@click.argument("user")
@click.argument("name")
@click.option("--project", help="Give the role on this project instead of the organisation.")
@click.pass_obj
def role_grant(obj: Context, slug: str, user: str, name: str, project: str | None) -> None:
    """Give USER (id or userName) role NAME by hand. `owner` is given only this way."""

    async def work(tenant: Tenant, access: Access, store: ScimStore) -> tuple[bool, str]:
        user_id = await _user_id(store, tenant, user)
        canonical = await _role_name(access, tenant, name)
        done = await access.store.grant_manual(
            tenant.id, user_id, canonical, project, utc_now(), CLI_ACTOR
        )
        return done, canonical

    done, canonical = _on_tenant(obj, slug, work)
    where = f" on project {project!r}" if project else ""
    click.echo(f"{user} {'now holds' if done else 'already held'} {canonical!r}{where} by hand")


@role.command("revoke")
@click.argument("slug")
@click.argument("user")
@click.argument("name")
@click.option("--project", help="The project the role was given on.")
@click.pass_obj
def role_revoke(obj: Context, slug: str, user: str, name: str, project: str | None) -> None:
    """Take back role NAME given to USER by hand. A role the rules give stays until they stop
    giving it."""

    async def work(tenant: Tenant, access: Access, store: ScimStore) -> bool:
        user_id = await _user_id(store, tenant, user)
        return await access.store.revoke_manual(
            tenant.id, user_id, name, project, utc_now(), CLI_ACTOR
        )

    if not _on_tenant(obj, slug, work):
        raise click.ClickException(f"{user} holds no {name!r} given by hand")
    click.echo(f"{name!r} taken back from {user}")


@role.command("show")
@click.argument("slug")
@click.argument("user")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def role_show(obj: Context, slug: str, user: str, as_json: bool) -> None:
    """The roles USER holds, each with where it comes from: `mapped` (the rules, which are
    named), `scim` (pushed by the SCIM client and accepted by the rules) or `manual`."""

    async def work(tenant: Tenant, access: Access, store: ScimStore) -> Any:
        return await access.store.grants(tenant.id, await _user_id(store, tenant, user))

    grants = _on_tenant(obj, slug, work)
    rows = [
        {"project": g.project, "role": g.role, "source": g.source, "rules": list(g.rules)}
        for g in grants
    ]
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("no role given: the tenant's default role applies")
    for row in rows:
        where = f"project {row['project']}" if row["project"] else "organisation"
        why = f" ({', '.join(row['rules'])})" if row["rules"] else ""
        click.echo(f"{row['role']}\t{where}\t{row['source']}{why}")


# --- projects ---------------------------------------------------------------------------------


@click.group()
def project() -> None:
    """A tenant's projects: users hold roles on each (by hand or by the mapping rules)."""


@project.command("add")
@click.argument("slug")
@click.argument("name")
@click.option("--description", default="")
@click.pass_obj
def project_add(obj: Context, slug: str, name: str, description: str) -> None:
    """Add project NAME to tenant SLUG."""
    if not name.strip():
        raise click.ClickException("a project name may not be empty")

    async def work(tenant: Tenant, access: Access, _store: ScimStore) -> uuid.UUID:
        return await access.store.add_project(tenant.id, name.strip(), description, utc_now())

    project_id = _on_tenant(obj, slug, work)
    click.echo(f"project {name.strip()!r} added to {slug} (id {project_id})")


@project.command("list")
@click.argument("slug")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def project_list(obj: Context, slug: str, as_json: bool) -> None:
    async def work(tenant: Tenant, access: Access, _store: ScimStore) -> Any:
        return await access.store.list_projects(tenant.id)

    rows = [{"name": p.name, "description": p.description} for p in _on_tenant(obj, slug, work)]
    if as_json:
        echo_json(rows)
        return
    for row in rows:
        click.echo(f"{row['name']}\t{row['description']}")


@project.command("remove")
@click.argument("slug")
@click.argument("name")
@click.pass_obj
def project_remove(obj: Context, slug: str, name: str) -> None:
    """Remove project NAME and every role held on it. Refused while the rules name it."""

    async def work(tenant: Tenant, access: Access, _store: ScimStore) -> bool:
        await _refuse_if_named(access, tenant, "projects", name)
        return await access.store.remove_project(tenant.id, name)

    if not _on_tenant(obj, slug, work):
        raise click.ClickException(f"no project {name!r} in {slug}")
    click.echo(f"project {name!r} removed from {slug}")


# --- mapping rules ----------------------------------------------------------------------------


def load_document(path: Path) -> Any:
    """A mapping document from a .json, .toml, .yaml or .yml file."""
    text = path.read_text(encoding="utf-8")
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            return json.loads(text)
        if suffix == ".toml":
            return tomllib.loads(text)
        if suffix in (".yaml", ".yml"):
            return yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise click.ClickException(f"{path}: not valid {suffix[1:].upper()}: {exc}") from None
    raise click.ClickException(f"{path}: give a .json, .toml, .yaml or .yml file")


@click.group()
def mapping() -> None:
    """The rules that give roles, product groups and project roles from the IdP.

    The same rules apply to users a SCIM client pushes and to users who log in through SSO;
    the format is in docs/mapping.md. Grants from the rules are applied again whenever a
    user, their groups or their logins change, and for everyone when the rules change."""


@mapping.command("set")
@click.argument("slug")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_obj
def mapping_set(obj: Context, slug: str, file: Path) -> None:
    """Replace tenant SLUG's rules with FILE (JSON, TOML or YAML) and apply them to every
    user. A file that does not validate changes nothing."""
    document = load_document(file)

    async def work(tenant: Tenant, access: Access, _store: ScimStore) -> tuple[int, int]:
        return await access.set_rules(tenant.id, document, CLI_ACTOR)

    users, changes = _on_tenant(obj, slug, work)
    click.echo(f"rules of {slug} replaced; {users} users recomputed, {changes} grants changed")


@mapping.command("clear")
@click.argument("slug")
@click.pass_obj
def mapping_clear(obj: Context, slug: str) -> None:
    """Remove tenant SLUG's rules: every grant they gave, and every SCIM role, is taken back."""

    async def work(tenant: Tenant, access: Access, _store: ScimStore) -> tuple[int, int]:
        return await access.set_rules(tenant.id, None, CLI_ACTOR)

    users, changes = _on_tenant(obj, slug, work)
    click.echo(f"rules of {slug} removed; {users} users recomputed, {changes} grants changed")


@mapping.command("show")
@click.argument("slug")
@click.pass_obj
def mapping_show(obj: Context, slug: str) -> None:
    """Print tenant SLUG's rules as JSON."""

    async def work(tenant: Tenant, access: Access, _store: ScimStore) -> Any:
        rules = await access.rules(tenant.id)
        return to_document(rules) if rules is not None else None

    document = _on_tenant(obj, slug, work)
    if document is None:
        raise click.ClickException(f"{slug} has no mapping rules")
    echo_json(document)


@mapping.command("recompute")
@click.argument("slug")
@click.pass_obj
def mapping_recompute(obj: Context, slug: str) -> None:
    """Apply tenant SLUG's rules to every user again."""

    async def work(tenant: Tenant, access: Access, _store: ScimStore) -> tuple[int, int]:
        return await access.recompute_all(tenant.id, CLI_ACTOR)

    users, changes = _on_tenant(obj, slug, work)
    click.echo(f"{users} users recomputed, {changes} grants changed")


@mapping.command("test")
@click.argument("slug")
@click.option("--user", help="A user (id or userName): what the rules give them now.")
@click.option(
    "--attributes",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A JSON file of SAML attributes or OIDC claims: what a login with them would get.",
)
@click.option("--connection", help="With --attributes: the connection the login comes through.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def mapping_test(
    obj: Context,
    slug: str,
    user: str | None,
    attributes: Path | None,
    connection: str | None,
    as_json: bool,
) -> None:
    """What the rules would give a user, and why. Nothing is written."""
    if (user is None) == (attributes is None):
        raise click.UsageError("give exactly one of --user and --attributes")
    claims = json.loads(attributes.read_text(encoding="utf-8")) if attributes else None
    if claims is not None and not isinstance(claims, dict):
        raise click.ClickException("--attributes must hold a JSON object")

    async def work(tenant: Tenant, access: Access, store: ScimStore) -> Any:
        if claims is not None:
            return await access.explain_claims(tenant.id, claims, connection), []
        found = await access.explain_user(tenant.id, await _user_id(store, tenant, user or ""))
        assert found is not None
        return found

    assignment, scim_roles = _on_tenant(obj, slug, work)
    _print_assignment(assignment, scim_roles, as_json)


def _print_assignment(assignment: Assignment, scim_roles: list[str], as_json: bool) -> None:
    if as_json:
        echo_json(
            {
                "grants": [
                    {"kind": g.kind, "target": g.target, "role": g.role, "rules": list(g.rules)}
                    for g in assignment.grants
                ],
                "default_role": assignment.default_role,
                "scim_roles": scim_roles,
            }
        )
        return
    for line in assignment.explain():
        click.echo(line)
    for name in scim_roles:
        click.echo(f"role {name}  ← pushed by SCIM (accepted by scim_roles)")


@click.command("add-member")
@click.argument("slug")
@click.argument("group")
@click.argument("user")
@click.pass_obj
def group_add_member(obj: Context, slug: str, group: str, user: str) -> None:
    """Add USER (id or userName) to product group GROUP by hand. The mapping rules never take
    a member added by hand out."""

    async def work(tenant: Tenant, access: Access, store: ScimStore) -> bool:
        user_id = await _user_id(store, tenant, user)
        return await access.store.add_group_member(tenant.id, group, user_id, utc_now(), CLI_ACTOR)

    added = _on_tenant(obj, slug, work)
    click.echo(f"{user} {'added to' if added else 'already in'} {group!r}")


# --- users ------------------------------------------------------------------------------------


@click.group()
def user() -> None:
    """Block and unblock users. A blocked user is out at once, like one SCIM deactivated
    (sessions revoked, logins refused, grants from the rules suspended), whatever SCIM says;
    unblocking lets them log in again."""


@user.command("block")
@click.argument("slug")
@click.argument("name")
@click.option("--reason", required=True, help="Why (kept with the user and audited).")
@click.pass_obj
def user_block(obj: Context, slug: str, name: str, reason: str) -> None:
    """Block user NAME (id or userName) of tenant SLUG."""
    if not reason.strip():
        raise click.ClickException("give a reason")
    _set_blocked(obj, slug, name, reason.strip())
    click.echo(f"{name} blocked")


@user.command("unblock")
@click.argument("slug")
@click.argument("name")
@click.pass_obj
def user_unblock(obj: Context, slug: str, name: str) -> None:
    """Unblock user NAME (id or userName) of tenant SLUG."""
    _set_blocked(obj, slug, name, None)
    click.echo(f"{name} unblocked")


def _set_blocked(obj: Context, slug: str, name: str, reason: str | None) -> None:
    async def work(tenant: Tenant, access: Access, store: ScimStore) -> None:
        user_id = await _user_id(store, tenant, name)
        audit = AuditWriter(AuditLog(store.engine), utc_now, 0)
        provisioning = Provisioning(store, utc_now, access, audit, actor=CLI_ACTOR)
        await provisioning.set_blocked(tenant.id, user_id, reason)

    _on_tenant(obj, slug, work)


# --- audit log --------------------------------------------------------------------------------


@click.command("audit")
@click.argument("slug")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--action", help="Only actions starting with this (e.g. role. or login.failed).")
@click.option("--user", help="Only entries about this user (id or userName).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def audit(
    obj: Context, slug: str, limit: int, action: str | None, user: str | None, as_json: bool
) -> None:
    """Tenant SLUG's audit log, newest first: who changed what (roles, group memberships
    from the rules, grants by hand) and which logins were refused, and why."""

    async def work(tenant: Tenant, _access: Access, store: ScimStore) -> list[AuditEntry]:
        target = f"user:{await _user_id(store, tenant, user)}" if user else None
        return await AuditLog(store.engine).latest(
            tenant.id, limit=limit, action=action, target=target
        )

    rows = [
        {
            "id": e.id,
            "at": e.at.isoformat() if e.at else None,
            "actor": e.actor,
            "action": e.action,
            "target": e.target,
            "details": e.details,
        }
        for e in _on_tenant(obj, slug, work)
    ]
    if as_json:
        echo_json(rows)
        return
    for row in rows:
        details = json.dumps(row["details"], ensure_ascii=False, sort_keys=True)
        click.echo(f"{row['at']}\t{row['actor']}\t{row['action']}\t{row['target']}\t{details}")
