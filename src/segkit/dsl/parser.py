"""Recursive-descent parser: tokens in, AST out.

Boolean precedence is the data table :data:`BINARY_OPERATORS` (``not`` binds tighter
than ``and``, which binds tighter than ``or``); everything below it is one
predicate. Nesting is bounded by :data:`MAX_DEPTH`, so even a 10,000-deep
parenthesised input raises :class:`~segkit.errors.RuleSyntaxError`, never
:class:`RecursionError`.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from typing import Final, NoReturn

import attrs

from segkit.dsl import ast
from segkit.dsl.tokens import (
    DURATION,
    EOF,
    NAME,
    NUMBER,
    OP,
    PUNCT,
    QNAME,
    REGEX,
    STRING,
    TIME,
    Token,
    tokenize,
)
from segkit.errors import RuleSyntaxError, Span
from segkit.hashing import BUCKETS
from segkit.timeutil import Duration

__all__ = ["BINARY_OPERATORS", "MAX_DEPTH", "MAX_REGEX_LENGTH", "parse_expr", "parse_expr_all"]

#: Deepest nesting of parentheses, ``not`` and ``where`` accepted.
MAX_DEPTH: Final = 64
#: Longest accepted regex pattern, in characters.
MAX_REGEX_LENGTH: Final = 1_000
#: At most this many errors are collected by :func:`parse_expr_all`.
MAX_ERRORS: Final = 50

#: Binary boolean operators: word -> (binding power, node class). Higher binds tighter.
BINARY_OPERATORS: Final[dict[str, tuple[int, type[ast.And] | type[ast.Or]]]] = {
    "or": (1, ast.Or),
    "and": (2, ast.And),
}

_STRING_OPS: Final = {
    "contains": ("contains", False),
    "starts_with": ("starts_with", False),
    "ends_with": ("ends_with", False),
    "icontains": ("contains", True),
    "istarts_with": ("starts_with", True),
    "iends_with": ("ends_with", True),
}
_FIELD_OPERATOR_WORDS: Final = (
    "=",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "in",
    "not in",
    "between",
    "contains",
    "starts_with",
    "ends_with",
    "matches",
    "is known",
    "has any",
    "before",
    "after",
    "more than",
)
_WORD_HINTS: Final = {
    "equals": "=",
    "eq": "=",
    "is": "is known",
    "like": "contains",
    "contain": "contains",
    "includes": "contains",
    "include": "contains",
    "startswith": "starts_with",
    "starts": "starts_with",
    "endswith": "ends_with",
    "ends": "ends_with",
    "match": "matches",
    "has": "has any",
    "gt": ">",
    "gte": ">=",
    "lt": "<",
    "lte": "<=",
    "ne": "!=",
    "neq": "!=",
}
_AGGREGATES: Final = frozenset(ast.AGGREGATE_FUNCS)
_EVENT_ONLY: Final = "conditions inside 'where' are about the event's properties"


class _Abort(Exception):
    """Stops parsing at once (nesting too deep): nothing after it is worth reporting."""

    def __init__(self, error: RuleSyntaxError) -> None:
        super().__init__(error.message)
        self.error = error


class _Parser:
    def __init__(self, source: str, *, collect: bool) -> None:
        self.source = source
        self.tokens = tokenize(source)
        self.pos = 0
        self.depth = 0
        self.collect = collect
        self.errors: list[RuleSyntaxError] = []

    # --- token helpers ---------------------------------------------------------------------

    @property
    def tok(self) -> Token:
        return self.tokens[self.pos]

    def peek(self, ahead: int = 1) -> Token:
        return self.tokens[min(self.pos + ahead, len(self.tokens) - 1)]

    def advance(self) -> Token:
        tok = self.tokens[self.pos]
        if tok.kind != EOF:
            self.pos += 1
        return tok

    def fail(
        self,
        message: str,
        tok: Token | None = None,
        *,
        expected: tuple[str, ...] = (),
        suggestion: str | None = None,
        span: Span | None = None,
    ) -> NoReturn:
        where = span if span is not None else (tok or self.tok).span
        raise RuleSyntaxError(message, self.source, where, expected=expected, suggestion=suggestion)

    def fail_after(self, prev: Token, what: str, expected: tuple[str, ...] = ()) -> NoReturn:
        """Fail at the current token with "expected WHAT after 'PREV'"."""
        found = self.tok
        suffix = "" if found.kind == EOF else f", found {found.describe()}"
        self.fail(f"expected {what} after '{prev.text}'{suffix}", expected=expected or (what,))

    def expect_word(self, word: str, after: Token) -> Token:
        if not self.tok.is_word(word):
            self.fail_after(after, f"'{word}'")
        return self.advance()

    def expect_punct(self, text: str, after: Token) -> Token:
        if not (self.tok.kind == PUNCT and self.tok.text == text):
            self.fail_after(after, f"'{text}'")
        return self.advance()

    def enter(self, tok: Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _Abort(
                RuleSyntaxError(f"rule nests deeper than {MAX_DEPTH} levels", self.source, tok.span)
            )

    def report(self, error: RuleSyntaxError) -> None:
        """Record ``error`` and go on (collecting mode) or raise it."""
        if not self.collect:
            raise error
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(error)

    # --- boolean structure -----------------------------------------------------------------

    def parse_rule(self) -> ast.Expr | None:
        expr = self.parse_binary(0, event_ctx=False)
        if self.tok.kind != EOF:
            tok = self.tok
            hint = None
            if tok.text == ")":
                message = "unmatched ')'"
            elif tok.kind == NAME and tok.text.lower() in BINARY_OPERATORS:
                hint = tok.text.lower()
                message = (
                    f"expected 'and', 'or' or the end of the rule, found {tok.describe()}"
                    " (keywords are lower-case)"
                )
            elif tok.is_word("within"):
                message, hint = self._within_message()
            else:
                message = f"expected 'and', 'or' or the end of the rule, found {tok.describe()}"
            self.report(
                RuleSyntaxError(
                    message,
                    self.source,
                    tok.span,
                    expected=("'and'", "'or'", "end of rule"),
                    suggestion=hint,
                )
            )
        return expr

    def _within_message(self) -> tuple[str, str | None]:
        nxt = self.peek()
        example = nxt.text if nxt.kind == DURATION else "7d"
        hint = f"in last {nxt.text}" if nxt.kind == DURATION else None
        return (
            f"'within' limits a sequence (did A then B within {example});"
            " for a single event use 'in last'",
            hint,
        )

    def parse_binary(self, min_power: int, *, event_ctx: bool) -> ast.Expr:
        """Precedence climbing over :data:`BINARY_OPERATORS`; same-operator runs are flattened."""
        left = self.parse_operand(event_ctx=event_ctx)
        while True:
            tok = self.tok
            entry = BINARY_OPERATORS.get(tok.text) if tok.kind == NAME else None
            if entry is None or entry[0] <= min_power:
                return left
            power, node_cls = entry
            items = [left]
            while self.tok.kind == NAME and self.tok.text == tok.text:
                op_tok = self.advance()
                if (
                    self.tok.kind == EOF
                    or (self.tok.kind == NAME and self.tok.text in BINARY_OPERATORS)
                    or (self.tok.kind == PUNCT and self.tok.text == ")")
                ):
                    found = self.tok
                    suffix = "" if found.kind == EOF else f", found {found.describe()}"
                    self.report(
                        RuleSyntaxError(
                            f"expected a condition after '{op_tok.text}'{suffix}",
                            self.source,
                            found.span,
                            expected=("a condition",),
                        )
                    )
                    continue
                items.append(self.parse_binary(power, event_ctx=event_ctx))
            if len(items) == 1:  # only reachable while collecting errors
                continue
            start = _span_of(items[0]).start
            end = _span_of(items[-1]).end
            left = node_cls(tuple(items), span=Span(start, end))

    def parse_operand(self, *, event_ctx: bool) -> ast.Expr:
        """One operand of and/or; in collecting mode a bad operand is recorded and skipped."""
        if not self.collect:
            return self.parse_unary(event_ctx=event_ctx)
        start = self.pos
        try:
            return self.parse_unary(event_ctx=event_ctx)
        except RuleSyntaxError as error:
            if not any(e.span == error.span and e.message == error.message for e in self.errors):
                self.report(error)
            self.synchronize(start)
            return ast.IsKnown("?", span=Span(0, 0))

    def synchronize(self, start: int) -> None:
        """Skip to the next and/or/')' at this nesting level (or the end)."""
        tok = self.tok
        closes = (tok.kind == PUNCT and tok.text == ")") or (
            tok.kind == NAME and tok.text in BINARY_OPERATORS
        )
        if self.pos == start and tok.kind != EOF and not closes:
            self.advance()
        depth = 0
        while self.tok.kind != EOF:
            tok = self.tok
            if tok.kind == PUNCT and tok.text == "(":
                depth += 1
            elif tok.kind == PUNCT and tok.text == ")":
                if depth == 0:
                    return
                depth -= 1
            elif depth == 0 and tok.kind == NAME and tok.text in BINARY_OPERATORS:
                return
            self.advance()

    def parse_unary(self, *, event_ctx: bool) -> ast.Expr:
        tok = self.tok
        if tok.is_word("not"):
            if self.peek().is_word("in") and self.peek(2).is_word("segment") and not event_ctx:
                self.advance()
                return self.parse_in_segment(negated=True, start=tok)
            self.advance()
            self.enter(tok)
            operand = self.parse_unary(event_ctx=event_ctx)
            self.depth -= 1
            return ast.Not(operand, span=tok.span.cover(_span_of(operand)))
        if tok.kind == PUNCT and tok.text == "(":
            self.advance()
            self.enter(tok)
            if self.tok.kind == PUNCT and self.tok.text == ")":
                self.fail_after(tok, "a condition")
            inner = self.parse_binary(0, event_ctx=event_ctx)
            if not (self.tok.kind == PUNCT and self.tok.text == ")"):
                found = self.tok
                suffix = "" if found.kind == EOF else f", found {found.describe()}"
                self.fail(
                    f"expected ')' to close the '(' at column {tok.start + 1}{suffix}",
                    expected=("')'",),
                )
            close = self.advance()
            self.depth -= 1
            return attrs.evolve(inner, span=tok.span.cover(close.span))
        return self.parse_predicate(event_ctx=event_ctx)

    # --- predicates ------------------------------------------------------------------------

    def parse_predicate(self, *, event_ctx: bool) -> ast.Expr:
        tok = self.tok
        nxt = self.peek()
        opens_call = nxt.kind == PUNCT and nxt.text == "("
        if tok.kind == NAME:
            word = tok.text
            special = (
                word == "did"
                or (word in _AGGREGATES and opens_call)
                or (word == "bucket" and opens_call)
                or (word == "in" and nxt.is_word("segment"))
            )
            if special and event_ctx:
                what, span = word, tok.span
                if word == "in":
                    what, span = "in segment", tok.span.cover(nxt.span)
                self.fail(f"'{what}' cannot be used inside 'where': {_EVENT_ONLY}", span=span)
            if word == "did":
                return self.parse_did()
            if word in _AGGREGATES and opens_call:
                return self.parse_aggregate()
            if word == "bucket" and opens_call:
                return self.parse_bucket()
            if word == "in" and nxt.is_word("segment"):
                return self.parse_in_segment(negated=False, start=tok)
            if word in ("and", "or", "not", "true", "false"):
                self.fail(
                    f"expected a condition, found {tok.describe()}", expected=("a condition",)
                )
        if tok.kind in (NAME, QNAME):
            self.advance()
            return self.parse_field_predicate(tok)
        if tok.kind == EOF:
            if self.pos == 0:
                raise RuleSyntaxError(
                    "the rule is empty", self.source, None, expected=("a condition",)
                )
            self.fail("expected a condition, found the end of the rule", expected=("a condition",))
        hint = None
        if tok.kind == STRING:
            hint = f"`{tok.value}`" if tok.value else None
            self.fail(
                f"expected a condition, found the string {tok.describe()}"
                " (write names in backquotes, not quotes)",
                suggestion=hint,
            )
        self.fail(f"expected a condition, found {tok.describe()}", expected=("a condition",))

    def parse_field_predicate(self, name_tok: Token) -> ast.Expr:
        field = name_tok.value
        tok = self.tok
        start = name_tok.start

        def done(node_fn: Callable[[Span], ast.Expr]) -> ast.Expr:
            return node_fn(Span(start, self.tokens[self.pos - 1].end))

        if tok.kind == OP:
            self.advance()
            value = self.parse_literal(tok, "a value")
            return done(lambda s: ast.Compare(field, tok.value, value, span=s))
        negated = False
        if tok.is_word("not"):
            nxt = self.peek()
            if nxt.kind == NAME and nxt.text in (
                "in",
                "between",
                "matches",
                *_STRING_OPS,
            ):
                negated = True
                self.advance()
                tok = self.tok
            else:
                self.advance()
                self.fail_after(
                    tok,
                    "'in', 'between', 'contains', 'starts_with', 'ends_with' or 'matches'",
                )
        if tok.is_word("in"):
            self.advance()
            if self.tok.is_word("last"):
                self.advance()
                dur = self.parse_duration(self.tokens[self.pos - 1])
                return done(lambda s: ast.InLast(field, dur, negated, span=s))
            if self.tok.is_word("segment") and not negated:
                self.fail(
                    "'in segment' takes no attribute before it: write in segment \"name\"",
                    span=Span(start, self.tok.end),
                )
            values = self.parse_list(tok)
            return done(lambda s: ast.InList(field, values, negated, span=s))
        if tok.is_word("between"):
            self.advance()
            low = self.parse_literal(tok, "a value")
            and_tok = self.expect_word("and", self.tokens[self.pos - 1])
            high = self.parse_literal(and_tok, "a value")
            return done(lambda s: ast.Between(field, low, high, negated, span=s))
        if tok.kind == NAME and tok.text in _STRING_OPS:
            self.advance()
            op, ci = _STRING_OPS[tok.text]
            if self.tok.kind != STRING:
                self.fail_after(tok, "a string")
            text = self.advance().value
            return done(lambda s: ast.StringOp(field, op, text, negated, ci, span=s))
        if tok.is_word("matches"):
            self.advance()
            if self.tok.kind != REGEX:
                hint = None
                if self.tok.kind == STRING:
                    hint = f"/{self.tok.value}/"
                    self.fail(
                        "a regex is written between slashes, like /^a.*z$/i",
                        suggestion=hint,
                    )
                self.fail_after(tok, "a regex such as /^abc/i")
            regex_tok = self.advance()
            pattern, flags = regex_tok.value
            _check_regex(self, pattern, flags, regex_tok)
            return done(lambda s: ast.Matches(field, pattern, flags, negated, span=s))
        if negated:
            self.fail_after(self.tokens[self.pos - 1], "'in', 'between' or a string operator")
        if tok.is_word("is"):
            self.advance()
            is_not = False
            if self.tok.is_word("not"):
                self.advance()
                is_not = True
            if not self.tok.is_word("known"):
                self.fail_after(self.tokens[self.pos - 1], "'known'")
            self.advance()
            return done(lambda s: ast.IsKnown(field, is_not, span=s))
        if tok.is_word("has"):
            self.advance()
            if not (self.tok.kind == NAME and self.tok.text in ast.HAS_MODES):
                self.fail_after(tok, "'any', 'all' or 'none'")
            mode_tok = self.advance()
            values = self.parse_list(mode_tok)
            return done(lambda s: ast.HasList(field, mode_tok.text, values, span=s))
        if tok.kind == NAME and tok.text in ("before", "after"):
            self.advance()
            if self.tok.kind != TIME:
                self.fail_after(tok, "a date such as @2024-01-31")
            when = self.advance().value
            return done(lambda s: ast.TimeCompare(field, tok.text, when, span=s))
        if tok.is_word("more"):
            self.advance()
            than = self.expect_word("than", tok)
            dur = self.parse_duration(than)
            self.expect_word("ago", self.tokens[self.pos - 1])
            return done(lambda s: ast.MoreThanAgo(field, dur, span=s))
        suffix = "" if tok.kind == EOF else f", found {tok.describe()}"
        hint = _WORD_HINTS.get(tok.text.lower()) if tok.kind == NAME else None
        message = f"expected an operator after '{name_tok.text}'{suffix}"
        if tok.kind == NAME and hint is not None:
            message = f"unknown operator '{tok.text}'"
        self.fail(message, expected=_FIELD_OPERATOR_WORDS, suggestion=hint)

    def parse_in_segment(self, *, negated: bool, start: Token) -> ast.Expr:
        in_tok = self.advance()  # 'in'
        seg_tok = self.expect_word("segment", in_tok)
        if self.tok.kind != STRING:
            self.fail_after(seg_tok, "a segment name in quotes")
        name = self.advance()
        if not name.value:
            self.fail("a segment name cannot be empty", name)
        return ast.InSegment(name.value, negated, span=Span(start.start, name.end))

    # --- behavioural predicates ------------------------------------------------------------

    def parse_event_name(self, after: Token) -> Token:
        tok = self.tok
        if tok.kind not in (NAME, QNAME) or (
            tok.kind == NAME and tok.text in ("and", "or", "not", "where", "then", "within")
        ):
            self.fail_after(after, "an event name")
        return self.advance()

    def parse_where(self) -> ast.Expr | None:
        if not self.tok.is_word("where"):
            return None
        where_tok = self.advance()
        if self.tok.kind == EOF:
            self.fail_after(where_tok, "a condition")
        self.enter(where_tok)
        expr = self.parse_unary(event_ctx=True)
        self.depth -= 1
        return expr

    def parse_window(
        self, *, required: bool = False, after: Token | None = None
    ) -> ast.Window | None:
        tok = self.tok
        if tok.is_word("in") and self.peek().is_word("last"):
            self.advance()
            last = self.advance()
            dur = self.parse_duration(last)
            return ast.LastWindow(dur, span=Span(tok.start, self.tokens[self.pos - 1].end))
        if tok.is_word("between"):
            self.advance()
            if self.tok.kind != TIME:
                self.fail_after(tok, "a date such as @2024-01-31")
            start = self.advance().value
            and_tok = self.expect_word("and", self.tokens[self.pos - 1])
            if self.tok.kind != TIME:
                self.fail_after(and_tok, "a date such as @2024-01-31")
            end = self.advance().value
            return ast.BetweenWindow(
                start, end, span=Span(tok.start, self.tokens[self.pos - 1].end)
            )
        if required:
            assert after is not None
            self.fail_after(after, "'in last' and a duration, or 'between' two dates")
        return None

    def parse_did(self) -> ast.Expr:
        did = self.advance()
        event_tok = self.parse_event_name(did)
        where = self.parse_where()
        if self.tok.is_word("then"):
            steps = [
                ast.SeqStep(
                    event_tok.value,
                    where,
                    span=Span(event_tok.start, self.tokens[self.pos - 1].end),
                )
            ]
            while self.tok.is_word("then"):
                then = self.advance()
                step_tok = self.parse_event_name(then)
                step_where = self.parse_where()
                steps.append(
                    ast.SeqStep(
                        step_tok.value,
                        step_where,
                        span=Span(step_tok.start, self.tokens[self.pos - 1].end),
                    )
                )
            if not self.tok.is_word("within"):
                self.fail_after(
                    self.tokens[self.pos - 1],
                    "'within' and a duration (a sequence needs a time limit)",
                )
            within_tok = self.advance()
            within = self.parse_duration(within_tok)
            window = self.parse_window()
            return ast.Sequence(
                tuple(steps), within, window, span=Span(did.start, self.tokens[self.pos - 1].end)
            )
        if self.tok.is_word("for"):
            for_tok = self.advance()
            prev = for_tok
            for word in ("the", "first", "time"):
                prev = self.expect_word(word, prev)
            window = self.parse_window(required=True, after=prev)
            assert window is not None
            return ast.FirstTime(
                event_tok.value, where, window, span=Span(did.start, self.tokens[self.pos - 1].end)
            )
        if self.tok.is_word("within"):
            message, hint = self._within_message()
            nxt = self.peek()
            end = nxt.end if nxt.kind == DURATION else self.tok.end
            self.fail(message, suggestion=hint, span=Span(self.tok.start, end))
        count_op: str | None = None
        count: int | None = None
        if self.tok.kind == OP:
            op_tok = self.advance()
            if self.tok.kind != NUMBER or not isinstance(self.tok.value, int) or self.tok.value < 0:
                self.fail_after(op_tok, "a whole number of times")
            count = self.advance().value
            count_op = op_tok.value
            if not self.tok.is_word("times", "time"):
                self.fail_after(self.tokens[self.pos - 1], "'times'")
            self.advance()
        window = self.parse_window()
        return ast.Did(
            event_tok.value,
            where,
            count_op,
            count,
            window,
            span=Span(did.start, self.tokens[self.pos - 1].end),
        )

    def parse_aggregate(self) -> ast.Expr:
        func_tok = self.advance()
        func = func_tok.text
        open_tok = self.advance()  # '('
        event_tok = self.parse_event_name(open_tok)
        prop: str | None = None
        if self.tok.kind == PUNCT and self.tok.text == ".":
            dot = self.advance()
            if self.tok.kind not in (NAME, QNAME):
                self.fail_after(dot, "a property name")
            prop_tok = self.advance()
            prop = prop_tok.value
            if func == "count":
                self.fail(
                    f"count() counts events and takes no property: write count({event_tok.text})",
                    span=Span(event_tok.start, prop_tok.end),
                )
        elif func != "count":
            self.fail(
                f"{func}() needs a property: write {func}({event_tok.text}.property)",
                span=event_tok.span,
            )
        where = self.parse_where()
        window = self.parse_window()
        if not (self.tok.kind == PUNCT and self.tok.text == ")"):
            self.fail_after(self.tokens[self.pos - 1], "')'")
        self.advance()
        if self.tok.kind != OP:
            self.fail_after(self.tokens[self.pos - 1], "a comparison such as '>= 100'")
        op_tok = self.advance()
        if self.tok.kind != NUMBER:
            self.fail_after(op_tok, "a number")
        value = self.advance().value
        return ast.Aggregate(
            func,
            event_tok.value,
            prop,
            where,
            window,
            op_tok.value,
            value,
            span=Span(func_tok.start, self.tokens[self.pos - 1].end),
        )

    def parse_bucket(self) -> ast.Expr:
        bucket_tok = self.advance()
        open_tok = self.advance()
        if self.tok.kind != STRING:
            self.fail_after(open_tok, "a salt string")
        salt = self.advance().value
        self.expect_punct(")", self.tokens[self.pos - 1])
        in_tok = self.expect_word("in", self.tokens[self.pos - 1])
        low_tok = self.tok
        if low_tok.kind != NUMBER or not isinstance(low_tok.value, int):
            self.fail_after(in_tok, "a bucket range such as 0..4999")
        self.advance()
        dots = self.expect_punct("..", low_tok)
        high_tok = self.tok
        if high_tok.kind != NUMBER or not isinstance(high_tok.value, int):
            self.fail_after(dots, "a whole number")
        self.advance()
        low, high = low_tok.value, high_tok.value
        if not 0 <= low <= high < BUCKETS:
            self.fail(
                f"bucket range must satisfy 0 <= low <= high <= {BUCKETS - 1}, got {low}..{high}",
                span=Span(low_tok.start, high_tok.end),
            )
        return ast.Bucket(salt, low, high, span=Span(bucket_tok.start, high_tok.end))

    # --- literals --------------------------------------------------------------------------

    def parse_literal(self, after: Token, what: str) -> ast.Value:
        tok = self.tok
        if tok.kind in (STRING, NUMBER, TIME):
            self.advance()
            value: ast.Value = tok.value
            return value
        if tok.is_word("true", "false"):
            self.advance()
            return tok.text == "true"
        if tok.kind == DURATION:
            self.fail(
                f"a duration such as {tok.text} is not a value here"
                " (use 'in last' or 'more than … ago')"
            )
        if tok.kind in (NAME, QNAME) and tok.kind != EOF and tok.text not in ("and", "or"):
            if tok.kind == NAME and tok.text.lower() in ("true", "false"):
                self.fail(
                    f"expected {what} after '{after.text}', found the name {tok.describe()}"
                    " (booleans are lower-case)",
                    suggestion=tok.text.lower(),
                )
            if tok.kind == NAME and tok.text in ("null", "None", "nil"):
                self.fail(
                    f"there is no {tok.text}: use 'is known' or 'is not known'",
                    suggestion="is not known",
                )
            self.fail(
                f"expected {what} after '{after.text}', found the name {tok.describe()}"
                " (strings need quotes)",
                suggestion=f'"{tok.value}"',
            )
        self.fail_after(after, what)

    def parse_list(self, after: Token) -> tuple[ast.Value, ...]:
        if not (self.tok.kind == PUNCT and self.tok.text == "["):
            self.fail_after(after, 'a list such as ["a", "b"]')
        open_tok = self.advance()
        values: list[ast.Value] = []
        while not (self.tok.kind == PUNCT and self.tok.text == "]"):
            prev = self.tokens[self.pos - 1]
            values.append(self.parse_literal(prev, "a value"))
            if self.tok.kind == PUNCT and self.tok.text == ",":
                self.advance()
                continue
            if not (self.tok.kind == PUNCT and self.tok.text == "]"):
                found = self.tok
                suffix = "" if found.kind == EOF else f", found {found.describe()}"
                self.fail(
                    f"expected ',' or ']' in the list opened at column {open_tok.start + 1}{suffix}",
                    expected=("','", "']'"),
                )
        self.advance()
        return tuple(values)

    def parse_duration(self, after: Token) -> Duration:
        if self.tok.kind != DURATION:
            if self.tok.kind == NUMBER:
                self.fail(
                    f"a duration needs a unit: {self.tok.text}d, {self.tok.text}h, {self.tok.text}mo…",
                    suggestion=f"{self.tok.text}d",
                )
            self.fail_after(after, "a duration such as 30d")
        value: Duration = self.advance().value
        return value


def _check_regex(parser: _Parser, pattern: str, flags: str, tok: Token) -> None:
    try:
        compile_regex(pattern, flags)
    except ValueError as exc:
        parser.fail(str(exc), tok)


def compile_regex(pattern: str, flags: str) -> re.Pattern[str]:
    """Compile a rule's regex, or raise :class:`ValueError` saying why it is refused.

    Patterns longer than :data:`MAX_REGEX_LENGTH` are refused, and so are patterns
    that :mod:`re` warns will change meaning in a future Python (such as ``[[a]``).

    >>> compile_regex("^a", "i").flags & re.IGNORECASE != 0
    True
    >>> compile_regex("[[a]", "")
    Traceback (most recent call last):
    ...
    ValueError: invalid regex: Possible nested set at position 1
    """
    if len(pattern) > MAX_REGEX_LENGTH:
        raise ValueError(
            f"regex is {len(pattern)} characters long; the limit is {MAX_REGEX_LENGTH}"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        try:
            return re.compile(pattern, regex_flags(flags))
        except (re.error, FutureWarning, RecursionError, OverflowError, ValueError) as exc:
            raise ValueError(f"invalid regex: {exc}") from None


def regex_flags(flags: str) -> int:
    """Translate ``"ims"``-style flags to :mod:`re` flags.

    >>> regex_flags("i") == re.IGNORECASE
    True
    """
    result = 0
    for f in flags:
        result |= {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL}[f]
    return result


def _span_of(node: ast.Node) -> Span:
    return node.span


def parse_expr(source: str) -> ast.Expr:
    """Parse rule text into an expression; raise the first :class:`RuleSyntaxError`."""
    if not isinstance(source, str):
        raise TypeError(f"rule text must be a str, got {type(source).__name__}")
    parser = _Parser(source, collect=False)
    try:
        expr = parser.parse_rule()
    except _Abort as abort:
        raise abort.error from None
    assert expr is not None
    return expr


def parse_expr_all(source: str) -> tuple[ast.Expr | None, list[RuleSyntaxError]]:
    """Parse and collect every syntax error found (up to :data:`MAX_ERRORS`)."""
    try:
        parser = _Parser(source, collect=True)
    except RuleSyntaxError as error:  # tokenizer errors stop at once
        return None, [error]
    try:
        expr = parser.parse_rule()
    except _Abort as abort:
        parser.errors.append(abort.error)
        expr = None
    except RuleSyntaxError as error:  # an error outside any and/or operand
        parser.errors.append(error)
        expr = None
    errors = sorted(parser.errors, key=lambda e: (e.span or Span(0, 0)).start)
    return (expr if not errors else None), errors
