"""Pure-Python statistics for the segment metrics: quantiles, intervals and tests.

Everything here works on plain numbers, so the core needs neither numpy nor scipy:

* :func:`normal_quantile` and :func:`student_t_quantile` (the two-sided critical
  values of confidence intervals), :func:`student_t_two_sided` and
  :func:`normal_two_sided` (two-sided p-values);
* :func:`regularized_beta`, the regularized incomplete beta function ``I_x(a, b)``
  (a Lentz continued fraction) behind the Student t distribution;
* :func:`binomial_half_cdf`, ``P(B <= k)`` for ``B ~ Binomial(n, 1/2)`` (the
  order-statistic interval for a median);
* :func:`wilson_interval`, :func:`mean_interval`, :func:`median_interval`,
  :func:`nps_interval`.

>>> round(student_t_quantile(0.975, 10), 3)
2.228
>>> wilson_interval(0, 10, 0.95)[0]
0.0

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist
from typing import Final

__all__ = [
    "binomial_half_cdf",
    "check_confidence",
    "critical_t",
    "critical_z",
    "mean_interval",
    "median_interval",
    "median_ranks",
    "normal_quantile",
    "normal_two_sided",
    "nps_interval",
    "regularized_beta",
    "student_t_cdf",
    "student_t_quantile",
    "student_t_two_sided",
    "wilson_interval",
]

_STANDARD: Final = NormalDist()
#: Relative precision the continued fraction and the quantile iterations stop at.
_EPS: Final = 1e-15
_TINY: Final = 1e-300
#: Binomial tails are summed exactly, with integers, up to this many trials.
_EXACT_BINOMIAL: Final = 2000


def check_confidence(confidence: object) -> float:
    """``confidence`` as a float strictly between 0 and 1, or a precise error.

    >>> check_confidence(0.9)
    0.9
    >>> check_confidence(95)
    Traceback (most recent call last):
    ...
    ValueError: confidence must be a number between 0 and 1 (exclusive), got 95
    """
    if (
        isinstance(confidence, bool)
        or not isinstance(confidence, (int, float))
        or not 0 < confidence < 1
    ):
        raise ValueError(
            f"confidence must be a number between 0 and 1 (exclusive), got {confidence!r}"
        )
    return float(confidence)


def normal_quantile(p: float) -> float:
    """The standard normal quantile: ``x`` with ``P(Z <= x) = p`` (``0 < p < 1``).

    >>> round(normal_quantile(0.975), 4)
    1.96
    """
    return _STANDARD.inv_cdf(p)


def critical_z(confidence: float) -> float:
    """The two-sided normal critical value: ``normal_quantile((1 + confidence) / 2)``.

    >>> round(critical_z(0.95), 6)
    1.959964
    """
    return normal_quantile(0.5 + confidence / 2)


def normal_two_sided(z: float) -> float:
    """The two-sided p-value of a standard normal statistic: ``P(|Z| >= |z|)``.

    >>> round(normal_two_sided(1.959964), 4)
    0.05
    """
    return math.erfc(abs(z) / math.sqrt(2))


def regularized_beta(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function ``I_x(a, b)`` for ``a, b > 0``.

    Evaluated with the modified Lentz continued fraction, on the side of the
    symmetry ``I_x(a, b) = 1 - I_(1-x)(b, a)`` where it converges fast.

    >>> regularized_beta(2.0, 3.0, 0.0), regularized_beta(2.0, 3.0, 1.0)
    (0.0, 1.0)
    >>> round(regularized_beta(2.0, 3.0, 0.4), 10)  # 1 - P(Bin(4, .4) <= 1)
    0.5248
    """
    if a <= 0 or b <= 0:
        raise ValueError(f"regularized_beta needs a > 0 and b > 0, got a={a!r}, b={b!r}")
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1) / (a + b + 2):
        return math.exp(log_front) * _beta_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_fraction(b, a, 1.0 - x) / b


def _beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function (modified Lentz)."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = 1.0
    d = 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    h = d
    # converges in O(sqrt(max(a, b))) steps in the worst case
    limit = 1000 + 20 * math.isqrt(int(max(a, b)) + 1)
    for m in range(1, limit + 1):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = 1.0 + aa / c
        c = c if abs(c) > _TINY else _TINY
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = 1.0 + aa / c
        c = c if abs(c) > _TINY else _TINY
        step = d * c
        h *= step
        if abs(step - 1.0) < _EPS:
            return h
    raise ArithmeticError(
        f"the incomplete beta fraction did not converge (a={a!r}, b={b!r}, x={x!r})"
    )  # pragma: no cover - the limit is generous


def _check_df(df: float) -> None:
    if not df > 0 or math.isinf(df):
        raise ValueError(f"degrees of freedom must be a positive finite number, got {df!r}")


def student_t_cdf(t: float, df: float) -> float:
    """``P(T <= t)`` for Student's t distribution with ``df > 0`` degrees of freedom.

    >>> student_t_cdf(0.0, 4)
    0.5
    >>> round(student_t_cdf(2.776445, 4), 6)
    0.975
    """
    _check_df(df)
    tail = 0.5 * regularized_beta(df / 2, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def student_t_two_sided(t: float, df: float) -> float:
    """The two-sided p-value ``P(|T| >= |t|)`` with ``df`` degrees of freedom.

    >>> round(student_t_two_sided(2.228139, 10), 5)
    0.05
    """
    _check_df(df)
    if t == 0:
        return 1.0
    return regularized_beta(df / 2, 0.5, df / (df + t * t))


def _t_pdf(t: float, df: float) -> float:
    log_pdf = (
        math.lgamma((df + 1) / 2)
        - math.lgamma(df / 2)
        - 0.5 * math.log(df * math.pi)
        - (df + 1) / 2 * math.log1p(t * t / df)
    )
    return math.exp(log_pdf)


def student_t_quantile(p: float, df: float) -> float:
    """The Student t quantile: ``t`` with ``P(T <= t) = p``, for ``0 < p < 1`` and ``df > 0``.

    Exact closed forms for 1 and 2 degrees of freedom; otherwise Newton's method on
    :func:`student_t_cdf` from the Cornish-Fisher expansion, kept inside a bracket.

    >>> [round(student_t_quantile(0.975, df), 3) for df in (1, 2, 5, 30)]
    [12.706, 4.303, 2.571, 2.042]
    >>> round(student_t_quantile(0.025, 5), 3)
    -2.571
    """
    if not 0 < p < 1:
        raise ValueError(f"a quantile needs 0 < p < 1, got {p!r}")
    _check_df(df)
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -student_t_quantile(1.0 - p, df)
    if df == 1:
        return math.tan(math.pi * (p - 0.5))
    if df == 2:
        return (2 * p - 1) / math.sqrt(2 * p * (1 - p))
    # p > 0.5 from here on: the quantile is positive
    z = normal_quantile(p)
    z2 = z * z
    guess = (
        z
        + z * (z2 + 1) / (4 * df)
        + z * ((5 * z2 + 16) * z2 + 3) / (96 * df * df)
        + z * (((3 * z2 + 19) * z2 + 17) * z2 - 15) / (384 * df**3)
    )
    lo, hi = 0.0, math.inf
    t = guess if guess > 0 else z
    for _ in range(200):
        err = student_t_cdf(t, df) - p
        if err > 0:
            hi = min(hi, t)
        else:
            lo = max(lo, t)
        step = err / _t_pdf(t, df)
        nxt = t - step
        if not lo < nxt < hi:  # Newton left the bracket: bisect (or double) instead
            nxt = (lo + hi) / 2 if hi < math.inf else max(2 * t, 1.0)
        if abs(nxt - t) <= _EPS * 8 * abs(nxt):
            return nxt
        t = nxt
    return t  # pragma: no cover - Newton converges in a handful of steps


def critical_t(confidence: float, df: float) -> float:
    """The two-sided Student t critical value: ``student_t_quantile((1 + confidence) / 2, df)``.

    >>> round(critical_t(0.95, 10), 3)
    2.228
    """
    return student_t_quantile(0.5 + confidence / 2, df)


def wilson_interval(successes: int, n: int, confidence: float) -> tuple[float, float]:
    """The Wilson score interval of a proportion ``successes / n`` (``n >= 1``).

    ``(p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)`` with the normal critical
    value ``z``; the low end is exactly 0.0 when there are no successes and the
    high end exactly 1.0 when all are.

    >>> low, high = wilson_interval(5, 10, 0.95)
    >>> round(low, 4), round(high, 4)
    (0.2366, 0.7634)
    """
    if n < 1 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n and n >= 1, got {successes} of {n}")
    z = critical_z(confidence)
    p = successes / n
    z2n = z * z / n
    center = (p + z2n / 2) / (1 + z2n)
    half = z / (1 + z2n) * math.sqrt(p * (1 - p) / n + z2n / (4 * n))
    low = 0.0 if successes == 0 else max(0.0, center - half)
    high = 1.0 if successes == n else min(1.0, center + half)
    return low, high


def mean_interval(
    mean: float, stdev: float, n: int, confidence: float
) -> tuple[float, float] | None:
    """Student t interval of a mean: ``mean ± t(n-1) · stdev / sqrt(n)``; ``None`` for ``n < 2``.

    ``stdev`` is the sample standard deviation (divisor ``n - 1``).

    >>> low, high = mean_interval(10.0, 2.0, 11, 0.95)
    >>> round(low, 4), round(high, 4)
    (8.6564, 11.3436)
    >>> mean_interval(10.0, 0.0, 1, 0.95) is None
    True
    """
    if n < 2:
        return None
    half = critical_t(confidence, n - 1) * stdev / math.sqrt(n)
    return mean - half, mean + half


def binomial_half_cdf(k: int, n: int) -> float:
    """``P(B <= k)`` for ``B ~ Binomial(n, 1/2)``.

    Exact (integer binomial coefficients, one correctly rounded division) for
    ``n <= 2000``; above, sums the probability mass from ``k`` down (from
    ``n - k`` for the upper half, by symmetry) until the terms no longer change the
    sum, in about ``sqrt(n)`` steps, to a relative precision of about 1e-12.

    >>> binomial_half_cdf(0, 3), binomial_half_cdf(1, 3), binomial_half_cdf(3, 3)
    (0.125, 0.5, 1.0)
    """
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    if n <= _EXACT_BINOMIAL:
        coefficient = total_count = 1
        for i in range(k):
            coefficient = coefficient * (n - i) // (i + 1)
            total_count += coefficient
        return total_count / (1 << n)
    if 2 * k > n:  # P(B <= k) = 1 - P(B <= n - k - 1)
        return 1.0 - binomial_half_cdf(n - k - 1, n)
    log_term = math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) - n * math.log(2)
    term = math.exp(log_term)
    total = 0.0
    i = k
    while term > 0.0 and i >= 0:
        total += term
        if term < total * 1e-17:
            break
        term *= i / (n - i + 1)  # pmf(i - 1) / pmf(i)
        i -= 1
    return min(1.0, total)


def median_ranks(n: int, confidence: float) -> tuple[int, int] | None:
    """The 1-based order-statistic ranks ``(j, n + 1 - j)`` of a median's interval.

    ``j`` is the largest rank with ``P(B <= j - 1) <= (1 - confidence) / 2`` for
    ``B ~ Binomial(n, 1/2)``, so ``[x_(j), x_(n+1-j)]`` covers the median with
    probability at least ``confidence`` whatever the distribution (for continuous
    data). ``None`` when even the whole range does not reach that: fewer than 6 values
    at 95%.

    >>> median_ranks(10, 0.95), median_ranks(100, 0.95), median_ranks(5, 0.95)
    ((2, 9), (40, 61), None)
    """
    tail = (1 - confidence) / 2
    if n < 1 or binomial_half_cdf(0, n) > tail:
        return None
    lo, hi = 1, (n + 1) // 2  # cdf(lo - 1) <= tail holds at lo; find the largest such rank
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if binomial_half_cdf(mid - 1, n) <= tail:
            lo = mid
        else:
            hi = mid - 1
    return lo, n + 1 - lo


def median_interval(ordered: Sequence[float], confidence: float) -> tuple[float, float] | None:
    """The distribution-free interval of the median of sorted values (see :func:`median_ranks`).

    >>> median_interval(list(range(1, 11)), 0.95)
    (2, 9)
    """
    ranks = median_ranks(len(ordered), confidence)
    if ranks is None:
        return None
    return ordered[ranks[0] - 1], ordered[ranks[1] - 1]


def nps_interval(promoters: int, detractors: int, n: int, confidence: float) -> tuple[float, float]:
    """Normal-approximation interval of a Net Promoter Score, clamped to -100..100.

    With shares ``p`` (promoters) and ``d`` (detractors), the score ``100 (p - d)``
    has the multinomial variance ``(p + d - (p - d)²) / n`` (times 100²).

    >>> low, high = nps_interval(50, 20, 100, 0.95)
    >>> round(low, 2), round(high, 2)
    (14.69, 45.31)
    """
    if n < 1:
        raise ValueError(f"need n >= 1, got {n}")
    p, d = promoters / n, detractors / n
    score = 100 * (p - d)
    half = 100 * critical_z(confidence) * math.sqrt(max(0.0, p + d - (p - d) ** 2) / n)
    return max(-100.0, score - half), min(100.0, score + half)
