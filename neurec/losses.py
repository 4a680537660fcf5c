"""Losses (Keras names). The C core computes them during ``fit``; the NumPy
versions here are used by ``evaluate`` and as the reference in tests.

Shapes follow Keras: when ``y_pred`` has one more axis than ``y_true`` and that
axis has size 1 it is squeezed, then ``y_true`` broadcasts against ``y_pred``
(labels of shape ``(batch, 1)`` apply to every output of a sample), and the
loss is the mean over all outputs and samples. With ``sample_weight`` each
sample's mean loss is scaled by its weight and the sum divided by the number
of samples (Keras's default reduction, ``"sum_over_batch_size"``).
"""
from typing import Any, Dict, Union

import numpy as np

from neurec import _core
from neurec._registry import resolve

__all__ = ["Loss", "BinaryCrossentropy", "MeanSquaredError", "MeanAbsoluteError",
           "binary_crossentropy", "mean_squared_error", "mean_absolute_error", "mse", "mae", "get"]

EPSILON = 1e-7


def _align(y_true, y_pred):
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_pred.ndim == y_true.ndim + 1 and y_pred.shape[-1] == 1:
        y_pred = y_pred[..., 0]
    elif y_true.ndim == y_pred.ndim + 1 and y_true.shape[-1] == 1:
        y_true = y_true[..., 0]
    if y_true.ndim < y_pred.ndim:
        y_true = y_true.reshape(y_true.shape + (1,) * (y_pred.ndim - y_true.ndim))
    return y_true, y_pred


class Loss:
    """Base class. ``loss(y_true, y_pred, sample_weight=None)`` returns the mean loss as a
    float: ``sum_i w_i * l_i / n`` with weights (Keras's ``"sum_over_batch_size"``)."""

    name = "loss"
    code = -1

    def elementwise(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def per_sample(self, y_true, y_pred) -> np.ndarray:
        """Mean loss of each sample, shape ``(n,)``."""
        t, p = _align(y_true, y_pred)
        e = self.elementwise(np.broadcast_to(t, np.broadcast_shapes(t.shape, p.shape)), p)
        return e.reshape(e.shape[0], -1).mean(axis=1)

    def __call__(self, y_true, y_pred, sample_weight=None) -> float:
        per = self.per_sample(y_true, y_pred)
        if sample_weight is None:
            return float(np.mean(per))
        w = np.asarray(sample_weight, dtype=np.float64).reshape(-1)
        if w.shape != per.shape:
            raise ValueError(f"sample_weight has {w.size} weights for {per.size} samples; give "
                             "one weight per sample")
        return float(np.sum(per * w) / max(per.size, 1))

    def get_config(self) -> Dict[str, Any]:
        return {"name": self.name}


class BinaryCrossentropy(Loss):
    """Binary cross-entropy.

    With ``from_logits=False`` predictions are probabilities, clipped to
    ``[1e-7, 1 - 1e-7]`` as in Keras. When the model's output is a sigmoid,
    ``fit`` computes the loss from the logits instead, which is exact where
    clipping would saturate.

    Args:
        from_logits: Whether predictions are logits.
    """

    name = "binary_crossentropy"

    def __init__(self, from_logits: bool = False):
        self.from_logits = bool(from_logits)
        self.code = _core.LOSSES["bce_logits" if self.from_logits else "bce"]

    def elementwise(self, t, p):
        if self.from_logits:
            return np.maximum(p, 0) - p * t + np.log1p(np.exp(-np.abs(p)))
        p = np.clip(p, EPSILON, 1 - EPSILON)
        return -(t * np.log(p) + (1 - t) * np.log(1 - p))

    def get_config(self):
        return {"name": self.name, "from_logits": self.from_logits}


class MeanSquaredError(Loss):
    """Mean of squared errors."""

    name = "mean_squared_error"
    code = _core.LOSSES["mse"]

    def elementwise(self, t, p):
        return (p - t) ** 2


class MeanAbsoluteError(Loss):
    """Mean of absolute errors."""

    name = "mean_absolute_error"
    code = _core.LOSSES["mae"]

    def elementwise(self, t, p):
        return np.abs(p - t)


def binary_crossentropy(y_true, y_pred, from_logits: bool = False) -> np.ndarray:
    """Per-sample binary cross-entropy (Keras's functional form)."""
    return BinaryCrossentropy(from_logits).per_sample(y_true, y_pred)


def mean_squared_error(y_true, y_pred) -> np.ndarray:
    """Per-sample mean squared error."""
    return MeanSquaredError().per_sample(y_true, y_pred)


def mean_absolute_error(y_true, y_pred) -> np.ndarray:
    """Per-sample mean absolute error."""
    return MeanAbsoluteError().per_sample(y_true, y_pred)


mse = mean_squared_error
mae = mean_absolute_error

_BY_NAME = {
    "binary_crossentropy": BinaryCrossentropy, "bce": BinaryCrossentropy,
    "mean_squared_error": MeanSquaredError, "mse": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError, "mae": MeanAbsoluteError,
}
_CLASSES = {c.__name__: c for c in (BinaryCrossentropy, MeanSquaredError, MeanAbsoluteError)}
_FUNCS = {binary_crossentropy: BinaryCrossentropy, mean_squared_error: MeanSquaredError,
          mean_absolute_error: MeanAbsoluteError}


def get(identifier: Union[str, Loss, dict]) -> Loss:
    """Resolve a loss name (``'binary_crossentropy'``, ``'mse'``, ``'mae'``), function or object.

    Raises:
        ValueError: For an unknown or unsupported loss.
    """
    out = resolve(identifier, "loss", Loss, _BY_NAME, _CLASSES,
                  hint=" or a neurec.losses.Loss object")
    if out is not None:
        return out
    if callable(identifier) and identifier in _FUNCS:
        return _FUNCS[identifier]()
    raise ValueError(
        f"Unsupported loss {identifier!r}: neurec computes losses in C and supports "
        f"{sorted(_BY_NAME)}")


def serialize(loss: Loss) -> dict:
    cfg = loss.get_config()
    cfg.pop("name", None)
    return {"class_name": type(loss).__name__, "config": cfg}
