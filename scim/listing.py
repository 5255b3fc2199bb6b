"""Paging maths and list responses (RFC 7644 §3.4.2.4, §3.4.3, §3.4.2.3)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from scim.errors import InvalidSyntaxError, InvalidValueError

LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
SEARCH_REQUEST = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"


@dataclass(frozen=True)
class Query:
    filter: str | None
    sort_by: str | None
    descending: bool
    start_index: int
    count: int
    attributes: tuple[str, ...]
    excluded_attributes: tuple[str, ...]


def _int(name: str, raw: object) -> int:
    if isinstance(raw, bool):
        raise InvalidValueError(f"{name} must be an integer")
    if isinstance(raw, int):
        return raw
    if isinstance(raw, str):
        try:
            return int(raw.strip())
        except ValueError:
            pass
    raise InvalidValueError(f"{name} must be an integer, got {raw!r}")


def _attribute_list(name: str, raw: object) -> tuple[str, ...]:
    if raw is None:
        return ()
    if isinstance(raw, str):
        return tuple(item.strip() for item in raw.split(",") if item.strip())
    if isinstance(raw, list) and all(isinstance(item, str) for item in raw):
        return tuple(item.strip() for item in raw if item.strip())
    raise InvalidValueError(f"{name} must be a list of attribute names")


def parse_query(params: Mapping[str, Any], *, default_count: int, max_results: int) -> Query:
    """Read list parameters from a query string (GET) or a SearchRequest body (POST)."""
    filter_ = params.get("filter")
    if filter_ is not None and not isinstance(filter_, str):
        raise InvalidValueError("filter must be a string")
    sort_by = params.get("sortBy")
    if sort_by is not None and not isinstance(sort_by, str):
        raise InvalidValueError("sortBy must be a string")
    order = params.get("sortOrder", "ascending")
    if not isinstance(order, str) or order.lower() not in ("ascending", "descending"):
        raise InvalidValueError("sortOrder must be 'ascending' or 'descending'")
    # "A value less than 1 SHALL be interpreted as 1."
    start = max(1, _int("startIndex", params.get("startIndex", 1)))
    # "A negative value SHALL be interpreted as 0"; larger than the maximum is capped at it.
    count = min(max(0, _int("count", params.get("count", default_count))), max_results)
    attributes = _attribute_list("attributes", params.get("attributes"))
    excluded = _attribute_list("excludedAttributes", params.get("excludedAttributes"))
    return Query(
        filter=filter_ or None,
        sort_by=sort_by or None,
        descending=order.lower() == "descending",
        start_index=start,
        count=count,
        attributes=attributes,
        excluded_attributes=excluded,
    )


def parse_search_request(body: object, *, default_count: int, max_results: int) -> Query:
    if not isinstance(body, dict):
        raise InvalidSyntaxError("a SearchRequest must be a JSON object")
    schemas = body.get("schemas")
    if not isinstance(schemas, list) or SEARCH_REQUEST.lower() not in (
        s.lower() for s in schemas if isinstance(s, str)
    ):
        raise InvalidValueError(f"schemas must include {SEARCH_REQUEST}")
    known = {
        "schemas",
        "attributes",
        "excludedAttributes",
        "filter",
        "sortBy",
        "sortOrder",
        "startIndex",
        "count",
    }
    params = {k: v for k, v in body.items() if k in known}
    return parse_query(params, default_count=default_count, max_results=max_results)


def list_response(
    resources: Sequence[dict[str, Any]], *, total: int, start_index: int
) -> dict[str, Any]:
    # itemsPerPage is what this page holds, not what was asked for.
    return {
        "schemas": [LIST_RESPONSE],
        "totalResults": total,
        "startIndex": start_index,
        "itemsPerPage": len(resources),
        "Resources": list(resources),
    }
