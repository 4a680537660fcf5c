"""Long C calls split into short ones, so Ctrl-C gets through.

A C call releases the GIL and cannot be interrupted; Python checks for signals (and
raises ``KeyboardInterrupt``) between calls. ``fit`` already trains in chunks of about
0.2 s; ``predict``, ``evaluate`` and ``recommend`` run through :func:`run_chunked`.
"""
import time
from typing import Callable

# each C call of predict / recommend lasts about this long
CHUNK_SECONDS = 0.1
# each C call of fit (and of an ALS sweep) lasts about this long: callbacks and progress
# bars run between them
FIT_CHUNK_SECONDS = 0.2


def next_chunk(done: int, seconds: float, target_seconds: float, minimum: int,
               maximum: int) -> int:
    """Units for the next call, so that it lasts ~``target_seconds`` given that the last
    call did ``done`` units in ``seconds``; within ``[minimum, maximum]``."""
    return max(minimum, min(maximum, int(done * target_seconds / max(seconds, 1e-6))))


def run_chunked(fn: Callable[[int, int], None], n: int, target_seconds: float = CHUNK_SECONDS,
                first: int = 8192, minimum: int = 1024) -> None:
    """Call ``fn(start, stop)`` over ``[0, n)`` in consecutive chunks of ~``target_seconds``.

    The first chunk has ``first`` rows; later ones are sized from the time the previous one
    took, between ``minimum`` rows and 2**24.

    Args:
        fn: Work on rows ``[start, stop)``; called in order, from this thread.
        n: Number of rows.
        target_seconds: Wanted duration of one call.
        first: Rows of the first call.
        minimum: Fewest rows of a call (keeps the per-call overhead negligible).
    """
    start, rows = 0, max(1, first)
    while start < n:
        stop = min(n, start + rows)
        t0 = time.perf_counter()
        fn(start, stop)
        dt = time.perf_counter() - t0
        rows = next_chunk(stop - start, dt, target_seconds, minimum, 1 << 24)
        start = stop
