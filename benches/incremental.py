"""Peer baselines for the incremental workload: updates per second with 100 segments.

What a user of each peer does to keep 100 segment memberships current: apply a
batch of updated rows to the table, then re-evaluate the 100 rules, either
*fully* (every rule over the whole table) or only for the *changed rows* (every
rule over the updated rows, written into a membership matrix). Each peer starts
from the state segkit's timed phase starts from, applies the same updates, and
must end with exactly segkit's 100 memberships.

The peers keep ``tags`` as a ``tags_mask`` bitmask column (``has any [a, b]`` is
one AND), their fastest form; memberships are a numpy boolean matrix (the fastest
place measured for each peer).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import date
from typing import Any

import attrs

from benches import data
from benches.workloads import Row, hundred_rules
from segkit import datasets

Update = tuple[str, dict[str, Any]]
SINGLE = "segkit upsert (redraw)"
BATCHED = "segkit upsert_many x1000 (redraw)"
COLUMNS = ("country", "plan", "age", "ltv", "tags_mask")


# --- the 100 rules, as data --------------------------------------------------------------------


@attrs.frozen
class Rule:
    """One of ``workloads.hundred_rules()``: its shape (0-4) and parameters."""

    shape: int
    a: Any
    b: Any = None
    c: Any = None

    def text(self) -> str:
        s, a, b, c = self.shape, self.a, self.b, self.c
        if s == 0:
            return f'country = "{a}" and age >= {b}'
        if s == 1:
            return f'plan = "{a}" and ltv > {b}'
        if s == 2:
            return f'tags has any ["{a[0]}", "{a[1]}"] and is_customer = true and age < {b}'
        if s == 3:
            return f'age between {a} and {b} and country in ["{c[0]}", "{c[1]}"]'
        return f'signed_up after @{a.isoformat()} and plan != "free"'

    def sql(self) -> str:
        s, a, b, c = self.shape, self.a, self.b, self.c
        if s == 0:
            return f"(country = '{a}' AND age >= {b})"
        if s == 1:
            return f"(plan = '{a}' AND ltv > {b})"
        if s == 2:
            return f"((tags_mask & {_bits(a)}) != 0 AND is_customer AND age < {b})"
        if s == 3:
            return f"(age BETWEEN {a} AND {b} AND country IN ('{c[0]}', '{c[1]}'))"
        return f"(signed_up > DATE '{a.isoformat()}' AND plan != 'free')"

    def polars(self) -> Any:
        import polars as pl

        s, a, b, c = self.shape, self.a, self.b, self.c
        col = pl.col
        if s == 0:
            return (col("country") == a) & (col("age") >= b)
        if s == 1:
            return (col("plan") == a) & (col("ltv") > b)
        if s == 2:
            return ((col("tags_mask") & _bits(a)) != 0) & col("is_customer") & (col("age") < b)
        if s == 3:
            return col("age").is_between(a, b) & col("country").is_in(list(c))
        return (col("signed_up") > a) & (col("plan") != "free")

    def pandas(self, df: Any) -> Any:
        """The rule over pandas frame ``df``, as a numpy bool array."""
        import pandas as pd

        s, a, b, c = self.shape, self.a, self.b, self.c
        if s == 0:
            out = (df["country"] == a) & (df["age"] >= b)
        elif s == 1:
            out = (df["plan"] == a) & (df["ltv"] > b)
        elif s == 2:
            out = ((df["tags_mask"] & _bits(a)) != 0) & df["is_customer"] & (df["age"] < b)
        elif s == 3:
            out = df["age"].between(a, b) & df["country"].isin(list(c))
        else:
            out = (df["signed_up"] > pd.Timestamp(a)) & (df["plan"] != "free")
        return out.to_numpy()


def _bits(tags: Sequence[str]) -> int:
    return data.tags_mask(tags)


def rules() -> list[Rule]:
    """The 100 rules of :func:`benches.workloads.hundred_rules`, as parameters."""
    c, p, t = datasets.COUNTRIES, datasets.PLANS, datasets.TAGS
    out = []
    for i in range(100):
        shape = i % 5
        if shape == 0:
            out.append(Rule(0, c[i % 50], 18 + i % 40))
        elif shape == 1:
            out.append(Rule(1, p[i % 4], i * 10))
        elif shape == 2:
            out.append(Rule(2, (t[i % 20], t[(i // 5) % 20]), 40 + i // 5))
        elif shape == 3:
            out.append(Rule(3, 18 + i % 30, 40 + i % 30, (c[i % 7], c[i % 11])))
        else:
            out.append(Rule(4, date(2022, 1 + i % 12, 1 + i // 12)))
    texts = [r.text() for r in out]
    if texts != hundred_rules():  # the two must describe the same segments
        raise AssertionError("incremental: benches/incremental.py rules() != hundred_rules()")
    return out


# --- a batch of updates, as a peer user would prepare it ---------------------------------------


@attrs.frozen
class Batch:
    """Updates merged per profile (later values win), as columns; ``None`` = unchanged."""

    ids: Any  # numpy uint32, one per changed profile
    columns: dict[str, list[Any]]


def prepare(updates: Sequence[Update]) -> Batch:
    """Merge the updates per profile (the key ``c-000042`` is row 41) into columns."""
    import numpy as np

    merged: dict[int, dict[str, Any]] = {}
    for key, values in updates:
        row = merged.setdefault(int(key[2:]) - 1, {})
        for name, value in values.items():
            if name == "tags":
                row["tags_mask"] = data.tags_mask(value)
            else:
                row[name] = value
    rows = list(merged.values())
    return Batch(
        np.fromiter(merged, dtype=np.uint32, count=len(merged)),
        {name: [r.get(name) for r in rows] for name in COLUMNS},
    )


# --- the peers ---------------------------------------------------------------------------------


class PolarsPeer:
    """A polars frame updated with ``DataFrame.update``; memberships as a numpy matrix."""

    def __init__(self, frame: Any, rules: list[Rule], full: bool) -> None:
        self.frame = frame.select("id", "country", "plan", "age", "ltv", "signed_up",
                                  "is_customer", "tags_mask")  # fmt: skip
        self.exprs = [r.polars().alias(f"m{i}") for i, r in enumerate(rules)]
        self.full = full
        self.members: Any = None

    def apply(self, batch: Batch) -> None:
        import polars as pl

        schema = self.frame.schema
        other = pl.DataFrame(
            {"id": batch.ids, **batch.columns},
            schema={"id": pl.UInt32, **{name: schema[name] for name in COLUMNS}},
        )
        self.frame = self.frame.update(other, on="id")

    def evaluate(self, batch: Batch | None) -> None:
        if batch is None or self.members is None:
            self.members = self.frame.select(self.exprs).to_numpy()
        elif self.full:
            self.members = self.frame.select(self.exprs)
        else:
            self.members[batch.ids] = self.frame[batch.ids].select(self.exprs).to_numpy()

    def memberships(self) -> list[Any]:
        import numpy as np

        matrix = self.members if isinstance(self.members, np.ndarray) else self.members.to_numpy()
        return [np.flatnonzero(matrix[:, i]) for i in range(matrix.shape[1])]


class PandasPeer:
    """A pandas frame updated with ``.loc``; memberships as a numpy matrix."""

    def __init__(self, frame: Any, rules: list[Rule], full: bool) -> None:
        self.frame = frame[["id", "country", "plan", "age", "ltv", "signed_up",
                            "is_customer", "tags_mask"]].copy()  # fmt: skip
        self.rules = rules
        self.full = full
        self.members: Any = None

    def apply(self, batch: Batch) -> None:
        import numpy as np

        for name, values in batch.columns.items():
            set_ = np.fromiter((v is not None for v in values), dtype=bool, count=len(values))
            if set_.any():
                dtype = self.frame[name].dtype
                kept = [v for v in values if v is not None]
                new = kept if dtype == "category" else np.asarray(kept, dtype=dtype)
                self.frame.loc[batch.ids[set_], name] = new

    def _matrix(self, df: Any) -> Any:
        import numpy as np

        return np.column_stack([r.pandas(df) for r in self.rules])

    def evaluate(self, batch: Batch | None) -> None:
        if batch is None or self.members is None or self.full:
            self.members = self._matrix(self.frame)
        else:
            self.members[batch.ids] = self._matrix(self.frame.iloc[batch.ids])

    def memberships(self) -> list[Any]:
        import numpy as np

        return [np.flatnonzero(self.members[:, i]) for i in range(self.members.shape[1])]


class DuckdbPeer:
    """A copy of the DuckDB table kept with ``UPDATE ... FROM``; the rules evaluated by one
    ``SELECT`` (of the changed rows, or of all) into a numpy matrix.

    (Keeping the memberships as 100 columns of the table and re-evaluating them
    with ``UPDATE`` measured about 2x slower in both modes.)
    """

    _count = 0

    def __init__(self, con: Any, rules: list[Rule], full: bool) -> None:
        DuckdbPeer._count += 1
        self.con = con
        self.table = f"incremental_{DuckdbPeer._count}"
        self.full = full
        self.n = len(rules)
        self.select = "SELECT id, " + ", ".join(f"{r.sql()} AS m{i}" for i, r in enumerate(rules))
        self.members: Any = None
        con.execute(
            f"CREATE TABLE {self.table} AS SELECT id, country, plan, age, ltv, signed_up,"
            f" is_customer, tags_mask FROM profiles"
        )

    def apply(self, batch: Batch) -> None:
        import pyarrow as pa

        cols = batch.columns
        self.con.register(
            "batch",
            pa.table(
                {
                    "id": pa.array(batch.ids, pa.uint32()),
                    "country": pa.array(cols["country"], pa.string()),
                    "plan": pa.array(cols["plan"], pa.string()),
                    "age": pa.array(cols["age"], pa.int16()),
                    "ltv": pa.array(cols["ltv"], pa.float64()),
                    "tags_mask": pa.array(cols["tags_mask"], pa.uint32()),
                }
            ),
        )
        t = self.table
        self.con.execute(
            f"UPDATE {t} SET country = coalesce(b.country::country_t, {t}.country),"
            f" plan = coalesce(b.plan::plan_t, {t}.plan), age = coalesce(b.age, {t}.age),"
            f" ltv = coalesce(b.ltv, {t}.ltv), tags_mask = coalesce(b.tags_mask, {t}.tags_mask)"
            f" FROM batch b WHERE {t}.id = b.id"
        )

    def evaluate(self, batch: Batch | None) -> None:
        import numpy as np

        everyone = batch is None or self.full or self.members is None
        where = "" if everyone else " WHERE id IN (SELECT id FROM batch)"
        out = self.con.execute(f"{self.select} FROM {self.table}{where}").fetchnumpy()
        flags = np.column_stack([out[f"m{i}"] for i in range(self.n)])
        if everyone:
            self.members = np.zeros_like(flags)
        self.members[out["id"]] = flags
        if batch is not None:
            self.con.unregister("batch")

    def memberships(self) -> list[Any]:
        import numpy as np

        return [np.flatnonzero(self.members[:, i]) for i in range(self.n)]

    def close(self) -> None:
        self.con.execute(f"DROP TABLE {self.table}")


PEERS = {"polars": PolarsPeer, "duckdb": DuckdbPeer, "pandas": PandasPeer}


# --- the baselines -----------------------------------------------------------------------------


def _run(peer: Any, updates: Sequence[Update], size: int) -> float:
    """Apply ``updates`` in batches of ``size`` (each batch re-evaluated); seconds taken."""
    start = time.perf_counter()
    for i in range(0, len(updates), size):
        batch = prepare(updates[i : i + size])
        peer.apply(batch)
        peer.evaluate(batch)
    return time.perf_counter() - start


def _row(tool: str, seconds: float, count: int, versus: str, note: str = "") -> Row:
    return Row(
        "incremental",
        tool,
        seconds / count * 1e3,
        f"{count / seconds:,.0f} upserts/s{note}",
        versus=versus,
    )


def peer_baselines(
    tools: dict[str, Any],
    expected: list[Any],
    applied: Sequence[Update],
    timed: Sequence[Update],
    *,
    batch_size: int = 1000,
    singles: int = 100,
) -> list[Row]:
    """Each peer, starting after ``applied``, applies ``timed``; it must end at ``expected``.

    ``expected`` holds segkit's 100 memberships (sorted id arrays) after ``timed``.
    In the *changed rows* mode the first ``singles`` updates go one row at a time
    (timed against segkit's single upserts), the rest in batches of ``batch_size``;
    in the *full* mode every batch re-evaluates the 100 rules over the whole table.
    """
    import numpy as np

    specs = rules()
    singles = min(singles, len(timed) // 10)
    start_batch = prepare(applied)
    rows = []
    for name, cls in PEERS.items():
        for full in (False, True):
            peer = cls(tools[name], specs, full)
            try:
                peer.apply(start_batch)
                peer.evaluate(None)
                if not full and singles:
                    seconds = _run(peer, timed[:singles], 1)
                    rows.append(_row(f"{name} update x1 (changed rows)", seconds, singles, SINGLE))
                rest = timed if full else timed[singles:]
                seconds = _run(peer, rest, batch_size)
                mode = "full re-eval" if full else "changed rows"
                tool = f"{name} update x{batch_size} ({mode})"
                rows.append(_row(tool, seconds, len(rest), BATCHED))
                got = peer.memberships()
            finally:
                if hasattr(peer, "close"):
                    peer.close()
            for i, (g, e) in enumerate(zip(got, expected, strict=True)):
                if not np.array_equal(g, e):
                    raise AssertionError(
                        f"incremental: {tool} segment bench_{i} has {len(g)} members,"
                        f" segkit {len(e)}"
                    )
    return rows


def baselines_for(tools: dict[str, Any]) -> Any:
    """The ``baselines`` hook of :func:`benches.workloads.incremental_workload`."""
    import numpy as np

    def run(engine: Any, applied: list[Update], timed: list[Update]) -> list[Row]:
        expected = [
            np.asarray(engine.members(f"bench_{i}").ids.to_array(), dtype=np.int64)
            for i in range(100)
        ]
        return peer_baselines(tools, expected, applied, timed)

    return run
