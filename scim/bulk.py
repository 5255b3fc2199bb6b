"""RFC 7644 §3.7 Bulk: read a BulkRequest, order its operations, build the BulkResponse.

`parse_bulk_request` checks the BulkRequest message (§3.7) and the limit on the number of
operations (§3.7.4). `references` and `substitute` find and replace the ``"bulkId:<x>"``
temporary identifiers (§3.7.2). `run_bulk` drives the operations through a callback that
performs one of them (the HTTP verb on one resource, as a single request would) and turns
what each returns into the §3.7.3 result; `bulk_response` wraps the results.

Pure functions over plain data: imports only the stdlib and `scim.*` (no I/O framework, no
clock). The callback does the storage work; this module decides what runs, in which order,
with which ids, and what the client is told.

Decisions where the RFC leaves room
-----------------------------------
- The envelope is checked here and a malformed one fails the whole request (400, the detail
  naming ``Operations[i]``); the resource body in ``data`` is checked by the callback, so a bad
  body fails only its operation (§3.7: "The service provider MUST continue performing as many
  changes as possible and disregard partial failures").
- Attribute names of the envelope are case-insensitive (RFC 7643 §2.1), so ``operations``
  reads as ``Operations``; ``method`` is accepted in any case and kept upper case. ``path`` is
  exactly ``/Users`` or ``/Groups`` for POST and ``/Users/<id>`` or ``/Groups/<id>`` otherwise.
- ``bulkId`` is required for POST (§3.7: 'REQUIRED when "method" is "POST"'), optional for
  the other methods, and unique within the request (§3.7: "unique within a bulk request").
  ``version`` becomes the If-Match of PUT, PATCH and DELETE and is ignored on POST (§3.7: it
  "MAY be used if ... "method" is "PUT", "PATCH", or "DELETE""). ``data`` on DELETE is ignored.
- A reference is a string value that is exactly ``"bulkId:<x>"`` (§3.7.2: "The service
  provider MUST replace the string "bulkId:qwerty" with the permanent resource id"), anywhere
  in ``data`` (``members[].value``, the enterprise ``manager.value``, values inside PATCH
  operations) or as the id in ``path``. The text "bulkId:" inside a longer string (a PATCH
  filter, a ``$ref`` URL) is left as it is.
- Order: operations run in request order, except that one referring to a bulkId runs only
  after the operation defining it (§3.7: "before a "User" can be added to a "Group", they must
  first be created"). Forward references are therefore allowed; among the operations that are
  ready, the earliest in the request runs first. Results are listed in request order.
- Circular references (§3.7.1: "The service provider MUST try to resolve circular
  cross-references between resources in a single bulk job but MAY stop after a failed attempt
  and instead return HTTP status code 409 (Conflict)"): ordering is the attempt. An operation
  on a circle of references can never have every bulkId it needs created before it runs, so it
  fails with 409 without being performed, and the detail names the circle. The other
  operations still run. The RFC's own example (two groups that are members of each other) is
  written as two POSTs followed by a PATCH adding the second membership; that form works.
  Splitting a POST into a create and a later update behind the client's back was not chosen:
  if the update failed, the resource would exist without the attributes the client sent.
- A reference to a bulkId that no operation of the request defines fails its operation with
  400 invalidValue (RFC 7644 Table 9: "the value specified was not compatible with the
  operation"). A reference to a bulkId whose operation failed (or was refused as above) fails
  with 409, like an unresolved circle: the reference could not be resolved. Table 9 defines its
  keywords for 400 responses only, so these 409s carry no ``scimType``.
- ``failOnErrors`` counts every failed operation, including those refused here. When the count
  reaches it, nothing more runs and the operations not run are left out of the response (§3.7:
  "the number of errors that the service provider should accept before failing the remaining
  operations returning the response"; §3.7.3's example stops after one error with
  ``failOnErrors`` 1).
- Each result has ``method``, ``bulkId`` when the operation had one, ``location`` except for a
  failed POST (§3.7.3: "MUST be returned for all operations except for failed POST
  operations"), ``version`` when known, ``status`` as a string ("201", the form of §3.7.3 and
  §3.12; §3.7.2's ``{"code": "201"}`` is the SCIM 1.1 form) and, unless the status is 2xx,
  ``response`` holding the §3.12 error (§3.7: "When indicating a response with an HTTP status
  other than a 200-series response, the response body MUST be included"). The BulkResponse
  itself is 200 whatever the operations' outcomes (§3.7.3's example where every operation
  failed is "200 OK").
"""

from __future__ import annotations

import heapq
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from scim.errors import (
    ERROR_SCHEMA,
    ConflictError,
    InvalidSyntaxError,
    InvalidValueError,
    PayloadTooLargeError,
    ScimError,
)
from scim.resources import fold_keys, json_type

__all__ = [
    "BULK_ID_PREFIX",
    "BULK_REQUEST",
    "BULK_RESPONSE",
    "METHODS",
    "BulkOperation",
    "BulkRequest",
    "Execute",
    "Outcome",
    "bulk_response",
    "check_payload_size",
    "parse_bulk_request",
    "references",
    "run_bulk",
    "substitute",
]

BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
BULK_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
BULK_ID_PREFIX = "bulkId:"
METHODS = ("POST", "PUT", "PATCH", "DELETE")

_ENDPOINTS = ("Users", "Groups")
_PREFIX_LENGTH = len(BULK_ID_PREFIX)
# How many bulkIds a detail names when it describes a circle of references.
_NAMED_IN_CIRCLE = 10


@dataclass(frozen=True)
class BulkOperation:
    """One operation of a BulkRequest, as `parse_bulk_request` read it.

    `index` is its position in the request. `resource_type_endpoint` is "Users" or "Groups".
    `resource_id` is the id in `path` (None for POST); it may be a reference, "bulkId:<x>".
    `version` is the If-Match for PUT, PATCH and DELETE. `data` is the request body (an
    object) for POST, PUT and PATCH and None for DELETE; it may hold references.
    """

    index: int
    method: str
    resource_type_endpoint: str
    resource_id: str | None
    bulk_id: str | None
    version: str | None
    data: Any


@dataclass(frozen=True)
class BulkRequest:
    fail_on_errors: int | None
    operations: tuple[BulkOperation, ...]


@dataclass(frozen=True)
class Outcome:
    """What performing one operation gave: the status a single request would have answered.

    `resource_id` is the id of the resource created or changed (required after a successful
    POST whose bulkId others refer to). `error` is the §3.12 error body when `status` is not
    2xx.
    """

    status: int
    resource_id: str | None = None
    location: str | None = None
    version: str | None = None
    error: dict[str, Any] | None = None


Execute = Callable[[BulkOperation], Awaitable[Outcome]]
ExecuteMany = Callable[[list[BulkOperation]], Awaitable[list[Outcome]]]


# --- The request --------------------------------------------------------------------------------


def check_payload_size(size: int, *, max_payload_size: int) -> None:
    """Refuse a BulkRequest body of `size` bytes above the limit (RFC 7644 §3.7.4)."""
    if size > max_payload_size:
        # RFC 7644 §3.7.4: "If either limit is exceeded, the service provider MUST return HTTP
        # response code 413 (Payload Too Large). The returned response MUST specify the limit
        # exceeded in the body of the error response." The wording is the RFC's example.
        raise PayloadTooLargeError(
            f"The size of the bulk operation exceeds the maxPayloadSize ({max_payload_size})."
        )


def parse_bulk_request(body: Any, *, max_operations: int) -> BulkRequest:
    """Check a BulkRequest body (RFC 7644 §3.7) and return its operations in order."""
    if not isinstance(body, Mapping):
        raise InvalidSyntaxError(f"The bulk request must be a JSON object, got {json_type(body)}")
    fields = _fold_keys(body, "The bulk request")
    schemas = fields.get("schemas")
    if not isinstance(schemas, list) or not any(
        isinstance(urn, str) and urn.lower() == BULK_REQUEST.lower() for urn in schemas
    ):
        raise InvalidValueError(f"schemas must be an array holding {BULK_REQUEST}")
    operations = fields.get("operations")
    if not isinstance(operations, list):
        # RFC 7644 §3.7: Operations "Defines operations within a bulk job. ... REQUIRED."
        raise InvalidSyntaxError(
            f"Operations must be an array of bulk operations, got {json_type(operations)}"
        )
    if len(operations) > max_operations:
        # RFC 7644 §3.7.4: 413 naming the limit exceeded, worded as the RFC's maxPayloadSize
        # example.
        raise PayloadTooLargeError(
            f"The size of the bulk operation exceeds the maxOperations ({max_operations})."
        )
    fail_on_errors = fields.get("failonerrors")
    if fail_on_errors is not None and (
        isinstance(fail_on_errors, bool)
        or not isinstance(fail_on_errors, int)
        or fail_on_errors < 1
    ):
        # RFC 7644 §3.7: "An integer specifying the number of errors that the service provider
        # will accept before the operation is terminated".
        raise InvalidValueError(f"failOnErrors must be a positive integer, got {fail_on_errors!r}")
    parsed = tuple(_parse_operation(index, item) for index, item in enumerate(operations))
    defined: dict[str, int] = {}
    for op in parsed:
        if op.bulk_id is None:
            continue
        earlier = defined.setdefault(op.bulk_id, op.index)
        if earlier != op.index:
            # RFC 7644 §3.7: bulkId is "unique within a bulk request".
            raise InvalidValueError(
                f"Operations[{op.index}].bulkId {op.bulk_id!r} is already the bulkId of "
                f"Operations[{earlier}]; each bulkId must be unique within the request"
            )
    return BulkRequest(fail_on_errors, parsed)


def _parse_operation(index: int, item: object) -> BulkOperation:
    where = f"Operations[{index}]"
    if not isinstance(item, Mapping):
        raise InvalidSyntaxError(
            f"{where} must be an object with method, path and data, got {json_type(item)}"
        )
    fields = _fold_keys(item, where)
    raw_method = fields.get("method")
    if raw_method is None:
        raise InvalidValueError(f"{where}.method is required: POST, PUT, PATCH or DELETE")
    if not isinstance(raw_method, str) or raw_method.upper() not in METHODS:
        raise InvalidSyntaxError(
            f"{where}.method must be POST, PUT, PATCH or DELETE, got {raw_method!r}"
        )
    method = raw_method.upper()
    endpoint, resource_id = _parse_path(where, method, fields.get("path"))
    bulk_id = fields.get("bulkid")
    if bulk_id is None:
        if method == "POST":
            # RFC 7644 §3.7: bulkId is 'REQUIRED when "method" is "POST"'.
            raise InvalidValueError(f"{where}.bulkId is required when the method is POST")
    elif not isinstance(bulk_id, str) or not bulk_id:
        raise InvalidValueError(f"{where}.bulkId must be a non-empty string, got {bulk_id!r}")
    version = fields.get("version")
    if version is not None and not isinstance(version, str):
        raise InvalidSyntaxError(
            f"{where}.version must be a string (an entity tag), got {json_type(version)}"
        )
    data = fields.get("data")
    if method == "DELETE":
        data = None
    elif data is None:
        # RFC 7644 §3.7: data is 'REQUIRED in a request when "method" is "POST", "PUT", or
        # "PATCH"'.
        raise InvalidValueError(f"{where}.data is required when the method is {method}")
    elif not isinstance(data, Mapping):
        raise InvalidSyntaxError(
            f"{where}.data must be an object (the {method} request body), got {json_type(data)}"
        )
    return BulkOperation(
        index=index,
        method=method,
        resource_type_endpoint=endpoint,
        resource_id=resource_id,
        bulk_id=bulk_id,
        version=None if method == "POST" else version,
        data=data,
    )


def _parse_path(where: str, method: str, path: object) -> tuple[str, str | None]:
    """The endpoint and the resource id of an operation's path (None for POST)."""
    # RFC 7644 §3.7: 'If "method" is "POST", the value must specify a resource type endpoint,
    # e.g., /Users or /Groups, whereas all other "method" values must specify the path to a
    # specific resource, e.g., /Users/2819c223-7f76-453a-919d-413861904646.'
    wanted = '"/Users" or "/Groups"' if method == "POST" else '"/Users/<id>" or "/Groups/<id>"'
    if path is None:
        raise InvalidValueError(f"{where}.path is required: {wanted}")
    if not isinstance(path, str):
        raise InvalidSyntaxError(f"{where}.path must be a string, got {json_type(path)}")
    endpoint, slash, resource_id = path[1:].partition("/") if path[:1] == "/" else ("", "", "")
    if endpoint in _ENDPOINTS:
        if method == "POST" and not slash:
            return endpoint, None
        if method != "POST" and resource_id and "/" not in resource_id:
            return endpoint, resource_id
    raise InvalidValueError(f"{where}.path for {method} must be {wanted}, got {path!r}")


def _fold_keys(obj: Mapping[Any, Any], where: str) -> dict[str, Any]:
    return {name: value for name, (_spelled, value) in fold_keys(obj, where).items()}


# --- bulkId references (§3.7.2) -----------------------------------------------------------------


def references(op: BulkOperation) -> frozenset[str]:
    """The bulkIds `op` refers to, in its path id or anywhere in its data."""
    return frozenset(_references(op))


def _references(op: BulkOperation) -> list[str]:
    """The bulkIds `op` refers to, each once, in the order they appear: one walk of the data."""
    found: dict[str, None] = {}
    if op.resource_id is not None and op.resource_id.startswith(BULK_ID_PREFIX):
        found[op.resource_id[_PREFIX_LENGTH:]] = None
    if op.data is not None:
        _collect(op.data, found)
    return list(found)


def _collect(value: Any, found: dict[str, None]) -> None:
    # dict and list first: parsed JSON holds nothing else, and they are cheaper to test for than
    # the Mapping ABC.
    if isinstance(value, str):
        if value.startswith(BULK_ID_PREFIX):
            found[value[_PREFIX_LENGTH:]] = None
    elif isinstance(value, dict | Mapping):
        for item in value.values():
            _collect(item, found)
    elif isinstance(value, list | tuple):
        for item in value:
            _collect(item, found)


def substitute(op: BulkOperation, ids: Mapping[str, str]) -> BulkOperation:
    """A copy of `op` with each reference to a bulkId in `ids` replaced by its resource id.

    `op` and its data are left untouched; references to bulkIds missing from `ids` are kept.
    """
    resource_id = op.resource_id
    if resource_id is not None and resource_id.startswith(BULK_ID_PREFIX):
        resource_id = ids.get(resource_id[_PREFIX_LENGTH:], resource_id)
    data = None if op.data is None else _replaced(op.data, ids)
    return BulkOperation(
        op.index, op.method, op.resource_type_endpoint, resource_id, op.bulk_id, op.version, data
    )


def _replaced(value: Any, ids: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        if value.startswith(BULK_ID_PREFIX):
            return ids.get(value[_PREFIX_LENGTH:], value)
        return value
    if isinstance(value, dict | Mapping):
        return {key: _replaced(item, ids) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_replaced(item, ids) for item in value]
    return value


# --- Running the operations ---------------------------------------------------------------------


async def run_bulk(
    request: BulkRequest,
    execute: Execute,
    *,
    locate: Callable[[str, str], str] | None = None,
    execute_many: ExecuteMany | None = None,
    batchable: Callable[[BulkOperation], bool] | None = None,
    batch_size: int = 500,
) -> list[dict[str, Any]]:
    """Perform the operations of `request` through `execute`; return their §3.7.3 results.

    `execute` performs one operation whose references have been replaced by resource ids and
    returns its `Outcome`; it may raise a `ScimError` instead of returning a failed outcome.
    It is awaited once per operation, one at a time. `locate(endpoint, id)` gives the location
    of a resource when the outcome has none, as for an operation refused here without being
    performed whose path names a resource.
    Results are in request order and hold only the operations processed (see the module
    docstring for the order, the refusals and failOnErrors).

    With `execute_many`, operations for which `batchable(op)` holds, that refer to no bulkId
    and are ready one after the other, are performed together (up to `batch_size`), with
    one `Outcome` each, in order: the results are those of performing them one by one. Not
    when `failOnErrors` is set, which must be able to stop between any two operations.
    """
    ops = request.operations
    count = len(ops)
    defined = {op.bulk_id: position for position, op in enumerate(ops) if op.bulk_id is not None}
    needs = [_references(op) for op in ops]
    refused: list[ScimError | None] = [None] * count
    waiting_on = [0] * count
    dependents: list[list[int]] = [[] for _ in range(count)]
    edges: list[list[int]] = [[] for _ in range(count)]
    for position, names in enumerate(needs):
        for name in names:
            target = defined.get(name)
            if target is None:
                refused[position] = InvalidValueError(
                    f'Operations[{ops[position].index}] refers to "{BULK_ID_PREFIX}{name}", but '
                    "no operation of this request has that bulkId"
                )
                # Refused already: it waits for nothing and is on no circle.
                edges[position] = []
                break
            edges[position].append(target)
    for position, circle in _circles(ops, edges).items():
        refused[position] = circle
    # In request order, so already a heap.
    ready: list[int] = []
    for position in range(count):
        if refused[position] is None and edges[position]:
            waiting_on[position] = len(edges[position])
            for target in edges[position]:
                dependents[target].append(position)
        else:
            ready.append(position)

    ids: dict[str, str] = {}
    results: list[dict[str, Any] | None] = [None] * count
    errors = 0
    batching = execute_many is not None and batchable is not None
    batching = batching and request.fail_on_errors is None
    done: dict[int, Outcome] = {}  # outcomes of a batch, taken in order below

    def groupable(position: int) -> bool:
        assert batchable is not None
        return refused[position] is None and not needs[position] and batchable(ops[position])

    while ready:
        position = heapq.heappop(ready)
        op = ops[position]
        error = refused[position]
        if position in done:
            outcome = done.pop(position)
        elif error is not None:
            outcome = Outcome(status=error.status, error=error.to_json())
        elif batching and groupable(position):
            batch = [position]
            while ready and len(batch) < batch_size and groupable(ready[0]):
                batch.append(heapq.heappop(ready))
            assert execute_many is not None
            outcomes = await execute_many([ops[p] for p in batch])
            done.update(zip(batch[1:], outcomes[1:], strict=True))
            for later in reversed(batch[1:]):  # back on the heap: handled one by one below
                heapq.heappush(ready, later)
            outcome = outcomes[0]
        else:
            if needs[position]:
                op = substitute(op, ids)
            try:
                outcome = await execute(op)
            except ScimError as exc:
                outcome = Outcome(status=exc.status, error=exc.to_json())
        succeeded = 200 <= outcome.status < 300
        results[position] = _result(op, outcome, succeeded, locate)
        created: str | None = None
        if succeeded and op.bulk_id is not None:
            created = outcome.resource_id or (None if op.method == "POST" else op.resource_id)
            if created is not None:
                ids[op.bulk_id] = created
        for dependent in dependents[position]:
            if waiting_on[dependent] == 0:
                continue  # already refused and queued
            if created is not None:
                waiting_on[dependent] -= 1
                if waiting_on[dependent]:
                    continue
            else:
                waiting_on[dependent] = 0
                refused[dependent] = ConflictError(
                    f'Operations[{ops[dependent].index}] refers to "{BULK_ID_PREFIX}{op.bulk_id}", '
                    f"but Operations[{op.index}], which has that bulkId, "
                    + ("failed" if not succeeded else "gave no resource id")
                )
            heapq.heappush(ready, dependent)
        if not succeeded:
            errors += 1
            if request.fail_on_errors is not None and errors >= request.fail_on_errors:
                break
    return [result for result in results if result is not None]


def _result(
    op: BulkOperation,
    outcome: Outcome,
    succeeded: bool,
    locate: Callable[[str, str], str] | None,
) -> dict[str, Any]:
    """One operation's entry in the BulkResponse (RFC 7644 §3.7.3)."""
    result: dict[str, Any] = {"method": op.method}
    if op.bulk_id is not None:
        result["bulkId"] = op.bulk_id
    # §3.7.3: 'A "location" attribute that includes the resource's endpoint MUST be returned
    # for all operations except for failed POST operations (which have no location).'
    if succeeded or op.method != "POST":
        location = outcome.location
        if location is None and locate is not None:
            resource_id = outcome.resource_id or op.resource_id
            if resource_id is not None and not resource_id.startswith(BULK_ID_PREFIX):
                location = locate(op.resource_type_endpoint, resource_id)
        if location is not None:
            result["location"] = location
    if outcome.version is not None:
        result["version"] = outcome.version
    result["status"] = str(outcome.status)
    if not succeeded:
        # §3.7: "When indicating a response with an HTTP status other than a 200-series
        # response, the response body MUST be included."
        result["response"] = (
            outcome.error
            if outcome.error is not None
            else {"schemas": [ERROR_SCHEMA], "status": str(outcome.status)}
        )
    return result


def _circles(ops: Sequence[BulkOperation], edges: Sequence[Sequence[int]]) -> dict[int, ScimError]:
    """The 409 of every operation on a circle of references, by position.

    The circles are the strongly connected components of the reference graph with more than
    one operation, or one operation referring to itself (Tarjan's algorithm, without recursion
    so that a long chain of references cannot exhaust the stack).
    """
    count = len(ops)
    order = [-1] * count
    low = [0] * count
    on_stack = [False] * count
    stack: list[int] = []
    counter = 0
    refused: dict[int, ScimError] = {}
    for root in range(count):
        if order[root] != -1 or not edges[root]:
            continue
        work = [(root, 0)]
        order[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack[root] = True
        while work:
            node, next_edge = work[-1]
            if next_edge < len(edges[node]):
                work[-1] = (node, next_edge + 1)
                target = edges[node][next_edge]
                if order[target] == -1:
                    order[target] = low[target] = counter
                    counter += 1
                    stack.append(target)
                    on_stack[target] = True
                    work.append((target, 0))
                elif on_stack[target]:
                    low[node] = min(low[node], order[target])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] != order[node]:
                continue
            component: list[int] = []
            while True:
                member = stack.pop()
                on_stack[member] = False
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in edges[node]:
                refused.update(_circle_errors(ops, edges, component))
    return refused


def _circle_errors(
    ops: Sequence[BulkOperation], edges: Sequence[Sequence[int]], component: list[int]
) -> dict[int, ScimError]:
    """The 409 of each operation of one circle, naming the circle."""
    members = set(component)
    inside = {position: [t for t in edges[position] if t in members] for position in component}
    simple = all(len(targets) == 1 for targets in inside.values())
    advice = (
        "; create the resources first and add the references with PATCH operations later in "
        "the request"
    )
    if not simple:
        names = [f"{BULK_ID_PREFIX}{ops[position].bulk_id}" for position in sorted(component)]
        shown = ", ".join(names[:_NAMED_IN_CIRCLE])
        if len(names) > _NAMED_IN_CIRCLE:
            shown += f" and {len(names) - _NAMED_IN_CIRCLE} more"
        text = f"these bulkIds refer to one another: {shown}"
        return {
            position: ConflictError(
                f"Operations[{ops[position].index}] is part of a circular reference that "
                f"cannot be resolved ({text}){advice}"
            )
            for position in component
        }
    errors: dict[int, ScimError] = {}
    for position in component:
        steps = [position]
        current = inside[position][0]
        while current != position and len(steps) < _NAMED_IN_CIRCLE:
            steps.append(current)
            current = inside[current][0]
        names = [f"{BULK_ID_PREFIX}{ops[step].bulk_id}" for step in steps]
        if current != position:
            names.append("...")
        names.append(f"{BULK_ID_PREFIX}{ops[position].bulk_id}")
        text = " -> ".join(names)
        if len(component) > _NAMED_IN_CIRCLE:
            text += f", a circle of {len(component)} operations"
        errors[position] = ConflictError(
            f"Operations[{ops[position].index}] is part of a circular reference that cannot be "
            f"resolved ({text}){advice}"
        )
    return errors


def bulk_response(results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The BulkResponse message (RFC 7644 §3.7.3) holding `results`."""
    return {"schemas": [BULK_RESPONSE], "Operations": [dict(result) for result in results]}
