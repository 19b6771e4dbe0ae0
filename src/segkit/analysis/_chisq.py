"""The chi-square distribution's survival function, in pure Python (no scipy).

``chi2_sf(x, df)`` is the probability that a chi-square variable with ``df``
degrees of freedom exceeds ``x``: the regularized upper incomplete gamma
function ``Q(df / 2, x / 2)``. It is computed with the power series of the lower
function ``P`` when ``x < a + 1`` and with the continued fraction of ``Q``
otherwise (modified Lentz), the textbook method (Press et al., *Numerical
Recipes*, §6.2), to about 1e-14 relative accuracy.

>>> round(chi2_sf(3.841458820694124, 1), 6)
0.05
>>> round(chi2_sf(9.487729036781154, 4), 6)
0.05

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import math
from typing import Final

__all__ = ["chi2_sf", "gamma_q"]

_EPS: Final = 1e-15
_TINY: Final = 1e-300
_MAX_ITER: Final = 100_000


def _prefactor(a: float, x: float) -> float:
    """``x**a * exp(-x) / Gamma(a)``, computed in logs."""
    return math.exp(a * math.log(x) - x - math.lgamma(a))


def _lower_series(a: float, x: float) -> float:
    """``P(a, x)`` by its power series (converges fast for ``x < a + 1``)."""
    term = total = 1.0 / a
    ap = a
    for _ in range(_MAX_ITER):
        ap += 1.0
        term *= x / ap
        total += term
        if abs(term) < abs(total) * _EPS:
            return min(1.0, total * _prefactor(a, x))
    raise ArithmeticError(f"gamma series did not converge for a={a}, x={x}")  # pragma: no cover


def _upper_fraction(a: float, x: float) -> float:
    """``Q(a, x)`` by its continued fraction (modified Lentz; for ``x >= a + 1``)."""
    b = x + 1.0 - a
    c = 1.0 / _TINY
    d = 1.0 / b
    h = d
    for i in range(1, _MAX_ITER):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        if abs(d) < _TINY:
            d = _TINY  # pragma: no cover
        c = b + an / c
        if abs(c) < _TINY:
            c = _TINY  # pragma: no cover
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS:
            return min(1.0, _prefactor(a, x) * h)
    raise ArithmeticError(f"gamma fraction did not converge for a={a}, x={x}")  # pragma: no cover


def gamma_q(a: float, x: float) -> float:
    """The regularized upper incomplete gamma function ``Q(a, x)``, for ``a > 0``, ``x >= 0``.

    >>> gamma_q(1.0, 0.0), round(gamma_q(1.0, 2.0), 12) == round(math.exp(-2.0), 12)
    (1.0, True)
    """
    if not (a > 0 and math.isfinite(a)):
        raise ValueError(f"gamma_q needs a finite a > 0, got {a!r}")
    if not x >= 0:
        raise ValueError(f"gamma_q needs x >= 0, got {x!r}")
    if x == 0:
        return 1.0
    if math.isinf(x):
        return 0.0
    if x < a + 1.0:
        return max(0.0, 1.0 - _lower_series(a, x))
    return _upper_fraction(a, x)


def chi2_sf(x: float, df: int) -> float:
    """``P(X > x)`` for a chi-square variable ``X`` with ``df >= 1`` degrees of freedom.

    >>> chi2_sf(0.0, 3)
    1.0
    >>> round(chi2_sf(10.827566170662733, 1), 9)
    0.001
    """
    if isinstance(df, bool) or not isinstance(df, int) or df < 1:
        raise ValueError(f"degrees of freedom must be an int >= 1, got {df!r}")
    if not x >= 0:
        raise ValueError(f"a chi-square statistic must be >= 0, got {x!r}")
    return gamma_q(df / 2.0, x / 2.0)
