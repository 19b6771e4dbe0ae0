"""Fuzz the rule parser: any text gives a Rule or a RuleError, never another exception.

Three sources of text: arbitrary Unicode (``st.text()``), sequences of rule-language
tokens (good and bad ones), and valid rules with a few characters inserted, deleted,
replaced or swapped. For every input, ``sk.parse`` and ``sk.iter_errors`` agree on
whether the text is valid, every error is a well-formed :class:`segkit.RuleError`,
and a rule that parses survives the canonical round trip ``parse(str(rule)) == rule``.

About 34,000 texts per run (10,000 arbitrary, 12,000 token soups, 12,000 mutants),
in batches of 4 or 8 per hypothesis example to keep the file under ~10 s.
"""

from __future__ import annotations

import contextlib
import warnings

import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st

import segkit as sk
from segkit.dsl.tokens import KEYWORDS
from segkit.errors import line_and_column

#: Valid rules covering every construct of the language.
SEEDS = [
    'country = "FR" and age between 29 and 44',
    'plan = "pro" or (country in ["FR", "BE",] and not age < 18)',
    "ltv >= 1e3 and age != -1 and is_customer = true",
    r'email iends_with "@example.com" or email not contains "\"x\"\n"',
    r"email matches /^[a-z]+@(gmail|yahoo)\.com$/im and `$el.text` not matches /\/x/",
    'tags has any ["vip", "beta"] and tags has none ["churned"] or tags has all []',
    "email is known and not plan is not known",
    "last_seen in last 30d and signed_up not in last 1y",
    "signed_up before @2024-01-31 or last_seen after @2024-01-31T10:00:00.5+02:00",
    "last_seen more than 15min ago and last_seen <= @2024-03-31T02:30",
    'in segment "vip" and not in segment "churned"',
    'bucket("exp-7") in 0..4999 or bucket("exp-8") in 5000..9999',
    "did cart_abandoned >= 3 times in last 30d and not did purchase in last 30d",
    'did page_view where url starts_with "/pricing" = 1 time between @2024-01-01 and @2024-02-01',
    'did page_view where (url = "/a" or url = "/b") then purchase within 2d in last 90d',
    "did signup then `page view` where not `time` > 3 then purchase within 1w",
    "did purchase where amount > 100 for the first time in last 3mo",
    'sum(purchase.amount where sku istarts_with "PRO-" in last 90d) > 500.5',
    "avg(purchase.amount) != 0 or min(purchase.amount) < 1 or max(purchase.amount) >= 1000",
    "count(page_view in last 7d) = 0 # no visits\n  or count(`did`) > 2",
    "not (not (((a = 1))) and (b = 2 or c = 3 and d = 4)) or e = 'it\\'s'",
]

#: Tokens of the rule language, valid and invalid, for grammar-shaped noise.
# fmt: off
TOKENS = [
    *sorted(KEYWORDS),
    "TRUE", "AND", "null", "None", "like", "equals",
    "age", "country", "email", "tags", "`$el.text`", "``", "`a\\`b`", "`x", "purchase", "url",
    "=", "==", "!=", "<", "<=", ">", ">=", "=>", "=<", "<>", ">>", "!", "===", "&", "|", "?", ";",
    "(", ")", "[", "]", ",", ".", "..", "(", "(", ")", ")",
    '"FR"', '""', '"a\\"b"', '"\\u00e9"', '"\\q"', '"\\u12"', '"unterminated', "'x'", "''",
    "0", "18", "-1", "3.5", "1e3", "1e999", "-0.25", "007", "1_000", "10000", "9999", "4999",
    "30d", "15min", "2h", "1w", "3mo", "1y", "10s", "5m", "5q", "1.5d", "-3d", "100001d", "0d",
    "@2024-01-31", "@2024-01-31T10:00", "@2024-01-31T10:00:00Z", "@2024-01-31T10:00+02:00",
    "@2024-02-30", "@2024-13-01", "@24-1-1", "@", "@2024-01-01T25:00",
    "/a/", "/^a.*z$/i", "/[a-/", "/a/x", "/a/ii", "/(a/", "/\\/x/ms", "/",
    "# comment\n", "\n", "\t",
]
# fmt: on

_SEPARATORS = [" ", " ", " ", "", "\n", "  "]

#: Characters that matter to the tokenizer, for mutations.
_MUTATION_CHARS = "()[]\"'`@/#.,=!<>-_ \n\t\\0123456789admsyz&|é"


def _check(text: str) -> None:
    """``text`` parses to a Rule or raises a RuleError; parse and iter_errors agree."""
    rule: sk.Rule | None = None
    try:
        rule = sk.parse(text)
    except sk.RuleError as exc:
        error: sk.RuleError | None = exc
    else:
        error = None
    if error is not None:
        assert type(error) is sk.RuleSyntaxError
        _check_error(error, text)
    else:
        assert rule is not None
        canonical = str(rule)
        again = sk.parse(canonical)
        assert again == rule, (text, canonical)
        assert str(again) == canonical
        assert sk.Rule.from_dict(rule.to_dict()) == rule
    errors = list(sk.iter_errors(text))
    for error in errors:
        assert isinstance(error, sk.RuleSyntaxError)
        _check_error(error, text)
    assert (rule is None) == bool(errors), (text, [e.message for e in errors])


def _check_error(error: sk.RuleError, text: str) -> None:
    """The error has a one-line message, a span inside the text and a matching position."""
    assert error.message
    assert "\n" not in error.message
    assert "\r" not in error.message
    assert str(error).startswith(error.message)
    if error.span is not None and error.source:
        assert error.source == text
        assert 0 <= error.span.start <= error.span.end <= len(text)
        assert (error.line, error.column) == line_and_column(text, error.span.start)


#: Texts checked per hypothesis example: batching keeps hypothesis' own overhead low.
BATCH = 8
#: Bytes that drive one token-soup text: a length byte, then (token, separator) pairs.
_SOUP_BYTES = 1 + 2 * 24
#: Bytes that drive one mutated seed: seed, number of edits, then 3 bytes per edit.
_MUTATION_BYTES = 2 + 3 * 4


def _chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def _token_soup(chunk: bytes) -> str:
    """Up to 24 rule-language tokens and separators, chosen by the bytes of ``chunk``."""
    out = []
    for k in range(chunk[0] % 25):
        out.append(TOKENS[chunk[1 + 2 * k] % len(TOKENS)])
        out.append(_SEPARATORS[chunk[2 + 2 * k] % len(_SEPARATORS)])
    return "".join(out)


def _mutate(chunk: bytes) -> str:
    """A seed rule with 1 to 4 inserts, deletes, replacements or swaps, chosen by ``chunk``."""
    text = SEEDS[chunk[0] % len(SEEDS)]
    for k in range(1 + chunk[1] % 4):
        kind, at, arg = chunk[2 + 3 * k : 5 + 3 * k]
        if not text:
            break
        i = at * len(text) // 256
        char = _MUTATION_CHARS[arg % len(_MUTATION_CHARS)]
        if kind % 4 == 0:
            text = text[:i] + char + text[i:]
        elif kind % 4 == 1:
            text = text[:i] + text[i + 1 :]
        elif kind % 4 == 2:
            text = text[:i] + char + text[i + 1 :]
        else:
            j = arg * len(text) // 256
            i, j = min(i, j), max(i, j)
            if i != j:
                text = text[:i] + text[j] + text[i + 1 : j] + text[i] + text[j + 1 :]
    return text


def _check_all(texts: list[str]) -> None:
    for text in texts:
        note(f"text: {text!r}")
        _check(text)


@settings(max_examples=2_500, deadline=None)
@given(st.lists(st.text(), min_size=4, max_size=4))
def test_arbitrary_text_gives_a_rule_or_a_rule_error(texts: list[str]) -> None:
    """Any Unicode text parses to a Rule or raises RuleError, and iter_errors never raises."""
    _check_all(texts)


@settings(max_examples=1_500, deadline=None)
@given(st.binary(min_size=BATCH * _SOUP_BYTES, max_size=BATCH * _SOUP_BYTES))
def test_token_soup_gives_a_rule_or_a_rule_error(data: bytes) -> None:
    """Sequences of rule tokens parse to a Rule or raise RuleError; Rules round-trip."""
    _check_all([_token_soup(chunk) for chunk in _chunks(data, _SOUP_BYTES)])


@settings(max_examples=1_500, deadline=None)
@given(st.binary(min_size=BATCH * _MUTATION_BYTES, max_size=BATCH * _MUTATION_BYTES))
def test_mutated_rules_give_a_rule_or_a_rule_error(data: bytes) -> None:
    """Valid rules with a few characters changed parse to a Rule or raise RuleError."""
    _check_all([_mutate(chunk) for chunk in _chunks(data, _MUTATION_BYTES)])


@pytest.mark.parametrize("text", ["¹", "x = 1²", "٣ > 1", "x in last 3¹d"])
def test_unicode_digit_is_a_rule_error(text: str) -> None:
    """A non-ASCII digit (str.isdigit but not 0-9) raises RuleSyntaxError, not AssertionError."""
    _check(text)


@pytest.mark.parametrize("text", ['x = "a\\\nb"', 'x = "a\\\rb"'])
def test_escaped_line_break_message_is_one_line(text: str) -> None:
    """A backslash before a line break in a string gives a one-line error message."""
    _check(text)


@pytest.mark.parametrize("text", ["email matches /[[a]/", "email matches /[a--b]/"])
def test_ambiguous_regex_set_gives_no_warning(text: str) -> None:
    """A regex that re warns about is a RuleSyntaxError or accepted quietly, never a warning."""
    with warnings.catch_warnings(), contextlib.suppress(sk.RuleSyntaxError):
        warnings.simplefilter("error")
        sk.parse(text)


def test_seeds_are_valid_and_round_trip() -> None:
    """Every seed rule parses, and its canonical text parses back to an equal rule."""
    for seed in SEEDS:
        rule = sk.parse(seed)
        assert sk.parse(str(rule)) == rule
