"""Every `web.AppKey` of the application, declared in one place."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.provisioning import Provisioning
from gateway.settings import Settings
from gateway.token_cache import TokenCache
from storage.scim_store import Principal, ScimStore

SETTINGS = web.AppKey("settings", Settings)
TOKEN_CACHE = web.AppKey("token_cache", TokenCache)
ENGINE = web.AppKey("engine", AsyncEngine)
STORE = web.AppKey("store", ScimStore)
CLOCK = web.AppKey[Callable[[], datetime]]("clock")
PROVISIONING = web.AppKey("provisioning", Provisioning)

PRINCIPAL = web.RequestKey("principal", Principal)  # set by SCIM authentication
