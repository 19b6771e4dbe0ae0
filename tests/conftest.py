"""Shared pytest configuration: hypothesis profiles chosen by environment variable.

``SEGKIT_HYPOTHESIS_PROFILE`` picks ``dev`` (the default: quick), ``ci`` (the default
when ``CI`` is set: derandomized, so a CI run is reproducible) or ``thorough``
(many more examples, for a local soak).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile("dev", max_examples=100, deadline=None)
settings.register_profile(
    "ci",
    max_examples=200,
    deadline=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("thorough", max_examples=5_000, deadline=None)

_default = "ci" if os.environ.get("CI") else "dev"
settings.load_profile(os.environ.get("SEGKIT_HYPOTHESIS_PROFILE", _default))
