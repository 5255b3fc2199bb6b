"""SSO login state on Postgres: each request answered once, each assertion accepted once."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.app import utc_now
from storage.scim_store import ScimStore
from storage.sso_store import Identities, LoginState, SsoStore
from tests.conftest import TenantAccess


@pytest.fixture
async def connection_id(engine: AsyncEngine, tenant: TenantAccess) -> Any:
    added = await SsoStore(engine).add_connection(
        tenant.tenant.id,
        "idp",
        "oidc",
        {"issuer": "https://idp.example", "client_id": "c", "scopes": ["openid"]},
        {"client_secret": "s"},
        jit=True,
        idp_initiated=False,
        now=utc_now(),
    )
    return added.id


async def test_a_request_is_taken_once(engine: AsyncEngine, connection_id: Any) -> None:
    state, now = LoginState(engine), utc_now()
    request_id = "id-" + secrets.token_hex(8)
    data = {"return_to": "https://app.example/", "nonce": "n"}
    await state.save_request(request_id, connection_id, data, now + timedelta(minutes=10))
    assert await state.take_request(request_id, connection_id, now) == data
    assert await state.take_request(request_id, connection_id, now) is None


async def test_a_request_of_another_connection_or_expired_is_not_taken(
    engine: AsyncEngine, connection_id: Any, tenant: TenantAccess
) -> None:
    state, now = LoginState(engine), utc_now()
    other = await SsoStore(engine).add_connection(
        tenant.tenant.id, "other", "oidc", {}, {}, jit=False, idp_initiated=False, now=now
    )
    await state.save_request("req-a", connection_id, {}, now + timedelta(minutes=10))
    assert await state.take_request("req-a", other.id, now) is None
    assert await state.take_request("req-a", connection_id, now) == {}
    await state.save_request("req-b", connection_id, {}, now + timedelta(seconds=1))
    assert await state.take_request("req-b", connection_id, now + timedelta(seconds=2)) is None


async def test_an_assertion_is_accepted_once_even_concurrently(
    engine: AsyncEngine, connection_id: Any
) -> None:
    state, later = LoginState(engine), utc_now() + timedelta(minutes=5)
    uses = await asyncio.gather(*(state.first_use(connection_id, "_a1", later) for _ in range(8)))
    assert sorted(uses) == [False] * 7 + [True]
    assert await state.first_use(connection_id, "_a2", later) is True


async def test_expired_state_is_pruned(engine: AsyncEngine, connection_id: Any) -> None:
    state, now = LoginState(engine), utc_now()
    await state.save_request("old-" + secrets.token_hex(4), connection_id, {}, now)
    await state.first_use(connection_id, "_old", now)
    await state.first_use(connection_id, "_live", now + timedelta(minutes=5))
    assert await state.prune(now + timedelta(seconds=1)) >= 2
    # The live assertion is still remembered; the old one could be used again, being expired.
    assert await state.first_use(connection_id, "_live", now + timedelta(minutes=5)) is False
    assert await state.first_use(connection_id, "_old", now + timedelta(minutes=5)) is True


async def test_identities_link_a_subject_to_a_user_per_connection(
    engine: AsyncEngine, connection_id: Any, tenant: TenantAccess, store: ScimStore
) -> None:
    now = utc_now()
    made = await store.create_user(tenant.tenant.id, {"userName": "linked@corp.example"}, None, now)
    identities = Identities(engine)
    assert await identities.find(connection_id, "00u-linked", now) is None
    await identities.link(connection_id, "00u-linked", uuid.UUID(made["id"]), now)
    found = await identities.find(connection_id, "00u-linked", now + timedelta(minutes=1))
    assert found is not None and (str(found.user_id), found.active) == (made["id"], True)
    # The same subject from another connection is another identity.
    other = await SsoStore(engine).add_connection(
        tenant.tenant.id, "second", "oidc", {}, {}, jit=False, idp_initiated=False, now=now
    )
    assert await identities.find(other.id, "00u-linked", now) is None
