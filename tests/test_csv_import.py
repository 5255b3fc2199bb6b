"""gateway.csv_import: the plan of a bulk CSV import of users, from the file and the tenant's
state; no database."""

from __future__ import annotations

import csv
import dataclasses
import io
import re
import uuid
from collections import Counter
from typing import Any

import pytest

from gateway.csv_import import (
    MAX_ROWS,
    ExistingUser,
    ImportContext,
    ImportFileError,
    Plan,
    RowAction,
    email_problem,
    error_csv,
    plan_import,
)

ROLES = frozenset({"Support-Agent", "billing"})  # custom roles; the built-in ones are implied
GROUPS = frozenset({"Engineering", "Sales", "R&D", "ops", "OPS"})
HEADER = "email,name,role,groups\n"


def user_id(email: str) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"mailto:{email}")


def existing(
    email: str,
    name: str | None = None,
    roles: tuple[str, ...] = (),
    groups: tuple[str, ...] = (),
    *,
    scim: bool = False,
) -> tuple[str, ExistingUser]:
    return email, ExistingUser(user_id(email), name, frozenset(roles), frozenset(groups), scim)


def context(*users: tuple[str, ExistingUser], **options: Any) -> ImportContext:
    return ImportContext(roles=ROLES, groups=GROUPS, users=dict(users), **options)


def plan(text: str | bytes, ctx: ImportContext | None = None) -> Plan:
    return plan_import(text, ctx if ctx is not None else context())


def codes(result: Plan) -> list[tuple[int, str, str]]:
    return [(error.line, error.column, error.code) for error in result.errors]


def apply(ctx: ImportContext, result: Plan) -> ImportContext:
    """What the admin API does on confirm, to the tenant's users."""
    users = dict(ctx.users)
    for action in result.actions:
        if action.kind == "add":
            assert action.email not in users
            users[action.email] = ExistingUser(
                user_id(action.email),
                action.name,
                frozenset(action.roles),
                frozenset(action.groups),
            )
        elif action.kind == "update":
            old = users[action.email]
            assert old.id == action.user_id
            users[action.email] = dataclasses.replace(
                old,
                name=action.name if action.name is not None else old.name,
                roles=old.roles | set(action.roles),
                groups=old.groups | set(action.groups),
            )
        else:
            assert action.user_id == users[action.email].id
    return dataclasses.replace(ctx, users=users)


def row_csv(rows: list[list[str]], header: str = HEADER) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return header + out.getvalue()


# ---- e-mail addresses ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "jane@corp.example",
        "Jane.Doe+test@Corp.Example",
        "o'brien@mail.corp-1.example",
        "a@b.co",
        "x_y-z@xn--bcher-kva.example",
        "a" * 64 + "@corp.example",
        "{weird}|~@corp.example",
    ],
)
def test_usable_addresses(address: str) -> None:
    assert email_problem(address) is None


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("jane", "exactly one @"),
        ("jane@a@corp.example", "exactly one @"),
        ("@corp.example", "nothing before"),
        ("a" * 65 + "@corp.example", "more than 64"),
        ("ja ne@corp.example", "space"),
        ("jane@corp example", "space"),
        ("jane@localhost", "needs a dot"),
        ("jane@-corp.example", "letters, digits and hyphens"),
        ("jane@corp-.example", "letters, digits and hyphens"),
        ("jane@corp..example", "letters, digits and hyphens"),
        ("jane@corp.example.", "letters, digits and hyphens"),
        ("jane@corp_x.example", "letters, digits and hyphens"),
        ("jane.@corp.example", "out of place"),
        (".jane@corp.example", "out of place"),
        ("ja..ne@corp.example", "out of place"),
        ('"ja ne"@corp.example', "space"),
        ("jane(x)@corp.example", "out of place"),
        ("jane@10.0.0.1", "ends with a number"),
        ("jane@bücher.example", "xn--"),
        ("jané@corp.example", "ASCII"),
        ("j@" + ("a" * 60 + ".") * 5 + "example", "longer than 254"),
    ],
)
def test_unusable_addresses(address: str, why: str) -> None:
    problem = email_problem(address)
    assert problem is not None
    assert why in problem


# ---- row errors ------------------------------------------------------------------------------

SCIM_JANE = context(existing("jane@corp.example", "Jane", scim=True))
ROW_ERRORS = [
    # code, rows, context, (line, column) of the error
    ("missing_email", [",Jane,member,"], context(), (2, "email")),
    ("missing_email", ["  ,Jane,member,"], context(), (2, "email")),
    ("invalid_email", ["jane@corp,Jane,member,"], context(), (2, "email")),
    (
        "duplicate",
        ["jane@corp.example,,,", "bob@corp.example,,,", "JANE@corp.example ,,,"],
        context(),
        (4, "email"),
    ),
    ("name_too_long", [f"jane@corp.example,{'N' * 257},,"], context(), (2, "name")),
    ("invalid_name", ['jane@corp.example,"Jane\tDoe",,'], context(), (2, "name")),
    ("invalid_name", ['jane@corp.example,"Jane\u2028Doe",,'], context(), (2, "name")),
    ("unknown_role", ["jane@corp.example,,superuser,"], context(), (2, "role")),
    ("owner_not_allowed", ["jane@corp.example,,owner,"], context(), (2, "role")),
    ("unknown_group", ["jane@corp.example,,,Marketing"], context(), (2, "groups")),
    ("unknown_group", ["jane@corp.example,,,Ops"], context(), (2, "groups")),  # ambiguous
    ("scim_managed", ["jane@corp.example,Janet,,"], SCIM_JANE, (2, "name")),
    ("extra_cells", ["jane@corp.example,,,,surprise"], context(), (2, "")),
]


@pytest.mark.parametrize(
    ("code", "rows", "ctx", "where"), [pytest.param(*case, id=case[0]) for case in ROW_ERRORS]
)
def test_each_row_error(
    code: str, rows: list[str], ctx: ImportContext, where: tuple[int, str]
) -> None:
    result = plan(HEADER + "\n".join(rows) + "\n", ctx)
    assert codes(result) == [(*where, code)]
    assert result.counts["error"] == 1
    assert len(result.actions) == len(rows) - 1
    assert result.rejected[0].line == where[0]


def test_a_name_may_hold_any_printable_text() -> None:
    name = "Zoë O'Brien-Łukasz \u00a0 李 (she/her) 🙂"
    (action,) = plan(HEADER + f"zoe@corp.example,{name},,\n").actions
    assert action.name == name.strip()


def test_error_messages_say_what_and_where() -> None:
    text = HEADER + (
        "jane@corp.example,,,\n"
        "jane@corp,,,\n"
        "JANE@corp.example,,superuser;Admin;owner,Marketing;sales\n"
        f"bob@corp.example,{'x' * 300},,\n"
    )
    messages = {(e.line, e.code): e.message for e in plan(text).errors}
    assert messages == {
        (3, "invalid_email"): "not a valid e-mail address (the domain needs a dot)",
        (4, "duplicate"): "jane@corp.example is already on line 2; give each user one row",
        (4, "unknown_role"): "unknown role 'superuser'",
        (4, "owner_not_allowed"): "only an owner can grant the owner role",
        (4, "unknown_group"): "unknown group 'Marketing'",
        (5, "name_too_long"): "the name has 300 characters (at most 256)",
    }


def test_a_row_lists_every_error() -> None:
    text = HEADER + 'bad@@x,"two\nlines",owner;nope;Admin,Sales;Nowhere;Neither,extra\n'
    assert codes(plan(text)) == [
        (2, "", "extra_cells"),
        (2, "email", "invalid_email"),
        (2, "name", "invalid_name"),
        (2, "role", "unknown_role"),
        (2, "role", "owner_not_allowed"),
        (2, "groups", "unknown_group"),
        (2, "groups", "unknown_group"),
    ]


def test_every_later_duplicate_names_the_first_line() -> None:
    text = HEADER + "a@corp.example,,,\nb@corp.example,,,\nA@CORP.EXAMPLE,,,\na@corp.example,,,\n"
    result = plan(text)
    assert [(e.line, e.message) for e in result.errors] == [
        (4, "a@corp.example is already on line 2; give each user one row"),
        (5, "a@corp.example is already on line 2; give each user one row"),
    ]
    assert [a.line for a in result.actions] == [2, 3]


def test_a_name_of_256_characters_is_accepted() -> None:
    result = plan(HEADER + f"jane@corp.example,{'n' * 256},,\n")
    assert result.errors == ()
    assert result.actions[0].name == "n" * 256


def test_names_of_roles_and_groups_match_case_insensitively() -> None:
    text = HEADER + "jane@corp.example,,ADMIN;support-agent|Billing,engineering | r&d;R&D\n"
    result = plan(text)
    assert result.errors == ()
    (action,) = result.actions
    assert action.roles == ("admin", "billing", "Support-Agent")
    assert action.groups == ("Engineering", "R&D")


def test_a_name_several_groups_share_case_insensitively() -> None:
    result = plan(HEADER + "jane@corp.example,,,Ops\n")
    assert codes(result) == [(2, "groups", "unknown_group")]
    assert result.errors[0].message == "ambiguous group 'Ops' (could be OPS, ops)"
    exact = plan(HEADER + "jane@corp.example,,,ops;OPS\n")
    assert exact.actions[0].groups == ("OPS", "ops")


def test_a_cell_under_a_blank_header_must_be_blank() -> None:
    header = "email,,name,\n"
    ok = plan(header + "jane@corp.example,,Jane,\n")
    assert ok.counts == {"add": 1, "update": 0, "skip": 0, "error": 0}
    bad = plan(header + "jane@corp.example,x,Jane,\n")
    assert codes(bad) == [(2, "", "extra_cells")]
    assert bad.errors[0].message == "a value in column 2, which has no header: 'x'"


# ---- whole-file errors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "code", "says"),
    [
        ("", "empty", "empty"),
        ("\n\r\n  \n", "empty", "empty"),
        (" , ,\n,\n", "empty", "empty"),
        (HEADER, "empty", "no rows"),
        (HEADER + "\n,,,\n", "empty", "no rows"),
        ("email,name\x00\njane@corp.example,Jane\n", "not_text", "not text"),
        (b"email\njane@corp.example\n\xff\xfe\n", "not_text", "UTF-8"),
        ("email\njane@corp.example\n".encode("utf-16"), "not_text", "UTF-8"),
        ('email,name\njane@corp.example,"Jane\nbob@corp.example,Bob\n', "invalid_csv", "row 2"),
        ('email,name\njane@corp.example,"Jane"Doe\n', "invalid_csv", "after the closing quote"),
        ('email,name\njane@corp.example,"Ja""ne\n', "invalid_csv", "never closed"),
        ("jane@corp.example,Jane,member\n", "missing_header", "'jane@corp.example'"),
        ("name,role\nJane,member\n", "missing_column", "no email column"),
        ("email,name,grups,Team\nj@corp.example,,,\n", "unknown_columns", "'grups', 'Team'"),
        ("E-MAIL,name\nj@corp.example,\n", "unknown_columns", "'E-MAIL'"),
        ("email;name;role;groups\nj@corp.example;;;\n", "unknown_columns", "semicolons"),
        ("email,name,Email\nj@corp.example,,\n", "duplicate_column", "'Email'"),
        ("email,line,LINE\nj@corp.example,,\n", "duplicate_column", "'LINE'"),
    ],
)
def test_file_errors(data: str | bytes, code: str, says: str) -> None:
    with pytest.raises(ImportFileError) as raised:
        plan(data)
    assert raised.value.code == code
    assert says in raised.value.message


def test_at_most_max_rows() -> None:
    assert MAX_ROWS == 1000
    rows = [f"user{i}@corp.example,User {i},member,Sales" for i in range(MAX_ROWS)]
    # Blank lines are not rows, even many of them.
    result = plan(HEADER + "\n".join(rows) + "\n\n\n,,,\n")
    assert result.counts == {"add": 1000, "update": 0, "skip": 0, "error": 0}
    with pytest.raises(ImportFileError) as raised:
        plan(HEADER + "\n".join([*rows, "one-more@corp.example,,,"]) + "\n")
    assert raised.value.code == "too_many_rows"
    assert "more than 1000 rows" in raised.value.message


# ---- reading the file ------------------------------------------------------------------------


def test_line_numbers_are_spreadsheet_rows() -> None:
    text = (
        "email,name,groups\n"  # 1
        'a@corp.example,Ann,"Sales;\nEngineering;\n"\n'  # 2 (three lines of text)
        "\n"  # 3: blank, a row all the same
        "b@corp.example,Bob,Nope\n"  # 4
        'c@corp.example,"Carl\nSmith",\n'  # 5 (two lines of text)
        "d@corp.example,Dan,Nope\n"  # 6
        'e@corp.example,"Eve ""E"", Jr.",R&D\n'  # 7
    )
    result = plan(text)
    assert [(a.line, a.email) for a in result.actions] == [
        (2, "a@corp.example"),
        (7, "e@corp.example"),
    ]
    assert result.actions[0].groups == ("Engineering", "Sales")
    assert result.actions[1].name == 'Eve "E", Jr.'
    assert codes(result) == [
        (4, "groups", "unknown_group"),
        (5, "name", "invalid_name"),
        (6, "groups", "unknown_group"),
    ]


CANONICAL = (
    "email,name,role,groups\n"
    "jane@corp.example,Jane Doe,admin,Sales;Engineering\n"
    'bob@corp.example,"Doe, Bob",member,\n'
    "bad-address,,,\n"
)


@pytest.mark.parametrize(
    "variant",
    [
        CANONICAL.replace("\n", "\r\n"),
        CANONICAL.replace("\n", "\r"),
        "\ufeff" + CANONICAL,
        ("\ufeff" + CANONICAL.replace("\n", "\r\n")).encode("utf-8"),
        CANONICAL.encode("utf-8"),
        CANONICAL.rstrip("\n"),
        "\n\n" + CANONICAL.replace("\n", "\n\n"),
        CANONICAL.replace("email,name,role,groups", " EMAIL , Name,Role ,GROUPS"),
        (
            "groups,role,email,name\n"
            "Engineering | Sales,admin,JANE@corp.example,Jane Doe\n"
            ',member, bob@corp.example ,  "Doe, Bob"  \n'
            ",,bad-address,\n"
        ),
        (
            '"email","name","role","groups"\n'
            '"jane@corp.example","Jane Doe","admin","Sales;Engineering;Sales"\n'
            '"bob@corp.example","Doe, Bob","member",""\n'
            '"bad-address","","",""\n'
        ),
    ],
)
def test_the_same_file_written_differently(variant: str | bytes) -> None:
    expected = plan(CANONICAL)
    result = plan(variant)
    assert [dataclasses.replace(a, line=0) for a in result.actions] == [
        dataclasses.replace(a, line=0) for a in expected.actions
    ]
    assert [(e.code, e.column) for e in result.errors] == [("invalid_email", "email")]
    assert result.counts == {"add": 2, "update": 0, "skip": 0, "error": 1}
    assert result.digest == expected.digest


def test_the_plan_of_the_canonical_file() -> None:
    result = plan(CANONICAL)
    assert result.columns == ("email", "name", "role", "groups")
    assert result.actions == (
        RowAction(
            2, "add", "jane@corp.example", "Jane Doe", ("admin",), ("Engineering", "Sales"), None
        ),
        RowAction(3, "add", "bob@corp.example", "Doe, Bob", ("member",), (), None),
    )


@pytest.mark.parametrize(
    ("header", "row", "columns"),
    [
        ("email\n", "jane@corp.example\n", ("email",)),
        ("name,EMAIL\n", "Jane,jane@corp.example\n", ("name", "EMAIL")),
        ("\n\n  Email  \n", "jane@corp.example\n", ("Email",)),
        ("GROUPS,Role,eMail\n", "Sales,member,jane@corp.example\n", ("GROUPS", "Role", "eMail")),
        ("email,role,line,errors\n", "jane@corp.example,member,7,whatever\n", ("email", "role")),
    ],
)
def test_header_variants(header: str, row: str, columns: tuple[str, ...]) -> None:
    result = plan(header + row)
    assert result.columns == columns
    assert result.counts == {"add": 1, "update": 0, "skip": 0, "error": 0}
    assert result.actions[0].email == "jane@corp.example"


# ---- classification --------------------------------------------------------------------------


def test_an_import_adds_roles_and_groups_and_never_removes_any() -> None:
    ctx = context(
        existing("jane@corp.example", "Jane", ("admin",), ("Sales",)),
        existing("bob@corp.example", "Bob", ("member", "billing"), ("R&D", "Sales")),
        existing("carl@corp.example", "Carl"),
    )
    text = HEADER + (
        "jane@corp.example,,member,Engineering\n"  # adds member and Engineering, keeps the rest
        "bob@corp.example,,MEMBER,sales\n"  # a subset of what Bob holds: nothing to do
        "carl@corp.example,Carl Smith,,\n"  # a new name only
        "dora@corp.example,,,\n"  # a new user with nothing given
    )
    result = plan(text, ctx)
    assert result.actions == (
        RowAction(
            2,
            "update",
            "jane@corp.example",
            None,
            ("member",),
            ("Engineering",),
            user_id("jane@corp.example"),
        ),
        RowAction(3, "skip", "bob@corp.example", None, (), (), user_id("bob@corp.example")),
        RowAction(
            4, "update", "carl@corp.example", "Carl Smith", (), (), user_id("carl@corp.example")
        ),
        RowAction(5, "add", "dora@corp.example", None, (), (), None),
    )
    assert result.counts == {"add": 1, "update": 2, "skip": 1, "error": 0}


def test_what_a_user_holds_is_compared_as_the_tenant_spells_it() -> None:
    ctx = context(
        existing("jane@corp.example", "Jane", ("Admin", "SUPPORT-AGENT"), ("sales",)),
        existing("otto@corp.example", "Otto", groups=("ops",)),
    )
    text = HEADER + (
        "jane@corp.example,,admin;Support-Agent,Sales\n"
        "otto@corp.example,,,OPS;ops\n"  # two groups, Otto is in one of them
    )
    jane, otto = plan(text, ctx).actions
    assert (jane.kind, jane.roles, jane.groups) == ("skip", (), ())
    assert (otto.kind, otto.groups) == ("update", ("OPS",))


@pytest.mark.parametrize(
    ("current", "cell", "kind", "name"),
    [
        ("Jane", "", "skip", None),  # a blank cell leaves the name
        ("Jane", "Jane", "skip", None),
        ("Jane", "  Jane  ", "skip", None),
        ("Jane", "jane", "update", "jane"),
        (None, "Jane", "update", "Jane"),
        (None, "", "skip", None),
    ],
)
def test_names_change_only_when_the_cell_says_so(
    current: str | None, cell: str, kind: str, name: str | None
) -> None:
    ctx = context(existing("jane@corp.example", current))
    (action,) = plan(HEADER + f"jane@corp.example,{cell},,\n", ctx).actions
    assert (action.kind, action.name) == (kind, name)


def test_users_are_found_by_e_mail_whatever_its_case() -> None:
    ctx = context(existing("Jane@Corp.Example", "Jane"))
    assert set(ctx.users) == {"jane@corp.example"}
    (action,) = plan(HEADER + " JANE@corp.EXAMPLE ,Jane,,\n", ctx).actions
    assert (action.kind, action.email, action.user_id) == (
        "skip",
        "jane@corp.example",
        user_id("Jane@Corp.Example"),
    )


@pytest.mark.parametrize(
    ("can_grant_owner", "holds", "row_roles", "outcome", "granted"),
    [
        (False, (), "owner", "owner_not_allowed", ()),  # a new user
        (False, ("admin",), "owner", "owner_not_allowed", ()),
        (False, ("admin",), "member;Owner", "owner_not_allowed", ()),
        (False, ("owner",), "owner", "skip", ()),  # nothing granted, nothing refused
        (True, ("owner",), "owner;member", "update", ("member",)),
        (True, (), "owner", "add", ("owner",)),
        (True, ("admin",), "OWNER", "update", ("owner",)),
    ],
)
def test_only_an_owner_grants_owner(
    can_grant_owner: bool,
    holds: tuple[str, ...],
    row_roles: str,
    outcome: str,
    granted: tuple[str, ...],
) -> None:
    users = [existing("jane@corp.example", "Jane", holds)] if holds else []
    ctx = context(*users, can_grant_owner=can_grant_owner)
    result = plan(HEADER + f"jane@corp.example,,{row_roles},\n", ctx)
    if outcome == "owner_not_allowed":
        assert codes(result) == [(2, "role", "owner_not_allowed")]
        assert result.errors[0].message == "only an owner can grant the owner role"
        assert result.actions == ()
    else:
        assert result.errors == ()
        (action,) = result.actions
        assert (action.kind, action.roles) == (outcome, granted)


def test_only_an_owner_changes_an_owner() -> None:
    ctx = context(existing("jane@corp.example", "Jane", ("owner",)))
    result = plan(HEADER + "jane@corp.example,,member,\n", ctx)
    assert codes(result) == [(2, "email", "owner_not_allowed")]
    assert result.actions == ()
    unchanged = plan(HEADER + "jane@corp.example,,owner,\n", ctx)  # nothing would change
    assert [a.kind for a in unchanged.actions] == ["skip"]


@pytest.mark.parametrize(
    ("scim", "override", "row", "outcome", "roles", "groups"),
    [
        (True, False, "Janet,,", "scim_managed", (), ()),
        (True, False, "Janet,member,Sales", "scim_managed", (), ()),
        (True, True, "Janet,,", "update", (), ()),
        (True, False, ",member,Sales", "update", ("member",), ("Sales",)),  # access: allowed
        (True, False, "Jane,member,", "update", ("member",), ()),  # the same name is no change
        (True, False, "Jane,,", "skip", (), ()),
        (False, False, "Janet,,", "update", (), ()),
    ],
)
def test_the_idp_owns_the_names_of_scim_users(
    scim: bool,
    override: bool,
    row: str,
    outcome: str,
    roles: tuple[str, ...],
    groups: tuple[str, ...],
) -> None:
    ctx = context(existing("jane@corp.example", "Jane", scim=scim), allow_scim_override=override)
    result = plan(HEADER + f"jane@corp.example,{row}\n", ctx)
    if outcome == "scim_managed":
        assert codes(result) == [(2, "name", "scim_managed")]
        assert "identity provider" in result.errors[0].message
        assert result.actions == ()
    else:
        assert result.errors == ()
        (action,) = result.actions
        assert (action.kind, action.roles, action.groups) == (outcome, roles, groups)


# ---- the promise of a confirm ----------------------------------------------------------------


def test_planning_again_after_applying_gives_only_skips_and_the_same_errors() -> None:
    ctx = context(
        existing("jane@corp.example", "Jane", ("member",), ("Sales",)),
        existing("scim@corp.example", "Sam", ("readonly",), scim=True),
        existing("same@corp.example", "Same", ("member",), ("R&D",)),
        can_grant_owner=True,
    )
    text = HEADER + (
        "jane@corp.example,Jane Doe,admin;member,Engineering|Sales\n"  # update
        "scim@corp.example,,billing,R&D\n"  # update (access only)
        "scim@corp.example,Samuel,,\n"  # duplicate
        "same@corp.example,Same,MEMBER,r&d\n"  # skip
        "new@corp.example,New Person,owner;Support-Agent,Engineering\n"  # add
        "other@corp.example,,,\n"  # add
        "typo@corp,,,\n"  # invalid_email
        "x@corp.example,,janitor,\n"  # unknown_role
    )
    first = plan(text, ctx)
    assert first.counts == {"add": 2, "update": 2, "skip": 1, "error": 3}
    after = apply(ctx, first)
    assert after.users["jane@corp.example"] == ExistingUser(
        user_id("jane@corp.example"),
        "Jane Doe",
        frozenset({"admin", "member"}),
        frozenset({"Engineering", "Sales"}),
    )
    assert after.users["new@corp.example"].roles == {"owner", "Support-Agent"}

    second = plan(text, after)
    assert {action.kind for action in second.actions} == {"skip"}
    assert [a.line for a in second.actions] == [a.line for a in first.actions]
    assert second.counts == {"add": 0, "update": 0, "skip": 5, "error": 3}
    assert second.errors == first.errors
    assert second.digest == first.digest
    assert apply(after, second) == after


def test_a_thousand_rows_fifty_of_them_bad() -> None:
    """Preview counts exact, confirm creates exactly the 950, a second confirm creates
    nothing."""
    ctx = context()
    kinds = ["invalid_email", "duplicate", "unknown_role", "unknown_group", "name_too_long"]
    kinds += ["owner_not_allowed", "missing_email", "invalid_name", "extra_cells"]
    rows: list[list[str]] = []
    bad: dict[int, str] = {}  # line -> the error
    for i in range(MAX_ROWS):
        row = [f"user{i}@corp.example", f"User {i}", "member", "Sales;Engineering", ""]
        if i % 20 == 7:
            kind = kinds[len(bad) % len(kinds)]
            bad[i + 2] = kind
            if kind == "invalid_email":
                row[0] = f"user{i}.corp.example"
            elif kind == "duplicate":
                row[0] = f"USER{i - 1}@corp.example"
            elif kind == "unknown_role":
                row[2] = "member;superuser"
            elif kind == "unknown_group":
                row[3] = "Sales;Marketing"
            elif kind == "name_too_long":
                row[1] = "x" * 257
            elif kind == "owner_not_allowed":
                row[2] = "owner"
            elif kind == "missing_email":
                row[0] = " "
            elif kind == "invalid_name":
                row[1] = "User\nWith a line break"
            else:
                row[4] = "surprise"
        rows.append(row)
    text = row_csv(rows, "email,name,role,groups,\n")

    preview = plan(text, ctx)
    assert len(bad) == 50
    assert preview.counts == {"add": 950, "update": 0, "skip": 0, "error": 50}
    assert {e.line: e.code for e in preview.errors} == bad
    assert len(preview.errors) == 50
    assert Counter(bad.values()) == Counter(e.code for e in preview.errors)
    assert len(set(Counter(bad.values()).values()) - {5, 6}) == 0

    confirmed = apply(ctx, preview)
    assert len(confirmed.users) == 950
    assert {a.email for a in preview.actions} == set(confirmed.users)

    again = plan(text, confirmed)
    assert again.counts == {"add": 0, "update": 0, "skip": 950, "error": 50}
    assert again.errors == preview.errors
    assert again.digest == preview.digest
    assert apply(confirmed, again).users == confirmed.users


# ---- the error file and the digest -----------------------------------------------------------


def test_the_error_csv_round_trips_through_the_csv_module() -> None:
    text = (
        "Name,EMAIL,groups\r\n"
        "Good,good@corp.example,Sales\r\n"
        '"Smith, ""Bad""",bad@corp,"Sales;\r\nNope"\r\n'
        "=cmd,  spaced@corp  ,\r\n"
    )
    result = plan(text)
    rendered = error_csv(result)
    parsed = list(csv.reader(io.StringIO(rendered, newline="")))
    assert parsed == [
        ["Name", "EMAIL", "groups", "line", "errors"],
        [
            'Smith, "Bad"',
            "bad@corp",
            "Sales;\r\nNope",
            "3",
            "email: not a valid e-mail address (the domain needs a dot); "
            "groups: unknown group 'Nope'",
        ],
        [
            "=cmd",
            "  spaced@corp  ",
            "",
            "4",
            "email: not a valid e-mail address (the domain needs a dot)",
        ],
    ]
    assert rendered.endswith("\r\n")


def test_the_error_csv_corrected_imports_as_it_is() -> None:
    result = plan(HEADER + "ok@corp.example,,,\nbad@corp,Bad,member,Nope\n,,extra,\n")
    assert result.counts["error"] == 2
    corrected = error_csv(result).replace("bad@corp,", "bad@corp.example,").replace("Nope", "Sales")
    corrected = corrected.replace("\r\n,,extra,", "\r\nfixed@corp.example,,member,")
    again = plan(corrected)
    assert again.errors == ()
    assert [(a.line, a.email, a.groups) for a in again.actions] == [
        (2, "bad@corp.example", ("Sales",)),
        (3, "fixed@corp.example", ()),
    ]


def test_an_import_without_errors_renders_only_the_header() -> None:
    assert error_csv(plan(CANONICAL.replace("bad-address", "ok@corp.example"))) == (
        "email,name,role,groups,line,errors\r\n"
    )


@pytest.mark.parametrize(
    "changed",
    [
        CANONICAL.replace("Jane Doe", "Jane Roe"),
        CANONICAL.replace("admin", "member"),
        CANONICAL.replace("Sales;", ""),
        CANONICAL.replace("Sales;", "sales;"),  # a name's case may tell two groups apart
        CANONICAL.replace("bad-address,,,\n", ""),
        CANONICAL.replace("bad-address,,,", "bad-address,,,,x"),
        HEADER + "\n".join(reversed(CANONICAL.splitlines()[1:])) + "\n",
    ],
)
def test_the_digest_tells_different_imports_apart(changed: str) -> None:
    digest = plan(CANONICAL).digest
    assert re.fullmatch("[0-9a-f]{64}", digest)
    assert plan(changed).digest != digest


def test_the_digest_depends_on_the_file_only() -> None:
    ctx = context(existing("jane@corp.example", "Jane"), can_grant_owner=True)
    assert plan(CANONICAL, ctx).digest == plan(CANONICAL).digest
