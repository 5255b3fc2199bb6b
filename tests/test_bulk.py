"""scim.bulk: the RFC 7644 §3.7 BulkRequest, bulkId references and the order of operations."""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from scim.bulk import (
    BULK_REQUEST,
    BULK_RESPONSE,
    BulkOperation,
    BulkRequest,
    Outcome,
    bulk_response,
    check_payload_size,
    parse_bulk_request,
    references,
    run_bulk,
    substitute,
)
from scim.errors import (
    ERROR_SCHEMA,
    InvalidSyntaxError,
    InvalidValueError,
    NotFoundError,
    PayloadTooLargeError,
    ScimError,
    UniquenessError,
)

VECTORS = Path(__file__).parent / "vectors" / "rfc7644" / "bulk"
BASE = "https://example.com/v2"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def locate(endpoint: str, resource_id: str) -> str:
    return f"{BASE}/{endpoint}/{resource_id}"


class Recorder:
    """An `execute` that records the operations it is given and answers from a table.

    Without an answer for an operation it creates or changes the resource: 201 with a new id for
    POST, 200 (204 for DELETE) with the path's id otherwise.
    """

    def __init__(self, answers: Mapping[int, Outcome | ScimError] | None = None) -> None:
        self.answers = dict(answers or {})
        self.calls: list[BulkOperation] = []

    async def __call__(self, op: BulkOperation) -> Outcome:
        self.calls.append(op)
        answer = self.answers.get(op.index)
        if isinstance(answer, ScimError):
            raise answer
        if answer is not None:
            return answer
        if op.method == "POST":
            resource_id = f"id-{op.index}"
            return Outcome(201, resource_id, locate(op.resource_type_endpoint, resource_id))
        assert op.resource_id is not None
        status = 204 if op.method == "DELETE" else 200
        return Outcome(status, op.resource_id, locate(op.resource_type_endpoint, op.resource_id))

    @property
    def order(self) -> list[int]:
        return [op.index for op in self.calls]


def _request(*operations: Any, **extra: Any) -> dict[str, Any]:
    return {"schemas": [BULK_REQUEST], **extra, "Operations": list(operations)}


def _post(bulk_id: str, endpoint: str = "Users", **data: Any) -> dict[str, Any]:
    schema = USER_SCHEMA if endpoint == "Users" else GROUP_SCHEMA
    return {
        "method": "POST",
        "path": f"/{endpoint}",
        "bulkId": bulk_id,
        "data": {"schemas": [schema], **data},
    }


def _user(bulk_id: str, **data: Any) -> dict[str, Any]:
    return _post(bulk_id, "Users", userName=bulk_id, **data)


def _group(bulk_id: str, *member_refs: str) -> dict[str, Any]:
    members = [{"value": f"bulkId:{ref}"} for ref in member_refs]
    return _post(bulk_id, "Groups", displayName=bulk_id, members=members)


def _patch(path: str, *operations: dict[str, Any]) -> dict[str, Any]:
    return {
        "method": "PATCH",
        "path": path,
        "data": {"schemas": [PATCH_OP], "Operations": list(operations)},
    }


async def _run(
    body: dict[str, Any], recorder: Recorder | None = None, *, max_operations: int = 1000
) -> tuple[list[dict[str, Any]], Recorder]:
    recorder = recorder or Recorder()
    results = await run_bulk(
        parse_bulk_request(body, max_operations=max_operations), recorder, locate=locate
    )
    return results, recorder


def _statuses(results: list[dict[str, Any]]) -> list[tuple[str | None, str]]:
    return [(result.get("bulkId"), result["status"]) for result in results]


# --- RFC 7644 §3.7 examples ----------------------------------------------------------------------


def _vectors() -> list[Any]:
    files = sorted(VECTORS.glob("*.json"))
    return [pytest.param(json.loads(f.read_text(encoding="utf-8")), id=f.stem) for f in files]


def test_every_rfc_example_has_a_vector() -> None:
    # §3.7.1 (and its resolvable form), two of §3.7.2, three of §3.7.3, two limits of §3.7.4.
    assert len(_vectors()) == 9
    assert all(v.values[0]["description"].startswith("RFC 7644 §3.7") for v in _vectors())


@pytest.mark.parametrize("vector", _vectors())
async def test_rfc_vector(vector: dict[str, Any]) -> None:
    if "payload_size" in vector:
        with pytest.raises(PayloadTooLargeError) as caught:
            check_payload_size(vector["payload_size"], max_payload_size=vector["max_payload_size"])
        assert caught.value.to_json() == vector["error"]
        return
    if "error" in vector:
        with pytest.raises(ScimError) as raised:
            parse_bulk_request(vector["request"], max_operations=vector["max_operations"])
        assert raised.value.to_json() == vector["error"]
        return
    request = copy.deepcopy(vector["request"])
    answers = {int(index): Outcome(**outcome) for index, outcome in vector["outcomes"].items()}
    recorder = Recorder(answers)
    results, _ = await _run(request, recorder, max_operations=vector["max_operations"])
    assert [dataclasses.asdict(op) for op in recorder.calls] == vector["calls"]
    assert bulk_response(results) == vector["response"]
    # The request is left as it came.
    assert request == vector["request"]


# --- The request ---------------------------------------------------------------------------------


def test_request_gives_each_operation_in_order() -> None:
    request = parse_bulk_request(
        {
            "schemas": [BULK_REQUEST],
            "failOnErrors": 2,
            "Operations": [
                _user("alice"),
                {
                    "method": "put",
                    "path": "/Users/u1",
                    "version": 'W/"1"',
                    "data": {"userName": "bob"},
                },
                _patch("/Groups/bulkId:team", {"op": "remove", "path": "members"}),
                {"Method": "Delete", "PATH": "/Groups/g1", "bulkid": "gone", "data": {"x": 1}},
            ],
        },
        max_operations=4,
    )
    assert request == BulkRequest(
        fail_on_errors=2,
        operations=(
            BulkOperation(
                0,
                "POST",
                "Users",
                None,
                "alice",
                None,
                {"schemas": [USER_SCHEMA], "userName": "alice"},
            ),
            BulkOperation(1, "PUT", "Users", "u1", None, 'W/"1"', {"userName": "bob"}),
            BulkOperation(
                2,
                "PATCH",
                "Groups",
                "bulkId:team",
                None,
                None,
                {"schemas": [PATCH_OP], "Operations": [{"op": "remove", "path": "members"}]},
            ),
            # data on DELETE is ignored.
            BulkOperation(3, "DELETE", "Groups", "g1", "gone", None, None),
        ),
    )


def test_attribute_names_are_case_insensitive_and_failonerrors_optional() -> None:
    request = parse_bulk_request(
        {"SCHEMAS": [BULK_REQUEST.upper()], "operations": [_user("a")]}, max_operations=1
    )
    assert request.fail_on_errors is None
    assert [op.bulk_id for op in request.operations] == ["a"]


def test_empty_operations_are_accepted() -> None:
    assert parse_bulk_request(_request(), max_operations=0) == BulkRequest(None, ())


def test_version_is_ignored_on_post() -> None:
    request = parse_bulk_request(_request({**_user("a"), "version": 'W/"1"'}), max_operations=1)
    assert request.operations[0].version is None


@pytest.mark.parametrize(
    ("body", "error", "where"),
    [
        ([], InvalidSyntaxError, "JSON object"),
        ({"Operations": []}, InvalidValueError, "schemas"),
        ({"schemas": ["urn:x"], "Operations": []}, InvalidValueError, "schemas"),
        ({"schemas": [BULK_REQUEST]}, InvalidSyntaxError, "Operations must be an array"),
        (_request(_user("a"), failOnErrors=0), InvalidValueError, "failOnErrors"),
        (_request(_user("a"), failOnErrors=-1), InvalidValueError, "failOnErrors"),
        (_request(_user("a"), failOnErrors="1"), InvalidValueError, "failOnErrors"),
        (_request(_user("a"), failOnErrors=True), InvalidValueError, "failOnErrors"),
        (_request(_user("a"), failOnErrors=1.5), InvalidValueError, "failOnErrors"),
        (_request(_user("a"), "DELETE /Users/1"), InvalidSyntaxError, "Operations[1] must be"),
        (_request({"path": "/Users/1"}), InvalidValueError, "Operations[0].method is required"),
        (
            _request({"method": "GET", "path": "/Users/1"}),
            InvalidSyntaxError,
            "Operations[0].method",
        ),
        (_request({"method": 1, "path": "/Users/1"}), InvalidSyntaxError, "Operations[0].method"),
        (_request({"method": "DELETE"}), InvalidValueError, "Operations[0].path is required"),
        (_request({"method": "DELETE", "path": 7}), InvalidSyntaxError, "Operations[0].path"),
        (_request({**_user("a"), "path": "/Users/1"}), InvalidValueError, "Operations[0].path"),
        (_request({**_user("a"), "path": "/Users/"}), InvalidValueError, "Operations[0].path"),
        (_request({**_user("a"), "path": "Users"}), InvalidValueError, "Operations[0].path"),
        (_request({**_user("a"), "path": "/Schemas"}), InvalidValueError, "Operations[0].path"),
        (_request({**_user("a"), "path": "/users"}), InvalidValueError, "Operations[0].path"),
        (_request({"method": "DELETE", "path": "/Users"}), InvalidValueError, "Operations[0].path"),
        (
            _request({"method": "DELETE", "path": "/Users/"}),
            InvalidValueError,
            "Operations[0].path",
        ),
        (_request({"method": "DELETE", "path": "/Users/a/b"}), InvalidValueError, "Operations[0]"),
        (_request({"method": "DELETE", "path": "/Me/a"}), InvalidValueError, "Operations[0].path"),
        (
            _request({"method": "POST", "path": "/Users", "data": {}}),
            InvalidValueError,
            "Operations[0].bulkId is required",
        ),
        (_request({**_user("a"), "bulkId": ""}), InvalidValueError, "Operations[0].bulkId"),
        (_request({**_user("a"), "bulkId": 3}), InvalidValueError, "Operations[0].bulkId"),
        (
            _request({"method": "POST", "path": "/Users", "bulkId": "a"}),
            InvalidValueError,
            "Operations[0].data is required",
        ),
        (
            _request({"method": "PUT", "path": "/Users/1", "data": None}),
            InvalidValueError,
            "Operations[0].data is required",
        ),
        (
            _request({"method": "PATCH", "path": "/Users/1", "data": [{"op": "add"}]}),
            InvalidSyntaxError,
            "Operations[0].data must be an object",
        ),
        (
            _request({"method": "DELETE", "path": "/Users/1", "version": 1}),
            InvalidSyntaxError,
            "Operations[0].version",
        ),
        (
            _request({"method": "DELETE", "path": "/Users/1", "Path": "/Users/2"}),
            InvalidSyntaxError,
            "Operations[0]",
        ),
    ],
)
def test_malformed_requests_are_refused(body: Any, error: type[ScimError], where: str) -> None:
    with pytest.raises(error) as raised:
        parse_bulk_request(body, max_operations=10)
    assert where in raised.value.detail
    assert raised.value.status == 400


def test_duplicate_bulk_ids_are_refused() -> None:
    body = _request(_user("a"), _user("b"), {"method": "DELETE", "path": "/Users/1", "bulkId": "a"})
    with pytest.raises(InvalidValueError) as raised:
        parse_bulk_request(body, max_operations=10)
    assert raised.value.detail == (
        "Operations[2].bulkId 'a' is already the bulkId of Operations[0]; each bulkId must be "
        "unique within the request"
    )


def test_too_many_operations_is_413() -> None:
    body = _request(*(_user(f"u{n}") for n in range(4)))
    assert len(parse_bulk_request(body, max_operations=4).operations) == 4
    with pytest.raises(PayloadTooLargeError) as raised:
        parse_bulk_request(body, max_operations=3)
    assert raised.value.to_json() == {
        "schemas": [ERROR_SCHEMA],
        "status": "413",
        "detail": "The size of the bulk operation exceeds the maxOperations (3).",
    }


def test_operation_count_is_checked_before_the_operations() -> None:
    # A request over the limit is refused as such, without reading each operation.
    with pytest.raises(PayloadTooLargeError):
        parse_bulk_request(_request(*([None] * 5)), max_operations=4)


def test_payload_size_at_the_limit_is_accepted() -> None:
    check_payload_size(1048576, max_payload_size=1048576)


# --- References (§3.7.2) -------------------------------------------------------------------------


def _op(body_op: dict[str, Any]) -> BulkOperation:
    return parse_bulk_request(_request(body_op), max_operations=1).operations[0]


def test_references_are_found_in_path_and_anywhere_in_data() -> None:
    op = _op(
        {
            "method": "PUT",
            "path": "/Users/bulkId:me",
            "data": {
                "userName": "bob",
                "emails": [{"value": "bob@example.com", "type": "work"}],
                ENTERPRISE: {"manager": {"value": "bulkId:boss"}},
                "x-list": ["plain", "bulkId:listed", 3, None, True],
            },
        }
    )
    assert references(op) == frozenset({"me", "boss", "listed"})


def test_references_in_group_members_and_patch_values() -> None:
    assert references(_op(_group("team", "alice", "bob", "alice"))) == {"alice", "bob"}
    op = _op(
        _patch(
            "/Groups/g1",
            {"op": "add", "path": "members", "value": [{"value": "bulkId:carol"}]},
            {"op": "replace", "value": {ENTERPRISE: {"manager": {"value": "bulkId:dave"}}}},
        )
    )
    assert references(op) == {"carol", "dave"}


def test_only_whole_values_are_references() -> None:
    op = _op(
        _patch(
            "/Groups/g1",
            # A filter or URL holding the text is not a reference; nor is a key.
            {"op": "remove", "path": 'members[value eq "bulkId:alice"]'},
            {"op": "add", "value": {"bulkId:key": "x", "$ref": f"{BASE}/Users/bulkId:alice"}},
        )
    )
    assert references(op) == frozenset()
    assert references(_op({"method": "DELETE", "path": "/Users/1"})) == frozenset()


def test_substitute_replaces_every_reference_and_leaves_the_original() -> None:
    op = _op(
        {
            "method": "PATCH",
            "path": "/Groups/bulkId:team",
            "data": {
                "schemas": [PATCH_OP],
                "Operations": [
                    {
                        "op": "add",
                        "path": "members",
                        "value": [{"value": "bulkId:alice"}, {"value": "bulkId:bob"}],
                    },
                    {"op": "replace", "path": "displayName", "value": "bulkId:other"},
                ],
            },
        }
    )
    before = copy.deepcopy(op)
    new = substitute(op, {"team": "g-1", "alice": "u-1", "bob": "u-2", "unused": "x"})
    assert op == before
    assert new.resource_id == "g-1"
    assert new.data["Operations"][0]["value"] == [{"value": "u-1"}, {"value": "u-2"}]
    # A bulkId not in the mapping is left as it is.
    assert new.data["Operations"][1]["value"] == "bulkId:other"
    assert dataclasses.replace(new, resource_id=op.resource_id, data=op.data) == op
    assert references(new) == {"other"}


# --- Running (§3.7, §3.7.1, §3.7.3) --------------------------------------------------------------


async def test_operations_without_references_run_in_request_order() -> None:
    body = _request(
        _user("a"),
        {"method": "DELETE", "path": "/Users/x1"},
        _group("g"),
        {"method": "PUT", "path": "/Groups/x2", "version": 'W/"7"', "data": {"displayName": "n"}},
    )
    results, recorder = await _run(body)
    assert recorder.order == [0, 1, 2, 3]
    assert recorder.calls[3].version == 'W/"7"'
    assert results == [
        {"method": "POST", "bulkId": "a", "location": f"{BASE}/Users/id-0", "status": "201"},
        {"method": "DELETE", "location": f"{BASE}/Users/x1", "status": "204"},
        {"method": "POST", "bulkId": "g", "location": f"{BASE}/Groups/id-2", "status": "201"},
        {"method": "PUT", "location": f"{BASE}/Groups/x2", "status": "200"},
    ]


async def test_forward_reference_waits_for_the_operation_it_needs() -> None:
    # The group names a user created later in the request.
    body = _request(_group("team", "alice"), _user("bob"), _user("alice"), _user("carol"))
    results, recorder = await _run(body)
    assert recorder.order == [1, 2, 0, 3]
    assert recorder.calls[2].data["members"] == [{"value": "id-2"}]
    # Results are in request order.
    assert [r["bulkId"] for r in results] == ["team", "bob", "alice", "carol"]
    assert all(r["status"] == "201" for r in results)


async def test_chain_of_forward_references() -> None:
    # Each user's manager is the next one; the last has none.
    ops = [
        _user(f"u{n}", **{ENTERPRISE: {"manager": {"value": f"bulkId:u{n + 1}"}}}) for n in range(3)
    ]
    results, recorder = await _run(_request(*ops, _user("u3")))
    assert recorder.order == [3, 2, 1, 0]
    managers = {op.index: op.data.get(ENTERPRISE, {}).get("manager") for op in recorder.calls}
    assert managers == {3: None, 2: {"value": "id-3"}, 1: {"value": "id-2"}, 0: {"value": "id-1"}}
    assert _statuses(results) == [("u0", "201"), ("u1", "201"), ("u2", "201"), ("u3", "201")]


async def test_patch_referring_to_bulk_ids_in_its_path_and_values() -> None:
    body = _request(
        _patch(
            "/Groups/bulkId:team",
            {"op": "add", "path": "members", "value": [{"value": "bulkId:alice", "type": "User"}]},
        ),
        _group("team"),
        _user("alice"),
    )
    results, recorder = await _run(body)
    assert recorder.order == [1, 2, 0]
    patch = recorder.calls[2]
    assert patch.resource_id == "id-1"
    assert patch.data["Operations"][0]["value"] == [{"value": "id-2", "type": "User"}]
    assert results[0] == {"method": "PATCH", "location": f"{BASE}/Groups/id-1", "status": "200"}


async def test_put_with_a_bulk_id_can_be_referred_to() -> None:
    body = _request(
        _group("team", "bob"),
        {"method": "PUT", "path": "/Users/u-9", "bulkId": "bob", "data": {"userName": "bob"}},
    )
    _, recorder = await _run(body)
    assert recorder.order == [1, 0]
    assert recorder.calls[1].data["members"] == [{"value": "u-9"}]


async def test_circular_references_are_refused_and_the_rest_runs() -> None:
    body = _request(
        _group("a", "b"),
        _user("x"),
        _group("b", "c"),
        _group("c", "a"),
        _group("d", "a"),  # not on the circle, but needs a group of it
    )
    results, recorder = await _run(body)
    assert recorder.order == [1]
    assert _statuses(results) == [
        ("a", "409"),
        ("x", "201"),
        ("b", "409"),
        ("c", "409"),
        ("d", "409"),
    ]
    assert results[0]["response"]["detail"].startswith(
        "Operations[0] is part of a circular reference that cannot be resolved "
        "(bulkId:a -> bulkId:b -> bulkId:c -> bulkId:a)"
    )
    assert "(bulkId:c -> bulkId:a -> bulkId:b -> bulkId:c)" in results[3]["response"]["detail"]
    assert results[4]["response"] == {
        "schemas": [ERROR_SCHEMA],
        "status": "409",
        "detail": 'Operations[4] refers to "bulkId:a", but Operations[0], which has that bulkId, '
        "failed",
    }
    assert "location" not in results[0]


async def test_an_operation_referring_to_itself_is_a_circle() -> None:
    results, recorder = await _run(_request(_group("a", "a")))
    assert recorder.calls == []
    assert "(bulkId:a -> bulkId:a)" in results[0]["response"]["detail"]
    assert results[0]["status"] == "409"


async def test_circles_that_are_not_a_single_loop_name_their_bulk_ids() -> None:
    results, recorder = await _run(
        _request(_group("a", "b", "c"), _group("b", "a"), _group("c", "a"))
    )
    assert recorder.calls == []
    for result in results:
        assert result["status"] == "409"
        assert (
            "these bulkIds refer to one another: bulkId:a, bulkId:b, bulkId:c"
            in (result["response"]["detail"])
        )


async def test_a_long_circle_is_named_in_part() -> None:
    count = 1000
    ops = [_group(f"g{n}", f"g{(n + 1) % count}") for n in range(count)]
    results, recorder = await _run(_request(*ops))
    assert recorder.calls == []
    detail = results[0]["response"]["detail"]
    names = " -> ".join(f"bulkId:g{n}" for n in range(10))
    assert f"({names} -> ... -> bulkId:g0, a circle of 1000 operations)" in detail


async def test_unknown_bulk_id_is_refused_without_running() -> None:
    body = _request(
        _group("team", "ghost"),
        _patch("/Groups/bulkId:nobody", {"op": "remove", "path": "members"}),
        {"method": "DELETE", "path": "/Users/u-1", "data": {"ignored": "bulkId:ghost"}},
    )
    results, recorder = await _run(body)
    assert recorder.order == [2]
    assert results[0] == {
        "method": "POST",
        "bulkId": "team",
        "status": "400",
        "response": {
            "schemas": [ERROR_SCHEMA],
            "status": "400",
            "scimType": "invalidValue",
            "detail": 'Operations[0] refers to "bulkId:ghost", but no operation of this request '
            "has that bulkId",
        },
    }
    assert results[1]["status"] == "400"
    assert "location" not in results[1]


async def test_a_failed_operation_fails_those_referring_to_it() -> None:
    recorder = Recorder({0: UniquenessError("userName alice is already in use")})
    body = _request(
        _user("alice"),
        _group("team", "alice"),
        _patch("/Groups/bulkId:team", {"op": "add", "path": "members", "value": []}),
        {
            "method": "PUT",
            "path": "/Groups/g-5",
            "data": {"displayName": "x", "members": [{"value": "bulkId:alice"}]},
        },
        _user("bob"),
    )
    results, _ = await _run(body, recorder)
    assert recorder.order == [0, 4]
    assert _statuses(results) == [
        ("alice", "409"),
        ("team", "409"),
        (None, "409"),
        (None, "409"),
        ("bob", "201"),
    ]
    assert results[0]["response"]["scimType"] == "uniqueness"
    assert results[2]["response"]["detail"] == (
        'Operations[2] refers to "bulkId:team", but Operations[1], which has that bulkId, failed'
    )
    # The PUT's path names a resource, so its result has a location.
    assert results[3]["location"] == f"{BASE}/Groups/g-5"


async def test_a_success_without_an_id_fails_those_referring_to_it() -> None:
    recorder = Recorder({0: Outcome(201)})
    results, _ = await _run(_request(_user("alice"), _group("team", "alice")), recorder)
    assert recorder.order == [0]
    assert results[1]["response"]["detail"].endswith("which has that bulkId, gave no resource id")


async def test_fail_on_errors_stops_after_that_many_errors() -> None:
    recorder = Recorder({1: NotFoundError("no"), 3: NotFoundError("no")})
    body = _request(
        *({"method": "DELETE", "path": f"/Users/u{n}", "bulkId": f"d{n}"} for n in range(6)),
        failOnErrors=2,
    )
    results, _ = await _run(body, recorder)
    assert recorder.order == [0, 1, 2, 3]
    assert _statuses(results) == [("d0", "204"), ("d1", "404"), ("d2", "204"), ("d3", "404")]


async def test_fail_on_errors_counts_refused_operations() -> None:
    body = _request(_group("team", "ghost"), _user("a"), _user("b"), failOnErrors=1)
    results, recorder = await _run(body)
    assert recorder.calls == []
    assert _statuses(results) == [("team", "400")]


async def test_fail_on_errors_with_deferred_operations_lists_in_request_order() -> None:
    recorder = Recorder({2: InvalidValueError("bad")})
    body = _request(_group("team", "alice"), _user("bob"), _user("alice"), failOnErrors=2)
    results, _ = await _run(body, recorder)
    # bob runs, alice fails, then team is refused because alice failed: two errors.
    assert recorder.order == [1, 2]
    assert _statuses(results) == [("team", "409"), ("bob", "201"), ("alice", "400")]


async def test_errors_without_a_body_get_one_and_failed_posts_no_location() -> None:
    recorder = Recorder({0: Outcome(500, location=f"{BASE}/Users/x"), 1: Outcome(412)})
    body = _request(_user("a"), {"method": "DELETE", "path": "/Users/u-1"})
    results, _ = await _run(body, recorder)
    assert results == [
        {
            "method": "POST",
            "bulkId": "a",
            "status": "500",
            "response": {"schemas": [ERROR_SCHEMA], "status": "500"},
        },
        {
            "method": "DELETE",
            "location": f"{BASE}/Users/u-1",
            "status": "412",
            "response": {"schemas": [ERROR_SCHEMA], "status": "412"},
        },
    ]


async def test_without_locate_only_the_outcome_location_is_given() -> None:
    request = parse_bulk_request(
        _request({"method": "DELETE", "path": "/Users/u-1"}, _user("a")), max_operations=2
    )
    recorder = Recorder({0: Outcome(204), 1: Outcome(201, "u-2", f"{BASE}/Users/u-2", 'W/"1"')})
    results = await run_bulk(request, recorder)
    assert results == [
        {"method": "DELETE", "status": "204"},
        {
            "method": "POST",
            "bulkId": "a",
            "location": f"{BASE}/Users/u-2",
            "version": 'W/"1"',
            "status": "201",
        },
    ]


async def test_other_exceptions_from_execute_propagate() -> None:
    async def broken(op: BulkOperation) -> Outcome:
        raise RuntimeError("bug")

    request = parse_bulk_request(_request(_user("a")), max_operations=1)
    with pytest.raises(RuntimeError):
        await run_bulk(request, broken)


async def test_a_thousand_operations_with_references() -> None:
    # 500 users, then 500 groups each naming one user: every reference is a backward one, and
    # in reverse, every reference is a forward one. Both complete in one pass.
    users = [_user(f"u{n}") for n in range(500)]
    groups = [_group(f"g{n}", f"u{n}") for n in range(500)]
    for ops, first_group in ((users + groups, 500), (groups + users, 0)):
        results, recorder = await _run(_request(*ops))
        assert len(recorder.calls) == 1000
        assert [r["status"] for r in results] == ["201"] * 1000
        group_calls = [op for op in recorder.calls if op.resource_type_endpoint == "Groups"]
        assert group_calls[0].data["members"] == [{"value": f"id-{500 - first_group}"}]


def test_bulk_response_wraps_the_results() -> None:
    result = {"method": "DELETE", "status": "204"}
    assert bulk_response([result]) == {"schemas": [BULK_RESPONSE], "Operations": [result]}
    assert bulk_response([]) == {"schemas": [BULK_RESPONSE], "Operations": []}


# --- batches ---------------------------------------------------------------------------------


class BatchRecorder(Recorder):
    """A Recorder that also performs batches (each operation as `__call__` would)."""

    def __init__(self, answers: Mapping[int, Outcome | ScimError] | None = None) -> None:
        super().__init__(answers)
        self.batches: list[list[int]] = []

    async def many(self, ops: list[BulkOperation]) -> list[Outcome]:
        self.batches.append([op.index for op in ops])
        outcomes = []
        for op in ops:
            try:
                outcomes.append(await self(op))
            except ScimError as exc:
                outcomes.append(Outcome(status=exc.status, error=exc.to_json()))
        return outcomes


async def _run_batched(
    body: dict[str, Any], recorder: BatchRecorder, batch_size: int = 500
) -> list[dict[str, Any]]:
    return await run_bulk(
        parse_bulk_request(body, max_operations=1000),
        recorder,
        locate=locate,
        execute_many=recorder.many,
        batchable=lambda op: op.method == "POST" and op.resource_type_endpoint == "Users",
        batch_size=batch_size,
    )


async def test_batches_give_the_results_of_one_by_one() -> None:
    body = _request(
        _user("a"),
        _user("b"),
        _group("g", "a", "d"),  # refers to a user created after it
        _user("c"),
        _user("d"),
        _patch("/Users/bulkId:a", {"op": "add", "path": "title", "value": "x"}),
        _user("e"),
    )
    failing = {3: UniquenessError("userName c is taken")}
    one_by_one, _ = await _run(body, Recorder(failing))
    batched = BatchRecorder(failing)
    results = await _run_batched(body, batched, batch_size=3)
    assert results == one_by_one
    # Ready creates without references go together. The group waits for "d" and the PATCH
    # for "a"; once "a" exists the PATCH is ready before "e", so "e" is a batch of its own.
    assert batched.batches == [[0, 1, 3], [4], [6]]
    assert batched.order.index(2) > batched.order.index(4)


async def test_fail_on_errors_runs_one_by_one() -> None:
    batched = BatchRecorder({1: UniquenessError("taken")})
    body = _request(_user("a"), _user("b"), _user("c"), failOnErrors=1)
    results = await _run_batched(body, batched)
    assert batched.batches == []
    assert _statuses(results) == [("a", "201"), ("b", "409")]
