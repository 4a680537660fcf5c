"""Map raw user and item ids to contiguous integer indices and back.

Models index embedding tables by position, so raw ids (strings, sparse
integers, pandas values) are encoded to ``0..n-1`` first::

    enc = IdEncoder()
    codes = enc.fit_transform(["alice", "bob", "alice", "carol"])  # [0, 1, 0, 2]
    enc.inverse_transform(codes)                                    # the raw ids

Codes are given **in order of first appearance**, so adding new ids later
(`partial_fit`) never changes the code of an id already known, and a model
trained before the update stays valid for the old ids.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np

__all__ = ["IdEncoder"]

_UNKNOWN_POLICIES = ("error", "ignore")
_JSON_SCALARS = (str, int, float, bool)


def _as_id_array(values: Any, name: str) -> np.ndarray:
    """Return ``values`` as a 1-D array of ids with a canonical dtype.

    Integers become int64 (uint64 when they do not fit), floats that are all
    integral become int64, Python/NumPy strings become a ``str`` array, and an
    object array of mixed types stays ``object``. Missing ids (None, NaN) raise.
    """
    if not isinstance(values, np.ndarray) and hasattr(values, "to_numpy"):
        values = values.to_numpy()  # pandas Series / Index / ExtensionArray
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"`{name}` must be a 1-D sequence of ids; got an array of "
                         f"shape {arr.shape}. Flatten it first, e.g. with np.ravel.")
    if arr.size == 0:
        return arr.astype(np.int64) if arr.dtype.kind in "fiub" else arr
    kind = arr.dtype.kind
    if kind == "O":
        arr = _normalise_object(arr, name)
        kind = arr.dtype.kind
    if kind == "i":
        return arr.astype(np.int64, copy=False)
    if kind == "u":
        if arr.dtype.itemsize < 8 or arr.max() <= np.iinfo(np.int64).max:
            return arr.astype(np.int64)
        return arr.astype(np.uint64, copy=False)
    if kind == "f":
        if np.isnan(arr).any():
            pos = int(np.flatnonzero(np.isnan(arr))[0])
            raise ValueError(f"`{name}` contains a missing id (NaN) at position {pos}; "
                             "drop or fill missing ids before encoding.")
        if np.all(arr == np.trunc(arr)) and np.all(np.abs(arr) < 2.0 ** 53):
            return arr.astype(np.int64)
        return arr.astype(np.float64, copy=False)
    if kind == "S":
        return arr.astype(str)
    if kind in "UbMmO":
        return arr
    raise TypeError(f"`{name}` has dtype {arr.dtype}, which cannot hold ids; use integer "
                    "or string ids.")


def _normalise_object(arr: np.ndarray, name: str) -> np.ndarray:
    types = set(map(type, arr))
    if all(issubclass(t, str) for t in types):
        return arr.astype(str)
    if all(issubclass(t, (int, np.integer)) and not issubclass(t, (bool, np.bool_))
           for t in types):
        try:
            return arr.astype(np.int64)
        except OverflowError:
            return arr
    if all(issubclass(t, (int, float, np.integer, np.floating)) for t in types):
        return arr.astype(np.float64)  # NaN checked by the caller
    for i, v in enumerate(arr):
        if v is None or (isinstance(v, float) and v != v) or type(v).__name__ in (
                "NAType", "NaTType"):
            raise ValueError(f"`{name}` contains a missing id ({v!r}) at position {i}; "
                             "drop or fill missing ids before encoding.")
    return arr


def _family(dtype: np.dtype) -> str:
    kind = dtype.kind
    if kind in "iufb":
        return "number"
    if kind == "U":
        return "string"
    if kind in "Mm":
        return f"time:{dtype}"
    return "object"


class IdEncoder:
    """Encode raw ids as contiguous int64 codes ``0..n-1`` and decode them back.

    Codes follow the order of first appearance: the first distinct id seen by
    `fit` gets 0, the next new one 1, and so on; `partial_fit` appends new ids
    after the existing ones. Lookups use ``np.unique`` and ``np.searchsorted``
    over a sorted copy of the classes, so encoding millions of ids takes no
    Python loop. Ids of mixed Python types (say ints and strings in one object
    array) cannot be sorted and fall back to a dict lookup.

    Args:
        unknown: What `transform` does with an id that was never fitted.
            ``'error'`` (default) raises a ValueError listing up to 5 of them;
            ``'ignore'`` maps them to -1.

    Raises:
        ValueError: If ``unknown`` is not ``'error'`` or ``'ignore'``.

    Example:
        >>> enc = IdEncoder().fit(["b", "a", "b"])
        >>> enc.transform(["a", "b"])
        array([1, 0])
        >>> enc.classes_
        array(['b', 'a'], dtype='<U1')
    """

    def __init__(self, unknown: str = "error") -> None:
        if unknown not in _UNKNOWN_POLICIES:
            raise ValueError(f"`unknown` must be 'error' or 'ignore'; got {unknown!r}.")
        self.unknown = unknown
        self._reset()

    # ------------------------------------------------------------------ state
    def _reset(self) -> None:
        self._classes: np.ndarray = np.empty(0, dtype=np.int64)
        self._sorted: np.ndarray = self._classes
        self._sorted_codes: np.ndarray = np.empty(0, dtype=np.int64)
        self._lookup: Optional[Dict[Any, int]] = None  # only for unsortable ids
        self._fitted_any = False

    def _set_classes(self, classes: np.ndarray) -> None:
        self._classes = classes
        self._fitted_any = True
        if classes.dtype.kind == "O":
            self._lookup = {v: i for i, v in enumerate(classes.tolist())}
            self._sorted = classes
            self._sorted_codes = np.arange(len(classes), dtype=np.int64)
            return
        self._lookup = None
        order = np.argsort(classes, kind="stable")
        self._sorted = classes[order]
        self._sorted_codes = order.astype(np.int64, copy=False)

    def _check_compatible(self, arr: np.ndarray, name: str) -> None:
        if not self._fitted_any or arr.size == 0 or self._lookup is not None:
            return
        if arr.dtype.kind == "O" or _family(arr.dtype) != _family(self._classes.dtype):
            raise TypeError(
                f"`{name}` holds ids of dtype {arr.dtype}, but this encoder was fitted on "
                f"ids of dtype {self._classes.dtype}. Use one id type throughout, e.g. "
                "convert with .astype(str).")

    def _find(self, arr: np.ndarray) -> np.ndarray:
        """Codes of ``arr`` (already canonical), -1 where unknown."""
        n = len(self._classes)
        if arr.size == 0 or n == 0:
            return np.full(arr.shape, -1, dtype=np.int64)
        if self._lookup is not None:
            get = self._lookup.get
            return np.fromiter((get(v, -1) for v in arr.tolist()), dtype=np.int64,
                               count=arr.size)
        pos = np.searchsorted(self._sorted, arr)
        np.minimum(pos, n - 1, out=pos)
        hit = self._sorted[pos] == arr
        return np.where(hit, self._sorted_codes[pos], -1).astype(np.int64, copy=False)

    # --------------------------------------------------------------- fitting
    def fit(self, ids: Any) -> IdEncoder:
        """Forget all ids, then learn the distinct values of ``ids``.

        Args:
            ids: 1-D array-like of raw ids (ints, strings, or other sortable
                values; a pandas Series works).

        Returns:
            The encoder itself.

        Raises:
            ValueError: If ``ids`` is not 1-D or contains missing values.
        """
        self._reset()
        return self.partial_fit(ids)

    def partial_fit(self, ids: Any) -> IdEncoder:
        """Add the ids not seen before, after the existing ones.

        Existing codes never change. ``add`` is an alias.

        Args:
            ids: 1-D array-like of raw ids.

        Returns:
            The encoder itself.

        Raises:
            ValueError: If ``ids`` is not 1-D or contains missing values.
            TypeError: If the ids have a different type (say strings) from the
                ids already fitted (say integers).
        """
        arr = _as_id_array(ids, "ids")
        if arr.size == 0:
            return self
        self._check_compatible(arr, "ids")
        if arr.dtype.kind == "O" or self._lookup is not None:
            self._partial_fit_object(arr)
            return self
        try:
            uniq, first = np.unique(arr, return_index=True)
        except TypeError as exc:  # pragma: no cover - guarded by _as_id_array
            raise TypeError(f"`ids` cannot be sorted: {exc}") from exc
        new = uniq[np.argsort(first, kind="stable")]
        if self._fitted_any and len(self._classes):
            new = new[self._find(new) < 0]
            if new.size == 0:
                return self
            new = np.concatenate([self._classes, new])
        self._set_classes(new)
        return self

    add = partial_fit

    def _partial_fit_object(self, arr: np.ndarray) -> None:
        seen = dict.fromkeys(self._classes.tolist())
        seen.update(dict.fromkeys(arr.tolist()))
        classes = np.empty(len(seen), dtype=object)
        classes[:] = list(seen)
        self._set_classes(classes)

    # -------------------------------------------------------------- encoding
    def transform(self, ids: Any) -> np.ndarray:
        """Encode raw ids as int64 codes.

        Args:
            ids: 1-D array-like of raw ids.

        Returns:
            An int64 array of the same length; unknown ids become -1 when the
            encoder was made with ``unknown='ignore'``.

        Raises:
            ValueError: If an id was never fitted and ``unknown='error'`` (the
                message lists up to 5 of them), or ``ids`` is not 1-D.
            TypeError: If the ids have another type than the fitted ones.
        """
        arr = _as_id_array(ids, "ids")
        self._check_compatible(arr, "ids")
        codes = self._find(arr)
        if self.unknown == "error":
            missing = codes < 0
            if missing.any():
                self._raise_unknown(arr[missing])
        return codes

    def fit_transform(self, ids: Any) -> np.ndarray:
        """Fit on ``ids`` (forgetting earlier ids) and return their codes.

        Args:
            ids: 1-D array-like of raw ids.

        Returns:
            An int64 array of codes, one per id.

        Raises:
            ValueError: If ``ids`` is not 1-D or contains missing values.
        """
        arr = _as_id_array(ids, "ids")
        self._reset()
        if arr.size == 0:
            return np.empty(0, dtype=np.int64)
        if arr.dtype.kind == "O":
            self._partial_fit_object(arr)
            return self._find(arr)
        uniq, first, inverse = np.unique(arr, return_index=True, return_inverse=True)
        order = np.argsort(first, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        self._set_classes(uniq[order])
        return rank[inverse.reshape(-1)].astype(np.int64, copy=False)

    def inverse_transform(self, codes: Any) -> np.ndarray:
        """Decode int codes back to the raw ids.

        Args:
            codes: Integer array-like of any shape with values in ``[0, len(self))``.

        Returns:
            An array of raw ids with the shape of ``codes``.

        Raises:
            TypeError: If ``codes`` is not an integer array.
            ValueError: If a code is out of range (for example -1 from
                ``unknown='ignore'``).
        """
        arr = np.asarray(codes)
        if arr.size and arr.dtype.kind not in "iu":
            raise TypeError(f"`codes` must be integers; got dtype {arr.dtype}.")
        arr = arr.astype(np.int64, copy=False)
        n = len(self._classes)
        if arr.size and (arr.min() < 0 or arr.max() >= n):
            bad = arr[(arr < 0) | (arr >= n)].ravel()[0]
            raise ValueError(f"`codes` must lie in [0, {n}) for this encoder of {n} ids; "
                             f"got {int(bad)}. Codes of -1 (unknown ids) cannot be decoded.")
        return self._classes[arr]

    def _raise_unknown(self, unknown: np.ndarray) -> None:
        if unknown.dtype.kind == "O":
            distinct = list(dict.fromkeys(unknown.tolist()))
        else:
            uniq, first = np.unique(unknown, return_index=True)
            distinct = uniq[np.argsort(first, kind="stable")].tolist()
        shown = ", ".join(repr(v) for v in distinct[:5])
        more = f" (and {len(distinct) - 5} more)" if len(distinct) > 5 else ""
        raise ValueError(
            f"{len(distinct)} id(s) were not seen during fit: {shown}{more}. Add them "
            "with partial_fit(ids), or create the encoder with unknown='ignore' to map "
            "them to -1.")

    # ------------------------------------------------------------ inspection
    @property
    def classes_(self) -> np.ndarray:
        """The raw ids in code order (read-only): ``classes_[code] == id``."""
        view = self._classes.view()
        view.flags.writeable = False
        return view

    def __len__(self) -> int:
        return len(self._classes)

    def copy(self) -> IdEncoder:
        """Return an independent encoder with the same ids, codes and ``unknown`` policy.

        `partial_fit` on the copy leaves this encoder unchanged (``Model.attach_encoders``
        keeps a copy, so that growing the model's encoder never changes the caller's).

        Returns:
            A new IdEncoder.
        """
        out = IdEncoder(unknown=self.unknown)
        if self._fitted_any:
            out._set_classes(self._classes.copy())
        return out

    def __repr__(self) -> str:
        return (f"IdEncoder(n={len(self)}, dtype={self._classes.dtype}, "
                f"unknown={self.unknown!r})")

    # --------------------------------------------------------- serialisation
    def get_config(self) -> Dict[str, Any]:
        """Return a JSON-serialisable dict that `from_config` turns back into this encoder.

        Returns:
            ``{'unknown': ..., 'dtype': ..., 'classes': [...]}``.

        Raises:
            TypeError: If an id is not a str, int, float or bool (only possible
                for object arrays of mixed types).
        """
        classes = self._classes
        kind = classes.dtype.kind
        if kind == "O":
            values = [v.item() if isinstance(v, np.generic) else v for v in classes.tolist()]
            bad = [v for v in values if not isinstance(v, _JSON_SCALARS)]
            if bad:
                raise TypeError(f"id {bad[0]!r} of type {type(bad[0]).__name__} cannot be "
                                "stored in a JSON config; use str or int ids.")
            dtype = "object"
        elif kind in "Mm":
            values = classes.astype(np.int64).tolist()
            dtype = str(classes.dtype)
        elif kind == "U":
            values = classes.tolist()
            dtype = "str"
        else:
            values = classes.tolist()
            dtype = str(classes.dtype)
        return {"unknown": self.unknown, "dtype": dtype, "classes": values}

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> IdEncoder:
        """Rebuild an encoder from the output of `get_config`.

        Args:
            config: A dict with keys ``unknown``, ``dtype`` and ``classes``.

        Returns:
            A new IdEncoder with the same ids and codes.

        Raises:
            ValueError: If the config is missing a key or lists an id twice.
        """
        missing = {"unknown", "dtype", "classes"} - set(config)
        if missing:
            raise ValueError(f"IdEncoder config is missing key(s) {sorted(missing)}.")
        enc = cls(unknown=config["unknown"])
        dtype = config["dtype"]
        values = config["classes"]
        if dtype == "object":
            classes = np.empty(len(values), dtype=object)
            classes[:] = values
        elif dtype == "str":
            classes = np.array(values, dtype=str) if len(values) else np.empty(0, dtype=str)
        elif dtype.startswith(("datetime64", "timedelta64")):
            classes = np.array(values, dtype=np.int64).astype(dtype)
        else:
            classes = np.array(values, dtype=dtype)
        if len(classes):
            if dtype == "object":
                distinct = len(dict.fromkeys(classes.tolist()))
            else:
                distinct = len(np.unique(classes))
            if distinct != len(classes):
                raise ValueError("IdEncoder config lists the same id more than once.")
            enc._set_classes(classes)
        return enc
