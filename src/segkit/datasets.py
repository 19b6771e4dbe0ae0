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
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any, Final

import attrs

from segkit.records import Event, Profile
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
_TRACKING: Final = timedelta(days=365)


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


class _Timeline:
    """One profile's events: each strictly after the previous, none after ``now``, at most
    ``limit`` of them."""

    def __init__(self, key: str, start: datetime, now: datetime, limit: int) -> None:
        self.key = key
        self.t = start
        self.now = now
        self.limit = limit
        self.events: list[Event] = []
        self.open = start <= now and limit > 0

    def emit(self, gap_seconds: int, name: str, properties: dict[str, Any] | None = None) -> bool:
        """Add ``name`` ``gap_seconds`` (at least 1) after the previous event; False past now."""
        if not self.open:
            return False
        at = self.t + timedelta(seconds=max(1, gap_seconds))
        if at > self.now:
            self.open = False
            return False
        self.t = at
        self.events.append(Event(self.key, name, at, properties or {}))
        self.open = len(self.events) < self.limit
        return True


def _session(rng: random.Random, line: _Timeline, customer: bool) -> set[str]:
    """One visit: page views, maybe a cart, a checkout, a purchase or an abandoned cart."""
    done: set[str] = set()
    for _ in range(1 + min(5, int(rng.expovariate(1 / 1.5)))):
        if not line.emit(rng.randint(10, 480), "page_view", {"url": rng.choice(_URLS)}):
            return done
        done.add("page_view")
    if rng.random() >= (0.45 if customer else 0.3):
        return done
    cart = [rng.choice(_PRODUCTS) for _ in range(rng.choice((1, 1, 1, 2)))]
    for sku, price in cart:
        if not line.emit(rng.randint(30, 1200), "add_to_cart", {"sku": sku, "price": price}):
            return done
        done.add("add_to_cart")
    bought = False
    if rng.random() < (0.7 if customer else 0.55):
        # most checkouts follow within minutes, some a day or two later
        gap = rng.randint(60, 1800) if rng.random() < 0.8 else rng.randint(3600, 2 * _DAY)
        if not line.emit(gap, "checkout_started"):
            return done
        done.add("checkout_started")
        if rng.random() < (0.8 if customer else 0.6):
            amount = round(sum(price for _, price in cart), 2)
            if not line.emit(
                rng.randint(60, 1200), "purchase", {"amount": amount, "sku": cart[0][0]}
            ):
                return done
            done.add("purchase")
            bought = True
    if (
        not bought
        and rng.random() < 0.8
        and line.emit(rng.randint(3600, 6 * 3600), "cart_abandoned")
    ):
        done.add("cart_abandoned")
    return done


def _lifecycle(rng: random.Random, customer: bool, done: set[str], known: bool) -> str:
    if customer:
        return "evangelist" if rng.random() < 0.1 else "customer"
    if "checkout_started" in done or "purchase" in done:
        return "opportunity"
    if "add_to_cart" in done:
        return "sql"
    if "page_view" in done:
        return "mql" if known else "lead"
    return "subscriber"


def _profile(
    rng: random.Random, index: int, width: int, now: datetime, events_per_profile: float
) -> tuple[Profile, list[Event]]:
    key = f"c-{index:0{width}d}"
    plan = rng.choices(PLANS, weights=_PLAN_WEIGHTS)[0]
    customer = rng.random() < (0.08 if plan == "free" else 0.85)
    signed_up = now.date() - timedelta(days=rng.randrange(5 * 365))
    day_start = datetime(signed_up.year, signed_up.month, signed_up.day, tzinfo=timezone.utc)
    signup_at = day_start + timedelta(
        seconds=int(rng.random() * min(_DAY, (now - day_start).total_seconds()))
    )
    attributes: dict[str, Any] = {
        "country": rng.choices(COUNTRIES, weights=_COUNTRY_WEIGHTS)[0],
        "plan": plan,
        "age": min(80, int(rng.triangular(18, 81, 31))),
        "ltv": round(rng.lognormvariate(_LTV_MU[plan], 0.9), 2),
        "signed_up": signed_up,
        "is_customer": customer,
        "tags": tuple(
            sorted(rng.sample(TAGS, rng.choices((0, 1, 2, 3), weights=(35, 35, 20, 10))[0]))
        ),
    }
    if rng.random() < 0.9:
        attributes["email"] = f"user{index}@{rng.choice(_EMAIL_DOMAINS)}"

    has_email = "email" in attributes
    events: list[Event] = []
    done: set[str] = set()
    if events_per_profile > 0:
        if signup_at >= now - _TRACKING:
            events.append(Event(key, "signup", signup_at))
            done.add("signup")
        if rng.random() < 0.92:  # some profiles never come back
            window = timedelta(days=90 if rng.random() < 0.85 else 365)
            lower = max(signup_at, now - window)
            start = lower + (now - lower) * rng.random() ** 2
            budget = max(1, round(rng.expovariate(1 / events_per_profile)))
            line = _Timeline(key, max(start.replace(microsecond=0), signup_at), now, budget)
            while line.open:
                if (
                    has_email
                    and rng.random() < 0.25
                    and line.emit(
                        rng.randint(3600, 3 * _DAY),
                        "email_open",
                        {"campaign": rng.choice(_CAMPAIGNS)},
                    )
                ):
                    done.add("email_open")
                done |= _session(rng, line, customer)
                line.t += timedelta(seconds=max(3600, int(rng.expovariate(1 / (4 * _DAY)))))
            events.extend(line.events)
    attributes["lifecycle_stage"] = _lifecycle(rng, customer, done, has_email)
    return Profile(key, attributes), events


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
    (mostly paying plans), ``tags``, ``email`` (about 90% of profiles) and
    ``lifecycle_stage``. Events follow a funnel: most profiles view pages, fewer add
    to cart, fewer start a checkout, fewer purchase; unfinished carts are often
    followed by ``cart_abandoned``. A profile's events strictly increase in time,
    come after its signup, mostly lie in the 90 days before ``now`` and never after
    it. ``events_per_profile`` is the rough mean number of events per profile (0
    gives no events).

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
    now = now.astimezone(timezone.utc)
    rng = random.Random(seed)
    width = max(6, len(str(n_profiles)))
    profiles: list[Profile] = []
    events: list[Event] = []
    for index in range(1, n_profiles + 1):
        profile, profile_events = _profile(rng, index, width, now, float(events_per_profile))
        profiles.append(profile)
        events.extend(profile_events)
    events.sort(key=lambda e: (e.at, e.key))
    return Dataset(_SCHEMA, tuple(profiles), tuple(events), now)
