"""Activation functions, by Keras name.

Each activation has a NumPy implementation (used for eager layer calls and as
the reference in tests) and an integer code understood by the C core. The NumPy
functions compute in float64 for float64 input (the reference's precision) and in
float32 for anything else.
"""
from typing import Callable, Optional, Union

import numpy as np

from neurec import _core

__all__ = ["linear", "relu", "sigmoid", "tanh", "softmax", "get", "serialize"]


def _floats(x) -> np.ndarray:
    x = np.asarray(x)
    return x if x.dtype == np.float64 else np.asarray(x, dtype=np.float32)


def linear(x: np.ndarray) -> np.ndarray:
    """Identity: ``linear(x) = x``."""
    return _floats(x)


def relu(x: np.ndarray) -> np.ndarray:
    """Rectified linear unit: ``max(x, 0)``."""
    return np.maximum(_floats(x), 0.0)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic sigmoid ``1 / (1 + exp(-x))``, computed without overflow."""
    x = _floats(x)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(x.dtype, copy=False)


def tanh(x: np.ndarray) -> np.ndarray:
    """Hyperbolic tangent."""
    return np.tanh(_floats(x))


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Softmax over ``axis`` (the last axis by default)."""
    x = _floats(x)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return (e / e.sum(axis=axis, keepdims=True)).astype(x.dtype, copy=False)


_BY_NAME = {"linear": linear, "relu": relu, "sigmoid": sigmoid, "tanh": tanh, "softmax": softmax}
# the C core's activation codes, declared once in C (csrc/include/neurec/nr_names.h)
CODES = dict(_core.ACTIVATIONS)


def get(identifier: Union[None, str, Callable]) -> Callable:
    """Return the activation function for a name, a function, or ``None`` (linear).

    Raises:
        ValueError: For an unknown name or a callable neurec cannot run in C.
    """
    if identifier is None:
        return linear
    if isinstance(identifier, str):
        fn = _BY_NAME.get(identifier.lower())
        if fn is None:
            raise ValueError(
                f"Unknown activation {identifier!r}; expected one of {sorted(_BY_NAME)}")
        return fn
    if callable(identifier) and getattr(identifier, "__name__", None) in _BY_NAME \
            and _BY_NAME[identifier.__name__] is identifier:
        return identifier
    raise ValueError(
        f"Unsupported activation {identifier!r}: neurec runs activations in C and supports "
        f"{sorted(_BY_NAME)} (by name or as neurec.activations.<name>)")


def serialize(fn: Optional[Callable]) -> str:
    """Name of an activation function (``'linear'`` for ``None``)."""
    return "linear" if fn is None else get(fn).__name__


def code(fn: Optional[Callable]) -> int:
    """The C core's code of an activation."""
    return CODES[serialize(fn)]
