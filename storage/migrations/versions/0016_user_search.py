"""User search by partial id, name and e-mail, without pg_trgm (core PostgreSQL only).

A tenant's users are listed in one order, `search_sort, id` (`search_sort`: the lower-cased
userName, compared byte by byte), and searched by a case-insensitive substring of
`search_text` (the lower-cased userName, displayName, name parts and every e-mail value, one a
line). Both are STORED generated columns, so every existing INSERT and UPDATE keeps them right
without knowing of them. Adding them rewrites `users` once, under an exclusive lock.

- `users_search_order_idx` (tenant_id, search_sort, id) INCLUDE (search_text): the ordered
  listing and keyset pages, and "walk the order, keep what contains q", both read from the
  index alone (no heap visits once the visibility map is set).
- `users_search_sample_idx`: the same, for one user in 512 (by a hash of the id): where in
  the order, and how densely, a search text matches, read in a few milliseconds to plan a
  search.
- `users_search_keys_idx`, GIN over `idgate_user_search_keys(...)`, a tsvector whose lexemes
  are, per user:
    `<tenant tag>t<hex of 3 bytes>` for every 3-byte window of search_text (fields padded
    with two line ends, so every byte starts a window and a 1- or 2-byte query is a lexeme
    prefix, which GIN answers by partial match);
    `<tenant tag>p<hex of the first n bytes of search_sort>` for n = 1..8, so that a query
    can leave out a run of the order ("userName starts with jennifer") that it reads from
    the btree instead.
  The tenant tag (8 hex digits of md5(tenant id)) keeps each tenant's posting lists apart;
  queries still filter on tenant_id, so a tag shared by two tenants costs time, never rows.
  Hex keeps every lexeme to [0-9a-z], so a tsquery is built without quoting user text.
  fastupdate is off: a search never scans a pending list (as users_emails_idx, 0001).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03
"""

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

# Longest search_text / search_sort kept, in characters: with 4 bytes a character at worst,
# an index row of users_search_order_idx stays under the btree limit of 2704 bytes.
TEXT_CHARS = 500
SORT_CHARS = 128
PREFIX_BYTES = 8  # the longest search_sort prefix with a lexeme of its own
# One user in 512, by a hash of the id: a fixed sample of every tenant, ordered as the
# tenant is (storage/user_search.py reads it to plan a search).
SAMPLED = "left(md5(id::text), 3) < '008'"
QUERY_LEXEMES = 3  # lexemes a search asks GIN for, at most (the rarest)
COMMON_SHARE = 0.2  # a lexeme in more rows than this is asked for only if it is the rarest

_TEXT = f"""
CREATE FUNCTION idgate_user_search_text(user_name text, display_name text, data jsonb)
RETURNS text LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
  hay text := '';
  field text;
BEGIN
  FOREACH field IN ARRAY
    ARRAY[user_name, display_name, data #>> '{{name,formatted}}', data #>> '{{name,givenName}}',
          data #>> '{{name,familyName}}']
    || ARRAY(SELECT e ->> 'value'
             FROM jsonb_array_elements(CASE jsonb_typeof(data -> 'emails')
                                       WHEN 'array' THEN data -> 'emails' ELSE '[]' END) AS e)
  LOOP
    field := lower(replace(field, E'\\n', ' '));
    -- A field inside an earlier one (a givenName inside the displayName, an e-mail equal to
    -- the userName) adds nothing a substring could match.
    IF field <> '' AND strpos(hay, field) = 0 THEN
      hay := CASE WHEN hay = '' THEN field ELSE hay || E'\\n' || field END;
    END IF;
  END LOOP;
  RETURN nullif(left(hay, {TEXT_CHARS}), '');
END
$$
"""

_KEYS = f"""
CREATE FUNCTION idgate_user_search_keys(tenant_id uuid, search_sort text, search_text text)
RETURNS tsvector LANGUAGE sql IMMUTABLE
-- About 100 microseconds a call: a plan that computes it for each row it reads (instead of
-- reading users_search_keys_idx) must look as dear as it is. PARALLEL RESTRICTED: a search
-- reads a few hundred rows, and parallel workers take longer to start than that (a plan
-- made for the statement, not for its tsquery, would otherwise start them).
PARALLEL RESTRICTED COST 5000 AS $$
  SELECT array_to_tsvector(
    ARRAY(SELECT tag || 't' || encode(substr(b, i, 3), 'hex')
          FROM generate_series(1, length(b) - 2) AS i
          WHERE get_byte(b, i - 1) <> 10)
    || ARRAY(SELECT tag || 'p' || left(s, 2 * i)
             FROM generate_series(1, least({PREFIX_BYTES}, length(s) / 2)) AS i))
  FROM (SELECT left(md5(tenant_id::text), 8) AS tag,
               convert_to(replace(coalesce(search_text, ''), E'\\n', E'\\n\\n') || E'\\n\\n',
                          'UTF8') AS b,
               encode(convert_to(search_sort, 'UTF8'), 'hex') AS s
        -- Computed once per call: flattened, each window would convert the whole text.
        OFFSET 0) AS x
$$
"""

# The lexemes of a search: every 3-byte window of lower(q), or, for a shorter q, the prefix
# of a window (`...:*`). NULL when q cannot match (empty, or a line end: it separates fields).
_LEXEMES = """
CREATE FUNCTION idgate_user_search_lexemes(tenant_id uuid, q text)
RETURNS text[] LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE
    WHEN length(b) = 0 OR position('\\x0a'::bytea IN b) > 0 THEN NULL
    WHEN length(b) < 3 THEN ARRAY[tag || 't' || encode(b, 'hex') || ':*']
    ELSE ARRAY(SELECT DISTINCT tag || 't' || encode(substr(b, i, 3), 'hex')
               FROM generate_series(1, length(b) - 2) AS i)
  END
  FROM (SELECT left(md5(tenant_id::text), 8) AS tag, convert_to(lower(q), 'UTF8') AS b
        OFFSET 0) AS x
$$
"""

# The tsquery of a search: its rarest lexemes by the index's statistics, and of the others
# none that most rows have (all of them would make GIN visit every common posting tree once
# per candidate: "example" in a full e-mail costs more than it removes; the exact test on the
# candidates does the rest). storage/user_search.py chooses the same way.
_QUERY = f"""
CREATE FUNCTION idgate_user_search_query(tenant_id uuid, q text)
RETURNS tsquery LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT array_to_string(array_agg(lexeme ORDER BY n), ' & ')::tsquery
  FROM (SELECT l.lexeme, coalesce(common.frequency, 0) AS frequency,
               row_number() OVER (ORDER BY coalesce(common.frequency, 0), l.lexeme) AS n
        FROM unnest(idgate_user_search_lexemes(tenant_id, q)) AS l(lexeme)
        LEFT JOIN (SELECT u.lexeme, u.frequency
                   FROM pg_stats AS s,
                        unnest(s.most_common_elems::text::text[], s.most_common_elem_freqs)
                          AS u(lexeme, frequency)
                   WHERE s.schemaname = current_schema()
                     AND s.tablename = 'users_search_keys_idx') AS common USING (lexeme)
       ) AS ranked
  WHERE n = 1 OR (n <= {QUERY_LEXEMES} AND frequency <= {COMMON_SHARE})
$$
"""


def upgrade() -> None:
    op.execute(_TEXT)
    op.execute(_KEYS)
    op.execute(_LEXEMES)
    op.execute(_QUERY)
    op.execute(
        f"""
        ALTER TABLE users
          ADD COLUMN search_sort text COLLATE "C"
            GENERATED ALWAYS AS (left(lower(user_name), {SORT_CHARS})) STORED,
          ADD COLUMN search_text text
            GENERATED ALWAYS AS (idgate_user_search_text(user_name, display_name, data)) STORED
        """
    )
    op.execute(
        "CREATE INDEX users_search_order_idx ON users (tenant_id, search_sort, id) "
        "INCLUDE (search_text)"
    )
    op.execute(
        "CREATE INDEX users_search_sample_idx ON users (tenant_id, search_sort, id) "
        f"INCLUDE (search_text) WHERE {SAMPLED}"
    )
    op.execute(
        "CREATE INDEX users_search_keys_idx ON users USING gin "
        "(idgate_user_search_keys(tenant_id, search_sort, search_text)) WITH (fastupdate = off)"
    )


def downgrade() -> None:
    op.execute("DROP INDEX users_search_keys_idx")
    op.execute("DROP INDEX users_search_sample_idx")
    op.execute("DROP INDEX users_search_order_idx")
    op.execute("ALTER TABLE users DROP COLUMN search_text, DROP COLUMN search_sort")
    op.execute("DROP FUNCTION idgate_user_search_query(uuid, text)")
    op.execute("DROP FUNCTION idgate_user_search_lexemes(uuid, text)")
    op.execute("DROP FUNCTION idgate_user_search_keys(uuid, text, text)")
    op.execute("DROP FUNCTION idgate_user_search_text(text, text, jsonb)")
