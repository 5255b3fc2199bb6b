"""The fast default projection of stored resources equals the general one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from scim.resources import parse_resource, project, project_stored
from scim.schema import GROUP, USER, ResourceType

VECTORS = Path(__file__).parent / "vectors" / "rfc7643"
META = {"resourceType": "X", "created": "2026-01-01T00:00:00Z", "version": 'W/"1"'}


def _stored(resource_type: ResourceType, name: str) -> dict[str, Any]:
    body = json.loads((VECTORS / name).read_text())["resource"]
    stored = {"id": "2819c223", **parse_resource(resource_type, body), "meta": META}
    stored.pop("password", None)
    if resource_type is USER:
        stored["groups"] = [{"value": "e9e30dba", "display": "Tour Guides", "type": "direct"}]
    else:
        stored["members"] = [{"value": "a1", "type": "User", "display": "Babs"}]
    return stored


@pytest.mark.parametrize(
    ("resource_type", "name"),
    [
        (USER, "8.1-minimal-user.json"),
        (USER, "8.2-full-user.json"),
        (USER, "8.3-enterprise-user.json"),
        (GROUP, "8.4-group.json"),
    ],
)
def test_fast_default_projection_matches_the_general_one(
    resource_type: ResourceType, name: str
) -> None:
    stored = _stored(resource_type, name)
    assert project_stored(resource_type, stored) == project(resource_type, stored)
    assert project_stored(resource_type, stored, attributes=["id"]) == project(
        resource_type, stored, attributes=["id"]
    )


def test_fast_projection_hides_request_only_member_display() -> None:
    out = project_stored(GROUP, _stored(GROUP, "8.4-group.json"))
    assert out["members"] == [{"value": "a1", "type": "User"}]
