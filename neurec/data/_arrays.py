"""Checks and conversions of the id, value and timestamp arrays the data classes take.

Shared by `InteractionMatrix`, `InteractionLog` and the splits: each function
validates one kind of array (naming the argument and the first bad position
in its error) or turns ids into dense group codes and (user, item) pairs into
single int64 keys.
"""
from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np

from neurec.data.encoders import IdEncoder


def _int_ids(values: Any, name: str) -> np.ndarray:
    """1-D int64 copy-free view of integer ids; raises on any other dtype."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"`{name}` must be 1-D; got shape {arr.shape}.")
    if arr.size == 0:
        return np.empty(0, dtype=np.int64)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"`{name}` must hold integer ids 0..n-1; got dtype {arr.dtype}. "
                        "Encode raw ids with IdEncoder (or InteractionLog.encode) first.")
    if arr.dtype.kind == "u" and arr.dtype.itemsize == 8 and arr.max() > np.iinfo(np.int64).max:
        raise ValueError(f"`{name}` has ids too large for int64.")
    return np.ascontiguousarray(arr, dtype=np.int64)


def _check_range(ids: np.ndarray, upper: int, name: str, dim: str) -> None:
    if ids.size == 0:
        return
    if ids.min() < 0:
        pos = int(np.argmax(ids < 0))
        raise ValueError(f"`{name}` must be non-negative; got {int(ids[pos])} at position "
                         f"{pos}. Encode raw ids with IdEncoder first.")
    if ids.max() >= upper:
        pos = int(np.argmax(ids >= upper))
        raise ValueError(f"`{name}` has id {int(ids[pos])} at position {pos}, out of range for "
                         f"{upper} {dim}; pass a larger `shape` or fix the ids.")


def _float_values(values: Any, n: int, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"`{name}` must be 1-D with one value per interaction ({n}); "
                         f"got shape {arr.shape}.")
    if arr.size and arr.dtype.kind not in "iufb":
        raise TypeError(f"`{name}` must be numeric; got dtype {arr.dtype}.")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if arr.size and not np.isfinite(arr).all():
        pos = int(np.argmax(~np.isfinite(arr)))
        raise ValueError(f"`{name}` must be finite; got {arr[pos]} at position {pos}. Drop or "
                         "fill missing values first.")
    return arr


def _as_timestamps(values: Any, n: int, name: str) -> np.ndarray:
    if not isinstance(values, np.ndarray) and hasattr(values, "to_numpy"):
        values = values.to_numpy()
    arr = np.asarray(values)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"`{name}` must be 1-D with one timestamp per interaction ({n}); "
                         f"got shape {arr.shape}.")
    if arr.size == 0:
        return np.empty(0, dtype=np.int64)
    kind = arr.dtype.kind
    if kind == "M":
        if np.isnat(arr).any():
            pos = int(np.argmax(np.isnat(arr)))
            raise ValueError(f"`{name}` has a missing time (NaT) at position {pos}.")
        return arr.astype("datetime64[s]").astype(np.int64)
    if kind == "O":
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError):
            raise TypeError(f"`{name}` must be integer timestamps or datetime64; got "
                            f"objects such as {arr[0]!r}.") from None
        kind = "f"
    if kind == "f":
        bad = ~np.isfinite(arr) | (arr != np.trunc(arr))
        if bad.any():
            pos = int(np.argmax(bad))
            raise ValueError(f"`{name}` must be whole numbers (e.g. Unix seconds); got "
                             f"{arr[pos]} at position {pos}.")
        return arr.astype(np.int64)
    if kind in "iub":
        return np.ascontiguousarray(arr, dtype=np.int64)
    raise TypeError(f"`{name}` must be integer timestamps or datetime64; got dtype "
                    f"{arr.dtype}.")


def _column(df: Any, col: Any, arg: str) -> np.ndarray:
    if col not in df.columns:
        raise ValueError(f"`{arg}`={col!r} is not a column of the DataFrame; columns are "
                         f"{list(df.columns)}.")
    series = df[col]
    if getattr(series.dtype, "tz", None) is not None:  # tz-aware datetimes -> UTC datetime64
        series = series.dt.tz_convert("UTC").dt.tz_localize(None)
    return series.to_numpy()


def _group_codes(ids: np.ndarray) -> Tuple[np.ndarray, int]:
    """Group codes in ``[0, k)`` of ``ids`` (ordered like the ids when sortable; not all
    codes need occur) and k."""
    if ids.dtype.kind in "iu" and ids.size and ids.min() >= 0 and ids.max() < 4 * ids.size + 1024:
        return ids.astype(np.int64, copy=False), int(ids.max()) + 1
    if ids.dtype.kind == "O":
        enc = IdEncoder()
        codes = enc.fit_transform(ids)
        return codes, len(enc)
    uniq, inverse = np.unique(ids, return_inverse=True)
    return inverse.reshape(-1).astype(np.int64, copy=False), len(uniq)


def _pair_keys(users: np.ndarray, items: np.ndarray,
               ucode: Optional[np.ndarray] = None) -> np.ndarray:
    """One int64 key per (user, item) pair, equal exactly when the pairs are equal.

    ``ucode`` may pass ``_group_codes(users)[0]`` when the caller has it already.
    """
    if ucode is None:
        ucode, _ = _group_codes(users)
    icode, n_items = _group_codes(items)
    return ucode * max(n_items, 1) + icode
