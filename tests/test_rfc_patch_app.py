"""The RFC 7644 §3.5.2 PATCH examples (tests/vectors/rfc7644/patch/*.json) through the app.

tests/test_patch.py applies each vector to its `before` resource in memory. Here the same
vector goes through HTTP and Postgres: `before` is created with POST (its member users first,
since the server assigns its own ids), the request is sent with the RFC's ids swapped for the
server's, and the resource read back with GET must equal the vector's result. Left out of the
comparison: what the server assigns or derives (`id`, `meta`, `groups`), what is never
returned (`password`), and of each member everything but its `value` (`$ref` and `type` are
written by the server, `display` is returned only on request). What the server fills in on
create when `before` leaves it out (`active: true`) is expected to be there still.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Scim

PATCH_VECTORS = Path(__file__).parent / "vectors" / "rfc7644" / "patch"
ENDPOINTS = {"User": "/Users", "Group": "/Groups"}
SERVER_SIDE = ("id", "meta", "groups", "password")


def _vectors() -> list[Any]:
    files = sorted(PATCH_VECTORS.glob("*.json"))
    return [pytest.param(json.loads(f.read_text(encoding="utf-8")), id=f.stem) for f in files]


def test_every_rfc_patch_vector_is_replayed() -> None:
    assert len(_vectors()) == 13


@pytest.mark.parametrize("vector", _vectors())
async def test_rfc_patch_vector_through_the_app(scim: Scim, vector: dict[str, Any]) -> None:
    endpoint = ENDPOINTS[vector["resource_type"]]
    expected = vector["after_resource"] if vector.get("split_members") else vector["after"]
    ids = await _member_users(scim, vector, expected)

    before = _swap(_without(vector["before"], "id", "meta"), ids)
    status, created, _ = await scim.post(endpoint, before)
    assert status == 201, created

    status, body, _ = await scim.request(
        "PATCH", f"{endpoint}/{created['id']}", _swap(vector["request"], ids)
    )
    assert status == (200 if endpoint == "/Users" else 204), body

    status, stored, _ = await scim.get(f"{endpoint}/{created['id']}")
    assert status == 200, stored
    defaults = {key: value for key, value in created.items() if key not in before}
    assert set(defaults) <= {"id", "meta", "active"}, defaults
    assert _meaningful(stored) == _meaningful({**defaults, **_swap(expected, ids)})


async def _member_users(scim: Scim, vector: dict[str, Any], expected: Any) -> dict[str, str]:
    """A User for every member id the vector names, and the RFC id -> server id map."""
    members = [*vector["before"].get("members", []), *expected.get("members", [])]
    for operation in vector["request"]["Operations"]:
        value = operation.get("value")
        if str(operation.get("path", "")).lower() == "members" and isinstance(value, list):
            members.extend(value)
    ids: dict[str, str] = {}
    for member in members:
        rfc_id = member["value"]
        if rfc_id in ids:
            continue
        body = {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": f"member-{rfc_id}@example.com",
            "displayName": member.get("display", rfc_id),
        }
        status, created, _ = await scim.post("/Users", body)
        assert status == 201, created
        ids[rfc_id] = created["id"]
    return ids


def _swap(value: Any, ids: dict[str, str]) -> Any:
    """`value` with each RFC member id, wherever it occurs in a string, replaced by the server's."""
    text = json.dumps(value)
    for rfc_id, server_id in ids.items():
        text = text.replace(rfc_id, server_id)
    return json.loads(text)


def _without(resource: dict[str, Any], *names: str) -> dict[str, Any]:
    return {key: value for key, value in copy.deepcopy(resource).items() if key not in names}


def _meaningful(resource: dict[str, Any]) -> dict[str, Any]:
    out = _without(resource, *SERVER_SIDE)
    if "members" in out:
        out["members"] = sorted(member["value"] for member in out["members"])
    return out
