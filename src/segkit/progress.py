"""Progress of long operations: the ``progress=`` keyword of bulk loads, refresh and funnels.

Every long operation (:meth:`Engine.upsert_many <segkit.Engine.upsert_many>`,
``track_many``, ``upsert_frame``, ``track_frame``, ``refresh``, ``define``,
``funnel``, and :meth:`Funnel.run <segkit.Funnel.run>`) takes a ``progress=``
keyword, a :data:`ProgressLike`:

* ``None`` or ``False`` (the default): nothing is reported, at no cost;
* a callable ``progress(done, total)``: called with the number of items done so far
  and their total (``None`` when the input has no length, such as a generator), at
  most about 100 times, and always once at the end, with ``done == total``;
* ``True``: a `tqdm <https://tqdm.github.io>`_ progress bar on stderr (the
  ``progress`` extra: ``pip install 'segkit[progress]'``).

What an item is depends on the operation: a record for ``upsert_many``, an event
for ``track_many``, a segment for ``refresh``, a profile checked one by one for
``define``, an entity for a funnel. The calls
report the items read and checked; the last call comes once the operation is
complete. Nothing is reported when the operation raises.

>>> calls = []
>>> reporter = start(lambda done, total: calls.append((done, total)), 250)
>>> for _ in reporter.iterate(range(250)):
...     pass
>>> reporter.finish()
>>> calls[:3], calls[-2:], len(calls)
([(3, 250), (6, 250), (9, 250)], [(249, 250), (250, 250)], 84)

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Iterator, Sized
from typing import Any, Final, TypeAlias, TypeVar

__all__ = ["MAX_CALLS", "ProgressLike", "Reporter", "start", "total_of", "tqdm_callback"]

_T = TypeVar("_T")

#: What the ``progress=`` keyword accepts (see the module documentation).
ProgressLike: TypeAlias = Callable[[int, int | None], object] | bool | None

#: At most this many calls before the final one when the total is known.
MAX_CALLS: Final = 100

#: With an unknown total: the first interval, doubled after every ``_DOUBLE_EVERY`` calls.
_FIRST_STEP: Final = 1000
_DOUBLE_EVERY: Final = 10


class Reporter:
    """Counts the items of one operation and calls ``callback(done, total)`` now and then.

    With a known ``total`` the calls come every ``ceil(total / 100)`` items (so at
    most 99 of them, then the final one); with ``total=None`` every 1,000 items,
    an interval that doubles after every 10 calls. :meth:`finish` makes the final
    call, ``(done, done)``. Make one with :func:`start`.

    >>> calls = []
    >>> reporter = Reporter(lambda done, total: calls.append((done, total)), None)
    >>> for _ in reporter.iterate(iter(range(2500))):
    ...     pass
    >>> reporter.finish()
    >>> calls
    [(1000, None), (2000, None), (2500, 2500)]

    .. versionadded:: 0.1.0
    """

    __slots__ = ("_callback", "_calls", "_next", "_step", "done", "total")

    def __init__(self, callback: Callable[[int, int | None], object], total: int | None) -> None:
        self._callback = callback
        self.total = total
        self.done = 0
        self._calls = 0
        self._step = _FIRST_STEP if total is None else max(1, -(-total // MAX_CALLS))
        self._next = self._step

    def advance(self, n: int = 1) -> None:
        """Count ``n`` more items done, calling the callback when an interval is passed.

        >>> calls = []
        >>> reporter = Reporter(lambda *args: calls.append(args), 10)
        >>> reporter.advance(4)
        >>> reporter.advance(3)
        >>> calls
        [(4, 10), (7, 10)]
        """
        self.done += n
        if self.done >= self._next:
            self._report()

    def _report(self) -> None:
        done, total, step = self.done, self.total, self._step
        if total is not None and done >= total:
            self._next = done + step  # the call at the total is finish()'s
            return
        self._callback(done, total)
        self._calls += 1
        if total is None and self._calls % _DOUBLE_EVERY == 0:
            self._step = step = step * 2
        self._next = (done // step + 1) * step

    def iterate(self, items: Iterable[_T]) -> Iterator[_T]:
        """Yield ``items``, counting each one.

        >>> reporter = Reporter(lambda *args: None, None)
        >>> list(reporter.iterate("ab")), reporter.done
        (['a', 'b'], 2)
        """
        step = self.advance
        for item in items:
            yield item
            step()

    def finish(self) -> None:
        """Make the final call, ``(done, done)``: the operation is complete.

        >>> calls = []
        >>> reporter = Reporter(lambda *args: calls.append(args), 2)
        >>> reporter.advance()
        >>> reporter.advance()
        >>> reporter.finish()
        >>> calls
        [(1, 2), (2, 2)]
        """
        self._callback(self.done, self.done)


class _Off:
    """The reporter of ``progress=None``: does nothing."""

    __slots__ = ()

    def iterate(self, items: Iterable[_T]) -> Iterable[_T]:
        return items

    def advance(self, n: int = 1) -> None:
        pass

    def finish(self) -> None:
        pass


_OFF: Final = _Off()


def start(
    progress: ProgressLike, total: int | None = None, *, desc: str | None = None
) -> Reporter | _Off:
    """The reporter of one operation: :class:`Reporter`, or a no-op for ``None``/``False``.

    ``total`` is the number of items when known; ``desc`` labels the tqdm bar of
    ``progress=True``. Raises :class:`TypeError` for anything else than a
    :data:`ProgressLike`, and :class:`ImportError` naming the extra when
    ``progress=True`` and tqdm is not installed.

    >>> start(None, 10).iterate([1, 2])
    [1, 2]
    >>> start("yes")
    Traceback (most recent call last):
    ...
    TypeError: progress must be a callable (done, total), True, False or None; got 'yes' (str)

    .. versionadded:: 0.1.0
    """
    if progress is None or progress is False:
        return _OFF
    if progress is True:
        return Reporter(tqdm_callback(desc), total)
    if not callable(progress):
        raise TypeError(
            "progress must be a callable (done, total), True, False or None; "
            f"got {progress!r} ({type(progress).__name__})"
        )
    return Reporter(progress, total)


def total_of(items: object) -> int | None:
    """``len(items)`` when ``items`` has a length, else None (a generator, an iterator).

    >>> total_of([1, 2]), total_of(iter([1, 2]))
    (2, None)

    .. versionadded:: 0.1.0
    """
    return len(items) if isinstance(items, Sized) else None


def tqdm_callback(desc: str | None = None, **options: Any) -> Callable[[int, int | None], None]:
    """A ``progress(done, total)`` callback that drives a tqdm bar (closed by the final call).

    ``options`` go to ``tqdm.tqdm`` (``file``, ``leave``, ``unit``, …). Needs the
    ``progress`` extra; without tqdm, raises :class:`ImportError` naming it.

    >>> import io
    >>> out = io.StringIO()
    >>> callback = tqdm_callback("load", file=out, ascii=True)
    >>> callback(5, 10)
    >>> callback(10, 10)
    >>> out.getvalue().splitlines()[-1].split("|")[0].strip()
    'load: 100%'

    .. versionadded:: 0.1.0
    """
    try:  # imported by name: tqdm ships no type hints
        tqdm = importlib.import_module("tqdm").tqdm
    except ImportError:
        raise ImportError("progress=True needs tqdm: pip install 'segkit[progress]'") from None
    bar: Any = None

    def callback(done: int, total: int | None) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc=desc, **options)
        if total is not None and bar.total != total:
            bar.total = total
        bar.update(done - bar.n)
        if total is not None and done >= total:
            bar.close()

    return callback
