"""What real IdPs send, replayed through the app on Postgres: tests/vectors/idp/<vendor>/*.json.

Each vector is one documented client variant; its `description` says what the client sends,
which rule it bends and where the vendor documents it. The test creates the vector's `setup`
resources, sends its request, checks the status (and `expect_response`, where given), runs
any `then` requests, and reads the stored resource back with GET to compare `expect_stored`.

Vector fields:

- `resource_type`: "User" or "Group", the endpoint the request goes to.
- `setup`: optional `users` and `groups` (request bodies) created first, in that order. Their
  ids replace the placeholders `{user:N}` and `{group:N}` anywhere in the vector's strings.
- `target`: the id the request addresses (`/Users/{user:0}`); absent for POST and lists.
- `method`, `query` (optional parameters), `request` (optional body), `expect_status`.
- `expect_response`: optional subset of the response body.
- `expect_stored`, `expect_absent`: a subset of, and attribute names missing from, the resource
  read back with GET: the target, or the one a POST created (placeholder `{created}`).
- `then`: optional further requests, each with `method`, `path`, optional `request`,
  `expect_status` and `expect_response`, `expect_absent` on its response.

"Subset" means: objects hold at least the given members with matching values; arrays have the
same length and match element by element, `members` compared in order of `value`.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import pytest

from scim import quirks
from tests.conftest import Scim

IDP = Path(__file__).parent / "vectors" / "idp"
ENDPOINTS = {"User": "/Users", "Group": "/Groups"}
FIELDS = {
    "description",
    "resource_type",
    "setup",
    "target",
    "method",
    "query",
    "request",
    "expect_status",
    "expect_response",
    "expect_stored",
    "expect_absent",
    "then",
}
VENDORS = {"entra", "okta", "onelogin", "jumpcloud", "google"}


def _files() -> list[Path]:
    return sorted(IDP.glob("*/*.json"))


def _vectors() -> list[Any]:
    return [
        pytest.param(json.loads(f.read_text(encoding="utf-8")), id=f"{f.parent.name}/{f.stem}")
        for f in _files()
    ]


def test_every_vendor_has_vectors_of_the_documented_shape() -> None:
    files = _files()
    assert {f.parent.name for f in files} == VENDORS
    for f in files:
        vector = json.loads(f.read_text(encoding="utf-8"))
        assert set(vector) <= FIELDS, (f.name, set(vector) - FIELDS)
        assert len(vector["description"]) > 80, f.name
        assert vector["resource_type"] in ENDPOINTS, f.name
        assert isinstance(vector["expect_status"], int), f.name


def test_the_compatibility_page_lists_every_vector_and_normaliser() -> None:
    page = (Path(__file__).parent.parent / "docs" / "idp-compatibility.md").read_text(
        encoding="utf-8"
    )
    missing = [
        f"{f.parent.name}/{f.name}" for f in _files() if f"{f.parent.name}/{f.name}" not in page
    ]
    assert missing == []
    assert [name for name in _normalisers() if f"`{name}`" not in page] == []


def test_every_normaliser_has_a_vector_that_names_it() -> None:
    descriptions = " ".join(
        json.loads(f.read_text(encoding="utf-8"))["description"] for f in _files()
    )
    assert [name for name in _normalisers() if name not in descriptions] == []


def _normalisers() -> list[str]:
    """The public functions of scim.quirks other than the entry points that chain them."""
    names = [
        name
        for name, function in inspect.getmembers(quirks, inspect.isfunction)
        if function.__module__ == quirks.__name__ and not name.startswith("_")
    ]
    assert len(names) > 10
    return [name for name in names if not name.startswith("normalise_")]


@pytest.mark.parametrize("vector", _vectors())
async def test_idp_vector(scim: Scim, vector: dict[str, Any]) -> None:
    ids = await _setup(scim, vector.get("setup", {}))
    endpoint = ENDPOINTS[vector["resource_type"]]
    path = endpoint
    if "target" in vector:
        path = f"{endpoint}/{_fill(vector['target'], ids)}"
    status, body, _ = await scim.request(
        vector["method"],
        path,
        _fill(vector.get("request"), ids),
        params=_fill(vector.get("query"), ids),
    )
    assert status == vector["expect_status"], body
    if vector["method"] == "POST" and status == 201:
        ids["created"] = body["id"]
    if "expect_response" in vector:
        _assert_subset(body, _fill(vector["expect_response"], ids), "response")

    for step in vector.get("then", []):
        status, body, _ = await scim.request(
            step["method"], _fill(step["path"], ids), _fill(step.get("request"), ids)
        )
        assert status == step["expect_status"], (step, body)
        if "expect_response" in step:
            _assert_subset(body, _fill(step["expect_response"], ids), step["path"])
        for name in step.get("expect_absent", []):
            assert name not in body, (step["path"], name, body)

    if "expect_stored" in vector or "expect_absent" in vector:
        resource_id = ids["created"] if "created" in ids else _fill(vector["target"], ids)
        status, stored, _ = await scim.get(f"{endpoint}/{resource_id}")
        assert status == 200, stored
        _assert_subset(stored, _fill(vector.get("expect_stored", {}), ids), "stored")
        for name in vector.get("expect_absent", []):
            assert name not in stored, (name, stored)


async def _setup(scim: Scim, setup: dict[str, Any]) -> dict[str, str]:
    ids: dict[str, str] = {}
    for kind, endpoint in (("user", "/Users"), ("group", "/Groups")):
        for index, body in enumerate(setup.get(f"{kind}s", [])):
            status, created, _ = await scim.post(endpoint, _fill(body, ids))
            assert status == 201, created
            ids[f"{kind}:{index}"] = created["id"]
    return ids


def _fill(value: Any, ids: dict[str, str]) -> Any:
    """`value` with every `{user:N}`, `{group:N}` and `{created}` replaced by its id."""
    if isinstance(value, str):
        for name, resource_id in ids.items():
            value = value.replace(f"{{{name}}}", resource_id)
        return value
    if isinstance(value, list):
        return [_fill(item, ids) for item in value]
    if isinstance(value, dict):
        return {_fill(key, ids): _fill(item, ids) for key, item in value.items()}
    return value


def _assert_subset(actual: Any, expected: Any, where: str) -> None:
    if isinstance(expected, dict):
        assert isinstance(actual, dict), (where, actual)
        for key, value in expected.items():
            assert key in actual, (where, key, actual)
            if key == "members":
                value = sorted(value, key=lambda m: m["value"])
                actual_value = sorted(actual[key], key=lambda m: m["value"])
                _assert_subset(actual_value, value, f"{where}.{key}")
            else:
                _assert_subset(actual[key], value, f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), (where, actual)
        for index, (got, want) in enumerate(zip(actual, expected, strict=True)):
            _assert_subset(got, want, f"{where}[{index}]")
    else:
        assert actual == expected, (where, actual, expected)
