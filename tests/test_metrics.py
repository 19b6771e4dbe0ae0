"""Segment metrics and Engine.compare, checked against plain-Python reference computations.

The statistics helpers are checked against published table values and against
independent formulations (numerical integration of the t density, exact binomial
sums with integers, the Wilson interval as the roots of its quadratic).
"""

from __future__ import annotations

import decimal
import math
import statistics
from datetime import datetime, timedelta, timezone
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import segkit as sk
from segkit.analysis import _stats, metrics
from segkit.analysis.metrics import Comparison, ComparisonRow, Metric, MetricValue

NOW = datetime(2024, 6, 30, 12, tzinfo=timezone.utc)

# --- the statistics helpers ----------------------------------------------------------------

# two-sided critical values t(1 - alpha/2, df), from the standard printed tables
T_TABLE = {
    (0.975, 1): 12.706,
    (0.975, 2): 4.303,
    (0.975, 3): 3.182,
    (0.975, 4): 2.776,
    (0.975, 5): 2.571,
    (0.975, 6): 2.447,
    (0.975, 8): 2.306,
    (0.975, 10): 2.228,
    (0.975, 15): 2.131,
    (0.975, 20): 2.086,
    (0.975, 30): 2.042,
    (0.975, 60): 2.000,
    (0.975, 120): 1.980,
    (0.95, 1): 6.314,
    (0.95, 5): 2.015,
    (0.95, 10): 1.812,
    (0.95, 30): 1.697,
    (0.995, 1): 63.657,
    (0.995, 3): 5.841,
    (0.995, 5): 4.032,
    (0.995, 10): 3.169,
    (0.995, 30): 2.750,
    (0.9, 4): 1.533,
    (0.9, 20): 1.325,
}


@pytest.mark.parametrize(("p", "df"), sorted(T_TABLE))
def test_t_quantiles_match_the_printed_table(p: float, df: int) -> None:
    """Student t quantiles agree with the printed table to its three decimals."""
    assert round(_stats.student_t_quantile(p, df), 3) == T_TABLE[p, df]
    assert round(_stats.student_t_quantile(1 - p, df), 3) == -T_TABLE[p, df]


def test_t_quantile_tends_to_the_normal_quantile() -> None:
    """With many degrees of freedom the t quantile is the normal one (1.959964 at 97.5%)."""
    assert _stats.student_t_quantile(0.975, 10**7) == pytest.approx(1.959964, abs=1e-6)
    assert round(_stats.normal_quantile(0.975), 6) == 1.959964
    assert round(_stats.normal_quantile(0.95), 6) == 1.644854
    assert round(_stats.normal_quantile(0.995), 6) == 2.575829
    assert _stats.critical_z(0.95) == _stats.normal_quantile(0.975)
    assert _stats.student_t_quantile(0.5, 7) == 0.0


def _t_density(x: float, df: float) -> float:
    log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    return math.exp(log_c) * (1 + x * x / df) ** (-(df + 1) / 2)


def _t_cdf_by_integration(t: float, df: float) -> float:
    """0.5 plus Simpson's rule over [0, t]: independent of the incomplete beta function."""
    steps = 4000
    h = t / steps
    total = _t_density(0, df) + _t_density(t, df)
    for i in range(1, steps):
        total += (4 if i % 2 else 2) * _t_density(i * h, df)
    return 0.5 + total * h / 3


@settings(max_examples=25, deadline=None)
@given(
    df=st.one_of(st.integers(1, 300), st.floats(1.0, 80.0)),
    p=st.floats(0.55, 0.995),
)
def test_t_quantile_inverts_the_integrated_density(df: float, p: float) -> None:
    """The quantile's cumulative probability, by integrating the density, is ``p``."""
    t = _stats.student_t_quantile(p, df)
    assert _t_cdf_by_integration(t, df) == pytest.approx(p, abs=1e-8)
    assert _stats.student_t_cdf(t, df) == pytest.approx(p, abs=1e-12)
    assert _stats.student_t_two_sided(t, df) == pytest.approx(2 * (1 - p), abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 60),
    data=st.data(),
    p=st.fractions(Fraction(1, 100), Fraction(99, 100), max_denominator=100),
)
def test_regularized_beta_is_a_binomial_tail(n: int, data: st.DataObject, p: Fraction) -> None:
    """``I_p(k, n - k + 1) = P(Binomial(n, p) >= k)``, summed exactly with fractions."""
    k = data.draw(st.integers(1, n))
    exact = sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1))
    assert _stats.regularized_beta(k, n - k + 1, float(p)) == pytest.approx(float(exact), abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(n=st.one_of(st.integers(0, 120), st.integers(1990, 2600)), data=st.data())
def test_binomial_half_cdf_is_the_exact_sum(n: int, data: st.DataObject) -> None:
    """``P(Binomial(n, 1/2) <= k)`` equals the integer sum of binomial coefficients."""
    k = data.draw(st.integers(-1, n + 1))
    exact = Fraction(sum(math.comb(n, i) for i in range(max(0, k + 1) if k <= n else n + 1)), 2**n)
    assert _stats.binomial_half_cdf(k, n) == pytest.approx(float(exact), rel=1e-11, abs=1e-300)


def _reference_median_ranks(n: int, confidence: float) -> tuple[int, int] | None:
    """The largest j with P(B <= j - 1) <= (1 - confidence) / 2, by exact counting."""
    tail = Fraction((1 - confidence) / 2)
    best = None
    below = 0  # sum of C(n, i) for i <= j - 1
    for j in range(1, (n + 1) // 2 + 1):
        below += math.comb(n, j - 1)
        if Fraction(below, 2**n) <= tail:
            best = j
    return None if best is None else (best, n + 1 - best)


@settings(max_examples=80, deadline=None)
@given(n=st.integers(1, 400), confidence=st.sampled_from([0.5, 0.8, 0.9, 0.95, 0.99]))
def test_median_ranks_match_exact_counting(n: int, confidence: float) -> None:
    """The order-statistic ranks of a median's interval come from the exact binomial tail."""
    assert _stats.median_ranks(n, confidence) == _reference_median_ranks(n, confidence)


def test_median_ranks_match_the_printed_table() -> None:
    """Known 95% ranks (Conover's table): n=6 -> (1, 6), n=10 -> (2, 9), n=20 -> (6, 15)."""
    assert _stats.median_ranks(5, 0.95) is None
    assert _stats.median_ranks(6, 0.95) == (1, 6)
    assert _stats.median_ranks(10, 0.95) == (2, 9)
    assert _stats.median_ranks(20, 0.95) == (6, 15)
    assert _stats.median_ranks(100, 0.95) == (40, 61)


def _wilson_by_quadratic(k: int, n: int, z: float) -> tuple[float, float]:
    """The roots of (p_hat - p)^2 = z^2 p (1 - p) / n in p, in 40-digit decimal arithmetic."""
    with decimal.localcontext() as ctx:
        ctx.prec = 40
        zz = decimal.Decimal(z) ** 2
        p_hat = decimal.Decimal(k) / n
        a = 1 + zz / n
        b = -(2 * p_hat + zz / n)
        c = p_hat * p_hat
        root = (b * b - 4 * a * c).sqrt()
        return float((-b - root) / (2 * a)), float((-b + root) / (2 * a))


@settings(max_examples=100, deadline=None)
@given(n=st.integers(1, 5000), data=st.data(), confidence=st.floats(0.5, 0.999))
def test_wilson_interval_solves_its_quadratic(
    n: int, data: st.DataObject, confidence: float
) -> None:
    """The Wilson interval's ends are the roots of the score test's quadratic."""
    k = data.draw(st.integers(0, n))
    z = statistics.NormalDist().inv_cdf(0.5 + confidence / 2)
    low, high = _stats.wilson_interval(k, n, confidence)
    ref_low, ref_high = _wilson_by_quadratic(k, n, z)
    assert low == pytest.approx(ref_low, abs=1e-12)
    assert high == pytest.approx(ref_high, abs=1e-12)
    assert 0.0 <= low <= k / n <= high <= 1.0


def test_wilson_interval_known_values_and_exact_ends() -> None:
    """5 of 10 at 95% is [0.2366, 0.7634]; 0 of n starts at 0.0, n of n ends at 1.0."""
    low, high = _stats.wilson_interval(5, 10, 0.95)
    assert (round(low, 4), round(high, 4)) == (0.2366, 0.7634)
    assert _stats.wilson_interval(0, 7, 0.95)[0] == 0.0
    assert _stats.wilson_interval(7, 7, 0.95)[1] == 1.0


def test_statistics_helpers_reject_bad_arguments() -> None:
    """Out-of-range probabilities, degrees of freedom and counts raise precise errors."""
    with pytest.raises(ValueError, match=r"^a quantile needs 0 < p < 1, got 1.0$"):
        _stats.student_t_quantile(1.0, 3)
    with pytest.raises(
        ValueError, match=r"^degrees of freedom must be a positive finite number, got 0$"
    ):
        _stats.student_t_quantile(0.9, 0)
    with pytest.raises(ValueError, match=r"^need 0 <= successes <= n and n >= 1, got 3 of 2$"):
        _stats.wilson_interval(3, 2, 0.95)
    with pytest.raises(ValueError, match=r"^regularized_beta needs a > 0 and b > 0"):
        _stats.regularized_beta(0, 1, 0.5)
    for bad in (0, 1, 1.5, -0.1, True, "0.9", None):
        with pytest.raises(ValueError, match=r"^confidence must be a number between 0 and 1"):
            _stats.check_confidence(bad)


# --- metric constructors -------------------------------------------------------------------


def test_metric_labels() -> None:
    """Each constructor labels its metric after itself and what it reads."""
    labels = [
        metrics.count().label,
        metrics.mean("ltv").label,
        metrics.median("ltv").label,
        metrics.sum("referrals").label,
        metrics.rate("is_customer").label,
        metrics.rate('plan = "pro"').label,
        metrics.conversion("did purchase in last 30d").label,
        metrics.churn("churned").label,
        metrics.nps("nps").label,
        metrics.csat("csat").label,
        metrics.csat("csat", satisfied=[5, 5]).label,
        metrics.mean("ltv", label="CLV").label,
    ]
    assert labels == [
        "count",
        "mean(ltv)",
        "median(ltv)",
        "sum(referrals)",
        "rate(is_customer)",
        'rate(plan = "pro")',
        "conversion(did purchase in last 30d)",
        "churn(churned)",
        "nps(nps)",
        "csat(csat)",
        "csat(csat, satisfied=[5])",
        "CLV",
    ]


def test_rate_reads_a_name_as_an_attribute_and_anything_else_as_a_rule() -> None:
    """A single word is an attribute; rule text, a Rule or a builder is a rule."""
    assert metrics.rate("is_customer").attribute == "is_customer"
    assert metrics.rate("is-customer").attribute == "is-customer"  # not a rule: a name
    by_text = metrics.rate("age >= 18")
    by_builder = metrics.rate(sk.attr("age") >= 18)
    assert by_text.attribute is None
    assert by_text.rule == by_builder.rule == sk.parse("age >= 18")
    assert by_text == by_builder
    assert repr(by_text) == "Metric('rate(age >= 18)')"


def test_metric_constructors_reject_bad_arguments() -> None:
    """Bad constructor arguments raise at once, with a precise message."""
    cases: list[tuple[Any, type[Exception], str]] = [
        (lambda: metrics.mean(3), TypeError, "mean() needs an attribute name, got 3"),
        (lambda: metrics.median(""), TypeError, "median() needs an attribute name, got ''"),
        (lambda: metrics.rate(""), TypeError, "rate() needs a bool attribute name or a rule, got ''"),
        (lambda: metrics.churn(3), TypeError, "churn() needs a bool attribute name or a rule, got int"),
        (lambda: metrics.nps("nps", invalid="drop"), ValueError, "invalid must be 'raise' or 'skip', got 'drop'"),
        (lambda: metrics.csat("csat", satisfied=[]), ValueError, "satisfied must name at least one value"),
        (lambda: metrics.csat("csat", satisfied="45"), TypeError, "satisfied must be a list of values, got '45'"),
        (lambda: metrics.csat("csat", satisfied=[True]), TypeError, "satisfied values must be numbers or strings, got True"),
        (lambda: metrics.count(label=""), TypeError, "label must be a non-empty string, got ''"),
    ]  # fmt: skip
    for make, error, message in cases:
        with pytest.raises(error) as info:
            make()
        assert str(info.value) == message
    with pytest.raises(sk.RuleSyntaxError) as syntax:
        metrics.conversion("did purchase in last")
    assert syntax.value.message.startswith("expected")


SCHEMA = sk.Schema(
    attributes={
        "plan": "string",
        "ltv": "float",
        "visits": "int",
        "is_customer": "bool",
        "nps": "int",
        "csat": "int",
        "mood": "string",
        "tags": "list[string]",
        "signed_up": "date",
    },
    events={"purchase": {"amount": "float"}},
    timezone="UTC",
)


def test_metric_check_against_the_schema() -> None:
    """Unknown attributes suggest a name; wrong types say what is needed and what was found."""
    with pytest.raises(sk.UnknownAttributeError) as unknown:
        metrics.mean("ltvv").check(SCHEMA)
    assert unknown.value.message == "mean(ltvv): unknown attribute 'ltvv'"
    assert unknown.value.suggestion == "ltv"
    assert str(unknown.value) == "mean(ltvv): unknown attribute 'ltvv'\n  hint: did you mean 'ltv'?"
    cases = [
        (metrics.mean("plan"), "mean(plan): needs a number (int or float) attribute, but 'plan' is a string attribute"),
        (metrics.sum("is_customer"), "sum(is_customer): needs a number (int or float) attribute, but 'is_customer' is a bool attribute (use rate('is_customer') for the share of true values)"),
        (metrics.median("signed_up"), "median(signed_up): needs a number (int or float) attribute, but 'signed_up' is a date attribute"),
        (metrics.rate("visits"), "rate(visits): needs a bool attribute or a rule, but 'visits' is an int attribute"),
        (metrics.churn("tags"), "churn(tags): needs a bool attribute or a rule, but 'tags' is a list[string] attribute"),
        (metrics.nps("mood"), "nps(mood): needs an int or float attribute of 0-10 scores, but 'mood' is a string attribute"),
        (metrics.csat("is_customer"), "csat(is_customer): needs an int, float or string attribute, but 'is_customer' is a bool attribute"),
        (metrics.csat("csat", satisfied=["4"]), "csat(csat, satisfied=['4']): satisfied values must be numbers for int attribute 'csat', got '4' (str)"),
        (metrics.csat("csat", satisfied=[4.5]), "csat(csat, satisfied=[4.5]): satisfied values must be numbers for int attribute 'csat', got 4.5 (float)"),
        (metrics.csat("mood", satisfied=[5]), "csat(mood, satisfied=[5]): satisfied values must be strings for string attribute 'mood', got 5 (int)"),
    ]  # fmt: skip
    for metric, message in cases:
        with pytest.raises(sk.RuleTypeError) as info:
            metric.check(SCHEMA)
        assert type(info.value) is sk.RuleTypeError
        assert info.value.message == message
    with pytest.raises(sk.UnknownAttributeError) as in_rule:
        metrics.rate('paln = "pro"').check(SCHEMA)
    assert in_rule.value.suggestion == "plan"
    for fine in (metrics.count(), metrics.csat("mood", satisfied=["happy"]), metrics.nps("ltv")):
        assert fine.check(SCHEMA) is None


def test_metric_to_dict() -> None:
    """Metrics describe themselves as plain dicts."""
    assert metrics.rate("did purchase in last 30d").to_dict() == {
        "kind": "rate",
        "label": "rate(did purchase in last 30d)",
        "attribute": None,
        "rule": "did purchase in last 30d",
    }
    assert metrics.nps("nps", invalid="skip").to_dict()["invalid"] == "skip"


# --- compare against a plain-Python reference ----------------------------------------------

KEYS = [f"k{i:02d}" for i in range(40)]


@st.composite
def populations(draw: st.DrawFn) -> dict[str, dict[str, Any]]:
    def maybe(values: st.SearchStrategy[Any]) -> Any:
        return draw(st.one_of(st.none(), values, values, values))

    keys = draw(st.lists(st.sampled_from(KEYS), unique=True, max_size=len(KEYS)))
    out = {}
    for key in keys:
        out[key] = {
            "plan": maybe(st.sampled_from(["free", "pro", "team"])),
            "ltv": maybe(
                st.one_of(
                    st.floats(-1e4, 1e6, allow_nan=False),
                    st.sampled_from([0.1, 0.2, 0.3, 100.0]),
                )
            ),
            "visits": maybe(st.one_of(st.integers(0, 50), st.integers(-(2**70), 2**70))),
            "is_customer": maybe(st.booleans()),
            "nps": maybe(st.integers(0, 10)),
            "csat": maybe(st.integers(1, 5)),
        }
    return out


def _reference(
    metric: str, profiles: dict[str, dict[str, Any]], members: set[str], confidence: float
) -> tuple[Any, Any, Any, int]:
    """(value, low, high, n) computed with statistics, fractions and the formulas written out."""
    z = statistics.NormalDist().inv_cdf(0.5 + confidence / 2)

    def present(attr: str) -> list[Any]:
        return [profiles[k][attr] for k in sorted(members) if profiles[k][attr] is not None]

    def wilson(k: int, n: int) -> tuple[Any, Any, Any, int]:
        if n == 0:
            return None, None, None, 0
        low, high = _wilson_by_quadratic(k, n, z)
        return k / n, low, high, n

    if metric == "count":
        return len(members), len(members), len(members), len(members)
    if metric in ("mean(ltv)", "sum(ltv)", "mean(visits)", "sum(visits)"):
        values = present(metric[metric.index("(") + 1 : -1])
        n = len(values)
        if n == 0:
            return None, None, None, 0
        total = sum(Fraction(v) for v in values)
        m = statistics.mean(values)
        scale = n if metric.startswith("sum") else 1
        if metric.startswith("sum"):
            value = int(total) if all(isinstance(v, int) for v in values) else float(total)
        else:
            value = float(m)
        if n < 2:
            return value, None, None, n
        t = _stats.student_t_quantile(0.5 + confidence / 2, n - 1)
        half = t * statistics.stdev(values) / math.sqrt(n)
        return value, scale * (float(m) - half), scale * (float(m) + half), n
    if metric == "median(ltv)":
        values = sorted(present("ltv"))
        if not values:
            return None, None, None, 0
        ranks = _reference_median_ranks(len(values), confidence)
        if ranks is None:
            return statistics.median(values), None, None, len(values)
        return statistics.median(values), values[ranks[0] - 1], values[ranks[1] - 1], len(values)
    if metric == "rate(is_customer)":
        values = present("is_customer")
        return wilson(sum(values), len(values))
    if metric == 'rate(plan = "pro" and visits >= 10)':
        hits = [
            k
            for k in members
            if profiles[k]["plan"] == "pro"
            and profiles[k]["visits"] is not None
            and profiles[k]["visits"] >= 10
        ]
        return wilson(len(hits), len(members))
    if metric == "nps(nps)":
        scores = [1 if v >= 9 else -1 if v <= 6 else 0 for v in present("nps")]
        n = len(scores)
        if n == 0:
            return None, None, None, 0
        nps = 100 * statistics.mean(scores)
        half = 100 * z * math.sqrt(statistics.pvariance(scores) / n)
        return float(nps), max(-100.0, nps - half), min(100.0, nps + half), n
    if metric == "csat(csat)":
        values = present("csat")
        return wilson(sum(1 for v in values if v in (4, 5)), len(values))
    raise AssertionError(metric)


ALL_METRICS = [
    metrics.count(),
    metrics.mean("ltv"),
    metrics.median("ltv"),
    metrics.sum("ltv"),
    metrics.mean("visits"),
    metrics.sum("visits"),
    metrics.rate("is_customer"),
    metrics.rate('plan = "pro" and visits >= 10'),
    metrics.nps("nps"),
    metrics.csat("csat"),
]


def _close(actual: Any, expected: Any) -> bool:
    if expected is None or actual is None:
        return actual is expected
    return actual == pytest.approx(expected, rel=1e-9, abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(
    profiles=populations(),
    data=st.data(),
    confidence=st.sampled_from([0.8, 0.9, 0.95, 0.99]),
)
def test_compare_matches_the_reference(
    profiles: dict[str, dict[str, Any]], data: st.DataObject, confidence: float
) -> None:
    """Every metric's value, interval and n equal the plain-Python computation, per segment."""
    engine = sk.Engine(SCHEMA, clock=lambda: NOW)
    engine.upsert_many(profiles)
    keys = sorted(profiles)
    chosen = {
        "s1": set(data.draw(st.lists(st.sampled_from(keys), unique=True) if keys else st.just([]))),
        "s2": set(data.draw(st.lists(st.sampled_from(keys), unique=True) if keys else st.just([]))),
    }
    for name, members in chosen.items():
        engine.define_static(name, sorted(members))
    engine.define("pro", 'plan = "pro"')
    chosen["pro"] = {k for k, p in profiles.items() if p["plan"] == "pro"}
    names = data.draw(st.permutations(["s1", "s2", "pro"]))
    table = engine.compare(names, ALL_METRICS, confidence=confidence)
    assert table.segments == tuple(names)
    assert [row.segment for row in table.rows] == list(names)
    for name in names:
        row = table[name]
        assert row.size == len(chosen[name])
        assert set(row.members) == chosen[name]
        for metric in ALL_METRICS:
            got = table[name, metric.label]
            want = _reference(metric.label, profiles, chosen[name], confidence)
            assert got.n == want[3], (name, metric.label)
            for actual, expected in zip((got.value, got.low, got.high), want[:3], strict=True):
                assert _close(actual, expected), (name, metric.label, got, want)
            if metric.label == "sum(visits)" and got.value is not None:
                assert got.value == want[0]
                assert type(got.value) is int


def test_median_of_an_even_count_is_the_mean_of_the_middle_two() -> None:
    """Medians follow statistics.median; with 6+ values the interval is two order statistics."""
    engine = sk.Engine(SCHEMA)
    values = [5.0, 1.0, 9.0, 3.0, 7.0, 11.0, 2.0, 8.0]
    engine.upsert_many({f"k{i}": {"ltv": v} for i, v in enumerate(values)})
    engine.define("all", "ltv is known")
    got = engine.compare(["all"], [metrics.median("ltv")])["all", "median(ltv)"]
    assert got == MetricValue(6.0, 1.0, 11.0, 8)  # ranks (1, 8) for n=8 at 95%


# --- Comparison: access, rendering, errors -------------------------------------------------


@pytest.fixture
def shop() -> sk.Engine:
    engine = sk.Engine(SCHEMA, clock=lambda: NOW)
    engine.upsert_many(
        {
            "a": {"plan": "pro", "ltv": 120.0, "is_customer": True, "nps": 10, "csat": 5},
            "b": {"plan": "pro", "ltv": 80.0, "is_customer": True, "nps": 9, "csat": 4},
            "c": {"plan": "pro", "is_customer": False, "nps": 3},
            "d": {"plan": "free", "ltv": 10.0, "is_customer": False, "nps": 7, "csat": 2},
            "e": {"plan": "free", "ltv": 30.0, "nps": 0, "csat": 5},
        }
    )
    engine.track_many(
        [
            sk.Event("a", "purchase", NOW - timedelta(days=2), {"amount": 10.0}),
            sk.Event("d", "purchase", NOW - timedelta(days=20), {"amount": 5.0}),
        ]
    )
    engine.define("pro", 'plan = "pro"')
    engine.define("free", 'plan = "free"')
    engine.define("recent_buyers", "did purchase in last 7d")
    return engine


def test_comparison_table_and_access(shop: sk.Engine) -> None:
    """The table has one line per segment; rows and values are reachable by name and label."""
    table = shop.compare(
        ["pro", "free"],
        [
            metrics.count(),
            metrics.mean("ltv"),
            metrics.rate("is_customer"),
            metrics.nps("nps"),
            metrics.csat("csat"),
        ],
    )
    assert repr(table) == (
        "Comparison of 2 segments (95% confidence)\n"
        "  segment  members  count  mean(ltv)                rate(is_customer)         nps(nps)                  csat(csat)\n"
        "  pro            3  3      100 [-154.1, 354.1] n=2  66.7% [20.8%, 93.9%] n=3  33.3 [-73.4, 100.0] n=3   100.0% [34.2%, 100.0%] n=2\n"
        "  free           2  2      20 [-107.1, 147.1] n=2   0.0% [0.0%, 79.3%] n=1    -50.0 [-100.0, 19.3] n=2  50.0% [9.5%, 90.5%] n=2"
    )
    assert table.labels == ["count", "mean(ltv)", "rate(is_customer)", "nps(nps)", "csat(csat)"]
    assert isinstance(table["pro"], ComparisonRow)
    assert table["pro", "count"] == MetricValue(3, 3, 3, 3)
    assert table["pro", metrics.mean("ltv")] is table["pro"]["mean(ltv)"]
    assert table["free"][metrics.rate("is_customer")].n == 1
    assert table.members("pro").keys() == ["a", "b", "c"]
    assert [row.segment for row in table] == ["pro", "free"]
    assert len(table) == 2
    assert table.now == NOW
    assert table.confidence == 0.95
    with pytest.raises(KeyError) as no_segment:
        table["por"]
    assert no_segment.value.args[0] == "no segment 'por' in this comparison (did you mean 'pro'?)"
    with pytest.raises(KeyError) as no_metric:
        table["pro", "mean(lvt)"]
    assert (
        no_metric.value.args[0]
        == "no metric 'mean(lvt)' in this comparison (did you mean 'mean(ltv)'?)"
    )


def test_comparison_to_dict(shop: sk.Engine) -> None:
    """to_dict holds the options, the metrics and every value, in plain types."""
    d = shop.compare(["free"], [metrics.mean("ltv")], confidence=0.9).to_dict()
    assert d["confidence"] == 0.9
    assert d["now"] == "2024-06-30T12:00:00+00:00"
    assert d["metrics"] == [
        {"kind": "mean", "label": "mean(ltv)", "attribute": "ltv", "rule": None}
    ]
    row = d["rows"][0]
    assert (row["segment"], row["size"]) == ("free", 2)
    value = row["values"]["mean(ltv)"]
    assert value["value"] == 20.0
    assert value["n"] == 2
    t = _stats.student_t_quantile(0.95, 1)
    assert value["low"] == pytest.approx(20 - t * statistics.stdev([10.0, 30.0]) / math.sqrt(2))


def test_rule_rates_are_evaluated_at_now(shop: sk.Engine) -> None:
    """A rule-based rate reads the engine at ``now``; a time-relative segment too."""
    conversion = metrics.conversion("did purchase in last 7d")
    at_clock = shop.compare(["pro", "free"], [conversion])
    assert at_clock["pro", conversion].value == pytest.approx(1 / 3)
    assert at_clock["free", conversion].value == 0.0
    later = shop.compare(
        ["pro", "free", "recent_buyers"], [conversion], now=NOW + timedelta(days=10)
    )
    assert later["pro", conversion].value == 0.0
    assert later["recent_buyers"].size == 0  # evaluated at now, not the stored membership
    assert later.now == NOW + timedelta(days=10)
    assert shop.members("recent_buyers").keys() == ["a"]  # nothing stored
    earlier = shop.compare(["free"], [conversion], now=NOW - timedelta(days=15))
    assert earlier["free", conversion] == MetricValue(0.5, *_stats.wilson_interval(1, 2, 0.95), 2)


def test_missing_values_are_skipped_and_an_empty_segment_has_no_value(shop: sk.Engine) -> None:
    """n counts members with a value; with none, value and interval are None."""
    shop.define("nobody", "visits > 3")
    table = shop.compare(
        ["pro", "nobody"], [metrics.mean("ltv"), metrics.rate("is_customer"), metrics.count()]
    )
    assert table["pro", "mean(ltv)"].n == 2
    for label in ("mean(ltv)", "rate(is_customer)"):
        assert table["nobody", label] == MetricValue(None, None, None, 0)
    assert table["nobody", "count"] == MetricValue(0, 0, 0, 0)
    shop.upsert("e", {"ltv": None})
    single = shop.compare(
        ["free"], [metrics.mean("ltv"), metrics.median("ltv"), metrics.sum("ltv")]
    )
    assert single["free", "mean(ltv)"] == MetricValue(10.0, None, None, 1)
    assert single["free", "median(ltv)"] == MetricValue(10.0, None, None, 1)
    assert single["free", "sum(ltv)"] == MetricValue(10.0, None, None, 1)


def test_wider_confidence_gives_wider_intervals(shop: sk.Engine) -> None:
    """A 99% interval contains the 90% one."""
    m = [metrics.mean("ltv"), metrics.nps("nps"), metrics.rate("is_customer")]
    narrow = shop.compare(["pro"], m, confidence=0.9)
    wide = shop.compare(["pro"], m, confidence=0.99)
    for metric in m:
        a, b = narrow["pro", metric], wide["pro", metric]
        assert b.low is not None
        assert a.low is not None
        assert a.high is not None
        assert b.high is not None
        assert b.low <= a.low <= a.high <= b.high


def test_nps_scores_outside_0_to_10_raise_or_are_skipped(shop: sk.Engine) -> None:
    """A score that is not a whole number 0..10 raises a SchemaError naming the member, or is skipped."""
    shop.upsert("b", {"nps": 11})
    with pytest.raises(sk.SchemaError) as info:
        shop.compare(["pro"], [metrics.nps("nps")])
    assert str(info.value) == (
        "nps(nps): member 'b' has 11, but an NPS answer is a whole number from 0 to 10 "
        "(pass invalid='skip' to leave such values out)"
    )
    assert (info.value.key, info.value.field, info.value.value) == ("b", "nps", 11)
    skipped = shop.compare(["pro"], [metrics.nps("nps", invalid="skip")])["pro", "nps(nps)"]
    assert (skipped.value, skipped.n) == (0.0, 2)  # a promoter and a detractor remain


def test_nps_of_float_scores_accepts_whole_numbers_only() -> None:
    """A float attribute may hold NPS answers; 8.0 counts, 7.5 is not an answer."""
    engine = sk.Engine(sk.Schema(attributes={"score": "float"}))
    engine.upsert_many({"a": {"score": 10.0}, "b": {"score": 8.0}, "c": {"score": 7.5}})
    engine.define("all", "score is known")
    got = engine.compare(["all"], [metrics.nps("score", invalid="skip")])["all", "nps(score)"]
    assert (got.value, got.n) == (50.0, 2)
    with pytest.raises(sk.SchemaError, match=r"^nps\(score\): member 'c' has 7\.5, "):
        engine.compare(["all"], [metrics.nps("score")])


def test_csat_counts_the_satisfied_values_of_any_scale() -> None:
    """CSAT is the share of answers within ``satisfied``: numbers or labels."""
    engine = sk.Engine(sk.Schema(attributes={"mood": "string", "stars": "float"}))
    engine.upsert_many(
        {
            "a": {"mood": "happy", "stars": 5.0},
            "b": {"mood": "fine", "stars": 4.0},
            "c": {"mood": "sad", "stars": 1.0},
            "d": {"stars": 3.5},
        }
    )
    engine.define("all", "stars is known")
    table = engine.compare(
        ["all"], [metrics.csat("mood", satisfied=["happy", "fine"]), metrics.csat("stars")]
    )
    assert table["all", "csat(mood, satisfied=['happy', 'fine'])"].value == pytest.approx(2 / 3)
    assert table["all", "csat(stars)"].value == 0.5


def test_compare_rejects_bad_input_precisely(shop: sk.Engine) -> None:
    """Bad names, metrics, confidence or now raise before anything is measured."""
    m = [metrics.count()]
    cases: list[tuple[Any, type[Exception], str]] = [
        (lambda: shop.compare("pro", m), TypeError, "names must be a list of segment names, not a single string (wrap it in a list)"),
        (lambda: shop.compare([], m), ValueError, "compare needs at least one segment name"),
        (lambda: shop.compare(["pro", "pro"], m), ValueError, "segment 'pro' is named twice"),
        (lambda: shop.compare([3], m), TypeError, "segment names are strings, got 3"),
        (lambda: shop.compare(["pro"], []), ValueError, "compare needs at least one metric"),
        (lambda: shop.compare(["pro"], "mean(ltv)"), TypeError, "metrics must be a list of metrics such as [segkit.metrics.mean('ltv')], got 'mean(ltv)'"),
        (lambda: shop.compare(["pro"], ["ltv"]), TypeError, "metrics[0] must be a metric such as segkit.metrics.mean('ltv'), got 'ltv'"),
        (lambda: shop.compare(["pro"], [metrics.mean("ltv"), metrics.mean("ltv")]), ValueError, "two metrics are labelled 'mean(ltv)': pass label= to tell them apart"),
        (lambda: shop.compare(["pro"], m, confidence=95), ValueError, "confidence must be a number between 0 and 1 (exclusive), got 95"),
    ]  # fmt: skip
    for call, error, message in cases:
        with pytest.raises(error) as info:
            call()
        assert str(info.value) == message
    with pytest.raises(sk.SegmentError, match=r"^unknown segment 'por' \(did you mean 'pro'\?\)$"):
        shop.compare(["pro", "por"], m)
    with pytest.raises(sk.UnknownAttributeError, match=r"^mean\(ltvv\): unknown attribute 'ltvv'"):
        shop.compare(["pro"], [metrics.count(), metrics.mean("ltvv")])
    with pytest.raises(sk.SegmentError, match=r"^unknown segment 'vip'"):
        shop.compare(["pro"], [metrics.rate('in segment "vip"')])
    plain = sk.Engine(sk.Schema(attributes={"x": "int"}))  # no default time zone
    plain.define("some", "x > 1")
    with pytest.raises(ValueError, match=r"^naive now") as naive:
        plain.compare(["some"], m, now=datetime(2024, 1, 1))
    assert str(naive.value) == (
        "naive now 2024-01-01T00:00:00: give it a time zone, or declare Schema(timezone=...)"
    )
    # one metric alone is accepted as a list of one
    assert shop.compare(["pro"], metrics.count())["pro", "count"].value == 3


def test_compare_changes_nothing(shop: sk.Engine) -> None:
    """A comparison stores nothing: segments, memberships and storage are as before."""
    before = {name: shop.members(name) for name in shop.segments}
    stored = shop.storage.list_segments()
    shop.compare(
        shop.segments, [metrics.conversion("did purchase in last 7d")], now=NOW + timedelta(days=30)
    )
    assert {name: shop.members(name) for name in shop.segments} == before
    assert shop.storage.list_segments() == stored


def test_metric_values_render_plainly() -> None:
    """MetricValue prints as value, interval and n; a missing value as a dash."""
    assert str(MetricValue(1234.5, 1000.0, 1500.25, 7)) == "1,234 [1,000, 1,500] n=7"
    assert str(MetricValue(None, None, None, 0)) == "- n=0"
    assert isinstance(metrics.mean("x"), Metric)
    assert Comparison.__name__ == "Comparison"
