"""scim.discovery: RFC 7643 §5 ServiceProviderConfig, §6 ResourceTypes, §7 Schemas."""

from __future__ import annotations

import json
from typing import Any

from scim.discovery import resource_types_document, schemas_document, service_provider_config
from scim.schema import ENTERPRISE_USER_SCHEMA_ID, GROUP_SCHEMA_ID, SCHEMAS, USER_SCHEMA_ID

BASE = "https://idgate.example/scim/v2/acme"


def config(**overrides: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "base_url": BASE,
        "documentation_uri": "https://idgate.example/docs/scim",
        "max_results": 200,
        "max_payload_size": 1048576,
        "patch": True,
        "bulk": True,
        "etag": False,
        "sort": False,
    }
    arguments.update(overrides)
    return service_provider_config(**arguments)


def test_service_provider_config_document() -> None:
    assert config() == {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "documentationUri": "https://idgate.example/docs/scim",
        "patch": {"supported": True},
        "bulk": {"supported": True, "maxOperations": 1000, "maxPayloadSize": 1048576},
        "filter": {"supported": True, "maxResults": 200},
        "changePassword": {"supported": False},
        "sort": {"supported": False},
        "etag": {"supported": False},
        "authenticationSchemes": [
            {
                "type": "oauthbearertoken",
                "name": "OAuth Bearer Token",
                "description": "Authentication with an OAuth 2.0 Bearer Token (RFC 6750).",
                "specUri": "https://www.rfc-editor.org/info/rfc6750",
                "primary": True,
            }
        ],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": f"{BASE}/ServiceProviderConfig",
        },
    }


def test_service_provider_config_reflects_settings() -> None:
    document = config(
        documentation_uri=None,
        max_results=50,
        max_payload_size=2048,
        patch=False,
        bulk=False,
        etag=True,
        sort=True,
        max_operations=10,
    )
    assert "documentationUri" not in document
    assert document["filter"] == {"supported": True, "maxResults": 50}
    # RFC 7643 §5: maxOperations and maxPayloadSize are REQUIRED even when bulk is off.
    assert document["bulk"] == {"supported": False, "maxOperations": 10, "maxPayloadSize": 2048}
    assert document["patch"] == {"supported": False}
    assert document["etag"] == {"supported": True}
    assert document["sort"] == {"supported": True}


def test_service_provider_config_is_json() -> None:
    assert json.loads(json.dumps(config())) == config()


def test_resource_types_document() -> None:
    document = resource_types_document(BASE)
    assert [rt["id"] for rt in document] == ["User", "Group"]
    user, group = document
    assert user["schemas"] == ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"]
    assert user["endpoint"] == "/Users"
    assert user["schema"] == USER_SCHEMA_ID
    assert user["schemaExtensions"] == [{"schema": ENTERPRISE_USER_SCHEMA_ID, "required": False}]
    assert user["meta"] == {
        "resourceType": "ResourceType",
        "location": f"{BASE}/ResourceTypes/User",
    }
    assert group["endpoint"] == "/Groups"
    assert group["schema"] == GROUP_SCHEMA_ID
    assert group["schemaExtensions"] == []
    assert group["meta"]["location"] == f"{BASE}/ResourceTypes/Group"


def test_schemas_document() -> None:
    document = schemas_document(BASE)
    assert [s["id"] for s in document] == [
        USER_SCHEMA_ID,
        ENTERPRISE_USER_SCHEMA_ID,
        GROUP_SCHEMA_ID,
    ]
    for served, schema in zip(document, SCHEMAS, strict=True):
        assert served["schemas"] == ["urn:ietf:params:scim:schemas:core:2.0:Schema"]
        assert served["meta"] == {
            "resourceType": "Schema",
            "location": f"{BASE}/Schemas/{schema.id}",
        }
        assert [a["name"] for a in served["attributes"]] == [a.name for a in schema.attributes]
    user = {a["name"]: a for a in document[0]["attributes"]}
    assert user["userName"]["required"] is True
    assert user["userName"]["uniqueness"] == "server"
    assert user["password"]["returned"] == "never"
    assert user["password"]["mutability"] == "writeOnly"
    assert user["groups"]["mutability"] == "readOnly"
    members = {a["name"]: a for a in document[2]["attributes"]}["members"]
    assert {s["name"]: s["mutability"] for s in members["subAttributes"]} == {
        "value": "immutable",
        "$ref": "immutable",
        "display": "readOnly",
        "type": "immutable",
    }


def test_discovery_documents_are_json() -> None:
    for document in (resource_types_document(BASE), schemas_document(BASE)):
        assert json.loads(json.dumps(document)) == document
