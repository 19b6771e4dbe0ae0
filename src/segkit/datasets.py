"""Deterministic synthetic data for the demo, the docs and the benchmarks.

:func:`generate` builds a population of profiles and a funnel-shaped stream of
events from a seed alone (:class:`random.Random`, no global state): the same
arguments always give the same :class:`Dataset`, on every platform.

>>> ds = generate(20, seed=1)
>>> len(ds.profiles), ds.profiles[0].key, ds.now.isoformat()
(20, 'c-000001', '2024-06-30T12:00:00+00:00')
>>> generate(20, seed=1) == ds
True

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import math
import random
from bisect import bisect_right
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta, timezone
from operator import itemgetter
from typing import Any, Final

import attrs

from segkit.records import Event, Profile, _FrozenDict
from segkit.schema import Schema

__all__ = ["Dataset", "generate"]

#: The default ``now`` of :func:`generate`.
DEFAULT_NOW: Final = datetime(2024, 6, 30, 12, 0, tzinfo=timezone.utc)

#: ISO 3166 alpha-2 codes, most frequent first (weights follow a Zipf law).
COUNTRIES: Final = (
    "US", "GB", "DE", "FR", "CA", "AU", "NL", "ES", "IT", "BR",
    "IN", "JP", "SE", "CH", "BE", "AT", "IE", "DK", "NO", "FI",
    "PL", "PT", "MX", "AR", "CL", "CO", "NZ", "SG", "HK", "KR",
    "ZA", "IL", "AE", "SA", "TR", "CZ", "HU", "RO", "GR", "UA",
    "PH", "ID", "MY", "TH", "VN", "EG", "NG", "KE", "MA", "PE",
)  # fmt: skip
_COUNTRY_WEIGHTS: Final = tuple(1.0 / (rank + 1) ** 1.1 for rank in range(len(COUNTRIES)))

#: Plans, cheapest first, and their weights.
PLANS: Final = ("free", "starter", "pro", "enterprise")
_PLAN_WEIGHTS: Final = (55, 25, 15, 5)
_LTV_MU: Final = {"free": 2.5, "starter": 4.5, "pro": 5.5, "enterprise": 7.0}

#: The tags a profile may carry (0 to 3 of them).
TAGS: Final = (
    "newsletter", "vip", "beta_tester", "webinar", "early_adopter",
    "partner", "referral", "student", "nonprofit", "high_intent",
    "churn_risk", "mobile_user", "desktop_user", "black_friday", "trial_extended",
    "support_ticket", "enterprise_lead", "community", "podcast", "api_user",
)  # fmt: skip

#: Lifecycle stages, earliest first.
LIFECYCLE_STAGES: Final = (
    "subscriber", "lead", "mql", "sql", "opportunity", "customer", "evangelist",
)  # fmt: skip

_URLS: Final = (
    "/", "/pricing", "/features", "/blog", "/blog/segmentation-101",
    "/blog/funnel-metrics", "/docs", "/docs/quickstart", "/integrations",
    "/customers", "/about", "/contact",
)  # fmt: skip
_PRICES: Final = (
    9.99, 14.99, 19.0, 24.5, 29.99, 39.0, 49.99, 59.0, 79.0, 99.0,
    129.0, 149.0, 199.0, 249.0, 299.0, 12.5, 7.99, 34.9, 44.0, 89.99,
)  # fmt: skip
_PRODUCTS: Final = tuple((f"SKU-{1001 + i}", price) for i, price in enumerate(_PRICES))
_CAMPAIGNS: Final = (
    "welcome-1", "welcome-2", "newsletter-04", "newsletter-05", "newsletter-06",
    "spring-sale", "summer-sale", "product-update", "winback", "webinar-invite",
)  # fmt: skip
_EMAIL_DOMAINS: Final = ("example.com", "example.org", "example.net")

_SCHEMA: Final = Schema(
    attributes={
        "country": "string",
        "plan": "string",
        "age": "int",
        "ltv": "float",
        "signed_up": "date",
        "is_customer": "bool",
        "tags": "list[string]",
        "email": "string",
        "nps": "int",
        "lifecycle_stage": "string",
    },
    events={
        "page_view": {"url": "string"},
        "signup": {},
        "add_to_cart": {"sku": "string", "price": "float"},
        "cart_abandoned": {},
        "checkout_started": {},
        "purchase": {"amount": "float", "sku": "string"},
        "email_open": {"campaign": "string"},
    },
    timezone="UTC",
)

_DAY: Final = 86_400
#: Event tracking starts this long before ``now``; older signups have no signup event.
_TRACKING: Final = 365 * _DAY
_UTC: Final = timezone.utc
#: ``(name, properties)`` of the events whose properties come from a short list: the
#: read-only property mappings are built once and shared by every event.
_PAGE_VIEWS: Final = tuple(_FrozenDict({"url": url}) for url in _URLS)
_EMAIL_OPENS: Final = tuple(_FrozenDict({"campaign": c}) for c in _CAMPAIGNS)
_CARTS: Final = tuple(_FrozenDict({"sku": sku, "price": price}) for sku, price in _PRODUCTS)
_NO_PROPERTIES: Final = _FrozenDict()

#: A raw event: (seconds since the epoch, name, properties).
_Raw = tuple[int, str, _FrozenDict]


@attrs.frozen(repr=False)
class Dataset:
    """A synthetic population: its schema, profiles, events (by time) and ``now``.

    >>> ds = generate(5)
    >>> ds
    Dataset(<5 profiles>, <... events>, now=2024-06-30T12:00:00+00:00)
    >>> sorted(ds.schema.events)[:3]
    ['add_to_cart', 'cart_abandoned', 'checkout_started']

    .. versionadded:: 0.1.0
    """

    schema: Schema
    profiles: tuple[Profile, ...]
    events: tuple[Event, ...]
    now: datetime

    def __repr__(self) -> str:
        return (
            f"Dataset(<{len(self.profiles)} profiles>, <{len(self.events)} events>, "
            f"now={self.now.isoformat()})"
        )

    def iter_records(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """``(key, attributes)`` pairs, the shape ``upsert_many`` takes.

        >>> next(generate(1).iter_records())[0]
        'c-000001'
        """
        return ((p.key, dict(p.attributes)) for p in self.profiles)


def _cumulative(weights: tuple[float, ...]) -> tuple[float, ...]:
    """Cumulative weights normalised to end at 1.0, for :func:`_pick`."""
    total = sum(weights)
    running = 0.0
    out = []
    for w in weights:
        running += w
        out.append(running / total)
    out[-1] = 1.0
    return tuple(out)


_COUNTRY_CUM: Final = _cumulative(_COUNTRY_WEIGHTS)
_PLAN_CUM: Final = _cumulative(tuple(float(w) for w in _PLAN_WEIGHTS))
_TAG_COUNT_CUM: Final = _cumulative((35.0, 35.0, 20.0, 10.0))
#: Survey answers (0-10): customers lean to promoters, others to passives and detractors.
_NPS_CUSTOMER: Final = _cumulative((1, 1, 1, 2, 2, 4, 6, 12, 20, 25, 26))
_NPS_OTHER: Final = _cumulative((4, 3, 4, 5, 6, 10, 12, 18, 16, 12, 10))


def _pick(cum: tuple[float, ...], u: float) -> int:
    """The index that ``u`` (in [0, 1)) falls into in cumulative weights ``cum``."""
    return bisect_right(cum, u)


class _Timeline:
    """One profile's events, in whole seconds: each strictly after the previous, none
    after ``now``, at most ``limit`` of them."""

    __slots__ = ("events", "limit", "now", "open", "t")

    def __init__(self, start: int, now: int, limit: int) -> None:
        self.t = start
        self.now = now
        self.limit = limit
        self.events: list[_Raw] = []
        self.open = start <= now and limit > 0

    def emit(self, gap: int, name: str, properties: _FrozenDict) -> bool:
        """Add ``name`` ``gap`` seconds (at least 1) after the previous event; False past now."""
        if not self.open:
            return False
        at = self.t + (gap if gap > 1 else 1)
        if at > self.now:
            self.open = False
            return False
        self.t = at
        events = self.events
        events.append((at, name, properties))
        self.open = len(events) < self.limit
        return True


def _session(rnd: Callable[[], float], line: _Timeline, customer: bool) -> int:
    """One visit: page views, maybe a cart, a checkout, a purchase or an abandoned cart.

    Returns the furthest funnel stage reached: 1 page view, 2 cart, 3 checkout,
    4 purchase (0: nothing happened).
    """
    stage = 0
    n_views = 1 + min(5, int(-1.5 * math.log(1.0 - rnd())))
    emit = line.emit
    n_urls = len(_PAGE_VIEWS)
    for _ in range(n_views):
        if not emit(10 + int(rnd() * 471), "page_view", _PAGE_VIEWS[int(rnd() * n_urls)]):
            return stage
        stage = 1
    if rnd() >= (0.45 if customer else 0.3):
        return stage
    n_carts = 2 if rnd() < 0.25 else 1
    cart = [int(rnd() * len(_CARTS)) for _ in range(n_carts)]
    for item in cart:
        if not emit(30 + int(rnd() * 1171), "add_to_cart", _CARTS[item]):
            return stage
        stage = 2
    bought = False
    if rnd() < (0.7 if customer else 0.55):
        # most checkouts follow within minutes, some a day or two later
        gap = 60 + int(rnd() * 1741) if rnd() < 0.8 else 3600 + int(rnd() * (2 * _DAY - 3599))
        if not emit(gap, "checkout_started", _NO_PROPERTIES):
            return stage
        stage = 3
        if rnd() < (0.8 if customer else 0.6):
            amount = round(sum(_PRODUCTS[i][1] for i in cart), 2)
            sku = _PRODUCTS[cart[0]][0]
            purchase = _FrozenDict({"amount": amount, "sku": sku})
            if not emit(60 + int(rnd() * 1141), "purchase", purchase):
                return stage
            stage = 4
            bought = True
    if not bought and rnd() < 0.8:
        emit(3600 + int(rnd() * 18001), "cart_abandoned", _NO_PROPERTIES)
    return stage


def _lifecycle(rnd: Callable[[], float], customer: bool, stage: int, known: bool) -> str:
    if customer:
        return "evangelist" if rnd() < 0.1 else "customer"
    if stage >= 3:
        return "opportunity"
    if stage == 2:
        return "sql"
    if stage == 1:
        return "mql" if known else "lead"
    return "subscriber"


def _profile(
    rng: random.Random, index: int, key: str, now: int, today: date, events_per_profile: float
) -> tuple[Profile, list[_Raw]]:
    rnd = rng.random
    plan = PLANS[_pick(_PLAN_CUM, rnd())]
    customer = rnd() < (0.08 if plan == "free" else 0.85)
    age_days = int(rnd() * 5 * 365)
    signed_up = today - timedelta(days=age_days)
    day_start = now - now % _DAY - age_days * _DAY
    signup_at = day_start + int(rnd() * min(_DAY, now - day_start))
    attributes: dict[str, Any] = {
        "country": COUNTRIES[_pick(_COUNTRY_CUM, rnd())],
        "plan": plan,
        "age": min(80, int(rng.triangular(18, 81, 31))),
        "ltv": round(math.exp(_LTV_MU[plan] + 0.9 * rng.gauss(0.0, 1.0)), 2),
        "signed_up": signed_up,
        "is_customer": customer,
        "tags": tuple(sorted(rng.sample(TAGS, _pick(_TAG_COUNT_CUM, rnd())))),
    }
    if rnd() < 0.9:
        attributes["email"] = f"user{index}@{_EMAIL_DOMAINS[int(rnd() * 3)]}"
    if rnd() < 0.3:  # answered the satisfaction survey
        attributes["nps"] = _pick(_NPS_CUSTOMER if customer else _NPS_OTHER, rnd())

    has_email = "email" in attributes
    raw: list[_Raw] = []
    stage = 0
    if events_per_profile > 0:
        if signup_at >= now - _TRACKING:
            raw.append((signup_at, "signup", _NO_PROPERTIES))
        if rnd() < 0.92:  # some profiles never come back
            window = 90 * _DAY if rnd() < 0.85 else 365 * _DAY
            lower = max(signup_at, now - window)
            start = max(lower + int((now - lower) * rnd() ** 2), signup_at)
            budget = max(1, round(-events_per_profile * math.log(1.0 - rnd())))
            line = _Timeline(start, now, budget)
            n_campaigns = len(_EMAIL_OPENS)
            while line.open:
                if has_email and rnd() < 0.25:
                    gap = 3600 + int(rnd() * (3 * _DAY - 3599))
                    line.emit(gap, "email_open", _EMAIL_OPENS[int(rnd() * n_campaigns)])
                stage = max(stage, _session(rnd, line, customer))
                line.t += max(3600, int(-4 * _DAY * math.log(1.0 - rnd())))
            raw.extend(line.events)
    attributes["lifecycle_stage"] = _lifecycle(rnd, customer, stage, has_email)
    return Profile(key, attributes), raw


def generate(
    n_profiles: int = 500,
    *,
    seed: int = 7,
    now: datetime | None = None,
    events_per_profile: float = 8.0,
) -> Dataset:
    """A deterministic synthetic population of ``n_profiles`` profiles and their events.

    Profiles are keyed ``"c-000001"``, ``"c-000002"``, … and carry ``country``
    (Zipf-skewed), ``plan``, ``age``, ``ltv``, ``signed_up``, ``is_customer``
    (mostly paying plans), ``tags``, ``email`` (about 90% of profiles), ``nps``
    (a 0-10 survey score, about 30% of profiles; customers score higher) and
    ``lifecycle_stage``. Events follow a funnel: most profiles view pages, fewer add
    to cart, fewer start a checkout, fewer purchase; unfinished carts are often
    followed by ``cart_abandoned``. A profile's events strictly increase in time
    (whole seconds), come after its signup, mostly lie in the 90 days before
    ``now`` and never after it. ``events_per_profile`` is the rough mean number of
    events per profile (0 gives no events). 50,000 profiles with 10 events each take
    a few seconds.

    >>> ds = generate(3, seed=42, events_per_profile=0)
    >>> ds.events
    ()
    >>> sorted(ds.profiles[0].attributes)[:4]
    ['age', 'country', 'email', 'is_customer']

    .. versionadded:: 0.1.0
    """
    if isinstance(n_profiles, bool) or not isinstance(n_profiles, int) or n_profiles < 0:
        raise ValueError(f"n_profiles must be a non-negative int, got {n_profiles!r}")
    if not (isinstance(events_per_profile, (int, float)) and math.isfinite(events_per_profile)):
        raise ValueError(f"events_per_profile must be a finite number, got {events_per_profile!r}")
    if events_per_profile < 0:
        raise ValueError(f"events_per_profile must not be negative, got {events_per_profile!r}")
    if now is None:
        now = DEFAULT_NOW
    elif now.tzinfo is None or now.tzinfo.utcoffset(now) is None:
        raise ValueError(f"now must be an aware datetime, got naive {now.isoformat()}")
    now = now.astimezone(_UTC)
    # whole seconds from here on; the microseconds of ``now`` only bound the events
    now_s = math.floor(now.timestamp())
    today = now.date()
    rng = random.Random(seed)
    width = max(6, len(str(n_profiles)))
    profiles: list[Profile] = []
    raw: list[tuple[int, str, str, _FrozenDict]] = []
    add = raw.append
    rate = float(events_per_profile)
    for index in range(1, n_profiles + 1):
        key = f"c-{index:0{width}d}"
        profile, profile_events = _profile(rng, index, key, now_s, today, rate)
        profiles.append(profile)
        for at, name, properties in profile_events:
            add((at, key, name, properties))
    raw.sort(key=itemgetter(0, 1))
    epoch = datetime(1970, 1, 1, tzinfo=_UTC)
    moments: dict[int, datetime] = {}
    events: list[Event] = []
    for at, key, name, properties in raw:
        moment = moments.get(at)
        if moment is None:
            moment = moments[at] = epoch + timedelta(seconds=at)
        events.append(Event(key, name, moment, properties))
    return Dataset(_SCHEMA, tuple(profiles), tuple(events), now)
