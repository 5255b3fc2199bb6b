"""Users over HTTP on real Postgres: CRUD, uniqueness, ETags, projection, errors."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import Scim, TenantAccess, table_snapshot, user

VECTORS = Path(__file__).parent / "vectors"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def vector(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VECTORS / name).read_text())
    return data


async def test_create_full_rfc_user_round_trips(scim: Scim) -> None:
    body = vector("rfc7643/8.3-enterprise-user.json")["resource"]
    body = {k: v for k, v in body.items() if k not in ("id", "meta")}
    body["password"] = "t1meMa$heen"
    status, created, resp = await scim.post("/Users", body)
    assert status == 201, created
    assert resp.headers["Location"] == created["meta"]["location"]
    assert resp.headers["ETag"] == created["meta"]["version"] == 'W/"1"'
    assert resp.content_type == "application/scim+json"
    assert (
        created["meta"]["location"] == f"http://scim.test{scim.access.base}/Users/{created['id']}"
    )
    assert created["meta"]["resourceType"] == "User"
    assert "password" not in created
    assert created["userName"] == body["userName"]
    assert created["name"]["familyName"] == body["name"]["familyName"]
    assert created[ENTERPRISE]["employeeNumber"] == body[ENTERPRISE]["employeeNumber"]
    assert created[ENTERPRISE]["manager"]["value"] == body[ENTERPRISE]["manager"]["value"]
    status, fetched, _ = await scim.get(f"/Users/{created['id']}")
    assert status == 200
    assert fetched == created


async def test_user_name_is_unique_case_insensitively(scim: Scim) -> None:
    status, _, _ = await scim.post("/Users", user("Jane.Doe@corp.example"))
    assert status == 201
    status, error, _ = await scim.post("/Users", user("jane.doe@CORP.example"))
    assert status == 409
    assert error == {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
        "status": "409",
        "scimType": "uniqueness",
        "detail": error["detail"],
    }
    assert "jane.doe@CORP.example" in error["detail"]


async def test_fifty_concurrent_creates_of_one_user_name(scim: Scim) -> None:
    results = await asyncio.gather(
        *(scim.post("/Users", user("race@corp.example")) for _ in range(50))
    )
    statuses = sorted(status for status, _, _ in results)
    assert statuses.count(201) == 1
    assert statuses.count(409) == 49
    _, listing, _ = await scim.get("/Users", params={"filter": 'userName eq "race@corp.example"'})
    assert listing["totalResults"] == 1


async def test_put_replaces_and_bumps_version(scim: Scim) -> None:
    _, created, _ = await scim.post(
        "/Users", user("put@corp.example", title="Engineer", nickName="P")
    )
    body = user("put@corp.example", title="Manager")
    status, updated, resp = await scim.put(f"/Users/{created['id']}", body)
    assert status == 200, updated
    assert updated["title"] == "Manager"
    assert "nickName" not in updated  # PUT replaces: what is not sent is cleared
    assert updated["meta"]["version"] == 'W/"2"' == resp.headers["ETag"]
    assert updated["meta"]["created"] == created["meta"]["created"]


async def test_if_match_mismatch_is_412_and_changes_nothing(
    scim: Scim, engine: AsyncEngine, tenant: TenantAccess
) -> None:
    _, created, _ = await scim.post("/Users", user("etag@corp.example"))
    before = await table_snapshot(engine, tenant.tenant.id)
    status, error, _ = await scim.put(
        f"/Users/{created['id']}",
        user("etag@corp.example", title="x"),
        headers={"If-Match": 'W/"7"'},
    )
    assert status == 412 and error["status"] == "412"
    status, _, _ = await scim.delete(f"/Users/{created['id']}", headers={"If-Match": 'W/"7"'})
    assert status == 412
    assert await table_snapshot(engine, tenant.tenant.id) == before
    status, _, _ = await scim.put(
        f"/Users/{created['id']}", user("etag@corp.example"), headers={"If-Match": 'W/"1"'}
    )
    assert status == 200


async def test_if_none_match_gives_304(scim: Scim) -> None:
    _, created, _ = await scim.post("/Users", user("cached@corp.example"))
    status, _, resp = await scim.request(
        "GET", f"/Users/{created['id']}", headers={"If-None-Match": created["meta"]["version"]}
    )
    assert status == 304 or resp.status == 304


async def test_delete_then_404(scim: Scim) -> None:
    _, created, _ = await scim.post("/Users", user("gone@corp.example"))
    status, _, _ = await scim.delete(f"/Users/{created['id']}")
    assert status == 204
    status, error, _ = await scim.get(f"/Users/{created['id']}")
    assert status == 404 and error["status"] == "404"
    status, _, _ = await scim.delete(f"/Users/{created['id']}")
    assert status == 404


async def test_attributes_and_excluded_attributes_on_reads_and_writes(scim: Scim) -> None:
    body = user("proj@corp.example", title="T", name={"givenName": "Pro", "familyName": "Jection"})
    status, created, _ = await scim.post("/Users", body, params={"attributes": "name.givenName"})
    assert status == 201
    assert created["name"] == {"givenName": "Pro"}
    assert "title" not in created and "userName" not in created
    assert created["id"]
    _, fetched, _ = await scim.get(
        f"/Users/{created['id']}", params={"excludedAttributes": "title,meta"}
    )
    assert "title" not in fetched and "meta" not in fetched
    assert fetched["userName"] == "proj@corp.example"


async def test_readonly_input_is_ignored(scim: Scim) -> None:
    body = user("ro@corp.example", id="forged", groups=[{"value": "x"}], meta={"version": "x"})
    status, created, _ = await scim.post("/Users", body)
    assert status == 201
    assert created["id"] != "forged"
    assert "groups" not in created
    assert created["meta"]["version"] == 'W/"1"'


async def test_list_paging_is_exact(scim: Scim) -> None:
    for i in range(7):
        await scim.post("/Users", user(f"page{i}@corp.example"))
    status, page, _ = await scim.get("/Users", params={"startIndex": "3", "count": "2"})
    assert status == 200
    assert (page["totalResults"], page["startIndex"], page["itemsPerPage"]) == (7, 3, 2)
    assert len(page["Resources"]) == 2
    _, last, _ = await scim.get("/Users", params={"startIndex": "6", "count": "5"})
    assert last["itemsPerPage"] == 2
    _, past, _ = await scim.get("/Users", params={"startIndex": "50"})
    assert past["totalResults"] == 7 and past["itemsPerPage"] == 0 and past["Resources"] == []
    _, counted, _ = await scim.get("/Users", params={"count": "0"})
    assert counted["totalResults"] == 7 and counted["Resources"] == []
    # Pages in a row cover every user once: the order is stable.
    seen: list[str] = []
    for start in (1, 4, 7):
        _, p, _ = await scim.get("/Users", params={"startIndex": str(start), "count": "3"})
        seen += [r["id"] for r in p["Resources"]]
    assert len(seen) == len(set(seen)) == 7


async def test_sort_by_and_order(scim: Scim) -> None:
    for name in ("carol", "Alice", "bob"):
        await scim.post("/Users", user(f"{name}@corp.example"))
    _, asc, _ = await scim.get("/Users", params={"sortBy": "userName"})
    assert [r["userName"] for r in asc["Resources"]] == [
        "Alice@corp.example",
        "bob@corp.example",
        "carol@corp.example",
    ]
    _, desc, _ = await scim.get("/Users", params={"sortBy": "USERNAME", "sortOrder": "descending"})
    assert desc["Resources"][0]["userName"] == "carol@corp.example"


async def test_filters_run_on_the_database(scim: Scim) -> None:
    await scim.post(
        "/Users",
        user(
            "f1@corp.example",
            title="Engineer",
            emails=[{"value": "F1@Corp.Example", "type": "work", "primary": True}],
            **{ENTERPRISE: {"department": "Finance"}},
        ),
    )
    await scim.post(
        "/Users", user("f2@corp.example", emails=[{"value": "f2@home.example", "type": "home"}])
    )
    cases = {
        'userName eq "F1@CORP.EXAMPLE"': ["f1@corp.example"],
        'emails[value eq "f1@corp.example"]': ["f1@corp.example"],
        'emails.value eq "f2@home.example"': ["f2@corp.example"],
        'emails[type eq "work" and value co "corp"]': ["f1@corp.example"],
        f'{ENTERPRISE}:department eq "finance"': ["f1@corp.example"],
        "title pr": ["f1@corp.example"],
        "not (title pr)": ["f2@corp.example"],
        'userName sw "f" and not (emails.type eq "work")': ["f2@corp.example"],
        'meta.created gt "2000-01-01T00:00:00Z"': ["f1@corp.example", "f2@corp.example"],
        "active eq true": ["f1@corp.example", "f2@corp.example"],
    }
    for text, expected in cases.items():
        status, page, _ = await scim.get("/Users", params={"filter": text, "sortBy": "userName"})
        assert status == 200, (text, page)
        assert [r["userName"] for r in page["Resources"]] == expected, text


async def test_search_with_post(scim: Scim) -> None:
    await scim.post("/Users", user("searched@corp.example"))
    body = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
        "filter": 'userName eq "searched@corp.example"',
        "attributes": ["userName"],
    }
    status, page, _ = await scim.post("/Users/.search", body)
    assert status == 200, page
    assert page["totalResults"] == 1
    assert set(page["Resources"][0]) == {"schemas", "id", "userName"}
    status, root, _ = await scim.post("/.search", body)
    assert status == 200 and root["totalResults"] == 1


async def test_bad_requests_are_scim_errors_and_change_nothing(
    scim: Scim, engine: AsyncEngine, tenant: TenantAccess
) -> None:
    await scim.post("/Users", user("keep@corp.example"))
    before = await table_snapshot(engine, tenant.tenant.id)
    cases: list[tuple[str, str, Any, int, str | None]] = [
        ("POST", "/Users", {"userName": "x"}, 400, "invalidValue"),  # no schemas
        ("POST", "/Users", user(""), 400, "invalidValue"),
        ("POST", "/Users", user("x", active="yes"), 400, "invalidValue"),
        ("POST", "/Users", user("keep@corp.example"), 409, "uniqueness"),
        ("POST", "/Users", [1, 2], 400, "invalidSyntax"),
        ("GET", "/Users?filter=userName%20eq", None, 400, "invalidFilter"),
        ("GET", "/Users?filter=userName%20zz%20%22x%22", None, 400, "invalidFilter"),
        ("GET", "/Users?filter=nosuch%20eq%20%22x%22", None, 400, "invalidFilter"),
        ("GET", "/Users?count=many", None, 400, "invalidValue"),
        ("GET", "/Users?filter=" + "(" * 40 + "title pr" + ")" * 40, None, 400, "invalidFilter"),
        ("PUT", "/Users/00000000-0000-0000-0000-000000000000", user("y"), 404, None),
    ]
    for method, path, body, status, scim_type in cases:
        got, error, _ = await scim.request(method, path, body)
        assert got == status, (method, path, error)
        assert error["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
        assert error["status"] == str(status)
        assert error.get("scimType") == scim_type, (path, error)
        assert error["detail"]
    assert await table_snapshot(engine, tenant.tenant.id) == before


async def test_invalid_filter_names_the_column(scim: Scim) -> None:
    status, error, _ = await scim.get("/Users", params={"filter": 'userName eq "x" and'})
    assert status == 400 and error["scimType"] == "invalidFilter"
    assert "column" in error["detail"]


async def test_http_level_errors_are_scim_shaped(scim: Scim) -> None:
    client, access = scim.client, scim.access
    resp = await client.get(access.base + "/Nope", headers=access.headers)
    assert resp.status == 404 and (await resp.json(content_type=None))["status"] == "404"
    resp = await client.patch(access.base + "/ServiceProviderConfig", headers=access.headers)
    assert resp.status == 405 and (await resp.json(content_type=None))["status"] == "405"
    resp = await client.post(
        access.base + "/Users",
        data="userName=x",
        headers={**access.headers, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert resp.status == 415 and (await resp.json(content_type=None))["status"] == "415"
    resp = await client.post(
        access.base + "/Users", data=io.BytesIO(b"{" * 2_000_000), headers=access.headers
    )
    assert resp.status == 413 and (await resp.json(content_type=None))["status"] == "413"
    resp = await client.post(access.base + "/Users", data=b"{not json", headers=access.headers)
    assert (
        resp.status == 400 and (await resp.json(content_type=None))["scimType"] == "invalidSyntax"
    )


async def test_plain_json_content_type_is_accepted(scim: Scim) -> None:
    status, _, _ = await scim.post(
        "/Users", user("plain@corp.example"), headers={"Content-Type": "application/json"}
    )
    assert status == 201


async def test_authentication_is_required(scim: Scim) -> None:
    client, access = scim.client, scim.access
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}):
        resp = await client.get(access.base + "/Users", headers=headers)
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        body = await resp.json(content_type=None)
        assert body["status"] == "401"
        assert access.token not in json.dumps(body)


async def test_total_results_stay_exact_through_creates_and_deletes(scim: Scim) -> None:
    created = await asyncio.gather(
        *(scim.post("/Users", user(f"n{i}@corp.example")) for i in range(40))
    )
    for _, body, _ in created[:15]:
        assert (await scim.delete(f"/Users/{body['id']}"))[0] == 204
    await scim.post("/Users", user("n0@corp.example"))  # re-create a deleted userName
    _, page, _ = await scim.get("/Users", params={"count": "0"})
    _, filtered, _ = await scim.get("/Users", params={"filter": 'userName sw "n"', "count": "0"})
    assert page["totalResults"] == filtered["totalResults"] == 26


async def test_user_name_lookup_pages_like_any_filter(scim: Scim) -> None:
    await scim.post("/Users", user("Lookup@corp.example"))
    for name in ("lookup@CORP.example", "urn:ietf:params:scim:schemas:core:2.0:User:userName"):
        text = f'userName eq "{name}"' if "@" in name else f'{name} eq "LOOKUP@corp.example"'
        _, page, _ = await scim.get("/Users", params={"filter": text})
        assert [r["userName"] for r in page["Resources"]] == ["Lookup@corp.example"], text
    cases = {("2", "10"): (1, 0), ("1", "0"): (1, 0), ("1", "5"): (1, 1)}
    for (start, count), (total, items) in cases.items():
        _, page, _ = await scim.get(
            "/Users",
            params={
                "filter": 'userName eq "lookup@corp.example"',
                "startIndex": start,
                "count": count,
            },
        )
        assert (page["totalResults"], page["itemsPerPage"]) == (total, items), (start, count)
    _, none, _ = await scim.get("/Users", params={"filter": 'userName eq "nobody@corp.example"'})
    assert (none["totalResults"], none["Resources"]) == (0, [])
