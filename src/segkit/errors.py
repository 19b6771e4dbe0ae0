"""The segkit error hierarchy.

Every error segkit raises on purpose derives from :class:`SegkitError`::

    SegkitError
    ├── RuleError (ValueError)        .message .source .span .line .column
    │   ├── RuleSyntaxError           .expected
    │   └── RuleTypeError             .suggestion
    │       ├── UnknownAttributeError
    │       ├── UnknownEventError
    │       └── UnknownPropertyError
    ├── SchemaError (ValueError)      .key .field .value .expected
    ├── SegmentError (LookupError)    unknown segment, dependency cycle
    └── StorageError                  a storage backend broke the protocol
        ├── ConflictError             version mismatch on a compare-and-set write
        └── CorruptDataError          truncated or altered bytes

Positions are a :class:`Span` (0-based, half-open: ``source[span.start:span.end]``
is the offending text); ``line`` and ``column`` are 1-based and only for display.
``str(error)`` is the one-line message, the location, the source line and a caret
under the span, in plain text:

>>> import segkit as sk
>>> try:
...     sk.parse('country = "FR" and age >=')
... except sk.RuleSyntaxError as e:
...     print(e)
expected a value after '>=' (line 1, column 26)
  country = "FR" and age >=
                           ^

.. versionadded:: 0.1.0
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs

__all__ = [
    "ConflictError",
    "CorruptDataError",
    "RuleError",
    "RuleSyntaxError",
    "RuleTypeError",
    "SchemaError",
    "SegkitError",
    "SegmentError",
    "Span",
    "StorageError",
    "UnknownAttributeError",
    "UnknownEventError",
    "UnknownPropertyError",
    "render_snippet",
]


@attrs.frozen(order=True)
class Span:
    """A 0-based, half-open range of characters in a rule's source text.

    >>> Span(4, 7).length
    3
    >>> "did purchase"[Span(4, 12).start:Span(4, 12).end]
    'purchase'

    .. versionadded:: 0.1.0
    """

    start: int
    end: int

    @property
    def length(self) -> int:
        """Number of characters covered (0 for an empty span at end of input)."""
        return self.end - self.start

    def cover(self, other: Span) -> Span:
        """The smallest span that covers both ``self`` and ``other``.

        >>> Span(0, 3).cover(Span(5, 9))
        Span(start=0, end=9)
        """
        return Span(min(self.start, other.start), max(self.end, other.end))


def line_and_column(source: str, offset: int) -> tuple[int, int]:
    """1-based line and column of a 0-based ``offset`` in ``source``.

    >>> line_and_column("a\\nbc", 3)
    (2, 2)
    """
    offset = max(0, min(offset, len(source)))
    line = source.count("\n", 0, offset) + 1
    line_start = source.rfind("\n", 0, offset) + 1
    return line, offset - line_start + 1


#: Longest source line shown under an error; longer lines are cut around the span.
_SNIPPET_WIDTH = 100


def render_snippet(source: str, span: Span, *, indent: str = "  ") -> str:
    """Render the source line holding ``span.start`` with carets under the span.

    Pure and plain text (no ANSI codes); tabs are shown as single spaces so the
    carets line up. A span that runs past the end of its line is cut at the line
    end; an empty span gets one caret. A line longer than 100 characters is cut
    to a window around the span, with ``...`` where text was left out.

    >>> print(render_snippet('contry = "FR"', Span(0, 6)))
      contry = "FR"
      ^^^^^^

    .. versionadded:: 0.1.0
    """
    start = max(0, min(span.start, len(source)))
    line_start = source.rfind("\n", 0, start) + 1
    line_end = source.find("\n", start)
    if line_end == -1:
        line_end = len(source)
    text = source[line_start:line_end].replace("\t", " ").replace("\r", " ")
    caret_start = start - line_start
    caret_len = max(1, min(span.end, line_end) - start)
    if len(text) > _SNIPPET_WIDTH:  # show a window around the span, marked with "..."
        left = max(0, min(caret_start - _SNIPPET_WIDTH // 3, len(text) - _SNIPPET_WIDTH))
        right = left + _SNIPPET_WIDTH
        caret_len = min(caret_len, right - caret_start)
        text = ("..." if left else "") + text[left:right] + ("..." if right < len(text) else "")
        caret_start = caret_start - left + (3 if left else 0)
    return f"{indent}{text}\n{indent}{' ' * caret_start}{'^' * caret_len}"


class SegkitError(Exception):
    """Base class of every error segkit raises on purpose.

    >>> issubclass(RuleSyntaxError, SegkitError)
    True

    .. versionadded:: 0.1.0
    """


class RuleError(SegkitError, ValueError):
    """A rule could not be parsed or checked.

    Attributes:
        message: one line saying what is wrong.
        source: the rule text (``""`` for rules that did not come from text).
        span: where in ``source`` the problem is, or ``None``.
        line, column: 1-based position of ``span.start`` for display (0 when unknown).
        expected: what the parser expected there (a tuple of descriptions).
        suggestion: a replacement the user probably meant, or ``None``.

    >>> e = RuleError("unknown field 'contry'", 'contry = "FR"', Span(0, 6), suggestion="country")
    >>> e.message, e.line, e.column
    ("unknown field 'contry'", 1, 1)
    >>> print(e)
    unknown field 'contry' (line 1, column 1)
      contry = "FR"
      ^^^^^^
      hint: did you mean 'country'?

    .. versionadded:: 0.1.0
    """

    message: str
    source: str
    span: Span | None
    line: int
    column: int
    expected: tuple[str, ...]
    suggestion: str | None

    def __init__(
        self,
        message: str,
        source: str = "",
        span: Span | None = None,
        *,
        expected: Sequence[str] = (),
        suggestion: str | None = None,
    ) -> None:
        self.message = message
        self.source = source
        self.span = span
        self.expected = tuple(expected)
        self.suggestion = suggestion
        if span is not None and source:
            self.line, self.column = line_and_column(source, span.start)
        else:
            self.line = self.column = 0
        super().__init__(self._render())

    def _render(self) -> str:
        parts = [self.message]
        if self.span is not None and self.source:
            parts[0] += f" (line {self.line}, column {self.column})"
            parts.append(render_snippet(self.source, self.span))
        if self.suggestion is not None:
            parts.append(f"  hint: did you mean {self.suggestion!r}?")
        return "\n".join(parts)

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild_rule_error,
            (type(self), self.message, self.source, self.span, self.expected, self.suggestion),
        )


def _rebuild_rule_error(
    cls: type[RuleError],
    message: str,
    source: str,
    span: Span | None,
    expected: tuple[str, ...],
    suggestion: str | None,
) -> RuleError:
    return cls(message, source, span, expected=expected, suggestion=suggestion)


class RuleSyntaxError(RuleError):
    """The rule text is not well-formed (bad token, missing operand, too deep, too long).

    >>> import segkit as sk
    >>> sk.is_valid("age >")
    False

    .. versionadded:: 0.1.0
    """


class RuleTypeError(RuleError):
    """The rule is well-formed but does not fit the schema (types, unknown names).

    >>> import segkit as sk
    >>> schema = sk.Schema(attributes={"age": "int"})
    >>> try:
    ...     sk.check('age > "x"', schema)
    ... except sk.RuleTypeError as e:
    ...     print(e.message)
    cannot compare int attribute 'age' with a string ("x")

    .. versionadded:: 0.1.0
    """


class UnknownAttributeError(RuleTypeError):
    """The rule names a profile attribute the schema does not declare.

    >>> import segkit as sk
    >>> schema = sk.Schema(attributes={"country": "string"})
    >>> [e.suggestion for e in sk.iter_errors('contry = "FR"', schema)]
    ['country']

    .. versionadded:: 0.1.0
    """


class UnknownEventError(RuleTypeError):
    """The rule names an event type the schema does not declare.

    >>> import segkit as sk
    >>> schema = sk.Schema(events={"purchase": {}})
    >>> [type(e).__name__ for e in sk.iter_errors("did purchse", schema)]
    ['UnknownEventError']

    .. versionadded:: 0.1.0
    """


class UnknownPropertyError(RuleTypeError):
    """The rule names an event property the schema does not declare for that event.

    >>> import segkit as sk
    >>> schema = sk.Schema(events={"purchase": {"amount": "float"}})
    >>> [e.message for e in sk.iter_errors("sum(purchase.amnt) > 3", schema)]
    ["event 'purchase' has no property 'amnt'"]

    .. versionadded:: 0.1.0
    """


class SchemaError(SegkitError, ValueError):
    """A profile record or event does not fit the schema, or a schema is malformed.

    Attributes:
        message: one line naming the record key, the field, the value and what was expected.
        key: the record's external key (``None`` when not about one record).
        field: the attribute or property name (``None`` when not about one field).
        value: the offending value.
        expected: a description of what was expected.

    >>> e = SchemaError("bad", key="c-1", field="age", value="x", expected="int")
    >>> e.key, e.field, e.value, e.expected
    ('c-1', 'age', 'x', 'int')

    .. versionadded:: 0.1.0
    """

    message: str
    key: str | None
    field: str | None
    value: Any
    expected: str | None

    def __init__(
        self,
        message: str,
        *,
        key: str | None = None,
        field: str | None = None,
        value: Any = None,
        expected: str | None = None,
    ) -> None:
        self.message = message
        self.key = key
        self.field = field
        self.value = value
        self.expected = expected
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild_schema_error,
            (self.message, self.key, self.field, self.value, self.expected),
        )


def _rebuild_schema_error(
    message: str, key: str | None, field: str | None, value: Any, expected: str | None
) -> SchemaError:
    return SchemaError(message, key=key, field=field, value=value, expected=expected)


class SegmentError(SegkitError, LookupError):
    """An unknown segment, a duplicate name, or a dependency cycle between segments.

    >>> issubclass(SegmentError, LookupError)
    True

    .. versionadded:: 0.1.0
    """


class StorageError(SegkitError):
    """A storage backend failed or broke the storage protocol.

    >>> issubclass(ConflictError, StorageError) and issubclass(CorruptDataError, StorageError)
    True

    .. versionadded:: 0.1.0
    """


class ConflictError(StorageError):
    """A compare-and-set write found a different version than it expected.

    >>> str(ConflictError("segment 'vip': expected version 3, found 4"))
    "segment 'vip': expected version 3, found 4"

    .. versionadded:: 0.1.0
    """


class CorruptDataError(StorageError):
    """Stored bytes are truncated, altered, or in an unknown format.

    >>> isinstance(CorruptDataError("bad checksum"), SegkitError)
    True

    .. versionadded:: 0.1.0
    """
