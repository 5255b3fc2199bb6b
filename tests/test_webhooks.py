"""Webhook delivery against a real receiver on 127.0.0.1: Standard Webhooks signatures (checked
with the `standardwebhooks` reference library), event-type filters, retries with backoff to a
dead delivery and `idgate webhook redeliver`, error answers and timeouts, per-resource order,
two workers sharing the queue, secret rotation, and a gateway process killed with SIGKILL
mid-delivery.

The workers run on a clock the tests move, so retries fall due exactly when a test says;
only the SIGKILL test runs real `idgate serve` processes on the real clock."""

from __future__ import annotations

import asyncio
import collections
import json
import re
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from gateway.app import utc_now
from gateway.webhooks import RETRY_DELAYS, WebhookWorker, new_endpoint_id, new_secret
from storage.event_store import Event, EventStore
from storage.webhook_store import DEAD, DELIVERED, PENDING, DeliveryRecord, WebhookStore
from tests.conftest import Scim, TenantAccess, group, user
from tests.processes import free_port, healthy, serve, until
from tests.test_cli import _cli

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def _retitle(title: str) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {"title": title}}]}


@dataclass
class Hit:
    path: str
    event_id: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A webhook receiver: records every request as it arrives, answers 204 unless told to
    answer 500 (`fail`, or with a body of `error_bodies`) or to take `hang_seconds` (`hang`)
    for chosen event ids, and to take `delays` seconds at chosen paths."""

    port: int = field(default_factory=free_port)
    hits: list[Hit] = field(default_factory=list)
    fail: set[str] = field(default_factory=set)
    error_bodies: dict[str, bytes] = field(default_factory=dict)  # event id: a 500's body
    hang: set[str] = field(default_factory=set)
    delays: dict[str, float] = field(default_factory=dict)  # by path
    hang_seconds: float = 1.0
    delay: float = 0.0
    in_flight: int = 0
    runner: web.AppRunner | None = None

    def url(self, path: str = "hook") -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def at(self, path: str = "hook") -> list[Hit]:
        return [h for h in self.hits if h.path == "/" + path]

    def ids(self, path: str = "hook") -> list[str]:
        return [h.event_id for h in self.at(path)]

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        event_id = request.headers.get("webhook-id", "")
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.hits.append(Hit(request.path, event_id, headers, body))
        self.in_flight += 1
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            if request.path in self.delays:
                await asyncio.sleep(self.delays[request.path])
            if event_id in self.hang:
                await asyncio.sleep(self.hang_seconds)
            if event_id in self.fail:
                return web.Response(status=500, text="receiver failed")
            if event_id in self.error_bodies:
                body = self.error_bodies[event_id]
                return web.Response(
                    status=500, body=body, content_type="text/plain", charset="utf-8"
                )
            return web.Response(status=204)
        finally:
            self.in_flight -= 1

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{name}", self._handle)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port, backlog=1024).start()

    async def stop(self) -> None:
        if self.runner is not None:
            runner, self.runner = self.runner, None
            await runner.cleanup()


class Clock:
    def __init__(self) -> None:
        self.now = utc_now()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@dataclass
class Hooks:
    engine: AsyncEngine
    tenant: TenantAccess
    store: WebhookStore
    clock: Clock
    http: aiohttp.ClientSession
    receiver: Receiver

    def worker(self, **options: Any) -> WebhookWorker:
        return WebhookWorker(self.store, self.http, self.clock, **options)

    async def add(self, path: str = "hook", types: Sequence[str] = ()) -> tuple[str, str]:
        """A new endpoint at the receiver's `path`: (endpoint id, secret)."""
        secret = new_secret()
        endpoint = await self.store.add_endpoint(
            self.tenant.tenant.id, new_endpoint_id(), self.receiver.url(path), types, secret,
            self.clock(),
        )  # fmt: skip
        return endpoint.id, secret

    async def events(self, after: int = 0) -> list[Event]:
        return await EventStore(self.engine).after(self.tenant.tenant.id, after, 10_000)

    async def deliveries(self, endpoint_id: str) -> dict[str, DeliveryRecord]:
        found = await self.store.deliveries(
            self.tenant.tenant.id, endpoint_id=endpoint_id, limit=10_000
        )
        return {d.event_id: d for d in found}


@pytest.fixture
async def hooks(engine: AsyncEngine, tenant: TenantAccess) -> AsyncIterator[Hooks]:
    receiver = Receiver()
    await receiver.start()
    store = WebhookStore(engine)
    http = aiohttp.ClientSession()
    try:
        yield Hooks(engine, tenant, store, Clock(), http, receiver)
    finally:
        # Workers of later tests (and gateway processes) share the queue: leave nothing in it.
        for endpoint in await store.endpoints(tenant.tenant.id):
            await store.remove_endpoint(tenant.tenant.id, endpoint.id)
        await http.close()
        await receiver.stop()


async def _drain(worker: WebhookWorker, rounds: int = 100) -> int:
    """Run the worker until a round has nothing to send; how many it sent."""
    sent = 0
    for _ in range(rounds):
        n = await worker.run_once()
        if n == 0:
            return sent
        sent += n
    raise AssertionError("the worker never ran out of deliveries")


def _sequence(body: dict[str, Any]) -> int:
    return int(body["sequence"])


def _signatures(hit: Hit) -> list[str]:
    return hit.headers["webhook-signature"].split(" ")


# --- delivery and signatures ------------------------------------------------------------------


async def test_events_are_delivered_signed(hooks: Hooks, scim: Scim, database_url: str) -> None:
    endpoint_id, secret = await hooks.add()
    _, ann, _ = await scim.post("/Users", user("ann@sign.example", title="Eng"))
    _, bob, _ = await scim.post("/Users", user("bob@sign.example"))
    await scim.post("/Groups", group("Signers", [ann["id"], bob["id"]]))
    await scim.request("PATCH", f"/Users/{ann['id']}", _retitle("Lead"))
    events = await hooks.events()
    assert len(events) == 6

    assert await _drain(hooks.worker()) == 6
    hits = hooks.receiver.at()
    assert sorted(h.event_id for h in hits) == sorted(e.id for e in events)
    by_id = {e.id: e for e in events}
    listed = await _cli(database_url, "events", hooks.tenant.slug, "--limit", "100")
    as_listed = {item["id"]: item for item in map(json.loads, listed.output.splitlines())}
    timestamp = str(int(hooks.clock().timestamp()))
    for hit in hits:
        event, body = by_id[hit.event_id], hit.json
        assert body["id"] == event.id == hit.headers["webhook-id"]
        assert body["type"] == event.type and body["sequence"] == event.seq
        assert body["tenant"] == hooks.tenant.slug
        assert body["resource"] == {"type": event.resource_type, "id": event.resource_id}
        assert body["data"] == event.data
        assert body == as_listed[event.id]  # what `idgate events` and the events API show
        assert hit.headers["webhook-timestamp"] == timestamp
        assert hit.headers["content-type"] == "application/json"
        assert len(_signatures(hit)) == 1 and _signatures(hit)[0].startswith("v1,")
        assert Webhook(secret).verify(hit.body, hit.headers) == body
    # The user's events in order, as the receiver saw them.
    ann_hits = [h.json for h in hits if h.json["resource"]["id"] == ann["id"]]
    assert [b["type"] for b in ann_hits] == ["user.created", "user.updated"]
    assert ann_hits[0]["data"]["title"] == "Eng" and ann_hits[1]["data"]["title"] == "Lead"

    hit = hits[0]
    tampered = hit.body.replace(b'"sequence":', b'"sequence":1')
    assert tampered != hit.body
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(tampered, hit.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(hit.body, {**hit.headers, "webhook-id": hits[1].event_id})
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(hit.body, hit.headers)

    records = await hooks.deliveries(endpoint_id)
    assert {d.status for d in records.values()} == {DELIVERED}
    assert all(d.attempts == 1 for d in records.values())
    assert await hooks.worker().run_once() == 0  # nothing is sent twice


async def test_event_types_and_endpoints_added_later(
    hooks: Hooks, scim: Scim, database_url: str
) -> None:
    slug = hooks.tenant.slug
    added = await _cli(
        database_url, "webhook", "add", slug, hooks.receiver.url("created"),
        "--event", "user.created", "--json",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    created = json.loads(added.output)
    assert created["events"] == ["user.created"] and created["secret"].startswith("whsec_")
    everything, _ = await hooks.add("all")

    _, ann, _ = await scim.post("/Users", user("ann@filter.example"))
    await scim.request("PATCH", f"/Users/{ann['id']}", _retitle("Dr"))
    await scim.post("/Groups", group("Filtered", [ann["id"]]))
    first = await hooks.events()
    worker = hooks.worker()
    await _drain(worker)
    assert hooks.receiver.ids("created") == [first[0].id]
    everything_got = sorted((h.json for h in hooks.receiver.at("all")), key=_sequence)
    assert [b["id"] for b in everything_got] == [e.id for e in first]
    assert [b["type"] for b in everything_got] == [
        "user.created", "user.updated", "group.created", "group.member_added",
    ]  # fmt: skip
    assert all(
        Webhook(created["secret"]).verify(h.body, h.headers) for h in hooks.receiver.at("created")
    )

    late, _ = await hooks.add("late")
    _, bob, _ = await scim.post("/Users", user("bob@filter.example"))
    await _drain(worker)
    bob_created = (await hooks.events(after=first[-1].seq))[0]
    assert bob_created.resource_id == bob["id"]
    assert hooks.receiver.ids("late") == [bob_created.id]  # none of the earlier events
    assert hooks.receiver.ids("created") == [first[0].id, bob_created.id]
    assert hooks.receiver.ids("all")[-1] == bob_created.id
    assert set(await hooks.deliveries(late)) == {bob_created.id}

    # A disabled endpoint's events wait for it; enabled again, it gets them.
    disabled = await _cli(database_url, "webhook", "disable", slug, everything)
    assert disabled.exit_code == 0, disabled.output
    await scim.request("PATCH", f"/Users/{bob['id']}", _retitle("Ops"))
    await _drain(worker)
    update = (await hooks.events(after=bob_created.seq))[0]
    assert update.id in hooks.receiver.ids("late")
    assert update.id not in hooks.receiver.ids("all")
    assert (await _cli(database_url, "webhook", "enable", slug, everything)).exit_code == 0
    await _drain(worker)
    assert hooks.receiver.ids("all")[-1] == update.id
    listed = json.loads((await _cli(database_url, "webhook", "list", slug, "--json")).output)
    assert {e["url"]: e["events"] for e in listed} == {
        hooks.receiver.url("created"): ["user.created"],
        hooks.receiver.url("all"): "all",
        hooks.receiver.url("late"): "all",
    }


# --- retries ----------------------------------------------------------------------------------


async def test_retries_back_off_until_dead_and_redeliver(
    hooks: Hooks, scim: Scim, database_url: str
) -> None:
    endpoint_id, _ = await hooks.add()
    await scim.post("/Users", user("retry@retry.example"))
    await scim.post("/Users", user("doomed@retry.example"))
    await scim.post("/Users", user("slow@retry.example"))
    retry, doomed, slow = (e.id for e in await hooks.events())
    receiver = hooks.receiver
    receiver.fail |= {retry, doomed}
    receiver.hang.add(slow)
    worker = hooks.worker(timeout=0.3)
    started = hooks.clock()

    assert await _drain(worker) == 3
    records = await hooks.deliveries(endpoint_id)
    for event_id in (retry, doomed):
        assert records[event_id].status == PENDING and records[event_id].attempts == 1
        assert records[event_id].last_status == 500
        assert records[event_id].last_error == "receiver failed"
        due = records[event_id].next_attempt_at - started
        assert timedelta(seconds=5) <= due <= timedelta(seconds=5.5)
    assert records[slow].status == PENDING and records[slow].attempts == 1
    assert records[slow].last_status is None and "Timeout" in (records[slow].last_error or "")
    hooks.clock.advance(timedelta(seconds=4.9))
    assert await worker.run_once() == 0  # not due yet

    receiver.fail.discard(retry)
    receiver.hang.clear()
    hooks.clock.advance(timedelta(seconds=0.7))
    assert await _drain(worker) == 3
    records = await hooks.deliveries(endpoint_id)
    assert records[retry].status == DELIVERED and records[retry].attempts == 2
    assert records[slow].status == DELIVERED and records[slow].attempts == 2
    assert records[doomed].status == PENDING and records[doomed].attempts == 2
    assert receiver.ids().count(retry) == 2

    for attempt, delay in enumerate(RETRY_DELAYS[1:], start=3):
        hooks.clock.advance(delay * 0.99)
        assert await worker.run_once() == 0, f"attempt {attempt} came early"
        hooks.clock.advance(delay * 0.12)
        assert await worker.run_once() == 1, f"attempt {attempt} did not come"
    records = await hooks.deliveries(endpoint_id)
    assert records[doomed].status == DEAD
    assert records[doomed].attempts == len(RETRY_DELAYS) + 1
    assert receiver.ids().count(doomed) == len(RETRY_DELAYS) + 1
    hooks.clock.advance(timedelta(days=3))
    assert await worker.run_once() == 0  # dead stays dead

    slug = hooks.tenant.slug
    shown = await _cli(database_url, "webhook", "deliveries", slug, "--json")
    assert shown.exit_code == 0, shown.output
    statuses = {row["event"]: (row["status"], row["attempts"]) for row in json.loads(shown.output)}
    assert statuses == {
        retry: (DELIVERED, 2), slow: (DELIVERED, 2), doomed: (DEAD, len(RETRY_DELAYS) + 1),
    }  # fmt: skip
    dead = await _cli(database_url, "webhook", "deliveries", slug, "--status", "dead", "--json")
    assert [row["event"] for row in json.loads(dead.output)] == [doomed]

    receiver.fail.clear()
    again = await _cli(database_url, "webhook", "redeliver", slug, endpoint_id, "--dead")
    assert again.exit_code == 0 and again.output.startswith("1 "), again.output
    records = await hooks.deliveries(endpoint_id)
    assert records[doomed].status == PENDING and records[doomed].attempts == 0
    assert await _drain(worker) == 1
    assert receiver.ids()[-1] == doomed
    shown = await _cli(database_url, "webhook", "deliveries", slug, "--json")
    assert {row["status"] for row in json.loads(shown.output)} == {DELIVERED}


async def test_a_resource_waits_for_its_failed_event(hooks: Hooks, scim: Scim) -> None:
    endpoint_id, secret = await hooks.add()
    _, ann, _ = await scim.post("/Users", user("ann@order.example"))
    _, bob, _ = await scim.post("/Users", user("bob@order.example"))
    await scim.request("PATCH", f"/Users/{ann['id']}", _retitle("one"))
    await scim.request("PATCH", f"/Users/{bob['id']}", _retitle("one"))
    await scim.request("PATCH", f"/Users/{ann['id']}", _retitle("two"))
    events = await hooks.events()
    a1, b1, a2, b2, a3 = (e.id for e in events)
    assert [e.resource_id for e in events] == [
        ann["id"],
        bob["id"],
        ann["id"],
        bob["id"],
        ann["id"],
    ]
    hooks.receiver.fail.add(a1)
    worker = hooks.worker()

    await _drain(worker)
    assert hooks.receiver.ids() == [a1, b1, b2] or hooks.receiver.ids() == [b1, a1, b2]
    records = await hooks.deliveries(endpoint_id)
    assert records[a1].status == PENDING and records[a1].attempts == 1
    assert (records[a2].status, records[a2].attempts) == (PENDING, 0)
    assert (records[a3].status, records[a3].attempts) == (PENDING, 0)
    assert records[b1].status == records[b2].status == DELIVERED
    # Even when A's later events are due and the retry is not, they wait.
    hooks.clock.advance(timedelta(seconds=1))
    assert await worker.run_once() == 0

    hooks.receiver.fail.clear()
    hooks.clock.advance(timedelta(seconds=5))
    assert await _drain(worker) == 3
    ann_ids = [i for i in hooks.receiver.ids() if i in {a1, a2, a3}]
    assert ann_ids == [a1, a1, a2, a3]
    assert {d.status for d in (await hooks.deliveries(endpoint_id)).values()} == {DELIVERED}
    assert all(Webhook(secret).verify(h.body, h.headers) for h in hooks.receiver.at())


async def test_any_error_answer_is_one_failed_attempt(hooks: Hooks, scim: Scim) -> None:
    endpoint_id, _ = await hooks.add()
    for name in ("garbled", "huge", "fine"):
        await scim.post("/Users", user(f"{name}@answers.example"))
    garbled, huge, fine = (e.id for e in await hooks.events())
    hooks.receiver.error_bodies = {garbled: b"\xff\xfe oops \xc3", huge: b"x" * 1_000_000}
    assert await _drain(hooks.worker()) == 3
    records = await hooks.deliveries(endpoint_id)
    for event_id in (garbled, huge):
        assert (records[event_id].status, records[event_id].attempts) == (PENDING, 1)
        assert records[event_id].last_status == 500
    assert "oops" in (records[garbled].last_error or "")
    assert 0 < len(records[huge].last_error or "") <= 500
    assert records[fine].status == DELIVERED
    assert sorted(hooks.receiver.ids()) == sorted((garbled, huge, fine))


async def test_an_error_answer_with_a_nul_byte_is_one_failed_attempt(
    hooks: Hooks, scim: Scim
) -> None:
    endpoint_id, _ = await hooks.add()
    await scim.post("/Users", user("nul@answers.example"))
    await scim.post("/Users", user("fine@answers.example"))
    nul, fine = (e.id for e in await hooks.events())
    hooks.receiver.error_bodies[nul] = b"bad\x00request"
    assert await _drain(hooks.worker()) == 2
    records = await hooks.deliveries(endpoint_id)
    assert (records[nul].status, records[nul].attempts, records[nul].last_status) == (
        PENDING, 1, 500,
    )  # fmt: skip
    assert records[fine].status == DELIVERED
    assert hooks.receiver.ids().count(fine) == 1


async def test_the_timeout_is_the_receivers_time(hooks: Hooks, scim: Scim) -> None:
    """More deliveries in a claim than the HTTP client has connections: those that wait for
    a connection are not timed out for it; each receiver answers well within the timeout."""
    slow, _ = await hooks.add("slow")
    await asyncio.gather(*(scim.post("/Users", user(f"s{i}@pool.example")) for i in range(100)))
    other, _ = await hooks.add("other")
    await asyncio.gather(*(scim.post("/Users", user(f"o{i}@pool.example")) for i in range(20)))
    # Waiting for a connection behind the first 100 would make the last ones take about
    # 3 s in all; answering takes 1.5 s, well within the timeout.
    hooks.receiver.delays = {"/slow": 1.5, "/other": 1.4}
    worker = hooks.worker(timeout=2.5)  # the session is aiohttp's default, as the app's is
    # One claim: the slow endpoint's first 100 deliveries, then both endpoints' next 20.
    assert await worker.run_once() == 140
    for endpoint_id, count in ((slow, 120), (other, 20)):
        records = await hooks.deliveries(endpoint_id)
        assert len(records) == count
        failed = [r.last_error for r in records.values() if r.status != DELIVERED]
        assert failed == [], f"{len(failed)} of {count} failed: {failed[0]}"
    assert len(hooks.receiver.hits) == 140


# --- concurrency ------------------------------------------------------------------------------


async def test_two_workers_deliver_each_event_once(hooks: Hooks, scim: Scim) -> None:
    endpoint_id, _ = await hooks.add()
    results = await asyncio.gather(
        *(scim.post("/Users", user(f"u{i}@pair.example")) for i in range(50))
    )
    ids = [body["id"] for status, body, _ in results if status == 201]
    assert len(ids) == 50
    for round_ in range(3):
        await asyncio.gather(
            *(scim.request("PATCH", f"/Users/{i}", _retitle(f"r{round_}")) for i in ids)
        )
    events = await hooks.events()
    assert len(events) == 200
    workers = [hooks.worker(batch=20), hooks.worker(batch=20)]
    sent = [0, 0]
    deadline = time.monotonic() + 20

    async def work(index: int) -> None:
        while len(set(hooks.receiver.ids())) < len(events) and time.monotonic() < deadline:
            n = await workers[index].run_once()
            sent[index] += n
            if n == 0:
                await asyncio.sleep(0.005)

    await asyncio.gather(work(0), work(1))
    assert await workers[0].run_once() == await workers[1].run_once() == 0
    counts = collections.Counter(hooks.receiver.ids())
    assert set(counts) == {e.id for e in events}
    assert max(counts.values()) == 1, [i for i, n in counts.items() if n > 1]
    assert sent[0] > 0 and sent[1] > 0 and sum(sent) == 200
    seq = {e.id: e.seq for e in events}
    for resource in ids:
        arrived = [
            seq[h.event_id] for h in hooks.receiver.at() if h.json["resource"]["id"] == resource
        ]
        assert arrived == sorted(arrived) and len(arrived) == 4
    assert {d.status for d in (await hooks.deliveries(endpoint_id)).values()} == {DELIVERED}


# --- secret rotation --------------------------------------------------------------------------


async def test_rotated_secrets_sign_side_by_side_until_the_overlap_ends(
    hooks: Hooks, scim: Scim, database_url: str
) -> None:
    endpoint_id, old = await hooks.add()
    worker = hooks.worker()
    await scim.post("/Users", user("before@rotate.example"))
    await _drain(worker)
    (before,) = hooks.receiver.at()
    assert len(_signatures(before)) == 1 and Webhook(old).verify(before.body, before.headers)

    slug = hooks.tenant.slug
    rotated = await _cli(
        database_url, "webhook", "rotate-secret", slug, endpoint_id, "--overlap-hours", "0.01"
    )  # 36 seconds
    assert rotated.exit_code == 0, rotated.output
    match = re.search(r"new signing secret: (whsec_\S+)", rotated.output)
    assert match, rotated.output
    new = match.group(1)
    listed = json.loads((await _cli(database_url, "webhook", "list", slug, "--json")).output)
    assert listed[0]["secrets"] == 2

    await scim.post("/Users", user("during@rotate.example"))
    await _drain(worker)
    during = hooks.receiver.at()[-1]
    assert during.json["data"]["userName"] == "during@rotate.example"
    assert len(_signatures(during)) == 2
    assert Webhook(old).verify(during.body, during.headers)
    assert Webhook(new).verify(during.body, during.headers)
    only_old = {**during.headers, "webhook-signature": _signatures(during)[1]}
    assert Webhook(old).verify(during.body, only_old)

    hooks.clock.advance(timedelta(seconds=120))
    await scim.post("/Users", user("after@rotate.example"))
    await _drain(worker)
    after = hooks.receiver.at()[-1]
    assert after.json["data"]["userName"] == "after@rotate.example"
    assert len(_signatures(after)) == 1
    assert Webhook(new).verify(after.body, after.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(after.body, after.headers)


# --- a gateway process killed mid-delivery ----------------------------------------------------


async def test_sigkill_mid_delivery_loses_nothing_and_keeps_order(
    hooks: Hooks, scim: Scim, database_url: str, tmp_path: Path
) -> None:
    receiver = hooks.receiver
    receiver.delay = 0.05
    endpoint_id, secret = await hooks.add()
    (cursor,) = [e.cursor for e in await hooks.store.endpoints(hooks.tenant.tenant.id)]
    processes: list[subprocess.Popen[bytes]] = []
    log = (tmp_path / "idgate.log").open("wb")
    try:
        first, port = serve(database_url, log, {"IDGATE_WEBHOOK_DELIVERY": "true"})
        processes.append(first)
        await healthy(hooks.http, first, port)

        users: list[str] = []

        async def write() -> None:
            results = await asyncio.gather(
                *(scim.post("/Users", user(f"k{i}@kill.example")) for i in range(10))
            )
            users.extend(body["id"] for _, body, _ in results)
            for round_ in range(9):
                await asyncio.gather(
                    *(scim.request("PATCH", f"/Users/{u}", _retitle(f"r{round_}")) for u in users)
                )

        async def mid_delivery() -> bool:
            return len(receiver.hits) >= 20 and receiver.in_flight > 0

        async def kill() -> None:
            await until("deliveries are in flight", mid_delivery, 15, 0.005)
            first.send_signal(signal.SIGKILL)  # nothing ran between the check and the kill

        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(write())
            tasks.create_task(kill())
        first.wait()
        arrived_before = set(receiver.ids())
        events = await hooks.events(after=cursor)
        assert len(events) == 100
        assert len(arrived_before) < len(events), "delivery was over before the kill"
        await receiver.stop()

        second, port = serve(database_url, log, {"IDGATE_WEBHOOK_DELIVERY": "true"})
        processes.append(second)
        await healthy(hooks.http, second, port)

        async def refused() -> bool:
            records = await hooks.deliveries(endpoint_id)
            return any(r.attempts > 0 and r.last_error for r in records.values())

        await until("the new gateway finds the receiver down", refused, 10)
        await receiver.start()

        async def everything_arrived() -> bool:
            return {e.id for e in events} <= set(receiver.ids())

        await until("every event arrived", everything_arrived, 20, 0.1)

        async def recorded() -> bool:
            records = await hooks.deliveries(endpoint_id)
            return {r.status for r in records.values()} == {DELIVERED}

        await until("every delivery is recorded", recorded, 5)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.wait()
        log.close()

    seq = {e.id: e.seq for e in events}
    assert set(receiver.ids()) == set(seq)
    for hit in receiver.at():
        assert Webhook(secret).verify(hit.body, hit.headers)["id"] == hit.event_id
    first_arrivals: dict[str, list[int]] = collections.defaultdict(list)
    seen: set[str] = set()
    for hit in receiver.at():
        if hit.event_id not in seen:
            seen.add(hit.event_id)
            first_arrivals[hit.json["resource"]["id"]].append(seq[hit.event_id])
    assert set(first_arrivals) == set(users)
    for resource, order in first_arrivals.items():
        assert order == sorted(order) and len(order) == 10, resource
    # What was in flight at the kill was never recorded as delivered: it came again.
    counts = collections.Counter(receiver.ids())
    assert any(counts[i] > 1 for i in arrived_before)
