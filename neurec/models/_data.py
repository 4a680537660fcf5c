"""Validation and conversion of user data for fit/predict/evaluate.

Arrays that are already C-contiguous int32/int64/float32/float64 are passed to
the C core as they are (no copy). Anything else is converted once, here.
"""
from typing import Any, Dict, List

import numpy as np

_NATIVE = (np.float32, np.float64, np.int32, np.int64)


def to_numpy(obj: Any, what: str) -> np.ndarray:
    """NumPy view of an array-like (ndarray, list, pandas Series/DataFrame)."""
    if hasattr(obj, "to_numpy") and not isinstance(obj, np.ndarray):
        obj = obj.to_numpy()
    if isinstance(obj, np.ndarray):
        return obj
    try:
        return np.asarray(obj)
    except Exception as e:  # ragged lists and the like
        raise ValueError(f"{what}: could not convert to an array ({e})") from None


def _is_pandas_frame(obj) -> bool:
    return type(obj).__name__ == "DataFrame" and hasattr(obj, "columns")


def split_inputs(model, x) -> List[Any]:
    """Match ``x`` to the model's inputs: a list/tuple, a dict by input name,
    a DataFrame with a column named after each input (extra columns are ignored), or
    one array.

    A DataFrame is matched by name only, never by column position: a frame whose
    columns ``['item', 'user']`` happen to be as many as the inputs would otherwise
    feed item ids to the user input.

    Raises:
        ValueError: If ``x`` does not match the inputs (the message names the missing
            input names and what ``x`` holds).
    """
    names = model.input_names
    n = len(names)
    if x is None:
        raise ValueError("x is required: pass the model's input arrays")
    if isinstance(x, dict):
        missing = [nm for nm in names if nm not in x]
        if missing:
            raise ValueError(f"x is a dict without keys {missing}; the model's inputs are {names}")
        return [x[nm] for nm in names]
    if _is_pandas_frame(x) and n > 1:
        cols = list(x.columns)
        missing = [nm for nm in names if nm not in cols]
        if missing:
            shown = cols if len(cols) <= 20 else cols[:20] + ["..."]
            raise ValueError(
                f"x is a DataFrame without columns {missing} for the model's inputs {names} "
                f"(its columns are {shown}); DataFrame columns are matched to inputs by name, "
                "not by position: rename the columns (x.rename(columns={...})), or pass a "
                "dict {input name: column} or a list of columns in input order")
        return [x[nm] for nm in names]
    if isinstance(x, (list, tuple)):
        if n == 1 and len(x) != 1:
            return [x]
        if len(x) != n:
            raise ValueError(f"The model expects {n} input arrays {names}, but x has {len(x)}")
        return list(x)
    if n != 1:
        raise ValueError(f"The model expects {n} input arrays {names}; pass a list or a dict")
    return [x]


def prepare_inputs(model, x, builder) -> List[np.ndarray]:
    """Validated arrays, one per model input, each of shape ``(n, *input_shape)``."""
    parts = split_inputs(model, x)
    id_layers: Dict[int, list] = {}
    for slot, layer in builder.id_checks:
        id_layers.setdefault(slot, []).append(layer)
    out = []
    n0 = None
    for slot, (tensor, part) in enumerate(zip(model.inputs, parts)):
        name = model.input_names[slot]
        a = to_numpy(part, f"input {name!r}")
        want = tuple(tensor.shape[1:])
        if a.dtype == object or a.dtype.kind in "USV":
            raise TypeError(f"input {name!r} has dtype {a.dtype}; ids must be numbers: map raw ids "
                            "to indices with neurec.data.IdEncoder first")
        if a.ndim == 0:
            raise ValueError(f"input {name!r} must have a batch axis; got a scalar")
        if a.shape[0] == 0:
            raise ValueError(f"input {name!r} is empty (0 samples); pass at least one sample")
        size = int(np.prod(want))
        if a.shape[1:] != want:
            if a.ndim == 1 and size == 1:
                a = a.reshape(-1, *want)
            elif int(np.prod(a.shape[1:])) == size and a.ndim >= 2:
                a = a.reshape((a.shape[0],) + want)
            else:
                raise ValueError(f"input {name!r} expects samples of shape {want}, got an array of "
                                 f"shape {a.shape}")
        if n0 is None:
            n0 = a.shape[0]
        elif a.shape[0] != n0:
            raise ValueError(f"input arrays have different lengths: {model.input_names[0]!r} has "
                             f"{n0} samples, {name!r} has {a.shape[0]}")
        if a.dtype.kind == "b" or (a.dtype.kind in "iu" and a.dtype.type not in _NATIVE):
            if a.dtype == np.uint64 and a.size and a.max() > np.iinfo(np.int64).max:
                raise ValueError(f"input {name!r}: values exceed int64")
            a = a.astype(np.int64)
        elif a.dtype.kind == "f" and a.dtype.type not in _NATIVE:
            a = a.astype(np.float32)
        elif a.dtype.kind not in "iuf":
            raise TypeError(f"input {name!r} has unsupported dtype {a.dtype}")
        if not (a.flags.c_contiguous and a.flags.aligned and a.dtype.isnative):
            a = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("="))
        if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
            bad = int(np.flatnonzero((~np.isfinite(a.reshape(a.shape[0], -1))).any(axis=1))[0])
            raise ValueError(f"input {name!r} contains NaN or inf (first at sample {bad})")
        for layer in id_layers.get(slot, []):
            check_ids(a, layer, name)
        out.append(a)
    return out


def check_ids(a: np.ndarray, layer, name: str) -> None:
    if a.dtype.kind == "f":
        if np.any(a != np.floor(a)):
            bad = np.flatnonzero((a != np.floor(a)).ravel())[0]
            raise ValueError(f"input {name!r} feeds Embedding {layer.name!r} but holds a non-integral "
                             f"id {a.ravel()[bad].item()!r}; ids must be whole numbers")
    lo, hi = a.min(), a.max()
    if lo < 0 or hi >= layer.input_dim:
        bad = lo if lo < 0 else hi
        raise ValueError(f"input {name!r} feeds Embedding {layer.name!r} with id {bad.item()!r}, outside "
                         f"[0, input_dim={layer.input_dim}); enlarge input_dim or re-encode the ids")


def prepare_labels(y, n: int, out_size: int) -> np.ndarray:
    """Labels as a C-contiguous float32/float64 ``(n, 1)`` or ``(n, out_size)`` array."""
    if y is None:
        raise ValueError("y is required to train or evaluate (labels, one per sample)")
    a = to_numpy(y, "y")
    if a.dtype == object or a.dtype.kind not in "biuf":
        raise TypeError(f"y must be numeric, got dtype {a.dtype}")
    if a.ndim == 0:
        raise ValueError("y must have one label per sample; got a scalar")
    if a.shape[0] != n:
        raise ValueError(f"x and y have different lengths: {n} samples in x, {a.shape[0]} labels in y")
    if a.dtype.type not in (np.float32, np.float64):
        a = a.astype(np.float32)
    a = a.reshape(n, -1)
    if a.shape[1] not in (1, out_size):
        raise ValueError(f"y has {a.shape[1]} values per sample; the model outputs {out_size} "
                         "(labels of width 1 broadcast over the outputs)")
    if not (a.flags.c_contiguous and a.dtype.isnative):
        a = np.ascontiguousarray(a)
    if not np.all(np.isfinite(a)):
        bad = int(np.flatnonzero(~np.isfinite(a).all(axis=1))[0])
        raise ValueError(f"y contains NaN or inf (first at sample {bad}); clean the labels first")
    return a
