"""The benchmark data: one deterministic population, loaded into every tool.

The population comes from :func:`segkit.datasets.generate` (profiles only), so the
demo, the docs and the benchmarks share one generator. Row ``i`` of every peer's
table is the profile the Engine stores under dense id ``i``.
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable
from typing import Any

import attrs

import segkit as sk
from segkit import datasets

SIZES = {"small": 20_000, "1m": 1_000_000, "10m": 10_000_000}


def rss_mib() -> float:
    """This process's resident memory in MiB (Linux /proc; 0.0 elsewhere)."""
    try:
        with open(f"/proc/{os.getpid()}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


@attrs.define
class Built:
    """A tool's loaded data, with the time and the resident memory it took."""

    tool: str
    handle: Any
    seconds: float
    mib: float


def measure_build(tool: str, build: Callable[[], Any]) -> Built:
    """Run ``build`` once, timing it and measuring the growth of resident memory."""
    gc.collect()
    before = rss_mib()
    start = time.perf_counter()
    handle = build()
    seconds = time.perf_counter() - start
    gc.collect()
    return Built(tool, handle, seconds, rss_mib() - before)


@attrs.define
class Population:
    """The generated profiles and the same values as columns."""

    dataset: datasets.Dataset
    columns: dict[str, list[Any]]

    @property
    def size(self) -> int:
        return len(self.dataset.profiles)


FILTER_COLUMNS = ("country", "plan", "age", "ltv", "signed_up", "is_customer")


def population(n: int, seed: int = 7) -> Population:
    """``n`` synthetic profiles (no events) and their columns."""
    data = datasets.generate(n, seed=seed, events_per_profile=0)
    columns: dict[str, list[Any]] = {name: [] for name in FILTER_COLUMNS}
    for profile in data.profiles:
        values = profile.attributes
        for name in FILTER_COLUMNS:
            columns[name].append(values[name])
    return Population(data, columns)


def build_segkit(pop: Population) -> sk.Engine:
    engine = sk.Engine(pop.dataset.schema, clock=lambda: pop.dataset.now)
    engine.upsert_many(pop.dataset.profiles)
    return engine


def build_polars(pop: Population) -> Any:
    import polars as pl

    cols = pop.columns
    return pl.DataFrame(
        {
            "id": pl.Series(range(pop.size), dtype=pl.UInt32),
            "country": pl.Series(cols["country"], dtype=pl.Enum(datasets.COUNTRIES)),
            "plan": pl.Series(cols["plan"], dtype=pl.Enum(datasets.PLANS)),
            "age": pl.Series(cols["age"], dtype=pl.Int16),
            "ltv": pl.Series(cols["ltv"], dtype=pl.Float64),
            "signed_up": pl.Series(cols["signed_up"], dtype=pl.Date),
            "is_customer": pl.Series(cols["is_customer"], dtype=pl.Boolean),
        }
    )


def build_duckdb(pop: Population, frame: Any) -> Any:
    import duckdb

    con = duckdb.connect()
    countries = ", ".join(f"'{c}'" for c in datasets.COUNTRIES)
    plans = ", ".join(f"'{p}'" for p in datasets.PLANS)
    con.execute(f"CREATE TYPE country_t AS ENUM ({countries})")
    con.execute(f"CREATE TYPE plan_t AS ENUM ({plans})")
    con.register("source", frame.to_arrow())
    con.execute(
        "CREATE TABLE profiles AS SELECT id, country::country_t AS country, plan::plan_t AS plan,"
        " age, ltv, signed_up, is_customer FROM source"
    )
    con.unregister("source")
    return con


def build_pandas(frame: Any) -> Any:
    import pandas as pd

    out = frame.to_pandas()
    out["country"] = out["country"].astype(pd.CategoricalDtype(datasets.COUNTRIES))
    out["plan"] = out["plan"].astype(pd.CategoricalDtype(datasets.PLANS))
    out["signed_up"] = pd.to_datetime(out["signed_up"])
    return out


# --- the funnel workload's event log ------------------------------------------------------------

#: The funnel's steps, in order, and the events that are in no step.
FUNNEL_STEPS = ("visit", "form_submit", "mql", "sql", "deal_created", "closed_won")
FUNNEL_NOISE = ("page_view", "email_open")
FUNNEL_EVENTS = FUNNEL_STEPS + FUNNEL_NOISE
#: The log covers this many days before ``datasets.DEFAULT_NOW``.
FUNNEL_DAYS = 180
_FUNNEL_END_US = int(datasets.DEFAULT_NOW.timestamp()) * 1_000_000
_DAY_US = 86_400 * 1_000_000
#: Chance of moving on from step k - 1 to step k, and the mean delay in days.
_FUNNEL_PROGRESS = (0.38, 0.42, 0.5, 0.5, 0.38)
_FUNNEL_DELAY_DAYS = (2.0, 4.0, 5.0, 6.0, 7.0)


@attrs.frozen
class FunnelLog:
    """A funnel-shaped event log as numpy columns, in time order (ties by entity).

    ``entity[i]`` is event ``i``'s entity (dense id; its key is ``keys[entity[i]]``),
    ``event[i]`` an index into :data:`FUNNEL_EVENTS`, ``ts_us[i]`` its time in whole
    seconds, as microseconds since the Unix epoch (UTC).
    """

    keys: list[str]
    entity: Any  # numpy uint32
    event: Any  # numpy uint8
    ts_us: Any  # numpy int64

    @property
    def size(self) -> int:
        return int(self.entity.shape[0])

    def key_column(self) -> list[str]:
        keys = self.keys
        return [keys[i] for i in self.entity.tolist()]

    def name_column(self) -> list[str]:
        return [FUNNEL_EVENTS[i] for i in self.event.tolist()]

    def time_column(self) -> list[int]:
        return self.ts_us.tolist()  # type: ignore[no-any-return]

    def events(self) -> list[sk.Event]:
        """The log as :class:`segkit.Event` objects (aware UTC datetimes)."""
        from datetime import datetime, timedelta, timezone

        epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
        second = timedelta(seconds=1)
        ats: dict[int, datetime] = {}
        out = []
        for key, name, t in zip(
            self.key_column(), self.name_column(), self.ts_us.tolist(), strict=True
        ):
            at = ats.get(t)
            if at is None:
                at = ats[t] = epoch + (t // 1_000_000) * second
            out.append(sk.Event(key, name, at))
        return out


def funnel_log(n: int, seed: int = 11) -> FunnelLog:
    """A deterministic funnel-shaped log for ``n`` entities (about 10 events each).

    Each entity visits Poisson(4) times at uniform moments over :data:`FUNNEL_DAYS`
    days (1.8% never visit). From one of its visits (chosen at random) a journey moves
    on through the next steps with the chances in ``_FUNNEL_PROGRESS``, each after an
    exponential delay (3% of them at the very same second: ties), so some journeys
    outlast a 30-day window; 10% of step events are repeated later, 5% of entities
    get a stray step event at a random moment (out of order), and everyone gets
    Poisson(5) events that are in no step. Events after the end of the log are
    dropped. Uses numpy's PCG64 generator: the same arguments give the same log.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    end = _FUNNEL_END_US
    start = end - FUNNEL_DAYS * _DAY_US
    span_s = FUNNEL_DAYS * 86_400

    def at_random(count: int) -> Any:
        return start + rng.integers(0, span_s, count, dtype=np.int64) * 1_000_000

    ids = np.arange(n, dtype=np.uint32)
    ent: list[Any] = []
    evt: list[Any] = []
    tss: list[Any] = []

    def emit(entities: Any, code: int | Any, times: Any) -> None:
        keep = times <= end
        ent.append(entities[keep])
        evt.append(np.broadcast_to(np.asarray(code, dtype=np.uint8), times.shape)[keep])
        tss.append(times[keep])

    visits = rng.poisson(4.0, n)
    visitor = np.repeat(ids, visits)
    visit_ts = at_random(visitor.shape[0])
    emit(visitor, 0, visit_ts)
    # the journey starts at one of the entity's visits, chosen at random
    has = visits > 0
    first_visit = np.concatenate(([0], np.cumsum(visits)[:-1]))
    pick = first_visit[has] + (rng.random(int(has.sum())) * visits[has]).astype(np.int64)
    who = ids[has]
    t = visit_ts[pick]
    for k, (p, days) in enumerate(zip(_FUNNEL_PROGRESS, _FUNNEL_DELAY_DAYS, strict=True), 1):
        moved = rng.random(who.shape[0]) < p
        who, t = who[moved], t[moved]
        delay_s = (rng.exponential(days * 86_400, who.shape[0])).astype(np.int64)
        delay_s[rng.random(who.shape[0]) < 0.03] = 0
        t = t + delay_s * 1_000_000
        emit(who, k, t)
        again = rng.random(who.shape[0]) < 0.1
        later = rng.integers(0, 20 * 86_400, int(again.sum()), dtype=np.int64) * 1_000_000
        emit(who[again], k, t[again] + later)
    strays = ids[rng.random(n) < 0.05]
    emit(strays, rng.integers(1, len(FUNNEL_STEPS), strays.shape[0]), at_random(strays.shape[0]))
    noise = rng.poisson(5.0, n)
    noisy = np.repeat(ids, noise)
    emit(
        noisy,
        rng.integers(len(FUNNEL_STEPS), len(FUNNEL_EVENTS), noisy.shape[0]),
        at_random(noisy.shape[0]),
    )
    entity = np.concatenate(ent)
    event = np.concatenate(evt)
    ts_us = np.concatenate(tss)
    order = np.lexsort((event, entity, ts_us))  # by time, then entity, then event
    width = max(6, len(str(n)))
    return FunnelLog(
        [f"c-{i + 1:0{width}d}" for i in range(n)],
        np.ascontiguousarray(entity[order]),
        np.ascontiguousarray(event[order]),
        np.ascontiguousarray(ts_us[order]),
    )


# --- added for the overlap, split and incremental workloads and the memory bench -------------

#: Bit ``i`` of a profile's ``tags_mask`` is set when it has tag ``datasets.TAGS[i]``: the
#: fastest form of a list attribute for the peers (``has any`` is one AND).
TAG_BITS = {tag: 1 << i for i, tag in enumerate(datasets.TAGS)}


def tags_mask(tags: Any) -> int:
    """The bitmask of a tag list (see :data:`TAG_BITS`)."""
    return sum(TAG_BITS[t] for t in set(tags or ()))


def key_width(n: int) -> int:
    """The digits of the keys ``c-000001``, … that ``datasets.generate(n)`` gives."""
    return max(6, len(str(n)))


def with_profile_columns(tools: dict[str, Any], pop: Population) -> dict[str, Any]:
    """``tools`` whose peer tables also have ``key`` (the external key) and ``tags_mask``.

    The columns are added to the existing tables (DuckDB: ``ALTER TABLE``; polars and
    pandas: new frames sharing the other columns); a table that has them already is
    left as it is.
    """
    import numpy as np
    import polars as pl

    out = dict(tools)
    masks = np.fromiter(
        (tags_mask(p.attributes.get("tags")) for p in pop.dataset.profiles),
        dtype=np.uint32,
        count=pop.size,
    )
    keys = [p.key for p in pop.dataset.profiles]
    frame = tools["polars"]
    if "key" not in frame.columns:
        out["polars"] = frame.with_columns(
            key=pl.Series(keys, dtype=pl.String), tags_mask=pl.Series(masks)
        )
    con = tools["duckdb"]
    columns = {row[0] for row in con.execute("DESCRIBE profiles").fetchall()}
    if "key" not in columns:
        con.register("extra_columns", out["polars"].select("id", "key", "tags_mask").to_arrow())
        con.execute("ALTER TABLE profiles ADD COLUMN key VARCHAR")
        con.execute("ALTER TABLE profiles ADD COLUMN tags_mask UINTEGER")
        con.execute(
            "UPDATE profiles SET key = x.key, tags_mask = x.tags_mask"
            " FROM extra_columns x WHERE profiles.id = x.id"
        )
        con.unregister("extra_columns")
    pdf = tools["pandas"]
    if "key" not in pdf.columns:
        out["pandas"] = pdf.assign(key=out["polars"]["key"].to_pandas(), tags_mask=masks)
    return out
