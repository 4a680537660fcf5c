"""Sample and class weights of ``fit`` and ``evaluate``: checks and the per-sample array.

A weight scales its sample's loss as in Keras 3 (reduction ``"sum_over_batch_size"``): a
batch's loss is ``sum_i w_i * l_i / batch_size``, its gradient likewise, and the epoch loss
that ``fit`` logs is ``sum_i w_i * l_i / n``. Compiled metrics are not weighted: Keras
weighs only ``compile(weighted_metrics=)``, which neurec does not support. The C core
reads one float32 weight per row (``Plan.fit(weights=)``); everything here runs once per
``fit`` call, vectorised.
"""
import numbers
from typing import Any, Dict, Optional

import numpy as np

from neurec.models import _data


def check_sample_weight(fn: str, sample_weight: Any, n: int,
                        name: str = "sample_weight") -> Optional[np.ndarray]:
    """``sample_weight`` as a C-contiguous float32 array of shape ``(n,)``, or None.

    Raises:
        TypeError: If the weights are not numbers.
        ValueError: If the shape is not ``(n,)`` or ``(n, 1)``, or a weight is negative,
            NaN or infinite.
    """
    if sample_weight is None:
        return None
    a = _data.to_numpy(sample_weight, f"{fn}: {name}")
    if a.dtype == object or a.dtype.kind not in "biuf":
        raise TypeError(f"{fn}: {name} must be numbers (one weight per sample), got dtype {a.dtype}")
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 1:
        raise ValueError(f"{fn}: {name} must have shape ({n},) or ({n}, 1): one weight per "
                         f"sample, got shape {a.shape}")
    if a.shape[0] != n:
        raise ValueError(f"{fn}: {name} has {a.shape[0]} weights but there are {n} samples; "
                         "give one weight per sample")
    w = np.ascontiguousarray(a, dtype=np.float32)
    bad = ~(np.isfinite(w) & (w >= 0))
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{fn}: {name} must be finite and >= 0, got {float(a[k])!r} at sample {k} "
                         f"({int(bad.sum())} bad weights); a weight of 0 leaves a sample out")
    return w


def check_class_weight(fn: str, class_weight: Any) -> Optional[Dict[int, float]]:
    """``class_weight`` as ``{int label: float weight}``, or None.

    Raises:
        TypeError: If it is not a dict of integer labels to numbers.
        ValueError: If a weight is negative, NaN or infinite.
    """
    if class_weight is None:
        return None
    hint = "pass a dict from label to weight, e.g. class_weight={0: 1.0, 1: 5.0}"
    if not isinstance(class_weight, dict) or not class_weight:
        raise TypeError(f"{fn}: class_weight must be a non-empty dict, got {class_weight!r}; {hint}")
    out: Dict[int, float] = {}
    for k, v in class_weight.items():
        if isinstance(k, (bool, np.bool_)) or not isinstance(k, (numbers.Integral, np.integer)):
            raise TypeError(f"{fn}: class_weight keys must be integer labels, got {k!r}; {hint}")
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real) \
                or not np.isfinite(v) or v < 0:
            raise ValueError(f"{fn}: class_weight[{k!r}] must be a finite number >= 0, got {v!r}")
        out[int(k)] = float(v)
    return out


def class_weights_of(fn: str, class_weight: Dict[int, float], labels: np.ndarray) -> np.ndarray:
    """Keras 3's rule: each sample weighs ``class_weight[class]``, 1.0 for a class the dict
    does not name; the class is ``round(y)`` for one label per sample, ``argmax(y)`` for
    one-hot rows."""
    labels = labels.reshape(labels.shape[0], -1)
    cls = labels.argmax(axis=1) if labels.shape[1] > 1 else np.round(labels[:, 0])
    present, inverse = np.unique(cls.astype(np.int64), return_inverse=True)
    table = np.array([class_weight.get(int(c), 1.0) for c in present], dtype=np.float32)
    return np.ascontiguousarray(table[inverse.reshape(-1)])


def refuse_both(fn: str, sample_weight: Any, class_weight: Any) -> None:
    """Keras 3 refuses ``sample_weight`` and ``class_weight`` together: so does neurec.

    Raises:
        ValueError: If both are given.
    """
    if sample_weight is not None and class_weight is not None:
        raise ValueError(f"{fn}: pass sample_weight or class_weight, not both (as Keras); "
                         "multiply the class weights into sample_weight")


def array_weights(fn: str, sample_weight: Any, class_weight: Any,
                  labels: np.ndarray) -> Optional[np.ndarray]:
    """The per-sample weights of array data (``fit``, ``train_on_batch``): ``sample_weight``
    checked, or the weights ``class_weight`` gives each label, or None for neither.

    Raises:
        ValueError: For both at once (as Keras 3: multiply the class weights into
            ``sample_weight``), or bad weights (see :func:`check_sample_weight`).
        TypeError: For a ``class_weight`` that is not a dict of integer labels.
    """
    refuse_both(fn, sample_weight, class_weight)
    cw = check_class_weight(fn, class_weight)
    if cw is not None:
        return class_weights_of(fn, cw, labels)
    return check_sample_weight(fn, sample_weight, labels.shape[0])


def combine(sample_weight: Optional[np.ndarray],
            class_weight: Optional[np.ndarray]) -> Optional[np.ndarray]:
    """Their product, or the one given (a NegativeSampler's per-positive weights and the
    class weights of its labels)."""
    if sample_weight is None:
        return class_weight
    if class_weight is None:
        return sample_weight
    return np.ascontiguousarray(sample_weight * class_weight, dtype=np.float32)


def sampler_weights(sampler, class_weight: Optional[Dict[int, float]]) -> Optional[np.ndarray]:
    """One epoch's weights for a NegativeSampler: its per-positive weights (1.0 for
    negatives) times the class weight of each row's label; None when neither is set."""
    w = sampler._epoch_weights()
    if class_weight is None:
        return w
    return combine(w, class_weights_of("fit", class_weight, sampler._epoch_labels()))


def refuse_for_als(x: Any) -> None:
    """iALS weighs interactions by their values (confidence ``1 + alpha * r``), not by a
    NegativeSampler's weights (``fit``'s sample and class weights are refused by
    ``_keras_api.check_als_fit_args``).

    Raises:
        ValueError: If ``x`` is a NegativeSampler with ``weights``.
    """
    if getattr(x, "_pos_weights", None) is not None:
        raise ValueError("fit with optimizer=ALS: NegativeSampler(weights=) is not used by "
                         "iALS, whose confidence is 1 + alpha * r from the matrix's values; "
                         "put the weights in the InteractionMatrix values instead")
