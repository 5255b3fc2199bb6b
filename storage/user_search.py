"""Searching a tenant's users by part of their id, name or e-mail (migration 0016).

The order is `search_sort, id` (lower(userName) compared byte by byte, then the id); pages are
keyset pages after an opaque cursor. A search text q matches a user when lower(q) is a
substring of `search_text` (userName, displayName, name parts, every e-mail value; one a line),
or when q is the start of the user's id (4 hex digits or more, with the dashes or without).

Two ways find the matches, and neither is good alone:
- walking `users_search_order_idx` in order, keeping the rows whose search_text contains q,
  reads the index alone (about a microsecond a row) but every row before the page's last
  match: 50 rows for "example", the whole tenant for a rare name;
- the GIN index `users_search_keys_idx` gives the candidates at once, but sorting them costs a
  heap visit each: fine for a few hundred, not for the 40,000 users called Mary.
And a userName order puts matches in runs (every "mary.*" together), so that how many match
does not say where the page's rows are.

So `search_users` goes, for a search text, step by step, each step only if the one before
did not finish the page:
1. a walk of the first FIRST_WALK rows (dense matches; small tenants end here);
2. a GIN probe sorting at most PROBE candidates, unless the statistics of the index say the
   search's rarest lexeme is common (few matches: no match, an e-mail, an id);
3. the tenant's fixed sample (one user in 512, in order, `users_search_sample_idx`, read in a
   few milliseconds): where the first matches are and which runs of the order hold many
   ("mary", "jennifer": the search_sort prefixes that end where q does, and for matches in a
   name or e-mail only, a first letter most of them share); the runs are read from the btree
   on their own, and for the rest (the GIN way leaves the runs out with a `!` on their prefix
   lexemes) `_plan` estimates walking and sorting GIN candidates, takes the cheaper with a
   budget, and goes on the other way when that runs out. The sample also counts the GIN
   candidates (sampled users with the query's lexemes, q or not), and gives the places a
   walk stops at: a walk's budget is a place in the order, so that it counts no rows (a
   window function over the rows read would double its cost). A GIN candidate's cost is
   what this process's GIN reads took lately (its heap page cached or not: 2 to 30 µs).
A last statement takes the page from what the steps found, the runs and the id matches.

`matching` is the whole search as one condition, for a query that adds conditions of its own
and leaves the plan to PostgreSQL; `ordering`, `cursor_of` and `after_cursor` give such a
query the same order and pages.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import (
    ARRAY,
    Boolean,
    ColumnElement,
    FromClause,
    Select,
    Text,
    Uuid,
    and_,
    case,
    cast,
    collate,
    false,
    func,
    literal,
    literal_column,
    or_,
    select,
    text,
    true,
    tuple_,
    type_coerce,
    union,
)
from sqlalchemy.dialects.postgresql import TSQUERY, aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from storage.database import autocommit
from storage.tables import users

SORT_CHARS = 128  # search_sort keeps this many characters of lower(userName) (migration 0016)
REGION_BYTES = 8  # the longest search_sort prefix with a GIN lexeme of its own
ID_DIGITS_MIN = 4  # a shorter hex string is not taken for the start of an id
CURSOR_MAX = 4096  # characters; a longer cursor is refused before decoding

# The steps of a search (see the module's docstring and _plan). Costs are per row, in
# microseconds, as measured on 1,000,000 users (bench/search.py).
SAMPLED = literal_column("left(md5(users.id::text), 3) < '008'", Boolean)  # 0016's predicate
SAMPLE_RATE = 512  # one user in SAMPLE_RATE is in users_search_sample_idx
FIRST_WALK = 1_000  # rows read in order before anything else (dense matches, small tenants)
PROBE = 200  # GIN candidates sorted at most before the sample is read
SAMPLE_HITS = 300  # sampled matches looked at, at most
STOP_EVERY = 4  # sampled users between two places a walk may stop at
RUN_MIN = 2  # sampled matches, at least, in a run read on its own
RUNS_MAX = 8
LOOSE_SHARE = 0.3  # of the matches whose search_sort lacks q, for a first letter to be a run
WALK_US = 0.5  # a row read in order from users_search_order_idx (index only) and tested
POSTING_US = 0.3  # a GIN posting read into the bitmap
# A GIN candidate read from the heap and sorted: from 2 (its page in shared buffers) to 30
# microseconds (read from the OS), so each process goes by what its GIN reads took lately.
HEAP_US = 5.0  # to start with
HEAP_MEASURED_MIN = 500  # candidates a GIN read must sort for its time to count
HEAP_WEIGHT = 0.2  # of the latest measure in the running figure
STEP_US = 400.0  # a statement more
WALK_MIN = 5_000  # rows a walk may read, at least, before the GIN way is tried instead
GIN_MIN = 2_000  # candidates the GIN way may sort, at least, before a walk is tried
TRY_WALK_US = 100_000.0  # a GIN way dearer than this (two targets) is tried after a walk
SPREAD_HITS = 4  # sampled matches that give the density of matches outside the runs
QUERY_LEXEMES = 3  # lexemes asked of the GIN index, at most: the rarest (as migration 0016)
COMMON_SHARE = 0.2  # a lexeme in more rows than this is asked for only if it is the rarest
STATISTICS_SECONDS = 600.0  # how long the index's lexeme frequencies are kept
LEXEME = re.compile(r"[0-9a-f]{8}t[0-9a-f]+(:\*)?")  # idgate_user_search_lexemes' output


class _HeapCost:
    """What a GIN candidate costs lately, in microseconds, in this process."""

    def __init__(self) -> None:
        self.us = HEAP_US

    def measured(self, seconds: float, candidates: int) -> None:
        if candidates >= HEAP_MEASURED_MIN:
            latest = min(max(seconds * 1e6 / candidates, 0.5), 100.0)
            self.us += HEAP_WEIGHT * (latest - self.us)


_heap = _HeapCost()


@dataclass(frozen=True)
class UserHit:
    id: uuid.UUID
    user_name: str
    display_name: str | None
    email: str | None  # the primary e-mail, else the first
    active: bool


# --- columns and conditions ------------------------------------------------------------


def _column(table: FromClause, name: str) -> ColumnElement[str]:
    """The generated columns of migration 0016 (not in storage.tables: nothing writes them)."""
    return literal_column(f"{table.name}.{name}", Text)  # type: ignore[attr-defined]


def sort_key(table: FromClause = users) -> ColumnElement[str]:
    return _column(table, "search_sort")


def search_text(table: FromClause = users) -> ColumnElement[str]:
    return _column(table, "search_text")


def _keys(table: FromClause) -> ColumnElement[Any]:
    """The indexed expression of users_search_keys_idx, spelled as the index spells it."""
    return func.idgate_user_search_keys(table.c.tenant_id, sort_key(table), search_text(table))


def ordering(table: FromClause = users) -> tuple[ColumnElement[Any], ColumnElement[Any]]:
    """The search order: lower(userName) byte by byte, then the id (unique: a total order)."""
    return sort_key(table), table.c.id


def cursor_of(user_name: str, user_id: uuid.UUID | str) -> str:
    """The opaque cursor of the page that ends with this user."""
    raw = orjson.dumps([user_name, str(user_id)])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, uuid.UUID]:
    """(userName, id) of a cursor from `cursor_of`; ValueError for anything else."""
    if not cursor or len(cursor) > CURSOR_MAX:
        raise ValueError("invalid cursor")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        user_name, user_id = orjson.loads(raw)
        if not isinstance(user_name, str) or not isinstance(user_id, str):
            raise TypeError
        return user_name, uuid.UUID(user_id)
    except (binascii.Error, orjson.JSONDecodeError, TypeError, ValueError):
        raise ValueError("invalid cursor") from None


def _sort_value(user_name: str) -> ColumnElement[str]:
    """search_sort of a userName, computed as the generated column computes it (PostgreSQL's
    lower(), not Python's: they differ on a few characters)."""
    return func.left(func.lower(literal(user_name, Text)), SORT_CHARS)


def after_cursor(cursor: str, table: FromClause = users) -> ColumnElement[bool]:
    """Rows after the cursor's row in the search order. A bad cursor raises ValueError."""
    user_name, user_id = decode_cursor(cursor)
    return _after(table, user_name, user_id)


def _after(table: FromClause, user_name: str, user_id: uuid.UUID) -> ColumnElement[bool]:
    return tuple_(*ordering(table)) > tuple_(_sort_value(user_name), literal(user_id))


def _before(table: FromClause, sort_value: str, user_id: uuid.UUID) -> ColumnElement[bool]:
    """Rows before a place in the order (a search_sort as stored, and an id)."""
    return tuple_(*ordering(table)) < tuple_(
        collate(literal(sort_value, Text), "C"), literal(user_id)
    )


def id_range(q: str) -> tuple[uuid.UUID, uuid.UUID] | None:
    """The ids that start with q, when q is the start of a UUID's text (with its dashes where
    they belong, or none) and has at least ID_DIGITS_MIN hex digits."""
    typed = q.strip().lower()
    digits = typed.replace("-", "")
    if len(digits) < ID_DIGITS_MIN or len(digits) > 32 or "-" in digits:
        return None
    if any(c not in "0123456789abcdef" for c in digits):
        return None
    if "-" in typed and any((c == "-") != (i in (8, 13, 18, 23)) for i, c in enumerate(typed)):
        return None
    low, high = digits.ljust(32, "0"), digits.ljust(32, "f")
    return uuid.UUID(low), uuid.UUID(high)


def _contains(table: FromClause, q: str) -> ColumnElement[bool]:
    """The exact test: lower(q) is a substring of search_text. No LIKE, so % _ \\ are plain."""
    return func.strpos(search_text(table), func.lower(literal(q, Text))) > 0


def _has_windows(table: FromClause, lexemes: Sequence[str]) -> ColumnElement[bool]:
    """Whether search_text holds the bytes of every lexeme (`<tag>t<hex>`, `:*` for a
    prefix): what the GIN query of these lexemes finds, tested on a row at hand."""
    text_bytes = func.convert_to(search_text(table), "UTF8")
    tests = [
        func.pg_catalog.position(text_bytes, literal(bytes.fromhex(x[9:].removesuffix(":*")))) > 0
        for x in lexemes
    ]
    return and_(*tests) if tests else false()


def _gin(table: FromClause, query: ColumnElement[Any]) -> ColumnElement[bool]:
    return _keys(table).bool_op("@@")(query)


def matching(q: str, tenant_id: uuid.UUID, table: FromClause = users) -> ColumnElement[bool]:
    """The whole search as one condition (tenant_id must be filtered on as well): for queries
    that add conditions of their own. True for an empty q."""
    q = q.strip()
    if not q:
        return true()
    ids = id_range(q)
    by_text: ColumnElement[bool] = false()
    if "\n" not in q:
        query = func.idgate_user_search_query(literal(tenant_id), literal(q, Text))
        by_text = and_(_gin(table, query), _contains(table, q))
    return or_(by_text, table.c.id.between(*ids)) if ids else by_text


# --- search_users ----------------------------------------------------------------------


async def search_users(
    conn_or_engine: AsyncConnection | AsyncEngine,
    tenant_id: uuid.UUID,
    q: str | None,
    after: str | None = None,
    limit: int = 50,
    *,
    trace: list[str] | None = None,
) -> list[UserHit]:
    """The page of `limit` users that match q (all users if q is empty), in search order,
    after the cursor `after` (from `cursor_of` of the previous page's last row; a bad one
    raises ValueError). `trace`, when given, receives the steps taken and their times."""
    if limit < 1:
        return []
    cursor = decode_cursor(after) if after else None
    needle = (q or "").strip()
    if isinstance(conn_or_engine, AsyncEngine):
        async with autocommit(conn_or_engine).connect() as conn:
            return await _Search(conn, tenant_id, needle, cursor, limit, trace).run()
    return await _Search(conn_or_engine, tenant_id, needle, cursor, limit, trace).run()


Key = tuple[str, uuid.UUID]  # (search_sort, id): a row's place in the order
Range = tuple[str | None, str | None]  # search_sort from (inclusive) .. to (exclusive)


@dataclass(frozen=True)
class _Walk:
    hits: list[Key]
    complete: bool  # the rows ended before the walk's budget did
    lexemes: list[str]  # the search's GIN lexemes, when a row came back


@dataclass(frozen=True)
class _Sample:
    """The sampled users after the cursor, in search order: how many, and the place (1 for
    the first) and search_sort of those that match."""

    seen: int
    places: list[int]
    keys: list[str]
    stops: list[Key]  # the place of every STOP_EVERY-th sampled user: where a walk may stop
    candidates: int = 0  # sampled users the GIN query finds (its lexemes, not yet q itself)
    candidate_keys: tuple[str, ...] = ()  # the search_sort of the first SAMPLE_HITS of them

    def stop_after(self, rows: int) -> Key | None:
        """A place in the order about `rows` rows after the cursor (never fewer), where a
        walk with that budget stops; None when the sample ends before it."""
        index = -(-rows // (STOP_EVERY * SAMPLE_RATE)) - 1
        return self.stops[max(index, 0)] if index < len(self.stops) else None


@dataclass(frozen=True)
class _Plan:
    runs: list[str]  # search_sort prefixes read from the btree, each on its own
    walk: bool  # the rest: walk the order (True) or sort the GIN candidates (False)
    budget: int  # rows to walk, or GIN candidates to sort, before going on another way
    then_walk: bool  # over budget: walk to the end (True), or sort every GIN candidate
    try_walk: int = 0  # rows walked first, when the GIN way is dear and the sample unsure


class _Search:
    def __init__(
        self,
        conn: AsyncConnection,
        tenant_id: uuid.UUID,
        q: str,
        cursor: tuple[str, uuid.UUID] | None,
        limit: int,
        trace: list[str] | None,
    ) -> None:
        self.conn = conn
        self.tenant_id = tenant_id
        self.q = q
        self.cursor = cursor
        self.limit = limit
        self.trace = trace
        self.lexemes: list[str] = []
        self.sample = _Sample(0, [], [], [])  # read by _sample, when a search needs it
        self._last = time.perf_counter()

    def _note(self, step: str) -> None:
        if self.trace is None:
            return
        now = time.perf_counter()
        if self.trace:
            self.trace[-1] += f"={(now - self._last) * 1000:.1f}ms"
        self.trace.append(step)
        self._last = now

    def _scope(
        self, *conditions: ColumnElement[bool], bounds: Range = (None, None)
    ) -> list[ColumnElement[bool]]:
        """The tenant, the conditions, search_sort in [low, high), and after the cursor. With
        no lower bound the cursor is a row comparison, where the btree starts; with one, the
        bound is raised to the cursor's search_sort and the rest of the cursor filters (a
        btree starts at one bound, and cannot tell which of a row comparison and a plain
        comparison is the higher)."""
        low, high = bounds
        scoped = [users.c.tenant_id == self.tenant_id, *conditions]
        if high is not None:
            scoped.append(sort_key() < literal(high, Text))
        if low is None:
            if self.cursor is not None:
                scoped.append(_after(users, *self.cursor))
            return scoped
        start: ColumnElement[str] = literal(low, Text)
        if self.cursor is not None:
            user_name, user_id = self.cursor
            start = func.greatest(start, _sort_value(user_name))
            scoped.append(or_(sort_key() > _sort_value(user_name), users.c.id > user_id))
        scoped.append(sort_key() >= start)
        return scoped

    async def run(self) -> list[UserHit]:
        """Known rows and statements that give more (id matches, runs, a whole walk) go to
        one last statement, which takes the page's rows from them in order."""
        found: list[Key] = []
        parts: list[Select[Any]] = []
        ids = id_range(self.q) if self.q else None
        if ids is not None:
            parts.append(self._ordered(users.c.id.between(*ids)))
        if not self.q:
            parts.append(self._ordered())
        elif "\n" not in self.q:  # a line end separates fields: nothing contains one
            found, more = await self._by_text()
            parts += more
        rows = await self._page(found, parts)
        self._note("done")
        return rows

    def _ordered(
        self, *conditions: ColumnElement[bool], bounds: Range = (None, None)
    ) -> Select[Any]:
        """The first `limit` rows after the cursor, in order, that meet the conditions."""
        return (
            select(sort_key().label("k"), users.c.id)
            .where(*self._scope(*conditions, bounds=bounds))
            .order_by(*ordering())
            .limit(self.limit)
        )

    async def _by_text(self) -> tuple[list[Key], list[Select[Any]]]:
        """A short walk (dense matches, small tenants), a small GIN probe (few matches),
        then the plan the sample gives."""
        first = await self._first_walk()
        if first.complete or len(first.hits) >= self.limit:
            return first.hits, []
        self.lexemes, common_rows = await _rarest(self.conn, first.lexemes)
        prefix = any(x.endswith(":*") for x in self.lexemes)  # 1 or 2 bytes: many postings
        if common_rows == 0.0 and not prefix:  # no common lexeme: maybe few matches
            few = await self._remainder([], PROBE)
            if few is not None:
                return few, []
        sample = await self._sample()
        plan = _plan(sample, self.q.lower(), self.limit)
        way = "walk" if plan.walk else "gin"
        self._note(f"plan:{way}:{len(plan.runs)}:{plan.budget}:{plan.try_walk}")
        rest = await self._outside(plan.runs, plan.try_walk) if plan.try_walk else None
        if rest is None:
            rest = await (self._outside if plan.walk else self._remainder)(plan.runs, plan.budget)
        if rest is None:  # over budget: to the end, the cheaper way
            rest = await (self._outside if plan.then_walk else self._remainder)(plan.runs, None)
        assert rest is not None
        return rest, [self._run(prefix) for prefix in plan.runs]

    async def _sample(self) -> _Sample:
        """The tenant's sampled users after the cursor (users_search_sample_idx, index only):
        where the matches are in the order, and how dense. One row: which sampled users
        match, as a string of 0 and 1 in order, and the search_sort of the first matches."""
        self._note("sample")
        sampled = (
            select(
                sort_key().label("k"),
                users.c.id,
                _contains(users, self.q).label("hit"),
                _has_windows(users, self.lexemes).label("candidate"),
                func.row_number().over(order_by=ordering()).label("n"),
            )
            .where(*self._scope(SAMPLED))
            .subquery()
        )
        in_order = (sampled.c.k, sampled.c.id)
        mask = func.string_agg(
            case((sampled.c.hit, "1"), else_="0"), aggregate_order_by(literal(""), *in_order)
        )
        keys = type_coerce(
            func.array_agg(aggregate_order_by(sampled.c.k, *in_order)).filter(sampled.c.hit),
            ARRAY(Text),
        )
        at_stop = sampled.c.n % STOP_EVERY == 0
        stop_keys = type_coerce(
            func.array_agg(aggregate_order_by(sampled.c.k, *in_order)).filter(at_stop), ARRAY(Text)
        )
        stop_ids = type_coerce(
            func.array_agg(aggregate_order_by(sampled.c.id, *in_order)).filter(at_stop), ARRAY(Uuid)
        )
        found = sampled.c.candidate
        candidate_keys = type_coerce(
            func.array_agg(aggregate_order_by(sampled.c.k, *in_order)).filter(found), ARRAY(Text)
        )
        statement = select(
            mask.label("mask"),
            keys[1:SAMPLE_HITS].label("keys"),
            stop_keys.label("stop_keys"),
            stop_ids.label("stop_ids"),
            func.count().filter(found).label("candidates"),
            candidate_keys[1:SAMPLE_HITS].label("candidate_keys"),
        ).select_from(sampled)
        row = (await self.conn.execute(statement)).one()
        mask_text = row.mask or ""
        places = [n + 1 for n, flag in enumerate(mask_text) if flag == "1"][:SAMPLE_HITS]
        stops = list(zip(row.stop_keys or [], row.stop_ids or [], strict=True))
        self.sample = _Sample(
            len(mask_text),
            places,
            list(row.keys or []),
            stops,
            row.candidates,
            tuple(row.candidate_keys or ()),
        )
        return self.sample

    async def _first_walk(self) -> _Walk:
        """The first `limit` matches among the first FIRST_WALK rows in order (from the
        index alone), and the search's lexemes (computed by the database, whose lower() is
        the one that made the index)."""
        self._note(f"walk:{FIRST_WALK}")
        scan = select(
            sort_key().label("k"),
            users.c.id,
            _contains(users, self.q).label("hit"),
            func.row_number().over(order_by=ordering()).label("n"),
        ).where(*self._scope())
        lexemes = func.idgate_user_search_lexemes(literal(self.tenant_id), literal(self.q, Text))
        statement = _matches(scan, FIRST_WALK, self.limit).add_columns(lexemes.label("lexemes"))
        found = list(await self.conn.execute(statement))
        hits = [(r.k, r.id) for r in found if r.hit][: self.limit]
        capped = any(r.n == FIRST_WALK for r in found)
        return _Walk(hits, not capped, list(found[0].lexemes or []) if found else [])

    async def _outside(self, runs: Sequence[str], budget: int | None) -> list[Key] | None:
        """The first `limit` matches outside the runs, walking the ranges between them in
        order; None if that takes more than `budget` rows (the walk stops at the sampled
        place that far from the cursor: no row is counted, the index is read alone)."""
        stop = self.sample.stop_after(budget) if budget is not None else None
        hits: list[Key] = []
        for low, high in _between(runs):
            hits += await self._walk_to((low, high), stop)
            if len(hits) >= self.limit:
                return hits[: self.limit]
            if stop is not None and (high is None or stop[0] < high):
                return None  # stopped inside the range: over budget
        return hits

    async def _walk_to(self, bounds: Range, stop: Key | None) -> list[Key]:
        """The first `limit` matches in `bounds` before `stop` (None: to the range's end)."""
        self._note("walk:end" if stop is None else "walk:stop")
        conditions = [_contains(users, self.q)]
        if stop is not None:
            conditions.append(_before(users, *stop))
        statement = self._ordered(*conditions, bounds=bounds)
        return [(r.k, r.id) for r in await self.conn.execute(statement)]

    async def _remainder(self, runs: Sequence[str], cap: int | None) -> list[Key] | None:
        """The first `limit` matches outside the runs, from the GIN index; None if there are
        more than `cap` of them (too many to sort from the heap)."""
        self._note(f"gin:{cap}")
        query = cast(literal(_tsquery(self.tenant_id, self.lexemes, runs)), TSQUERY)
        # The tenant and the cursor only filter the candidates (IS TRUE: no btree takes
        # them): the statement is prepared once, and a plan made without knowing the tsquery
        # must not walk users_search_order_idx computing the keys row by row instead.
        inner = select(sort_key().label("k"), users.c.id).where(
            _gin(users, query),
            and_(*self._scope(), _contains(users, self.q)).is_(true()),
        )
        if cap is not None:
            inner = inner.limit(cap + 1)
        candidates = inner.subquery()
        statement = (
            select(candidates.c.k, candidates.c.id, func.count().over().label("total"))
            .order_by(candidates.c.k, candidates.c.id)
            .limit(self.limit)
        )
        started = time.perf_counter()
        found = list(await self.conn.execute(statement))
        if found:
            _heap.measured(time.perf_counter() - started, found[0].total)
        if cap is not None and found and found[0].total > cap:
            return None
        return [(r.k, r.id) for r in found]

    def _run(self, prefix: str) -> Select[Any]:
        """The first `limit` matches among the rows whose search_sort starts with `prefix`,
        read in order from the btree."""
        return self._ordered(_contains(users, self.q), bounds=_span(prefix))

    async def _page(self, found: Sequence[Key], parts: Sequence[Select[Any]]) -> list[UserHit]:
        """The first `limit` of `found` and of the parts' rows, with what a page shows."""
        if not found and not parts:
            return []
        self._note(f"page:{len(parts)}")
        known = select(
            collate(func.unnest(literal([k for k, _ in found], ARRAY(Text))), "C").label("k"),
            func.unnest(literal([i for _, i in found], ARRAY(Uuid))).label("id"),
        )
        rows = union(known, *parts).subquery()
        page = select(rows.c.k, rows.c.id).order_by(rows.c.k, rows.c.id).limit(self.limit)
        chosen = page.subquery()
        statement = (
            select(
                users.c.id, users.c.user_name, users.c.display_name, _PRIMARY_EMAIL, users.c.active
            )
            .join_from(users, chosen, chosen.c.id == users.c.id)
            .where(users.c.tenant_id == self.tenant_id)
            .order_by(chosen.c.k, chosen.c.id)
        )
        return [
            UserHit(r.id, r.user_name, r.display_name, r.email, r.active)
            for r in await self.conn.execute(statement)
        ]


def _matches(scan: Select[Any], budget: int, limit: int) -> Select[Any]:
    """The hits among the first `budget` rows of `scan`, at most `limit` of them. The row at
    position `budget` comes back too, hit or not: it tells the walk stopped at its budget,
    not at the rows' end."""
    inner = scan.order_by(*ordering()).limit(budget).subquery()
    return (
        select(inner.c.k, inner.c.id, inner.c.hit, inner.c.n)
        .where(or_(inner.c.hit, inner.c.n == budget))
        .order_by(inner.c.k, inner.c.id)
        .limit(limit + 1)
    )


def _plan(sample: _Sample, q: str, limit: int) -> _Plan:
    """The cheapest of four ways by the sample: walk the order, or sort the GIN candidates;
    either for every match, or for those outside the runs of the order that the sample shows
    holding many matches (each run then read from the btree on its own)."""
    runs = _runs(sample.keys, q)
    options = [_option(sample, [], q, limit)]
    if runs:
        options.append(_option(sample, runs, q, limit))
    return min(options, key=lambda option: option[0])[1]


def _option(sample: _Sample, runs: list[str], q: str, limit: int) -> tuple[float, _Plan]:
    """(cost, plan) of the cheaper of walking and GIN, outside `runs`, the runs' own reading
    included. The GIN way reads every match's postings, and the heap for each candidate
    outside the runs: as many as the sampled users with the GIN query's lexemes outside
    them (more than the matches when the lexemes are common: "inda" of Linda and of
    northwind.example.com)."""
    inside = [any(k.startswith(p) for p in runs) for k in sample.keys]
    outside = [place - sum(inside[:i]) for i, place in enumerate(sample.places) if not inside[i]]
    walk_rows = _walk_rows(outside, sample.seen - sum(inside), limit)
    matches = max(len(sample.places), 0.5) * SAMPLE_RATE
    listed = sample.candidate_keys
    share = (
        sum(not any(k.startswith(p) for p in runs) for k in listed) / len(listed) if listed else 1
    )
    candidates = max(len(outside), sample.candidates * share, 0.5) * SAMPLE_RATE
    extra = sum(STEP_US + _run_rows(sample, p, q, limit) * WALK_US for p in runs)
    walk = walk_rows * WALK_US + extra
    heap_us = _heap.us
    gin = matches * POSTING_US + candidates * heap_us + extra
    # Each way goes on until it has cost what the other was expected to (or four times its
    # own estimate): a wrong guess costs at most about twice the right one.
    if walk <= gin:
        to_end = (sample.seen - sum(inside) + 1) * SAMPLE_RATE * WALK_US
        budget = max(WALK_MIN, 4 * walk_rows, (gin - extra) / WALK_US)
        return walk, _Plan(runs, True, int(budget), to_end <= gin)
    cap = max(GIN_MIN, 4 * candidates, (walk - extra) / heap_us)
    # A sample of one row in SAMPLE_RATE can miss the first few hundred matches: when the GIN
    # way costs much, a walk goes first for half of that, in case they are near.
    try_walk = int((gin - extra) / 2 / WALK_US) if gin - extra > TRY_WALK_US else 0
    return gin, _Plan(runs, False, int(cap), True, try_walk)


def _walk_rows(places: Sequence[int], seen: int, limit: int) -> float:
    """Rows a walk reads for `limit` matches, from the places (1 for the first, in sampled
    rows) of the first sampled matches: one sampled row stands for SAMPLE_RATE rows and one
    sampled match for as many matches, so at the density of the first ones, `limit` matches
    take limit * place / k rows (raised when k is small). A first match much further than
    the gaps between the next ones starts a cluster: the walk reads to it first. With none,
    the walk reads to the end."""
    if not places:
        return (seen + 1) * SAMPLE_RATE
    spread = places[:SPREAD_HITS]
    if len(spread) > 1:
        gap = max((spread[-1] - spread[0]) / (len(spread) - 1), 1.0)
        if spread[0] > 2 * gap:
            return (spread[0] - 1) * SAMPLE_RATE + limit * gap
    # Fewer sampled matches tell less: the estimate is raised as they are fewer.
    return limit * spread[-1] / len(spread) * SPREAD_HITS / len(spread)


_PRIMARY_EMAIL = literal_column(
    "coalesce(jsonb_path_query_first(users.data, '$.emails[*] ? (@.primary == true).value')"
    " #>> '{}', users.data #>> '{emails,0,value}')",
    Text,
).label("email")


_frequencies: dict[str, tuple[float, dict[str, float]]] = {}


async def _rarest(conn: AsyncConnection, lexemes: Sequence[str]) -> tuple[list[str], float]:
    """The QUERY_LEXEMES rarest lexemes, by users_search_keys_idx's statistics (its most common
    lexemes, kept a while per database; any other is rarer than those), and the rows the
    rarest is in (0.0 when it is not among the most common): GIN candidates, at most."""
    for lexeme in lexemes:
        if not LEXEME.fullmatch(lexeme):
            raise ValueError(f"not a search lexeme: {lexeme!r}")
    common = await _common(conn)
    ranked = sorted(lexemes, key=lambda lexeme: (_frequency(lexeme, common), lexeme))
    if not ranked:
        return [], 0.0
    # A lexeme most rows have ("ind" of every northwind.example.com) filters little and costs
    # its whole posting tree: only the rarest is kept whatever it is.
    others = [x for x in ranked[1:QUERY_LEXEMES] if _frequency(x, common) <= COMMON_SHARE]
    return [ranked[0], *others], _frequency(ranked[0], common) * common.get("", 0.0)


def _frequency(lexeme: str, common: dict[str, float]) -> float:
    """The share of rows with the lexeme, as far as the statistics tell; for a prefix
    (`...:*`, a query of 1 or 2 bytes), the common lexemes that start so, added up."""
    if not lexeme.endswith(":*"):
        return common.get(lexeme, 0.0)
    start = lexeme[:-2]
    return min(1.0, sum(f for other, f in common.items() if other.startswith(start)))


async def _common(conn: AsyncConnection) -> dict[str, float]:
    """The index's most common lexemes and their shares of rows; under "" the table's rows."""
    key = str(getattr(getattr(conn, "engine", None), "url", ""))
    cached = _frequencies.get(key)
    if cached is None or time.monotonic() - cached[0] > STATISTICS_SECONDS:
        common = {r.lexeme: r.frequency for r in await conn.execute(_COMMON_LEXEMES)}
        common[""] = float((await conn.execute(_ROWS)).scalar() or 0.0)
        cached = (time.monotonic(), common)
        _frequencies[key] = cached
    return cached[1]


_ROWS = text("SELECT reltuples FROM pg_class WHERE oid = 'users'::regclass")
_COMMON_LEXEMES = text(
    "SELECT u.lexeme, u.frequency FROM pg_stats AS s, "
    "unnest(s.most_common_elems::text::text[], s.most_common_elem_freqs) AS u(lexeme, frequency) "
    "WHERE s.schemaname = current_schema() AND s.tablename = 'users_search_keys_idx' "
    "AND u.lexeme IS NOT NULL"
)


def _tsquery(tenant_id: uuid.UUID, lexemes: Sequence[str], runs: Sequence[str]) -> str:
    """All the lexemes, and none of the runs' prefix lexemes. Lexemes are hex digits and a
    letter (checked in _rarest, made here): the text needs no quoting."""
    assert lexemes, "a search text has one lexeme at least"
    tag = hashlib.md5(str(tenant_id).encode(), usedforsecurity=False).hexdigest()[:8]
    excluded = [f"!{tag}p{prefix.encode().hex()}" for prefix in runs]
    return " & ".join([*lexemes, *excluded])


def _runs(keys: Sequence[str], q: str) -> list[str]:
    """The runs of the order that hold several sampled matches. A match whose search_sort
    contains q belongs to the run of the rows that start as it does up to the end of q
    (cut to REGION_BYTES): every such row contains q too. Other matches (q in a name or an
    e-mail only) belong to the run of what the search_sorts of those with the same first
    letter start with, when many share one ("jm" of jmartinez@..., only for first names in J;
    "ürge" of Jürgen, whose userName is jurgen.*)."""
    exact: dict[str, int] = {}
    loose: dict[str, list[str]] = {}
    for sort_value in keys:
        at = sort_value.find(q)
        if at < 0:
            loose.setdefault(sort_value[:1], []).append(sort_value)
            continue
        prefix = _cut(sort_value[: at + len(q)])
        exact[prefix] = exact.get(prefix, 0) + 1
    share = LOOSE_SHARE * sum(len(group) for group in loose.values())
    heavy = [(n, p) for p, n in exact.items() if n >= RUN_MIN]
    heavy += [
        (len(group), _cut(_shared_start(group)))
        for first, group in loose.items()
        if first and len(group) >= RUN_MIN and len(group) >= share
    ]
    chosen = {p for _, p in sorted(heavy)[-RUNS_MAX:]}
    # A run inside another is read with it.
    return sorted(p for p in chosen if not any(p != o and p.startswith(o) for o in chosen))


def _shared_start(texts: Sequence[str]) -> str:
    """The longest prefix all the texts start with."""
    first, last = min(texts), max(texts)
    size = 0
    while size < min(len(first), len(last)) and first[size] == last[size]:
        size += 1
    return first[:size]


def _cut(prefix: str) -> str:
    """The prefix, shortened to REGION_BYTES of UTF-8 at most (the longest prefix lexeme)."""
    while len(prefix.encode()) > REGION_BYTES:
        prefix = prefix[:-1]
    return prefix


def _run_rows(sample: _Sample, prefix: str, q: str, limit: int) -> float:
    """Rows read in a run: `limit` when its rows all contain q, else `limit` matches at the
    run's density between its first and last sampled match."""
    if q in prefix:
        return float(limit)
    places = [n for n, k in zip(sample.places, sample.keys, strict=False) if k.startswith(prefix)]
    if not places:
        return float(limit)
    return limit * (places[-1] - places[0] + 1) / len(places)


def _span(prefix: str) -> tuple[str, str | None]:
    """The search_sort range of the strings that start with `prefix`."""
    return prefix, _successor(prefix)


def _between(runs: Sequence[str]) -> list[Range]:
    """The ranges of the order outside the runs (sorted, disjoint prefixes), in order."""
    ranges: list[Range] = []
    low: str | None = None
    for prefix in runs:
        start, end = _span(prefix)
        ranges.append((low, start))
        low = end
        if end is None:
            return ranges
    ranges.append((low, None))
    return ranges


def _successor(prefix: str) -> str | None:
    """The least string above every string that starts with `prefix`, in code point order;
    None when there is none (the prefix is all U+10FFFF)."""
    while prefix:
        last = ord(prefix[-1])
        if last < 0x10FFFF:
            following = last + 1 if last + 1 != 0xD800 else 0xE000
            return prefix[:-1] + chr(following)
        prefix = prefix[:-1]
    return None
