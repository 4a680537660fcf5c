"""Read and write the NCF file format (He et al., "Neural Collaborative Filtering", 2017).

A data set ``PREFIX`` is three tab-separated text files, ids from 0:

* ``PREFIX.train.rating``: ``user<TAB>item<TAB>rating[<TAB>timestamp]``
* ``PREFIX.test.rating``: the held-out positive of each test user, same columns
* ``PREFIX.test.negative``: ``(user,item)<TAB>neg1<TAB>...<TAB>neg99``, one line
  per line of ``PREFIX.test.rating``, in the same order

Parsing is vectorised (``np.fromstring`` over the whole file, with a per-line
field count computed on the raw bytes), so a million-row training file loads
in well under a second without pandas; a malformed line is reported with its
line number and text.
"""
from __future__ import annotations

import functools
import glob
import itertools
import os
from dataclasses import dataclass
from typing import Any, Optional, Sequence, Tuple, Union

import numpy as np

from neurec._atomic import atomic_write_many
from neurec.data._numbers import INT64, at_int64_limits, fits_int64, fromstring, has_lone_sign
from neurec.data.interactions import InteractionLog, InteractionMatrix

__all__ = ["NCFDataset", "read_ncf", "write_ncf"]

PathLike = Union[str, os.PathLike]
_WRITE_CHUNK = 1 << 17
# error messages quote at most this many characters of the offending line
_QUOTE_CHARS = 120


def _quote(text: str, limit: int = _QUOTE_CHARS) -> str:
    """``repr`` of ``text``, shortened to ``limit`` characters with a count of the rest."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text) - limit} more characters)"


def _line_text(data: bytes, index: int) -> str:
    """Text of the 0-based line ``index`` of ``data`` (error path only)."""
    start = 0
    for _ in range(index):
        start = data.find(b"\n", start) + 1
        if start == 0:
            return ""
    end = data.find(b"\n", start)
    line = data[start:end if end >= 0 else len(data)]
    return line.rstrip(b"\r").decode("utf-8", errors="replace")


def _parse_numeric_table(data: bytes, source: str, first_lineno: int = 1,
                         ncols: Optional[Sequence[int]] = None,
                         original: Optional[bytes] = None) -> np.ndarray:
    """Parse whitespace-separated numbers into a 2-D array, one row per non-blank line.

    Args:
        data: The file contents (separators already turned into whitespace).
        source: File name for error messages.
        first_lineno: 1-based line number of the first line of ``data``.
        ncols: Allowed numbers of fields; the first non-blank line picks one and
            every other line must match it. None allows any.
        original: The untransformed contents, for quoting the offending line.

    Returns:
        An int64 array if every field is an integer, else float64; shape
        ``(n_lines, n_fields)``.

    Raises:
        ValueError: With the 1-based line number and text of the first bad line.
    """
    original = data if original is None else original

    def fail(line_index: int, what: str) -> None:
        raise ValueError(f"{source}, line {first_lineno + line_index}: {what}: "
                         f"{_quote(_line_text(original, line_index))}")

    buf = np.frombuffer(data, dtype=np.uint8)
    if buf.size == 0:
        return np.empty((0, 0 if not ncols else ncols[0]), dtype=np.int64)
    is_nl = buf == 10
    is_ws = is_nl | (buf == 32) | (buf == 9) | (buf == 13)
    starts = ~is_ws
    starts[1:] &= is_ws[:-1]
    token_pos = np.flatnonzero(starts)
    line_end = np.flatnonzero(is_nl)
    if buf[-1] != 10:
        line_end = np.append(line_end, buf.size)
    counts = np.diff(np.searchsorted(token_pos, line_end), prepend=0)  # fields per line
    nonblank = np.flatnonzero(counts)
    if nonblank.size == 0:
        return np.empty((0, 0 if not ncols else ncols[0]), dtype=np.int64)
    width = int(counts[nonblank[0]])
    if ncols is not None and width not in ncols:
        fail(int(nonblank[0]), f"expected {' or '.join(map(str, ncols))} fields, got {width}")
    wrong = counts[nonblank] != width
    if wrong.any():
        line = int(nonblank[np.argmax(wrong)])
        fail(line, f"expected {width} fields like the first line, got {int(counts[line])}")
    table = None
    # np.fromstring reads a lone sign as 0 or joins it to the next number: such a file is
    # malformed, and _locate_bad_token names the line
    for dtype in (() if has_lone_sign(data) else (np.int64, np.float64)):
        flat = fromstring(data, dtype)
        if flat is not None and flat.size == nonblank.size * width:
            table = flat.reshape(nonblank.size, width)
            break
    if table is not None and table.dtype == np.int64 and table.size:
        # np.fromstring saturates integers beyond int64 (two huge ids would merge)
        edge = at_int64_limits(table)
        if edge.any():
            _check_int64_tokens(data, nonblank, width, np.argwhere(edge), fail)
    if table is None:
        _locate_bad_token(data, nonblank, fail)
        raise ValueError(f"{source}: could not parse the numbers in this file.")  # pragma: no cover
    if table.dtype == np.float64 and not np.isfinite(table).all():
        row = int(np.argmax(~np.isfinite(table).all(axis=1)))
        fail(int(nonblank[row]), "expected finite numbers")
    return table


def _check_int64_tokens(data: bytes, nonblank: np.ndarray, width: int, cells: np.ndarray,
                        fail) -> None:
    """Fail on the first of ``cells`` (row, column) whose text is outside int64."""
    for row, col in cells.tolist():  # only values at the int64 limits: error path or rare
        line = _line_text(data, int(nonblank[row]))
        token = line.split()[col]
        if not fits_int64(token):
            fail(int(nonblank[row]), f"{_quote(token, 40)} does not fit in a 64-bit integer "
                 f"(ids must be in [0, {INT64.max}]); re-encode the ids")


def _locate_bad_token(data: bytes, nonblank: np.ndarray, fail) -> None:
    lines = data.split(b"\n")
    for index in nonblank.tolist():  # error path only
        for token in lines[index].split():
            try:
                float(token)
            except ValueError:
                fail(index, f"expected a number, got {_quote(token.decode('utf-8', 'replace'), 40)}")


def _int_column(table: np.ndarray, j: int, source: str, name: str,
                first_lineno: int = 1, nonnegative: bool = True) -> np.ndarray:
    col = table[:, j]
    if col.dtype.kind == "f":
        bad = col != np.trunc(col)
        if bad.any():
            raise ValueError(f"{source}: {name} must be integers; got {col[bad][0]} in data "
                             f"row {int(np.argmax(bad)) + 1}.")
        big = np.abs(col) >= 2.0**63
        if big.any():
            raise ValueError(f"{source}: {name} must fit in a 64-bit integer; got {col[big][0]} "
                             f"in data row {int(np.argmax(big)) + 1}. Re-encode the ids.")
        col = col.astype(np.int64)
    if nonnegative and col.size and col.max() == INT64.max:  # n_users = max id + 1 must fit
        raise ValueError(f"{source}: {name} must be below 2**63 - 1; got {int(col.max())} in data "
                         f"row {int(np.argmax(col)) + 1}. Re-encode the ids.")
    if nonnegative and col.size and col.min() < 0:
        raise ValueError(f"{source}: {name} must be non-negative ids; got {int(col.min())} in "
                         f"data row {int(np.argmin(col)) + 1}.")
    return np.ascontiguousarray(col, dtype=np.int64)


def _read_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


# ------------------------------------------------------------------ dataset
@dataclass(eq=False, repr=False)
class NCFDataset:
    """A data set in the NCF protocol: training log, test positives, fixed test negatives.

    Attributes:
        train: Training interactions (encoded ids; values are the ratings
            column, timestamps when the file has a 4th column).
        test_users: int64, one held-out user per test case.
        test_items: int64, the held-out positive item of each test case.
        test_negatives: int64 array ``(n_test, n_negatives)``, fixed negatives.
        n_users: ``max user id + 1`` over all three files.
        n_items: ``max item id + 1`` over all three files.
        test_values: Optional float32 ratings of the test rows.
        test_timestamps: Optional int64 timestamps of the test rows.
    """

    train: InteractionLog
    test_users: np.ndarray
    test_items: np.ndarray
    test_negatives: np.ndarray
    n_users: int
    n_items: int
    test_values: Optional[np.ndarray] = None
    test_timestamps: Optional[np.ndarray] = None

    @functools.cached_property
    def train_matrix(self) -> InteractionMatrix:
        """Binary CSR matrix ``(n_users, n_items)`` of the training pairs (cached)."""
        return InteractionMatrix.from_arrays(self.train.users, self.train.items,
                                             shape=(self.n_users, self.n_items),
                                             dedupe="first")

    @property
    def test(self) -> InteractionLog:
        """The test positives as an InteractionLog."""
        return InteractionLog(self.test_users, self.test_items, self.test_timestamps,
                              self.test_values)

    def __repr__(self) -> str:
        return (f"<NCFDataset {self.n_users} users x {self.n_items} items, "
                f"{len(self.train)} train rows, {len(self.test_users)} test cases x "
                f"{self.test_negatives.shape[1]} negatives>")


def _resolve_prefix(prefix: PathLike) -> str:
    prefix = os.fspath(prefix)
    if os.path.isdir(prefix):
        found = sorted(glob.glob(os.path.join(glob.escape(prefix), "*.train.rating")))
        if len(found) != 1:
            raise ValueError(f"`prefix` {prefix!r} is a directory with {len(found)} "
                             "*.train.rating files; pass the prefix itself, e.g. "
                             "'data/ml-1m' for data/ml-1m.train.rating.")
        return found[0][: -len(".train.rating")]
    return prefix


def _read_rating_file(path: str) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray],
                                          Optional[np.ndarray]]:
    data = _read_bytes(path)
    table = _parse_numeric_table(data, path, ncols=(2, 3, 4))
    if table.shape[0] == 0:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty.copy(), None, None
    users = _int_column(table, 0, path, "user ids")
    items = _int_column(table, 1, path, "item ids")
    values = table[:, 2].astype(np.float32) if table.shape[1] >= 3 else None
    times = _int_column(table, 3, path, "timestamps", nonnegative=False) \
        if table.shape[1] == 4 else None
    return users, items, values, times


def read_ncf(prefix: PathLike) -> NCFDataset:
    """Read ``PREFIX.train.rating``, ``PREFIX.test.rating`` and ``PREFIX.test.negative``.

    Rating files have 3 or 4 tab-separated columns (user, item, rating[,
    timestamp]); 2 columns (no rating) are accepted too.

    Args:
        prefix: Path prefix such as ``'data/ml-1m'`` (for
            ``data/ml-1m.train.rating`` ...), or a directory holding exactly one
            ``*.train.rating`` file.

    Returns:
        An NCFDataset.

    Raises:
        FileNotFoundError: If one of the three files is missing.
        ValueError: On a malformed line (message with file, line number and
            text), or if ``test.negative`` does not list the ``test.rating``
            pairs in the same order.
    """
    prefix = _resolve_prefix(prefix)
    train_path, test_path, neg_path = (f"{prefix}.train.rating", f"{prefix}.test.rating",
                                       f"{prefix}.test.negative")
    for path in (train_path, test_path, neg_path):
        if not os.path.exists(path):
            raise FileNotFoundError(f"NCF data set file not found: {path}. `prefix` must name "
                                    "files PREFIX.train.rating, PREFIX.test.rating and "
                                    "PREFIX.test.negative.")
    tr_users, tr_items, tr_values, tr_times = _read_rating_file(train_path)
    te_users, te_items, te_values, te_times = _read_rating_file(test_path)
    raw = _read_bytes(neg_path)
    table = _parse_numeric_table(raw.translate(bytes.maketrans(b"(),", b"   ")), neg_path,
                                 original=raw)
    if table.shape[0] != te_users.size:
        raise ValueError(f"{neg_path} has {table.shape[0]} lines but {test_path} has "
                         f"{te_users.size}; each test case needs one line of negatives.")
    if table.shape[0] and table.shape[1] < 2:
        raise ValueError(f"{neg_path}: each line must start with '(user,item)'.")
    if table.shape[0] == 0:  # no test cases (empty files): nothing to compare
        table = np.empty((0, 2), dtype=np.int64)
    neg_users = _int_column(table, 0, neg_path, "user ids")
    neg_items = _int_column(table, 1, neg_path, "item ids")
    mismatch = (neg_users != te_users) | (neg_items != te_items)
    if mismatch.any():
        r = int(np.argmax(mismatch))
        raise ValueError(f"{neg_path}, line {r + 1}: pair ({neg_users[r]},{neg_items[r]}) does "
                         f"not match line {r + 1} of {test_path} ({te_users[r]},{te_items[r]}).")
    if table.shape[0]:
        negatives = np.ascontiguousarray(
            np.column_stack([_int_column(table, j, neg_path, "negative item ids")
                             for j in range(2, table.shape[1])])
            if table.shape[1] > 2 else np.empty((table.shape[0], 0), dtype=np.int64))
    else:
        negatives = np.empty((0, 0), dtype=np.int64)

    def top(*arrays):
        return int(max((a.max() for a in arrays if a.size), default=-1)) + 1

    train = InteractionLog(tr_users, tr_items, tr_times, tr_values)
    return NCFDataset(train=train, test_users=te_users, test_items=te_items,
                      test_negatives=negatives, n_users=top(tr_users, te_users),
                      n_items=top(tr_items, te_items, negatives),
                      test_values=te_values, test_timestamps=te_times)


# ------------------------------------------------------------------ writing
def _text_writer(chunks):
    """A write function for atomic_write_many that writes ASCII text chunks."""
    def write(f) -> None:
        for chunk in chunks:
            f.write(chunk.encode("ascii"))
    return write


def _format_rows(row_fmt: str, columns: Sequence[np.ndarray]):
    """Yield text chunks: ``row_fmt % row`` for every row of the parallel ``columns``."""
    n = len(columns[0]) if columns else 0
    for lo in range(0, n, _WRITE_CHUNK):
        hi = min(lo + _WRITE_CHUNK, n)
        flat = tuple(itertools.chain.from_iterable(zip(*(c[lo:hi].tolist() for c in columns))))
        yield (row_fmt * (hi - lo)) % flat


def _encoded_ids(values: np.ndarray, name: str) -> np.ndarray:
    if values.size and (values.dtype.kind not in "iu" or values.min() < 0):
        raise ValueError(f"`{name}` must hold encoded ids (integers >= 0); got dtype "
                         f"{values.dtype}. Call log.encode() first.")
    return values.astype(np.int64)


def _rating_chunks(log: InteractionLog, name: str):
    users = _encoded_ids(log.users, f"{name}.users")
    items = _encoded_ids(log.items, f"{name}.items")
    if log.values is None:
        ratings, rfmt = np.ones(len(log), dtype=np.int64), "%d"
    elif np.all(log.values == np.trunc(log.values)):
        ratings, rfmt = log.values.astype(np.int64), "%d"
    else:
        ratings, rfmt = log.values.astype(np.float64), "%.9g"
    columns = [users, items, ratings]
    fmt = f"%d\t%d\t{rfmt}"
    if log.timestamps is not None:
        columns.append(log.timestamps)
        fmt += "\t%d"
    return _format_rows(fmt + "\n", columns)


def write_ncf(prefix: PathLike, train_log: InteractionLog, test_log: InteractionLog,
              negatives: Any) -> None:
    """Write a data set in the NCF format; `read_ncf` reads it back.

    Ratings are the logs' values (1 without values), written as integers
    when they are whole; a timestamp column is written when the log has one.
    The three files are written to temporary files and renamed only once all
    three are complete, so readers never see a half-written file and a failure
    while writing (a full disk, an exception) leaves the previous files
    untouched. The three renames are separate system calls: a crash between
    them leaves some files new and some old.

    Args:
        prefix: Path prefix; parent directories are created.
        train_log: Encoded training log.
        test_log: Encoded test log, one row per test case.
        negatives: Integer array ``(len(test_log), n_negatives)``.

    Raises:
        ValueError: If ids are not encoded, or ``negatives`` has the wrong shape.
    """
    prefix = os.fspath(prefix)
    for log, name in ((train_log, "train_log"), (test_log, "test_log")):
        if not isinstance(log, InteractionLog):
            raise TypeError(f"`{name}` must be an InteractionLog; got {type(log).__name__}.")
    neg = np.asarray(negatives)
    if neg.ndim != 2 or neg.shape[0] != len(test_log):
        raise ValueError(f"`negatives` must have shape (len(test_log), n) = ({len(test_log)}, "
                         f"n); got {neg.shape}.")
    if neg.size and (neg.dtype.kind not in "iu" or neg.min() < 0):
        raise ValueError("`negatives` must hold encoded item ids (integers >= 0).")
    test_users = _encoded_ids(test_log.users, "test_log.users")
    test_items = _encoded_ids(test_log.items, "test_log.items")
    train_chunks = _rating_chunks(train_log, "train_log")
    test_chunks = _rating_chunks(test_log, "test_log")
    k = neg.shape[1]
    columns = [test_users, test_items] + [neg[:, j].astype(np.int64) for j in range(k)]
    neg_chunks = _format_rows("(%d,%d)" + "\t%d" * k + "\n", columns)
    atomic_write_many([(f"{prefix}.train.rating", _text_writer(train_chunks)),
                       (f"{prefix}.test.rating", _text_writer(test_chunks)),
                       (f"{prefix}.test.negative", _text_writer(neg_chunks))])
