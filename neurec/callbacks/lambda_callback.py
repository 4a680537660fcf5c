"""`LambdaCallback`: a callback built from plain functions."""
from __future__ import annotations

from collections.abc import Callable

from neurec.callbacks.base import Callback

__all__ = ["LambdaCallback"]

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
