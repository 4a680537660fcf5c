"""`MonitorCallback`: the base of the callbacks that watch one quantity of the logs.

`EarlyStopping`, `ModelCheckpoint` and `ReduceLROnPlateau` decide whether a
monitored value is an improvement with the one rule defined here (Keras 3's
``MonitorCallback``): with ``d = abs(min_delta)``, ``value`` improves on
``reference`` when ``value - d > reference`` (``mode="max"``) or
``value + d < reference`` (``mode="min"``); any value improves on ``None``.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Mapping

from neurec.callbacks.base import Callback

__all__ = ["MonitorCallback"]

_MAX_MARKERS = ("acc", "auc", "hr@", "ndcg", "mrr", "precision", "recall")


def _infer_mode(monitor: str) -> str:
    """Return ``'max'`` or ``'min'`` for a monitored quantity's name."""
    name = monitor.lower().removeprefix("val_")
    if any(marker in name for marker in _MAX_MARKERS):
        return "max"
    if name == "map" or name.startswith("map@"):
        return "max"
    return "min"


class MonitorCallback(Callback):
    """Base class for callbacks that monitor a quantity of the epoch logs.

    It holds what is monitored and in which direction, and the improvement
    test its subclasses share; it is not meant to be used directly.

    Args:
        monitor: Name of the quantity in the logs, e.g. ``"val_loss"`` or
            ``"val_hr@10"``.
        mode: ``"min"``, ``"max"`` or ``"auto"``: with ``"auto"`` the direction
            is inferred from the name (see `neurec.callbacks`). Another value
            warns and falls back to ``"auto"``.
        baseline: Initial best value; ``None`` leaves ``best`` unset until a
            subclass calls `_worst` (as in Keras, this is not
            ``EarlyStopping``'s ``baseline``).
        min_delta: Smallest change that counts as an improvement; its sign is
            ignored.

    Attributes:
        best: The best value seen so far (or the initial one).
    """

    # The warning when ``monitor`` is missing from the logs; subclasses word it
    # for what they cannot do (Keras's messages).
    _missing_monitor_warning = ("{name} is conditioned on metric `{monitor}` which is not "
                                "available. Available metrics are: {available}")

    def __init__(
        self,
        monitor: str = "val_loss",
        mode: str = "auto",
        baseline: float | None = None,
        min_delta: float = 0,
    ) -> None:
        super().__init__()
        if mode not in ("auto", "min", "max"):
            warnings.warn(f"{type(self).__name__} mode '{mode}' is unknown, fallback to "
                          "auto mode.", stacklevel=3)  # the line that built the subclass
            mode = "auto"
        self.monitor = monitor
        self.mode = mode
        self.min_delta = abs(min_delta)
        self.best = baseline

    def get_monitor_value(self, logs: Mapping | None) -> float | None:
        """Returns the monitored value from ``logs``, warning if it is missing."""
        logs = logs or {}
        value = logs.get(self.monitor)
        if value is None:
            warnings.warn(self._missing_monitor_warning.format(
                name=type(self).__name__, monitor=self.monitor, available=",".join(logs)),
                stacklevel=2)
        return value

    def _resolve_mode(self) -> str:
        """``'min'`` or ``'max'``: ``mode``, or the direction ``monitor``'s name implies."""
        return _infer_mode(self.monitor) if self.mode == "auto" else self.mode

    def _worst(self) -> float:
        """The value every other value improves on: ``inf`` to minimise, ``-inf`` to maximise."""
        return -math.inf if self._resolve_mode() == "max" else math.inf

    def _is_improvement(self, value: float, reference: float | None) -> bool:
        """Whether ``value`` beats ``reference`` by more than ``min_delta``."""
        if reference is None:
            return True
        if self._resolve_mode() == "max":
            return bool(value - self.min_delta > reference)
        return bool(value + self.min_delta < reference)
