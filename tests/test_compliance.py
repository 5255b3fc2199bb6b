"""The independent checker scim2-tester, run against the live app over real HTTP."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx2
from aiohttp.test_utils import TestServer, unused_port
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status, check_server

from gateway.app import create_app
from gateway.settings import Settings
from storage.scim_store import ScimStore
from tests.conftest import make_tenant


async def test_scim2_tester_reports_no_failure(
    aiohttp_server: Any, settings: Settings, store: ScimStore
) -> None:
    access = await make_tenant(store, "compliance")
    port = unused_port()
    # Locations the server writes must point at the address the checker talks to.
    live = settings.model_copy(update={"public_url": f"http://127.0.0.1:{port}"})
    server: TestServer = await aiohttp_server(create_app(live), port=port)
    base = str(server.make_url(access.base))

    def run() -> list[Any]:
        with httpx2.Client(
            base_url=base, headers={"Authorization": f"Bearer {access.token}"}
        ) as http:
            client = SyncSCIMClient(http)
            client.discover()
            return check_server(client)

    results = await asyncio.to_thread(run)
    failures = [f"{r.title}: {r.reason} {r.data}" for r in results if r.status == Status.ERROR]
    assert results, "the checker ran no check"
    assert not failures, "\n".join(failures)
    skipped = [f"{r.title}: {r.reason}" for r in results if r.status == Status.SKIPPED]
    assert not skipped, skipped
    assert sum(r.status == Status.SUCCESS for r in results) >= 100
