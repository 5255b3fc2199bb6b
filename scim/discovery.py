"""Discovery documents: /ServiceProviderConfig, /ResourceTypes and /Schemas.

RFC 7643 §5 (service provider configuration), §6 (resource types) and §7 (schema definitions),
served at the endpoints of RFC 7644 §4. Built from `scim.schema`, so what is served is what
`scim.resources` enforces. Pure functions: imports only the stdlib and `scim.schema`.
"""

from __future__ import annotations

from typing import Any

from scim.schema import RESOURCE_TYPES, SCHEMAS

SERVICE_PROVIDER_CONFIG_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"


def service_provider_config(
    *,
    base_url: str,
    documentation_uri: str | None,
    max_results: int,
    max_payload_size: int,
    patch: bool,
    bulk: bool,
    etag: bool,
    sort: bool,
    max_operations: int = 1000,
) -> dict[str, Any]:
    """The RFC 7643 §5 ServiceProviderConfig, located at `{base_url}/ServiceProviderConfig`."""
    config: dict[str, Any] = {"schemas": [SERVICE_PROVIDER_CONFIG_SCHEMA]}
    if documentation_uri is not None:
        config["documentationUri"] = documentation_uri
    config.update(
        {
            "patch": {"supported": patch},
            # RFC 7643 §5: bulk "maxOperations" and "maxPayloadSize" are REQUIRED sub-attributes.
            "bulk": {
                "supported": bulk,
                "maxOperations": max_operations,
                "maxPayloadSize": max_payload_size,
            },
            "filter": {"supported": True, "maxResults": max_results},
            "changePassword": {"supported": False},
            "sort": {"supported": sort},
            "etag": {"supported": etag},
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
                "location": f"{base_url}/ServiceProviderConfig",
            },
        }
    )
    return config


def resource_types_document(base_url: str) -> list[dict[str, Any]]:
    """Every RFC 7643 §6 ResourceType, each located at `{base_url}/ResourceTypes/{name}`."""
    return [rt.to_json(f"{base_url}/ResourceTypes/{rt.name}") for rt in RESOURCE_TYPES]


def schemas_document(base_url: str) -> list[dict[str, Any]]:
    """Every RFC 7643 §7 Schema, each located at `{base_url}/Schemas/{urn}`."""
    return [schema.to_json(f"{base_url}/Schemas/{schema.id}") for schema in SCHEMAS]
