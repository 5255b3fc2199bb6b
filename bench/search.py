"""`python -m bench.search`: the administration API's user search over many users.

A run creates a database `idgate_bench_<random>`, migrates it, and loads --users users into one
tenant and a tenth as many again over 20 other tenants: server-side `INSERT ... SELECT` over
`generate_series`, rows shaped as storage/scim_store.py writes them (skewed first and last
names, userName `first.last<n>@<tenant domain>`, a work e-mail, a third of users with a second
one). The users indexes are dropped for the load and built again after it; the triggers are off
(resource_counts is filled afterwards, as migration 0002 would).

Then it times `storage.user_search.search_users`, one query at a time and the classes mixed,
for fragments of names and of e-mail local parts, full e-mails, 1-2 character queries, id
prefixes, strings that match nothing, fragments every user has ("example", "com"), the first
page with no query, and second pages through a cursor. It prints per class n, p50, p95, p99
and max in ms, the rows per page and the plans taken; the load and index build times; the
size of the table and of each index; and, for a class over its p99 target, the slowest query
again with each statement under EXPLAIN ANALYZE. The database is dropped at the end (--keep
keeps it; --reuse URL measures a kept one again). The record goes to
bench/results/search-<time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import asyncpg
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bench import database, report
from storage import migrate
from storage.database import autocommit, create_engine
from storage.scim_store import ScimStore
from storage.user_search import cursor_of, search_users

RESULTS = Path(__file__).parent / "results"
TARGET_P99_MS = 50.0
PAGE = 50
OTHER_TENANTS = 20
BIG_DOMAIN = "northwind.example.com"
HOME_DOMAIN = "mail.example.org"
CREATED_BY = "scim:tok_bench"

GIVEN = (
    "James", "Mary", "John", "Patricia", "Robert", "Jennifer", "Michael", "Linda", "William",
    "Elizabeth", "David", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah",
    "Charles", "Karen", "Christopher", "Nancy", "Daniel", "Lisa", "Matthew", "Betty", "Anthony",
    "Margaret", "Mark", "Sandra", "Donald", "Ashley", "Steven", "Kimberly", "Paul", "Emily",
    "Andrew", "Donna", "Joshua", "Michelle", "Kenneth", "Dorothy", "Kevin", "Carol", "Brian",
    "Amanda", "George", "Melissa", "Edward", "Deborah", "Ronald", "Stephanie", "Timothy",
    "Rebecca", "Jason", "Sharon", "Jeffrey", "Laura", "Ryan", "Cynthia", "Jacob", "Kathleen",
    "Gary", "Amy", "Nicholas", "Shirley", "Eric", "Angela", "Jonathan", "Helen", "Stephen",
    "Anna", "Larry", "Brenda", "Justin", "Pamela", "Scott", "Nicole", "Brandon", "Emma",
    "Benjamin", "Samantha", "Samuel", "Katherine", "Gregory", "Christine", "Frank", "Debra",
    "Alexander", "Rachel", "Raymond", "Catherine", "Patrick", "Carolyn", "Jack", "Janet",
    "Dennis", "Ruth", "Jerry", "Maria", "José", "Zoë", "Søren", "François", "Jürgen", "Łukasz",
    "Ólafur", "Chloé", "Björn", "Renée", "Ngọc", "Siobhán", "Dmitri", "Aiko", "Wei", "Priya",
    "Oluwaseun", "Mohammed", "Fatima", "Yusuf",
)  # fmt: skip
FAMILY = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor",
    "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez",
    "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright",
    "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green", "Adams", "Nelson", "Baker", "Hall",
    "Rivera", "Campbell", "Mitchell", "Carter", "Roberts", "Gomez", "Phillips", "Evans", "Turner",
    "Diaz", "Parker", "Cruz", "Edwards", "Collins", "Reyes", "Stewart", "Morris", "Morales",
    "Murphy", "Cook", "Rogers", "Gutierrez", "Ortiz", "Morgan", "Cooper", "Peterson", "Bailey",
    "Reed", "Kelly", "Howard", "Ramos", "Kim", "Cox", "Ward", "Richardson", "Watson", "Brooks",
    "Chavez", "Wood", "James", "Bennett", "Gray", "Mendoza", "Ruiz", "Hughes", "Price", "Alvarez",
    "Castillo", "Sanders", "Patel", "Myers", "Long", "Ross", "Foster", "Jimenez", "Powell",
    "Jenkins", "Perry", "Russell", "Sullivan", "Bell", "Coleman", "Butler", "Henderson", "Barnes",
    "Gonzales", "Fisher", "Vasquez", "Simmons", "Romero", "Jordan", "Patterson", "Alexander",
    "Hamilton", "Graham", "Reynolds", "Griffin", "Wallace", "Moreno", "West", "Cole", "Hayes",
    "Bryant", "Herrera", "Gibson", "Ellis", "Tran", "Medina", "Aguilar", "Stevens", "Murray",
    "Ford", "Castro", "Marshall", "Owens", "Harrison", "Fernandez", "McDonald", "Woods",
    "Washington", "Kennedy", "Wells", "Vargas", "Henry", "Chen", "Freeman", "Webb", "Tucker",
    "Guzman", "Burns", "Crawford", "Olson", "Simpson", "Porter", "Hunter", "Gordon", "Mendez",
    "Silva", "Shaw", "Snyder", "Mason", "Dixon", "Muñoz", "Hunt", "Hicks", "Holmes", "Palmer",
    "Wagner", "Black", "Robertson", "Boyd", "Rose", "Stone", "Salazar", "Fox", "Warren", "Mills",
    "Meyer", "Rice", "Schmidt", "Garza", "Daniels", "Ferguson", "Nichols", "Stephens", "Soto",
    "Weaver", "Ryan", "Gardner", "Payne", "Grant", "Dunn", "Müller", "Østergaard", "Nováková",
    "Kowalczyk", "Şahin", "Đorđević", "Yamamoto", "Okonkwo", "Van der Berg", "O'Brien", "Lefèvre",
    "Björklund", "Papadopoulos",
)  # fmt: skip
# The e-mail form of a name: accents off, spaces and apostrophes out.
_FOLD = {"á": "a", "à": "a", "â": "a", "ä": "a", "ã": "a", "å": "a", "ç": "c", "ć": "c",
         "é": "e", "è": "e", "ê": "e", "ë": "e", "í": "i", "ì": "i", "î": "i", "ï": "i",
         "ñ": "n", "ó": "o", "ò": "o", "ô": "o", "ö": "o", "õ": "o", "ø": "o", "ọ": "o",
         "ú": "u", "ù": "u", "û": "u", "ü": "u", "ý": "y", "ÿ": "y", "ł": "l", "ş": "s",
         "đ": "d"}  # fmt: skip
FOLD_FROM = "".join(_FOLD) + "' "
FOLD_TO = "".join(_FOLD.values())

COMMON = ("example", "com", ".com", "example.com", "exampl", "xample", "northwind", "@north",
          "orthwin", "mail.example", "org")  # fmt: skip

# One tenant's users; $1 tenant, $2 how many, $3 e-mail domain, $4 first names, $5 last
# names, $6 FOLD_FROM, $7 FOLD_TO, $8 created_by. Names are drawn with a skew (the first of
# each list about 7% of users, the last 0.2%), as real names are.
LOAD = """
INSERT INTO users (id, tenant_id, user_name, external_id, display_name, active, data,
                   version, created_at, updated_at, created_by)
SELECT id, $1, user_name, external_id, given || ' ' || family, active,
       jsonb_build_object(
         'schemas', jsonb_build_array('urn:ietf:params:scim:schemas:core:2.0:User'),
         'userName', user_name, 'externalId', external_id,
         'name', jsonb_build_object('formatted', given || ' ' || family,
                                    'givenName', given, 'familyName', family),
         'displayName', given || ' ' || family, 'active', active,
         'emails', CASE WHEN i % 3 = 0
           THEN jsonb_build_array(
                  jsonb_build_object('value', user_name, 'type', 'work', 'primary', true),
                  jsonb_build_object('value', left(g, 1) || f || (i % 97) || '@mail.example.org',
                                     'type', 'home'))
           ELSE jsonb_build_array(
                  jsonb_build_object('value', user_name, 'type', 'work', 'primary', true))
           END),
       1, now, now, $8
FROM (
  SELECT i, id, external_id, given, family, g, f, active, now,
         g || '.' || f || i || '@' || $3 AS user_name
  FROM (
    SELECT i, id, external_id, given, family, i % 33 <> 0 AS active, now(),
           translate(lower(given), $6, $7) AS g, translate(lower(family), $6, $7) AS f
    FROM (
      SELECT i, gen_random_uuid() AS id, gen_random_uuid()::text AS external_id,
             ($4::text[])[1 + floor(cardinality($4::text[]) * power(random(), 2))::int]
               AS given,
             ($5::text[])[1 + floor(cardinality($5::text[]) * power(random(), 2))::int]
               AS family
      FROM generate_series(1, $2) AS i
    ) AS drawn
  ) AS named
) AS built
"""

NAME = "name fragment, 3-6 chars"
LOCAL = "e-mail local part fragment, 3-6"
EMAIL = "full e-mail"
SHORT = "1-2 chars"
ID_PREFIX = "id prefix, 8 hex"
NO_MATCH = "no match"
COMMON_FRAGMENT = "common fragment"
FIRST = "first page, no query"
SECOND = "2nd page, no query"
SECOND_NAME = "2nd page, name fragment"
CLASSES = (NAME, LOCAL, EMAIL, SHORT, ID_PREFIX, NO_MATCH, COMMON_FRAGMENT, FIRST, SECOND,
           SECOND_NAME)  # fmt: skip


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


@dataclass
class Loaded:
    url: str
    tenant_id: uuid.UUID
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Task:
    kind: str
    q: str
    after: str | None = None


@dataclass
class Timing:
    ms: float
    rows: int
    plan: str
    trace: list[str]


def main() -> None:
    args = _parser().parse_args()
    stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
    url = args.reuse or asyncio.run(database.create_database(args.database_url))
    log(f"database {url}")
    try:
        record = asyncio.run(_run(args, url))
    finally:
        if not (args.keep or args.reuse):
            asyncio.run(database.drop_database(args.database_url, url))
            log("database dropped")
    record["command"] = " ".join([Path(sys.executable).name, "-m", "bench.search", *sys.argv[1:]])
    output = RESULTS / f"search-{stamp}.json"
    report.write(record, output)
    print(f"\nresults: {output}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.search", description=__doc__)
    parser.add_argument("--users", type=int, default=1_000_000, help="in the big tenant")
    parser.add_argument("--queries", type=int, default=2000, help="timed searches (2000)")
    parser.add_argument("--seed", type=int, default=1, help="of the queries drawn (1)")
    parser.add_argument(
        "--database-url",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="a server where the run may create and drop a database",
    )
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument("--reuse", metavar="URL", help="measure a database a run kept")
    return parser


async def _run(args: argparse.Namespace, url: str) -> dict[str, Any]:
    if args.reuse:
        loaded = Loaded(url, await _big_tenant(url))
    else:
        loaded = await _load(url, args.users)
    engine = create_engine(url, pool_size=1)
    try:
        tasks = await _tasks(engine, loaded.tenant_id, args.queries, random.Random(args.seed))
        log(f"{len(tasks)} searches")
        timings = await _measure(engine, loaded.tenant_id, tasks)
        sizes = await _sizes(engine)
        slow = await _explain_slowest(engine, loaded.tenant_id, timings)
    finally:
        await engine.dispose()
    return _report(loaded, timings, sizes, slow, args)


# --- the load ---------------------------------------------------------------------------


async def _load(url: str, users: int) -> Loaded:
    await migrate.upgrade(url)
    engine = create_engine(url, pool_size=1)
    try:
        store = ScimStore(engine)
        now = datetime.now(UTC)
        big = await store.create_tenant("big", "Northwind", now)
        others = [await store.create_tenant(f"t{k}", f"Tenant {k}", now) for k in range(20)]
    finally:
        await engine.dispose()
    loaded = Loaded(url, big.id)
    conn = await asyncpg.connect(database.plain_url(url))
    try:
        await conn.execute("SET maintenance_work_mem = '1GB'")
        definitions = await _drop_indexes(conn)
        await conn.execute("ALTER TABLE users DISABLE TRIGGER USER")
        started = time.perf_counter()
        await _insert(conn, big.id, users, BIG_DOMAIN)
        for k, tenant in enumerate(others):
            await _insert(conn, tenant.id, users // 10 // OTHER_TENANTS, f"t{k}.example.com")
        loaded.seconds["insert"] = time.perf_counter() - started
        log(f"inserted {users + users // 10:,} users in {loaded.seconds['insert']:.1f} s")
        await conn.execute("ALTER TABLE users ENABLE TRIGGER USER")
        await conn.execute(
            "INSERT INTO resource_counts (tenant_id, kind, slot, n) "
            "SELECT tenant_id, 'User', hashtext(id::text) & 15, count(*) FROM users "
            "GROUP BY 1, 2, 3"
        )
        for name, definition in definitions:
            started = time.perf_counter()
            await conn.execute(definition)
            loaded.seconds[name] = time.perf_counter() - started
            log(f"built {name} in {loaded.seconds[name]:.1f} s")
        started = time.perf_counter()
        await conn.execute("VACUUM (ANALYZE) users")
        await conn.execute("CHECKPOINT")
        loaded.seconds["vacuum"] = time.perf_counter() - started
    finally:
        await conn.close()
    return loaded


async def _drop_indexes(conn: asyncpg.Connection) -> list[tuple[str, str]]:
    """The users indexes but the primary key, dropped; their definitions, to build again."""
    rows = await conn.fetch(
        "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i "
        "JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE i.indrelid = 'users'::regclass AND NOT i.indisprimary ORDER BY c.relname"
    )
    for row in rows:
        await conn.execute(f'DROP INDEX "{row[0]}"')
    return [(row[0], row[1]) for row in rows]


async def _insert(conn: asyncpg.Connection, tenant_id: uuid.UUID, count: int, domain: str) -> None:
    await conn.execute(
        LOAD, tenant_id, count, domain, list(GIVEN), list(FAMILY), FOLD_FROM, FOLD_TO, CREATED_BY
    )


async def _big_tenant(url: str) -> uuid.UUID:
    conn = await asyncpg.connect(database.plain_url(url))
    try:
        return cast(uuid.UUID, await conn.fetchval("SELECT id FROM tenants WHERE slug = 'big'"))
    finally:
        await conn.close()


# --- the searches -----------------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    id: uuid.UUID
    user_name: str
    given: str
    family: str
    emails: list[str]


async def _people(engine: AsyncEngine, tenant_id: uuid.UUID) -> list[Person]:
    """Some thousands of the big tenant's users, to draw queries from."""
    async with autocommit(engine).connect() as conn:
        raw = await conn.get_raw_connection()
        pg = cast(asyncpg.Connection, raw.driver_connection)
        rows = await pg.fetch(
            "SELECT id, user_name, data #>> '{name,givenName}', data #>> '{name,familyName}', "
            "ARRAY(SELECT e ->> 'value' FROM jsonb_array_elements(data -> 'emails') e) "
            "FROM users TABLESAMPLE SYSTEM (1) REPEATABLE (1) WHERE tenant_id = $1",
            tenant_id,
        )
    return [Person(r[0], r[1], r[2], r[3], list(r[4])) for r in rows]


def _fragment(rng: random.Random, text: str, shortest: int, longest: int) -> str:
    size = min(len(text), rng.randint(shortest, longest))
    start = rng.randrange(len(text) - size + 1)
    return text[start : start + size]


def _typed(rng: random.Random, text: str) -> str:
    """As people type it: as written, or all in lower case."""
    return text if rng.random() < 0.5 else text.lower()


def _draw(kind: str, rng: random.Random, people: list[Person]) -> str:
    person = rng.choice(people)
    name = rng.choice((person.given, person.family))
    local = rng.choice(person.emails).split("@")[0]
    if kind == NAME:
        return _typed(rng, _fragment(rng, name, 3, 6))
    if kind == LOCAL:
        return _fragment(rng, local, 3, 6)
    if kind == EMAIL:
        email = rng.choice(person.emails)
        return email.upper() if rng.random() < 0.3 else email
    if kind == SHORT:
        return _typed(rng, _fragment(rng, rng.choice((name, local)), 1, 2))
    if kind == ID_PREFIX:
        return str(person.id)[:8]
    if kind == NO_MATCH:
        return "".join(rng.choice("qxzjvkw") for _ in range(6))
    if kind == COMMON_FRAGMENT:
        return rng.choice(COMMON)
    return ""


async def _tasks(
    engine: AsyncEngine, tenant_id: uuid.UUID, count: int, rng: random.Random
) -> list[Task]:
    people = await _people(engine, tenant_id)
    first = await search_users(engine, tenant_id, "", None, PAGE)
    listing_cursor = cursor_of(first[-1].user_name, first[-1].id)
    tasks: list[Task] = []
    for n in range(count):
        kind = CLASSES[n % len(CLASSES)]
        if kind == SECOND:
            tasks.append(Task(kind, "", listing_cursor))
        elif kind == SECOND_NAME:
            tasks.append(await _second_page(engine, tenant_id, rng, people))
        else:
            tasks.append(Task(kind, _draw(kind, rng, people)))
    rng.shuffle(tasks)
    return tasks


async def _second_page(
    engine: AsyncEngine, tenant_id: uuid.UUID, rng: random.Random, people: list[Person]
) -> Task:
    """A name fragment with a full first page, and the cursor of its second page."""
    while True:
        q = _draw(NAME, rng, people)
        page = await search_users(engine, tenant_id, q, None, PAGE)
        if len(page) == PAGE:
            return Task(SECOND_NAME, q, cursor_of(page[-1].user_name, page[-1].id))


async def _measure(engine: AsyncEngine, tenant_id: uuid.UUID, tasks: list[Task]) -> list[Any]:
    """Each task once, in order, after a warm-up on a tenth of them."""
    for task in tasks[: len(tasks) // 10]:
        await search_users(engine, tenant_id, task.q, task.after, PAGE)
    timings = []
    for task in tasks:
        trace: list[str] = []
        started = time.perf_counter()
        rows = await search_users(engine, tenant_id, task.q, task.after, PAGE, trace=trace)
        ms = (time.perf_counter() - started) * 1000
        timings.append((task, Timing(ms, len(rows), _plan_of(trace), trace)))
    return timings


def _plan_of(trace: list[str]) -> str:
    """The way a search went, from its trace: list (no query), first (the first walk
    sufficed), probe (the small GIN probe did), or the sampled plan: walk or gin, +runs,
    +fallback when the other way had to finish, or "short walk" when the walk tried before
    a dear GIN way did."""
    steps = [step.split("=")[0] for step in trace]
    plan = next((s for s in steps if s.startswith("plan:")), None)
    if plan is None:
        if steps and steps[0].startswith("page"):
            return "list"
        return "probe" if any(s.startswith("gin:") for s in steps) else "first"
    _, way, runs, _budget, tried = plan.split(":")
    after = [s for s in steps[steps.index(plan) + 1 :] if s.startswith(("walk:", "gin:"))]
    if tried != "0":
        if len(after) == 1:
            return f"short walk{'+runs' if runs != '0' else ''}"
        after = after[1:]
    other = "gin:" if way == "walk" else "walk:"
    fallback = "+fallback" if any(s.startswith(other) for s in after) else ""
    return f"{way}{'+runs' if runs != '0' else ''}{fallback}"


# --- evidence ---------------------------------------------------------------------------


class _Explaining:
    """A connection for search_users that runs each statement under EXPLAIN ANALYZE first."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self.plans: list[str] = []

    async def execute(self, statement: Any) -> Any:
        compiled = statement.compile(
            dialect=postgresql.asyncpg.dialect(),  # type: ignore[no-untyped-call]
            compile_kwargs={"render_postcompile": True},
        )
        params = compiled.construct_params()
        positional = tuple(params[name] for name in compiled.positiontup or ())
        explained = await self.conn.exec_driver_sql(
            "EXPLAIN (ANALYZE, BUFFERS) " + str(compiled), positional
        )
        self.plans.append("\n".join(row[0] for row in explained))
        return await self.conn.execute(statement)


async def _explain_slowest(
    engine: AsyncEngine, tenant_id: uuid.UUID, timings: list[Any]
) -> dict[str, Any]:
    """For each class over target: its slowest search again, each statement explained."""
    out: dict[str, Any] = {}
    for kind in CLASSES:
        mine = [(task, t) for task, t in timings if task.kind == kind]
        if not mine or _percentile([t.ms for _, t in mine], 99) <= TARGET_P99_MS:
            continue
        task, timing = max(mine, key=lambda pair: pair[1].ms)
        async with autocommit(engine).connect() as conn:
            explaining = _Explaining(conn)
            trace: list[str] = []
            await search_users(
                cast(AsyncConnection, explaining), tenant_id, task.q, task.after, PAGE, trace=trace
            )
        out[kind] = {"q": task.q, "ms": timing.ms, "trace": trace, "plans": explaining.plans}
    return out


async def _sizes(engine: AsyncEngine) -> dict[str, int]:
    async with autocommit(engine).connect() as conn:
        raw = await conn.get_raw_connection()
        pg = cast(asyncpg.Connection, raw.driver_connection)
        rows = await pg.fetch(
            "SELECT 'users (heap)', pg_relation_size('users') UNION ALL "
            "SELECT c.relname, pg_relation_size(c.oid) FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = 'users'::regclass"
        )
    return {r[0]: r[1] for r in rows}


# --- the report -------------------------------------------------------------------------


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def _class_row(kind: str, mine: list[Timing]) -> list[str]:
    ms = [t.ms for t in mine]
    rows = [t.rows for t in mine]
    plans = Counter(t.plan for t in mine)
    p99 = _percentile(ms, 99)
    return [
        kind,
        str(len(mine)),
        f"{statistics.median(ms):.1f}",
        f"{_percentile(ms, 95):.1f}",
        f"{p99:.1f}",
        f"{max(ms):.1f}",
        f"{min(rows)}/{statistics.mean(rows):.0f}/{max(rows)}",
        ", ".join(f"{name} {n}" for name, n in plans.most_common()),
        report.verdict(p99 <= TARGET_P99_MS),
    ]


def _entry(task: Task, timing: Timing) -> dict[str, Any]:
    return {
        "q": task.q,
        "ms": round(timing.ms, 2),
        "rows": timing.rows,
        "plan": timing.plan,
        "trace": timing.trace,
    }


def _report(
    loaded: Loaded,
    timings: list[Any],
    sizes: dict[str, int],
    slow: dict[str, Any],
    args: argparse.Namespace,
) -> dict[str, Any]:
    rows = []
    classes: dict[str, Any] = {}
    for kind in CLASSES:
        mine = [t for task, t in timings if task.kind == kind]
        if not mine:
            continue
        rows.append(_class_row(kind, mine))
        classes[kind] = [_entry(task, t) for task, t in timings if task.kind == kind]
    headers = ["class", "n", "p50 ms", "p95 ms", "p99 ms", "max ms", "rows min/avg/max",
               "plans", f"p99 <= {TARGET_P99_MS:g}"]  # fmt: skip
    print("\n" + report.table(headers, rows))
    print("\nslowest per class (steps and their times):")
    for kind in CLASSES:
        mine = sorted((t for task, t in timings if task.kind == kind), key=lambda t: -t.ms)
        for t in mine[:3]:
            q = next(task.q for task, other in timings if other is t)
            print(f"  {kind}: {t.ms:.1f} ms q={q!r} " + " ".join(t.trace))
    if loaded.seconds:
        print("\nload: " + ", ".join(f"{k} {v:.1f} s" for k, v in loaded.seconds.items()))
    print("\nsizes:")
    for name, size in sorted(sizes.items(), key=lambda item: -item[1]):
        print(f"  {name:32} {size / 2**20:8.1f} MiB")
    for kind, evidence in slow.items():
        print(f"\n{kind}: slowest {evidence['ms']:.1f} ms, q={evidence['q']!r}")
        print("  steps: " + " ".join(evidence["trace"]))
        for plan in evidence["plans"]:
            for line in plan.splitlines():
                print("  " + (line if len(line) <= 160 else line[:157] + "..."))
    return {
        "users": args.users,
        "queries": len(timings),
        "load_seconds": loaded.seconds,
        "sizes": sizes,
        "classes": classes,
        "slowest": slow,
    }


if __name__ == "__main__":
    main()
