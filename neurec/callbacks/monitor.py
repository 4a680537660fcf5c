"""Direction and improvement test shared by the callbacks that monitor a quantity."""
from __future__ import annotations

import math
import warnings


_MAX_MARKERS = ("acc", "auc", "hr@", "ndcg", "mrr", "precision", "recall")


def _infer_mode(monitor: str) -> str:
    """Return ``'max'`` or ``'min'`` for a monitored quantity's name."""
    name = monitor.lower().removeprefix("val_")
    if any(marker in name for marker in _MAX_MARKERS):
        return "max"
    if name == "map" or name.startswith("map@"):
        return "max"
    return "min"


def _check_mode(mode: str, owner: str) -> str:
    if mode not in ("auto", "min", "max"):
        warnings.warn(f"{owner} mode '{mode}' is unknown, fallback to auto mode.",
                      stacklevel=3)
        return "auto"
    return mode


class _MonitorMixin:
    """Direction and improvement test shared by the monitoring callbacks."""

    monitor: str
    mode: str
    min_delta: float

    def _resolve_mode(self) -> str:
        return _infer_mode(self.monitor) if self.mode == "auto" else self.mode

    def _worst(self) -> float:
        return -math.inf if self._resolve_mode() == "max" else math.inf

    def _is_improvement(self, value, reference) -> bool:
        if reference is None:
            return True
        if self._resolve_mode() == "max":
            return bool(value - self.min_delta > reference)
        return bool(value + self.min_delta < reference)
