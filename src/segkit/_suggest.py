"""'Did you mean' suggestions shared by the rule checker and record validation."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["SUGGESTION_CUTOFF", "suggest"]

#: Minimum :class:`difflib.SequenceMatcher` ratio for a name to be suggested.
SUGGESTION_CUTOFF = 0.6


def suggest(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate closest to ``name``, if it is similar enough; case-insensitive.

    >>> suggest("contry", ["country", "city", "age"])
    'country'
    >>> suggest("zzz", ["country", "age"]) is None
    True
    """
    pool = {c.casefold(): c for c in candidates}
    exact = pool.get(name.casefold())
    if exact is not None and exact != name:
        return exact
    found = difflib.get_close_matches(name.casefold(), list(pool), n=1, cutoff=SUGGESTION_CUTOFF)
    return pool[found[0]] if found else None
