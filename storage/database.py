"""Engine creation and the embedded PostgreSQL server used when no database URL is set."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import orjson
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

log = logging.getLogger(__name__)


def async_url(url: str) -> str:
    """`postgresql://...` or `postgres://...` -> the asyncpg dialect URL SQLAlchemy wants."""
    parts = urlsplit(url)
    if parts.scheme in ("postgresql", "postgres"):
        return urlunsplit(parts._replace(scheme="postgresql+asyncpg"))
    if parts.scheme == "postgresql+asyncpg":
        return url
    raise ValueError(f"only PostgreSQL URLs are supported, got scheme {parts.scheme!r}")


UNIQUE_VIOLATION = "23505"  # PostgreSQL's SQLSTATE for a duplicate key


def is_unique_violation(exc: IntegrityError) -> bool:
    """Whether a failed statement broke a unique index or constraint."""
    return getattr(exc.orig, "sqlstate", None) == UNIQUE_VIOLATION or UNIQUE_VIOLATION in str(
        exc.orig
    )


def autocommit(engine: AsyncEngine) -> AsyncEngine:
    """The engine for reads and single-statement writes: a single statement is atomic on its
    own, so these skip the BEGIN / COMMIT round trips of an explicit transaction."""
    return engine.execution_options(isolation_level="AUTOCOMMIT")


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    return create_async_engine(
        async_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=False,
        json_serializer=lambda obj: orjson.dumps(obj).decode(),
        json_deserializer=orjson.loads,
        # Statements are few and parameterised: let asyncpg keep them prepared.
        connect_args={"statement_cache_size": 256},
    )


def start_embedded(data_dir: Path) -> str:
    """Start (or join) the embedded PostgreSQL 16 in `data_dir`; return its URL.

    The server is stopped when the last process that started it exits.
    """
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); pgserver then
        # falls back to a folder under /tmp, which is fine.
        warnings.simplefilter("ignore")
        # Imported lazily: only the zero-configuration default needs it.
        from pgserver import get_server  # type: ignore[attr-defined]

    data_dir.mkdir(parents=True, exist_ok=True)
    logging.getLogger("pgserver").setLevel(logging.WARNING)  # it logs every command at INFO
    server = get_server(str(data_dir), cleanup_mode="stop")
    log.info("embedded PostgreSQL running in %s", data_dir)
    return str(server.get_uri())
