"""`EarlyStopping`: stops training when a monitored quantity stops improving."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from neurec.callbacks.base import _print
from neurec.callbacks.monitor import MonitorCallback

__all__ = ["EarlyStopping"]


def _copy_weights(weights: Iterable[Any]) -> list[np.ndarray]:
    # neurec's C core updates parameter arrays in place, so a snapshot must be
    # a copy even if get_weights() hands out the live arrays.
    return [np.array(w, copy=True) for w in weights]


class EarlyStopping(MonitorCallback):
    """Stops training when a monitored quantity has stopped improving.

    Keras 3 semantics: after every epoch from ``start_from_epoch`` on, the
    ``wait`` counter goes up by one; an improvement over the best value so far
    (by more than ``min_delta``) records it as the best and, if it also beats
    ``baseline``, resets ``wait`` to 0. Training stops once
    ``wait >= patience`` (never after the first epoch).

    Args:
        monitor: Name of the quantity in the epoch logs, e.g. ``"val_loss"``
            or ``"val_hr@10"``.
        min_delta: Smallest change that counts as an improvement.
        patience: Number of epochs without improvement before stopping.
        verbose: ``1`` prints a message when stopping or restoring weights.
        mode: ``"min"``, ``"max"`` or ``"auto"`` (inferred from the name, see
            the module docstring).
        baseline: Value the monitor must beat for the patience counter to
            reset; ``None`` for no baseline.
        restore_best_weights: Whether to restore, at the end of training, the
            weights from the best epoch (via ``model.get_weights`` /
            ``model.set_weights``).
        start_from_epoch: Number of warm-up epochs not monitored.

    Attributes:
        best: Best monitored value seen so far.
        best_epoch: Epoch (0-based) of ``best``.
        stopped_epoch: Epoch (0-based) at which training was stopped, 0 if it
            was not.
        wait: Epochs since the last improvement that reset the counter.

    Raises:
        ValueError: If ``patience`` or ``start_from_epoch`` is negative.
    """

    _missing_monitor_warning = ("Early stopping conditioned on metric `{monitor}` which is not "
                                "available. Available metrics are: {available}")

    def __init__(
        self,
        monitor: str = "val_loss",
        min_delta: float = 0,
        patience: int = 0,
        verbose: int = 0,
        mode: str = "auto",
        baseline: float | None = None,
        restore_best_weights: bool = False,
        start_from_epoch: int = 0,
    ) -> None:
        if not isinstance(monitor, str):
            raise TypeError(f"EarlyStopping `monitor` must be a metric name "
                            f"string; received {monitor!r}.")
        if patience < 0:
            raise ValueError(f"EarlyStopping `patience` must be >= 0; "
                             f"received patience={patience}.")
        if start_from_epoch < 0:
            raise ValueError("EarlyStopping `start_from_epoch` must be >= 0; "
                             f"received start_from_epoch={start_from_epoch}.")
        super().__init__(monitor, mode, min_delta=min_delta)
        self.patience = patience
        self.verbose = verbose
        self.baseline = baseline
        self.restore_best_weights = restore_best_weights
        self.start_from_epoch = start_from_epoch
        self._reset()

    def _reset(self):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = self._worst()
        self.best_weights = None
        self.best_epoch = 0

    def on_train_begin(self, logs=None):
        self._reset()

    def on_epoch_end(self, epoch, logs=None):
        current = self.get_monitor_value(logs)
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = _copy_weights(self.model.get_weights())
            self.best_epoch = epoch

        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = _copy_weights(self.model.get_weights())
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return

        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            _print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                _print("Restoring model weights from the end of the best epoch: "
                       f"{self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)

