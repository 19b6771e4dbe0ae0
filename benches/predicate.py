"""Measure rule parsing and compiled-predicate evaluation on synthetic data.

Usage: ``python benches/predicate.py [--profiles N] [--repeat R]``. Prints, per rule,
the median time per profile and profiles per second over R runs (after one warm-up).
Nothing here is asserted: it is a measurement to read and compare between commits.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict

import segkit as sk
from segkit.__main__ import DEMO_RULES
from segkit.datasets import generate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    data = generate(args.profiles, seed=7)
    events: dict[str, list[sk.Event]] = defaultdict(list)
    for e in data.events:
        events[e.key].append(e)
    rows = [(p.attributes, events.get(p.key, []), p.key) for p in data.profiles]
    print(f"# {len(rows):,} profiles, {len(data.events):,} events; median of {args.repeat} runs")
    print(
        f"# command: python benches/predicate.py --profiles {args.profiles} --repeat {args.repeat}"
    )
    print(f"{'rule':<72} {'parse µs':>9} {'µs/profile':>11} {'profiles/s':>12}")
    for text, _ in DEMO_RULES:
        t0 = time.perf_counter()
        for _ in range(200):
            sk.parse(text)
        parse_us = (time.perf_counter() - t0) / 200 * 1e6
        pred = sk.compile_predicate(text, data.schema)
        times = []
        for run in range(args.repeat + 1):
            t0 = time.perf_counter()
            for attrs, evs, key in rows:
                pred(attrs, evs, data.now, key=key)
            if run:  # the first run is a warm-up
                times.append(time.perf_counter() - t0)
        per = statistics.median(times) / len(rows)
        print(f"{text[:72]:<72} {parse_us:>9.1f} {per * 1e6:>11.2f} {1 / per:>12,.0f}")


if __name__ == "__main__":
    main()
