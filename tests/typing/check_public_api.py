"""Static typing checks of the public API, run with ``mypy --strict --warn-unused-ignores``.

Each ``# type: ignore[...]`` line is a misuse that mypy must reject; if segkit's
annotations ever stopped catching it, the ignore would be unused and mypy would fail.
This module is also imported (harmlessly) by pytest's doctest collection.
"""

from __future__ import annotations

from datetime import datetime, timezone

import segkit as sk


def _positive() -> None:
    schema = sk.Schema(attributes={"age": "int"}, events={"buy": {"amount": "float"}})
    rule: sk.Rule = sk.parse("age > 3") & (sk.attr("age") < 90)
    built: sk.Rule = sk.did("buy").where("amount > 1").in_last("30d").to_rule()
    pred: sk.Predicate = sk.compile_predicate(rule | built, schema)
    ok: bool = pred({"age": 4}, [], now=datetime(2024, 1, 1, tzinfo=timezone.utc))
    text: str = str(rule)
    as_dict = rule.to_dict()
    again: sk.Rule = sk.Rule.from_dict(as_dict)
    errors: list[sk.RuleError] = list(sk.iter_errors(text, schema))
    del ok, again, errors


def _negative() -> None:
    sk.parse(3)  # type: ignore[arg-type]
    sk.compile_predicate("age > 3", schema="not a schema")  # type: ignore[arg-type]
    sk.attr("age").between(1)  # type: ignore[call-arg]
    sk.Event("c-1", "buy")  # type: ignore[call-arg]
