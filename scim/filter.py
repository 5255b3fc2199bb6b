"""The SCIM filter and PATCH path grammar, and the in-memory filter evaluator.

One grammar serves RFC 7644 §3.4.2.2 filters (Figure 1) and RFC 7644 §3.5.2 PATCH paths
(``PATH = attrPath / valuePath [subAttr]``). `parse_filter` and `parse_path` turn text into the
frozen dataclasses below with a tokenizer and a recursive-descent parser; `format_filter` writes
the canonical text back, and ``parse_filter(format_filter(f)) == f``. `evaluate` matches a filter
against a resource held as a JSON-like mapping. The SQL compiler in `storage` walks the same
dataclasses and keeps the same semantics.

What the grammar accepts
------------------------
- Comparison operators (eq ne co sw ew gt ge lt le pr) and the keywords and/or/not in any case.
  ``not`` binds tighter than ``and``, which binds tighter than ``or``; ``and`` and ``or``
  associate to the left; ``not`` is always followed by a parenthesised filter.
- Attribute paths ``[URI ":"] ATTRNAME ["." ATTRNAME]`` with ``ATTRNAME = ALPHA *(ALPHA / DIGIT
  / "-" / "_")``, plus ``$ref``. The URI may hold colons and dots: the attribute is what follows
  the last colon, its sub-attribute what follows the first dot after that.
- Values are JSON literals: strings with JSON escapes, numbers (an `int` unless written with a
  fraction or an exponent, then a `float`), true, false and null (keywords in any case).
- Whitespace (space, tab, CR, LF) between tokens is optional and may repeat; the filter must
  end after the last expression.
- A value filter (``emails[...]``) follows an attribute without a sub-attribute and holds no
  other value filter; its attribute paths are relative to the filtered attribute.
- A filter longer than `max_length` characters is refused before parsing. Nesting is measured
  as the height of the text: a comparison is level 0, and each ``(...)``, ``not (...)``,
  ``[...]`` and each ``and``/``or`` is one level above the deepest thing it holds, so a chain
  ``a or b or c`` is two levels. A filter above `max_depth` levels is refused; this keeps every
  recursive walk of the tree (this module, the SQL compiler, dataclass equality) far from
  Python's recursion limit.
- Errors name the 1-based column where parsing failed.

Evaluation semantics (the SQL back end keeps exactly these)
------------------------------------------------------------
- Each attribute path resolves through `scim.schema.resolve`; inside a value filter the
  relative path names a sub-attribute of the filtered attribute. An unknown attribute is an
  ``invalidFilter`` error.
- Every check of operator against attribute type and of value against attribute type happens
  before any data is read, so an invalid filter fails the same way whatever the data holds.
- A multi-valued attribute matches when any of its values matches. A multi-valued complex
  attribute compared without a sub-attribute (``emails co "x"``) compares its ``value``
  sub-attribute. Comparing a single-valued complex attribute directly is an error.
- Strings (string, reference): when the attribute's caseExact is false both sides are
  case-folded (`str.casefold`). co/sw/ew test substring/prefix/suffix; gt/ge/lt/le compare in
  code-point order after that folding.
- dateTime: both sides are read as xsd:dateTime (``YYYY-MM-DDThh:mm:ss[.fraction]`` then ``Z``,
  ``+hh:mm`` or nothing, which means UTC) and compared in time. A filter value that is not
  such a dateTime is an error; a stored value that is not one matches nothing. co/sw/ew on a
  dateTime are errors.
- boolean: only eq and ne, with true or false. binary: only eq and ne, with a string. Any other
  operator on either is an error (RFC 7644 §3.4.2.2).
- integer and decimal: numeric comparison with a JSON number; co/sw/ew are errors.
- A filter value of the wrong JSON type for the attribute (``active eq "yes"``,
  ``userName eq 5``) is an error naming the attribute.
- ``x ne v`` is exactly ``not (x eq v)``: on a multi-valued attribute it is true when no value
  equals v, and an absent attribute is ``ne`` any non-null value.
- ``pr`` is true when the attribute is present and not empty: not absent, not null, not ``""``,
  not ``[]``, not ``{}``. With a sub-attribute of a multi-valued attribute, some value must have
  that sub-attribute non-empty.
- ``x eq null`` is exactly ``not (x pr)`` and ``x ne null`` exactly ``x pr``; any other
  operator with null is an error.
- A value filter ``a[f]`` is true when some value of ``a`` satisfies ``f`` as a whole, so
  ``emails[type eq "work" and value co "@example.com"]`` needs one e-mail meeting both tests.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from enum import Enum
from typing import Any, NoReturn, TypeAlias

from scim.errors import InvalidFilterError, InvalidPathError, ScimError
from scim.schema import Attribute, ResourceType, Type, resolve

__all__ = [
    "And",
    "AttrPath",
    "Compare",
    "Filter",
    "Not",
    "Or",
    "PatchPath",
    "Present",
    "ValuePath",
    "evaluate",
    "format_filter",
    "format_path",
    "parse_filter",
    "parse_path",
]

DEFAULT_MAX_LENGTH = 4096
DEFAULT_MAX_DEPTH = 32

COMPARE_OPERATORS = frozenset({"eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"})
_STRING_OPERATORS = frozenset({"co", "sw", "ew"})


# --- The tree ------------------------------------------------------------------------------


@dataclass(frozen=True)
class AttrPath:
    uri: str | None
    attr: str
    sub: str | None


@dataclass(frozen=True)
class Compare:
    path: AttrPath
    op: str
    value: str | bool | int | float | None


@dataclass(frozen=True)
class Present:
    path: AttrPath


@dataclass(frozen=True)
class And:
    left: Filter
    right: Filter


@dataclass(frozen=True)
class Or:
    left: Filter
    right: Filter


@dataclass(frozen=True)
class Not:
    filter: Filter


@dataclass(frozen=True)
class ValuePath:
    path: AttrPath
    filter: Filter


Filter: TypeAlias = Compare | Present | And | Or | Not | ValuePath


@dataclass(frozen=True)
class PatchPath:
    attr: AttrPath
    filter: Filter | None
    sub: str | None


# --- Tokenizer -----------------------------------------------------------------------------

_ALPHA = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_DIGIT = frozenset("0123456789")
_HEX = frozenset("0123456789abcdefABCDEF")
_NAME_CHAR = _ALPHA | _DIGIT | {"-", "_"}
_WORD_CHAR = _NAME_CHAR | {":", ".", "$"}
_WHITESPACE = frozenset(" \t\r\n")
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


class _Kind(Enum):
    WORD = "word"
    STRING = "string"
    NUMBER = "number"
    LPAREN = "("
    RPAREN = ")"
    LBRACKET = "["
    RBRACKET = "]"
    DOT = "."
    END = "end"


@dataclass(frozen=True)
class _Token:
    kind: _Kind
    text: str
    column: int
    value: str | int | float | None = None


class _Parser:
    """Recursive descent over a lazily scanned token stream, one token of lookahead."""

    def __init__(self, text: str, error: type[ScimError], noun: str, max_depth: int) -> None:
        self.text = text
        self.error = error
        self.noun = noun
        self.max_depth = max_depth
        self.pos = 0
        self.tok = self._scan()

    def fail(self, message: str, column: int) -> NoReturn:
        raise self.error(f"{message} at column {column}")

    def advance(self) -> None:
        self.tok = self._scan()

    def at(self, kind: _Kind) -> bool:
        return self.tok.kind is kind

    def is_keyword(self, word: str) -> bool:
        return self.tok.kind is _Kind.WORD and self.tok.text.lower() == word

    # -- scanning --

    def _scan(self) -> _Token:
        text, n = self.text, len(self.text)
        while self.pos < n and text[self.pos] in _WHITESPACE:
            self.pos += 1
        start = self.pos
        if start >= n:
            return _Token(_Kind.END, "", n + 1)
        ch = text[start]
        if ch in "()[].":
            self.pos += 1
            return _Token(_Kind(ch), ch, start + 1)
        if ch == '"':
            return self._scan_string()
        if ch == "-" or ch in _DIGIT:
            return self._scan_number()
        if ch in _ALPHA or ch == "$":
            end = start
            while end < n and text[end] in _WORD_CHAR:
                end += 1
            self.pos = end
            return _Token(_Kind.WORD, text[start:end], start + 1)
        self.fail(f"unexpected character {ch!r}", start + 1)

    def _scan_string(self) -> _Token:
        # RFC 7644 §3.4.2.2: "String literals MUST be valid JSON strings" (RFC 7159 §7).
        text, n = self.text, len(self.text)
        start = self.pos
        i = start + 1
        out: list[str] = []
        while True:
            if i >= n:
                self.fail("unterminated string", start + 1)
            ch = text[i]
            if ch == '"':
                break
            if ch == "\\":
                if i + 1 >= n:
                    self.fail("unterminated string", start + 1)
                esc = text[i + 1]
                if esc in _ESCAPES:
                    out.append(_ESCAPES[esc])
                    i += 2
                elif esc == "u":
                    code = self._hex4(i)
                    i += 6
                    if 0xD800 <= code <= 0xDBFF:
                        if text[i : i + 2] != "\\u":
                            self.fail("unpaired surrogate in string", i - 5)
                        low = self._hex4(i)
                        if not 0xDC00 <= low <= 0xDFFF:
                            self.fail("unpaired surrogate in string", i - 5)
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                        i += 6
                    elif 0xDC00 <= code <= 0xDFFF:
                        self.fail("unpaired surrogate in string", i - 5)
                    out.append(chr(code))
                else:
                    self.fail("invalid escape in string", i + 1)
            elif ord(ch) < 0x20:
                self.fail("control character in string", i + 1)
            else:
                out.append(ch)
                i += 1
        self.pos = i + 1
        return _Token(_Kind.STRING, text[start : i + 1], start + 1, "".join(out))

    def _hex4(self, backslash: int) -> int:
        digits = self.text[backslash + 2 : backslash + 6]
        if len(digits) != 4 or any(d not in _HEX for d in digits):
            self.fail("invalid \\u escape in string", backslash + 1)
        return int(digits, 16)

    def _scan_number(self) -> _Token:
        # RFC 7159 §6: number = [ minus ] int [ frac ] [ exp ]
        text, n = self.text, len(self.text)
        start = i = self.pos

        def digits(at: int) -> int:
            while at < n and text[at] in _DIGIT:
                at += 1
            return at

        if text[i] == "-":
            i += 1
        if i < n and text[i] == "0":
            i += 1
        elif i < n and text[i] in _DIGIT:
            i = digits(i)
        else:
            self.fail("invalid number", start + 1)
        is_float = False
        if i < n and text[i] == ".":
            end = digits(i + 1)
            if end == i + 1:
                self.fail("invalid number", start + 1)
            i, is_float = end, True
        if i < n and text[i] in "eE":
            i += 1
            if i < n and text[i] in "+-":
                i += 1
            end = digits(i)
            if end == i:
                self.fail("invalid number", start + 1)
            i, is_float = end, True
        if i < n and text[i] in _WORD_CHAR:
            self.fail("invalid number", start + 1)
        raw = text[start:i]
        value: int | float
        try:
            value = float(raw) if is_float else int(raw)
        except ValueError:
            self.fail("number out of range", start + 1)
        if isinstance(value, float) and not math.isfinite(value):
            self.fail("number out of range", start + 1)
        self.pos = i
        return _Token(_Kind.NUMBER, raw, start + 1, value)

    # -- attribute paths --

    def attr_path(self, tok: _Token) -> AttrPath:
        """``[URI ":"] ATTRNAME *1subAttr`` from one word token (RFC 7644 §3.4.2.2 Figure 1)."""
        text = tok.text
        colon = -1
        for i, ch in enumerate(text):
            if ch == ":":
                colon = i
        uri = text[:colon] if colon >= 0 else None
        start = colon + 1
        end = self.name_end(text, start, tok.column)
        attr, sub = text[start:end], None
        if end < len(text):
            if text[end] != ".":
                self.fail(f"unexpected character {text[end]!r} in attribute path", tok.column + end)
            sub_end = self.name_end(text, end + 1, tok.column)
            if sub_end < len(text):
                self.fail(
                    f"unexpected character {text[sub_end]!r} in attribute path",
                    tok.column + sub_end,
                )
            sub = text[end + 1 : sub_end]
        return AttrPath(uri, attr, sub)

    def name_end(self, text: str, start: int, column: int) -> int:
        """End of the ATTRNAME (or ``$ref``) starting at `start`."""
        if text[start : start + 4].lower() == "$ref" and (
            start + 4 == len(text) or text[start + 4] not in _NAME_CHAR
        ):
            return start + 4
        if start >= len(text) or text[start] not in _ALPHA:
            self.fail("expected an attribute name", column + start)
        end = start + 1
        while end < len(text) and text[end] in _NAME_CHAR:
            end += 1
        return end

    # -- filters --

    def check_depth(self, height: int, column: int) -> None:
        if height > self.max_depth:
            self.fail(f"{self.noun} nests deeper than {self.max_depth} levels", column)

    def filter_or(self, level: int, in_value_path: bool) -> tuple[Filter, int]:
        left, height = self.filter_and(level, in_value_path)
        while self.is_keyword("or"):
            column = self.tok.column
            self.advance()
            right, right_height = self.filter_and(level, in_value_path)
            left, height = Or(left, right), max(height, right_height) + 1
            self.check_depth(height, column)
        return left, height

    def filter_and(self, level: int, in_value_path: bool) -> tuple[Filter, int]:
        left, height = self.filter_unary(level, in_value_path)
        while self.is_keyword("and"):
            column = self.tok.column
            self.advance()
            right, right_height = self.filter_unary(level, in_value_path)
            left, height = And(left, right), max(height, right_height) + 1
            self.check_depth(height, column)
        return left, height

    def filter_unary(self, level: int, in_value_path: bool) -> tuple[Filter, int]:
        tok = self.tok
        if tok.kind is _Kind.LPAREN:
            inner, height = self.group(tok, level, in_value_path)
            return inner, height
        if self.is_keyword("not"):
            self.advance()
            if self.tok.kind is not _Kind.LPAREN:
                # RFC 7644 §3.4.2.2 Figure 1: *1"not" "(" FILTER ")"
                self.fail("expected '(' after 'not'", self.tok.column)
            inner, height = self.group(tok, level, in_value_path)
            return Not(inner), height
        if tok.kind is _Kind.WORD and tok.text.lower() not in ("and", "or"):
            return self.attr_expression(level, in_value_path)
        self.fail("expected an attribute path, 'not' or '('", tok.column)

    def group(self, opener: _Token, level: int, in_value_path: bool) -> tuple[Filter, int]:
        """A parenthesised filter; the current token is its '('."""
        self.check_depth(level + 1, opener.column)
        self.advance()
        inner, height = self.filter_or(level + 1, in_value_path)
        self.close(_Kind.RPAREN)
        self.check_depth(height + 1, opener.column)
        return inner, height + 1

    def close(self, kind: _Kind) -> None:
        if self.tok.kind is kind:
            self.advance()
            return
        if self.tok.kind is _Kind.END:
            self.fail(f"expected '{kind.value}'", self.tok.column)
        self.fail(f"expected 'and', 'or' or '{kind.value}'", self.tok.column)

    def attr_expression(self, level: int, in_value_path: bool) -> tuple[Filter, int]:
        path = self.attr_path(self.tok)
        self.advance()
        tok = self.tok
        if tok.kind is _Kind.LBRACKET:
            if in_value_path:
                # RFC 7643 §2.3.8: sub-attributes are never complex, so nothing inside a
                # value filter can carry another one.
                self.fail("a value filter cannot contain another value filter", tok.column)
            inner, height = self.value_filter(path, level)
            return ValuePath(path, inner), height
        if tok.kind is not _Kind.WORD or tok.text.lower() in ("and", "or", "not"):
            self.fail("expected a comparison operator", tok.column)
        op = tok.text.lower()
        self.advance()
        if op == "pr":
            return Present(path), 0
        if op not in COMPARE_OPERATORS:
            self.fail(f"unknown operator {tok.text!r}", tok.column)
        return Compare(path, op, self.literal()), 0

    def value_filter(self, path: AttrPath, level: int) -> tuple[Filter, int]:
        """``"[" valFilter "]"``; the current token is its '['."""
        bracket = self.tok
        if path.sub is not None:
            # RFC 7644 §3.4.2.2: a value filter groups the sub-attributes of a complex
            # attribute, written without its own sub-attribute.
            self.fail("a value filter cannot follow a sub-attribute", bracket.column)
        self.check_depth(level + 1, bracket.column)
        self.advance()
        inner, height = self.filter_or(level + 1, True)
        self.close(_Kind.RBRACKET)
        self.check_depth(height + 1, bracket.column)
        return inner, height + 1

    def literal(self) -> str | bool | int | float | None:
        """``compValue = false / null / true / number / string`` (RFC 7644 §3.4.2.2)."""
        tok = self.tok
        value: str | bool | int | float | None
        if tok.kind in (_Kind.STRING, _Kind.NUMBER):
            value = tok.value
        elif tok.kind is _Kind.WORD and tok.text.lower() in ("true", "false", "null"):
            value = {"true": True, "false": False, "null": None}[tok.text.lower()]
        else:
            self.fail("expected a value (a string, number, true, false or null)", tok.column)
        self.advance()
        return value

    def trailing(self, what: str) -> NoReturn:
        tok = self.tok
        if tok.kind in (_Kind.RPAREN, _Kind.RBRACKET):
            self.fail(f"unexpected '{tok.text}'", tok.column)
        self.fail(f"expected 'and', 'or' or {what}", tok.column)


def parse_filter(
    text: str, *, max_length: int = DEFAULT_MAX_LENGTH, max_depth: int = DEFAULT_MAX_DEPTH
) -> Filter:
    """Parse an RFC 7644 §3.4.2.2 filter; raise `InvalidFilterError` naming the column."""
    if len(text) > max_length:
        raise InvalidFilterError(f"filter is longer than {max_length} characters")
    parser = _Parser(text, InvalidFilterError, "filter", max_depth)
    node, _height = parser.filter_or(0, False)
    if parser.tok.kind is not _Kind.END:
        parser.trailing("end of filter")
    return node


def parse_path(text: str) -> PatchPath:
    """Parse an RFC 7644 §3.5.2 PATCH path; raise `InvalidPathError` naming the column.

    ``PATH = attrPath / valuePath [subAttr]``.
    """
    if len(text) > DEFAULT_MAX_LENGTH:
        raise InvalidPathError(f"path is longer than {DEFAULT_MAX_LENGTH} characters")
    parser = _Parser(text, InvalidPathError, "path", DEFAULT_MAX_DEPTH)
    tok = parser.tok
    if tok.kind is not _Kind.WORD:
        parser.fail("expected an attribute path", tok.column)
    attr = parser.attr_path(tok)
    parser.advance()
    value_filter: Filter | None = None
    sub: str | None = None
    if parser.at(_Kind.LBRACKET):
        value_filter, _height = parser.value_filter(attr, 0)
        if parser.at(_Kind.DOT):
            parser.advance()
            name = parser.tok
            if name.kind is not _Kind.WORD:
                parser.fail("expected an attribute name", name.column)
            end = parser.name_end(name.text, 0, name.column)
            if end < len(name.text):
                parser.fail(
                    f"unexpected character {name.text[end]!r} in attribute path",
                    name.column + end,
                )
            sub = name.text
            parser.advance()
    if not parser.at(_Kind.END):
        if value_filter is None:
            parser.fail("expected '[' or end of path", parser.tok.column)
        if sub is None:
            parser.fail("expected '.' or end of path", parser.tok.column)
        parser.fail("expected end of path", parser.tok.column)
    return PatchPath(attr, value_filter, sub)


# --- Canonical text ------------------------------------------------------------------------


def format_path(path: AttrPath) -> str:
    """The path as written: ``[uri:]attr[.sub]``."""
    text = f"{path.uri}:{path.attr}" if path.uri is not None else path.attr
    return f"{text}.{path.sub}" if path.sub is not None else text


def _format_value(value: str | bool | int | float | None) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} has no JSON form")
        return repr(value)
    return str(value)


def format_filter(node: Filter) -> str:
    """Canonical text: lower-case operators, single spaces, only the parentheses needed."""
    match node:
        case Compare(path, op, value):
            return f"{format_path(path)} {op} {_format_value(value)}"
        case Present(path):
            return f"{format_path(path)} pr"
        case And(left, right):
            left_text = _parenthesised(left, isinstance(left, Or))
            right_text = _parenthesised(right, isinstance(right, And | Or))
            return f"{left_text} and {right_text}"
        case Or(left, right):
            return f"{format_filter(left)} or {_parenthesised(right, isinstance(right, Or))}"
        case Not(inner):
            return f"not ({format_filter(inner)})"
        case ValuePath(path, inner):
            return f"{format_path(path)}[{format_filter(inner)}]"


def _parenthesised(node: Filter, needed: bool) -> str:
    text = format_filter(node)
    return f"({text})" if needed else text


# --- Evaluation ----------------------------------------------------------------------------

_Predicate = Callable[[Mapping[str, Any]], bool]


def evaluate(node: Filter, resource: Mapping[str, Any], resource_type: ResourceType) -> bool:
    """True when `resource` matches `node`; the semantics are in the module docstring."""
    return _compile(node, _Scope(resource_type, None, ""))(resource)


@dataclass(frozen=True)
class _Scope:
    """Where attribute paths resolve: the resource type, or the values of a complex attribute."""

    resource_type: ResourceType
    parent: Attribute | None
    parent_name: str


@dataclass(frozen=True)
class _Target:
    """A resolved path: how to read its values and its presence from a mapping."""

    name: str
    compared: Attribute | None
    values: Callable[[Mapping[str, Any]], list[Any]]
    present: _Predicate


def _compile(node: Filter, scope: _Scope) -> _Predicate:
    match node:
        case And(left, right):
            left_pred, right_pred = _compile(left, scope), _compile(right, scope)
            return lambda item: left_pred(item) and right_pred(item)
        case Or(left, right):
            left_pred, right_pred = _compile(left, scope), _compile(right, scope)
            return lambda item: left_pred(item) or right_pred(item)
        case Not(inner):
            inner_pred = _compile(inner, scope)
            return lambda item: not inner_pred(item)
        case Present(path):
            return _target(path, scope).present
        case Compare():
            return _compile_compare(node, _target(node.path, scope))
        case ValuePath(path, inner):
            return _compile_value_path(path, inner, scope)


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str | list | tuple | Mapping) and len(value) == 0)


def _each(value: Any) -> list[Any]:
    """The values of an attribute: a list as is, a single value as a list of one."""
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _flatten(values: list[Any]) -> list[Any]:
    return [v for value in values for v in _each(value)]


def _target(path: AttrPath, scope: _Scope) -> _Target:
    if scope.parent is not None:
        name = f"{scope.parent_name}.{format_path(path)}"
        sub = scope.parent.sub(path.attr) if path.uri is None and path.sub is None else None
        if sub is None:
            raise InvalidFilterError(f"unknown attribute {name!r}")
        key = sub.name

        def element_values(element: Mapping[str, Any]) -> list[Any]:
            return _each(element.get(key))

        return _Target(name, sub, element_values, lambda element: not _is_empty(element.get(key)))

    name = format_path(path)
    resolved = resolve(scope.resource_type, path.uri, path.attr, path.sub)
    if resolved is None:
        raise InvalidFilterError(f"unknown attribute {name!r}")
    top = resolved.attribute
    container = _container(resolved.schema, scope.resource_type)
    if resolved.sub is not None:
        sub_key = resolved.sub.name

        def sub_values(resource: Mapping[str, Any]) -> list[Any]:
            items = _each(container(resource).get(top.name))
            return _flatten([i.get(sub_key) for i in items if isinstance(i, Mapping)])

        def sub_present(resource: Mapping[str, Any]) -> bool:
            items = _each(container(resource).get(top.name))
            return any(isinstance(i, Mapping) and not _is_empty(i.get(sub_key)) for i in items)

        return _Target(name, resolved.sub, sub_values, sub_present)

    def present(resource: Mapping[str, Any]) -> bool:
        return not _is_empty(container(resource).get(top.name))

    if top.type is Type.COMPLEX and top.multi_valued:
        # RFC 7644 §3.4.2.2 example ``emails co "example.com"``: a multi-valued complex
        # attribute without a sub-attribute compares its "value" sub-attribute.
        value_attr = top.sub("value")

        def value_values(resource: Mapping[str, Any]) -> list[Any]:
            items = _each(container(resource).get(top.name))
            return _flatten([i.get("value") for i in items if isinstance(i, Mapping)])

        return _Target(name, value_attr, value_values, present)

    def top_values(resource: Mapping[str, Any]) -> list[Any]:
        return _each(container(resource).get(top.name))

    compared = None if top.type is Type.COMPLEX else top
    return _Target(name, compared, top_values, present)


def _container(
    schema: str, resource_type: ResourceType
) -> Callable[[Mapping[str, Any]], Mapping[str, Any]]:
    """Core and common attributes live at the top; extension ones under the schema URN."""
    if schema == resource_type.schema.id:
        return lambda resource: resource
    extension = schema

    def block(resource: Mapping[str, Any]) -> Mapping[str, Any]:
        found = resource.get(extension)
        return found if isinstance(found, Mapping) else {}

    return block


def _compile_value_path(path: AttrPath, inner: Filter, scope: _Scope) -> _Predicate:
    if scope.parent is not None:
        # RFC 7643 §2.3.8: sub-attributes are never complex.
        raise InvalidFilterError("a value filter cannot contain another value filter")
    name = format_path(path)
    if path.sub is not None:
        raise InvalidFilterError(f"a value filter cannot follow sub-attribute {name!r}")
    resolved = resolve(scope.resource_type, path.uri, path.attr)
    if resolved is None:
        raise InvalidFilterError(f"unknown attribute {name!r}")
    top = resolved.attribute
    if top.type is not Type.COMPLEX:
        raise InvalidFilterError(f"attribute {name!r} has no sub-attributes to filter on")
    inner_pred = _compile(inner, _Scope(scope.resource_type, top, name))
    container = _container(resolved.schema, scope.resource_type)

    def matches(resource: Mapping[str, Any]) -> bool:
        items = _each(container(resource).get(top.name))
        return any(isinstance(item, Mapping) and inner_pred(item) for item in items)

    return matches


_Match = Callable[[Any], bool]


def _compile_compare(node: Compare, target: _Target) -> _Predicate:
    op, value, name = node.op, node.value, target.name
    if op not in COMPARE_OPERATORS:
        raise InvalidFilterError(f"unknown operator {op!r}")
    if value is None:
        if op == "eq":
            return lambda item: not target.present(item)
        if op == "ne":
            return target.present
        raise InvalidFilterError(f"operator {op!r} cannot compare attribute {name!r} with null")
    attr = target.compared
    if attr is None:
        raise InvalidFilterError(
            f"attribute {name!r} is complex; compare one of its sub-attributes"
        )
    one = _matcher(op if op != "ne" else "eq", value, attr, name)
    values = target.values
    if op == "ne":
        return lambda item: not any(one(v) for v in values(item))
    return lambda item: any(one(v) for v in values(item))


def _matcher(op: str, value: str | bool | int | float, attr: Attribute, name: str) -> _Match:
    kind = attr.type
    if kind in (Type.BOOLEAN, Type.BINARY) and op != "eq":
        # RFC 7644 §3.4.2.2: "Boolean and Binary attributes SHALL cause a failed response
        # (HTTP 400) with scimType invalidFilter" for ordering; substring tests fare alike.
        raise InvalidFilterError(
            f"operator {op!r} is not allowed on {kind.value} attribute {name!r}"
        )
    if kind is Type.BOOLEAN:
        if not isinstance(value, bool):
            raise InvalidFilterError(
                f"attribute {name!r} is of type boolean; compare it with true or false"
            )
        return lambda stored: isinstance(stored, bool) and stored is value
    if kind in (Type.INTEGER, Type.DECIMAL):
        if op in _STRING_OPERATORS:
            raise InvalidFilterError(
                f"operator {op!r} is not allowed on {kind.value} attribute {name!r}"
            )
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidFilterError(
                f"attribute {name!r} is of type {kind.value}; compare it with a number"
            )
        number = value

        def numeric(stored: Any) -> bool:
            if isinstance(stored, bool) or not isinstance(stored, int | float):
                return False
            return _ordered(op, stored, number)

        return numeric
    if not isinstance(value, str):
        raise InvalidFilterError(
            f"attribute {name!r} is of type {kind.value}; compare it with a string"
        )
    if kind is Type.DATETIME:
        if op in _STRING_OPERATORS:
            raise InvalidFilterError(
                f"operator {op!r} is not allowed on dateTime attribute {name!r}"
            )
        moment = _parse_datetime(value)
        if moment is None:
            raise InvalidFilterError(f"{value!r} is not a dateTime for attribute {name!r}")

        def chronological(stored: Any) -> bool:
            if isinstance(stored, datetime):
                when: datetime | None = stored if stored.tzinfo else stored.replace(tzinfo=UTC)
            else:
                when = _parse_datetime(stored) if isinstance(stored, str) else None
            return when is not None and _ordered(op, when, moment)

        return chronological
    fold = not attr.case_exact
    needle = value.casefold() if fold else value

    def textual(stored: Any) -> bool:
        if not isinstance(stored, str):
            return False
        return _ordered(op, stored.casefold() if fold else stored, needle)

    return textual


def _ordered(op: str, stored: Any, wanted: Any) -> bool:
    match op:
        case "eq":
            return bool(stored == wanted)
        case "co":
            return bool(wanted in stored)
        case "sw":
            return bool(stored.startswith(wanted))
        case "ew":
            return bool(stored.endswith(wanted))
        case "gt":
            return bool(stored > wanted)
        case "ge":
            return bool(stored >= wanted)
        case "lt":
            return bool(stored < wanted)
        case "le":
            return bool(stored <= wanted)
    raise InvalidFilterError(f"unknown operator {op!r}")


def _parse_datetime(text: str) -> datetime | None:
    """xsd:dateTime as RFC 7643 §2.3.5 asks, without a zone meaning UTC; None if malformed."""
    n = len(text)
    if n < 19:
        return None
    for at, sep in ((4, "-"), (7, "-"), (10, "Tt"), (13, ":"), (16, ":")):
        if text[at] not in sep:
            return None

    def number(start: int, end: int) -> int | None:
        part = text[start:end]
        return int(part) if all(ch in _DIGIT for ch in part) else None

    fields = [number(0, 4), number(5, 7), number(8, 10), number(11, 13), number(14, 16)]
    fields.append(number(17, 19))
    i, micro = 19, 0
    if i < n and text[i] == ".":
        end = i + 1
        while end < n and text[end] in _DIGIT:
            end += 1
        if end == i + 1:
            return None
        micro = int((text[i + 1 : end] + "000000")[:6])
        i = end
    zone: timezone = UTC
    if i < n:
        if text[i] in "Zz" and i + 1 == n:
            zone = UTC
        elif text[i] in "+-" and n == i + 6 and text[i + 3] == ":":
            hours, minutes = number(i + 1, i + 3), number(i + 4, i + 6)
            if hours is None or minutes is None or hours > 23 or minutes > 59:
                return None
            offset = timedelta(hours=hours, minutes=minutes)
            zone = timezone(offset if text[i] == "+" else -offset)
        else:
            return None
    year, month, day, hour, minute, second = fields
    if year is None or month is None or day is None:
        return None
    if hour is None or minute is None or second is None:
        return None
    try:
        return datetime(year, month, day, hour, minute, second, micro, tzinfo=zone)
    except ValueError:
        return None
