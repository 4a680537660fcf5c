"""Weight regularizers (Keras names). neurec's C core applies L2 penalties."""
from typing import Any, Dict, Optional, Union

import numpy as np

__all__ = ["Regularizer", "L2", "l2", "get", "serialize"]


class Regularizer:
    """Base class of weight regularizers."""

    def __call__(self, x: np.ndarray) -> float:
        raise NotImplementedError

    def get_config(self) -> Dict[str, Any]:
        return {}


class L2(Regularizer):
    """L2 penalty ``l2 * sum(square(x))``, added to the loss (Keras default ``l2=0.01``).

    Its gradient ``2 * l2 * x`` is applied by the optimizer in C. For embedding
    tables with sparse (lazy) updates it is applied to the rows a batch touched,
    once per batch; with dense updates to every row every step, as in Keras.

    Args:
        l2: Non-negative penalty factor.

    Raises:
        ValueError: If ``l2`` is negative or not finite.
    """

    def __init__(self, l2: float = 0.01):
        l2 = float(l2)
        if not np.isfinite(l2) or l2 < 0:
            raise ValueError(f"L2: l2 must be a finite number >= 0, got {l2}")
        self.l2 = l2

    def __call__(self, x: np.ndarray) -> float:
        x = np.asarray(x, dtype=np.float64)
        return float(self.l2 * np.sum(x * x))

    def get_config(self) -> Dict[str, Any]:
        return {"l2": self.l2}

    def __repr__(self) -> str:
        return f"L2(l2={self.l2})"


l2 = L2


def get(identifier: Union[None, str, dict, Regularizer]) -> Optional[Regularizer]:
    """Resolve ``None``, ``'l2'``, a config dict or a Regularizer.

    Raises:
        ValueError: For anything but an L2 penalty (L1 is not supported by the C core).
    """
    if identifier is None or isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, str):
        if identifier.lower() in ("l2", "l2regularizer"):
            return L2()
    if isinstance(identifier, dict):
        name = identifier.get("class_name", "L2")
        if name in ("L2", "l2"):
            return L2(**identifier.get("config", {}))
    raise ValueError(
        f"Unsupported regularizer {identifier!r}: neurec supports L2 penalties "
        "('l2' or neurec.regularizers.L2(l2=...))")


def serialize(r: Optional[Regularizer]) -> Optional[dict]:
    if r is None:
        return None
    return {"class_name": type(r).__name__, "config": r.get_config()}
