"""User search (storage/user_search.py, migration 0016) on real PostgreSQL: substrings of the
names and e-mails, id prefixes, case, LIKE characters, tenants, keyset pages, updates, and
every way `search_users` can take giving the same rows as a plain reading of the data."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Boolean, literal_column, select
from sqlalchemy.ext.asyncio import AsyncEngine

from storage import user_search
from storage.scim_store import ScimStore
from storage.tables import users
from storage.user_search import (
    after_cursor,
    cursor_of,
    decode_cursor,
    id_range,
    matching,
    ordering,
    search_users,
)
from tests.conftest import TenantAccess

USER = "urn:ietf:params:scim:schemas:core:2.0:User"

PEOPLE = [
    # userName, displayName, givenName, familyName, e-mails
    ("mary.smith@corp.example", "Mary Smith", "Mary", "Smith", ["mary.smith@corp.example"]),
    ("mary.jones@corp.example", "Mary Jones", "Mary", "Jones", ["mj@home.example"]),
    ("mary.brown@corp.example", "Mary Brown", "Mary", "Brown", []),
    ("maryanne.lee@corp.example", "Maryanne Lee", "Maryanne", "Lee", []),
    ("ann.rosemary@corp.example", "Ann Rosemary", "Ann", "Rosemary", []),
    ("jennifer.adams@corp.example", "Jennifer Adams", "Jennifer", "Adams", []),
    ("jennifer.zhang@corp.example", "Jennifer Zhang", "Jennifer", "Zhang", []),
    ("j.smithson@corp.example", "Jo Smithson", "Jo", "Smithson", ["jo@smithson.example"]),
    ("p.hopper@corp.example", "Grace Hopper", "Grace", "Hopper", ["admiral@navy.example"]),
    ("e12345", "Zoë Ølsen", "Zoë", "Ølsen", ["zoe@corp.example"]),
    ("jose@corp.example", "José Núñez", "José", "Núñez", ["jnunez@corp.example"]),
    ("percent@corp.example", "100% Sure", "Sure", "Percent", []),
    ("under@corp.example", "Snake Case", "Snake", "Under_score", []),
    ("slash@corp.example", "Back Slash", "Back", "Sla\\sh", []),
    ("quote@corp.example", "O'Brien", "Pat", "O'Brien", []),
    ("tab@corp.example", "Tab Only", "Tab", "Only", ["TAB@CORP.EXAMPLE"]),
    ("AdaL@corp.example", "Ada LOVELACE", "Ada", "Lovelace", ["ada@analytical.example"]),
    ("x", "X", None, None, []),
]


def resource(
    user_name: str, display: str, given: str | None, family: str | None, emails: list[str]
) -> dict[str, Any]:
    body: dict[str, Any] = {"schemas": [USER], "userName": user_name, "displayName": display}
    name = {k: v for k, v in (("givenName", given), ("familyName", family)) if v}
    if name:
        body["name"] = name
    if emails:
        body["emails"] = [
            {"value": e, "type": "work", "primary": i == 0} for i, e in enumerate(emails)
        ]
    return body


async def create_people(store: ScimStore, tenant_id: uuid.UUID) -> dict[str, dict[str, Any]]:
    """userName -> the created user, with its `fields` (what a search looks in)."""
    made = {}
    for user_name, display, given, family, emails in PEOPLE:
        created = await store.create_user(
            tenant_id, resource(user_name, display, given, family, emails), None, _now()
        )
        created["fields"] = [f for f in (user_name, display, given, family, *emails) if f]
        made[user_name] = created
    return made


def _now() -> datetime:
    return datetime.now(UTC)


def _order(user: dict[str, Any]) -> tuple[bytes, bytes]:
    """The search order as the database keeps it: lower(userName) byte by byte, then id."""
    return user["userName"].lower().encode(), uuid.UUID(user["id"]).bytes


def expected(people: dict[str, dict[str, Any]], q: str) -> list[str]:
    """The userNames that match q, in search order: a plain reading of the rule."""
    needle = q.strip().lower()
    ids = id_range(q)
    hits = [
        u
        for u in people.values()
        if any(needle in f.lower() for f in u["fields"])
        or (ids is not None and ids[0] <= uuid.UUID(u["id"]) <= ids[1])
    ]
    return [u["userName"] for u in sorted(hits, key=_order)]


async def names(engine: AsyncEngine, tenant_id: uuid.UUID, q: str, **kw: Any) -> list[str]:
    return [hit.user_name for hit in await search_users(engine, tenant_id, q, **kw)]


async def all_pages(
    engine: AsyncEngine, tenant_id: uuid.UUID, q: str, size: int
) -> list[uuid.UUID]:
    seen: list[uuid.UUID] = []
    after = None
    while True:
        page = await search_users(engine, tenant_id, q, after, size)
        seen += [hit.id for hit in page]
        if len(page) < size:
            return seen
        after = cursor_of(page[-1].user_name, page[-1].id)


@pytest.fixture
async def people(store: ScimStore, tenant: TenantAccess) -> dict[str, dict[str, Any]]:
    return await create_people(store, tenant.tenant.id)


async def test_substrings_of_every_searched_field(
    engine: AsyncEngine, tenant: TenantAccess, people: dict[str, dict[str, Any]]
) -> None:
    tid = tenant.tenant.id
    assert await names(engine, tid, "hopper") == ["p.hopper@corp.example"]  # userName
    assert await names(engine, tid, "grace h") == ["p.hopper@corp.example"]  # displayName
    assert await names(engine, tid, "navy") == ["p.hopper@corp.example"]  # the only e-mail
    assert await names(engine, tid, "home.exam") == ["mary.jones@corp.example"]  # 2nd e-mail
    assert await names(engine, tid, "lsen") == ["e12345"]  # familyName, not in userName
    assert await names(engine, tid, "smithson") == ["j.smithson@corp.example"]
    assert await names(engine, tid, "mary") == expected(people, "mary")
    assert len(await names(engine, tid, "mary")) == 5  # 3 userNames, Maryanne, Rosemary


async def test_case_does_not_matter(
    engine: AsyncEngine, tenant: TenantAccess, people: dict[str, dict[str, Any]]
) -> None:
    tid = tenant.tenant.id
    assert await names(engine, tid, "LOVELACE") == ["AdaL@corp.example"]
    assert await names(engine, tid, "lovelace") == ["AdaL@corp.example"]
    assert await names(engine, tid, "adal@") == ["AdaL@corp.example"]
    assert await names(engine, tid, "tab@corp") == ["tab@corp.example"]
    assert await names(engine, tid, "  Grace Hopper ") == ["p.hopper@corp.example"]
    assert await names(engine, tid, "josé") == ["jose@corp.example"]  # as written


async def test_case_of_accented_letters(
    engine: AsyncEngine, tenant: TenantAccess, people: dict[str, dict[str, Any]]
) -> None:
    async with engine.connect() as conn:
        folds = (await conn.exec_driver_sql("SELECT lower('ÑÉ') = 'ñé'")).scalar()
    if not folds:
        pytest.skip("the database's ctype does not lower-case beyond ASCII")
    assert await names(engine, tenant.tenant.id, "NÚÑEZ") == ["jose@corp.example"]
    assert await names(engine, tenant.tenant.id, "zoË") == ["e12345"]


@pytest.mark.parametrize(
    "q", ["z", "Ø", "é", "%", "x", "zh", "ñe", "y.", "ar", "on@", "mar", "ary", "smi", "e1"]
)
async def test_short_and_three_letter_queries(
    engine: AsyncEngine, tenant: TenantAccess, people: dict[str, dict[str, Any]], q: str
) -> None:
    found = await names(engine, tenant.tenant.id, q)
    assert found == expected(people, q)
    assert found  # each of them matches someone


async def test_one_letter_at_the_end_of_a_field(
    engine: AsyncEngine, tenant: TenantAccess, people: dict[str, dict[str, Any]]
) -> None:
    # "X" is a whole userName and displayName: a one-character field.
    assert "x" in await names(engine, tenant.tenant.id, "x")
    assert await names(engine, tenant.tenant.id, "e12345") == ["e12345"]


async def test_id_exact_and_prefix(
    engine: AsyncEngine, tenant: TenantAccess, people: dict[str, dict[str, Any]]
) -> None:
    tid = tenant.tenant.id
    user = people["p.hopper@corp.example"]
    full = user["id"]
    assert await names(engine, tid, full) == ["p.hopper@corp.example"]
    assert await names(engine, tid, full.upper()) == ["p.hopper@corp.example"]
    assert await names(engine, tid, full.replace("-", "")) == ["p.hopper@corp.example"]
    assert "p.hopper@corp.example" in await names(engine, tid, full[:8])
    assert "p.hopper@corp.example" in await names(engine, tid, full[:13])
    assert await names(engine, tid, full[:8]) == expected(people, full[:8])
    # Three hex digits are too few to be taken for an id; dashes must sit where an id's do.
    assert id_range(full[:3]) is None
    assert id_range(full[:4]) is not None
    assert id_range("abcd-ef01") is None
    assert id_range("abcdef01-23") is not None


async def test_like_characters_match_themselves(
    engine: AsyncEngine, tenant: TenantAccess, people: dict[str, dict[str, Any]]
) -> None:
    tid = tenant.tenant.id
    assert await names(engine, tid, "%") == ["percent@corp.example"]
    assert await names(engine, tid, "0% s") == ["percent@corp.example"]
    assert await names(engine, tid, "_") == ["under@corp.example"]
    assert await names(engine, tid, "r_s") == ["under@corp.example"]
    assert await names(engine, tid, "\\") == ["slash@corp.example"]
    assert await names(engine, tid, "a\\s") == ["slash@corp.example"]
    assert await names(engine, tid, "o'b") == ["quote@corp.example"]
    assert await names(engine, tid, "%%") == []
    assert await names(engine, tid, "a_b") == []


async def test_no_match_and_line_ends(
    engine: AsyncEngine, tenant: TenantAccess, people: dict[str, dict[str, Any]]
) -> None:
    tid = tenant.tenant.id
    assert await names(engine, tid, "qqqzzz") == []
    # Fields are kept one a line: a query never matches across two of them.
    assert await names(engine, tid, "smith\nmary") == []
    assert await names(engine, tid, "example\nmary smith") == []


async def test_another_tenants_users_never_appear(
    engine: AsyncEngine,
    store: ScimStore,
    tenant: TenantAccess,
    other_tenant: TenantAccess,
    people: dict[str, dict[str, Any]],
) -> None:
    theirs = await create_people(store, other_tenant.tenant.id)
    mine = {uuid.UUID(u["id"]) for u in people.values()}
    for q in ("mary", "m", "corp.example", "", theirs["mary.smith@corp.example"]["id"][:8]):
        hits = await search_users(engine, tenant.tenant.id, q, limit=100)
        assert {hit.id for hit in hits} <= mine
    other_id = theirs["p.hopper@corp.example"]["id"]
    assert await names(engine, tenant.tenant.id, other_id) == []
    assert await names(engine, other_tenant.tenant.id, other_id) == ["p.hopper@corp.example"]


async def test_pages_walk_every_match_once_in_order(
    engine: AsyncEngine, tenant: TenantAccess, people: dict[str, dict[str, Any]]
) -> None:
    tid = tenant.tenant.id
    by_id = {uuid.UUID(u["id"]): u["userName"] for u in people.values()}
    for q, size in (("", 4), ("corp", 3), ("a", 2), ("mary", 1), ("e", 5)):
        walked = await all_pages(engine, tid, q, size)
        assert len(walked) == len(set(walked))
        assert [by_id[i] for i in walked] == expected(people, q)
    assert len(await all_pages(engine, tid, "", 4)) == len(PEOPLE)


async def test_a_page_shows_the_primary_email_and_active(
    engine: AsyncEngine, tenant: TenantAccess, people: dict[str, dict[str, Any]]
) -> None:
    [hit] = await search_users(engine, tenant.tenant.id, "navy")
    assert hit.id == uuid.UUID(people["p.hopper@corp.example"]["id"])
    assert hit.display_name == "Grace Hopper"
    assert hit.email == "admiral@navy.example"
    assert hit.active is True
    [none] = await search_users(engine, tenant.tenant.id, "snake")
    assert none.email is None


async def test_an_updated_user_is_found_by_the_new_name_only(
    engine: AsyncEngine,
    store: ScimStore,
    tenant: TenantAccess,
    people: dict[str, dict[str, Any]],
) -> None:
    tid = tenant.tenant.id
    user = people["p.hopper@corp.example"]

    async def rename(current: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
        body = resource("p.hopper@corp.example", "Grace Brewster", "Grace", "Brewster", [])
        return body, None

    await store.replace_user(tid, user["id"], rename, None, _now())
    assert await names(engine, tid, "brewster") == ["p.hopper@corp.example"]
    assert await names(engine, tid, "hopper") == ["p.hopper@corp.example"]  # the userName
    assert await names(engine, tid, "navy") == []  # the e-mail is gone
    assert await names(engine, tid, "grace h") == []


async def test_cursors(
    engine: AsyncEngine, tenant: TenantAccess, people: dict[str, dict[str, Any]]
) -> None:
    user = people["mary.jones@corp.example"]
    cursor = cursor_of(user["userName"], user["id"])
    assert decode_cursor(cursor) == ("mary.jones@corp.example", uuid.UUID(user["id"]))
    bad = ["x", "bm90IGpzb24", cursor_of("a", "b").upper(), "W10", "WzEsMl0", "A" * 5000]
    for text in bad:
        with pytest.raises(ValueError):
            decode_cursor(text)
        with pytest.raises(ValueError):
            after_cursor(text)
        with pytest.raises(ValueError):
            await search_users(engine, tenant.tenant.id, "mary", text)
    with pytest.raises(ValueError):
        decode_cursor("")
    mary = expected(people, "mary")
    after = await names(engine, tenant.tenant.id, "mary", after=cursor)
    assert after == mary[mary.index("mary.jones@corp.example") + 1 :]
    assert len(after) == 2


async def test_matching_as_one_condition(
    engine: AsyncEngine, tenant: TenantAccess, people: dict[str, dict[str, Any]]
) -> None:
    """The condition the administration API adds to its own query, with its own order."""
    tid = tenant.tenant.id
    hopper = people["p.hopper@corp.example"]["id"]
    for q in ("mary", "M", "%", "navy", hopper[:8], "", "nobody"):
        query = (
            select(users.c.user_name)
            .where(users.c.tenant_id == tid, matching(q, tid))
            .order_by(*ordering())
        )
        async with engine.connect() as conn:
            found = list((await conn.execute(query)).scalars())
        assert found == expected(people, q)
    cursor = cursor_of("mary.jones@corp.example", people["mary.jones@corp.example"]["id"])
    query = (
        select(users.c.user_name)
        .where(users.c.tenant_id == tid, matching("mary", tid), after_cursor(cursor))
        .order_by(*ordering())
    )
    mary = expected(people, "mary")
    async with engine.connect() as conn:
        found = list((await conn.execute(query)).scalars())
    assert found == mary[mary.index("mary.jones@corp.example") + 1 :]


# Every way search_users may go, forced, must give the same rows. (On a small tenant it
# would otherwise read the whole tenant in its first walk.)
@pytest.mark.parametrize(
    ("walk", "budget", "then_walk", "with_runs"),
    [
        (True, 10_000, True, False),  # walk
        (True, 1, False, False),  # walk, over budget at once: GIN
        (True, 1, True, False),  # walk, over budget at once: walk to the end
        (False, 10_000, True, False),  # GIN
        (False, 1, True, False),  # GIN, over budget: walk
        (True, 10_000, True, True),  # runs, and walk between them
        (True, 1, False, True),
        (False, 10_000, True, True),  # runs, and GIN outside them
        (False, 1, True, True),
    ],
)
async def test_every_plan_gives_the_same_rows(
    engine: AsyncEngine,
    tenant: TenantAccess,
    people: dict[str, dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    walk: bool,
    budget: int,
    then_walk: bool,
    with_runs: bool,
) -> None:
    tid = tenant.tenant.id
    sort_keys = [name.lower() for name in people]
    taken: list[list[str]] = []

    def plan(sample: Any, q: str, limit: int) -> Any:
        runs = user_search._runs([k for k in sort_keys if q in k], q) if with_runs else []
        taken.append(runs)
        return user_search._Plan(runs, walk, budget, then_walk)

    monkeypatch.setattr(user_search, "FIRST_WALK", 1)
    monkeypatch.setattr(user_search, "PROBE", 0)
    monkeypatch.setattr(user_search, "RUN_MIN", 1)
    monkeypatch.setattr(user_search, "_plan", plan)
    by_id = {uuid.UUID(u["id"]): u["userName"] for u in people.values()}
    for q in ("mary", "ar", "jennifer", "smith", "corp", "m", "nobody", "ñ"):
        assert await names(engine, tid, q) == expected(people, q), q
        walked = await all_pages(engine, tid, q, 2)
        assert [by_id[i] for i in walked] == expected(people, q), q
    assert taken
    assert any(taken) == with_runs  # runs were read on their own when asked for


async def test_the_sampled_plan_on_a_larger_tenant(
    engine: AsyncEngine,
    store: ScimStore,
    tenant: TenantAccess,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """3,000 users, more than a first walk reads: rare texts end at the GIN probe, others
    are planned from users_search_sample_idx."""
    tid = tenant.tenant.id
    first = ["mary", "jennifer", "ann", "bob", "zed"]
    items = []
    for i in range(3000):
        given = first[i % 7 % 5]
        user_name = f"{given}.person{i}@corp.example"
        body = resource(user_name, f"{given.title()} Person{i}", given.title(), f"Person{i}", [])
        items.append((body, None))
    created = await store.create_users(tid, items, _now())
    people = {
        c["userName"]: {
            **c,
            "fields": [c["userName"], c["displayName"], *c["name"].values()],
        }
        for c in created
        if c is not None
    }
    assert len(people) == 3000
    steps: list[str] = []
    for q in ("mary", "zed", "person12", "zed.person2", "n.person", "son29", "e", "qq"):
        trace: list[str] = []
        hits = await search_users(engine, tid, q, trace=trace)
        steps += trace
        assert [h.user_name for h in hits] == expected(people, q)[:50], q
        walked = await all_pages(engine, tid, q, 50)
        assert len(walked) == len(expected(people, q)), q
    assert any(step.startswith("gin:") for step in steps)  # the probe
    assert any(step.startswith("plan:") for step in steps)  # the sample

    # A walk with a budget stops at a sampled place (every user sampled and a place here),
    # then the plan's other way finishes the page: the same rows either way.
    monkeypatch.setattr(user_search, "SAMPLED", literal_column("true", Boolean))
    for then_walk in (False, True):
        monkeypatch.setattr(user_search, "STOP_EVERY", 1)
        monkeypatch.setattr(user_search, "PROBE", 0)
        forced = user_search._Plan([], True, 1, then_walk)
        monkeypatch.setattr(user_search, "_plan", lambda *_args, plan=forced: plan)
        for q in ("zed", "son29", "y.person1"):  # not within the first walk
            trace = []
            hits = await search_users(engine, tid, q, trace=trace)
            assert [h.user_name for h in hits] == expected(people, q)[:50], q
            assert any(step.startswith("walk:stop") for step in trace), trace
            assert any(step.startswith("gin" if not then_walk else "walk:end") for step in trace)


def test_a_walks_budget_becomes_a_sampled_place() -> None:
    stops = [(f"k{i}", uuid.UUID(int=i)) for i in range(3)]
    sample = user_search._Sample(12, [], [], stops)
    every = user_search.STOP_EVERY * user_search.SAMPLE_RATE  # rows between two stops
    assert sample.stop_after(1) == stops[0]
    assert sample.stop_after(every) == stops[0]
    assert sample.stop_after(every + 1) == stops[1]
    assert sample.stop_after(3 * every) == stops[2]
    assert sample.stop_after(3 * every + 1) is None  # past the sample's end: to the end
    assert user_search._Sample(0, [], [], []).stop_after(1) is None
