"""`/api/v1` as a whole: the OpenAPI document validates and describes every route; each
level is allowed or refused on each route as documented; schemathesis, driving a real
`idgate serve` from the document, finds no server error and no answer the document does
not describe."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
import schemathesis
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from openapi_spec_validator import validate
from schemathesis.checks import positive_data_acceptance
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.admin import operations
from gateway.admin.api import Need, Operation
from gateway.admin.openapi import document
from tests.admin_support import call, key_headers, person, pushed_user
from tests.conftest import Scim, TenantAccess
from tests.processes import BIN, serve, stop

Client = TestClient[Any, Any]


async def test_the_openapi_document_validates_and_lists_every_route(client: Client) -> None:
    resp = await client.get("/api/v1/openapi.json")
    assert resp.status == 200
    doc = await resp.json()
    validate(doc)
    documented = {(m.upper(), path) for path, ops in doc["paths"].items() for m in ops}
    assert documented == {(op.method, op.path) for op in operations()}
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert op["summary"] and "Needs:" in op["description"], (method, path)
            assert "401" in op["responses"] and "403" in op["responses"], (method, path)


def _path(op: Operation, org: str, user: str) -> str:
    values = {"org": org, "user": user}
    return re.sub(r"{(\w+)}", lambda m: values.get(m.group(1), "x"), op.path)


# A request each route refuses after authorisation (invalid input), or that is harmless.
_INVALID_QUERY = {"DELETE": {"mode": "neither"}}


@dataclass(frozen=True)
class Who:
    name: str
    level: int  # 0 none, 1 read, 2 admin, 3 owner


_ALLOWED = {Need.READ: 1, Need.ADMIN: 2, Need.OWNER: 3}


async def test_each_level_is_allowed_or_refused_on_each_route(
    client: Client, engine: AsyncEngine, tenant: TenantAccess, scim: Scim
) -> None:
    callers: dict[str, tuple[int, dict[str, str]]] = {}
    for role, level in (("owner", 3), ("admin", 2), ("member", 0), ("readonly", 0)):
        _, headers = await person(engine, scim, tenant, f"{role}-m@corp.example", role)
        callers[f"session:{role}"] = (level, headers)
    for scope, level in (("owner", 3), ("admin", 2), ("admin:read", 1), ("events:read", 0)):
        callers[f"key:{scope}"] = (level, await key_headers(engine, tenant, scope))
    target = str(await pushed_user(scim, "target@corp.example"))
    checked = 0
    for op in operations():
        if op.need is Need.SIGNED_IN:
            continue
        for name, (level, headers) in callers.items():
            body = {} if op.body is not None else None
            params = _INVALID_QUERY.get(op.method, {})
            status, answer = await call(
                client, op.method, _path(op, tenant.slug, target), headers, body, params=params
            )
            allowed = level >= _ALLOWED[op.need]
            if allowed:
                assert status not in (401, 403), (op.method, op.path, name, answer)
            else:
                assert status == 403, (op.method, op.path, name, status, answer)
                assert answer["code"] == "forbidden"
            checked += 1
    assert checked >= 8 * 10


# --- schemathesis against a real process ---------------------------------------------------


@dataclass(frozen=True)
class Live:
    base_url: str
    slug: str
    headers: dict[str, str]
    user_id: str


def _cli(database_url: str, *args: str) -> str:
    env = {**os.environ, "IDGATE_DATABASE_URL": database_url}
    done = subprocess.run(
        [str(BIN / "idgate"), *args], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout


@pytest.fixture(scope="module")
def live(database_url: str) -> Iterator[Live]:
    slug = "st-" + os.urandom(3).hex()
    _cli(database_url, "tenant", "create", slug)
    key = json.loads(_cli(database_url, "api-key", "create", slug, "--scope", "owner", "--json"))
    token = json.loads(_cli(database_url, "token", "create", slug, "--json"))
    with tempfile.TemporaryFile() as log:
        process, port = serve(database_url, log)
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(200):
                try:
                    if requests.get(base + "/healthz", timeout=1).status_code == 200:
                        break
                except requests.ConnectionError:
                    pass
                time.sleep(0.1)
            made = requests.post(
                f"{base}/scim/v2/{slug}/Users",
                json={"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                      "userName": "fuzz@corp.example"},
                headers={"Authorization": f"Bearer {token['token']}"},
                timeout=5,
            )  # fmt: skip
            assert made.status_code == 201, made.text
            yield Live(base, slug, {"Authorization": f"Bearer {key['key']}"}, made.json()["id"])
        finally:
            stop(process)


schema = schemathesis.openapi.from_dict(document(operations(), "http://127.0.0.1/api/v1"))


@schema.parametrize()
@hypothesis_settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_schemathesis_finds_no_server_error(case: Any, live: Live) -> None:
    params = dict(case.path_parameters or {})
    if "org" in params:
        params["org"] = live.slug
    if "user" in params and not re.fullmatch(r"[0-9a-f-]{36}", str(params["user"])):
        params["user"] = live.user_id
    case.path_parameters = params
    # Every check but "schema-valid input is accepted": a cursor, a role or a user id can
    # match the schema and still name nothing, which is a 400 or 404 by design.
    case.call_and_validate(
        base_url=live.base_url + "/api/v1",
        headers=live.headers,
        excluded_checks=[positive_data_acceptance],
    )


_ASCII_ONLY = "^[A-Za-z0-9_=-]*$"


def _worst_bytes(name: str, schema: dict[str, Any]) -> int:
    """The most bytes a value the document allows takes in a URL (percent-encoded)."""
    options = schema.get("anyOf", [schema])
    worst = 0
    for option in options:
        kind = option.get("type")
        if kind == "string" and "format" in option:
            size = 64
        elif kind == "string" and "enum" in option:
            size = 3 * max(len(v) for v in option["enum"])
        elif kind == "string":
            assert "maxLength" in option, f"query parameter {name} has no maxLength"
            per_char = 1 if option.get("pattern") == _ASCII_ONLY else 12  # 4 UTF-8 bytes
            size = per_char * option["maxLength"]
        else:
            size = 24  # numbers, booleans, null
        worst = max(worst, size)
    return len(name) + 2 + worst


def test_every_query_the_document_allows_fits_in_a_request_line() -> None:
    """aiohttp refuses a request line over 8,190 bytes before the API sees it (in plain
    text, not a problem): no query the document allows may come near that."""
    doc = document(operations(), "http://127.0.0.1/api/v1")
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            query = [p for p in op["parameters"] if p["in"] == "query"]
            worst = len(path) + 200 + sum(_worst_bytes(p["name"], p["schema"]) for p in query)
            assert worst < 8000, (method, path, worst)
