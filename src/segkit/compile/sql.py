"""Compile a checked rule into SQL for DuckDB, PostgreSQL or Spark SQL.

:func:`to_sql` turns a rule into one ``SELECT`` that returns the keys of the
matching profiles, with the same answers as :meth:`segkit.Engine.query`. The text
never contains a user value: literals, regexes, event and segment names, time
bounds and ``now`` are bound parameters (``$name`` for DuckDB, ``%(name)s`` for
psycopg, ``:name`` for Spark), and identifiers are quoted. The module produces
text only; it imports no database driver.

The tables it reads (:func:`to_sql_ddl` writes their ``CREATE TABLE``):

* ``profiles``: one row per profile, a ``key`` column and one column per attribute
  (lists as arrays);
* ``events``: ``key``, ``name``, ``at`` (a timestamp with time zone) and one column
  per event property name, shared by every event that declares it;
* ``memberships``: ``segment`` and ``key``, one row per member (for ``in segment``).

Every boundary that depends on a time zone or on calendar arithmetic (``now - 1mo``,
the first instant of a local date) is computed in Python with the same code as the
Engine and bound as a parameter, so the database only compares instants.

>>> import segkit as sk
>>> from datetime import datetime, timezone
>>> schema = sk.Schema(attributes={"age": "int"}, events={"purchase": {"amount": "float"}},
...                    timezone="UTC")
>>> now = datetime(2024, 6, 30, tzinfo=timezone.utc)
>>> query = to_sql("age >= 18 and did purchase in last 30d", schema, now=now)
>>> print(query.text)
SELECT p."key"
FROM "profiles" AS p
LEFT JOIN (SELECT e."key" FROM "events" AS e WHERE e."name" = $p2 AND e."at" > $now_minus_30d AND e."at" <= $now GROUP BY e."key") AS q1 ON q1."key" = p."key"
WHERE p."age" >= $p1 AND q1."key" IS NOT NULL
>>> query.params
{'p1': 18, 'p2': 'purchase', 'now_minus_30d': datetime.datetime(2024, 5, 31, 0, 0, tzinfo=datetime.timezone.utc), 'now': datetime.datetime(2024, 6, 30, 0, 0, tzinfo=datetime.timezone.utc)}

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import string
import unicodedata
from collections.abc import Callable
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from typing import TYPE_CHECKING, Any, Final, Literal, TypeAlias

import attrs

from segkit.dsl import ast
from segkit.dsl.check import check
from segkit.errors import RuleError, SchemaError
from segkit.schema import FieldType
from segkit.timeutil import Duration, ensure_aware

if TYPE_CHECKING:
    from segkit.dsl.rule import RuleLike
    from segkit.schema import Schema

__all__ = ["DIALECTS", "Dialect", "SqlQuery", "TableName", "to_sql", "to_sql_ddl"]

#: The SQL dialects :func:`to_sql` writes.
DIALECTS: Final = ("duckdb", "spark", "postgres")

#: A dialect name.
Dialect: TypeAlias = Literal["duckdb", "spark", "postgres"]

#: A table name: one identifier, or its parts (``("analytics", "profiles")``).
TableName: TypeAlias = "str | tuple[str, ...]"

#: The fixed columns of the three tables.
KEY, NAME, AT, SEGMENT = "key", "name", "at", "segment"

_SENTINEL: Final = "\x00"
_UTC: Final = timezone.utc


def _unsupported(dialect: str, detail: str, rule_source: str, node: ast.Node) -> RuleError:
    source = rule_source if rule_source and node.span.end > node.span.start else ""
    return RuleError(
        f"cannot translate to {dialect} SQL: {detail}", source, node.span if source else None
    )


# --- dialects ------------------------------------------------------------------------------------

#: Column types of each field type, per dialect.
_TYPES: Final[dict[str, dict[FieldType, str]]] = {
    "duckdb": {
        FieldType.STRING: "VARCHAR",
        FieldType.INT: "BIGINT",
        FieldType.FLOAT: "DOUBLE",
        FieldType.BOOL: "BOOLEAN",
        FieldType.DATE: "DATE",
        FieldType.DATETIME: "TIMESTAMPTZ",
        FieldType.LIST_STRING: "VARCHAR[]",
        FieldType.LIST_INT: "BIGINT[]",
    },
    "postgres": {
        FieldType.STRING: "text",
        FieldType.INT: "bigint",
        FieldType.FLOAT: "double precision",
        FieldType.BOOL: "boolean",
        FieldType.DATE: "date",
        FieldType.DATETIME: "timestamptz",
        FieldType.LIST_STRING: "text[]",
        FieldType.LIST_INT: "bigint[]",
    },
    "spark": {
        FieldType.STRING: "STRING",
        FieldType.INT: "BIGINT",
        FieldType.FLOAT: "DOUBLE",
        FieldType.BOOL: "BOOLEAN",
        FieldType.DATE: "DATE",
        FieldType.DATETIME: "TIMESTAMP",
        FieldType.LIST_STRING: "ARRAY<STRING>",
        FieldType.LIST_INT: "ARRAY<BIGINT>",
    },
}

#: The PostgreSQL type a parameter is cast to, by the Python type of its value.
_PG_CASTS: Final[dict[type, str]] = {
    bool: "boolean",
    int: "bigint",
    float: "double precision",
    str: "text",
    date: "date",
    datetime: "timestamptz",
}


class _Dialect:
    """How one SQL dialect spells what the compiler needs (DuckDB is the default)."""

    name: str = "duckdb"
    #: Largest ``{n,m}`` count the regex engine accepts (``None``: no limit).
    max_repeat: int | None = 1000
    #: Whether ``ASOF LEFT JOIN`` exists (funnels use it for "the next event at or after").
    asof_join: bool = True

    def ident(self, name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    def placeholder(self, name: str) -> str:
        return "$" + name

    def param(self, name: str, value: Any) -> str:
        """A reference to parameter ``name`` (typed where the dialect needs it)."""
        return _SENTINEL + name + _SENTINEL

    def finish(self, text: str) -> str:
        """Replace the parameter sentinels with placeholders."""
        parts = text.split(_SENTINEL)
        for i in range(1, len(parts), 2):
            parts[i] = self.placeholder(parts[i])
        return "".join(parts)

    def lower(self, x: str) -> str:
        return f"lower({x})"

    def contains(self, x: str, p: str) -> str:
        return f"contains({x}, {p})"

    def starts_with(self, x: str, p: str) -> str:
        return f"starts_with({x}, {p})"

    def ends_with(self, x: str, p: str) -> str:
        return f"ends_with({x}, {p})"

    def regex(self, x: str, p: str) -> str:
        return f"regexp_matches({x}, {p})"

    def ordered(self, x: str) -> str:
        """``x`` as a string compared by code point (``<``, ``between``)."""
        return x

    def array(self, items: list[str], element: FieldType) -> str:
        return "[" + ", ".join(items) + "]"

    def has_any(self, x: str, array: str) -> str:
        return f"list_has_any({x}, {array})"

    def has_all(self, x: str, array: str) -> str:
        return f"list_has_all({x}, {array})"

    def bucket(self, text: str) -> str:
        """The bucket (0..9999) of ``text`` (``salt:key``): its md5 prefix modulo 10000."""
        return f"mod(CAST('0x' || substr(md5({text}), 1, 8) AS UBIGINT), 10000)"

    def interval(self, amount: str, unit: str) -> str:
        return f"INTERVAL '1' {unit} * {amount}"

    def utc_wall(self, instant: str) -> str:
        """The wall clock of ``instant`` in UTC, as a timestamp without time zone."""
        return f"timezone('UTC', {instant})"

    def from_utc_wall(self, wall: str) -> str:
        return f"timezone('UTC', {wall})"

    def local(self, instant: str, tz: str) -> str:
        return f"timezone({tz}, {instant})"

    def to_instant(self, wall: str, tz: str) -> str:
        """The instant of the wall time ``wall`` in ``tz``; a repeated time picks the first."""
        return self._earlier(wall, tz, f"timezone({tz}, {wall})")

    def _earlier(self, wall: str, tz: str, later: str) -> str:
        # The engine resolves a repeated wall time to the later instant; Python (fold=0)
        # to the earlier one, w - offset(just before the change). Three hours before the
        # later instant is before the change for any real zone.
        before = f"({later} - INTERVAL '3' HOUR)"
        offset = f"({self.local(before, tz)} - {self.utc_wall(before)})"
        earlier = self.from_utc_wall(f"({wall} - {offset})")
        return f"CASE WHEN {self.local(earlier, tz)} = {wall} THEN {earlier} ELSE {later} END"

    def distinct(self, a: str, b: str) -> str:
        """Null-safe "differ"."""
        return f"{a} IS DISTINCT FROM {b}"

    def epoch_us(self, instant: str) -> str:
        """``instant`` as whole microseconds since the Unix epoch (a BIGINT)."""
        return f"epoch_us({instant})"

    def row_number(self, partition: list[str], order: str) -> str:
        return f"row_number() OVER (PARTITION BY {', '.join(partition)} ORDER BY {order})"

    def column_type(self, ftype: FieldType) -> str:
        return _TYPES[self.name][ftype]

    def not_null(self) -> str:
        return " NOT NULL"

    # regex flavour
    def regex_flags(self, flags: str) -> str:
        return f"(?{flags})" if flags else ""


class _Postgres(_Dialect):
    name = "postgres"
    max_repeat = 255
    asof_join = False

    def placeholder(self, name: str) -> str:
        return f"%({name})s"

    def param(self, name: str, value: Any) -> str:
        cast = _PG_CASTS[type(value)]
        return f"CAST({_SENTINEL}{name}{_SENTINEL} AS {cast})"

    def finish(self, text: str) -> str:
        # psycopg reads % everywhere in the text, even inside quoted identifiers
        return super().finish(text.replace("%", "%%"))

    def contains(self, x: str, p: str) -> str:
        return f"strpos({x}, {p}) > 0"

    def ends_with(self, x: str, p: str) -> str:
        return f"right({x}, length({p})) = {p}"

    def regex(self, x: str, p: str) -> str:
        return f"({x} ~ {p})"

    def ordered(self, x: str) -> str:
        return f'{x} COLLATE "C"'

    def array(self, items: list[str], element: FieldType) -> str:
        return "ARRAY[" + ", ".join(items) + "]"

    def has_any(self, x: str, array: str) -> str:
        return f"({x} && {array})"

    def has_all(self, x: str, array: str) -> str:
        return f"({x} @> {array})"

    def bucket(self, text: str) -> str:
        return f"mod(('x' || lpad(substr(md5({text}), 1, 8), 16, '0'))::bit(64)::bigint, 10000)"

    def epoch_us(self, instant: str) -> str:
        return f"CAST(extract(epoch FROM {instant}) * 1000000 AS bigint)"

    def regex_flags(self, flags: str) -> str:
        # ARE embedded options: i (ignore case), w (^ and $ at newlines; . still matches \n)
        out = ("i" if "i" in flags else "") + ("w" if "m" in flags else "")
        return f"(?{out})" if out else ""


class _Spark(_Dialect):
    name = "spark"
    max_repeat = None
    asof_join = False

    def ident(self, name: str) -> str:
        return "`" + name.replace("`", "``") + "`"

    def placeholder(self, name: str) -> str:
        return ":" + name

    def contains(self, x: str, p: str) -> str:
        return f"contains({x}, {p})"

    def starts_with(self, x: str, p: str) -> str:
        return f"startswith({x}, {p})"

    def ends_with(self, x: str, p: str) -> str:
        return f"endswith({x}, {p})"

    def regex(self, x: str, p: str) -> str:
        return f"({x} RLIKE {p})"

    def array(self, items: list[str], element: FieldType) -> str:
        return "array(" + ", ".join(items) + ")"

    def has_any(self, x: str, array: str) -> str:
        return f"arrays_overlap({x}, {array})"

    def has_all(self, x: str, array: str) -> str:
        return f"size(array_except({array}, {x})) = 0"

    def bucket(self, text: str) -> str:
        return f"pmod(CAST(conv(substr(md5({text}), 1, 8), 16, 10) AS BIGINT), 10000)"

    # With spark.sql.session.timeZone=UTC a TIMESTAMP reads as its UTC wall clock.
    def utc_wall(self, instant: str) -> str:
        return instant

    def from_utc_wall(self, wall: str) -> str:
        return wall

    def local(self, instant: str, tz: str) -> str:
        return f"from_utc_timestamp({instant}, {tz})"

    def to_instant(self, wall: str, tz: str) -> str:
        # java.time resolves a repeated wall time to the earlier instant, like Python
        return f"to_utc_timestamp({wall}, {tz})"

    def distinct(self, a: str, b: str) -> str:
        return f"NOT ({a} <=> {b})"

    def epoch_us(self, instant: str) -> str:
        return f"unix_micros({instant})"

    def not_null(self) -> str:
        return ""

    def regex_flags(self, flags: str) -> str:
        # d: only \n ends a line (as in Python); u: Unicode-aware ignore-case
        return "(?d" + ("iu" if "i" in flags else "") + flags.replace("i", "") + ")"


_DIALECT_CLASSES: Final[dict[str, type[_Dialect]]] = {
    "duckdb": _Dialect,
    "spark": _Spark,
    "postgres": _Postgres,
}


def _dialect(name: object) -> _Dialect:
    cls = _DIALECT_CLASSES.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ValueError(f"unknown SQL dialect {name!r} (expected 'duckdb', 'spark' or 'postgres')")
    return cls()


def _check_name(name: object, what: str) -> str:
    if not isinstance(name, str) or not name:
        raise ValueError(f"{what} must be a non-empty string, got {name!r}")
    if "\x00" in name:
        raise ValueError(f"{what} {name!r} contains a NUL character, which SQL cannot quote")
    return name


def _table(d: _Dialect, name: object, what: str) -> str:
    parts = name if isinstance(name, tuple) else (name,)
    if not parts:
        raise ValueError(f"the {what} table name must not be empty")
    return ".".join(d.ident(_check_name(part, f"the {what} table name")) for part in parts)


# --- regexes --------------------------------------------------------------------------------------


class _Untranslatable(Exception):
    """Internal: something the target engine cannot express (the message says what)."""


@attrs.frozen
class _RxChar:
    char: str


@attrs.frozen
class _RxNamed:
    kind: str  # d D w W s S


@attrs.frozen
class _RxAnchor:
    kind: str  # ^ $ A Z


@attrs.frozen
class _RxAny:
    pass


@attrs.frozen
class _RxClass:
    negated: bool
    items: tuple[tuple[str, str] | _RxNamed, ...]


@attrs.frozen
class _RxGroup:
    branches: tuple[tuple[_RxNode, ...], ...]


@attrs.frozen
class _RxRepeat:
    node: _RxNode
    low: int
    high: int | None


_RxNode: TypeAlias = "_RxChar | _RxNamed | _RxAnchor | _RxAny | _RxClass | _RxGroup | _RxRepeat"

_SIMPLE_ESCAPES: Final = {"n": "\n", "t": "\t", "r": "\r", "f": "\f", "v": "\v", "a": "\a"}
_HEX_ESCAPES: Final = {"x": 2, "u": 4, "U": 8}
_OCTAL: Final = "01234567"
#: Python's \s for str patterns: the characters for which str.isspace() is true.
_SPACES: Final = (
    ("\t", "\r"),
    ("\x1c", " "),
    ("\x85", "\x85"),
    ("\xa0", "\xa0"),
    ("\u1680", "\u1680"),
    ("\u2000", "\u200a"),
    ("\u2028", "\u2029"),
    ("\u202f", "\u202f"),
    ("\u205f", "\u205f"),
    ("\u3000", "\u3000"),
)


class _RegexParser:
    """A parser for the portable subset of Python's regex syntax (the pattern already
    compiled in Python, so only what the subset leaves out needs an error)."""

    def __init__(self, pattern: str) -> None:
        self.p = pattern
        self.i = 0

    def peek(self, n: int = 0) -> str:
        j = self.i + n
        return self.p[j] if j < len(self.p) else ""

    def take(self) -> str:
        c = self.peek()
        self.i += 1
        return c

    def parse(self) -> _RxGroup:
        group = self.alternation()
        if self.i < len(self.p):  # pragma: no cover - a stray ')' does not compile in Python
            raise _Untranslatable(f"unexpected {self.peek()!r} in the regex")
        return group

    def alternation(self) -> _RxGroup:
        branches = [self.sequence()]
        while self.peek() == "|":
            self.take()
            branches.append(self.sequence())
        return _RxGroup(tuple(branches))

    def sequence(self) -> tuple[_RxNode, ...]:
        items: list[_RxNode] = []
        while self.i < len(self.p) and self.peek() not in "|)":
            atom = self.atom()
            items.append(self.quantified(atom))
        return tuple(items)

    def quantified(self, atom: _RxNode) -> _RxNode:
        while True:
            c = self.peek()
            if c in ("*", "+", "?"):
                self.take()
                low, high = {"*": (0, None), "+": (1, None), "?": (0, 1)}[c]
            elif c == "{":
                bounds = self.braces()
                if bounds is None:
                    return atom
                low, high = bounds
            else:
                return atom
            if self.peek() == "+":
                raise _Untranslatable("a possessive quantifier ('*+', '++', '?+' or '}+')")
            if self.peek() == "?":  # lazy: the same matches exist, only their extent differs
                self.take()
            atom = _RxRepeat(atom, low, high)

    def braces(self) -> tuple[int, int | None] | None:
        """``{m}``, ``{m,}``, ``{,n}``, ``{m,n}`` as Python reads them; ``None``: a literal '{'."""
        start = self.i
        self.take()
        low = ""
        while self.peek().isdigit() and self.peek().isascii():
            low += self.take()
        comma = self.peek() == ","
        if comma:
            self.take()
            high = ""
            while self.peek().isdigit() and self.peek().isascii():
                high += self.take()
        else:
            high = low
        if self.peek() != "}" or not (low or comma):
            self.i = start
            return None
        self.take()
        return (int(low) if low else 0), (int(high) if high else None)

    def atom(self) -> _RxNode:
        c = self.take()
        if c == "(":
            return self.group()
        if c == "[":
            return self.char_class()
        if c == ".":
            return _RxAny()
        if c == "^":
            return _RxAnchor("^")
        if c == "$":
            return _RxAnchor("$")
        if c == "\\":
            return self.escape(in_class=False)
        return _RxChar(c)  # '{' that starts no quantifier is a literal too

    def group(self) -> _RxGroup:
        if self.peek() == "?":
            self.take()
            c = self.take()
            if c == ":":
                pass
            elif c == "P" and self.peek() == "<":
                while self.take() not in (">", ""):
                    pass
            elif c == "P" and self.peek() == "=":
                raise _Untranslatable("a backreference ('(?P=name)')")
            elif c in ("=", "!"):
                raise _Untranslatable(f"a lookahead ('(?{c}...)')")
            elif c == "<" and self.peek() in ("=", "!"):
                raise _Untranslatable(f"a lookbehind ('(?<{self.peek()}...)')")
            elif c == "#":
                raise _Untranslatable("a comment group ('(?#...)')")
            elif c == ">":
                raise _Untranslatable("an atomic group ('(?>...)')")
            elif c == "(":
                raise _Untranslatable("a conditional group ('(?(...)...)')")
            else:
                raise _Untranslatable("inline flags ('(?...)'); write them after the closing slash")
        inner = self.alternation()
        self.take()  # ')'
        return inner

    def escape(self, in_class: bool) -> _RxNode:
        c = self.take()
        if c in "dDwWsS":
            return _RxNamed(c)
        if c == "b":
            if in_class:
                return _RxChar("\b")
            raise _Untranslatable("a word boundary ('\\b')")
        if c == "B":
            raise _Untranslatable("a non-boundary ('\\B')")
        if c == "A" and not in_class:
            return _RxAnchor("A")
        if c in ("Z", "z") and not in_class:
            return _RxAnchor("Z")
        if c in _SIMPLE_ESCAPES:
            return _RxChar(_SIMPLE_ESCAPES[c])
        if c in _HEX_ESCAPES:
            digits = self.p[self.i : self.i + _HEX_ESCAPES[c]]
            self.i += len(digits)
            return _RxChar(chr(int(digits, 16)))
        if c == "N" and self.peek() == "{":
            end = self.p.index("}", self.i)
            name = self.p[self.i + 1 : end]
            self.i = end + 1
            return _RxChar(unicodedata.lookup(name))
        if c.isdigit() and c.isascii():
            digits = c
            if c == "0" or in_class:
                while len(digits) < 3 and self.peek() in _OCTAL and self.peek():
                    digits += self.take()
                return _RxChar(chr(int(digits, 8)))
            if (
                c in _OCTAL
                and self.peek() in _OCTAL
                and self.peek()
                and self.peek(1) in _OCTAL
                and self.peek(1)
            ):
                digits += self.take() + self.take()
                return _RxChar(chr(int(digits, 8)))
            raise _Untranslatable(f"a backreference ('\\{c}')")
        if c.isascii() and c.isalpha():  # pragma: no cover - Python rejects unknown escapes
            raise _Untranslatable(f"the escape '\\{c}'")
        return _RxChar(c)

    def char_class(self) -> _RxClass:
        negated = False
        if self.peek() == "^":
            self.take()
            negated = True
        items: list[tuple[str, str] | _RxNamed] = []
        first = True
        while True:
            c = self.take()
            if c == "]" and not first:
                break
            first = False
            low = self.class_atom(c)
            if isinstance(low, _RxNamed):
                items.append(low)
                continue
            if self.peek() == "-" and self.peek(1) not in ("]", ""):
                self.take()
                high = self.class_atom(self.take())
                assert isinstance(high, str)  # Python rejects a class escape in a range
                items.append((low, high))
            else:
                items.append((low, low))
        return _RxClass(negated, tuple(items))

    def class_atom(self, c: str) -> str | _RxNamed:
        if c == "\\":
            node = self.escape(in_class=True)
            if isinstance(node, _RxNamed):
                return node
            assert isinstance(node, _RxChar)
            return node.char
        return c


class _RegexWriter:
    """Writes a parsed pattern for one dialect with the rule's flags."""

    def __init__(self, dialect: _Dialect, flags: str) -> None:
        self.dialect = dialect
        self.d = dialect.name
        self.max_repeat = dialect.max_repeat
        self.flags = flags
        self.multiline = "m" in flags
        self.dotall = "s" in flags

    def char(self, c: str) -> str:
        if c.isascii() and c.isalnum():
            return c
        if c in string.punctuation:
            return "\\" + c
        if c == "\n":
            return "\\n"
        if c == "\t":
            return "\\t"
        if c == "\r":
            return "\\r"
        if c == " " or (c.isprintable() and not c.isascii()):
            return c
        if self.d == "postgres":
            return f"\\u{ord(c):04X}" if ord(c) <= 0xFFFF else f"\\U{ord(c):08X}"
        return f"\\x{{{ord(c):X}}}"

    def named(self, kind: str, in_class: bool) -> str:
        if kind in "sS":
            members = "".join(
                self.char(lo) if lo == hi else f"{self.char(lo)}-{self.char(hi)}"
                for lo, hi in _SPACES
            )
            if in_class:
                return members
            return f"[{'^' if kind == 'S' else ''}{members}]"
        if self.d == "postgres":
            raise _Untranslatable(
                f"'\\{kind}' (PostgreSQL's classes follow the database locale, not Unicode);"
                " write a class such as [0-9]"
            )
        if kind in "dD":
            return "\\p{Nd}" if kind == "d" else "\\P{Nd}"
        members = "\\p{L}\\p{N}_"
        if in_class:
            return members
        return f"[{'^' if kind == 'W' else ''}{members}]"

    def write(self, group: _RxGroup) -> str:
        body = self.branches(group, tail=True)
        return self.prefix() + body

    def prefix(self) -> str:
        return self.dialect.regex_flags(self.flags)

    def branches(self, group: _RxGroup, tail: bool) -> str:
        return "|".join(self.sequence(branch, tail) for branch in group.branches)

    def sequence(self, items: tuple[_RxNode, ...], tail: bool) -> str:
        last = len(items) - 1
        return "".join(self.node(item, tail and i == last) for i, item in enumerate(items))

    def node(self, node: _RxNode, tail: bool) -> str:
        if isinstance(node, _RxChar):
            return self.char(node.char)
        if isinstance(node, _RxNamed):
            return self.named(node.kind, in_class=False)
        if isinstance(node, _RxAny):
            if self.d == "postgres" and not self.dotall:
                return "[^\\n]"
            return "."
        if isinstance(node, _RxAnchor):
            return self.anchor(node.kind, tail)
        if isinstance(node, _RxClass):
            return self.char_class(node)
        if isinstance(node, _RxGroup):
            return "(?:" + self.branches(node, tail) + ")"
        return self.repeat(node)

    def anchor(self, kind: str, tail: bool) -> str:
        if kind == "A":
            return "\\A"
        if kind == "Z":
            return "\\Z" if self.d == "postgres" else "\\z"
        if kind == "^":
            if self.multiline and self.d == "spark":
                return "(?:^|(?<=\\n))"  # Java's ^ does not match after a final newline
            return "^"
        if self.multiline or self.d == "spark":
            return "$"
        if not tail:
            raise _Untranslatable(
                "'$' followed by more pattern without the m flag (Python's '$' also"
                " matches before a final newline); end the pattern with '$'"
            )
        return "(?:\\n?$)"

    def char_class(self, node: _RxClass) -> str:
        named = [item for item in node.items if isinstance(item, _RxNamed)]
        negated = node.negated
        if any(item.kind in "WS" for item in named):
            if len(node.items) > 1:
                raise _Untranslatable("'\\W' or '\\S' inside a character class with other members")
            kind = named[0].kind.lower()
            negated = not negated
            body = self.named(kind, in_class=True)
        else:
            body = "".join(
                self.named(item.kind, in_class=True)
                if isinstance(item, _RxNamed)
                else self.char(item[0])
                if item[0] == item[1]
                else f"{self.char(item[0])}-{self.char(item[1])}"
                for item in node.items
            )
        return f"[{'^' if negated else ''}{body}]"

    def repeat(self, node: _RxRepeat) -> str:
        inner = self.node(node.node, tail=False)
        low, high = node.low, node.high
        limit = self.max_repeat
        if limit is not None and max(low, high or 0) > limit:
            engine = "RE2" if self.d == "duckdb" else "PostgreSQL"
            raise _Untranslatable(f"a repetition count above {limit} ({engine}'s limit)")
        if (low, high) == (0, None):
            return inner + "*"
        if (low, high) == (1, None):
            return inner + "+"
        if (low, high) == (0, 1):
            return inner + "?"
        if high is None:
            return inner + f"{{{low},}}"
        if low == high:
            return inner + f"{{{low}}}"
        return inner + f"{{{low},{high}}}"


def _translate_regex(pattern: str, flags: str, dialect: _Dialect) -> str:
    """``pattern`` (Python syntax) rewritten for ``dialect``'s regex engine, flags included.

    Raises :class:`_Untranslatable` naming what cannot be translated.
    """
    return _RegexWriter(dialect, flags).write(_RegexParser(pattern).parse())


# --- case folding ---------------------------------------------------------------------------------


def _fold_unsafe(text: str) -> str | None:
    """The first character of ``text`` whose ``lower()`` differs from its ``casefold()``
    (or whose lowercase is several characters), or ``None``."""
    for c in text:
        low = c.lower()
        if low != c.casefold() or len(low) != 1:
            return c
    return None


# --- local days -----------------------------------------------------------------------------------


def _day_start(day: date, tz: tzinfo) -> datetime | None:
    """The first instant (UTC) whose local date in ``tz`` is ``day`` or later.

    ``None`` when that instant is out of range (before year 1 or after 9999).
    Raises :class:`_Untranslatable` when the zone moves its clock back across that
    midnight, since local dates are then not in the order of instants.
    """
    try:
        start = datetime.combine(day, time(0), tzinfo=tz).astimezone(_UTC)
    except OverflowError:
        return None
    # A backward change of the clock shortly after midnight could bring the local date
    # back to the day before: find changes within four hours and check.
    step = timedelta(minutes=15)
    previous = start
    for k in range(1, 17):
        moment = start + k * step
        if moment.astimezone(tz).utcoffset() != previous.astimezone(tz).utcoffset():
            lo, hi = previous, moment
            while hi - lo > timedelta(seconds=1):
                mid = lo + (hi - lo) / 2
                if mid.astimezone(tz).utcoffset() == lo.astimezone(tz).utcoffset():
                    lo = mid
                else:
                    hi = mid
            if hi.astimezone(tz).date() < day:
                raise _Untranslatable(
                    f"the time zone moves the clock back across midnight on {day.isoformat()},"
                    " so a local date is not one range of instants"
                )
        previous = moment
    return start


def _next_day_start(day: date, tz: tzinfo) -> datetime | None:
    return None if day == date.max else _day_start(day + timedelta(days=1), tz)


# --- parameters -----------------------------------------------------------------------------------


@attrs.frozen
class _TimeParam:
    """A parameter computed from ``now``: ``now`` itself, or ``now - duration``,
    as an instant or as the local date."""

    duration: Duration | None
    as_date: bool

    def value(self, now: datetime, tz: tzinfo) -> datetime | date:
        moment = now if self.duration is None else self.duration.before(now, tz)
        return moment.astimezone(tz).date() if self.as_date else moment.astimezone(_UTC)

    @property
    def name(self) -> str:
        base = "now" if self.duration is None else f"now_minus_{self.duration}"
        return ("day_of_" + base if base != "now" else "today") if self.as_date else base


_Slot: TypeAlias = "tuple[str, Any]"


def _value_key(value: Any) -> tuple[str, Any]:
    return (type(value).__name__, value)


# --- the compiled query ---------------------------------------------------------------------------


def _now_utc(now: datetime, tz: tzinfo | None) -> datetime:
    if not isinstance(now, datetime):
        raise TypeError(f"now must be a datetime, got {now!r}")
    return ensure_aware(now, tz, "now").astimezone(_UTC)


@attrs.frozen(repr=False)
class SqlQuery:
    """SQL text selecting the keys of a rule's members, and its parameters.

    ``text`` is one ``SELECT`` returning a single column, ``key``; ``params`` maps
    each placeholder's name to its value, ready for the driver (``$name`` for
    DuckDB, ``%(name)s`` for psycopg, ``:name`` for Spark's ``spark.sql(text,
    args=params)``). A time-relative rule needs ``now``: pass it to :func:`to_sql`
    or call :meth:`with_now`, which keeps the text and recomputes the time
    parameters. ``str(query)`` is the text.

    >>> import segkit as sk
    >>> schema = sk.Schema(attributes={"country": "string"})
    >>> query = to_sql('country in ["FR", "BE"]', schema, dialect="postgres")
    >>> print(query)
    SELECT p."key"
    FROM "profiles" AS p
    WHERE p."country" IN (CAST(%(p1)s AS text), CAST(%(p2)s AS text))
    >>> query.params
    {'p1': 'FR', 'p2': 'BE'}
    >>> query.to_dict()["dialect"], query.needs_now
    ('postgres', False)

    .. versionadded:: 0.1.0
    """

    text: str
    dialect: str
    now: datetime | None
    _slots: tuple[_Slot, ...] = attrs.field(alias="slots")
    _tz: tzinfo | None = attrs.field(alias="tz", eq=False)

    @property
    def needs_now(self) -> bool:
        """Whether some parameter is computed from ``now`` (the rule is time-relative).

        >>> import segkit as sk
        >>> schema = sk.Schema(attributes={"seen": "datetime"}, timezone="UTC")
        >>> to_sql("seen in last 7d", schema).needs_now
        True
        """
        return any(isinstance(value, _TimeParam) for _, value in self._slots)

    @property
    def params(self) -> dict[str, Any]:
        """The parameters by name, in the order they first appear in the text.

        Raises :class:`ValueError` when the rule is time-relative and no ``now`` was given.

        >>> import segkit as sk
        >>> schema = sk.Schema(attributes={"seen": "datetime"}, timezone="UTC")
        >>> to_sql("seen in last 7d", schema).params
        Traceback (most recent call last):
        ...
        ValueError: this rule is relative to the current time: pass now= to to_sql() or call .with_now(now)
        """
        now = self.now
        out: dict[str, Any] = {}
        for name, value in self._slots:
            if isinstance(value, _TimeParam):
                if now is None:
                    raise ValueError(
                        "this rule is relative to the current time:"
                        " pass now= to to_sql() or call .with_now(now)"
                    )
                out[name] = value.value(now, self._tz or _UTC)
            else:
                out[name] = value
        return out

    def with_now(self, now: datetime) -> SqlQuery:
        """The same query with its time parameters computed for ``now``.

        A naive ``now`` is read in the schema's time zone.

        >>> import segkit as sk
        >>> from datetime import datetime, timezone
        >>> schema = sk.Schema(attributes={"seen": "datetime"}, timezone="UTC")
        >>> query = to_sql("seen in last 7d", schema)
        >>> query.with_now(datetime(2024, 6, 30, tzinfo=timezone.utc)).params["now_minus_7d"]
        datetime.datetime(2024, 6, 23, 0, 0, tzinfo=datetime.timezone.utc)
        """
        return attrs.evolve(self, now=_now_utc(now, self._tz))

    def to_dict(self) -> dict[str, Any]:
        """``{"dialect", "text", "params", "now"}``; ``params`` is ``None`` while the
        query still needs ``now``. Values stay Python objects (dates, datetimes).

        >>> import segkit as sk
        >>> to_sql("age > 3", sk.Schema(attributes={"age": "int"})).to_dict()
        {'dialect': 'duckdb', 'text': 'SELECT p."key"\\nFROM "profiles" AS p\\nWHERE p."age" > $p1', 'params': {'p1': 3}, 'now': None}
        """
        params = None if self.needs_now and self.now is None else self.params
        return {"dialect": self.dialect, "text": self.text, "params": params, "now": self.now}

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        shown: Any = None if self.needs_now and self.now is None else self.params
        return f"SqlQuery(dialect={self.dialect!r}, text={self.text!r}, params={shown!r})"


# --- the compiler ---------------------------------------------------------------------------------


@attrs.frozen
class _Scope:
    """Where bare names resolve: profile attributes (``event is None``) or an event's
    properties, as columns of the table aliased ``alias``."""

    alias: str
    event: str | None


_SQL_OPS: Final = {"=": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_CALENDAR: Final = {"d": ("DAY", 1), "w": ("DAY", 7), "mo": ("MONTH", 1), "y": ("YEAR", 1)}
_EXACT_SECONDS: Final = {"s": 1, "min": 60, "h": 3600}


class _Compiler:
    def __init__(self, schema: Schema, dialect: _Dialect, source: str) -> None:
        self.schema = schema
        self.d = dialect
        self.source = source
        self.tz: tzinfo = schema.tz or _UTC
        self.slots: dict[str, Any] = {}
        self.names: dict[Any, str] = {}
        self.joins: dict[str, str] = {}
        self.events_table = ""
        self.memberships_table = ""
        self.k = dialect.ident(KEY)

    # --- parameters ----------------------------------------------------------------------

    def param(self, value: Any) -> str:
        if isinstance(value, datetime):
            value = value.astimezone(_UTC)
        key = _value_key(value)
        name = self.names.get(key)
        if name is None:
            name = f"p{sum(1 for v in self.slots.values() if not isinstance(v, _TimeParam)) + 1}"
            self.names[key] = name
            self.slots[name] = value
        return self.d.param(name, value)

    def time_param(self, duration: Duration | None, as_date: bool = False) -> str:
        tp = _TimeParam(duration, as_date)
        self.slots.setdefault(tp.name, tp)
        sample = date(2000, 1, 1) if as_date else datetime(2000, 1, 1, tzinfo=_UTC)
        return self.d.param(tp.name, sample)

    def error(self, node: ast.Node, detail: str) -> RuleError:
        return _unsupported(self.d.name, detail, self.source, node)

    # --- columns -------------------------------------------------------------------------

    def column(self, field: str, scope: _Scope) -> tuple[str, FieldType]:
        if scope.event is None:
            ftype = self.schema.attribute_type(field)
            if field == KEY:
                raise SchemaError(
                    "attribute 'key' has the name of the profiles table's key column;"
                    " the SQL back-end cannot read it",
                    field=field,
                )
        else:
            ftype = self.property_column_type(scope.event, field)
        assert ftype is not None  # the rule was checked
        return f"{scope.alias}.{self.d.ident(_check_name(field, 'a column name'))}", ftype

    def property_column_type(self, event: str, prop: str) -> FieldType:
        if prop in (KEY, NAME, AT):
            raise SchemaError(
                f"property {prop!r} of event {event!r} has the name of the events table's"
                f" {prop!r} column; the SQL back-end cannot read it",
                field=prop,
            )
        ftype = self.schema.property_type(event, prop)
        assert ftype is not None
        for other, etype in self.schema.events.items():
            theirs = etype.properties.get(prop)
            if theirs is not None and theirs != ftype:
                raise SchemaError(
                    f"property {prop!r} is {ftype} in event {event!r} but {theirs} in event"
                    f" {other!r}; the events table has one column per property name",
                    field=prop,
                )
        return ftype

    # --- dispatch ------------------------------------------------------------------------

    def expr(self, node: ast.Expr, scope: _Scope, strict: bool) -> str:
        """SQL for ``node``. ``strict``: the result must be TRUE or FALSE, never NULL
        (below a ``not``); elsewhere NULL may stand for FALSE."""
        method: Callable[[Any, _Scope, bool], str] = getattr(self, "c_" + type(node).__name__)
        try:
            return method(node, scope, strict)
        except _Untranslatable as exc:
            raise self.error(node, str(exc)) from None

    @staticmethod
    def guard(core: str, strict: bool) -> str:
        return f"COALESCE({core}, FALSE)" if strict else core

    def c_And(self, node: ast.And, scope: _Scope, strict: bool) -> str:
        return "(" + " AND ".join(self.expr(i, scope, strict) for i in node.items) + ")"

    def c_Or(self, node: ast.Or, scope: _Scope, strict: bool) -> str:
        return "(" + " OR ".join(self.expr(i, scope, strict) for i in node.items) + ")"

    def c_Not(self, node: ast.Not, scope: _Scope, strict: bool) -> str:
        return f"NOT ({_unwrap(self.expr(node.operand, scope, True))})"

    # --- value comparisons ---------------------------------------------------------------

    def compare(self, col: str, ftype: FieldType, op: str, literal: Any) -> str:
        """``col op literal`` for a known ``col``; NULL when ``col`` is NULL."""
        if ftype is FieldType.DATETIME and not isinstance(literal, datetime):
            return self.compare_local_date(col, op, literal)
        if ftype is FieldType.DATETIME:
            literal = ensure_aware(literal, self.tz).astimezone(_UTC)
        elif ftype is FieldType.DATE and isinstance(literal, datetime):
            literal = ensure_aware(literal, self.tz).astimezone(self.tz).date()
        left = self.d.ordered(col) if ftype is FieldType.STRING and op not in ("=", "!=") else col
        return f"{left} {_SQL_OPS[op]} {self.param(literal)}"

    def compare_local_date(self, col: str, op: str, day: date) -> str:
        """``local_date(col) op day`` as comparisons of instants."""
        lo, hi = _day_start(day, self.tz), _next_day_start(day, self.tz)

        def at_least(bound: datetime | None) -> str:  # col >= bound
            return f"{col} = {col}" if bound is None else f"{col} >= {self.param(bound)}"

        def below(bound: datetime | None) -> str:  # col < bound
            return f"{col} = {col}" if bound is None else f"{col} < {self.param(bound)}"

        if op == "=":
            return f"({at_least(lo)} AND {below(hi)})"
        if op == "!=":
            return f"NOT ({at_least(lo)} AND {below(hi)})"
        if op == "<":
            return f"NOT ({at_least(lo)})"
        if op == "<=":
            return below(hi)
        if op == ">":
            return f"NOT ({below(hi)})"
        return at_least(lo)

    # --- field predicates ----------------------------------------------------------------

    def c_Compare(self, node: ast.Compare, scope: _Scope, strict: bool) -> str:
        col, ftype = self.column(node.field, scope)
        return self.guard(self.compare(col, ftype, node.op, node.value), strict)

    def c_InList(self, node: ast.InList, scope: _Scope, strict: bool) -> str:
        col, ftype = self.column(node.field, scope)
        if ftype is FieldType.DATETIME and any(not isinstance(v, datetime) for v in node.values):
            core = "(" + " OR ".join(self.compare(col, ftype, "=", v) for v in node.values) + ")"
        else:
            values: list[Any] = []
            for v in node.values:
                if isinstance(v, datetime):
                    v = ensure_aware(v, self.tz).astimezone(_UTC)
                    if ftype is FieldType.DATE:
                        v = v.astimezone(self.tz).date()
                if _value_key(v) not in {_value_key(x) for x in values}:
                    values.append(v)
            core = f"{col} IN ({', '.join(self.param(v) for v in values)})"
        if node.negated:
            core = f"NOT ({_unwrap(core)})"
        return self.guard(core, strict)

    def c_Between(self, node: ast.Between, scope: _Scope, strict: bool) -> str:
        col, ftype = self.column(node.field, scope)
        plain = ftype is not FieldType.DATETIME or all(
            isinstance(v, datetime) for v in (node.low, node.high)
        )
        if plain:
            low, high = node.low, node.high
            if ftype is FieldType.DATETIME:
                low = ensure_aware(low, self.tz).astimezone(_UTC)  # type: ignore[arg-type]
                high = ensure_aware(high, self.tz).astimezone(_UTC)  # type: ignore[arg-type]
            elif ftype is FieldType.DATE:
                low, high = (
                    ensure_aware(v, self.tz).astimezone(self.tz).date()
                    if isinstance(v, datetime)
                    else v
                    for v in (low, high)
                )
            left = self.d.ordered(col) if ftype is FieldType.STRING else col
            core = f"{left} BETWEEN {self.param(low)} AND {self.param(high)}"
        else:
            core = (
                f"({self.compare(col, ftype, '>=', node.low)}"
                f" AND {self.compare(col, ftype, '<=', node.high)})"
            )
        if node.negated:
            core = f"NOT ({_unwrap(core)})"
        return self.guard(core, strict)

    def c_StringOp(self, node: ast.StringOp, scope: _Scope, strict: bool) -> str:
        col, _ = self.column(node.field, scope)
        value = self.param(node.value)
        if node.case_insensitive:
            bad = _fold_unsafe(node.value)
            if bad is not None:
                raise self.error(
                    node,
                    f"'i{node.op}' compares lower() forms in SQL, which differ from Python's"
                    f" casefold() for {bad!r}; use a literal without it",
                )
            col, value = self.d.lower(col), self.d.lower(value)
        test = {
            "contains": self.d.contains,
            "starts_with": self.d.starts_with,
            "ends_with": self.d.ends_with,
        }[node.op]
        core = test(col, value)
        if node.negated:
            core = f"NOT ({core})"
        return self.guard(core, strict)

    def c_Matches(self, node: ast.Matches, scope: _Scope, strict: bool) -> str:
        col, _ = self.column(node.field, scope)
        try:
            pattern = _translate_regex(node.pattern, node.flags, self.d)
        except _Untranslatable as exc:
            raise _Untranslatable(f"the regex uses {exc}") from None
        core = self.d.regex(col, self.param(pattern))
        if node.negated:
            core = f"NOT {core}" if core.startswith("(") else f"NOT ({core})"
        return self.guard(core, strict)

    def c_IsKnown(self, node: ast.IsKnown, scope: _Scope, strict: bool) -> str:
        col, _ = self.column(node.field, scope)
        return f"{col} IS NULL" if node.negated else f"{col} IS NOT NULL"

    def c_HasList(self, node: ast.HasList, scope: _Scope, strict: bool) -> str:
        col, ftype = self.column(node.field, scope)
        values: list[Any] = []
        for v in node.values:
            if _value_key(v) not in {_value_key(x) for x in values}:
                values.append(v)
        array = self.d.array([self.param(v) for v in values], ftype.element)
        if node.mode == "all":
            core = self.d.has_all(col, array)
        else:
            core = self.d.has_any(col, array)
            if node.mode == "none":
                core = f"NOT {core}" if core.startswith("(") else f"NOT ({core})"
        return self.guard(core, strict)

    def window_bounds(self, ftype: FieldType, duration: Duration) -> tuple[str, str]:
        if ftype is FieldType.DATE:
            return self.time_param(duration, as_date=True), self.time_param(None, as_date=True)
        return self.time_param(duration), self.time_param(None)

    def c_InLast(self, node: ast.InLast, scope: _Scope, strict: bool) -> str:
        col, ftype = self.column(node.field, scope)
        start, end = self.window_bounds(ftype, node.duration)
        core = f"{col} > {start} AND {col} <= {end}"
        core = f"NOT ({core})" if node.negated else f"({core})"
        return self.guard(core, strict)

    def c_MoreThanAgo(self, node: ast.MoreThanAgo, scope: _Scope, strict: bool) -> str:
        col, ftype = self.column(node.field, scope)
        start = self.time_param(node.duration, as_date=ftype is FieldType.DATE)
        return self.guard(f"{col} <= {start}", strict)

    def c_TimeCompare(self, node: ast.TimeCompare, scope: _Scope, strict: bool) -> str:
        col, ftype = self.column(node.field, scope)
        op = "<" if node.op == "before" else ">"
        return self.guard(self.compare(col, ftype, op, node.value), strict)

    # --- segments and buckets ------------------------------------------------------------

    def join(self, subquery: str) -> str:
        alias = self.joins.get(subquery)
        if alias is None:
            alias = f"q{len(self.joins) + 1}"
            self.joins[subquery] = alias
        return alias

    def c_InSegment(self, node: ast.InSegment, scope: _Scope, strict: bool) -> str:
        seg = self.d.ident(SEGMENT)
        q = self.join(
            f"SELECT m.{self.k} FROM {self.memberships_table} AS m"
            f" WHERE m.{seg} = {self.param(node.segment)} GROUP BY m.{self.k}"
        )
        return f"{q}.{self.k} IS NULL" if node.negated else f"{q}.{self.k} IS NOT NULL"

    def c_Bucket(self, node: ast.Bucket, scope: _Scope, strict: bool) -> str:
        hashed = self.d.bucket(f"{self.param(node.salt + ':')} || p.{self.k}")
        return f"{hashed} BETWEEN {self.param(node.low)} AND {self.param(node.high)}"

    # --- events --------------------------------------------------------------------------

    def window_conditions(self, window: ast.Window | None, at: str) -> list[str]:
        if window is None:
            return []
        if isinstance(window, ast.LastWindow):
            return [
                f"{at} > {self.time_param(window.duration)}",
                f"{at} <= {self.time_param(None)}",
            ]
        out = []
        if isinstance(window.start, datetime):
            start = ensure_aware(window.start, self.tz).astimezone(_UTC)
            out.append(f"{at} >= {self.param(start)}")
        else:
            lo = _day_start(window.start, self.tz)
            if lo is not None:
                out.append(f"{at} >= {self.param(lo)}")
        if isinstance(window.end, datetime):
            end = ensure_aware(window.end, self.tz).astimezone(_UTC)
            out.append(f"{at} <= {self.param(end)}")
        else:
            hi = _next_day_start(window.end, self.tz)
            if hi is not None:
                out.append(f"{at} < {self.param(hi)}")
        return out

    def event_conditions(
        self, event: str, where: ast.Expr | None, window: ast.Window | None, alias: str = "e"
    ) -> str:
        conds = [f"{alias}.{self.d.ident(NAME)} = {self.param(event)}"]
        conds += self.window_conditions(window, f"{alias}.{self.d.ident(AT)}")
        if where is not None:
            conds.append(self.expr(where, _Scope(alias, event), False))
        return " AND ".join(conds)

    def events_subquery(self, select: str, conditions: str) -> str:
        return (
            f"SELECT e.{self.k}{select} FROM {self.events_table} AS e"
            f" WHERE {conditions} GROUP BY e.{self.k}"
        )

    def c_Did(self, node: ast.Did, scope: _Scope, strict: bool) -> str:
        conds = self.event_conditions(node.event, node.where, node.window)
        if node.count_op is None:
            q = self.join(self.events_subquery("", conds))
            return f"{q}.{self.k} IS NOT NULL"
        q = self.join(self.events_subquery(", count(*) AS n", conds))
        return f"COALESCE({q}.n, 0) {_SQL_OPS[node.count_op]} {self.param(node.count)}"

    def c_Aggregate(self, node: ast.Aggregate, scope: _Scope, strict: bool) -> str:
        conds = self.event_conditions(node.event, node.where, node.window)
        op, value = _SQL_OPS[node.op], self.param(node.value)
        if node.func == "count":
            q = self.join(self.events_subquery(", count(*) AS n", conds))
            return f"COALESCE({q}.n, 0) {op} {value}"
        assert node.prop is not None
        self.property_column_type(node.event, node.prop)
        prop = self.d.ident(node.prop)
        q = self.join(self.events_subquery(f", {node.func}(e.{prop}) AS v", conds))
        if node.func == "sum":
            return f"COALESCE({q}.v, 0) {op} {value}"
        return self.guard(f"{q}.v {op} {value}", strict)

    def c_FirstTime(self, node: ast.FirstTime, scope: _Scope, strict: bool) -> str:
        conds = self.event_conditions(node.event, node.where, None)
        q = self.join(self.events_subquery(f", min(e.{self.d.ident(AT)}) AS first_at", conds))
        window = self.window_conditions(node.window, f"{q}.first_at")
        if not window:
            return f"{q}.first_at IS NOT NULL"
        return self.guard("(" + " AND ".join(window) + ")", strict)

    def c_Sequence(self, node: ast.Sequence, scope: _Scope, strict: bool) -> str:
        k, at = self.k, self.d.ident(AT)
        names = [step.event for step in node.steps]
        shared = {name for name in names if names.count(name) > 1}
        # Properties that tell apart two events of one name with the same time: an event
        # is (key, at, these properties, rank among identical rows).
        props: dict[str, list[str]] = {}
        for step in node.steps:
            if step.event in shared and step.where is not None:
                for inner in ast.iter_nodes(step.where):
                    field = getattr(inner, "field", None)
                    if isinstance(field, str) and field not in props.setdefault(step.event, []):
                        self.property_column_type(step.event, field)
                        props[step.event].append(field)
        parts = []
        for j, step in enumerate(node.steps, 1):
            conds = self.event_conditions(step.event, step.where, node.window)
            select = [f"e.{k}", f"e.{at}"]
            if step.event in shared:
                columns = [f"e.{self.d.ident(p)}" for p in sorted(props.get(step.event, []))]
                select += columns
                rank = self.d.row_number([f"e.{k}", f"e.{at}", *columns], f"e.{at}")
                select.append(f"{rank} AS dup")
            sub = (
                f"(SELECT {', '.join(select)} FROM {self.events_table} AS e WHERE {conds}) AS s{j}"
            )
            if j == 1:
                parts.append(f"SELECT s1.{k} FROM {sub}")
                continue
            on = [f"s{j}.{k} = s1.{k}", f"s{j}.{at} >= s{j - 1}.{at}"]
            for i in range(1, j):
                if names[i - 1] == step.event:
                    differ = [f"s{i}.{at} <> s{j}.{at}", f"s{i}.dup <> s{j}.dup"]
                    differ += [
                        self.d.distinct(f"s{i}.{self.d.ident(p)}", f"s{j}.{self.d.ident(p)}")
                        for p in sorted(props.get(step.event, []))
                    ]
                    on.append("(" + " OR ".join(differ) + ")")
            parts.append(f"JOIN {sub} ON {' AND '.join(on)}")
        last = len(node.steps)
        deadline = self.after(f"s1.{at}", node.within, node)
        parts.append(f"WHERE s{last}.{at} <= {deadline} GROUP BY s1.{k}")
        q = self.join(" ".join(parts))
        return f"{q}.{k} IS NOT NULL"

    def after(
        self,
        instant: str,
        duration: Duration,
        node: ast.Node,
        *,
        tz: tzinfo | None = None,
        tz_name: str | None = None,
    ) -> str:
        """SQL for ``duration.after(instant, tz)``, row by row (``tz``, named ``tz_name``:
        the schema's zone unless given)."""
        if duration.unit in _EXACT_SECONDS:
            seconds = duration.amount * _EXACT_SECONDS[duration.unit]
            return f"{instant} + {self.d.interval(self.param(seconds), 'SECOND')}"
        unit, factor = _CALENDAR[duration.unit]
        interval = self.d.interval(self.param(duration.amount * factor), unit)
        if tz is None:
            tz, tz_name = self.tz, self.schema.timezone_name
        if isinstance(tz, timezone):  # a fixed offset: shift to its wall clock and back
            offset = tz.utcoffset(None).total_seconds()
            if offset == 0:
                return self.d.from_utc_wall(f"({self.d.utc_wall(instant)} + {interval})")
            shift = self.d.interval(self.param(int(offset)), "SECOND")
            wall = f"{self.d.utc_wall(instant)} + {shift} + {interval}"
            return self.d.from_utc_wall(f"({wall} - {shift})")
        name = tz_name
        if name is None:
            raise self.error(
                node,
                f"'within {duration}' needs the schema's time zone by name; declare"
                " Schema(timezone=...) with an IANA name such as 'Europe/Paris'",
            )
        tzp = self.param(name)
        wall = f"({self.d.local(instant, tzp)} + {interval})"
        return self.d.to_instant(wall, tzp)

    # --- the query -----------------------------------------------------------------------

    def query(self, expr: ast.Expr, profiles: str) -> str:
        where = _unwrap(self.expr(expr, _Scope("p", None), False))
        lines = [f"SELECT p.{self.k}", f"FROM {profiles} AS p"]
        lines += [
            f"LEFT JOIN ({sub}) AS {alias} ON {alias}.{self.k} = p.{self.k}"
            for sub, alias in self.joins.items()
        ]
        lines.append(f"WHERE {where}")
        return self.d.finish("\n".join(lines))


def _unwrap(sql: str) -> str:
    """Drop one pair of parentheses around the whole of ``sql``, if there is one."""
    if not (sql.startswith("(") and sql.endswith(")")):
        return sql
    depth = 0
    quote = ""
    for i, c in enumerate(sql):
        if quote:
            if c == quote:
                quote = ""
            continue
        if c in "\"`'":
            quote = c
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0 and i != len(sql) - 1:
                return sql
    return sql[1:-1]


def to_sql(
    rule: RuleLike,
    schema: Schema,
    dialect: Dialect = "duckdb",
    *,
    now: datetime | None = None,
    profiles: TableName = "profiles",
    events: TableName = "events",
    memberships: TableName = "memberships",
) -> SqlQuery:
    """Type-check ``rule`` and compile it into a :class:`SqlQuery` for ``dialect``.

    The query selects the ``key`` of every row of ``profiles`` that the rule
    matches, with the Engine's semantics (see ``docs/scale.md``): ``events`` and
    ``memberships`` are read for behaviour and ``in segment``. Table names are one
    identifier or a tuple of parts (``("analytics", "events")``). ``now`` computes
    the parameters of a time-relative rule; without it, call
    :meth:`SqlQuery.with_now` before reading ``params``.

    Constructs a dialect cannot express raise :class:`~segkit.errors.RuleError`
    naming them; a schema that does not fit the table layout raises
    :class:`~segkit.errors.SchemaError`.

    >>> import segkit as sk
    >>> schema = sk.Schema(attributes={"email": "string"})
    >>> print(to_sql('email iends_with "@example.com"', schema, dialect="spark").text)
    SELECT p.`key`
    FROM `profiles` AS p
    WHERE endswith(lower(p.`email`), lower(:p1))
    >>> to_sql(r"email matches /\\bvip\\b/", schema)
    Traceback (most recent call last):
    ...
    segkit.errors.RuleError: cannot translate to duckdb SQL: the regex uses a word boundary ('\\b') (line 1, column 1)
      email matches /\\bvip\\b/
      ^^^^^^^^^^^^^^^^^^^^^^^

    .. versionadded:: 0.1.0
    """
    d = _dialect(dialect)
    checked = check(rule, schema)
    compiler = _Compiler(schema, d, checked.source)
    compiler.events_table = _table(d, events, "events")
    compiler.memberships_table = _table(d, memberships, "memberships")
    text = compiler.query(checked.expr, _table(d, profiles, "profiles"))
    return SqlQuery(
        text,
        d.name,
        None if now is None else _now_utc(now, schema.tz),
        slots=tuple(compiler.slots.items()),
        tz=schema.tz,
    )


def to_sql_ddl(
    schema: Schema,
    dialect: Dialect = "duckdb",
    *,
    profiles: TableName = "profiles",
    events: TableName = "events",
    memberships: TableName = "memberships",
) -> str:
    """``CREATE TABLE`` statements for the tables :func:`to_sql` reads.

    One column per attribute in ``profiles`` and one per event property name in
    ``events`` (a property declared by several events is one column, so it must have
    one type). Statements end with ``;`` and are separated by newlines.

    >>> import segkit as sk
    >>> schema = sk.Schema(attributes={"age": "int", "tags": "list[string]"},
    ...                    events={"purchase": {"amount": "float"}, "signup": {}})
    >>> print(to_sql_ddl(schema, dialect="postgres"))
    CREATE TABLE "profiles" ("key" text NOT NULL, "age" bigint, "tags" text[]);
    CREATE TABLE "events" ("key" text NOT NULL, "name" text NOT NULL, "at" timestamptz NOT NULL, "amount" double precision);
    CREATE TABLE "memberships" ("segment" text NOT NULL, "key" text NOT NULL);

    .. versionadded:: 0.1.0
    """
    d = _dialect(dialect)
    text, nn = d.column_type(FieldType.STRING), d.not_null()

    def col(name: str, ftype: FieldType) -> str:
        return f"{d.ident(_check_name(name, 'a column name'))} {d.column_type(ftype)}"

    if KEY in schema.attributes:
        raise SchemaError(
            "attribute 'key' has the name of the profiles table's key column", field=KEY
        )
    props: dict[str, tuple[FieldType, str]] = {}
    for event, etype in schema.events.items():
        for prop, ftype in etype.properties.items():
            if prop in (KEY, NAME, AT):
                raise SchemaError(
                    f"property {prop!r} of event {event!r} has the name of the events"
                    f" table's {prop!r} column",
                    field=prop,
                )
            seen = props.setdefault(prop, (ftype, event))
            if seen[0] != ftype:
                raise SchemaError(
                    f"property {prop!r} is {seen[0]} in event {seen[1]!r} but {ftype} in event"
                    f" {event!r}; the events table has one column per property name",
                    field=prop,
                )
    profile_cols = [f"{d.ident(KEY)} {text}{nn}"]
    profile_cols += [col(name, ftype) for name, ftype in schema.attributes.items()]
    event_cols = [
        f"{d.ident(KEY)} {text}{nn}",
        f"{d.ident(NAME)} {text}{nn}",
        f"{d.ident(AT)} {d.column_type(FieldType.DATETIME)}{nn}",
    ]
    event_cols += [col(name, ftype) for name, (ftype, _) in props.items()]
    member_cols = [f"{d.ident(SEGMENT)} {text}{nn}", f"{d.ident(KEY)} {text}{nn}"]
    tables = (
        (_table(d, profiles, "profiles"), profile_cols),
        (_table(d, events, "events"), event_cols),
        (_table(d, memberships, "memberships"), member_cols),
    )
    return "\n".join(f"CREATE TABLE {name} ({', '.join(cols)});" for name, cols in tables)
