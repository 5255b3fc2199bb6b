"""The HTTP API under `/api/v1`: organisation administration and the events feed, described
by the OpenAPI document at `/api/v1/openapi.json`."""

from __future__ import annotations

from aiohttp import web

from gateway.admin import catalogue, events, invitations, me, organisation, partners, users
from gateway.admin.api import Api, Operation, problems
from gateway.admin.local import api as local_api
from gateway.admin.openapi import document
from gateway.admin.operations import api as operations_api
from gateway.keys import SETTINGS

APIS: tuple[Api, ...] = (
    me.api,
    users.api,
    invitations.api,
    catalogue.api,
    organisation.api,
    partners.api,
    operations_api,
    events.api,
    local_api,
)


def operations() -> list[Operation]:
    return [op for api in APIS for op in api.operations]


async def openapi_json(request: web.Request) -> web.Response:
    settings = request.config_dict[SETTINGS]
    server = (settings.public_url or f"{request.scheme}://{request.host}").rstrip("/")
    return web.json_response(document(operations(), server + "/api/v1"))


def create_api_app(client_max_size: int) -> web.Application:
    app = web.Application(middlewares=[problems], client_max_size=client_max_size)
    app.router.add_get("/openapi.json", openapi_json)
    for api in APIS:
        api.install(app)
    return app
