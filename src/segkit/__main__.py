"""Command line: ``python -m segkit demo`` and ``python -m segkit check "rule"``.

``python -m segkit --help`` lists the commands; ``python -m segkit COMMAND --help``
describes one. Exit codes: 0 success, 1 the rule has errors (``check``), 2 bad
usage (no command, an unknown option, an unreadable schema file).

>>> main(["check", "age>=18"])
age >= 18
0

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any, Final, TextIO

import segkit as sk
from segkit.datasets import generate
from segkit.progress import ProgressLike, tqdm_callback
from segkit.progress import start as start_progress

__all__ = ["DEMO_SEGMENTS", "main", "run_check", "run_demo"]

#: The demo's segments: ``(name, kind, rule, description)``, defined in this order.
DEMO_SEGMENTS: Final[tuple[tuple[str, str, str, str], ...]] = (
    ("high_value", "demographic", 'plan in ["pro", "enterprise"] and ltv > 500', "high-value paying plans"),
    ("fr_millennials", "demographic", 'country = "FR" and age between 29 and 44', "French millennials"),
    ("vip_prospects", "demographic", 'tags has any ["vip", "early_adopter"] and is_customer = false', "VIPs not yet customers"),
    ("promoters", "demographic", "nps >= 9", "answered the survey with 9 or 10"),
    ("repeat_abandoners", "behavioural", "did cart_abandoned >= 2 times in last 30d", "abandoned 2+ carts this month"),
    ("quick_buyers", "behavioural", "did add_to_cart then purchase within 1d", "bought within a day of carting"),
    ("big_spenders", "behavioural", "sum(purchase.amount in last 90d) > 200", "spent over 200 in 90 days"),
    ("recent_buyers", "behavioural", "did purchase in last 7d", "bought this week"),
    ("pricing_lurkers", "behavioural", 'not did purchase and did page_view where url starts_with "/pricing"', "saw pricing, never bought"),
    ("win_back", "segment of segments", 'in segment "high_value" and not in segment "big_spenders"', "high value, quiet for 90 days"),
    ("hot_leads", "segment of segments", 'in segment "pricing_lurkers" and in segment "repeat_abandoners"', "lurkers who keep abandoning"),
    ("holdout", "sampling", 'bucket("demo-holdout") in 0..999', "a deterministic 10% holdout"),
)  # fmt: skip

#: The segments the overlap, journey and KPI sections compare.
_OVERLAP: Final = ("high_value", "big_spenders", "quick_buyers")
_JOURNEYS: Final = ("fr_millennials", "vip_prospects")
_KPIS: Final = ("high_value", "win_back", "quick_buyers", "promoters", "holdout")
_SPLIT: Final = "quick_buyers"
_JOURNEY_STEPS: Final = ("page_view", "add_to_cart", "checkout_started", "purchase")
#: The simulated history: segments defined this many days before ``now``, refreshed on
#: the days of ``_REFRESH_DAYS`` (days before ``now``); an import lands the day before.
_HISTORY_DAYS: Final = 6
_REFRESH_DAYS: Final = (2, 0)
_IMPORT: Final = "webinar_import"

DEFAULT_SIZE: Final = 50_000
DEFAULT_SEED: Final = 7
#: Events per profile of the demo's dataset (about 470,000 events for 50,000 profiles).
EVENTS_PER_PROFILE: Final = 11.0


def _bar_factory(enabled: bool, err: TextIO) -> Callable[[str], ProgressLike]:
    """``bar(desc)``: a progress callback on ``err`` (tqdm when installed), or None."""

    def bar(desc: str) -> ProgressLike:
        if not enabled:
            return None
        try:
            return tqdm_callback(desc, file=err, leave=False)
        except ImportError:
            pass

        def line(done: int, total: int | None) -> None:
            shown = f"{done:,}" if total is None else f"{done:,}/{total:,}"
            end = "\r" + " " * (len(desc) + 30) + "\r" if total == done else ""
            err.write(f"\r{desc}: {shown}{end}")
            err.flush()

        return line

    return bar


def run_demo(
    out: TextIO | None = None,
    *,
    size: int = DEFAULT_SIZE,
    seed: int = DEFAULT_SEED,
    as_json: bool = False,
    progress: bool | None = None,
    err: TextIO | None = None,
) -> int:
    """Print a tour of segkit on built-in synthetic data; return the exit code (0).

    ``size`` profiles (about 9 events each) are generated from ``seed``; the
    sections are plain-text tables, or one JSON document with ``as_json``.
    ``progress`` shows progress bars on ``err`` (default stderr) during the slow
    steps; by default only when ``err`` is a terminal.

    >>> import io
    >>> out = io.StringIO()
    >>> run_demo(out, size=300, seed=1)
    0
    >>> print(out.getvalue()[:52])
    segkit ... demo: 300 synthetic profiles, 2,873 events

    .. versionadded:: 0.1.0
    """
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    if progress is None:
        progress = err.isatty()
    # a short-lived process that builds a million objects and frees none of them early:
    # the cyclic garbage collector would only slow it down
    collecting = gc.isenabled()
    gc.disable()
    try:
        doc, text = _tour(size, seed, _bar_factory(progress, err))
    finally:
        if collecting:
            gc.enable()
    if as_json:
        out.write(json.dumps(doc, indent=2) + "\n")
    else:
        out.write(text)
    return 0


def _tour(size: int, seed: int, bar: Callable[[str], ProgressLike]) -> tuple[dict[str, Any], str]:
    """Every section of the demo, as a JSON-safe document and as text."""
    data = generate(size, seed=seed, events_per_profile=EVENTS_PER_PROFILE)
    day = timedelta(days=1)
    clock = [data.now - _HISTORY_DAYS * day]
    engine = sk.Engine(data.schema, clock=lambda: clock[0])
    engine.upsert_many(data.iter_records(), progress=bar("loading profiles"))
    engine.track_many(data.events, progress=bar("loading events"))
    doc: dict[str, Any] = {"segkit": sk.__version__, "size": size, "seed": seed}
    parts: list[str] = []
    w = parts.append

    # --- the dataset
    counts: dict[str, int] = dict.fromkeys(data.schema.events, 0)
    for event in data.events:
        counts[event.name] += 1
    doc["dataset"] = {
        "profiles": len(data.profiles),
        "events": len(data.events),
        "now": data.now.isoformat(),
        "attributes": list(data.schema.attributes),
        "events_by_name": counts,
    }
    w(
        f"segkit {sk.__version__} demo: {len(data.profiles):,} synthetic profiles, "
        f"{len(data.events):,} events\n"
        f"as of {data.now:%Y-%m-%d %H:%M} UTC "
        f"(segkit.datasets.generate({size}, seed={seed}, events_per_profile={EVENTS_PER_PROFILE:g}))\n"
    )
    w(_section("The data"))
    w(f"attributes: {', '.join(data.schema.attributes)}\n")
    w("events:     " + ", ".join(f"{name} {n:,}" for name, n in counts.items()) + "\n")

    # --- segments, defined days ago so that refresh and attention have a history
    reporter = start_progress(bar("defining segments"), len(DEMO_SEGMENTS))
    for name, _, rule, description in reporter.iterate(DEMO_SEGMENTS):
        engine.define(name, rule, updated_by="demo", tags=[description])
    reporter.finish()
    webinar = [p.key for p in data.profiles if "webinar" in p.attributes["tags"]]
    engine.define_static(_IMPORT, webinar[: len(webinar) // 5], updated_by="crm-sync")
    for days_before in _REFRESH_DAYS:
        clock[0] = data.now - days_before * day
        if days_before == 0:  # a sync that re-ran yesterday's import in full
            engine.add_members(_IMPORT, webinar, updated_by="crm-sync")
        engine.refresh(progress=bar(f"refresh at now-{days_before}d"))
    n = len(engine)
    rows = []
    for name, kind, rule, description in DEMO_SEGMENTS:
        members = len(engine.members(name))
        rows.append(
            {
                "name": name,
                "kind": kind,
                "rule": str(sk.parse(rule)),
                "description": description,
                "members": members,
                "share": members / n if n else 0.0,
            }
        )
    doc["segments"] = rows
    w(_section("Segments (engine.define)"))
    header = f"{'segment':<18} {'kind':<19} {'members':>7} {'share':>6}  description"
    w(header + "\n" + "-" * len(header) + "\n")
    for row in rows:
        w(
            f"{row['name']:<18} {row['kind']:<19} {row['members']:>7,} {row['share']:>6.1%}"
            f"  {row['description']}\n"
            f"{'':<18} rule: {row['rule']}\n"
        )

    # --- overlap, split
    overlap = engine.overlap(list(_OVERLAP))
    doc["overlap"] = overlap.to_dict()
    w(_section(f"Overlap of {', '.join(_OVERLAP)} (engine.overlap)"))
    w(overlap.table() + "\n")
    split = engine.split(_SPLIT, {"control": 50, "test": 50}, salt="demo-exp")
    doc["split"] = split.to_dict()
    w(_section(f"A 50/50 split of {_SPLIT} with its sample-ratio check (engine.split)"))
    w(split.table() + "\n")

    # --- journeys
    journey = sk.Funnel(list(_JOURNEY_STEPS), window=timedelta(days=30))
    reports = engine.funnel(journey, list(_JOURNEYS))
    doc["journeys"] = {name: reports[name].to_dict() for name in _JOURNEYS}
    for name in _JOURNEYS:
        w(_section(f"Journey of {name} (engine.funnel, 30-day window)"))
        w(reports[name].table() + "\n")

    # --- attention
    attention = engine.attention()
    doc["attention"] = attention.to_dict()
    w(_section("Segments needing attention (engine.attention, last 7 days)"))
    w(
        f"history: segments defined on {data.now - _HISTORY_DAYS * day:%Y-%m-%d}, refreshed on "
        + ", ".join(f"{data.now - d * day:%Y-%m-%d}" for d in _REFRESH_DAYS)
        + f"; {_IMPORT!r} is a static list that a CRM sync re-imported in full today\n"
    )
    w(attention.table() + "\n")

    # --- KPIs
    metrics = [
        sk.metrics.mean("ltv"),
        sk.metrics.rate("is_customer"),
        sk.metrics.nps("nps"),
    ]
    comparison = engine.compare(list(_KPIS), metrics)
    doc["kpis"] = comparison.to_dict()
    w(_section("KPIs compared (engine.compare): CLV, customer rate, NPS"))
    w(comparison.table() + "\n")

    # --- errors
    doc["errors"] = []
    w(_section("Errors point at the problem (python -m segkit check 'rule')"))
    for bad in ('contry = "FR" and age >= 30', "did cart_abandoned >= 2 times in last 5m"):
        try:
            sk.check(bad, data.schema)
        except sk.RuleError as error:
            doc["errors"].append(
                {"rule": bad, "error": type(error).__name__, "message": error.message}
            )
            w(f"{type(error).__name__}: {error}\n\n")
    return doc, "".join(parts)


def _section(title: str) -> str:
    return f"\n== {title}\n\n"


def run_check(text: str, schema_path: str | None, out: TextIO | None = None) -> int:
    """Print the canonical form of ``text`` (exit 0) or every error with carets (exit 1).

    ``schema_path`` names a JSON file in :meth:`Schema.to_dict <segkit.Schema.to_dict>`
    form to type-check against; an unreadable one gives exit code 2.

    >>> run_check("age>=18  and not(plan='free')", None)
    age >= 18 and not plan = "free"
    0
    >>> run_check("age >=", None)
    RuleSyntaxError: expected a value after '>=' (line 1, column 7)
      age >=
            ^
    1

    .. versionadded:: 0.1.0
    """
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m segkit",
        description="segkit: audience segmentation and segment analytics.",
        epilog="Run 'python -m segkit COMMAND --help' for a command's options.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    demo = sub.add_parser(
        "demo",
        help="a tour of segkit on built-in synthetic data",
        description=(
            "Generate synthetic profiles and events, define segments in an Engine, and "
            "print their overlap, a split, journeys, the segments needing attention "
            "and a KPI comparison."
        ),
    )
    demo.add_argument(
        "--size",
        type=_positive,
        default=DEFAULT_SIZE,
        metavar="N",
        help=f"number of profiles (default {DEFAULT_SIZE:,}; about 9 events each)",
    )
    demo.add_argument(
        "--seed", type=int, default=DEFAULT_SEED, help=f"random seed (default {DEFAULT_SEED})"
    )
    demo.add_argument("--json", action="store_true", help="print one JSON document instead")
    check = sub.add_parser(
        "check",
        help="check a rule: print its canonical form or its errors",
        description="Check a rule's syntax, and its types against a schema when given.",
    )
    check.add_argument("rule", help="the rule text")
    check.add_argument("--schema", help="a JSON file in Schema.to_dict() form")
    return parser


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m segkit``; returns the exit code.

    Without a command it prints the help to stderr and returns 2.

    >>> main(["check", "did purchase in last 7d"])
    did purchase in last 7d
    0

    .. versionadded:: 0.1.0
    """
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "demo":
        return run_demo(size=args.size, seed=args.seed, as_json=args.json)
    if args.command == "check":
        return run_check(args.rule, args.schema)
    parser.print_help(sys.stderr)
    return 2


def _run() -> int:
    try:
        return main()
    except BrokenPipeError:  # e.g. `python -m segkit demo | head`: stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    raise SystemExit(_run())
