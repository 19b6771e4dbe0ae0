"""Exact error messages: what a user sees for each kind of bad rule.

Every case asserts the full ``str(error)`` (message, location, source line, caret
line and hint), the error's type and its structured attributes. Cases marked
``xfail(strict=True)`` hold the message the error *should* have; they turn green
(and must be unmarked) once the parser or checker is fixed.
"""

from __future__ import annotations

import pickle

import pytest

import segkit as sk
from segkit import (
    RuleError,
    RuleSyntaxError,
    RuleTypeError,
    Span,
    UnknownAttributeError,
    UnknownEventError,
    UnknownPropertyError,
)
from segkit.errors import render_snippet

SCHEMA = sk.Schema(
    attributes={
        "country": "string",
        "email": "string",
        "age": "int",
        "ltv": "float",
        "signed_up": "date",
        "last_seen": "datetime",
        "is_customer": "bool",
        "tags": "list[string]",
    },
    events={
        "page_view": {"url": "string"},
        "cart_abandoned": {},
        "purchase": {"amount": "float", "sku": "string", "gift": "bool"},
    },
    timezone="Europe/Paris",
)
#: No default time zone: naive datetime literals are errors.
NAIVE_SCHEMA = sk.Schema(
    attributes={"last_seen": "datetime"}, events={"purchase": {"amount": "float"}}
)
#: ``signed_up`` declared as a number (a year), so time operators do not apply.
INTSCHEMA_SCHEMA = sk.Schema(attributes={"signed_up": "int"})


#: ``(span, line, column, suggestion)`` of an expected error.
Where = tuple[Span | None, int, int, str | None]


def _lines(*lines: str) -> str:
    return "\n".join(lines)


def _assert_error(
    error: RuleError,
    text: str,
    expected_type: type[RuleError],
    expected: str,
    span: Span | None,
    line: int,
    column: int,
    suggestion: str | None,
) -> None:
    assert str(error) == expected
    assert type(error) is expected_type
    assert (error.span, error.line, error.column, error.suggestion) == (
        span,
        line,
        column,
        suggestion,
    )
    first_line = expected.split("\n", 1)[0]
    assert error.message == first_line.removesuffix(f" (line {line}, column {column})")
    assert "\n" not in error.message
    assert error.source == text


SYNTAX_CASES = [
    pytest.param(
        'country = "FR',
        _lines(
            "unterminated string (line 1, column 11)",
            '  country = "FR',
            "            ^^^",
        ),
        RuleSyntaxError,
        (Span(10, 13), 1, 11, None),
        id="unterminated-string",
    ),
    pytest.param(
        'country = "FR\nand age > 3',
        _lines(
            "unterminated string (line 1, column 11)",
            '  country = "FR',
            "            ^^^",
        ),
        RuleSyntaxError,
        (Span(10, 13), 1, 11, None),
        id="unterminated-string-at-line-end",
    ),
    pytest.param(
        "country = 'FR",
        _lines(
            "unterminated string (line 1, column 11)",
            "  country = 'FR",
            "            ^^^",
        ),
        RuleSyntaxError,
        (Span(10, 13), 1, 11, None),
        id="unterminated-single-quoted-string",
    ),
    pytest.param(
        '`$el.text = "Buy"',
        _lines(
            "unterminated backquoted name (line 1, column 1)",
            '  `$el.text = "Buy"',
            "  ^^^^^^^^^^^^^^^^^",
        ),
        RuleSyntaxError,
        (Span(0, 17), 1, 1, None),
        id="unterminated-backquoted-name",
    ),
    pytest.param(
        'country = "F\\qR"',
        _lines(
            "unknown escape '\\q' in string (line 1, column 13)",
            '  country = "F\\qR"',
            "              ^^",
        ),
        RuleSyntaxError,
        (Span(12, 14), 1, 13, None),
        id="unknown-escape",
    ),
    pytest.param(
        'country = "\\u12"',
        _lines(
            "invalid escape: \\u needs 4 hex digits (line 1, column 12)",
            '  country = "\\u12"',
            "             ^^^^^",
        ),
        RuleSyntaxError,
        (Span(11, 16), 1, 12, None),
        id="short-unicode-escape",
    ),
    pytest.param(
        "age >=",
        _lines(
            "expected a value after '>=' (line 1, column 7)",
            "  age >=",
            "        ^",
        ),
        RuleSyntaxError,
        (Span(6, 6), 1, 7, None),
        id="missing-operand",
    ),
    pytest.param(
        'country = "FR" and age >=',
        _lines(
            "expected a value after '>=' (line 1, column 26)",
            '  country = "FR" and age >=',
            "                           ^",
        ),
        RuleSyntaxError,
        (Span(25, 25), 1, 26, None),
        id="missing-operand-after-and",
    ),
    pytest.param(
        'age >= and country = "FR"',
        _lines(
            "expected a value after '>=', found 'and' (line 1, column 8)",
            '  age >= and country = "FR"',
            "         ^^^",
        ),
        RuleSyntaxError,
        (Span(7, 10), 1, 8, None),
        id="missing-operand-before-and",
    ),
    pytest.param(
        "age > 3 and",
        _lines(
            "expected a condition after 'and' (line 1, column 12)",
            "  age > 3 and",
            "             ^",
        ),
        RuleSyntaxError,
        (Span(11, 11), 1, 12, None),
        id="missing-right-side-of-and",
    ),
    pytest.param(
        "age > 3 or or age < 1",
        _lines(
            "expected a condition after 'or', found 'or' (line 1, column 12)",
            "  age > 3 or or age < 1",
            "             ^^",
        ),
        RuleSyntaxError,
        (Span(11, 13), 1, 12, None),
        id="missing-right-side-of-or",
    ),
    pytest.param(
        "age => 18",
        _lines(
            "unknown operator '=>' (line 1, column 5)",
            "  age => 18",
            "      ^^",
            "  hint: did you mean '>='?",
        ),
        RuleSyntaxError,
        (Span(4, 6), 1, 5, ">="),
        id="operator-arrow",
    ),
    pytest.param(
        "age <> 18",
        _lines(
            "unknown operator '<>' (line 1, column 5)",
            "  age <> 18",
            "      ^^",
            "  hint: did you mean '!='?",
        ),
        RuleSyntaxError,
        (Span(4, 6), 1, 5, "!="),
        id="operator-sql-not-equal",
    ),
    pytest.param(
        "age ! 18",
        _lines(
            "unknown operator '!' (line 1, column 5)",
            "  age ! 18",
            "      ^",
            "  hint: did you mean '!='?",
        ),
        RuleSyntaxError,
        (Span(4, 5), 1, 5, "!="),
        id="operator-bang",
    ),
    pytest.param(
        "age === 18",
        _lines(
            "unknown operator '===' (line 1, column 5)",
            "  age === 18",
            "      ^^^",
            "  hint: did you mean '='?",
        ),
        RuleSyntaxError,
        (Span(4, 7), 1, 5, "="),
        id="operator-triple-equal",
    ),
    pytest.param(
        'country like "F%"',
        _lines(
            "unknown operator 'like' (line 1, column 9)",
            '  country like "F%"',
            "          ^^^^",
            "  hint: did you mean 'contains'?",
        ),
        RuleSyntaxError,
        (Span(8, 12), 1, 9, "contains"),
        id="word-operator-like",
    ),
    pytest.param(
        "age equals 18",
        _lines(
            "unknown operator 'equals' (line 1, column 5)",
            "  age equals 18",
            "      ^^^^^^",
            "  hint: did you mean '='?",
        ),
        RuleSyntaxError,
        (Span(4, 10), 1, 5, "="),
        id="word-operator-equals",
    ),
    pytest.param(
        "age foo 18",
        _lines(
            "expected an operator after 'age', found 'foo' (line 1, column 5)",
            "  age foo 18",
            "      ^^^",
        ),
        RuleSyntaxError,
        (Span(4, 7), 1, 5, None),
        id="unknown-word-operator",
    ),
    pytest.param(
        "email is not kown",
        _lines(
            "expected 'known' after 'not', found 'kown' (line 1, column 14)",
            "  email is not kown",
            "               ^^^^",
        ),
        RuleSyntaxError,
        (Span(13, 17), 1, 14, None),
        id="is-without-known",
    ),
    pytest.param(
        "country not foo",
        _lines(
            "expected 'in', 'between', 'contains', 'starts_with', 'ends_with' or 'matches' after 'not', found 'foo' (line 1, column 13)",
            "  country not foo",
            "              ^^^",
        ),
        RuleSyntaxError,
        (Span(12, 15), 1, 13, None),
        id="not-without-operator",
    ),
    pytest.param(
        "last_seen in last 5m",
        _lines(
            "ambiguous duration unit 'm': write 'min' for minutes or 'mo' for months (line 1, column 19)",
            "  last_seen in last 5m",
            "                    ^^",
        ),
        RuleSyntaxError,
        (Span(18, 20), 1, 19, None),
        id="duration-unit-m",
    ),
    pytest.param(
        "last_seen in last 5q",
        _lines(
            "unknown duration unit 'q' (expected s, min, h, d, w, mo or y) (line 1, column 19)",
            "  last_seen in last 5q",
            "                    ^^",
        ),
        RuleSyntaxError,
        (Span(18, 20), 1, 19, None),
        id="duration-unknown-unit",
    ),
    pytest.param(
        "last_seen in last 1.5d",
        _lines(
            "a duration takes a whole, non-negative number: '1.5d' (line 1, column 19)",
            "  last_seen in last 1.5d",
            "                    ^^^^",
        ),
        RuleSyntaxError,
        (Span(18, 22), 1, 19, None),
        id="duration-decimal",
    ),
    pytest.param(
        "last_seen in last -3d",
        _lines(
            "a duration takes a whole, non-negative number: '-3d' (line 1, column 19)",
            "  last_seen in last -3d",
            "                    ^^^",
        ),
        RuleSyntaxError,
        (Span(18, 21), 1, 19, None),
        id="duration-negative",
    ),
    pytest.param(
        "last_seen in last 30",
        _lines(
            "a duration needs a unit: 30d, 30h, 30mo… (line 1, column 19)",
            "  last_seen in last 30",
            "                    ^^",
            "  hint: did you mean '30d'?",
        ),
        RuleSyntaxError,
        (Span(18, 20), 1, 19, "30d"),
        id="duration-without-unit",
    ),
    pytest.param(
        "last_seen in last 100001d",
        _lines(
            "duration '100001d' is too long (at most 100000) (line 1, column 19)",
            "  last_seen in last 100001d",
            "                    ^^^^^^^",
        ),
        RuleSyntaxError,
        (Span(18, 25), 1, 19, None),
        id="duration-too-long",
    ),
    pytest.param(
        "age = 3d",
        _lines(
            "a duration such as 3d is not a value here (use 'in last' or 'more than … ago') (line 1, column 7)",
            "  age = 3d",
            "        ^^",
        ),
        RuleSyntaxError,
        (Span(6, 8), 1, 7, None),
        id="duration-as-value",
    ),
    pytest.param(
        "signed_up = @2024-02-30",
        _lines(
            "invalid date '@2024-02-30': day is out of range for month (line 1, column 13)",
            "  signed_up = @2024-02-30",
            "              ^^^^^^^^^^^",
        ),
        RuleSyntaxError,
        (Span(12, 23), 1, 13, None),
        id="date-february-30",
    ),
    pytest.param(
        "signed_up = @2024-13-01",
        _lines(
            "invalid date '@2024-13-01': month must be in 1..12 (line 1, column 13)",
            "  signed_up = @2024-13-01",
            "              ^^^^^^^^^^^",
        ),
        RuleSyntaxError,
        (Span(12, 23), 1, 13, None),
        id="date-month-13",
    ),
    pytest.param(
        "signed_up = @24-1-1",
        _lines(
            "invalid date '@24-1-1': expected @YYYY-MM-DD or @YYYY-MM-DDTHH:MM[:SS][Z|+HH:MM] (line 1, column 13)",
            "  signed_up = @24-1-1",
            "              ^^^^^^^",
        ),
        RuleSyntaxError,
        (Span(12, 19), 1, 13, None),
        id="date-two-digit-year",
    ),
    pytest.param(
        "last_seen > @2024-01-01T25:00",
        _lines(
            "invalid date '@2024-01-01T25:00': hour must be in 0..23 (line 1, column 13)",
            "  last_seen > @2024-01-01T25:00",
            "              ^^^^^^^^^^^^^^^^^",
        ),
        RuleSyntaxError,
        (Span(12, 29), 1, 13, None),
        id="datetime-hour-25",
    ),
    pytest.param(
        "signed_up before 2024-01-01",
        _lines(
            "expected a date such as @2024-01-31 after 'before', found '2024' (line 1, column 18)",
            "  signed_up before 2024-01-01",
            "                   ^^^^",
        ),
        RuleSyntaxError,
        (Span(17, 21), 1, 18, None),
        id="date-without-at",
    ),
    pytest.param(
        '(age > 3 and country = "FR"',
        _lines(
            "expected ')' to close the '(' at column 1 (line 1, column 28)",
            '  (age > 3 and country = "FR"',
            "                             ^",
        ),
        RuleSyntaxError,
        (Span(27, 27), 1, 28, None),
        id="unclosed-parenthesis",
    ),
    pytest.param(
        "((age > 3) and (email is known)",
        _lines(
            "expected ')' to close the '(' at column 1 (line 1, column 32)",
            "  ((age > 3) and (email is known)",
            "                                 ^",
        ),
        RuleSyntaxError,
        (Span(31, 31), 1, 32, None),
        id="unclosed-inner-parenthesis",
    ),
    pytest.param(
        "age > 3)",
        _lines(
            "unmatched ')' (line 1, column 8)",
            "  age > 3)",
            "         ^",
        ),
        RuleSyntaxError,
        (Span(7, 8), 1, 8, None),
        id="unmatched-close-parenthesis",
    ),
    pytest.param(
        "()",
        _lines(
            "expected a condition after '(', found ')' (line 1, column 2)",
            "  ()",
            "   ^",
        ),
        RuleSyntaxError,
        (Span(1, 2), 1, 2, None),
        id="empty-parentheses",
    ),
    pytest.param(
        "age > 3 foo",
        _lines(
            "expected 'and', 'or' or the end of the rule, found 'foo' (line 1, column 9)",
            "  age > 3 foo",
            "          ^^^",
        ),
        RuleSyntaxError,
        (Span(8, 11), 1, 9, None),
        id="trailing-junk",
    ),
    pytest.param(
        "age > 3 age < 9",
        _lines(
            "expected 'and', 'or' or the end of the rule, found 'age' (line 1, column 9)",
            "  age > 3 age < 9",
            "          ^^^",
        ),
        RuleSyntaxError,
        (Span(8, 11), 1, 9, None),
        id="two-conditions-without-and",
    ),
    pytest.param(
        "age",
        _lines(
            "expected an operator after 'age' (line 1, column 4)",
            "  age",
            "     ^",
        ),
        RuleSyntaxError,
        (Span(3, 3), 1, 4, None),
        id="bare-name",
    ),
    pytest.param(
        'age and country = "FR"',
        _lines(
            "expected an operator after 'age', found 'and' (line 1, column 5)",
            '  age and country = "FR"',
            "      ^^^",
        ),
        RuleSyntaxError,
        (Span(4, 7), 1, 5, None),
        id="bare-name-before-and",
    ),
    pytest.param(
        '"age" > 3',
        _lines(
            'expected a condition, found the string "age" (write names in backquotes, not quotes) (line 1, column 1)',
            '  "age" > 3',
            "  ^^^^^",
            "  hint: did you mean '`age`'?",
        ),
        RuleSyntaxError,
        (Span(0, 5), 1, 1, "`age`"),
        id="string-where-name-belongs",
    ),
    pytest.param(
        "country = FR",
        _lines(
            "expected a value after '=', found the name 'FR' (strings need quotes) (line 1, column 11)",
            "  country = FR",
            "            ^^",
            "  hint: did you mean '\"FR\"'?",
        ),
        RuleSyntaxError,
        (Span(10, 12), 1, 11, '"FR"'),
        id="unquoted-string-value",
    ),
    pytest.param(
        "country = null",
        _lines(
            "there is no null: use 'is known' or 'is not known' (line 1, column 11)",
            "  country = null",
            "            ^^^^",
            "  hint: did you mean 'is not known'?",
        ),
        RuleSyntaxError,
        (Span(10, 14), 1, 11, "is not known"),
        id="null-value",
    ),
    pytest.param(
        "country = None",
        _lines(
            "there is no None: use 'is known' or 'is not known' (line 1, column 11)",
            "  country = None",
            "            ^^^^",
            "  hint: did you mean 'is not known'?",
        ),
        RuleSyntaxError,
        (Span(10, 14), 1, 11, "is not known"),
        id="none-value",
    ),
    pytest.param(
        "country contains 3",
        _lines(
            "expected a string after 'contains', found '3' (line 1, column 18)",
            "  country contains 3",
            "                   ^",
        ),
        RuleSyntaxError,
        (Span(17, 18), 1, 18, None),
        id="contains-needs-string",
    ),
    pytest.param(
        "age between 3 or 9",
        _lines(
            "expected 'and' after '3', found 'or' (line 1, column 15)",
            "  age between 3 or 9",
            "                ^^",
        ),
        RuleSyntaxError,
        (Span(14, 16), 1, 15, None),
        id="between-without-and",
    ),
    pytest.param(
        'country in "FR"',
        _lines(
            'expected a list such as ["a", "b"] after \'in\', found "FR" (line 1, column 12)',
            '  country in "FR"',
            "             ^^^^",
        ),
        RuleSyntaxError,
        (Span(11, 15), 1, 12, None),
        id="in-needs-list",
    ),
    pytest.param(
        'tags has any ["a" "b"]',
        _lines(
            "expected ',' or ']' in the list opened at column 14, found \"b\" (line 1, column 19)",
            '  tags has any ["a" "b"]',
            "                    ^^^",
        ),
        RuleSyntaxError,
        (Span(18, 21), 1, 19, None),
        id="list-missing-comma",
    ),
    pytest.param(
        'tags has "a"',
        _lines(
            "expected 'any', 'all' or 'none' after 'has', found \"a\" (line 1, column 10)",
            '  tags has "a"',
            "           ^^^",
        ),
        RuleSyntaxError,
        (Span(9, 12), 1, 10, None),
        id="has-without-mode",
    ),
    pytest.param(
        "email matches /(a/",
        _lines(
            "invalid regex: missing ), unterminated subpattern at position 0 (line 1, column 15)",
            "  email matches /(a/",
            "                ^^^^",
        ),
        RuleSyntaxError,
        (Span(14, 18), 1, 15, None),
        id="regex-invalid",
    ),
    pytest.param(
        "email matches /abc",
        _lines(
            "unterminated regex (expected a closing '/') (line 1, column 15)",
            "  email matches /abc",
            "                ^^^^",
        ),
        RuleSyntaxError,
        (Span(14, 18), 1, 15, None),
        id="regex-unterminated",
    ),
    pytest.param(
        "email matches /a/x",
        _lines(
            "unknown regex flag 'x' (expected i, m or s) (line 1, column 18)",
            "  email matches /a/x",
            "                   ^",
        ),
        RuleSyntaxError,
        (Span(17, 18), 1, 18, None),
        id="regex-unknown-flag",
    ),
    pytest.param(
        "email matches /a/ii",
        _lines(
            "repeated regex flag 'i' (expected i, m or s) (line 1, column 19)",
            "  email matches /a/ii",
            "                    ^",
        ),
        RuleSyntaxError,
        (Span(18, 19), 1, 19, None),
        id="regex-repeated-flag",
    ),
    pytest.param(
        'email matches "a.*"',
        _lines(
            "a regex is written between slashes, like /^a.*z$/i (line 1, column 15)",
            '  email matches "a.*"',
            "                ^^^^^",
            "  hint: did you mean '/a.*/'?",
        ),
        RuleSyntaxError,
        (Span(14, 19), 1, 15, "/a.*/"),
        id="regex-in-quotes",
    ),
    pytest.param(
        "did",
        _lines(
            "expected an event name after 'did' (line 1, column 4)",
            "  did",
            "     ^",
        ),
        RuleSyntaxError,
        (Span(3, 3), 1, 4, None),
        id="did-without-event",
    ),
    pytest.param(
        "did purchase >= 3 in last 30d",
        _lines(
            "expected 'times' after '3', found 'in' (line 1, column 19)",
            "  did purchase >= 3 in last 30d",
            "                    ^^",
        ),
        RuleSyntaxError,
        (Span(18, 20), 1, 19, None),
        id="count-without-times",
    ),
    pytest.param(
        "did purchase >= 1.5 times",
        _lines(
            "expected a whole number of times after '>=', found '1.5' (line 1, column 17)",
            "  did purchase >= 1.5 times",
            "                  ^^^",
        ),
        RuleSyntaxError,
        (Span(16, 19), 1, 17, None),
        id="count-not-whole",
    ),
    pytest.param(
        "did page_view then purchase in last 7d",
        _lines(
            "expected 'within' and a duration (a sequence needs a time limit) after 'purchase', found 'in' (line 1, column 29)",
            "  did page_view then purchase in last 7d",
            "                              ^^",
        ),
        RuleSyntaxError,
        (Span(28, 30), 1, 29, None),
        id="sequence-without-within",
    ),
    pytest.param(
        "did page_view then purchase within",
        _lines(
            "expected a duration such as 30d after 'within' (line 1, column 35)",
            "  did page_view then purchase within",
            "                                    ^",
        ),
        RuleSyntaxError,
        (Span(34, 34), 1, 35, None),
        id="sequence-within-without-duration",
    ),
    pytest.param(
        "did purchase for the first time",
        _lines(
            "expected 'in last' and a duration, or 'between' two dates after 'time' (line 1, column 32)",
            "  did purchase for the first time",
            "                                 ^",
        ),
        RuleSyntaxError,
        (Span(31, 31), 1, 32, None),
        id="first-time-without-window",
    ),
    pytest.param(
        "sum(purchase) > 100",
        _lines(
            "sum() needs a property: write sum(purchase.property) (line 1, column 5)",
            "  sum(purchase) > 100",
            "      ^^^^^^^^",
        ),
        RuleSyntaxError,
        (Span(4, 12), 1, 5, None),
        id="sum-without-property",
    ),
    pytest.param(
        "count(purchase.amount) > 3",
        _lines(
            "count() counts events and takes no property: write count(purchase) (line 1, column 7)",
            "  count(purchase.amount) > 3",
            "        ^^^^^^^^^^^^^^^",
        ),
        RuleSyntaxError,
        (Span(6, 21), 1, 7, None),
        id="count-with-property",
    ),
    pytest.param(
        "sum(purchase.amount in last 30d)",
        _lines(
            "expected a comparison such as '>= 100' after ')' (line 1, column 33)",
            "  sum(purchase.amount in last 30d)",
            "                                  ^",
        ),
        RuleSyntaxError,
        (Span(32, 32), 1, 33, None),
        id="aggregate-without-comparison",
    ),
    pytest.param(
        'sum(purchase.amount) > "100"',
        _lines(
            "expected a number after '>', found \"100\" (line 1, column 24)",
            '  sum(purchase.amount) > "100"',
            "                         ^^^^^",
        ),
        RuleSyntaxError,
        (Span(23, 28), 1, 24, None),
        id="aggregate-compared-with-string",
    ),
    pytest.param(
        'bucket("exp-7") in 0..10000',
        _lines(
            "bucket range must satisfy 0 <= low <= high <= 9999, got 0..10000 (line 1, column 20)",
            '  bucket("exp-7") in 0..10000',
            "                     ^^^^^^^^",
        ),
        RuleSyntaxError,
        (Span(19, 27), 1, 20, None),
        id="bucket-above-9999",
    ),
    pytest.param(
        'bucket("exp-7") in 5000..4999',
        _lines(
            "bucket range must satisfy 0 <= low <= high <= 9999, got 5000..4999 (line 1, column 20)",
            '  bucket("exp-7") in 5000..4999',
            "                     ^^^^^^^^^^",
        ),
        RuleSyntaxError,
        (Span(19, 29), 1, 20, None),
        id="bucket-reversed",
    ),
    pytest.param(
        "bucket(exp) in 0..4999",
        _lines(
            "expected a salt string after '(', found 'exp' (line 1, column 8)",
            "  bucket(exp) in 0..4999",
            "         ^^^",
        ),
        RuleSyntaxError,
        (Span(7, 10), 1, 8, None),
        id="bucket-unquoted-salt",
    ),
    pytest.param(
        "did purchase where did page_view",
        _lines(
            "'did' cannot be used inside 'where': conditions inside 'where' are about the event's properties (line 1, column 20)",
            "  did purchase where did page_view",
            "                     ^^^",
        ),
        RuleSyntaxError,
        (Span(19, 22), 1, 20, None),
        id="did-inside-where",
    ),
    pytest.param(
        "did purchase where count(page_view) > 1",
        _lines(
            "'count' cannot be used inside 'where': conditions inside 'where' are about the event's properties (line 1, column 20)",
            "  did purchase where count(page_view) > 1",
            "                     ^^^^^",
        ),
        RuleSyntaxError,
        (Span(19, 24), 1, 20, None),
        id="aggregate-inside-where",
    ),
    pytest.param(
        "in segment vip",
        _lines(
            "expected a segment name in quotes after 'segment', found 'vip' (line 1, column 12)",
            "  in segment vip",
            "             ^^^",
        ),
        RuleSyntaxError,
        (Span(11, 14), 1, 12, None),
        id="in-segment-unquoted",
    ),
    pytest.param(
        'in segment ""',
        _lines(
            "a segment name cannot be empty (line 1, column 12)",
            '  in segment ""',
            "             ^^",
        ),
        RuleSyntaxError,
        (Span(11, 13), 1, 12, None),
        id="in-segment-empty",
    ),
    pytest.param(
        'country in segment "vip"',
        _lines(
            "'in segment' takes no attribute before it: write in segment \"name\" (line 1, column 1)",
            '  country in segment "vip"',
            "  ^^^^^^^^^^^^^^^^^^",
        ),
        RuleSyntaxError,
        (Span(0, 18), 1, 1, None),
        id="attribute-before-in-segment",
    ),
    pytest.param(
        'country = "FR"\n  and age => 18',
        _lines(
            "unknown operator '=>' (line 2, column 11)",
            "    and age => 18",
            "            ^^",
            "  hint: did you mean '>='?",
        ),
        RuleSyntaxError,
        (Span(25, 27), 2, 11, ">="),
        id="multi-line-error-on-line-2",
    ),
    pytest.param(
        'age > 3 && country = "FR"',
        _lines(
            "unexpected character '&' (line 1, column 9)",
            '  age > 3 && country = "FR"',
            "          ^",
            "  hint: did you mean 'and'?",
        ),
        RuleSyntaxError,
        (Span(8, 9), 1, 9, "and"),
        id="unexpected-ampersand",
    ),
    pytest.param(
        'age > 3 | country = "FR"',
        _lines(
            "unexpected character '|' (line 1, column 9)",
            '  age > 3 | country = "FR"',
            "          ^",
            "  hint: did you mean 'or'?",
        ),
        RuleSyntaxError,
        (Span(8, 9), 1, 9, "or"),
        id="unexpected-pipe",
    ),
    pytest.param(
        'état = "ok"',
        _lines(
            "unexpected character 'é' (write names with other characters in backquotes) (line 1, column 1)",
            '  état = "ok"',
            "  ^",
        ),
        RuleSyntaxError,
        (Span(0, 1), 1, 1, None),
        id="non-ascii-name",
    ),
    pytest.param(
        "`` = 1",
        _lines(
            "empty backquoted name (line 1, column 1)",
            "  `` = 1",
            "  ^^",
        ),
        RuleSyntaxError,
        (Span(0, 2), 1, 1, None),
        id="empty-backquoted-name",
    ),
    pytest.param(
        "ltv > 1e999",
        _lines(
            "number '1e999' is too large (line 1, column 7)",
            "  ltv > 1e999",
            "        ^^^^^",
        ),
        RuleSyntaxError,
        (Span(6, 11), 1, 7, None),
        id="number-too-large",
    ),
    pytest.param(
        "(((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((age > 3)))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))",
        _lines(
            "rule nests deeper than 64 levels (line 1, column 65)",
            render_snippet("(" * 65 + "age > 3" + ")" * 65, Span(64, 65)),
        ),
        RuleSyntaxError,
        (Span(64, 65), 1, 65, None),
        id="nesting-65-parentheses",
    ),
    pytest.param(
        "",
        "the rule is empty",
        RuleSyntaxError,
        (None, 0, 0, None),
        id="empty-rule",
    ),
    pytest.param(
        "   ",
        "the rule is empty",
        RuleSyntaxError,
        (None, 0, 0, None),
        id="blank-rule",
    ),
    pytest.param(
        "# adults",
        "the rule is empty",
        RuleSyntaxError,
        (None, 0, 0, None),
        id="comment-only-rule",
    ),
    pytest.param(
        'age > 3 AND country = "FR"',
        _lines(
            "expected 'and', 'or' or the end of the rule, found 'AND' (keywords are lower-case)"
            " (line 1, column 9)",
            '  age > 3 AND country = "FR"',
            "          ^^^",
            "  hint: did you mean 'and'?",
        ),
        RuleSyntaxError,
        (Span(8, 11), 1, 9, "and"),
        id="uppercase-keyword",
    ),
    pytest.param(
        "is_customer = TRUE",
        _lines(
            "expected a value after '=', found the name 'TRUE' (booleans are lower-case)"
            " (line 1, column 15)",
            "  is_customer = TRUE",
            "                ^^^^",
            "  hint: did you mean 'true'?",
        ),
        RuleSyntaxError,
        (Span(14, 18), 1, 15, "true"),
        id="uppercase-boolean",
    ),
    pytest.param(
        "age >> 18",
        _lines(
            "unknown operator '>>' (line 1, column 5)",
            "  age >> 18",
            "      ^^",
            "  hint: did you mean '>'?",
        ),
        RuleSyntaxError,
        (Span(4, 6), 1, 5, ">"),
        id="operator-shift",
    ),
    pytest.param(
        "did and age > 3",
        _lines(
            "expected an event name after 'did', found 'and' (line 1, column 5)",
            "  did and age > 3",
            "      ^^^",
        ),
        RuleSyntaxError,
        (Span(4, 7), 1, 5, None),
        id="keyword-as-event",
    ),
    pytest.param(
        'did purchase where in segment "vip"',
        _lines(
            "'in segment' cannot be used inside 'where':"
            " conditions inside 'where' are about the event's properties (line 1, column 20)",
            '  did purchase where in segment "vip"',
            "                     ^^^^^^^^^^",
        ),
        RuleSyntaxError,
        (Span(19, 29), 1, 20, None),
        id="in-segment-inside-where",
    ),
    pytest.param(
        "did purchase within 3d",
        _lines(
            "'within' limits a sequence (did A then B within 3d); for a single event use 'in last'"
            " (line 1, column 14)",
            "  did purchase within 3d",
            "               ^^^^^^^^^",
            "  hint: did you mean 'in last 3d'?",
        ),
        RuleSyntaxError,
        (Span(13, 22), 1, 14, "in last 3d"),
        id="within-without-then",
    ),
    pytest.param(
        'country = "FR"\n  and age >=\n',
        _lines(
            "expected a value after '>=' (line 2, column 13)",
            "    and age >=",
            "              ^",
        ),
        RuleSyntaxError,
        (Span(27, 27), 2, 13, None),
        id="trailing-newline",
    ),
    pytest.param(
        "'age' > 3",
        _lines(
            "expected a condition, found the string 'age'"
            " (write names in backquotes, not quotes) (line 1, column 1)",
            "  'age' > 3",
            "  ^^^^^",
            "  hint: did you mean '`age`'?",
        ),
        RuleSyntaxError,
        (Span(0, 5), 1, 1, "`age`"),
        id="single-quoted-string-where-name-belongs",
    ),
    pytest.param(
        "not " * 65 + "age > 3",
        _lines(
            "rule nests deeper than 64 levels (line 1, column 257)",
            render_snippet("not " * 65 + "age > 3", Span(256, 259)),
        ),
        RuleSyntaxError,
        (Span(256, 259), 1, 257, None),
        id="nesting-65-nots",
    ),
    pytest.param(
        "did purchase where " + "(" * 64 + "amount > 1" + ")" * 64,
        _lines(
            "rule nests deeper than 64 levels (line 1, column 83)",
            render_snippet(
                "did purchase where " + "(" * 64 + "amount > 1" + ")" * 64, Span(82, 83)
            ),
        ),
        RuleSyntaxError,
        (Span(82, 83), 1, 83, None),
        id="nesting-in-where",
    ),
]

TYPE_CASES = [
    pytest.param(
        'contry = "FR"',
        SCHEMA,
        _lines(
            "unknown attribute 'contry' (line 1, column 1)",
            '  contry = "FR"',
            "  ^^^^^^",
            "  hint: did you mean 'country'?",
        ),
        UnknownAttributeError,
        (Span(0, 6), 1, 1, "country"),
        id="unknown-attribute-suggestion",
    ),
    pytest.param(
        'Country = "FR"',
        SCHEMA,
        _lines(
            "unknown attribute 'Country' (line 1, column 1)",
            '  Country = "FR"',
            "  ^^^^^^^",
            "  hint: did you mean 'country'?",
        ),
        UnknownAttributeError,
        (Span(0, 7), 1, 1, "country"),
        id="unknown-attribute-case",
    ),
    pytest.param(
        "zzz = 1",
        SCHEMA,
        _lines(
            "unknown attribute 'zzz' (line 1, column 1)",
            "  zzz = 1",
            "  ^^^",
        ),
        UnknownAttributeError,
        (Span(0, 3), 1, 1, None),
        id="unknown-attribute-no-suggestion",
    ),
    pytest.param(
        '`$el.text` = "Buy"',
        SCHEMA,
        _lines(
            "unknown attribute '$el.text' (line 1, column 1)",
            '  `$el.text` = "Buy"',
            "  ^^^^^^^^^^",
        ),
        UnknownAttributeError,
        (Span(0, 10), 1, 1, None),
        id="unknown-backquoted-attribute",
    ),
    pytest.param(
        "did purchse in last 30d",
        SCHEMA,
        _lines(
            "unknown event 'purchse' (line 1, column 5)",
            "  did purchse in last 30d",
            "      ^^^^^^^",
            "  hint: did you mean 'purchase'?",
        ),
        UnknownEventError,
        (Span(4, 11), 1, 5, "purchase"),
        id="unknown-event-suggestion",
    ),
    pytest.param(
        "did zzz",
        SCHEMA,
        _lines(
            "unknown event 'zzz' (line 1, column 5)",
            "  did zzz",
            "      ^^^",
        ),
        UnknownEventError,
        (Span(4, 7), 1, 5, None),
        id="unknown-event-no-suggestion",
    ),
    pytest.param(
        "did page_view then purchse within 1d",
        SCHEMA,
        _lines(
            "unknown event 'purchse' (line 1, column 20)",
            "  did page_view then purchse within 1d",
            "                     ^^^^^^^",
            "  hint: did you mean 'purchase'?",
        ),
        UnknownEventError,
        (Span(19, 26), 1, 20, "purchase"),
        id="unknown-event-in-sequence",
    ),
    pytest.param(
        "count(purchse) > 3",
        SCHEMA,
        _lines(
            "unknown event 'purchse' (line 1, column 7)",
            "  count(purchse) > 3",
            "        ^^^^^^^",
            "  hint: did you mean 'purchase'?",
        ),
        UnknownEventError,
        (Span(6, 13), 1, 7, "purchase"),
        id="unknown-event-in-aggregate",
    ),
    pytest.param(
        "did purchase where amout > 3",
        SCHEMA,
        _lines(
            "event 'purchase' has no property 'amout' (line 1, column 20)",
            "  did purchase where amout > 3",
            "                     ^^^^^",
            "  hint: did you mean 'amount'?",
        ),
        UnknownPropertyError,
        (Span(19, 24), 1, 20, "amount"),
        id="unknown-property-suggestion",
    ),
    pytest.param(
        'did purchase where url = "/"',
        SCHEMA,
        _lines(
            "event 'purchase' has no property 'url' (line 1, column 20)",
            '  did purchase where url = "/"',
            "                     ^^^",
        ),
        UnknownPropertyError,
        (Span(19, 22), 1, 20, None),
        id="unknown-property-no-suggestion",
    ),
    pytest.param(
        "count(purchase where amout > 1) > 3",
        SCHEMA,
        _lines(
            "event 'purchase' has no property 'amout' (line 1, column 22)",
            "  count(purchase where amout > 1) > 3",
            "                       ^^^^^",
            "  hint: did you mean 'amount'?",
        ),
        UnknownPropertyError,
        (Span(21, 26), 1, 22, "amount"),
        id="unknown-property-in-aggregate-where",
    ),
    pytest.param(
        'age > "x"',
        SCHEMA,
        _lines(
            "cannot compare int attribute 'age' with a string (\"x\") (line 1, column 1)",
            '  age > "x"',
            "  ^^^^^^^^^",
        ),
        RuleTypeError,
        (Span(0, 9), 1, 1, None),
        id="int-compared-with-string",
    ),
    pytest.param(
        "age = true",
        SCHEMA,
        _lines(
            "cannot compare int attribute 'age' with a boolean (true) (line 1, column 1)",
            "  age = true",
            "  ^^^^^^^^^^",
        ),
        RuleTypeError,
        (Span(0, 10), 1, 1, None),
        id="int-compared-with-boolean",
    ),
    pytest.param(
        "country = 3",
        SCHEMA,
        _lines(
            "cannot compare string attribute 'country' with a number (3) (line 1, column 1)",
            "  country = 3",
            "  ^^^^^^^^^^^",
        ),
        RuleTypeError,
        (Span(0, 11), 1, 1, None),
        id="string-compared-with-number",
    ),
    pytest.param(
        'signed_up > "2024-01-01"',
        SCHEMA,
        _lines(
            "cannot compare date attribute 'signed_up' with a string (\"2024-01-01\") (line 1, column 1)",
            '  signed_up > "2024-01-01"',
            "  ^^^^^^^^^^^^^^^^^^^^^^^^",
        ),
        RuleTypeError,
        (Span(0, 24), 1, 1, None),
        id="date-compared-with-string",
    ),
    pytest.param(
        "signed_up = @2024-01-01T10:00Z",
        SCHEMA,
        _lines(
            "date attribute 'signed_up' holds dates; compare it with a date such as @2024-01-01 (line 1, column 1)",
            "  signed_up = @2024-01-01T10:00Z",
            "  ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^",
            "  hint: did you mean '@2024-01-01'?",
        ),
        RuleTypeError,
        (Span(0, 30), 1, 1, "@2024-01-01"),
        id="date-compared-with-datetime",
    ),
    pytest.param(
        "tags > 3",
        SCHEMA,
        _lines(
            "'>' does not apply to list[string] attribute 'tags'; use 'has any', 'has all' or 'has none' (line 1, column 1)",
            "  tags > 3",
            "  ^^^^^^^^",
            "  hint: did you mean 'has any'?",
        ),
        RuleTypeError,
        (Span(0, 8), 1, 1, "has any"),
        id="list-with-comparison",
    ),
    pytest.param(
        'tags = "vip"',
        SCHEMA,
        _lines(
            "'=' does not apply to list[string] attribute 'tags'; use 'has any', 'has all' or 'has none' (line 1, column 1)",
            '  tags = "vip"',
            "  ^^^^^^^^^^^^",
            "  hint: did you mean 'has any'?",
        ),
        RuleTypeError,
        (Span(0, 12), 1, 1, "has any"),
        id="list-with-equals",
    ),
    pytest.param(
        "tags has any [1]",
        SCHEMA,
        _lines(
            "cannot compare list[string] attribute 'tags' with a number (1) (line 1, column 1)",
            "  tags has any [1]",
            "  ^^^^^^^^^^^^^^^^",
        ),
        RuleTypeError,
        (Span(0, 16), 1, 1, None),
        id="list-element-type",
    ),
    pytest.param(
        "age has any [1]",
        SCHEMA,
        _lines(
            "'has any' applies to list attributes; int attribute 'age' is not a list (line 1, column 1)",
            "  age has any [1]",
            "  ^^^^^^^^^^^^^^^",
        ),
        RuleTypeError,
        (Span(0, 15), 1, 1, None),
        id="has-on-scalar",
    ),
    pytest.param(
        "is_customer > true",
        SCHEMA,
        _lines(
            "'>' does not apply to bool attribute 'is_customer'; use = or != (line 1, column 1)",
            "  is_customer > true",
            "  ^^^^^^^^^^^^^^^^^^",
        ),
        RuleTypeError,
        (Span(0, 18), 1, 1, None),
        id="bool-ordered",
    ),
    pytest.param(
        "is_customer = 1",
        SCHEMA,
        _lines(
            "cannot compare bool attribute 'is_customer' with a number (1) (line 1, column 1)",
            "  is_customer = 1",
            "  ^^^^^^^^^^^^^^^",
        ),
        RuleTypeError,
        (Span(0, 15), 1, 1, None),
        id="bool-compared-with-number",
    ),
    pytest.param(
        'age contains "3"',
        SCHEMA,
        _lines(
            "'contains' applies to strings; int attribute 'age' is not a string (line 1, column 1)",
            '  age contains "3"',
            "  ^^^^^^^^^^^^^^^^",
        ),
        RuleTypeError,
        (Span(0, 16), 1, 1, None),
        id="contains-on-int",
    ),
    pytest.param(
        "age matches /^1/",
        SCHEMA,
        _lines(
            "'matches' applies to strings; int attribute 'age' is not a string (line 1, column 1)",
            "  age matches /^1/",
            "  ^^^^^^^^^^^^^^^^",
        ),
        RuleTypeError,
        (Span(0, 16), 1, 1, None),
        id="matches-on-int",
    ),
    pytest.param(
        'age in [1, "a"]',
        SCHEMA,
        _lines(
            "cannot compare int attribute 'age' with a string (\"a\") (line 1, column 1)",
            '  age in [1, "a"]',
            "  ^^^^^^^^^^^^^^^",
        ),
        RuleTypeError,
        (Span(0, 15), 1, 1, None),
        id="in-list-mixed-types",
    ),
    pytest.param(
        "signed_up in last 30d",
        INTSCHEMA_SCHEMA,
        _lines(
            "'in last' applies to dates and datetimes, not to int attribute 'signed_up' (line 1, column 1)",
            "  signed_up in last 30d",
            "  ^^^^^^^^^^^^^^^^^^^^^",
        ),
        RuleTypeError,
        (Span(0, 21), 1, 1, None),
        id="in-last-on-int",
    ),
    pytest.param(
        "signed_up more than 1y ago",
        INTSCHEMA_SCHEMA,
        _lines(
            "'more than … ago' applies to dates and datetimes, not to int attribute 'signed_up' (line 1, column 1)",
            "  signed_up more than 1y ago",
            "  ^^^^^^^^^^^^^^^^^^^^^^^^^^",
        ),
        RuleTypeError,
        (Span(0, 26), 1, 1, None),
        id="more-than-ago-on-int",
    ),
    pytest.param(
        "signed_up before @2024-01-01",
        INTSCHEMA_SCHEMA,
        _lines(
            "'before' applies to dates and datetimes, not to int attribute 'signed_up' (line 1, column 1)",
            "  signed_up before @2024-01-01",
            "  ^^^^^^^^^^^^^^^^^^^^^^^^^^^^",
        ),
        RuleTypeError,
        (Span(0, 28), 1, 1, None),
        id="before-on-int",
    ),
    pytest.param(
        "age between 10 and 5",
        SCHEMA,
        _lines(
            "empty range: 10 is greater than 5 (line 1, column 1)",
            "  age between 10 and 5",
            "  ^^^^^^^^^^^^^^^^^^^^",
            "  hint: did you mean 'between 5 and 10'?",
        ),
        RuleTypeError,
        (Span(0, 20), 1, 1, "between 5 and 10"),
        id="empty-between-range",
    ),
    pytest.param(
        "signed_up between @2024-02-01 and @2024-01-01",
        SCHEMA,
        _lines(
            "empty range: @2024-02-01 is greater than @2024-01-01 (line 1, column 1)",
            "  signed_up between @2024-02-01 and @2024-01-01",
            "  ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^",
            "  hint: did you mean 'between @2024-01-01 and @2024-02-01'?",
        ),
        RuleTypeError,
        (Span(0, 45), 1, 1, "between @2024-01-01 and @2024-02-01"),
        id="empty-between-dates",
    ),
    pytest.param(
        "did purchase between @2024-02-01 and @2024-01-01",
        SCHEMA,
        _lines(
            "empty window: the start is after the end (line 1, column 14)",
            "  did purchase between @2024-02-01 and @2024-01-01",
            "               ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^",
        ),
        RuleTypeError,
        (Span(13, 48), 1, 14, None),
        id="empty-event-window",
    ),
    pytest.param(
        "last_seen > @2024-01-01T10:00",
        NAIVE_SCHEMA,
        _lines(
            "datetime 2024-01-01T10:00:00 has no time zone and the schema declares none (add Z or +HH:MM, or declare Schema(timezone=...)) (line 1, column 1)",
            "  last_seen > @2024-01-01T10:00",
            "  ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^",
        ),
        RuleTypeError,
        (Span(0, 29), 1, 1, None),
        id="naive-datetime-without-timezone",
    ),
    pytest.param(
        "did purchase between @2024-01-01T10:00 and @2024-01-02T00:00Z",
        NAIVE_SCHEMA,
        _lines(
            "datetime 2024-01-01T10:00:00 has no time zone and the schema declares none (add Z or +HH:MM, or declare Schema(timezone=...)) (line 1, column 14)",
            "  did purchase between @2024-01-01T10:00 and @2024-01-02T00:00Z",
            "               ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^",
        ),
        RuleTypeError,
        (Span(13, 61), 1, 14, None),
        id="naive-datetime-in-window",
    ),
    pytest.param(
        "sum(purchase.sku) > 3",
        SCHEMA,
        _lines(
            "sum() needs a numeric property, but purchase.sku is string (line 1, column 1)",
            "  sum(purchase.sku) > 3",
            "  ^^^^^^^^^^^^^^^^^^^^^",
        ),
        RuleTypeError,
        (Span(0, 21), 1, 1, None),
        id="sum-of-string-property",
    ),
    pytest.param(
        "avg(purchase.gift) > 0.5",
        SCHEMA,
        _lines(
            "avg() needs a numeric property, but purchase.gift is bool (line 1, column 1)",
            "  avg(purchase.gift) > 0.5",
            "  ^^^^^^^^^^^^^^^^^^^^^^^^",
        ),
        RuleTypeError,
        (Span(0, 24), 1, 1, None),
        id="avg-of-bool-property",
    ),
    pytest.param(
        "sum(purchase.amnt) > 3",
        SCHEMA,
        _lines(
            "event 'purchase' has no property 'amnt' (line 1, column 14)",
            "  sum(purchase.amnt) > 3",
            "               ^^^^",
            "  hint: did you mean 'amount'?",
        ),
        UnknownPropertyError,
        (Span(13, 17), 1, 14, "amount"),
        id="unknown-property-in-aggregate",
    ),
    pytest.param(
        'age > 3\n  and contry = "FR"',
        SCHEMA,
        _lines(
            "unknown attribute 'contry' (line 2, column 7)",
            '    and contry = "FR"',
            "        ^^^^^^",
            "  hint: did you mean 'country'?",
        ),
        UnknownAttributeError,
        (Span(14, 20), 2, 7, "country"),
        id="unknown-attribute-on-line-2",
    ),
    pytest.param(
        "did i",
        SCHEMA,
        _lines(
            "unknown event 'i' (line 1, column 5)",
            "  did i",
            "      ^",
        ),
        UnknownEventError,
        (Span(4, 5), 1, 5, None),
        id="unknown-event-spelled-inside-did",
    ),
    pytest.param(
        "count(c) > 1",
        SCHEMA,
        _lines(
            "unknown event 'c' (line 1, column 7)",
            "  count(c) > 1",
            "        ^",
        ),
        UnknownEventError,
        (Span(6, 7), 1, 7, None),
        id="unknown-event-spelled-inside-count",
    ),
]


@pytest.mark.parametrize(("text", "expected", "expected_type", "where"), SYNTAX_CASES)
def test_syntax_error_message(
    text: str, expected: str, expected_type: type[RuleError], where: Where
) -> None:
    """sk.parse raises a RuleSyntaxError with this exact text, position and hint."""
    with pytest.raises(RuleSyntaxError) as info:
        sk.parse(text)
    _assert_error(info.value, text, expected_type, expected, *where)


@pytest.mark.parametrize(("text", "schema", "expected", "expected_type", "where"), TYPE_CASES)
def test_type_error_message(
    text: str, schema: sk.Schema, expected: str, expected_type: type[RuleError], where: Where
) -> None:
    """sk.check raises a RuleTypeError with this exact text, position and hint."""
    rule = sk.parse(text)
    with pytest.raises(RuleTypeError) as info:
        sk.check(rule, schema)
    _assert_error(info.value, text, expected_type, expected, *where)


@pytest.mark.parametrize(
    ("text", "column", "caret"),
    [
        pytest.param("(" * 10_000 + "age > 3" + ")" * 10_000, 65, "^", id="parentheses"),
        pytest.param("not " * 10_000 + "age > 3", 257, "^^^", id="nots"),
        pytest.param(
            "did purchase where " + "not " * 10_000 + "amount > 1", 272, "^^^", id="where-nots"
        ),
        pytest.param("(" * 10_000, 65, "^", id="unclosed-parentheses"),
    ],
)
def test_very_deep_nesting_is_a_syntax_error(text: str, column: int, caret: str) -> None:
    """A 10,000-deep rule raises RuleSyntaxError at the 65th level, never RecursionError."""
    with pytest.raises(RuleSyntaxError) as info:
        sk.parse(text)
    start = column - 1
    expected = _lines(
        f"rule nests deeper than 64 levels (line 1, column {column})",
        render_snippet(text, Span(start, start + len(caret))),
    )
    _assert_error(
        info.value,
        text,
        RuleSyntaxError,
        expected,
        Span(start, start + len(caret)),
        1,
        column,
        None,
    )


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(
            "(" * 10_000 + "age > 3" + ")" * 10_000,
            id="parentheses",
        ),
        pytest.param(
            "(" * 10_000,
            id="unclosed-parentheses",
        ),
        pytest.param("not " * 10_000 + "age > 3", id="nots"),
        pytest.param("did purchase where " + "not " * 10_000 + "amount > 1", id="where-nots"),
    ],
)
def test_iter_errors_on_very_deep_nesting(text: str) -> None:
    """sk.iter_errors reports a too-deep rule once, without a cascade of follow-up errors."""
    assert [e.message for e in sk.iter_errors(text)] == ["rule nests deeper than 64 levels"]


def test_regex_too_long() -> None:
    """A regex of 1,001 characters is rejected with its length and the limit."""
    text = "email matches /" + "a" * 1001 + "/"
    with pytest.raises(RuleSyntaxError) as info:
        sk.parse(text)
    expected = _lines(
        "regex is 1001 characters long; the limit is 1000 (line 1, column 15)",
        "  email matches /" + "a" * 85 + "...",
        "  " + " " * 14 + "^" * 86,
    )
    _assert_error(info.value, text, RuleSyntaxError, expected, Span(14, 1017), 1, 15, None)
    assert sk.is_valid("email matches /" + "a" * 1000 + "/")


TOO_LONG = 'email = "' + "a" * 65_530 + '"'


def test_rule_too_long_is_a_syntax_error() -> None:
    """A rule over 65,536 characters raises RuleSyntaxError saying its length and the limit."""
    with pytest.raises(RuleSyntaxError) as info:
        sk.parse(TOO_LONG)
    assert info.value.message == "rule is 65540 characters long; the limit is 65536"
    assert sk.is_valid(TOO_LONG[:65_535] + '"')


def test_rule_too_long_has_no_snippet() -> None:
    """A too-long rule's error has no location: there is nothing useful to point at."""
    with pytest.raises(RuleSyntaxError) as info:
        sk.parse(TOO_LONG)
    error = info.value
    assert str(error) == "rule is 65540 characters long; the limit is 65536"
    assert (error.span, error.line, error.column) == (None, 0, 0)


@pytest.mark.parametrize(
    ("text", "messages"),
    [
        pytest.param(
            "age >= and country = or x",
            [
                "expected a value after '>=', found 'and'",
                "expected a value after '=', found 'or'",
                "expected an operator after 'x'",
            ],
            id="three-operands",
        ),
        pytest.param(
            "age >= and country = FR and (tags > and email is known) or did",
            [
                "expected a value after '>=', found 'and'",
                "expected a value after '=', found the name 'FR' (strings need quotes)",
                "expected a value after '>', found 'and'",
                "expected an event name after 'did'",
            ],
            id="nested",
        ),
        pytest.param(
            "did purchase where did page_view and age <",
            [
                "'did' cannot be used inside 'where':"
                " conditions inside 'where' are about the event's properties",
                "expected a value after '<'",
            ],
            id="where-and-operand",
        ),
        pytest.param(
            "age => 3 and country = FR",
            ["unknown operator '=>'"],
            id="tokenizer-error-stops",
        ),
        pytest.param(
            "age > 3 and",
            ["expected a condition after 'and'"],
            id="single",
        ),
        pytest.param("age > 3", [], id="valid"),
        pytest.param(
            "age >= 1 and and b = 1 or c =",
            [
                "expected a condition after 'and', found 'and'",
                "expected a value after '='",
            ],
            id="doubled-and",
        ),
        pytest.param(
            '(age >= 18 and) or plan = "pro"',
            ["expected a condition after 'and', found ')'"],
            id="dangling-and-in-parentheses",
        ),
    ],
)
def test_iter_errors_collects_every_syntax_error(text: str, messages: list[str]) -> None:
    """sk.iter_errors(text) yields every syntax error, in source order, without raising."""
    errors = list(sk.iter_errors(text))
    assert [e.message for e in errors] == messages
    assert all(type(e) is RuleSyntaxError for e in errors)
    starts = [e.span.start for e in errors if e.span is not None]
    assert starts == sorted(starts)


def test_iter_errors_collects_every_type_error() -> None:
    """sk.iter_errors(text, schema) yields every type error with its class, span and hint."""
    text = (
        'contry = "FR" and age > "x" and did purchse'
        " and tags > 3 and sum(purchase.sku) > 1 and did purchase where amout > 3"
    )
    found = [(type(e), e.message, e.span, e.suggestion) for e in sk.iter_errors(text, SCHEMA)]
    assert found == [
        (UnknownAttributeError, "unknown attribute 'contry'", Span(0, 6), "country"),
        (
            RuleTypeError,
            "cannot compare int attribute 'age' with a string (\"x\")",
            Span(18, 27),
            None,
        ),
        (UnknownEventError, "unknown event 'purchse'", Span(36, 43), "purchase"),
        (
            RuleTypeError,
            "'>' does not apply to list[string] attribute 'tags';"
            " use 'has any', 'has all' or 'has none'",
            Span(48, 56),
            "has any",
        ),
        (
            RuleTypeError,
            "sum() needs a numeric property, but purchase.sku is string",
            Span(61, 82),
            None,
        ),
        (
            UnknownPropertyError,
            "event 'purchase' has no property 'amout'",
            Span(106, 111),
            "amount",
        ),
    ]


def test_iter_errors_reports_type_errors_only_for_a_rule_that_parses() -> None:
    """With syntax errors, iter_errors yields them and skips the type check."""
    errors = list(sk.iter_errors('contry = "FR" and age >', SCHEMA))
    assert [(type(e), e.message) for e in errors] == [
        (RuleSyntaxError, "expected a value after '>'")
    ]
    assert list(sk.iter_errors('contry = "FR"')) == []


@pytest.mark.parametrize(
    ("text", "schema", "valid"),
    [
        pytest.param("age >= 18", None, True, id="valid-text"),
        pytest.param("age >= 18", SCHEMA, True, id="valid-with-schema"),
        pytest.param("age >=", None, False, id="syntax-error"),
        pytest.param("age >=", SCHEMA, False, id="syntax-error-with-schema"),
        pytest.param('contry = "FR"', None, True, id="unknown-name-without-schema"),
        pytest.param('contry = "FR"', SCHEMA, False, id="unknown-name-with-schema"),
        pytest.param('age > "x"', SCHEMA, False, id="type-error"),
        pytest.param("", None, False, id="empty"),
        pytest.param("(" * 10_000, None, False, id="too-deep"),
        pytest.param(TOO_LONG, None, False, id="too-long"),
    ],
)
def test_is_valid(text: str, schema: sk.Schema | None, valid: bool) -> None:
    """sk.is_valid is True exactly when iter_errors finds nothing, and never raises."""
    assert sk.is_valid(text, schema) is valid
    assert (next(iter(sk.iter_errors(text, schema)), None) is None) is valid


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: sk.parse("age => 18"), id="syntax"),
        pytest.param(lambda: sk.check('contry = "FR"', SCHEMA), id="type"),
    ],
)
def test_errors_survive_pickling(make: object) -> None:
    """A pickled rule error keeps its class, text and structured attributes."""
    with pytest.raises(RuleError) as info:
        make()  # type: ignore[operator]
    error = info.value
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert (copy.span, copy.line, copy.column, copy.suggestion, copy.expected) == (
        error.span,
        error.line,
        error.column,
        error.suggestion,
        error.expected,
    )
