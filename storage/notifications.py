"""Listening to the database's notifications (`LISTEN`), on a connection of their own.

`listening(url, handlers, on_down, on_up)` keeps one asyncpg connection listening on every
channel of `handlers` (channel -> what to call with each payload) for as long as the context
is open, reconnecting when it breaks.
`on_down` is called whenever notifications may be missed from then on (before the first
LISTEN, and when the connection broke): whoever keeps state derived from them must drop it
and keep none until `on_up` says a LISTEN is in place again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from urllib.parse import urlsplit, urlunsplit

import asyncpg

log = logging.getLogger(__name__)
_RETRY_SECONDS = (0.1, 0.5, 1.0, 2.0, 5.0)
_PROBE_SECONDS = 10.0


def _driver_url(url: str) -> str:
    """The URL asyncpg takes (`postgresql+asyncpg://` -> `postgresql://`)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme="postgresql"))


class Listener:
    def __init__(
        self,
        url: str,
        handlers: Mapping[str, Callable[[str], None]],
        on_down: Callable[[], None],
        on_up: Callable[[], None],
    ) -> None:
        self.url = _driver_url(url)
        self.handlers = dict(handlers)
        self.channels = ", ".join(sorted(self.handlers))
        self.on_down = on_down
        self.on_up = on_up

    async def run(self) -> None:
        """Listen until cancelled."""
        attempt = 0
        while True:
            self.on_down()
            try:
                conn = await asyncpg.connect(self.url)
            except Exception as exc:  # the database is down, or refuses: try again
                delay = _RETRY_SECONDS[min(attempt, len(_RETRY_SECONDS) - 1)]
                log.warning("cannot listen for %s (%s); again in %.1f s", self.channels, exc, delay)
                attempt += 1
                await asyncio.sleep(delay)
                continue
            lost = asyncio.Event()
            try:
                conn.add_termination_listener(lambda _conn, lost=lost: lost.set())
                for channel in self.handlers:
                    await conn.add_listener(channel, self._received)
                self.on_up()
                attempt = 0
                # A connection can die without a word (a dropped network path): ask.
                while not lost.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lost.wait(), _PROBE_SECONDS)
                        break
                    await conn.fetchval("SELECT 1", timeout=_PROBE_SECONDS)
                log.warning("lost the connection listening for %s; reconnecting", self.channels)
            except Exception as exc:  # any failure: listen again on a new connection
                log.warning("listening for %s failed: %s", self.channels, exc)
            finally:
                self.on_down()
                with contextlib.suppress(Exception):
                    await conn.close(timeout=1)

    def _received(self, _conn: object, _pid: int, channel: str, payload: str) -> None:
        self.handlers[channel](payload)


@contextlib.asynccontextmanager
async def listening(
    url: str,
    handlers: Mapping[str, Callable[[str], None]],
    on_down: Callable[[], None],
    on_up: Callable[[], None],
) -> AsyncIterator[Listener]:
    listener = Listener(url, handlers, on_down, on_up)
    task = asyncio.create_task(listener.run(), name=f"listen:{listener.channels}")
    try:
        yield listener
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        on_down()
