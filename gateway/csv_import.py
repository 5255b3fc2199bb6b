"""What a tenant admin's bulk CSV import would do: the plan the console previews, and the
admin API carries out once the admin confirms.

`plan_import(data, context)` reads the uploaded file against the tenant's current state (an
`ImportContext` the caller loads) and returns a `Plan`: for each row, add a user, update one,
skip it (nothing would change) or reject it with every reason why. Pure and deterministic:
no I/O, no clock, the standard library only (plus the role names of `sso.mapping`). The
caller executes the plan; planning the same file again against the state that results gives
only `skip` (and the same errors), so a confirm that is retried, or a file uploaded twice,
changes nothing the second time. `Plan.digest` recognises the same file across uploads.

The file: UTF-8 text (a byte-order mark is dropped), comma-separated, rows ending in CRLF,
LF or CR, cells quoted as RFC 4180 says (a quoted cell may hold commas, line breaks and
quotes written twice). Spaces around a cell, quoted or not, are dropped. Rows whose cells
are all blank are ignored. The first non-blank row is the header; its names are compared
case-insensitively, in any order:

    email,name,role,groups
    jane@corp.example,Jane Doe,admin,Engineering;Support
    "ali@corp.example","Ali, Jr.",member,

- `email` (required): the user's e-mail address, compared lower-cased (the plan gives it
  lower-cased). A practical check, not RFC 5322's: one `@`, a dot-atom local part of at most
  64 characters, a domain of at least two labels of ASCII letters, digits and hyphens.
  Internationalised domains are accepted in their `xn--` (punycode) form only.
- `name`: the display name, at most 256 characters. A blank cell leaves an existing user's
  name as it is.
- `role`: one organisation role, or several separated by `;` (or `|`).
- `groups`: product groups, separated by `;` (or `|`); a group whose name holds one of
  these characters cannot be named here.
- `line` and `errors` are accepted and ignored: they are the columns `error_csv` adds, so
  the file of rejected rows can be corrected and uploaded as it is.
Any other column is an error that names it (a misspelt `groups` must not import users
without their groups). A cell under no header (past the header's last column or under a
blank header cell) must be blank.

Role and group names match the tenant's case-insensitively, as the database compares
`lower(name)`; a name written exactly as one of the tenant's is that one, else the single
name it equals case-insensitively (when several do, the row is refused: which one is meant
cannot be told).

An import adds, it never takes away: a row's roles and groups are added to what the user
already holds, and an empty cell changes nothing. That is what admins expect of a bulk
invite, and it keeps a re-run harmless; removing access is done one user at a time, or by
the IdP. A row names a user by e-mail, so the first row of an address is the one that
counts: the later ones are errors naming it.

`owner` is granted only by an owner (`ImportContext.can_grant_owner`): a row that would
give it otherwise is an error, and so is a row that would change a user who is an owner. A
row that names `owner` for a user who already holds it grants nothing and is not refused.
The name of a user provisioned by SCIM belongs to the IdP, which would write it back at its
next push: a row that would change it is an error, unless the context allows overrides;
roles and groups may be added to such users.

A row's `line` is its row number as a spreadsheet shows the file: the header is row 1, a
blank line is a row, and a quoted cell spanning several lines of text is still one row.

Errors about the whole file raise `ImportFileError` (code, message): `not_text`,
`invalid_csv`, `empty`, `missing_header`, `missing_column`, `unknown_columns`,
`duplicate_column`, `too_many_rows` (more than `MAX_ROWS` rows). Errors about one row are
`RowError`s, several per row when there are several problems: `missing_email`,
`invalid_email`, `duplicate`, `name_too_long`, `invalid_name`, `unknown_role`,
`owner_not_allowed`, `unknown_group`, `scim_managed`, `extra_cells`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import unicodedata
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from sso.mapping import BUILTIN_ROLES, OWNER

MAX_ROWS = 1000  # data rows per file; a larger import is several files
MAX_NAME = 256  # characters in a display name
MAX_LOCAL_PART = 64  # RFC 5321
MAX_EMAIL = 254  # RFC 5321's path limit, less the angle brackets

EMAIL, NAME, ROLE, GROUPS = "email", "name", "role", "groups"
COLUMNS = (EMAIL, NAME, ROLE, GROUPS)
LINE, ERRORS = "line", "errors"  # the columns `error_csv` adds; ignored on input

ADD: Final = "add"
UPDATE: Final = "update"
SKIP: Final = "skip"
Kind = Literal["add", "update", "skip"]

# Whole-file errors (ImportFileError.code).
NOT_TEXT = "not_text"
INVALID_CSV = "invalid_csv"
EMPTY = "empty"
MISSING_HEADER = "missing_header"
MISSING_COLUMN = "missing_column"
UNKNOWN_COLUMNS = "unknown_columns"
DUPLICATE_COLUMN = "duplicate_column"
TOO_MANY_ROWS = "too_many_rows"

# Row errors (RowError.code).
MISSING_EMAIL = "missing_email"
INVALID_EMAIL = "invalid_email"
DUPLICATE = "duplicate"
NAME_TOO_LONG = "name_too_long"
INVALID_NAME = "invalid_name"
UNKNOWN_ROLE = "unknown_role"
OWNER_NOT_ALLOWED = "owner_not_allowed"
UNKNOWN_GROUP = "unknown_group"
SCIM_MANAGED = "scim_managed"
EXTRA_CELLS = "extra_cells"

_DIGEST_VERSION = "idgate-csv-import/1"  # changes when the normalisation does


class ImportFileError(ValueError):
    """The file as a whole cannot be imported; nothing in it is planned."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class ExistingUser:
    """A user of the tenant, as the import compares with it."""

    id: uuid.UUID
    name: str | None  # display name
    roles: frozenset[str]  # organisation roles held
    groups: frozenset[str]  # product groups the user is a member of
    managed_by_scim: bool = False  # the IdP provisions the user, and owns its name


@dataclass(frozen=True)
class ImportContext:
    """The tenant's state the plan is made against, and what the acting admin may do."""

    roles: frozenset[str]  # the tenant's role names; the built-in ones are known regardless
    groups: frozenset[str]  # the tenant's product group names
    users: Mapping[str, ExistingUser] = field(default_factory=dict)  # by e-mail, lower-cased
    can_grant_owner: bool = False  # the acting admin is an owner
    allow_scim_override: bool = False  # rows may change the name of SCIM-provisioned users

    def __post_init__(self) -> None:
        # Keys are compared lower-cased and stripped whatever the caller built them from.
        users = {email.strip().lower(): user for email, user in self.users.items()}
        object.__setattr__(self, "users", users)


@dataclass(frozen=True)
class RowAction:
    """What confirming the import does for one valid row."""

    line: int
    kind: Kind
    email: str  # lower-cased
    name: str | None  # add: the name given, if any; update: the new name, if it changes
    roles: tuple[str, ...]  # roles to add, the tenant's spelling, sorted
    groups: tuple[str, ...]  # groups to add, the tenant's spelling, sorted
    user_id: uuid.UUID | None  # the existing user (update, skip); None for add


@dataclass(frozen=True)
class RowError:
    line: int
    column: str  # the header name in lower case; "" for the row as a whole
    code: str
    message: str


@dataclass(frozen=True)
class RejectedRow:
    """A row with errors, its cells as written (under `Plan.columns`), for `error_csv`."""

    line: int
    cells: tuple[str, ...]
    errors: tuple[RowError, ...]


@dataclass(frozen=True)
class Plan:
    columns: tuple[str, ...]  # the file's columns among `COLUMNS`, in its order, as written
    actions: tuple[RowAction, ...]  # valid rows in file order, `skip` included
    rejected: tuple[RejectedRow, ...]  # rows with errors, in file order
    digest: str  # sha256 (hex) of the normalised rows: equal for the same import

    @property
    def errors(self) -> tuple[RowError, ...]:
        return tuple(error for row in self.rejected for error in row.errors)

    @property
    def counts(self) -> dict[str, int]:
        """Rows per outcome; `error` counts rows, not errors."""
        counts = {ADD: 0, UPDATE: 0, SKIP: 0, "error": len(self.rejected)}
        for action in self.actions:
            counts[action.kind] += 1
        return counts


def error_csv(plan: Plan) -> str:
    """The rejected rows as a CSV to download: the file's columns in its order with each
    cell as written, then `line` and `errors` (every error as "column: message", joined by
    "; "). Encode it as UTF-8 with a byte-order mark for Excel to read accents correctly.
    Cells are not escaped against spreadsheet formulas: they are the admin's own, given back
    unchanged so that the file can be corrected and uploaded again."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([*plan.columns, LINE, ERRORS])
    for row in plan.rejected:
        messages = "; ".join(
            f"{error.column}: {error.message}" if error.column else error.message
            for error in row.errors
        )
        writer.writerow([*row.cells, str(row.line), messages])
    return out.getvalue()


# ---- e-mail addresses -----------------------------------------------------------------------

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LOCAL = re.compile(rf"{_ATOM}(?:\.{_ATOM})*")
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def email_problem(address: str) -> str | None:
    """Why `address` (already stripped) is not a usable e-mail address, or None."""
    if not address.isascii():
        return "only ASCII is accepted; write an internationalised domain as xn--..."
    if any(c.isspace() for c in address):
        return "it contains a space"
    if address.count("@") != 1:
        return "it must contain exactly one @"
    local, domain = address.split("@")
    if not local:
        return "nothing before the @"
    if len(local) > MAX_LOCAL_PART:
        return f"more than {MAX_LOCAL_PART} characters before the @"
    if not _LOCAL.fullmatch(local):
        return "the part before the @ has a character or dot out of place"
    if len(address) > MAX_EMAIL:
        return f"longer than {MAX_EMAIL} characters"
    labels = domain.split(".")
    if len(labels) < 2:
        return "the domain needs a dot"
    if not all(_LABEL.fullmatch(label) for label in labels):
        return "the domain holds only letters, digits and hyphens between dots"
    if labels[-1].isdigit():
        return "the domain ends with a number"
    return None


# ---- reading the file -----------------------------------------------------------------------

# A quoted cell: possessive, so that an unclosed quote fails here instead of backtracking.
_QUOTED = re.compile(r'[ \t]*"([^"]*+(?:""[^"]*+)*+)"[ \t]*')
_OPENS_QUOTE = re.compile(r'[ \t]*"')
_PLAIN = re.compile(r"[^,\r\n]*")
_ROW_END = re.compile(r"\r\n|\n|\r")
_SEPARATORS = re.compile(r"[;|]")
_CONTROL = frozenset({"Cc", "Zl", "Zp"})  # control characters, line and paragraph separators


def _text(data: str | bytes) -> str:
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ImportFileError(
                NOT_TEXT, "the file is not UTF-8 text: save it as CSV UTF-8"
            ) from None
    else:
        text = data.removeprefix("\ufeff")
    if "\x00" in text:
        raise ImportFileError(NOT_TEXT, "the file is not text: upload a CSV file")
    return text


def _records(text: str) -> Iterator[tuple[int, list[str]]]:
    """(row number, cells) for each row of `text` (RFC 4180, leniently: spaces around a
    quoted cell, and a quote inside an unquoted one, are accepted)."""
    pos, line, end = 0, 1, len(text)
    cells: list[str] = []
    while pos < end:
        quoted = _QUOTED.match(text, pos)
        if quoted is not None and (quoted.end() == end or text[quoted.end()] in ",\r\n"):
            cells.append(quoted.group(1).replace('""', '"'))
            pos = quoted.end()
        elif _OPENS_QUOTE.match(text, pos):
            where = f"row {line}, cell {len(cells) + 1}"
            if quoted is None:
                message = f"{where}: a quoted cell is never closed"
            else:
                message = f'{where}: text after the closing quote (a quote inside a cell is "")'
            raise ImportFileError(INVALID_CSV, message)
        else:
            plain = _PLAIN.match(text, pos)
            assert plain is not None  # matches the empty string at least
            cells.append(plain.group())
            pos = plain.end()
        if pos < end and text[pos] == ",":
            pos += 1
            if pos < end:
                continue
            cells.append("")  # a comma ends the text: one more, empty, cell
        else:
            row_end = _ROW_END.match(text, pos)
            if row_end is not None:
                pos = row_end.end()
        yield line, cells
        line += 1
        cells = []


def _blank(cells: list[str]) -> bool:
    return not any(cell.strip() for cell in cells)


@dataclass(frozen=True)
class _Layout:
    columns: tuple[str, ...]  # known columns as written, in file order
    index: dict[str, int]  # known column (lower case) -> position
    ignored: frozenset[int]  # positions of `line` and `errors`

    @classmethod
    def read(cls, header: list[str]) -> _Layout:
        names = [cell.strip() for cell in header]
        known = [name for name in names if name.lower() in COLUMNS]
        if not known:
            shown = ", ".join(repr(name) for name in names if name)
            if len(names) == 1 and ";" in names[0]:
                raise ImportFileError(
                    UNKNOWN_COLUMNS,
                    "the file is separated by semicolons: save it as CSV with commas",
                )
            raise ImportFileError(
                MISSING_HEADER,
                f"the first row must be a header naming the columns {', '.join(COLUMNS)}; "
                f"it holds {shown}",
            )
        unknown = [name for name in names if name and name.lower() not in (*COLUMNS, LINE, ERRORS)]
        if unknown:
            raise ImportFileError(
                UNKNOWN_COLUMNS,
                f"unknown column{'s' if len(unknown) > 1 else ''} "
                f"{', '.join(repr(name) for name in unknown)} (expected {', '.join(COLUMNS)})",
            )
        index: dict[str, int] = {}
        ignored: set[int] = set()
        seen: set[str] = set()
        for i, name in enumerate(names):
            folded = name.lower()
            if not folded:
                continue
            if folded in seen:
                raise ImportFileError(DUPLICATE_COLUMN, f"the column {name!r} appears twice")
            seen.add(folded)
            if folded in (LINE, ERRORS):
                ignored.add(i)
            else:
                index[folded] = i
        if EMAIL not in index:
            raise ImportFileError(MISSING_COLUMN, "the header has no email column")
        columns = tuple(names[i] for i in sorted(index.values()))
        return cls(columns, index, frozenset(ignored))

    def cell(self, cells: list[str], column: str) -> str:
        i = self.index.get(column)
        return cells[i] if i is not None and i < len(cells) else ""

    def written(self, cells: list[str]) -> tuple[str, ...]:
        return tuple(cells[i] if i < len(cells) else "" for i in sorted(self.index.values()))

    def extras(self, cells: list[str]) -> list[tuple[int, str]]:
        """Non-blank cells under no known column: (position, value)."""
        used = {*self.index.values(), *self.ignored}
        return [(i, cell.strip()) for i, cell in enumerate(cells) if i not in used and cell.strip()]


# ---- one row --------------------------------------------------------------------------------


def _split(cell: str) -> tuple[str, ...]:
    """The names in a `role` or `groups` cell: stripped, blanks and repeats dropped. Names
    that differ only in case are kept apart: the tenant may have two groups so named."""
    names = (part.strip() for part in _SEPARATORS.split(cell))
    return tuple(dict.fromkeys(name for name in names if name))


@dataclass(frozen=True)
class _Row:
    line: int
    cells: tuple[str, ...]  # as written, under the known columns
    email: str  # stripped, lower-cased
    name: str  # stripped
    roles: tuple[str, ...]
    groups: tuple[str, ...]
    extras: tuple[tuple[int, str], ...]

    def normalised(self) -> list[object]:
        return [
            self.email,
            self.name,
            sorted(self.roles),
            sorted(self.groups),
            [list(extra) for extra in self.extras],
        ]


class _Names:
    """A tenant's role or group names, looked up as written, else case-insensitively when
    that is unique."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names = frozenset(names)
        self.folded: dict[str, list[str]] = {}
        for name in sorted(self.names):
            self.folded.setdefault(name.lower(), []).append(name)

    def find(self, name: str) -> str | list[str]:
        """The tenant's name, or the candidates (none, or several that differ in case)."""
        if name in self.names:
            return name
        found = self.folded.get(name.lower(), [])
        return found[0] if len(found) == 1 else found


def _lookup(
    names: tuple[str, ...], known: _Names, line: int, column: str, code: str, what: str
) -> tuple[list[str], list[RowError]]:
    resolved: list[str] = []
    errors: list[RowError] = []
    for name in names:
        found = known.find(name)
        if isinstance(found, str):
            resolved.append(found)
        elif found:
            message = f"ambiguous {what} {name!r} (could be {', '.join(found)})"
            errors.append(RowError(line, column, code, message))
        else:
            errors.append(RowError(line, column, code, f"unknown {what} {name!r}"))
    return resolved, errors


def _missing(wanted: list[str], held: frozenset[str], known: _Names) -> tuple[str, ...]:
    """The tenant's names in `wanted` that are not among `held`, sorted. What the user holds
    is read as the tenant spells it, as a row's names are."""
    spelt = {found if isinstance(found := known.find(name), str) else name for name in held}
    return tuple(sorted(set(wanted) - spelt, key=lambda name: (name.lower(), name)))


def _plan_row(
    row: _Row,
    context: ImportContext,
    roles: _Names,
    groups: _Names,
    first_line: dict[str, int],
) -> RowAction | list[RowError]:
    line = row.line
    errors: list[RowError] = [
        RowError(line, "", EXTRA_CELLS, f"a value in column {i + 1}, which has no header: {v!r}")
        for i, v in row.extras
    ]
    existing: ExistingUser | None = None
    if not row.email:
        errors.append(RowError(line, EMAIL, MISSING_EMAIL, "no e-mail address"))
    elif (problem := email_problem(row.email)) is not None:
        errors.append(
            RowError(line, EMAIL, INVALID_EMAIL, f"not a valid e-mail address ({problem})")
        )
    else:
        first = first_line.setdefault(row.email, line)
        if first != line:
            message = f"{row.email} is already on line {first}; give each user one row"
            errors.append(RowError(line, EMAIL, DUPLICATE, message))
        existing = context.users.get(row.email)

    if len(row.name) > MAX_NAME:
        message = f"the name has {len(row.name)} characters (at most {MAX_NAME})"
        errors.append(RowError(line, NAME, NAME_TOO_LONG, message))
    if any(unicodedata.category(c) in _CONTROL for c in row.name):
        message = "the name holds a line break or another control character"
        errors.append(RowError(line, NAME, INVALID_NAME, message))

    wanted_roles, role_errors = _lookup(row.roles, roles, line, ROLE, UNKNOWN_ROLE, "role")
    errors += role_errors
    held_roles = existing.roles if existing is not None else frozenset()
    new_roles = _missing(wanted_roles, held_roles, roles)
    if not context.can_grant_owner and any(role.lower() == OWNER for role in new_roles):
        message = "only an owner can grant the owner role"
        errors.append(RowError(line, ROLE, OWNER_NOT_ALLOWED, message))

    wanted_groups, group_errors = _lookup(row.groups, groups, line, GROUPS, UNKNOWN_GROUP, "group")
    errors += group_errors
    held_groups = existing.groups if existing is not None else frozenset()
    new_groups = _missing(wanted_groups, held_groups, groups)

    new_name = row.name or None
    if existing is not None:
        if new_name == existing.name:
            new_name = None
        if new_name is not None and existing.managed_by_scim and not context.allow_scim_override:
            message = (
                f"the name of {row.email} comes from the identity provider (SCIM): change it "
                "there, or leave the cell blank"
            )
            errors.append(RowError(line, NAME, SCIM_MANAGED, message))

    changes = new_name is not None or new_roles or new_groups
    owned = existing is not None and any(r.lower() == OWNER for r in existing.roles)
    if changes and owned and not context.can_grant_owner:
        message = f"{row.email} is an owner: only an owner can change an owner"
        errors.append(RowError(line, EMAIL, OWNER_NOT_ALLOWED, message))

    if errors:
        return errors
    if existing is None:
        return RowAction(line, ADD, row.email, new_name, new_roles, new_groups, None)
    kind: Kind = UPDATE if new_name is not None or new_roles or new_groups else SKIP
    return RowAction(line, kind, row.email, new_name, new_roles, new_groups, existing.id)


# ---- the plan -------------------------------------------------------------------------------


def plan_import(data: str | bytes, context: ImportContext) -> Plan:
    """The plan for importing `data` (the uploaded file: text, or UTF-8 bytes) into the
    tenant `context` describes. Raises ImportFileError when the file as a whole is unusable."""
    records = _records(_text(data))
    header = next((cells for _, cells in records if not _blank(cells)), None)
    if header is None:
        raise ImportFileError(EMPTY, "the file is empty")
    layout = _Layout.read(header)
    rows: list[_Row] = []
    for line, cells in records:
        if _blank(cells):
            continue
        if len(rows) == MAX_ROWS:
            raise ImportFileError(
                TOO_MANY_ROWS, f"more than {MAX_ROWS} rows: split the file into several"
            )
        rows.append(
            _Row(
                line=line,
                cells=layout.written(cells),
                email=layout.cell(cells, EMAIL).strip().lower(),
                name=layout.cell(cells, NAME).strip(),
                roles=_split(layout.cell(cells, ROLE)),
                groups=_split(layout.cell(cells, GROUPS)),
                extras=tuple(layout.extras(cells)),
            )
        )
    if not rows:
        raise ImportFileError(EMPTY, "the file has a header but no rows")

    roles = _Names((*BUILTIN_ROLES, *context.roles))
    groups = _Names(context.groups)
    first_line: dict[str, int] = {}
    actions: list[RowAction] = []
    rejected: list[RejectedRow] = []
    for row in rows:
        planned = _plan_row(row, context, roles, groups, first_line)
        if isinstance(planned, RowAction):
            actions.append(planned)
        else:
            rejected.append(RejectedRow(row.line, row.cells, tuple(planned)))
    return Plan(layout.columns, tuple(actions), tuple(rejected), _digest(rows))


def _digest(rows: list[_Row]) -> str:
    """Equal for two files that say the same thing: the same rows in the same order, whatever
    the column order, header case, line endings, byte-order mark, blank rows, spaces around
    cells, case of e-mails, or order, repeats and separators of role and group names. Names
    of roles and groups keep their case: two that differ only in case may be two groups."""
    document = [_DIGEST_VERSION, [row.normalised() for row in rows]]
    encoded = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()
