"""RFC 7644 §3.4.2.2 filters and §3.5.2 PATCH paths: grammar, canonical text and evaluation."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from scim.errors import InvalidFilterError, InvalidPathError
from scim.filter import (
    And,
    AttrPath,
    Compare,
    Filter,
    Not,
    Or,
    PatchPath,
    Present,
    ValuePath,
    evaluate,
    format_filter,
    parse_filter,
    parse_path,
)
from scim.schema import GROUP, USER, Attribute, ResourceType, Schema, Type

VECTORS = Path(__file__).parent / "vectors"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"


def _load(relative: str) -> Any:
    return json.loads((VECTORS / relative).read_text(encoding="utf-8"))


def _cases(relative: str) -> list[Any]:
    vectors = _load(relative)
    return [pytest.param(v, id=v["filter"][:60] or "empty") for v in vectors]


FULL_USER: dict[str, Any] = _load("rfc7643/8.2-full-user.json")["resource"]
ENTERPRISE_USER: dict[str, Any] = _load("rfc7643/8.3-enterprise-user.json")["resource"]
GROUP_EXAMPLE: dict[str, Any] = _load("rfc7643/8.4-group.json")["resource"]


def _path(attr: str, sub: str | None = None, uri: str | None = None) -> AttrPath:
    return AttrPath(uri, attr, sub)


def _pr(attr: str) -> Present:
    return Present(_path(attr))


# --- Vectors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("vector", _cases("rfc7644/filters.json"))
def test_rfc_filter_parses_to_its_canonical_form(vector: dict[str, Any]) -> None:
    parsed = parse_filter(vector["filter"])
    assert format_filter(parsed) == vector["canonical"]
    assert parse_filter(format_filter(parsed)) == parsed
    assert parse_filter(vector["canonical"]) == parsed


@pytest.mark.parametrize("vector", _cases("rfc7644/bad_filters.json"))
def test_malformed_filter_names_the_column(vector: dict[str, Any]) -> None:
    limits = {key: vector[key] for key in ("max_length", "max_depth") if key in vector}
    with pytest.raises(InvalidFilterError) as caught:
        parse_filter(vector["filter"], **limits)
    assert caught.value.detail == vector["detail"]
    assert caught.value.scim_type == "invalidFilter"
    assert caught.value.status == 400
    if vector["column"] is None:
        assert "column" not in caught.value.detail
    else:
        assert caught.value.detail.endswith(f" at column {vector['column']}")


def test_rfc_filter_vectors_cover_the_grammar() -> None:
    vectors = _load("rfc7644/filters.json")
    assert all(v["description"].strip() for v in vectors)
    words = {w for v in vectors for w in format_filter(parse_filter(v["filter"])).split()}
    expected = {"eq", "ne", "co", "sw", "gt", "ge", "lt", "le", "pr", "and", "or", "not"}
    assert expected <= words


# --- Tree shapes -----------------------------------------------------------------------------


def test_brief_error_example_column() -> None:
    with pytest.raises(InvalidFilterError) as caught:
        parse_filter('userName "john"')
    assert caught.value.detail == "expected a comparison operator at column 10"


def test_and_binds_tighter_than_or() -> None:
    assert parse_filter("a pr or b pr and c pr") == Or(_pr("a"), And(_pr("b"), _pr("c")))
    assert parse_filter("a pr and b pr or c pr") == Or(And(_pr("a"), _pr("b")), _pr("c"))


def test_not_binds_tighter_than_and() -> None:
    assert parse_filter("not (a pr) and b pr") == And(Not(_pr("a")), _pr("b"))
    assert parse_filter("not(a pr or b pr)") == Not(Or(_pr("a"), _pr("b")))


def test_and_and_or_associate_to_the_left() -> None:
    assert parse_filter("a pr and b pr and c pr") == And(And(_pr("a"), _pr("b")), _pr("c"))
    assert parse_filter("a pr or b pr or c pr") == Or(Or(_pr("a"), _pr("b")), _pr("c"))


def test_parentheses_override_precedence() -> None:
    assert parse_filter("(a pr or b pr) and c pr") == And(Or(_pr("a"), _pr("b")), _pr("c"))


def test_keywords_and_operators_are_case_insensitive() -> None:
    assert parse_filter("a PR AnD NoT (b Eq TRUE) oR c nE Null") == Or(
        And(_pr("a"), Not(Compare(_path("b"), "eq", True))), Compare(_path("c"), "ne", None)
    )


@pytest.mark.parametrize("op", ["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"])
def test_every_comparison_operator_parses_lower_cased(op: str) -> None:
    assert parse_filter(f'title {op.upper()} "x"') == Compare(_path("title"), op, "x")


def test_urn_prefixed_paths_split_at_the_last_colon() -> None:
    assert parse_filter(f'{CORE_USER}:userName sw "J"') == Compare(
        AttrPath(CORE_USER, "userName", None), "sw", "J"
    )
    assert parse_filter(f"{ENTERPRISE}:manager.value pr") == Present(
        AttrPath(ENTERPRISE, "manager", "value")
    )
    assert parse_filter(f"{ENTERPRISE}:department pr") == Present(
        AttrPath(ENTERPRISE, "department", None)
    )


def test_attribute_names_keep_their_case() -> None:
    assert parse_filter("NAME.FamilyName pr") == Present(AttrPath(None, "NAME", "FamilyName"))


def test_ref_is_a_sub_attribute_name() -> None:
    assert parse_filter("members.$ref pr") == Present(_path("members", "$ref"))
    assert parse_filter('members[$ref eq "x"]') == ValuePath(
        _path("members"), Compare(_path("$ref"), "eq", "x")
    )


def test_name_chars_include_dash_underscore_and_digits() -> None:
    assert parse_filter("x509Certificates.value pr") == Present(_path("x509Certificates", "value"))
    assert parse_filter("a-b_c9 pr") == Present(_path("a-b_c9"))


def test_value_filter_paths_are_relative() -> None:
    parsed = parse_filter('emails[type eq "work" and value co "@example.com"]')
    assert parsed == ValuePath(
        _path("emails"),
        And(Compare(_path("type"), "eq", "work"), Compare(_path("value"), "co", "@example.com")),
    )


def test_value_filter_combines_and_negates() -> None:
    assert parse_filter('emails[type eq "work"] and userName sw "a"') == And(
        ValuePath(_path("emails"), Compare(_path("type"), "eq", "work")),
        Compare(_path("userName"), "sw", "a"),
    )
    assert parse_filter('not (emails[type eq "work"])') == Not(
        ValuePath(_path("emails"), Compare(_path("type"), "eq", "work"))
    )


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('"plain"', "plain"),
        (r'"q\"b\\s\/f\bf\fn\nr\rt\t"', 'q"b\\s/f\bf\fn\nr\rt\t'),
        (r'"\u00e9\u20AC"', "é€"),
        (r'"\ud83d\ude00"', "\U0001f600"),
        ('"ünïcödé"', "ünïcödé"),
        ('""', ""),
        ("true", True),
        ("FALSE", False),
        ("Null", None),
        ("0", 0),
        ("-12", -12),
        ("42", 42),
        ("1.5", 1.5),
        ("-0.25", -0.25),
        ("1e3", 1000.0),
        ("2E-2", 0.02),
        ("1.5e+2", 150.0),
    ],
)
def test_literals_are_json(text: str, value: object) -> None:
    parsed = parse_filter(f"x eq {text}")
    assert isinstance(parsed, Compare)
    assert parsed.value == value
    assert type(parsed.value) is type(value)


def test_runs_of_whitespace_are_tolerated() -> None:
    expected = And(Compare(_path("a"), "eq", "x"), Not(_pr("b")))
    assert parse_filter('  a   eq\t"x"\n and  not  ( b pr )  ') == expected
    assert parse_filter('a eq"x"and not(b pr)') == expected


def test_filter_of_exactly_max_length_parses() -> None:
    text = 'userName eq "' + "a" * (4096 - 14) + '"'
    assert len(text) == 4096
    assert isinstance(parse_filter(text), Compare)
    with pytest.raises(InvalidFilterError, match=r"^filter is longer than 4096 characters$"):
        parse_filter(text + " ")


def test_depth_limit_counts_chains_and_groups() -> None:
    chain_33 = " or ".join(["title pr"] * 33)
    parsed = parse_filter(chain_33)
    assert parse_filter(format_filter(parsed)) == parsed
    with pytest.raises(InvalidFilterError, match="nests deeper than 32 levels"):
        parse_filter(chain_33 + " or title pr")
    nested_32 = "(" * 32 + "title pr" + ")" * 32
    assert parse_filter(nested_32) == _pr("title")
    with pytest.raises(InvalidFilterError, match="nests deeper than 5 levels at column 6"):
        parse_filter("(" * 6 + "title pr" + ")" * 6, max_depth=5)


def test_very_deep_input_fails_cleanly() -> None:
    text = "(" * 4000 + "title pr" + ")" * 4000
    with pytest.raises(InvalidFilterError, match=r"at column 33$"):
        parse_filter(text, max_length=10_000)


# --- Canonical text --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("node", "text"),
    [
        (And(_pr("a"), And(_pr("b"), _pr("c"))), "a pr and (b pr and c pr)"),
        (Or(_pr("a"), Or(_pr("b"), _pr("c"))), "a pr or (b pr or c pr)"),
        (And(Or(_pr("a"), _pr("b")), _pr("c")), "(a pr or b pr) and c pr"),
        (And(_pr("a"), Or(_pr("b"), _pr("c"))), "a pr and (b pr or c pr)"),
        (Or(And(_pr("a"), _pr("b")), And(_pr("c"), _pr("d"))), "a pr and b pr or c pr and d pr"),
        (Not(Not(_pr("a"))), "not (not (a pr))"),
        (And(Not(_pr("a")), _pr("b")), "not (a pr) and b pr"),
        (Compare(_path("x"), "eq", 'say "hi"\n\\'), r'x eq "say \"hi\"\n\\"'),
        (Compare(_path("x"), "eq", "é/€"), 'x eq "é/€"'),
        (Compare(_path("x"), "eq", 1.0), "x eq 1.0"),
        (Compare(_path("x"), "eq", 1e20), "x eq 1e+20"),
        (Compare(_path("x"), "eq", -7), "x eq -7"),
        (Compare(_path("x"), "ne", False), "x ne false"),
        (Compare(_path("x"), "eq", None), "x eq null"),
        (Present(AttrPath(ENTERPRISE, "manager", "value")), f"{ENTERPRISE}:manager.value pr"),
        (
            ValuePath(_path("emails"), Or(_pr("type"), Not(_pr("value")))),
            "emails[type pr or not (value pr)]",
        ),
    ],
)
def test_format_filter_round_trips(node: Filter, text: str) -> None:
    assert format_filter(node) == text
    assert parse_filter(text) == node


def test_format_filter_refuses_non_finite_numbers() -> None:
    with pytest.raises(ValueError, match="no JSON form"):
        format_filter(Compare(_path("x"), "eq", float("inf")))


# --- PATCH paths -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("members", PatchPath(_path("members"), None, None)),
        ("name.familyName", PatchPath(_path("name", "familyName"), None, None)),
        (
            'emails[type eq "work"]',
            PatchPath(_path("emails"), Compare(_path("type"), "eq", "work"), None),
        ),
        (
            'emails[type eq "work"].value',
            PatchPath(_path("emails"), Compare(_path("type"), "eq", "work"), "value"),
        ),
        (
            'members[value eq "2819c223-7f76-453a-919d-413861904646"]',
            PatchPath(
                _path("members"),
                Compare(_path("value"), "eq", "2819c223-7f76-453a-919d-413861904646"),
                None,
            ),
        ),
        (
            'members[value eq "2819c223-7f76-453a-919d-413861904646"].displayName',
            PatchPath(
                _path("members"),
                Compare(_path("value"), "eq", "2819c223-7f76-453a-919d-413861904646"),
                "displayName",
            ),
        ),
        (
            f"{ENTERPRISE}:manager",
            PatchPath(AttrPath(ENTERPRISE, "manager", None), None, None),
        ),
        (
            f"{ENTERPRISE}:manager.value",
            PatchPath(AttrPath(ENTERPRISE, "manager", "value"), None, None),
        ),
        (
            'addresses[type eq "work" and primary eq true].streetAddress',
            PatchPath(
                _path("addresses"),
                And(Compare(_path("type"), "eq", "work"), Compare(_path("primary"), "eq", True)),
                "streetAddress",
            ),
        ),
        (
            'members[value eq "x"].$ref',
            PatchPath(_path("members"), Compare(_path("value"), "eq", "x"), "$ref"),
        ),
        (
            'emails[not (type eq "work")]',
            PatchPath(_path("emails"), Not(Compare(_path("type"), "eq", "work")), None),
        ),
    ],
)
def test_parse_path(text: str, expected: PatchPath) -> None:
    assert parse_path(text) == expected


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("", "expected an attribute path at column 1"),
        ('"emails"', "expected an attribute path at column 1"),
        ("name.", "expected an attribute name at column 6"),
        ("name.familyName.x", "unexpected character '.' in attribute path at column 16"),
        ("emails value", "expected '[' or end of path at column 8"),
        ('emails[type eq "work"', "expected ']' at column 22"),
        ('emails[type eq "work"]x', "expected '.' or end of path at column 23"),
        ('emails[type eq "work"].', "expected an attribute name at column 24"),
        (
            'emails[type eq "work"].value.x',
            "unexpected character '.' in attribute path at column 29",
        ),
        ('emails[type eq "work"].value x', "expected end of path at column 30"),
        ('emails[type eq "work"].urn:x', "unexpected character ':' in attribute path at column 27"),
        (
            'name.givenName[value eq "x"]',
            "a value filter cannot follow a sub-attribute at column 15",
        ),
        (
            'emails[type eq "work" and ims[value pr]]',
            "a value filter cannot contain another value filter at column 30",
        ),
        (
            "emails[type eq]",
            "expected a value (a string, number, true, false or null) at column 15",
        ),
        ("emails[]", "expected an attribute path, 'not' or '(' at column 8"),
        ("emails[type pr", "expected ']' at column 15"),
        ('emails[type eq "work]', "unterminated string at column 16"),
    ],
)
def test_parse_path_errors_name_the_column(text: str, detail: str) -> None:
    with pytest.raises(InvalidPathError) as caught:
        parse_path(text)
    assert caught.value.detail == detail
    assert caught.value.scim_type == "invalidPath"


def test_parse_path_refuses_overlong_text() -> None:
    with pytest.raises(InvalidPathError, match=r"^path is longer than 4096 characters$"):
        parse_path("a" * 4097)


# --- Evaluation against RFC 7643 §8.2 ------------------------------------------------------


def _matches(text: str, resource: dict[str, Any] | None = None, rt: ResourceType = USER) -> bool:
    return evaluate(parse_filter(text), FULL_USER if resource is None else resource, rt)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # eq, and case folding for caseExact=false attributes (RFC 7643 §2.2)
        ('userName eq "bjensen@example.com"', True),
        ('userName eq "BJensen@Example.COM"', True),
        ('userName eq "bjensen"', False),
        ('USERNAME Eq "bjensen@example.com"', True),
        (f'{CORE_USER}:userName eq "bjensen@example.com"', True),
        ('name.familyName eq "jensen"', True),
        # id and externalId are caseExact (RFC 7643 §3.1)
        ('id eq "2819c223-7f76-453a-919d-413861904646"', True),
        ('id eq "2819C223-7F76-453A-919D-413861904646"', False),
        ('externalId eq "701984"', True),
        ('meta.resourceType eq "user"', False),
        ('meta.resourceType eq "User"', True),
        # ne is the negation of eq
        ('userType ne "Employee"', False),
        ('userType ne "employee"', False),
        ('userType ne "Intern"', True),
        ('id ne "2819C223-7F76-453A-919D-413861904646"', True),
        # co, sw, ew
        ('name.familyName co "ens"', True),
        ('name.familyName co "ENS"', True),
        ('name.familyName co "xyz"', False),
        ('title sw "tour"', True),
        ('title sw "guide"', False),
        ('title ew "GUIDE"', True),
        ('title ew "tour"', False),
        ('id co "7F76"', False),
        ('id co "7f76"', True),
        ('externalId sw "70"', True),
        ('externalId ew "84"', True),
        ('photos.value ew "/f"', False),
        ('photos.value ew "/F"', True),
        ('profileUrl sw "HTTPS://login.example.com"', True),
        # gt, ge, lt, le on strings: code-point order after folding
        ('userName gt "b"', True),
        ('userName lt "b"', False),
        ('userName ge "BJENSEN@EXAMPLE.COM"', True),
        ('userName le "BJENSEN@EXAMPLE.COM"', True),
        ('userName gt "BJENSEN@EXAMPLE.COM"', False),
        ('userName lt "c"', True),
        ('externalId gt "70"', True),
        ('externalId le "701983"', False),
        ('id gt "2819C"', True),
        # dateTime: chronological, not textual
        ('meta.lastModified gt "2011-05-13T04:42:34Z"', False),
        ('meta.lastModified ge "2011-05-13T04:42:34Z"', True),
        ('meta.lastModified lt "2011-05-13T04:42:34Z"', False),
        ('meta.lastModified le "2011-05-13T04:42:34Z"', True),
        ('meta.lastModified eq "2011-05-13T04:42:34Z"', True),
        ('meta.lastModified ne "2011-05-13T04:42:34Z"', False),
        ('meta.lastModified gt "2011-05-13T04:42:33.999Z"', True),
        ('meta.lastModified lt "2011-05-13T04:42:34.000001Z"', True),
        ('meta.lastModified eq "2011-05-13T06:42:34+02:00"', True),
        ('meta.lastModified eq "2011-05-12T23:42:34-05:00"', True),
        ('meta.lastModified gt "2011-05-13T05:00:00+01:00"', True),
        ('meta.lastModified eq "2011-05-13T04:42:34"', True),
        ('meta.lastModified eq "2011-05-13t04:42:34z"', True),
        ('meta.created lt "2011-01-01T00:00:00Z"', True),
        ('meta.created gt "2010-01-23T04:56:22Z"', False),
        # booleans
        ("active eq true", True),
        ("active eq false", False),
        ("active ne false", True),
        ("active ne true", False),
        ("emails.primary eq true", True),
        ("addresses[primary eq true]", True),
        ('addresses[type eq "home" and primary eq true]', False),
        ("phoneNumbers.primary eq true", False),
        # multi-valued: any value matches
        ('emails.value eq "babs@jensen.org"', True),
        ('emails eq "BABS@jensen.org"', True),
        ('emails co "jensen.org"', True),
        ('emails sw "nobody"', False),
        ('phoneNumbers.type eq "mobile"', True),
        ('emails.type eq "other"', False),
        ('groups.display eq "us employees"', True),
        ('groups.$ref ew "c726e15c55b5"', True),
        ('groups.value eq "71ddacd2-a8e7-49b8-a5db-ae50d0a5bfd7"', True),
        # ne on multi-valued: true only when no value equals
        ('emails ne "babs@jensen.org"', False),
        ('emails ne "nobody@example.com"', True),
        ('emails.type ne "work"', False),
        ('emails.type ne "other"', True),
        # value filters: all tests on the same value
        ('emails[type eq "work" and value co "@example.com"]', True),
        ('emails[type eq "home" and value co "@example.com"]', False),
        ('emails.type eq "home" and emails.value co "@example.com"', True),
        ('emails[type eq "work" and not (primary eq true)]', False),
        ('emails[type eq "home" and not (primary eq true)]', True),
        ("emails[primary pr]", True),
        ("emails[display pr]", False),
        ('ims[type eq "xmpp" and value co "@foo.com"]', False),
        (
            'emails[type eq "work" and value co "@example.com"] or '
            'ims[type eq "xmpp" and value co "@foo.com"]',
            True,
        ),
        ('EMAILS[TYPE EQ "work"]', True),
        ('name[givenName eq "barbara"]', True),
        ('meta[lastModified gt "2011-01-01T00:00:00Z"]', True),
        # not
        ('not (userType eq "Employee")', False),
        ('not (emails co "example.org")', True),
        ('not (emails[type eq "work"])', False),
        (
            'userType ne "Employee" and not (emails co "example.com" or '
            'emails.value co "example.org")',
            False,
        ),
        (
            'userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")',
            True,
        ),
        ('userType eq "Employee" and (emails.type eq "work")', True),
        # precedence: a or b and c  is  a or (b and c)
        ('title pr or nickName eq "x" and userType eq "x"', True),
        ('(title pr or nickName eq "x") and userType eq "x"', False),
        ('userType eq "x" and nickName eq "x" or title pr', True),
        ('userType eq "x" and (nickName eq "x" or title pr)', False),
        ("not (title pr) or title pr and active eq true", True),
        # null: eq null is "not pr", ne null is "pr"
        ("nickName eq null", False),
        ("nickName ne null", True),
        ("name.middleName eq null", False),
        ("emails.display eq null", True),
        ("emails.display ne null", False),
        (f"{ENTERPRISE}:department eq null", True),
        (f"{ENTERPRISE}:department ne null", False),
        ("name eq null", False),
        ("emails[display eq null]", True),
        # pr
        ("title pr", True),
        ("emails pr", True),
        ("name pr", True),
        ("name.honorificPrefix pr", True),
        ("emails.display pr", False),
        ("x509Certificates.display pr", False),
        ("groups.$ref pr", True),
        (f"{ENTERPRISE}:employeeNumber pr", False),
        (f"{ENTERPRISE}:manager.value pr", False),
        ("entitlements pr", False),
        # absent attributes are ne any non-null value
        (f'{ENTERPRISE}:department ne "Tour Operations"', True),
        ('roles ne "admin"', True),
        ('roles eq "admin"', False),
        # binary: eq and ne only, caseExact
        ('x509Certificates.value eq "MIIDQZ"', False),
        ('x509Certificates.value ne "MIIDQZ"', True),
    ],
)
def test_evaluate_full_user(text: str, expected: bool) -> None:
    assert _matches(text) is expected


def test_evaluate_binary_equality_is_exact() -> None:
    cert = FULL_USER["x509Certificates"][0]["value"]
    assert _matches(f'x509Certificates.value eq "{cert}"') is True
    assert _matches(f'x509Certificates.value eq "{cert.lower()}"') is False


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f'{ENTERPRISE}:department eq "tour operations"', True),
        (f'{ENTERPRISE}:department eq "Tour"', False),
        (f'{ENTERPRISE}:manager.value eq "26118915-6090-4610-87e4-49d8ca9f808d"', True),
        (f'{ENTERPRISE}:manager.displayName sw "john"', True),
        (f"{ENTERPRISE}:employeeNumber pr", True),
        (f"{ENTERPRISE}:manager pr", True),
        (f'{ENTERPRISE}:costCenter gt "4129"', True),
        (f'{ENTERPRISE.upper()}:DEPARTMENT co "operations"', True),
        (f'{ENTERPRISE}:manager[displayName eq "John Smith"]', True),
        (f'not ({ENTERPRISE}:division eq "Theme Park")', False),
    ],
)
def test_evaluate_enterprise_extension(text: str, expected: bool) -> None:
    assert _matches(text, ENTERPRISE_USER) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('members[value eq "2819c223-7f76-453a-919d-413861904646"]', True),
        ('members[value eq "2819C223-7F76-453A-919D-413861904646"]', False),
        ('members.value eq "902c246b-6245-4190-8e05-00816be7344a"', True),
        ('members.display co "mandy"', True),
        ('members.$ref ew "413861904646"', True),
        ('members[type eq "User"]', False),
        ("members.type pr", False),
        ('displayName eq "tour guides"', True),
        ('members ne "902c246b-6245-4190-8e05-00816be7344a"', False),
    ],
)
def test_evaluate_group(text: str, expected: bool) -> None:
    assert _matches(text, GROUP_EXAMPLE, GROUP) is expected


@pytest.mark.parametrize("empty", [None, "", [], {}])
def test_pr_is_false_for_empty_values(empty: object) -> None:
    user = copy.deepcopy(FULL_USER)
    user["title"] = empty
    user["emails"] = empty
    user["name"] = empty
    assert _matches("title pr", user) is False
    assert _matches("emails pr", user) is False
    assert _matches("name pr", user) is False
    assert _matches("name.givenName pr", user) is False
    assert _matches("title eq null", user) is True
    assert _matches("emails ne null", user) is False


def test_pr_on_sub_attribute_needs_a_non_empty_value() -> None:
    user = copy.deepcopy(FULL_USER)
    user["emails"] = [{"value": "", "type": "work"}, {"type": "home"}]
    assert _matches("emails.value pr", user) is False
    assert _matches("emails.type pr", user) is True
    user["emails"][1]["value"] = "x@example.com"
    assert _matches("emails.value pr", user) is True


def test_absent_attribute_matches_no_comparison() -> None:
    assert _matches('nickName eq "Babs"', {}) is False
    assert _matches('nickName ne "Babs"', {}) is True
    assert _matches('emails[type eq "work"]', {}) is False
    assert _matches('meta.lastModified lt "2100-01-01T00:00:00Z"', {}) is False


def test_stored_values_of_the_wrong_type_match_nothing() -> None:
    user = {"active": "true", "userName": 5, "meta": {"lastModified": "yesterday"}}
    assert _matches("active eq true", user) is False
    assert _matches('userName eq "5"', user) is False
    assert _matches('meta.lastModified lt "2100-01-01T00:00:00Z"', user) is False


# --- Numbers, on a resource type that has them --------------------------------------------

DEVICE = ResourceType(
    name="Device",
    endpoint="/Devices",
    description="A resource type with number and dateTime attributes.",
    schema=Schema(
        id="urn:example:params:scim:schemas:Device",
        name="Device",
        description="Device",
        attributes=(
            Attribute("serial", type=Type.INTEGER),
            Attribute("weight", type=Type.DECIMAL),
            Attribute("readings", type=Type.INTEGER, multi_valued=True),
            Attribute("seen", type=Type.DATETIME, multi_valued=True),
            Attribute("tags", multi_valued=True),
        ),
    ),
)
DEVICE_RESOURCE = {
    "serial": 42,
    "weight": 1.5,
    "readings": [3, 7, 11],
    "seen": ["2020-01-01T00:00:00Z", "2021-06-30T12:00:00+02:00"],
    "tags": ["Blue", "green"],
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("serial eq 42", True),
        ("serial eq 42.0", True),
        ("serial ne 42", False),
        ("serial gt 41", True),
        ("serial gt 42", False),
        ("serial ge 42", True),
        ("serial lt 43", True),
        ("serial le 41", False),
        ("weight eq 1.5", True),
        ("weight gt 1", True),
        ("weight lt 1.25", False),
        ("weight ge 15e-1", True),
        ("readings eq 7", True),
        ("readings gt 10", True),
        ("readings lt 3", False),
        ("readings ne 7", False),
        ("readings ne 8", True),
        ('seen gt "2021-01-01T00:00:00Z"', True),
        ('seen eq "2021-06-30T10:00:00Z"', True),
        ('seen lt "2019-12-31T23:59:59Z"', False),
        ('tags eq "blue"', True),
        ('tags sw "GR"', True),
        ('tags ne "red"', True),
        ("serial eq null", False),
        ("tags pr", True),
    ],
)
def test_evaluate_numbers_and_multi_valued_simple(text: str, expected: bool) -> None:
    assert _matches(text, DEVICE_RESOURCE, DEVICE) is expected


# --- Evaluation errors -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "detail", "rt"),
    [
        ('nosuch eq "x"', "unknown attribute 'nosuch'", USER),
        ("name.nosuch pr", "unknown attribute 'name.nosuch'", USER),
        ('emails[nosuch eq "x"]', "unknown attribute 'emails.nosuch'", USER),
        ('emails[value.x eq "x"]', "unknown attribute 'emails.value.x'", USER),
        (f'emails[{CORE_USER}:type eq "x"]', f"unknown attribute 'emails.{CORE_USER}:type'", USER),
        (
            'urn:ietf:params:scim:schemas:core:2.0:Group:displayName eq "x"',
            "unknown attribute 'urn:ietf:params:scim:schemas:core:2.0:Group:displayName'",
            USER,
        ),
        ('userName eq "x"', "unknown attribute 'userName'", GROUP),
        (
            'schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"',
            "unknown attribute 'schemas'",
            USER,
        ),
        ("active gt true", "operator 'gt' is not allowed on boolean attribute 'active'", USER),
        ("active le false", "operator 'le' is not allowed on boolean attribute 'active'", USER),
        ('active co "t"', "operator 'co' is not allowed on boolean attribute 'active'", USER),
        (
            'active eq "true"',
            "attribute 'active' is of type boolean; compare it with true or false",
            USER,
        ),
        (
            "active eq 1",
            "attribute 'active' is of type boolean; compare it with true or false",
            USER,
        ),
        (
            'emails[primary eq "yes"]',
            "attribute 'emails.primary' is of type boolean; compare it with true or false",
            USER,
        ),
        (
            'x509Certificates.value sw "MII"',
            "operator 'sw' is not allowed on binary attribute 'x509Certificates.value'",
            USER,
        ),
        (
            'x509Certificates gt "MII"',
            "operator 'gt' is not allowed on binary attribute 'x509Certificates'",
            USER,
        ),
        ("userName eq 5", "attribute 'userName' is of type string; compare it with a string", USER),
        (
            "userName eq true",
            "attribute 'userName' is of type string; compare it with a string",
            USER,
        ),
        (
            "profileUrl co 1",
            "attribute 'profileUrl' is of type reference; compare it with a string",
            USER,
        ),
        (
            'meta.created co "2010"',
            "operator 'co' is not allowed on dateTime attribute 'meta.created'",
            USER,
        ),
        (
            'meta.created gt "yesterday"',
            "'yesterday' is not a dateTime for attribute 'meta.created'",
            USER,
        ),
        (
            'meta.created gt "2010-01-23"',
            "'2010-01-23' is not a dateTime for attribute 'meta.created'",
            USER,
        ),
        (
            'meta.created gt "2010-01-23 04:56:22Z"',
            "'2010-01-23 04:56:22Z' is not a dateTime for attribute 'meta.created'",
            USER,
        ),
        (
            'meta.created gt "2010-02-30T04:56:22Z"',
            "'2010-02-30T04:56:22Z' is not a dateTime for attribute 'meta.created'",
            USER,
        ),
        (
            'meta.created gt "2010-01-23T04:56:22+2:00"',
            "'2010-01-23T04:56:22+2:00' is not a dateTime for attribute 'meta.created'",
            USER,
        ),
        (
            "meta.created gt 20100123",
            "attribute 'meta.created' is of type dateTime; compare it with a string",
            USER,
        ),
        (
            'name eq "Barbara"',
            "attribute 'name' is complex; compare one of its sub-attributes",
            USER,
        ),
        ('name co "Bar"', "attribute 'name' is complex; compare one of its sub-attributes", USER),
        (
            'addresses co "Hollywood"',
            "attribute 'addresses' is complex; compare one of its sub-attributes",
            USER,
        ),
        ("title gt null", "operator 'gt' cannot compare attribute 'title' with null", USER),
        ("title co null", "operator 'co' cannot compare attribute 'title' with null", USER),
        (
            'userName[value eq "x"]',
            "attribute 'userName' has no sub-attributes to filter on",
            USER,
        ),
        ('serial co "4"', "operator 'co' is not allowed on integer attribute 'serial'", DEVICE),
        ("weight sw 1", "operator 'sw' is not allowed on decimal attribute 'weight'", DEVICE),
        (
            'serial eq "42"',
            "attribute 'serial' is of type integer; compare it with a number",
            DEVICE,
        ),
        (
            "weight eq true",
            "attribute 'weight' is of type decimal; compare it with a number",
            DEVICE,
        ),
    ],
)
def test_evaluate_rejects_invalid_filters(text: str, detail: str, rt: ResourceType) -> None:
    resource = DEVICE_RESOURCE if rt is DEVICE else GROUP_EXAMPLE if rt is GROUP else FULL_USER
    with pytest.raises(InvalidFilterError) as caught:
        evaluate(parse_filter(text), resource, rt)
    assert caught.value.detail == detail


def test_evaluation_errors_do_not_depend_on_the_data() -> None:
    for text in ("active gt true", 'emails[primary eq "yes"]', "nickName eq 5"):
        node = parse_filter(text)
        for resource in ({}, FULL_USER):
            with pytest.raises(InvalidFilterError):
                evaluate(node, resource, USER)
    node = parse_filter('title pr or nosuch eq "x"')
    with pytest.raises(InvalidFilterError, match="unknown attribute 'nosuch'"):
        evaluate(node, FULL_USER, USER)


def test_evaluate_rejects_trees_the_parser_never_builds() -> None:
    nested = ValuePath(_path("emails"), ValuePath(_path("type"), _pr("value")))
    with pytest.raises(InvalidFilterError, match="cannot contain another value filter"):
        evaluate(nested, FULL_USER, USER)
    on_sub = ValuePath(_path("name", "givenName"), _pr("value"))
    with pytest.raises(InvalidFilterError, match=r"cannot follow sub-attribute 'name\.givenName'"):
        evaluate(on_sub, FULL_USER, USER)
    bad_op = Compare(_path("title"), "like", "x")
    with pytest.raises(InvalidFilterError, match="unknown operator 'like'"):
        evaluate(bad_op, FULL_USER, USER)


def test_evaluate_leaves_the_resource_untouched() -> None:
    before = copy.deepcopy(FULL_USER)
    assert _matches('emails[type eq "work"] and meta.lastModified ge "2011-01-01T00:00:00Z"')
    assert before == FULL_USER
