"""`CallbackList`: calls every hook on a list of callbacks, in order."""
from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from neurec.callbacks.base import Callback, History
from neurec.callbacks.progbar_logger import ProgbarLogger

__all__ = ["CallbackList"]


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


def _forward(hook: str) -> Callable:
    """The `CallbackList` method that calls ``hook`` on every callback, in order.

    Batch-end logs are passed as Python floats (`_pythonify_logs`), except for
    prediction batches; batch-begin logs are passed as given.
    """
    if "batch" in hook:
        pythonify = hook.endswith("_end") and "predict" not in hook

        def forward(self, batch, logs=None):
            self._call_batch(hook, batch, logs, pythonify)
    elif "epoch" in hook:
        def forward(self, epoch, logs=None):
            self._call(hook, logs, epoch)
    else:
        def forward(self, logs=None):
            self._call(hook, logs)
    forward.__name__ = hook
    forward.__qualname__ = f"CallbackList.{hook}"
    forward.__doc__ = f"Calls ``{hook}`` on every callback, in order."
    return forward


for _hook in dir(Callback):
    if _hook.startswith("on_"):
        setattr(CallbackList, _hook, _forward(_hook))
del _hook
