"""Interaction logs and CSR user x item matrices.

An `InteractionLog` is what a data scientist starts with: equal-length arrays
of users, items and, optionally, timestamps and values (a rating or a
quantity), read from a CSV file or a DataFrame. `InteractionLog.to_implicit`
turns ratings into implicit feedback, `InteractionLog.encode` maps raw ids to
``0..n-1``, and `InteractionMatrix` stores the result as a CSR matrix whose
arrays the C core borrows without copying (``indptr`` int64, ``indices``
int32 sorted within each row, ``data`` float32)::

    log = InteractionLog.read_csv("events.csv", user_col="user_id",
                                  item_col="sku", time_col="ts")
    log, users, items = log.to_implicit().encode()
    matrix = log.to_matrix(shape=(len(users), len(items)))
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Optional, Tuple, Union

import numpy as np

from neurec.data._arrays import (
    _as_timestamps,
    _check_range,
    _column,
    _float_values,
    _int_ids,
    _pair_keys,
)
from neurec.data.csv_reader import (
    MAX_LINE_BYTES,  # noqa: F401 (documented here too)
    read_interaction_columns,
)
from neurec.data.encoders import IdEncoder, _as_id_array

__all__ = ["InteractionMatrix", "InteractionLog"]

_MATRIX_DEDUPE = ("sum", "max", "last", "first")
_LOG_DEDUPE = ("latest", "first", "sum", None)
_INT32_MAX = np.iinfo(np.int32).max


# ------------------------------------------------------------------- matrix
class InteractionMatrix:
    """A user x item interaction matrix in CSR form, ready for the C core.

    Row ``u`` holds the items of user ``u`` in
    ``indices[indptr[u]:indptr[u + 1]]``, **sorted ascending with no
    duplicates**, and their values in the same slice of ``data``. The arrays
    are plain NumPy arrays (``indptr`` int64, ``indices`` int32, ``data``
    float32, all C-contiguous); treat them as read-only, since the matrix
    caches a lookup key built from them.

    Build one with `from_arrays`, `from_pandas`, `from_scipy` or
    `InteractionLog.to_matrix`; the constructor takes ready CSR arrays and
    checks every invariant.

    Args:
        indptr: Row pointers, length ``n_users + 1``, starting at 0, non-decreasing.
        indices: Item ids, sorted and distinct within each row.
        data: One value per stored interaction.
        shape: ``(n_users, n_items)``.

    Raises:
        ValueError: If any CSR invariant does not hold; the message names it.

    Example:
        >>> m = InteractionMatrix.from_arrays([0, 0, 1], [2, 0, 2])
        >>> m.user_items(0)
        array([0, 2])
        >>> m.contains([0, 1], [1, 2])
        array([False,  True])
    """

    def __init__(self, indptr: Any, indices: Any, data: Any, shape: Tuple[int, int]) -> None:
        n_users, n_items = _check_shape(shape)
        indptr = np.ascontiguousarray(indptr, dtype=np.int64)
        indices = np.asarray(indices)
        if indices.size and indices.dtype.kind not in "iu":
            raise TypeError(f"`indices` must be integers; got dtype {indices.dtype}.")
        indices_64 = indices.astype(np.int64, copy=False).ravel()
        nnz = indices_64.size
        if indptr.ndim != 1 or indptr.size != n_users + 1:
            raise ValueError(f"`indptr` must have n_users + 1 = {n_users + 1} entries; got "
                             f"shape {indptr.shape}.")
        if indptr[0] != 0 or indptr[-1] != nnz or (np.diff(indptr) < 0).any():
            raise ValueError("`indptr` must start at 0, never decrease, and end at "
                             f"len(indices) = {nnz}.")
        _check_range(indices_64, n_items, "indices", "items")
        if nnz > 1:
            row_start = np.zeros(nnz, dtype=bool)
            row_start[indptr[:-1][np.diff(indptr) > 0]] = True
            ok = (np.diff(indices_64) > 0) | row_start[1:]
            if not ok.all():
                pos = int(np.argmin(ok)) + 1
                row = int(np.searchsorted(indptr, pos, side="right") - 1)
                raise ValueError(f"`indices` must be sorted and distinct within each row; row "
                                 f"{row} is not (position {pos}). Build the matrix with "
                                 "InteractionMatrix.from_arrays, which sorts and dedupes.")
        self.indptr = indptr
        self.indices = np.ascontiguousarray(indices_64, dtype=np.int32)
        self.data = _float_values(np.asarray(data).ravel(), nnz, "data")
        self.shape = (n_users, n_items)
        self._keys: Optional[np.ndarray] = None
        self._bitmap: Any = None

    @classmethod
    def _trusted(cls, indptr: np.ndarray, indices: np.ndarray, data: np.ndarray,
                 shape: Tuple[int, int]) -> InteractionMatrix:
        self = cls.__new__(cls)
        self.indptr, self.indices, self.data, self.shape = indptr, indices, data, shape
        self._keys = None
        self._bitmap = None
        return self

    # ------------------------------------------------------------ builders
    @classmethod
    def from_arrays(cls, users: Any, items: Any, values: Any = None,
                    shape: Optional[Tuple[int, int]] = None,
                    dedupe: str = "sum") -> InteractionMatrix:
        """Build a matrix from parallel arrays of (user, item[, value]).

        Args:
            users: 1-D integer user ids in ``[0, n_users)``.
            items: 1-D integer item ids in ``[0, n_items)``, same length.
            values: Optional 1-D values, same length; default 1.0 each.
            shape: ``(n_users, n_items)``; default ``(max(users) + 1, max(items) + 1)``.
            dedupe: How to combine repeated (user, item) pairs: ``'sum'``,
                ``'max'``, ``'last'`` or ``'first'`` (in array order).

        Returns:
            An InteractionMatrix.

        Raises:
            TypeError: If ids are not integers.
            ValueError: On negative or out-of-range ids, mismatched lengths,
                non-finite values, or an unknown ``dedupe``.
        """
        if dedupe not in _MATRIX_DEDUPE:
            raise ValueError(f"`dedupe` must be one of {_MATRIX_DEDUPE}; got {dedupe!r}.")
        users = _int_ids(users, "users")
        items = _int_ids(items, "items")
        n = users.size
        if items.size != n:
            raise ValueError(f"`users` and `items` must have the same length; got {n} and "
                             f"{items.size}.")
        vals = (np.ones(n, dtype=np.float32) if values is None
                else _float_values(values, n, "values"))
        if shape is None:
            shape = (int(users.max()) + 1 if n else 0, int(items.max()) + 1 if n else 0)
        n_users, n_items = _check_shape(shape)
        _check_range(users, n_users, "users", "users")
        _check_range(items, n_items, "items", "items")
        if n == 0:
            return cls._trusted(np.zeros(n_users + 1, dtype=np.int64),
                                np.empty(0, dtype=np.int32), np.empty(0, dtype=np.float32),
                                (n_users, n_items))
        if n_users * n_items < 2 ** 62:
            key = users * n_items + items
            if (np.diff(key) > 0).all():
                order = None  # already CSR order, no duplicates
                if values is not None:
                    vals = vals.copy()  # never alias the caller's array
            else:
                order = np.argsort(key, kind="stable")
                key = key[order]
        else:  # pragma: no cover - needs > 4e18 cells
            order = np.lexsort((items, users))
            key = None
        if order is not None:
            users, items, vals = users[order], items[order], vals[order]
            if key is None:  # pragma: no cover
                new = np.ones(n, dtype=bool)
                new[1:] = (users[1:] != users[:-1]) | (items[1:] != items[:-1])
            else:
                new = np.ones(n, dtype=bool)
                new[1:] = key[1:] != key[:-1]
            if not new.all():
                starts = np.flatnonzero(new)
                if dedupe == "sum":
                    vals = np.add.reduceat(vals.astype(np.float64), starts).astype(np.float32)
                elif dedupe == "max":
                    vals = np.maximum.reduceat(vals, starts)
                elif dedupe == "first":
                    vals = vals[starts]
                else:  # last
                    ends = np.append(starts[1:], n) - 1
                    vals = vals[ends]
                users, items = users[starts], items[starts]
        indptr = np.zeros(n_users + 1, dtype=np.int64)
        np.cumsum(np.bincount(users, minlength=n_users), out=indptr[1:])
        return cls._trusted(indptr, np.ascontiguousarray(items, dtype=np.int32),
                            np.ascontiguousarray(vals, dtype=np.float32), (n_users, n_items))

    @classmethod
    def from_pandas(cls, df: Any, user_col: str = "user", item_col: str = "item",
                    value_col: Optional[str] = None, shape: Optional[Tuple[int, int]] = None,
                    dedupe: str = "sum") -> InteractionMatrix:
        """Build a matrix from DataFrame columns of encoded (integer) ids.

        Args:
            df: A pandas DataFrame.
            user_col: Column of user ids in ``[0, n_users)``.
            item_col: Column of item ids in ``[0, n_items)``.
            value_col: Optional column of values; default 1.0 each.
            shape: ``(n_users, n_items)``; default from the largest ids.
            dedupe: As in `from_arrays`.

        Returns:
            An InteractionMatrix.

        Raises:
            ValueError: If a column is missing, plus everything `from_arrays` raises.
        """
        users = _column(df, user_col, "user_col")
        items = _column(df, item_col, "item_col")
        values = None if value_col is None else _column(df, value_col, "value_col")
        return cls.from_arrays(users, items, values, shape=shape, dedupe=dedupe)

    @classmethod
    def from_scipy(cls, m: Any) -> InteractionMatrix:
        """Build a matrix from any ``scipy.sparse`` matrix or array (duplicates summed).

        Args:
            m: A scipy sparse matrix of shape ``(n_users, n_items)``.

        Returns:
            An InteractionMatrix with the same shape and entries (explicit
            zeros are kept as stored entries).

        Raises:
            TypeError: If ``m`` is not a scipy sparse matrix.
        """
        if not hasattr(m, "tocoo") or not hasattr(m, "shape"):
            raise TypeError(f"`m` must be a scipy.sparse matrix; got {type(m).__name__}.")
        coo = m.tocoo()
        return cls.from_arrays(np.asarray(coo.row), np.asarray(coo.col), np.asarray(coo.data),
                               shape=tuple(int(s) for s in m.shape), dedupe="sum")

    # ---------------------------------------------------------- conversion
    def to_scipy(self) -> Any:
        """Return a ``scipy.sparse.csr_matrix`` view of this matrix (scipy required).

        Raises:
            ImportError: If scipy is not installed.
        """
        try:
            import scipy.sparse as sp
        except ImportError as exc:  # pragma: no cover - scipy is in the test extra
            raise ImportError("to_scipy() needs scipy: pip install scipy") from exc
        return sp.csr_matrix((self.data, self.indices, self.indptr), shape=self.shape)

    def to_coo(self) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return ``(users, items, values)``: int64, int64, float32, in CSR order."""
        users = np.repeat(np.arange(self.shape[0], dtype=np.int64), np.diff(self.indptr))
        return users, self.indices.astype(np.int64), self.data.copy()

    # -------------------------------------------------------------- queries
    @property
    def nnz(self) -> int:
        """Number of stored (user, item) pairs."""
        return int(self.indices.size)

    @property
    def n_users(self) -> int:
        """Number of rows."""
        return self.shape[0]

    @property
    def n_items(self) -> int:
        """Number of columns."""
        return self.shape[1]

    def user_items(self, u: int) -> np.ndarray:
        """Return the items of user ``u``, sorted ascending (an int64 copy).

        Raises:
            ValueError: If ``u`` is not in ``[0, n_users)``.
        """
        if isinstance(u, (bool, np.bool_)) or not isinstance(u, (int, np.integer)):
            raise TypeError(f"`u` must be an integer user id; got {type(u).__name__}.")
        if not 0 <= u < self.shape[0]:
            raise ValueError(f"`u` must be in [0, {self.shape[0]}); got {u}.")
        return self.indices[self.indptr[u]:self.indptr[u + 1]].astype(np.int64)

    def contains(self, users: Any, items: Any) -> np.ndarray:
        """Whether each (user, item) pair is stored, vectorised.

        ``users`` and ``items`` broadcast against each other, so
        ``contains(u[:, None], candidates)`` checks a block of candidates per user.

        Args:
            users: Integer user ids in ``[0, n_users)``.
            items: Integer item ids in ``[0, n_items)``.

        Returns:
            A bool array of the broadcast shape.

        Raises:
            ValueError: On out-of-range ids or shapes that do not broadcast.
        """
        u = np.asarray(users)
        i = np.asarray(items)
        for arr, name in ((u, "users"), (i, "items")):
            if arr.size and arr.dtype.kind not in "iu":
                raise TypeError(f"`{name}` must be integer ids; got dtype {arr.dtype}.")
        try:
            u, i = np.broadcast_arrays(u, i)
        except ValueError:
            raise ValueError(f"`users` of shape {u.shape} and `items` of shape {i.shape} do "
                             "not broadcast together.") from None
        out_shape = u.shape
        u = u.astype(np.int64).ravel()
        i = i.astype(np.int64).ravel()
        _check_range(u, self.shape[0], "users", "users")
        _check_range(i, self.shape[1], "items", "items")
        if self.nnz == 0 or u.size == 0:
            return np.zeros(out_shape, dtype=bool)
        q = u * self.shape[1] + i
        bitmap = self._lookup_bitmap()
        if bitmap is not None:
            hit = (bitmap[q >> 3] >> (q & 7).astype(np.uint8)) & 1
            return hit.astype(bool).reshape(out_shape)
        keys = self._lookup_keys()
        pos = np.searchsorted(keys, q)
        np.minimum(pos, keys.size - 1, out=pos)
        return (keys[pos] == q).reshape(out_shape)

    def _lookup_keys(self) -> np.ndarray:
        """Sorted int64 ``user * n_items + item`` for every stored pair (cached)."""
        if self._keys is None:
            rows = np.repeat(np.arange(self.shape[0], dtype=np.int64), np.diff(self.indptr))
            self._keys = rows * self.shape[1] + self.indices
        return self._keys

    def _lookup_bitmap(self) -> Optional[np.ndarray]:
        """A bit per (user, item) cell, when that is at most twice the size of the keys.

        A random lookup in a bitmap of a few MB stays in cache, where a binary
        search through millions of keys does not: 10x faster `contains` on
        dense data such as MovieLens. Sparse catalogues use the keys.
        """
        if self._bitmap is None:
            cells = self.shape[0] * self.shape[1]
            if cells // 8 > max(16 * self.nnz, 1 << 20):
                self._bitmap = False
            else:
                keys = self._lookup_keys()
                byte = keys >> 3
                bits = np.left_shift(1, keys & 7).astype(np.uint8)
                starts = np.flatnonzero(np.r_[True, byte[1:] != byte[:-1]])
                bitmap = np.zeros(cells // 8 + 1, dtype=np.uint8)
                bitmap[byte[starts]] = np.bitwise_or.reduceat(bits, starts)
                self._bitmap = bitmap
        return None if self._bitmap is False else self._bitmap

    def item_counts(self) -> np.ndarray:
        """Number of users per item (popularity), int64 of length ``n_items``."""
        return np.bincount(self.indices, minlength=self.shape[1]).astype(np.int64)

    def user_counts(self) -> np.ndarray:
        """Number of items per user, int64 of length ``n_users``."""
        return np.diff(self.indptr)

    def __repr__(self) -> str:
        cells = self.shape[0] * self.shape[1]
        density = f", density {self.nnz / cells:.3%}" if cells else ""
        return (f"<InteractionMatrix {self.shape[0]} users x {self.shape[1]} items, "
                f"{self.nnz} interactions{density}>")


def _check_shape(shape: Any) -> Tuple[int, int]:
    try:
        n_users, n_items = (int(s) for s in shape)
        if any(int(s) != s for s in shape):
            raise ValueError
    except (TypeError, ValueError):
        raise ValueError(f"`shape` must be a pair (n_users, n_items) of integers; got "
                         f"{shape!r}.") from None
    if n_users < 0 or n_items < 0:
        raise ValueError(f"`shape` must be non-negative; got {shape!r}.")
    if n_items > _INT32_MAX:
        raise ValueError(f"n_items = {n_items} exceeds the int32 limit of CSR indices.")
    return n_users, n_items


# ---------------------------------------------------------------------- log
@dataclass(eq=False, repr=False)
class InteractionLog:
    """An interaction log: parallel arrays of users, items and optional time and value.

    Ids may be raw (strings, sparse integers) or encoded (``0..n-1``, see
    `encode`). On construction the arrays are normalised: integer ids become
    int64, ``timestamps`` int64 (datetime64 becomes Unix seconds), ``values``
    float32 (a rating or a quantity).

    Attributes:
        users: 1-D array of user ids.
        items: 1-D array of item ids, same length.
        timestamps: Optional int64 array, same length.
        values: Optional float32 array, same length.

    Raises:
        ValueError: On arrays of different lengths, missing ids, or
            non-finite timestamps or values.
    """

    users: np.ndarray
    items: np.ndarray
    timestamps: Optional[np.ndarray] = None
    values: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        self.users = _as_id_array(self.users, "users")
        self.items = _as_id_array(self.items, "items")
        n = self.users.shape[0]
        if self.items.shape[0] != n:
            raise ValueError(f"`users` and `items` must have the same length; got {n} and "
                             f"{self.items.shape[0]}.")
        if self.timestamps is not None:
            self.timestamps = _as_timestamps(self.timestamps, n, "timestamps")
        if self.values is not None:
            if not isinstance(self.values, np.ndarray) and hasattr(self.values, "to_numpy"):
                self.values = self.values.to_numpy()
            self.values = _float_values(self.values, n, "values")

    # ------------------------------------------------------------ builders
    @classmethod
    def from_arrays(cls, users: Any, items: Any, timestamps: Any = None,
                    values: Any = None) -> InteractionLog:
        """Build a log from parallel array-likes (lists, arrays, Series).

        Returns:
            An InteractionLog.

        Raises:
            ValueError: As for the constructor.
        """
        return cls(users, items, timestamps, values)

    @classmethod
    def from_pandas(cls, df: Any, user_col: str = "user", item_col: str = "item",
                    time_col: Optional[str] = None,
                    value_col: Optional[str] = None) -> InteractionLog:
        """Build a log from DataFrame columns.

        Args:
            df: A pandas DataFrame.
            user_col: Column of user ids (any hashable values).
            item_col: Column of item ids.
            time_col: Optional column of integer or datetime64 timestamps.
            value_col: Optional numeric column (rating, quantity).

        Returns:
            An InteractionLog.

        Raises:
            ValueError: If a column is missing or holds missing values.
        """
        return cls(_column(df, user_col, "user_col"), _column(df, item_col, "item_col"),
                   None if time_col is None else _column(df, time_col, "time_col"),
                   None if value_col is None else _column(df, value_col, "value_col"))

    @classmethod
    def read_csv(cls, path: Union[str, os.PathLike], user_col: Union[str, int, None] = None,
                 item_col: Union[str, int, None] = None,
                 time_col: Union[str, int, None] = None,
                 value_col: Union[str, int, None] = None, sep: str = ",",
                 header: bool = True, encoding: str = "utf-8",
                 verbose: Union[str, int] = "auto") -> InteractionLog:
        """Read a delimited text file of interactions (pandas not needed).

        Every non-blank row must have as many fields as the header (or as the
        first row when ``header=False``). Ids that all parse as integers
        become int64, otherwise they stay strings. Timestamps may be integers
        or ISO 8601 dates (stored as Unix seconds); values must be finite numbers.

        Args:
            path: The file.
            user_col: Column name (or 0-based position) of user ids; default
                ``'user'`` with a header, 0 without.
            item_col: Column of item ids; default ``'item'`` with a header, 1 without.
            time_col: Optional column of timestamps.
            value_col: Optional column of ratings or quantities.
            sep: Field delimiter, one character.
            header: Whether the first line names the columns.
            encoding: Text encoding of the file.
            verbose: ``'auto'`` (a bar when the output is interactive), 0 (silent),
                1 (a bar, in MB of the file) or 2 (one line at the end); nothing is
                printed for a read shorter than two seconds.

        Returns:
            An InteractionLog.

        Raises:
            ValueError: On a malformed row (wrong number of fields, empty id,
                unparsable timestamp or value): the message gives the 1-based
                line number and the line's text. Also if a column is not found, or
                for an invalid ``verbose``.
            FileNotFoundError: If ``path`` does not exist.
        """
        return cls(*read_interaction_columns(os.fspath(path), user_col, item_col, time_col,
                                             value_col, sep, header, encoding, verbose))

    # --------------------------------------------------------- transforms
    def _take(self, index: np.ndarray) -> InteractionLog:
        """Rows ``index`` (int positions or bool mask), skipping re-validation."""
        out = InteractionLog.__new__(InteractionLog)
        out.users = self.users[index]
        out.items = self.items[index]
        out.timestamps = None if self.timestamps is None else self.timestamps[index]
        out.values = None if self.values is None else self.values[index]
        return out

    def to_implicit(self, threshold: Optional[float] = None,
                    dedupe: Optional[str] = "latest") -> InteractionLog:
        """Turn the log into implicit feedback.

        Keeps the rows with ``value >= threshold`` (for example ratings of 4
        and 5), then collapses repeated (user, item) pairs into one row.

        Args:
            threshold: Minimum value to keep; None keeps every row. Needs ``values``.
            dedupe: ``'latest'`` keeps the row with the largest timestamp (the
                later row in the log on ties, or without timestamps);
                ``'first'`` keeps the earliest (the earlier row on ties);
                ``'sum'`` keeps one row whose value is the sum of the pair's
                values (its count when the log has no values) and whose
                timestamp is the latest; None keeps duplicates.

        Returns:
            A new InteractionLog; kept rows stay in log order (for ``'sum'``,
            at the position of the pair's first row).

        Raises:
            ValueError: If ``threshold`` is given without values, or ``dedupe``
                is unknown.
        """
        if dedupe not in _LOG_DEDUPE:
            raise ValueError(f"`dedupe` must be one of {_LOG_DEDUPE}; got {dedupe!r}.")
        log = self
        if threshold is not None:
            if self.values is None:
                raise ValueError("`threshold` needs a log with values (ratings); this log has "
                                 "none. Pass threshold=None.")
            log = self._take(np.flatnonzero(self.values >= threshold))
        if dedupe is None or len(log) == 0:
            return log if log is not self else self._take(np.arange(len(self)))
        key = _pair_keys(log.users, log.items)
        n = len(log)
        rows = np.arange(n)
        if dedupe == "sum":
            order = np.argsort(key, kind="stable")
            skey = key[order]
            starts = np.flatnonzero(np.r_[True, skey[1:] != skey[:-1]])
            keep = order[starts]  # first row of each pair
            vals = (np.ones(n, dtype=np.float64) if log.values is None
                    else log.values.astype(np.float64))
            sums = np.add.reduceat(vals[order], starts)
            out_ts = None
            if log.timestamps is not None:
                out_ts = np.maximum.reduceat(log.timestamps[order], starts)
            pos = np.argsort(keep, kind="stable")
            out = log._take(keep[pos])
            out.values = sums[pos].astype(np.float32)
            if out_ts is not None:
                out.timestamps = out_ts[pos]
            return out
        ts = log.timestamps if log.timestamps is not None else np.zeros(n, dtype=np.int64)
        order = np.lexsort((rows, ts, key))  # by pair, then time, then log position
        skey = key[order]
        boundary = skey[1:] != skey[:-1]
        if dedupe == "latest":
            keep = order[np.r_[boundary, True]]  # last row of each pair
        else:
            keep = order[np.r_[True, boundary]]  # first row of each pair
        return log._take(np.sort(keep))

    def encode(self, user_encoder: Optional[IdEncoder] = None,
               item_encoder: Optional[IdEncoder] = None
               ) -> Tuple[InteractionLog, IdEncoder, IdEncoder]:
        """Map raw ids to contiguous int64 codes.

        Args:
            user_encoder: An encoder to reuse (say the training set's); None
                fits a new one on this log's users (codes in order of first
                appearance).
            item_encoder: Likewise for items.

        Returns:
            ``(encoded_log, user_encoder, item_encoder)``. With a given encoder
            created with ``unknown='ignore'``, rows with an unknown user or
            item are dropped from the encoded log.

        Raises:
            ValueError: If a given encoder with ``unknown='error'`` meets an
                unknown id.
        """
        if user_encoder is None:
            user_encoder = IdEncoder()
            ucodes = user_encoder.fit_transform(self.users)
        else:
            ucodes = user_encoder.transform(self.users)
        if item_encoder is None:
            item_encoder = IdEncoder()
            icodes = item_encoder.fit_transform(self.items)
        else:
            icodes = item_encoder.transform(self.items)
        out = self._take(slice(None))
        out.users, out.items = ucodes, icodes
        known = (ucodes >= 0) & (icodes >= 0)
        if not known.all():
            out = out._take(np.flatnonzero(known))
        return out, user_encoder, item_encoder

    def to_matrix(self, shape: Optional[Tuple[int, int]] = None,
                  dedupe: str = "sum") -> InteractionMatrix:
        """Build the CSR matrix of an encoded log (values, or 1.0 without values).

        Args:
            shape: ``(n_users, n_items)``; default from the largest ids. Pass
                ``(len(user_encoder), len(item_encoder))`` to include ids that
                this log (say a training split) does not contain.
            dedupe: As in `InteractionMatrix.from_arrays`.

        Returns:
            An InteractionMatrix.

        Raises:
            TypeError: If the ids are not encoded integers.
        """
        return InteractionMatrix.from_arrays(self.users, self.items, self.values, shape=shape,
                                             dedupe=dedupe)

    def __len__(self) -> int:
        return int(self.users.shape[0])

    def __repr__(self) -> str:
        extra = [name for name in ("timestamps", "values") if getattr(self, name) is not None]
        with_ = f" with {' and '.join(extra)}" if extra else ""
        return (f"<InteractionLog {len(self)} interactions{with_}, user ids {self.users.dtype}, "
                f"item ids {self.items.dtype}>")
