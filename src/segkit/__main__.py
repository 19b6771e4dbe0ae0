"""Command line: ``python -m segkit demo`` and ``python -m segkit check "rule"``.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import TextIO

import segkit as sk
from segkit.datasets import Dataset, generate

__all__ = ["DEMO_RULES", "main", "run_check", "run_demo"]

#: The rules the demo evaluates, with a one-line description each.
DEMO_RULES: tuple[tuple[str, str], ...] = (
    ('plan in ["pro", "enterprise"] and ltv > 500', "high-value paying plans"),
    ('country = "FR" and age between 29 and 44', "French millennials"),
    ("did cart_abandoned >= 2 times in last 30d", "repeat cart abandoners"),
    ("did add_to_cart then purchase within 1d", "bought within a day of carting"),
    ("sum(purchase.amount in last 90d) > 200", "spent over 200 in 90 days"),
    ("did purchase for the first time in last 30d", "new buyers this month"),
    ('tags has any ["vip", "early_adopter"] and not is_customer = true', "VIPs not yet customers"),
    ('did page_view where url starts_with "/pricing" and not did purchase', "pricing lurkers"),
    ('bucket("demo-holdout") in 0..999', "a deterministic 10% holdout"),
)


def run_demo(out: TextIO | None = None, *, n_profiles: int = 300, seed: int = 7) -> int:
    """Print a small segment analysis of built-in synthetic data; return the exit code."""
    out = out if out is not None else sys.stdout
    data = generate(n_profiles, seed=seed)
    schema = data.schema
    events_by_key: dict[str, list[sk.Event]] = defaultdict(list)
    for event in data.events:
        events_by_key[event.key].append(event)
    n = len(data.profiles)
    w = out.write
    w(f"segkit {sk.__version__} demo: {n} synthetic profiles, {len(data.events):,} events\n")
    w(
        f"as of {data.now:%Y-%m-%d %H:%M} UTC (segkit.datasets.generate({n_profiles}, seed={seed}))\n\n"
    )
    w(
        f"schema: {len(schema.attributes)} attributes ({', '.join(schema.attributes)})\n"
        f"        {len(schema.events)} event types ({', '.join(schema.events)})\n\n"
    )
    header = f"{'segment':<32} {'members':>7} {'share':>6}  first members"
    w(header + "\n" + "-" * len(header) + "\n")
    for text, label in DEMO_RULES:
        pred = sk.compile_predicate(text, schema)
        keys = pred.filter(data.profiles, lambda key: events_by_key.get(key, ()), now=data.now)
        share = len(keys) / n if n else 0.0
        w(f"{label:<32} {len(keys):>7} {share:>6.1%}  {', '.join(keys[:3])}\n")
        w(f"  rule: {pred.rule}\n")
    _analyse(w, data)
    w("\nThe same rule from the Python builder:\n")
    built = sk.did("cart_abandoned").times(">=", 2).in_last("30d")
    w(f"  sk.did('cart_abandoned').times('>=', 2).in_last('30d')  ->  {built}\n")
    w(f"  equal to the parsed rule: {built == sk.parse(DEMO_RULES[2][0])}\n")
    w("\nErrors point at the problem:\n\n")
    for bad in ('contry = "FR" and age >= 30', "did cart_abandoned >= 2 times in last 5m"):
        try:
            sk.check(bad, schema)
        except sk.RuleError as error:
            w(f"{type(error).__name__}: {error}\n\n")
    return 0


def _analyse(w: Callable[[str], object], data: Dataset) -> None:
    """The analysis part of the demo: an Engine over the same data, then its reports."""
    engine = sk.Engine(data.schema, clock=lambda: data.now)
    engine.upsert_many(data.iter_records())
    engine.track_many(data.events)
    names = {}
    for text, label in DEMO_RULES:
        name = label.replace(" ", "_").replace("-", "_")
        engine.define(name, text)
        names[label] = name
    trio = [
        names["high-value paying plans"],
        names["spent over 200 in 90 days"],
        names["bought within a day of carting"],
    ]
    w("\nHow three segments overlap (engine.overlap):\n")
    w(engine.overlap(trio).table() + "\n")
    w("\nA 50/50 split of the carting buyers (engine.split), with its balance check:\n")
    w(engine.split(trio[2], {"control": 50, "test": 50}, salt="demo-exp").table() + "\n")
    w("\nKPIs compared across segments (engine.compare):\n")
    kpis = [sk.metrics.count(), sk.metrics.mean("ltv"), sk.metrics.rate("is_customer")]
    w(engine.compare(trio, kpis).table() + "\n")
    steps = ["page_view", "add_to_cart", "checkout_started", "purchase"]
    journey = sk.Funnel(steps, window=timedelta(days=30))
    reports = engine.funnel(journey, [names["pricing lurkers"]])
    for segment, report in reports.items():
        w(f"\nJourney for {segment!r} (engine.funnel, 30-day window):\n")
        w(report.table() + "\n")


def run_check(text: str, schema_path: str | None, out: TextIO | None = None) -> int:
    """Print the canonical form of ``text`` (exit 0) or every error with carets (exit 1)."""
    out = out if out is not None else sys.stdout
    schema = None
    if schema_path is not None:
        try:
            with open(schema_path, encoding="utf-8") as f:
                schema = sk.Schema.from_dict(json.load(f))
        except (OSError, ValueError) as exc:
            out.write(f"cannot read schema {schema_path!r}: {exc}\n")
            return 2
    errors = list(sk.iter_errors(text, schema))
    if errors:
        for error in errors:
            out.write(f"{type(error).__name__}: {error}\n")
        return 1
    out.write(str(sk.parse(text)) + "\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m segkit``."""
    parser = argparse.ArgumentParser(
        prog="python -m segkit", description="segkit: audience segmentation and segment analytics."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser("demo", help="print a segment analysis of built-in synthetic data")
    demo.add_argument("--profiles", type=int, default=300, help="number of profiles (default 300)")
    demo.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    check = sub.add_parser("check", help="check a rule; print its canonical form or its errors")
    check.add_argument("rule", help="the rule text")
    check.add_argument("--schema", help="a JSON file in Schema.to_dict() form")
    args = parser.parse_args(argv)
    if args.command == "demo":
        return run_demo(n_profiles=args.profiles, seed=args.seed)
    if args.command == "check":
        return run_check(args.rule, args.schema)
    parser.print_help()
    return 0


def _run() -> int:
    try:
        return main()
    except BrokenPipeError:  # e.g. `python -m segkit demo | head`: stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    raise SystemExit(_run())
