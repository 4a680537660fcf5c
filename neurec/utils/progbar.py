"""A Keras-style text progress bar that works in terminals, logs and Jupyter.

The output matches Keras 3::

    Epoch 1/10
    12/12 ━━━━━━━━━━━━━━━━━━━━ 0s 3ms/step - accuracy: 0.5000 - loss: 0.6931

With ``verbose=1`` the line is redrawn in place (carriage return) when the
output is interactive (a TTY, Jupyter/IPython kernel or PyCharm); when output
goes to a file or pipe only the final line of each bar is written, so logs stay
readable. ``verbose=2`` writes one plain line when the bar finishes::

    12/12 - 0s - 3ms/step - accuracy: 0.5000 - loss: 0.6931

Only ``sys.stdout.write`` is used (no curses), looked up at write time so that
redirection and notebook streams work.

Calls a person waits for (``predict``, ``recommend``, ``evaluate_full``, ``read_csv``) take
their bar from :func:`waiting_bar`: it draws nothing until the call has run for
``WAIT_SECONDS``, so a call that finishes sooner prints nothing at all.
"""
from __future__ import annotations

import math
import numbers
import os
import sys
import time
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

__all__ = ["Progbar", "WAIT_SECONDS", "resolve_verbose", "waiting_bar"]

_BOLD = "\x1b[1m"
_GREEN = "\x1b[32m"
_GREY = "\x1b[37m"
_RESET = "\x1b[0m"
_BAR_CHAR = "\u2501"  # '━', as Keras 3 draws it

_clock = time.monotonic  # module-level so tests can substitute a fake clock

# a call a person waits for shows its bar once it has run this long (seconds)
WAIT_SECONDS = 2.0


def _is_interactive() -> bool:
    """Return whether ``sys.stdout`` can redraw a line in place."""
    stream = sys.stdout
    isatty = getattr(stream, "isatty", None)
    try:
        if isatty is not None and isatty():
            return True
    except (ValueError, OSError):  # closed or detached stream
        pass
    return "ipykernel" in sys.modules or "PYCHARM_HOSTED" in os.environ


def _format_eta(seconds: float) -> str:
    if seconds > 3600:
        s = int(seconds)
        return f"{s // 3600}:{(s % 3600) // 60:02d}:{s % 60:02d}"
    if seconds > 60:
        return f"{int(seconds) // 60}:{int(seconds) % 60:02d}"
    return f"{int(seconds)}s"


def _format_time_per_unit(seconds: float, unit_name: str) -> str:
    if seconds >= 1 or seconds == 0:
        return f"{seconds:.0f}s/{unit_name}"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.0f}ms/{unit_name}"
    return f"{seconds * 1e6:.0f}us/{unit_name}"


def _format_value(value: Any) -> str:
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        value = float(value)
        return f"{value:.4f}" if abs(value) > 1e-3 else f"{value:.4e}"
    return str(value)


class Progbar:
    """Displays a progress bar, Keras style.

    Metrics named in ``stateful_metrics`` are shown as given. All other
    metrics are averaged by the bar over the steps they cover, each update
    weighted by how many steps it advanced (so an update that jumps from step
    10 to step 50 counts 40 times).

    Args:
        target: Total number of steps expected, or ``None`` if unknown.
        width: Width of the bar in characters.
        verbose: ``0`` silent, ``1`` animated bar, ``2`` one line at the end.
        interval: Minimum number of seconds between two redraws with
            ``verbose=1`` (the final update is always drawn).
        stateful_metrics: Names of metrics to display as-is instead of
            averaging them.
        unit_name: Name of a step in the time-per-step display, e.g.
            ``"step"`` or ``"sample"``.
        start_after: Seconds after the bar's creation before it draws
            anything: updates before then are only recorded, and a bar
            finalized sooner prints nothing (with every ``verbose``). The
            first update after that draws at once.

    Raises:
        ValueError: If an argument is out of range.
        TypeError: If an argument has the wrong type.
    """

    def __init__(
        self,
        target: int | None,
        width: int = 20,
        verbose: int = 1,
        interval: float = 0.05,
        stateful_metrics: Iterable[str] | None = None,
        unit_name: str = "step",
        start_after: float = 0.0,
    ) -> None:
        if target is not None:
            if not isinstance(target, numbers.Integral) or isinstance(target, bool):
                raise TypeError(
                    "Progbar `target` must be a non-negative int or None; "
                    f"received target={target!r}.")
            if target < 0:
                raise ValueError(
                    "Progbar `target` must be >= 0 (or None when unknown); "
                    f"received target={target}.")
            target = int(target)
        if not isinstance(width, numbers.Integral) or width < 1:
            raise ValueError(
                f"Progbar `width` must be a positive int; received width={width!r}.")
        if verbose not in (0, 1, 2):
            raise ValueError(
                "Progbar `verbose` must be 0 (silent), 1 (bar) or 2 (one line); "
                f"received verbose={verbose!r}.")
        if not isinstance(interval, numbers.Real) or interval < 0:
            raise ValueError(
                "Progbar `interval` must be a number of seconds >= 0; "
                f"received interval={interval!r}.")
        if isinstance(start_after, bool) or not isinstance(start_after, numbers.Real) \
                or not start_after >= 0:
            raise ValueError(
                "Progbar `start_after` must be a number of seconds >= 0; "
                f"received start_after={start_after!r}.")
        if isinstance(stateful_metrics, str):
            raise TypeError(
                "Progbar `stateful_metrics` must be a list of metric names, not "
                f"a string; received {stateful_metrics!r}. Wrap it in a list.")
        self.target = target
        self.width = int(width)
        self.verbose = verbose
        self.interval = float(interval)
        self.unit_name = str(unit_name)
        self.stateful_metrics = set(stateful_metrics or ())
        self.start_after = float(start_after)

        self._dynamic_display = _is_interactive()
        self._seen_so_far = 0
        self._values: dict[str, list] = {}  # name -> [weighted sum, weight]
        self._values_order: list[str] = []
        self._start = _clock()
        self._last_update = -math.inf
        self._first_step: tuple[int, float] | None = None
        self._prev_total_width = 0

    # -- public -------------------------------------------------------------
    def update(
        self,
        current: int,
        values: Iterable[tuple[str, Any]] | Mapping[str, Any] | None = None,
        finalize: bool | None = None,
    ) -> None:
        """Updates the progress bar.

        Args:
            current: Number of steps completed so far (1-based position of the
                last finished step). May jump by many steps at once.
            values: ``(name, value)`` pairs (or a dict) for the steps since the
                previous update.
            finalize: Whether this is the last update of the bar. Defaults to
                ``current >= target`` (``False`` if the target is unknown).

        Raises:
            TypeError: If ``current`` is not an integer or ``values`` is not a
                list of pairs or a dict.
        """
        if not isinstance(current, numbers.Integral) or isinstance(current, bool):
            raise TypeError(
                f"Progbar.update `current` must be an int; received {current!r}.")
        current = int(current)
        if finalize is None:
            finalize = self.target is not None and current >= self.target

        self._accumulate(current, values, finalize)
        self._seen_so_far = current

        now = _clock()
        time_per_unit = self._estimate_step_duration(current, now)
        if now - self._start < self.start_after:
            return  # too early: a short call prints nothing
        if self.verbose == 1:
            if not finalize and (not self._dynamic_display
                                 or now - self._last_update < self.interval):
                return
            self._write_bar(current, now, time_per_unit, finalize)
        elif self.verbose == 2 and finalize:
            self._write_line(current, now, time_per_unit)
        self._last_update = now

    def add(self, n: int,
            values: Iterable[tuple[str, Any]] | Mapping[str, Any] | None = None) -> None:
        """Advances the bar by ``n`` steps (see `update`)."""
        self.update(self._seen_so_far + n, values)

    # -- internals ----------------------------------------------------------
    def _accumulate(self, current, values, finalize):
        if values is None:
            return
        if isinstance(values, Mapping):
            values = values.items()
        advanced = max(current - self._seen_so_far, 1)
        for item in values:
            try:
                name, value = item
            except (TypeError, ValueError):
                raise TypeError(
                    "Progbar.update `values` must be a dict or a list of "
                    f"(name, value) pairs; received item {item!r}.") from None
            if name not in self._values:
                self._values_order.append(name)
            numeric = isinstance(value, numbers.Real) and not isinstance(value, bool)
            if name in self.stateful_metrics or finalize or not numeric:
                # Shown as-is: on the final update the caller's value is the
                # epoch's result, as in Keras.
                self._values[name] = [value, 1]
            elif name not in self._values or not isinstance(
                    self._values[name][0], numbers.Real):
                self._values[name] = [float(value) * advanced, advanced]
            else:
                self._values[name][0] += float(value) * advanced
                self._values[name][1] += advanced

    def _metric_text(self) -> str:
        parts = []
        for name in self._values_order:
            total, count = self._values[name]
            if isinstance(total, numbers.Real) and not isinstance(total, bool):
                total = total / max(1, count)
            parts.append(f" - {name}: {_format_value(total)}")
        return "".join(parts)

    def _estimate_step_duration(self, current, now):
        # The first update often includes one-off setup cost (allocation,
        # thread start-up), so later estimates exclude it, as Keras does for
        # its first step; with chunked updates the first update covers many
        # steps.
        if current <= 0:
            return 0.0
        if self._first_step is None:
            self._first_step = (current, now)
            return (now - self._start) / current
        first_current, first_time = self._first_step
        if current > first_current:
            return (now - first_time) / (current - first_current)
        return (now - self._start) / current

    def _write_bar(self, current, now, time_per_unit, finalize):
        styled = self._dynamic_display
        if self.target:
            digits = int(math.log10(self.target)) + 1
            count = f"{current:{digits}d}/{self.target}"
            done = int(self.width * min(current / self.target, 1.0))
            plain_bar = f"{count} {_BAR_CHAR * self.width}"
            if styled:
                bar = f"{_BOLD}{count}{_RESET} "
                if done:
                    bar += f"{_GREEN}{_BAR_CHAR * done}{_RESET}"
                bar += f"{_GREY}{_BAR_CHAR * (self.width - done)}{_RESET}"
            else:
                bar = plain_bar
        else:
            bar = plain_bar = f"{int(current):7d}/Unknown"

        if self.target and not finalize:
            clock = _format_eta(time_per_unit * (self.target - current))
        else:
            clock = f"{now - self._start:.0f}s"
        plain_info = f" {clock} {_format_time_per_unit(time_per_unit, self.unit_name)}"
        plain_info += self._metric_text()
        info = (f" {_BOLD}{clock}{_RESET}" + plain_info[len(clock) + 1:]
                if styled else plain_info)

        total_width = len(plain_bar) + len(plain_info)
        message = "\r" + bar + info if self._dynamic_display else bar + info
        if self._dynamic_display and self._prev_total_width > total_width:
            message += " " * (self._prev_total_width - total_width)
        if finalize:
            message += "\n"
        self._prev_total_width = total_width
        _write(message)

    def _write_line(self, current, now, time_per_unit):
        if self.target:
            digits = int(math.log10(self.target)) + 1
            count = f"{current:{digits}d}/{self.target}"
        else:
            count = f"{current}/Unknown"
        line = (f"{count} - {now - self._start:.0f}s - "
                f"{_format_time_per_unit(time_per_unit, self.unit_name)}"
                f"{self._metric_text()}\n")
        _write(line)


def resolve_verbose(fn: str, verbose: Any) -> int:
    """The display level of a call a person waits for: ``0``, ``1`` or ``2``.

    ``"auto"`` is ``1`` when the output is interactive (a terminal, Jupyter,
    PyCharm) and ``0`` otherwise, so that services and batch jobs keep their
    logs free of bars; ``True``/``False`` are ``1``/``0`` as in Keras.

    Raises:
        ValueError: If ``verbose`` is none of these, naming ``fn``.
    """
    if isinstance(verbose, str) and verbose == "auto":
        return 1 if _is_interactive() else 0
    if isinstance(verbose, (bool, np.bool_)):
        return int(verbose)
    if isinstance(verbose, numbers.Integral) and verbose in (0, 1, 2):
        return int(verbose)
    raise ValueError(f"{fn}: verbose must be 'auto', 0 (silent), 1 (progress bar) or 2 (one "
                     f"line at the end), got {verbose!r}")


def waiting_bar(fn: str, verbose: Any, target: int | None, unit_name: str = "step",
                since: float | None = None) -> Progbar:
    """The progress bar of a call a person waits for, as every such call shows it.

    Nothing is drawn before the call has run for `WAIT_SECONDS` (counted from
    ``since``, a `_clock` time, default now): a call that ends sooner prints
    nothing. The caller updates it between its chunks of work (never per
    sample) and finalizes it when done.

    Args:
        fn: The call's name, for the error message.
        verbose: ``"auto"``, ``0``, ``1`` or ``2`` (see `resolve_verbose`).
        target: Units of work of the call (users, samples, MB, ...).
        unit_name: Name of one unit in the time-per-unit display.
        since: When the call started (`_clock` time), for a bar that starts
            after an earlier phase of the same call.

    Raises:
        ValueError: For an invalid ``verbose``.
    """
    level = resolve_verbose(fn, verbose)
    waited = 0.0 if since is None else max(0.0, _clock() - since)
    return Progbar(target, verbose=level, unit_name=unit_name,
                   start_after=max(0.0, WAIT_SECONDS - waited))


def _write(message: str) -> None:
    stream = sys.stdout
    stream.write(message)
    flush = getattr(stream, "flush", None)
    if flush is not None:
        flush()
