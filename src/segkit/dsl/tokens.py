"""Tokenizer for the rule language: text in, tokens with 0-based offsets out.

The tokenizer is context-free except for one case borrowed from JavaScript: a
``/`` right after the word ``matches`` starts a regex literal.

>>> [(t.kind, t.text) for t in tokenize('age >= 18 # adults')]
[('name', 'age'), ('op', '>='), ('number', '18'), ('eof', '')]

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import re
from datetime import date, datetime, timezone
from typing import Any, Final, NamedTuple

from segkit.errors import RuleSyntaxError, Span
from segkit.timeutil import DURATION_UNITS, MAX_DURATION_AMOUNT, Duration, duration_unit_error

__all__ = ["KEYWORDS", "MAX_RULE_LENGTH", "Token", "parse_time_literal", "tokenize"]

#: Longest accepted rule text, in characters.
MAX_RULE_LENGTH: Final = 65_536

#: Words with a meaning in the grammar. A name spelled like one of these is printed
#: in backquotes; the parser still reads most of them as names where a name fits.
KEYWORDS: Final = frozenset(
    [
        "and",
        "or",
        "not",
        "in",
        "is",
        "known",
        "has",
        "any",
        "all",
        "none",
        "between",
        "contains",
        "icontains",
        "starts_with",
        "istarts_with",
        "ends_with",
        "iends_with",
        "matches",
        "last",
        "before",
        "after",
        "more",
        "than",
        "ago",
        "segment",
        "did",
        "where",
        "times",
        "time",
        "then",
        "within",
        "for",
        "the",
        "first",
        "sum",
        "avg",
        "min",
        "max",
        "count",
        "bucket",
        "true",
        "false",
    ]
)

# Token kinds.
NAME: Final = "name"  # bare identifier or keyword
QNAME: Final = "qname"  # `backquoted name`
STRING: Final = "string"
NUMBER: Final = "number"
DURATION: Final = "duration"
TIME: Final = "time"  # @2024-01-31 or @2024-01-31T10:00:00Z
REGEX: Final = "regex"
OP: Final = "op"  # = != < <= > >=
PUNCT: Final = "punct"  # ( ) [ ] , . ..
EOF: Final = "eof"

_OPERATORS: Final = {"=": "=", "==": "=", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_OPERATOR_HINTS: Final = {
    "=>": ">=",
    "=<": "<=",
    "<>": "!=",
    "!==": "!=",
    "===": "=",
    "!": "!=",
    ">>": ">",
    "<<": "<",
    ">==": ">=",
    "<==": "<=",
}
_NAME_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER_RE: Final = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_UNIT_RE: Final = re.compile(r"[A-Za-z]+")
_TIME_RE: Final = re.compile(r"@[0-9A-Za-z:+\-.]*")
_TIME_SHAPE: Final = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?(Z|[+-]\d{2}:\d{2})?)?"
)
_OP_CHARS: Final = frozenset("=!<>")
_DIGITS: Final = frozenset("0123456789")
_ESCAPES: Final = {'"': '"', "'": "'", "\\": "\\", "n": "\n", "t": "\t", "r": "\r", "0": "\0"}
_REGEX_FLAGS: Final = "ims"


class Token(NamedTuple):
    """One token: ``kind``, the exact source ``text``, a decoded ``value`` and offsets."""

    kind: str
    text: str
    value: Any
    start: int
    end: int

    @property
    def span(self) -> Span:
        """The token's location as a :class:`~segkit.errors.Span`."""
        return Span(self.start, self.end)

    def is_word(self, *words: str) -> bool:
        """True for a bare name token spelled as one of ``words`` (case-sensitive)."""
        return self.kind == NAME and self.text in words

    def describe(self) -> str:
        """How to name this token in an error message."""
        if self.kind == EOF:
            return "the end of the rule"
        text = self.text if len(self.text) <= 30 else self.text[:27] + "..."
        if self.kind == STRING:
            return text
        return f"'{text}'"


def _error(message: str, source: str, start: int, end: int, **kw: Any) -> RuleSyntaxError:
    return RuleSyntaxError(message, source, Span(start, end), **kw)


def parse_time_literal(text: str) -> date | datetime:
    """Parse the body of an ``@`` literal into a :class:`date` or :class:`datetime`.

    ``Z`` means UTC; a datetime without an offset stays naive (the schema's time zone
    applies). Raises :class:`ValueError` with the reason.

    >>> parse_time_literal("2024-01-31")
    datetime.date(2024, 1, 31)
    >>> parse_time_literal("2024-01-31T10:00:00Z")
    datetime.datetime(2024, 1, 31, 10, 0, tzinfo=datetime.timezone.utc)
    """
    m = _TIME_SHAPE.fullmatch(text)
    if m is None:
        raise ValueError("expected @YYYY-MM-DD or @YYYY-MM-DDTHH:MM[:SS][Z|+HH:MM]")
    if m.group(4) is None:
        return date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    body = text[:-1] + "+00:00" if text.endswith("Z") else text
    value = datetime.fromisoformat(body)
    if text.endswith("Z"):
        value = value.replace(tzinfo=timezone.utc)
    return value


def tokenize(source: str) -> list[Token]:
    """Split ``source`` into tokens, ending with an ``eof`` token.

    Raises :class:`~segkit.errors.RuleSyntaxError` for text that is too long, an
    unexpected character, an unterminated string, regex or backquoted name, an
    unknown operator, a bad duration unit or an invalid ``@`` date.

    >>> [t.value for t in tokenize('did purchase in last 30d')][:4]
    ['did', 'purchase', 'in', 'last']
    >>> tokenize('x in last 5m')
    Traceback (most recent call last):
    ...
    segkit.errors.RuleSyntaxError: ambiguous duration unit 'm': write 'min' for minutes or 'mo' for months (line 1, column 11)
      x in last 5m
                ^^
    """
    if len(source) > MAX_RULE_LENGTH:
        raise RuleSyntaxError(
            f"rule is {len(source)} characters long; the limit is {MAX_RULE_LENGTH}"
        )
    tokens: list[Token] = []
    pos = 0
    n = len(source)
    while True:
        while pos < n and source[pos] in " \t\r\n\f\v":
            pos += 1
        if pos < n and source[pos] == "#":
            newline = source.find("\n", pos)
            pos = n if newline == -1 else newline
            continue
        if pos >= n:
            end = tokens[-1].end if tokens else 0
            tokens.append(Token(EOF, "", None, end, end))
            return tokens
        ch = source[pos]
        if ch.isalpha() or ch == "_":
            m = _NAME_RE.match(source, pos)
            if m is None:  # a non-ASCII letter
                raise _error(
                    f"unexpected character {ch!r} (write names with other characters in backquotes)",
                    source,
                    pos,
                    pos + 1,
                )
            tokens.append(Token(NAME, m.group(), m.group(), pos, m.end()))
            pos = m.end()
        elif ch in _DIGITS or (ch == "-" and pos + 1 < n and source[pos + 1] in _DIGITS):
            pos = _number_or_duration(source, pos, tokens)
        elif ch in "\"'":
            pos = _string(source, pos, tokens, STRING, ch)
        elif ch == "`":
            pos = _string(source, pos, tokens, QNAME, "`")
        elif ch == "@":
            m = _TIME_RE.match(source, pos)
            assert m is not None
            text = m.group()
            try:
                value = parse_time_literal(text[1:])
            except ValueError as exc:
                raise _error(f"invalid date {text!r}: {exc}", source, pos, m.end()) from None
            tokens.append(Token(TIME, text, value, pos, m.end()))
            pos = m.end()
        elif ch == "/" and tokens and tokens[-1].is_word("matches"):
            pos = _regex(source, pos, tokens)
        elif ch in _OP_CHARS:
            end = pos
            while end < n and source[end] in _OP_CHARS:
                end += 1
            text = source[pos:end]
            if text not in _OPERATORS:
                hint = _OPERATOR_HINTS.get(text)
                raise _error(f"unknown operator {text!r}", source, pos, end, suggestion=hint)
            tokens.append(Token(OP, text, _OPERATORS[text], pos, end))
            pos = end
        elif ch == "." and source.startswith("..", pos):
            tokens.append(Token(PUNCT, "..", "..", pos, pos + 2))
            pos += 2
        elif ch in "()[],.":
            tokens.append(Token(PUNCT, ch, ch, pos, pos + 1))
            pos += 1
        else:
            hint = {"&": "and", "|": "or"}.get(ch)
            raise _error(f"unexpected character {ch!r}", source, pos, pos + 1, suggestion=hint)


def _number_or_duration(source: str, pos: int, tokens: list[Token]) -> int:
    m = _NUMBER_RE.match(source, pos)
    assert m is not None
    text = m.group()
    end = m.end()
    unit_match = _UNIT_RE.match(source, end)
    if unit_match is not None and not (source.startswith("..", end)):
        unit = unit_match.group()
        full_end = unit_match.end()
        if unit not in DURATION_UNITS:
            raise _error(duration_unit_error(unit), source, pos, full_end)
        if not text.isdigit():
            raise _error(
                f"a duration takes a whole, non-negative number: {source[pos:full_end]!r}",
                source,
                pos,
                full_end,
            )
        amount = int(text)
        if amount > MAX_DURATION_AMOUNT:
            raise _error(
                f"duration {source[pos:full_end]!r} is too long (at most {MAX_DURATION_AMOUNT})",
                source,
                pos,
                full_end,
            )
        tokens.append(Token(DURATION, source[pos:full_end], Duration(amount, unit), pos, full_end))
        return full_end
    value: int | float
    if m.group(1) is None and m.group(2) is None:
        value = int(text)
    else:
        value = float(text)
        if value in (float("inf"), float("-inf")):
            raise _error(f"number {text!r} is too large", source, pos, end)
    tokens.append(Token(NUMBER, text, value, pos, end))
    return end


def _string(source: str, pos: int, tokens: list[Token], kind: str, quote: str) -> int:
    chars: list[str] = []
    i = pos + 1
    n = len(source)
    what = "backquoted name" if kind == QNAME else "string"
    while i < n:
        ch = source[i]
        if ch == quote:
            if kind == QNAME and not chars:
                raise _error("empty backquoted name", source, pos, i + 1)
            tokens.append(Token(kind, source[pos : i + 1], "".join(chars), pos, i + 1))
            return i + 1
        if ch == "\n":
            break
        if ch == "\\":
            if i + 1 >= n:
                break
            esc = source[i + 1]
            if esc in "\r\n":
                break
            if esc == "u":
                digits = source[i + 2 : i + 6]
                if len(digits) != 4 or not all(c in "0123456789abcdefABCDEF" for c in digits):
                    raise _error("invalid escape: \\u needs 4 hex digits", source, i, min(n, i + 6))
                chars.append(chr(int(digits, 16)))
                i += 6
                continue
            if esc == "`" and kind == QNAME:
                chars.append("`")
            elif esc in _ESCAPES:
                chars.append(_ESCAPES[esc])
            else:
                shown = esc if esc.isprintable() else repr(esc)[1:-1]
                raise _error(f"unknown escape '\\{shown}' in {what}", source, i, i + 2)
            i += 2
            continue
        chars.append(ch)
        i += 1
    raise _error(f"unterminated {what}", source, pos, i, expected=(repr(quote),))


def _regex(source: str, pos: int, tokens: list[Token]) -> int:
    i = pos + 1
    n = len(source)
    chars: list[str] = []
    while i < n and source[i] != "/":
        ch = source[i]
        if ch == "\n":
            break
        if ch == "\\" and i + 1 < n and source[i + 1] != "\n":
            if source[i + 1] == "/":
                chars.append("/")
            else:
                chars.append(source[i : i + 2])
            i += 2
            continue
        chars.append(ch)
        i += 1
    if i >= n or source[i] != "/":
        raise _error("unterminated regex (expected a closing '/')", source, pos, i)
    i += 1
    flags_start = i
    while i < n and source[i].isalpha():
        i += 1
    flags = source[flags_start:i]
    for offset, flag in enumerate(flags):
        if flag not in _REGEX_FLAGS or flag in flags[:offset]:
            at = flags_start + offset
            problem = "repeated" if flag in _REGEX_FLAGS else "unknown"
            raise _error(f"{problem} regex flag {flag!r} (expected i, m or s)", source, at, at + 1)
    canonical = "".join(f for f in _REGEX_FLAGS if f in flags)
    tokens.append(Token(REGEX, source[pos:i], ("".join(chars), canonical), pos, i))
    return i
