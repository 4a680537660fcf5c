"""Keras-style callbacks: hooks into ``Model.fit``, ``evaluate`` and ``predict``.

Code written for ``keras.callbacks`` runs unchanged with ``neurec.callbacks``::

    from neurec.callbacks import EarlyStopping, ModelCheckpoint
    model.fit(x, y, epochs=20, validation_data=(xv, yv),
              callbacks=[EarlyStopping(patience=2, restore_best_weights=True),
                         ModelCheckpoint("best.neurec", save_best_only=True)])

Batch hooks and chunks:
    neurec's C core trains a *chunk* of batches (about 0.1-0.5 s of work)
    before it returns to Python, so batch hooks run once per chunk, not once
    per batch: ``on_train_batch_begin(batch)`` receives the index of the first
    batch of the chunk and ``on_train_batch_end(batch, logs)`` the index of the
    last one, with ``logs`` holding running means over the epoch so far.
    Consecutive indices can therefore jump by many batches; the callbacks here
    account for that (progress bar, ``ModelCheckpoint(save_freq=int)``).
    Setting ``model.stop_training = True`` from a batch hook takes effect at
    the end of the current chunk.

Monitored quantities and ``mode="auto"``:
    A monitor whose name (without a ``val_`` prefix) contains ``acc``,
    ``auc``, ``hr@``, ``ndcg``, ``mrr``, ``precision`` or ``recall``, or is
    ``map``/``map@K``, is maximised; every other quantity (``loss``, ``mse``,
    ...) is minimised.
"""
from __future__ import annotations

import csv
import inspect
import math
import numbers
import os
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

__all__ = [
    "Callback", "CallbackList", "History", "ProgbarLogger", "EarlyStopping",
    "ModelCheckpoint", "CSVLogger", "LambdaCallback", "LearningRateScheduler",
    "ReduceLROnPlateau", "TerminateOnNaN",
]

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


def _print(message: str) -> None:
    print(message, flush=True)


def _copy_weights(weights: Iterable[Any]) -> list[np.ndarray]:
    # neurec's C core updates parameter arrays in place, so a snapshot must be
    # a copy even if get_weights() hands out the live arrays.
    return [np.array(w, copy=True) for w in weights]


# ---------------------------------------------------------------------------
# Base class and container
# ---------------------------------------------------------------------------
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


def _flatten_callbacks(callbacks) -> list[Callback]:
    if callbacks is None:
        return []
    if isinstance(callbacks, Callback):
        return [callbacks]
    if not isinstance(callbacks, (list, tuple)):
        raise TypeError(
            "`callbacks` must be a list of neurec.callbacks.Callback instances; "
            f"received {type(callbacks).__name__}.")
    flat: list[Callback] = []
    for item in callbacks:
        if isinstance(item, (list, tuple)):
            flat.extend(_flatten_callbacks(item))
        elif isinstance(item, Callback):
            flat.append(item)
        else:
            raise TypeError(
                "Every item of `callbacks` must be a neurec.callbacks.Callback "
                f"instance; received {item!r}. Subclass Callback or wrap a "
                "function in LambdaCallback.")
    return flat


def _pythonify_logs(logs: Mapping) -> dict:
    """Sorted copy of ``logs`` with scalars as Python floats, as Keras does."""
    result = {}
    for key, value in sorted(logs.items()):
        if isinstance(value, Mapping):
            result.update(_pythonify_logs(value))
            continue
        if isinstance(value, (numbers.Number, np.generic)) or (
                isinstance(value, np.ndarray) and value.ndim == 0):
            try:
                value = float(value)
            except (TypeError, ValueError):
                pass
        result[key] = value
    return result


class CallbackList(Callback):
    """Calls every hook on a list of callbacks, in order.

    Args:
        callbacks: A list of `Callback` instances (nested lists are
            flattened), a single callback, or ``None``.
        add_history: Whether to append a `History` callback when the list has
            none. It is also set as ``model.history``.
        add_progbar: Whether to append a `ProgbarLogger` when the list has
            none.
        model: The model to give to every callback.
        **params: Training parameters for `Callback.set_params` (``epochs``,
            ``steps``, ``verbose``).

    Raises:
        TypeError: If an item of ``callbacks`` is not a `Callback`.
    """

    def __init__(
        self,
        callbacks: Iterable[Callback] | Callback | None = None,
        add_history: bool = False,
        add_progbar: bool = False,
        model: Any = None,
        **params: Any,
    ) -> None:
        super().__init__()
        self.callbacks = _flatten_callbacks(callbacks)
        self._history = next(
            (cb for cb in self.callbacks if isinstance(cb, History)), None)
        self._progbar = next(
            (cb for cb in self.callbacks if isinstance(cb, ProgbarLogger)), None)
        if self._history is None and add_history:
            self._history = History()
            self.callbacks.append(self._history)
        if self._progbar is None and add_progbar:
            self._progbar = ProgbarLogger()
            self.callbacks.append(self._progbar)
        self.set_model(model)
        self.set_params(params)

    def set_params(self, params: dict) -> None:
        self.params = params
        if params:
            for callback in self.callbacks:
                callback.set_params(params)

    def set_model(self, model: Any) -> None:
        if model is None:
            return
        self.model = model
        if self._history is not None:
            model.history = self._history
        for callback in self.callbacks:
            callback.set_model(model)

    # Epoch and whole-run hooks share one ``logs`` dict across callbacks, so a
    # callback that writes to it (LearningRateScheduler) is seen by the ones
    # after it (History, ProgbarLogger), as in Keras.
    def _call(self, hook: str, logs, *args) -> None:
        logs = {} if logs is None else logs
        for callback in self.callbacks:
            getattr(callback, hook)(*args, logs)

    def _call_batch(self, hook: str, batch, logs, pythonify=True) -> None:
        logs = {} if logs is None else logs
        if pythonify:
            logs = _pythonify_logs(logs)
        for callback in self.callbacks:
            getattr(callback, hook)(batch, logs)

    def on_batch_begin(self, batch, logs=None):
        self._call_batch("on_batch_begin", batch, logs, pythonify=False)

    def on_batch_end(self, batch, logs=None):
        self._call_batch("on_batch_end", batch, logs)

    def on_epoch_begin(self, epoch, logs=None):
        self._call("on_epoch_begin", logs, epoch)

    def on_epoch_end(self, epoch, logs=None):
        self._call("on_epoch_end", logs, epoch)

    def on_train_batch_begin(self, batch, logs=None):
        self._call_batch("on_train_batch_begin", batch, logs, pythonify=False)

    def on_train_batch_end(self, batch, logs=None):
        self._call_batch("on_train_batch_end", batch, logs)

    def on_test_batch_begin(self, batch, logs=None):
        self._call_batch("on_test_batch_begin", batch, logs, pythonify=False)

    def on_test_batch_end(self, batch, logs=None):
        self._call_batch("on_test_batch_end", batch, logs)

    def on_predict_batch_begin(self, batch, logs=None):
        self._call_batch("on_predict_batch_begin", batch, logs, pythonify=False)

    def on_predict_batch_end(self, batch, logs=None):
        self._call_batch("on_predict_batch_end", batch, logs, pythonify=False)

    def on_train_begin(self, logs=None):
        self._call("on_train_begin", logs)

    def on_train_end(self, logs=None):
        self._call("on_train_end", logs)

    def on_test_begin(self, logs=None):
        self._call("on_test_begin", logs)

    def on_test_end(self, logs=None):
        self._call("on_test_end", logs)

    def on_predict_begin(self, logs=None):
        self._call("on_predict_begin", logs)

    def on_predict_end(self, logs=None):
        self._call("on_predict_end", logs)


# ---------------------------------------------------------------------------
# History and progress
# ---------------------------------------------------------------------------
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


class ProgbarLogger(Callback):
    """Prints Keras's progress bar and metrics to ``sys.stdout``.

    `fit` adds it unless ``verbose=0``. It reads ``epochs``, ``steps`` and
    ``verbose`` (``1``, ``2`` or ``"auto"`` = 1) from ``params``. Batch logs
    are displayed as given (neurec's batch logs are already running means over
    the epoch); the epoch-end line shows the epoch logs, ``val_*`` included.
    Validation inside `fit` is silent.
    """

    def __init__(self) -> None:
        super().__init__()
        self.seen = 0
        self.progbar = None
        self.target: int | None = None
        self.verbose = 1
        self.epochs = 1
        self._called_in_fit = False

    def set_params(self, params):
        super().set_params(params)
        params = params or {}
        verbose = params.get("verbose", 1)
        self.verbose = 1 if verbose == "auto" else verbose
        self.epochs = params.get("epochs", 1) or 1
        self.target = params.get("steps")

    def on_train_begin(self, logs=None):
        self._called_in_fit = True

    def on_test_begin(self, logs=None):
        if not self._called_in_fit:
            self._reset_progbar()
            self._maybe_init_progbar()

    def on_predict_begin(self, logs=None):
        self._reset_progbar()
        self._maybe_init_progbar()

    def on_epoch_begin(self, epoch, logs=None):
        self._reset_progbar()
        self._maybe_init_progbar()
        if self.verbose and self.epochs > 1:
            _print(f"Epoch {epoch + 1}/{self.epochs}")

    def on_train_batch_end(self, batch, logs=None):
        self._update_progbar(batch, logs)

    def on_test_batch_end(self, batch, logs=None):
        if not self._called_in_fit:
            self._update_progbar(batch, logs)

    def on_predict_batch_end(self, batch, logs=None):
        self._update_progbar(batch, None)

    def on_epoch_end(self, epoch, logs=None):
        self._finalize_progbar(logs)

    def on_test_end(self, logs=None):
        if not self._called_in_fit:
            self._finalize_progbar(logs)

    def on_predict_end(self, logs=None):
        self._finalize_progbar(logs)

    def _reset_progbar(self):
        self.seen = 0
        self.progbar = None

    def _maybe_init_progbar(self):
        if self.progbar is None:
            from neurec.utils.progbar import Progbar
            self.progbar = Progbar(target=self.target, verbose=self.verbose,
                                   unit_name="step")

    def _update_progbar(self, batch, logs):
        logs = logs or {}
        self._maybe_init_progbar()
        self.seen = batch + 1
        if self.verbose == 1:
            self.progbar.stateful_metrics.update(logs)
            self.progbar.update(self.seen, list(logs.items()), finalize=False)

    def _finalize_progbar(self, logs):
        logs = logs or {}
        self._maybe_init_progbar()
        if self.target is None:
            self.target = self.seen
            self.progbar.target = self.seen
        self.progbar.update(self.target, list(logs.items()), finalize=True)


# ---------------------------------------------------------------------------
# Monitoring callbacks
# ---------------------------------------------------------------------------
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


class EarlyStopping(_MonitorMixin, Callback):
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
        super().__init__()
        if not isinstance(monitor, str):
            raise TypeError(f"EarlyStopping `monitor` must be a metric name "
                            f"string; received {monitor!r}.")
        if patience < 0:
            raise ValueError(f"EarlyStopping `patience` must be >= 0; "
                             f"received patience={patience}.")
        if start_from_epoch < 0:
            raise ValueError("EarlyStopping `start_from_epoch` must be >= 0; "
                             f"received start_from_epoch={start_from_epoch}.")
        self.monitor = monitor
        self.min_delta = abs(min_delta)
        self.patience = patience
        self.verbose = verbose
        self.mode = _check_mode(mode, "EarlyStopping")
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

    def get_monitor_value(self, logs: dict | None) -> float | None:
        """Returns the monitored value from ``logs``, warning if it is missing."""
        logs = logs or {}
        value = logs.get(self.monitor)
        if value is None:
            warnings.warn(
                f"Early stopping conditioned on metric `{self.monitor}` which "
                f"is not available. Available metrics are: {','.join(logs)}",
                stacklevel=2)
        return value


_MODEL_SUFFIX = ".neurec"
_WEIGHTS_SUFFIX = ".weights.npz"


class ModelCheckpoint(_MonitorMixin, Callback):
    """Saves the model or its weights during training.

    Args:
        filepath: Path to write, formatted with ``epoch`` (1-based), ``batch``
            (1-based, with integer ``save_freq``) and the logs, e.g.
            ``"ckpt/{epoch:02d}-{val_loss:.2f}.neurec"``. Must end in
            ``.neurec`` (full model, `Model.save`) or, with
            ``save_weights_only=True``, in ``.weights.npz``
            (`Model.save_weights`). Missing directories are created.
        monitor: Quantity compared when ``save_best_only=True``.
        verbose: ``1`` prints a message for each save decision.
        save_best_only: Save only when ``monitor`` improves on the best value
            so far. (If ``monitor`` is missing from the logs, a warning is
            issued and the model is saved, as in Keras 3.)
        save_weights_only: Save only the weights.
        mode: ``"min"``, ``"max"`` or ``"auto"``.
        save_freq: ``"epoch"`` to save after every epoch, or an int ``N`` to
            save each time the count of training batches crosses a multiple of
            ``N`` (checked once per chunk of batches).
        initial_value_threshold: Initial "best" value for
            ``save_best_only=True``.

    Raises:
        ValueError: If ``filepath`` has the wrong suffix or ``save_freq`` is
            neither ``"epoch"`` nor a positive int.
        KeyError: At save time, if ``filepath`` names a key absent from the
            logs.
    """

    def __init__(
        self,
        filepath: str | os.PathLike,
        monitor: str = "val_loss",
        verbose: int = 0,
        save_best_only: bool = False,
        save_weights_only: bool = False,
        mode: str = "auto",
        save_freq: str | int = "epoch",
        initial_value_threshold: float | None = None,
    ) -> None:
        super().__init__()
        self.filepath = os.fspath(filepath)
        self.monitor = monitor
        self.verbose = verbose
        self.save_best_only = save_best_only
        self.save_weights_only = save_weights_only
        self.mode = _check_mode(mode, "ModelCheckpoint")
        self.min_delta = 0.0
        self.best = initial_value_threshold
        if save_freq != "epoch" and (
                not isinstance(save_freq, numbers.Integral)
                or isinstance(save_freq, bool) or save_freq < 1):
            raise ValueError(
                f"Unrecognized save_freq: {save_freq!r}. Expected save_freq "
                "are 'epoch' or positive integer values (a number of batches).")
        self.save_freq = save_freq
        if save_weights_only:
            if not self.filepath.endswith(_WEIGHTS_SUFFIX):
                raise ValueError(
                    "When using `save_weights_only=True` in `ModelCheckpoint`, "
                    f"the filepath provided must end in `{_WEIGHTS_SUFFIX}` "
                    f"(neurec weights format). Received: filepath={self.filepath}")
        elif not self.filepath.endswith(_MODEL_SUFFIX):
            raise ValueError(
                f"The filepath provided must end in `{_MODEL_SUFFIX}` (neurec "
                f"model format), or in `{_WEIGHTS_SUFFIX}` with "
                f"`save_weights_only=True`. Received: filepath={self.filepath}")
        self._current_epoch = 0
        self._batches_seen = 0
        self._last_batch_seen = -1

    def on_train_begin(self, logs=None):
        if self.best is None:
            self.best = self._worst()
        self._batches_seen = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch
        self._last_batch_seen = -1

    def on_train_batch_end(self, batch, logs=None):
        if self._should_save_on_batch(batch):
            self._save_model(self._current_epoch, batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save_model(epoch, None, logs)

    def _should_save_on_batch(self, batch: int) -> bool:
        if self.save_freq == "epoch":
            return False
        if batch <= self._last_batch_seen:  # a new epoch without on_epoch_begin
            self._last_batch_seen = -1
        before = self._batches_seen
        self._batches_seen += batch - self._last_batch_seen
        self._last_batch_seen = batch
        return self._batches_seen // self.save_freq > before // self.save_freq

    def _should_save_model(self, epoch, logs, filepath) -> bool:
        if not self.save_best_only:
            if self.verbose > 0:
                _print(f"\nEpoch {epoch + 1}: saving model to {filepath}")
            return True
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(
                f"Can save best model only with {self.monitor} available.",
                stacklevel=3)
            return True
        if self.best is None:
            self.best = self._worst()
        best_str = f"{self.best:.5f}"
        if self._is_improvement(current, self.best):
            if self.verbose > 0:
                _print(f"\nEpoch {epoch + 1}: {self.monitor} improved from "
                       f"{best_str} to {current:.5f}, saving model to {filepath}")
            self.best = current
            return True
        if self.verbose > 0:
            _print(f"\nEpoch {epoch + 1}: {self.monitor} did not improve "
                   f"from {best_str}")
        return False

    def _save_model(self, epoch, batch, logs):
        logs = logs or {}
        filepath = self._get_file_path(epoch, batch, logs)
        if not self._should_save_model(epoch, logs, filepath):
            return
        if os.path.isdir(filepath):
            raise IsADirectoryError(
                "Please specify a non-directory filepath for ModelCheckpoint. "
                f"Filepath used is an existing directory: {filepath}")
        dirname = os.path.dirname(filepath)
        if dirname:
            os.makedirs(dirname, exist_ok=True)
        if self.save_weights_only:
            self.model.save_weights(filepath)
        else:
            self.model.save(filepath)

    def _get_file_path(self, epoch, batch, logs) -> str:
        fields = dict(logs)
        fields["epoch"] = epoch + 1
        if batch is not None and "batch" not in logs:
            fields["batch"] = batch + 1
        try:
            return self.filepath.format(**fields)
        except KeyError as e:
            raise KeyError(
                f'Failed to format this callback filepath: "{self.filepath}". '
                f"Reason: {e} is not in the logs; available keys: "
                f"{', '.join(sorted(fields))}.") from None


class ReduceLROnPlateau(Callback):
    """Reduces the learning rate when a monitored quantity stops improving.

    Writes the current rate to ``logs["learning_rate"]`` every epoch.

    Args:
        monitor: Quantity to monitor.
        factor: Multiplier applied to the rate, ``0 < factor < 1``.
        patience: Epochs without improvement before reducing.
        verbose: ``1`` prints a message on each reduction.
        mode: ``"min"``, ``"max"`` or ``"auto"``.
        min_delta: Threshold for a change to count as an improvement.
        cooldown: Epochs to wait after a reduction before counting again.
        min_lr: Lower bound on the learning rate.

    Raises:
        ValueError: If ``factor >= 1``.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        factor: float = 0.1,
        patience: int = 10,
        verbose: int = 0,
        mode: str = "auto",
        min_delta: float = 1e-4,
        cooldown: int = 0,
        min_lr: float = 0.0,
    ) -> None:
        super().__init__()
        if factor >= 1.0:
            raise ValueError("ReduceLROnPlateau does not support a factor >= 1.0. "
                             f"Received factor={factor}")
        self.monitor = monitor
        self.factor = factor
        self.patience = patience
        self.verbose = verbose
        self.mode = _check_mode(mode, "ReduceLROnPlateau")
        self.min_delta = min_delta
        self.cooldown = cooldown
        self.min_lr = min_lr
        self._reset()

    def _reset(self):
        mode = _infer_mode(self.monitor) if self.mode == "auto" else self.mode
        self._maximize = mode == "max"
        self.best = -math.inf if self._maximize else math.inf
        self.cooldown_counter = 0
        self.wait = 0

    def _better(self, current, best) -> bool:
        if self._maximize:
            return current > best + self.min_delta
        return current < best - self.min_delta

    def in_cooldown(self) -> bool:
        """Returns whether the callback is in its post-reduction cooldown."""
        return self.cooldown_counter > 0

    def on_train_begin(self, logs=None):
        self._reset()

    def on_epoch_end(self, epoch, logs=None):
        logs = {} if logs is None else logs
        optimizer = _get_optimizer(self.model, "ReduceLROnPlateau")
        logs["learning_rate"] = float(optimizer.learning_rate)
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(
                f"Learning rate reduction is conditioned on metric `{self.monitor}` "
                f"which is not available. Available metrics are: {','.join(logs)}.",
                stacklevel=2)
            return
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self._better(current, self.best):
            self.best = current
            self.wait = 0
        elif not self.in_cooldown():
            self.wait += 1
            if self.wait >= self.patience:
                old_lr = float(optimizer.learning_rate)
                if old_lr > np.float32(self.min_lr):
                    new_lr = max(old_lr * self.factor, self.min_lr)
                    optimizer.learning_rate = new_lr
                    if self.verbose > 0:
                        _print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing "
                               f"learning rate to {new_lr}.")
                    self.cooldown_counter = self.cooldown
                    self.wait = 0


# ---------------------------------------------------------------------------
# Logging, scheduling and utility callbacks
# ---------------------------------------------------------------------------
class CSVLogger(Callback):
    """Streams epoch results to a CSV file.

    The header is ``epoch`` (0-based, as in Keras) followed by the first
    epoch's log keys in sorted order; later epochs write ``NA`` for a missing
    key. The file is flushed after every epoch.

    Args:
        filename: Path of the CSV file, e.g. ``"run/log.csv"``.
        separator: Field separator.
        append: Append to an existing file (no second header) instead of
            overwriting it.
    """

    def __init__(self, filename: str | os.PathLike, separator: str = ",",
                 append: bool = False) -> None:
        super().__init__()
        if not isinstance(separator, str) or len(separator) != 1:
            raise ValueError("CSVLogger `separator` must be a single character; "
                             f"received separator={separator!r}.")
        self.sep = separator
        self.filename = os.fspath(filename)
        self.append = append
        self.writer = None
        self.keys: list[str] | None = None
        self.append_header = True
        self.csv_file = None

    def on_train_begin(self, logs=None):
        if self.append:
            if os.path.exists(self.filename):
                with open(self.filename, encoding="utf-8") as f:
                    self.append_header = not bool(len(f.readline()))
            mode = "a"
        else:
            self.append_header = True
            mode = "w"
        if self.csv_file is not None and not self.csv_file.closed:
            self.csv_file.close()
        self.csv_file = open(self.filename, mode, newline="", encoding="utf-8")
        self.writer = None
        self.keys = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
            for name in getattr(self.model, "metrics_names", None) or ():
                if name.startswith("val_") and name not in self.keys:
                    self.keys.append(name)
        if self.writer is None:
            self.writer = csv.writer(self.csv_file, delimiter=self.sep,
                                     lineterminator="\n")
            if self.append_header:
                self.writer.writerow(["epoch", *self.keys])
        self.writer.writerow(
            [epoch, *(_csv_value(logs.get(key, "NA")) for key in self.keys)])
        self.csv_file.flush()

    def on_train_end(self, logs=None):
        if self.csv_file is not None and not self.csv_file.closed:
            self.csv_file.close()
        self.writer = None


def _csv_value(value):
    if isinstance(value, str):
        return value
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return value.item()
    if isinstance(value, Iterable):
        return f"[{', '.join(map(str, value))}]"
    return value


_LAMBDA_HOOKS = frozenset(
    name for name in dir(Callback) if name.startswith("on_"))


class LambdaCallback(Callback):
    """Builds a callback from plain functions.

    Args:
        on_epoch_begin: ``f(epoch, logs)``.
        on_epoch_end: ``f(epoch, logs)``.
        on_train_begin: ``f(logs)``.
        on_train_end: ``f(logs)``.
        on_train_batch_begin: ``f(batch, logs)``.
        on_train_batch_end: ``f(batch, logs)``.
        **kwargs: Any other hook of `Callback` (``on_test_end=...``, ...).

    Raises:
        TypeError: If a keyword is not a hook name or a hook is not callable.
    """

    def __init__(
        self,
        on_epoch_begin: Callable | None = None,
        on_epoch_end: Callable | None = None,
        on_train_begin: Callable | None = None,
        on_train_end: Callable | None = None,
        on_train_batch_begin: Callable | None = None,
        on_train_batch_end: Callable | None = None,
        **kwargs: Callable,
    ) -> None:
        super().__init__()
        unknown = sorted(set(kwargs) - _LAMBDA_HOOKS)
        if unknown:
            raise TypeError(
                f"LambdaCallback got unknown hook(s) {unknown}; valid hooks are "
                f"{sorted(_LAMBDA_HOOKS)}.")
        hooks = dict(kwargs, on_epoch_begin=on_epoch_begin,
                     on_epoch_end=on_epoch_end, on_train_begin=on_train_begin,
                     on_train_end=on_train_end,
                     on_train_batch_begin=on_train_batch_begin,
                     on_train_batch_end=on_train_batch_end)
        for name, fn in hooks.items():
            if fn is None:
                continue
            if not callable(fn):
                raise TypeError(f"LambdaCallback `{name}` must be callable; "
                                f"received {fn!r}.")
            setattr(self, name, fn)


def _get_optimizer(model, owner):
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None or not hasattr(optimizer, "learning_rate"):
        raise ValueError(
            f"{owner} needs a compiled model whose optimizer has a "
            "`learning_rate` attribute; call model.compile(optimizer=...) first.")
    return optimizer


def _takes_two_args(fn) -> bool:
    try:
        inspect.signature(fn).bind(0, 0.0)
    except TypeError:
        return False
    except ValueError:  # no signature available (some builtins)
        return True
    return True


class LearningRateScheduler(Callback):
    """Sets the optimizer's learning rate at the start of every epoch.

    Args:
        schedule: ``schedule(epoch, lr) -> new_lr`` with ``epoch`` 0-based and
            ``lr`` the current rate; the older one-argument form
            ``schedule(epoch)`` is accepted too.
        verbose: ``1`` prints the rate set at each epoch.

    The rate in effect is written to ``logs["learning_rate"]`` at epoch end.

    Raises:
        TypeError: If ``schedule`` is not callable.
        ValueError: If the model's optimizer has no ``learning_rate``, or
            ``schedule`` returns something other than a real number.
    """

    def __init__(self, schedule: Callable, verbose: int = 0) -> None:
        super().__init__()
        if not callable(schedule):
            raise TypeError("LearningRateScheduler `schedule` must be a function "
                            f"schedule(epoch, lr); received {schedule!r}.")
        self.schedule = schedule
        self.verbose = verbose
        self._two_args = _takes_two_args(schedule)

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = _get_optimizer(self.model, "LearningRateScheduler")
        if self._two_args:
            lr = self.schedule(epoch, float(optimizer.learning_rate))
        else:
            lr = self.schedule(epoch)
        if not isinstance(lr, numbers.Real) or isinstance(lr, bool):
            raise ValueError("The output of the `schedule` function should be a "
                             f"float. Got: {lr!r}")
        optimizer.learning_rate = float(lr)
        if self.verbose > 0:
            _print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting "
                   f"learning rate to {float(lr)}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            optimizer = _get_optimizer(self.model, "LearningRateScheduler")
            logs["learning_rate"] = float(optimizer.learning_rate)


class TerminateOnNaN(Callback):
    """Stops training when the loss becomes NaN or infinite.

    Checked on every batch-end hook, i.e. once per chunk of batches in neurec
    (the logged loss is a running mean, so a NaN stays visible).
    """

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(loss):
            _print(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True
