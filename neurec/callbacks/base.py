"""The `Callback` base class and `History`, the callback `fit` returns."""
from __future__ import annotations

from typing import Any

__all__ = ["Callback", "History"]


def _print(message: str) -> None:
    print(message, flush=True)


class Callback:
    """Base class for callbacks: override the hooks you need.

    Attributes:
        model: The model being trained, evaluated or used for prediction
            (set by `set_model`).
        params: Dict of training parameters (``epochs``, ``steps``,
            ``verbose``, ...), set by `set_params`.

    Every hook receives a ``logs`` dict (possibly empty). Epoch-end logs hold
    the epoch's training metrics and, when validation ran, ``val_``-prefixed
    ones; batch-end logs hold running means over the epoch so far.
    """

    def __init__(self) -> None:
        self.params: dict | None = None
        self.model: Any = None

    def set_params(self, params: dict) -> None:
        """Stores the training parameters in ``self.params``."""
        self.params = params

    def set_model(self, model: Any) -> None:
        """Stores the model in ``self.model``."""
        self.model = model

    def on_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        """Alias of `on_train_batch_begin` kept for backward compatibility."""

    def on_batch_end(self, batch: int, logs: dict | None = None) -> None:
        """Alias of `on_train_batch_end` kept for backward compatibility."""

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        """Called at the start of epoch ``epoch`` (0-based) of `fit`."""

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        """Called at the end of an epoch; ``logs`` hold its metrics."""

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        """Called before a training chunk; ``batch`` is its first index."""
        self.on_batch_begin(batch, logs=logs)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        """Called after a training chunk; ``batch`` is its last index."""
        self.on_batch_end(batch, logs=logs)

    def on_test_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        """Called before an evaluation chunk."""

    def on_test_batch_end(self, batch: int, logs: dict | None = None) -> None:
        """Called after an evaluation chunk."""

    def on_predict_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        """Called before a prediction chunk."""

    def on_predict_batch_end(self, batch: int, logs: dict | None = None) -> None:
        """Called after a prediction chunk."""

    def on_train_begin(self, logs: dict | None = None) -> None:
        """Called at the start of `fit`."""

    def on_train_end(self, logs: dict | None = None) -> None:
        """Called at the end of `fit`."""

    def on_test_begin(self, logs: dict | None = None) -> None:
        """Called at the start of `evaluate` (and of validation in `fit`)."""

    def on_test_end(self, logs: dict | None = None) -> None:
        """Called at the end of `evaluate` (and of validation in `fit`)."""

    def on_predict_begin(self, logs: dict | None = None) -> None:
        """Called at the start of `predict`."""

    def on_predict_end(self, logs: dict | None = None) -> None:
        """Called at the end of `predict`."""


class History(Callback):
    """Records the epoch-end logs of `fit`; `fit` returns it.

    Attributes:
        history: Dict mapping each metric name to its list of per-epoch values.
        epoch: List of the epoch indices (0-based) that were recorded.
    """

    def __init__(self) -> None:
        super().__init__()
        self.history: dict[str, list] = {}
        self.epoch: list[int] = []

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)
        if self.model is not None:
            self.model.history = self
