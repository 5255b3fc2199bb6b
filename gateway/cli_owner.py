"""`idgate owner create`: the first owner of a tenant, before anyone can sign in to it.

The owner is invited like anyone an admin invites (a pending user with the owner role, and
a link that works `invitation_days`); the link, printed once, is how they get in: through
the tenant's SSO when it has a connection, else with a password and an authenticator app
(`gateway.local_login`).
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta

import click

from gateway.access import Access
from gateway.app import utc_now
from gateway.cli_base import Context, on_tenant
from gateway.credentials import new_invitation
from sso.mapping import OWNER
from storage.access_store import AccessStore
from storage.invitation_store import Access as Given
from storage.invitation_store import InvitationStore, Invitee
from storage.scim_store import ScimStore, Tenant

CLI_ACTOR = "cli"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@click.group()
def owner() -> None:
    """A tenant's first owner: invited with a link printed once."""


@owner.command("create")
@click.argument("slug")
@click.argument("email")
@click.option("--name", help="The person's name, as shown to admins.")
@click.pass_obj
def owner_create(obj: Context, slug: str, email: str, name: str | None) -> None:
    """Invite EMAIL as an owner of tenant SLUG and print the invitation link (shown once)."""
    address = email.strip().lower()
    if len(address) > 254 or not _EMAIL.match(address):
        raise click.ClickException(f"not an e-mail address: {email!r}")
    settings = obj.settings
    invitation_id, secret, secret_hash = new_invitation()

    async def work(tenant: Tenant, store: ScimStore) -> tuple[uuid.UUID, datetime]:
        now = utc_now()
        expires = now + timedelta(days=settings.invitation_days)
        person = Invitee(address, name, Given(roles=(OWNER,)), invitation_id, secret_hash)
        [user_id] = await InvitationStore(store.engine).invite(
            tenant.id, [person], now, expires, CLI_ACTOR
        )
        # The owner's grants as the tenant's rules would also give them.
        await Access(AccessStore(store.engine), utc_now).recompute(tenant.id, [user_id], CLI_ACTOR)
        return user_id, expires

    user_id, expires = on_tenant(obj, slug, work)
    click.echo(
        f"{address} invited as owner of {slug} (user {user_id}, invitation {invitation_id}).\n"
        f"Invitation link, shown only now, valid until {expires.isoformat(timespec='seconds')}:\n"
        f"{settings.base_url}/invite/{secret}"
    )
