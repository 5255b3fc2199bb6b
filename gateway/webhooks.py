"""Webhook delivery: every gateway process runs a worker that POSTs the tenants' events to
their endpoints, signed the Standard Webhooks way, retried with backoff for more than a day.

Signing (https://www.standardwebhooks.com): headers `webhook-id` (the event id: the same on
every retry, for the receiver's idempotency), `webhook-timestamp` (Unix seconds) and
`webhook-signature`: `v1,<base64 HMAC-SHA256 of "id.timestamp.body">` for each of the
endpoint's secrets in use (space-separated, so a receiver that has only the old or only the
new secret during a rotation still verifies). Secrets are `whsec_<base64>`.

A delivery answered 2xx is done. Any other answer, or none within the timeout, is tried
again after `RETRY_DELAYS` (with up to 10% jitter) from its first attempt; after the last,
the delivery is dead (`idgate webhook redeliver` sends it again). The queue and its
guarantees (one worker per delivery, order per resource, nothing lost when a worker dies)
are `storage.webhook_store`'s.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import logging
import random
import secrets
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import orjson

from storage.event_store import Event
from storage.webhook_store import DEAD, DELIVERED, PENDING, Delivery, Outcome, WebhookStore

log = logging.getLogger(__name__)

SECRET_PREFIX = "whsec_"
EVENTS_CHANNEL = "idgate_events"  # notified by migration 0014's triggers at each commit
# After the first attempt: the Standard Webhooks schedule, about 27.6 hours in all.
RETRY_DELAYS = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
)
_ERROR_CHARS = 500
_CONCURRENT_SENDS = 100  # aiohttp's default connection limit


async def _start_of(response: aiohttp.ClientResponse) -> str:
    """The start of an error answer, whatever its encoding."""
    return (await response.content.read(_ERROR_CHARS)).decode("utf-8", "replace")


def new_endpoint_id() -> str:
    return "whk_" + secrets.token_hex(8)


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """One `v1,<signature>` of the Standard Webhooks scheme."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    content = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signing_secrets(stored: Sequence[dict[str, Any]], now: datetime) -> list[str]:
    """The endpoint's secrets that sign at `now`: the newest, and older ones until they
    expire."""
    return [
        s["secret"]
        for s in stored
        if s.get("expires_at") is None or datetime.fromisoformat(s["expires_at"]) > now
    ]


def event_json(event: Event, tenant: str) -> dict[str, Any]:
    """An event as the product receives it, by webhook or from `/api/v1/events`."""
    return {
        "id": event.id,
        "type": event.type,
        "sequence": event.seq,
        "tenant": tenant,
        "occurred_at": event.occurred_at.isoformat(),
        "resource": {"type": event.resource_type, "id": event.resource_id},
        "data": event.data,
    }


def headers(delivery: Delivery, body: bytes, now: datetime) -> dict[str, str]:
    timestamp = int(now.timestamp())
    signatures = " ".join(
        sign(secret, delivery.event.id, timestamp, body)
        for secret in signing_secrets(delivery.secrets, now)
    )
    return {
        "content-type": "application/json",
        "user-agent": "idgate-webhooks",
        "webhook-id": delivery.event.id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signatures,
    }


def outcome(
    delivery: Delivery,
    now: datetime,
    status: int | None,
    error: str | None,
    jitter: Callable[[], float] = random.random,
) -> Outcome:
    """What one attempt leaves: delivered, to be retried, or dead."""
    attempts = delivery.attempts + 1
    first = delivery.first_attempt_at or now
    if status is not None and 200 <= status < 300:
        return Outcome(
            delivery.endpoint_id, delivery.event.seq, DELIVERED, attempts, now, first,
            status, None, now,
        )  # fmt: skip
    if attempts > len(RETRY_DELAYS):
        state, next_at = DEAD, now
    else:
        delay = RETRY_DELAYS[attempts - 1]
        state, next_at = PENDING, now + delay * (1 + 0.1 * jitter())
    # Stored as text: at most _ERROR_CHARS, and without NUL, which PostgreSQL text refuses.
    kept = (error or "").replace("\x00", "\ufffd")[:_ERROR_CHARS] or None
    return Outcome(
        delivery.endpoint_id, delivery.event.seq, state, attempts, next_at, first,
        status, kept, None,
    )  # fmt: skip


class WebhookWorker:
    def __init__(
        self,
        store: WebhookStore,
        http: aiohttp.ClientSession,
        clock: Callable[[], datetime],
        *,
        batch: int = 200,
        timeout: float = 10.0,
        poll_seconds: float = 1.0,
    ) -> None:
        self.store = store
        self.http = http
        self.clock = clock
        self.batch = batch
        self.timeout = timeout
        self.poll_seconds = poll_seconds
        # The receiver's time starts when its request can go: no more at once than the HTTP
        # client has connections, so none times out waiting for one.
        self.sending = asyncio.Semaphore(_CONCURRENT_SENDS)
        self.wake = asyncio.Event()

    async def run_once(self) -> int:
        """Queue new events, then send one claim's deliveries; how many were sent."""
        await self.store.fan_out(self.clock())
        async with self.store.claiming(self.clock(), self.batch) as claim:
            if not claim.deliveries:
                return 0
            outcomes = await asyncio.gather(*(self._send(d) for d in claim.deliveries))
            await claim.record(outcomes)
            return len(outcomes)

    async def _send(self, delivery: Delivery) -> Outcome:
        """One attempt; whatever happens is its outcome (an exception must not undo the
        outcomes of the rest of the claim)."""
        body = orjson.dumps(event_json(delivery.event, delivery.tenant_slug))
        async with self.sending:
            now = self.clock()
            try:
                async with (
                    asyncio.timeout(self.timeout),
                    self.http.post(
                        delivery.url,
                        data=body,
                        headers=headers(delivery, body, now),
                        allow_redirects=False,
                    ) as response,
                ):
                    status = response.status
                    text = "" if 200 <= status < 300 else await _start_of(response)
                return outcome(delivery, self.clock(), status, text or None)
            except Exception as exc:  # no answer, a broken one, or a timeout
                return outcome(delivery, self.clock(), None, f"{type(exc).__name__}: {exc}")

    async def run(self) -> None:
        """Deliver until cancelled; sleep when there is nothing to send until woken (new
        events: `wake`) or the poll interval passes (retries falling due)."""
        while True:
            try:
                sent = await self.run_once()
            except Exception:  # a database hiccup must not end delivery for good
                log.exception("webhook delivery round failed")
                sent = 0
            if sent:
                continue
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self.poll_seconds)


@contextlib.asynccontextmanager
async def delivering(worker: WebhookWorker) -> Any:
    task = asyncio.create_task(worker.run(), name="webhooks")
    try:
        yield worker
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
