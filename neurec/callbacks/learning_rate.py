"""Callbacks that set the learning rate: `LearningRateScheduler`, `ReduceLROnPlateau`."""
from __future__ import annotations

import inspect
import numbers
from collections.abc import Callable

import numpy as np

from neurec.callbacks.base import Callback, _print
from neurec.callbacks.monitor import MonitorCallback

__all__ = ["LearningRateScheduler", "ReduceLROnPlateau"]


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


class ReduceLROnPlateau(MonitorCallback):
    """Reduces the learning rate when a monitored quantity stops improving.

    Writes the current rate to ``logs["learning_rate"]`` every epoch.

    Args:
        monitor: Quantity to monitor.
        factor: Multiplier applied to the rate, ``0 < factor < 1``.
        patience: Epochs without improvement before reducing.
        verbose: ``1`` prints a message on each reduction.
        mode: ``"min"``, ``"max"`` or ``"auto"``.
        min_delta: Smallest change that counts as an improvement (the rule
            of `MonitorCallback`, shared with `EarlyStopping`).
        cooldown: Epochs to wait after a reduction before counting again.
        min_lr: Lower bound on the learning rate.

    Raises:
        ValueError: If ``factor >= 1``.
    """

    _missing_monitor_warning = ("Learning rate reduction is conditioned on metric `{monitor}` "
                                "which is not available. Available metrics are: {available}.")

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
        if factor >= 1.0:
            raise ValueError("ReduceLROnPlateau does not support a factor >= 1.0. "
                             f"Received factor={factor}")
        super().__init__(monitor, mode, min_delta=min_delta)
        self.factor = factor
        self.patience = patience
        self.verbose = verbose
        self.cooldown = cooldown
        self.min_lr = min_lr
        self._reset()

    def _reset(self):
        self.best = self._worst()
        self.cooldown_counter = 0
        self.wait = 0

    def in_cooldown(self) -> bool:
        """Returns whether the callback is in its post-reduction cooldown."""
        return self.cooldown_counter > 0

    def on_train_begin(self, logs=None):
        self._reset()

    def on_epoch_end(self, epoch, logs=None):
        logs = {} if logs is None else logs
        optimizer = _get_optimizer(self.model, "ReduceLROnPlateau")
        logs["learning_rate"] = float(optimizer.learning_rate)
        current = self.get_monitor_value(logs)
        if current is None:
            return
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self._is_improvement(current, self.best):
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
