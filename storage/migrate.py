"""Run the Alembic migrations shipped in storage/migrations."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from storage.database import async_url

MIGRATIONS = Path(__file__).parent / "migrations"


def _config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url)
    return config


async def upgrade(url: str) -> None:
    """Bring the database at `url` to the newest revision."""
    engine = create_async_engine(async_url(url))
    try:
        async with engine.begin() as conn:
            # Serialise concurrent start-ups of several replicas on one database.
            await conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7152010)")

            def run(sync_conn):  # type: ignore[no-untyped-def]
                config = _config(url)
                config.attributes["connection"] = sync_conn
                command.upgrade(config, "head")

            await conn.run_sync(run)
    finally:
        await engine.dispose()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_config("")).get_current_head()


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())


__all__ = ["current_revision", "head_revision", "upgrade"]
