"""What every `idgate` command shares: settings (starting the embedded database when no URL
is set), a store for the command's work, and the tenant a command names."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import click

from gateway.settings import Settings
from scim.errors import ScimError
from sso.mapping import MappingError
from storage import migrate as migrations
from storage.database import create_engine, start_embedded
from storage.scim_store import ScimStore, Tenant

T = TypeVar("T")


def _run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


class Context:
    def __init__(self, config: Path | None) -> None:
        self.config = config
        self._settings: Settings | None = None
        self.embedded = False

    @property
    def settings(self) -> Settings:
        """Settings with a database URL, starting and migrating the embedded one if unset."""
        if self._settings is None:
            try:
                settings = Settings.load(self.config)
            except Exception as exc:
                raise click.ClickException(f"invalid configuration: {exc}") from None
            logging.basicConfig(
                level=settings.log_level.upper(),
                format="%(asctime)s %(levelname)s %(name)s %(message)s",
            )
            logging.getLogger("alembic").setLevel(logging.WARNING)
            if settings.database_url is None:
                url = start_embedded(settings.data_dir.resolve())
                _run(migrations.upgrade(url))
                settings = settings.model_copy(update={"database_url": url})
                self.embedded = True
            self._settings = settings
        return self._settings


async def _with_store(settings: Settings, work: Any) -> Any:
    assert settings.database_url is not None
    engine = create_engine(settings.database_url, pool_size=2)
    try:
        return await work(ScimStore(engine))
    finally:
        await engine.dispose()


def _tenant(store: ScimStore, slug: str) -> Any:
    async def get() -> Tenant:
        tenant = await store.get_tenant(slug)
        if tenant is None:
            raise click.ClickException(f"no tenant {slug!r}; create it with `idgate tenant create`")
        return tenant

    return get()


def echo_json(value: Any) -> None:
    """Print a command's answer as indented JSON (times and ids as strings)."""
    click.echo(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def on_tenant(obj: Context, slug: str, work: Callable[[Tenant, ScimStore], Awaitable[T]]) -> T:
    """Run `work` on tenant SLUG; a change the stores or the rules refuse becomes the
    command's error."""

    async def run(store: ScimStore) -> T:
        tenant = await _tenant(store, slug)
        try:
            return await work(tenant, store)
        except ScimError as exc:
            raise click.ClickException(exc.detail) from None
        except MappingError as exc:
            raise click.ClickException(f"mapping refused: {exc}") from None

    result: T = _run(_with_store(obj.settings, run))
    return result
