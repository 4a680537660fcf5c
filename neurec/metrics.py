"""Metrics (Keras names) reported by ``fit`` and ``evaluate``.

During ``fit`` the C core accumulates sums for every metric over each epoch
(AUC from a 8,192-bin histogram of predictions, like Keras's thresholded AUC);
``evaluate`` computes them exactly from the predictions in NumPy. Ranking
metrics (HR@K, NDCG@K, ...) live in :mod:`neurec.evaluation`.
"""
from typing import Any, Dict, Optional, Union

import numpy as np

from neurec import losses as _losses

__all__ = ["Metric", "BinaryAccuracy", "MeanSquaredError", "MeanAbsoluteError", "AUC", "get"]


class Metric:
    """Base class: ``from_stats`` (C sums of a fit epoch) and ``from_arrays``."""

    def __init__(self, name: Optional[str] = None):
        self.name = name or self.default_name

    default_name = "metric"

    def from_stats(self, stats: Dict[str, Any]) -> float:
        raise NotImplementedError

    def from_arrays(self, y_true: np.ndarray, y_pred: np.ndarray) -> float:
        raise NotImplementedError

    def get_config(self) -> Dict[str, Any]:
        return {"name": self.name}

    def __repr__(self):
        return f"{type(self).__name__}(name={self.name!r})"


class BinaryAccuracy(Metric):
    """Share of outputs where ``(prediction > 0.5) == label``.

    Logits (``from_logits=True`` losses) are passed through a sigmoid first.
    """

    default_name = "binary_accuracy"

    def __init__(self, name: Optional[str] = None, threshold: float = 0.5):
        super().__init__(name)
        if threshold != 0.5:
            raise ValueError("BinaryAccuracy: neurec's C core uses threshold=0.5")
        self.threshold = threshold
        self.from_logits = False

    def from_stats(self, s):
        return s["correct"] / max(s["elements"], 1.0)

    def from_arrays(self, y_true, y_pred):
        t, p = _losses._align(y_true, y_pred)
        if self.from_logits:
            p = 1.0 / (1.0 + np.exp(-p))
        return float(np.mean((p > self.threshold).astype(np.float64) == t))


class _MeanError(Metric):
    """The mean of ``error(y_pred - y_true)`` over every element: ``stat`` is the C core's
    running sum of it (``fit``), ``error`` the same per element in NumPy (``evaluate``)."""

    stat = ""

    @staticmethod
    def error(d: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def from_stats(self, s):
        return s[self.stat] / max(s["elements"], 1.0)

    def from_arrays(self, y_true, y_pred):
        t, p = _losses._align(y_true, y_pred)
        return float(np.mean(self.error(p - t) * np.ones_like(p)))


class MeanSquaredError(_MeanError):
    """Mean squared error."""

    default_name = "mean_squared_error"
    stat = "sq_err"
    error = staticmethod(np.square)


class MeanAbsoluteError(_MeanError):
    """Mean absolute error."""

    default_name = "mean_absolute_error"
    stat = "abs_err"
    error = staticmethod(np.abs)


def _auc_from_hist(pos: np.ndarray, neg: np.ndarray) -> float:
    tp, tn = pos.sum(), neg.sum()
    if tp <= 0 or tn <= 0:
        return 0.0
    # bins in ascending score: a positive beats every negative in lower bins
    neg_below = np.concatenate([[0.0], np.cumsum(neg)[:-1]])
    return float(np.sum(pos * (neg_below + 0.5 * neg)) / (tp * tn))


class AUC(Metric):
    """Area under the ROC curve of predictions against (possibly soft) labels.

    ``evaluate`` computes it exactly (ties count one half); ``fit`` from a
    8,192-bin histogram of probabilities (bin ``round(p * 8191)``). Pairs in different
    bins are ranked exactly and pairs sharing a bin count one half, so the binned value
    is within half the share of positive-negative pairs whose predictions are less than
    1/8191 apart of the exact AUC (exact when no pair is that close).

    Args:
        name: Name in logs (default ``'auc'``).
        from_logits: Predictions are logits (set automatically for a
            ``from_logits=True`` loss).
    """

    default_name = "auc"

    def __init__(self, name: Optional[str] = None, from_logits: bool = False):
        super().__init__(name)
        self.from_logits = from_logits

    def from_stats(self, s):
        return _auc_from_hist(np.asarray(s["auc_pos"]), np.asarray(s["auc_neg"]))

    def from_arrays(self, y_true, y_pred):
        t, p = _losses._align(y_true, y_pred)
        t = np.broadcast_to(t, p.shape).ravel()
        p = p.ravel()
        if self.from_logits:
            p = 1.0 / (1.0 + np.exp(-p))
        order = np.argsort(p, kind="mergesort")
        p, t = p[order], t[order]
        _, first, counts = np.unique(p, return_index=True, return_counts=True)
        pos = np.add.reduceat(t, first)
        neg = np.add.reduceat(1.0 - t, first)
        return _auc_from_hist(pos, neg)


_BY_NAME = {
    "binary_accuracy": BinaryAccuracy, "mse": MeanSquaredError,
    "mean_squared_error": MeanSquaredError, "mae": MeanAbsoluteError,
    "mean_absolute_error": MeanAbsoluteError, "auc": AUC,
}
_CLASSES = {c.__name__: c for c in (BinaryAccuracy, MeanSquaredError, MeanAbsoluteError, AUC)}


def get(identifier: Union[str, Metric, dict], loss: Optional[_losses.Loss] = None,
        output_last_dim: int = 1) -> Metric:
    """Resolve a metric name or object as Keras does.

    ``'accuracy'`` / ``'acc'`` become binary accuracy when the output's last
    dimension is 1 (the case for every neurec model with a BCE, MSE or MAE loss).

    Raises:
        ValueError: For an unknown metric, or accuracy on a multi-class output.
    """
    from_logits = bool(getattr(loss, "from_logits", False))
    if isinstance(identifier, Metric):
        m = identifier
    elif isinstance(identifier, dict) and identifier.get("class_name") in _CLASSES:
        m = _CLASSES[identifier["class_name"]](**identifier.get("config", {}))
    elif isinstance(identifier, str):
        key = identifier.lower()
        if key in ("accuracy", "acc"):
            if output_last_dim != 1:
                raise ValueError(
                    "metric 'accuracy' on an output with last dimension "
                    f"{output_last_dim}: neurec supports binary accuracy (last dimension 1)")
            m = BinaryAccuracy(name=identifier)
        elif key in _BY_NAME:
            m = _BY_NAME[key](name=identifier)
        else:
            raise ValueError(f"Unknown metric {identifier!r}; expected 'accuracy' or one of "
                             f"{sorted(_BY_NAME)}")
    else:
        raise ValueError(f"Could not interpret metric {identifier!r}")
    if hasattr(m, "from_logits"):
        m.from_logits = m.from_logits or from_logits
    return m


def serialize(m: Metric) -> dict:
    return {"class_name": type(m).__name__, "config": {"name": m.name}}
