"""The CSV reader behind `InteractionLog.read_csv`.

A file of interactions is read whole (after a streaming check that no line is
longer than `MAX_LINE_BYTES`) and split with a few whole-file NumPy
operations when it has no quotes and an ASCII-based encoding; any other file
goes through the `csv` module in chunks. Numeric columns are parsed in one C
call each. A malformed row raises ``ValueError`` naming its 1-based line
number and text.
"""
from __future__ import annotations

import codecs
import csv
import gc
import itertools

import numpy as np

from neurec.data._numbers import at_int64_limits, fits_int64, fromstring, has_lone_sign

__all__ = ["MAX_LINE_BYTES", "read_interaction_columns"]

_CSV_CHUNK = 1 << 18
# Longest accepted line of a CSV file (bytes). A longer line is a corrupted or hostile file:
# it is reported before the file is read into memory (splitting it would cost ~5x its size).
MAX_LINE_BYTES = 1 << 20
_SCAN_BLOCK = 1 << 24
_ASCII_BASED = ("utf-8", "ascii", "latin-1", "iso8859-1", "cp1252", "utf-8-sig")


def read_interaction_columns(
    path: str,
    user_col: str | int | None,
    item_col: str | int | None,
    time_col: str | int | None,
    value_col: str | int | None,
    sep: str,
    header: bool,
    encoding: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Read the columns of a delimited file of interactions.

    The arguments and errors are those of `InteractionLog.read_csv`, which
    builds its log from the result.

    Returns:
        ``(users, items, timestamps, values)``: ids as int64 when every id
        parses as an integer (else strings), timestamps as int64 Unix seconds
        and values as float64, or ``None`` for a column not asked for.
    """
    if not isinstance(sep, str) or len(sep) != 1 or sep in "\r\n\"":
        raise ValueError(f"`sep` must be one character other than a quote or newline; got "
                         f"{sep!r}. For '::' files use neurec.data.read_movielens.")
    if user_col is None:
        user_col = "user" if header else 0
    if item_col is None:
        item_col = "item" if header else 1
    wanted = {"user_col": user_col, "item_col": item_col, "time_col": time_col,
              "value_col": value_col}
    wanted = {arg: col for arg, col in wanted.items() if col is not None}
    raw = _read_bounded(path, MAX_LINE_BYTES)
    gc_was_enabled = gc.isenabled()
    gc.disable()  # millions of small lists would trigger the cycle collector again and again
    try:
        split = _split_csv_fast(raw, path, wanted, sep, header, encoding)
        if split is None:
            split = _split_csv_slow(path, wanted, sep, header, encoding)
    finally:
        if gc_was_enabled:
            gc.enable()
    cols, row_pos_all = split

    def fail(arg, k, what):
        _raise_row(path, int(row_pos_all[k]), header, encoding, sep,
                   f"{what} in column {wanted[arg]!r}, got {str(cols[arg][k])[:60]!r}")

    def check_int64(arg, values):
        # np.fromstring saturates beyond int64: two different huge ids would become one
        for k in np.flatnonzero(at_int64_limits(values)).tolist():  # values at the limits only
            if not fits_int64(cols[arg][k]):
                fail(arg, k, "the number does not fit in a 64-bit integer (int64); re-encode "
                     "these ids (e.g. map them to smaller integers) before reading")

    ids = {}
    for arg in ("user_col", "item_col"):
        ids[arg] = _fast_numbers(cols[arg], np.int64)
        if ids[arg] is not None:
            check_int64(arg, ids[arg])
        if ids[arg] is None:
            ids[arg] = np.array(cols[arg], dtype=str)
            empty = np.char.strip(ids[arg]) == ""
            if empty.any():
                fail(arg, int(np.argmax(empty)), "expected an id")
            ids[arg] = _parse_ids(ids[arg])
    timestamps = None
    if "time_col" in cols:
        timestamps = _fast_numbers(cols["time_col"], np.int64)
        if timestamps is not None:
            check_int64("time_col", timestamps)
        if timestamps is None:
            timestamps = _parse_times(np.array(cols["time_col"], dtype=str),
                                      lambda k, what=None: fail("time_col", k, what or (
                                          "expected an integer timestamp or ISO 8601 date")))
    values = None
    if "value_col" in cols:
        values = _fast_numbers(cols["value_col"], np.float64)
        if values is None:
            values = _parse_floats(np.array(cols["value_col"], dtype=str),
                                   lambda k: fail("value_col", k, "expected a finite number"))
        finite = np.isfinite(values)
        if not finite.all():
            fail("value_col", int(np.argmin(finite)), "expected a finite number")
    return ids["user_col"], ids["item_col"], timestamps, values


def _read_bounded(path: str, max_line: int) -> bytes:
    """The file's bytes, after checking block by block that no line exceeds ``max_line``.

    The check streams over the file first (16 MiB at a time), so a file with a huge line
    fails with a clear error at the cost of one block of memory, not of the whole file.

    Raises:
        ValueError: Naming the 1-based line number and the limit.
    """
    with open(path, "rb") as f:
        line_start, lineno, pos = 0, 1, 0
        while True:
            block = f.read(_SCAN_BLOCK)
            if not block:
                break
            b = np.frombuffer(block, dtype=np.uint8)
            is_lf, is_cr = b == 10, b == 13
            # LF, CRLF and CR-only (old Mac) files: both bytes end a line; a line's number
            # counts LFs and lone CRs (a CR right before an LF ends the same line)
            nl = np.flatnonzero(is_lf | is_cr)
            lone_cr = is_cr.copy()
            lone_cr[:-1] &= ~is_lf[1:]
            breaks = (is_lf | lone_cr)[nl]
            ends = np.r_[nl + pos, pos + len(block)]
            starts = np.r_[line_start, nl + pos + 1]
            too_long = np.flatnonzero(ends - starts > max_line)
            if too_long.size:
                k = int(too_long[0])
                raise ValueError(
                    f"{path}, line {lineno + int(breaks[:k].sum())}: the line is longer than "
                    f"{max_line} bytes (neurec.data.interactions.MAX_LINE_BYTES); a CSV of "
                    "interactions has short lines: check the separator and quoting, or split "
                    "the file")
            lineno += int(breaks.sum())
            if nl.size:
                line_start = int(nl[-1]) + pos + 1
            pos += len(block)
        f.seek(0)
        return f.read()


def _fast_numbers(texts, dtype) -> np.ndarray | None:
    """Parse a list of numeric strings in one C call; None if any field is not a plain number."""
    if not texts:
        return np.empty(0, dtype=dtype)
    joined = " ".join(texts)
    if joined.isspace():  # np.fromstring reads a blank string as [0]
        return None
    if has_lone_sign(joined):  # np.fromstring would read it as 0 or glue it to a number
        return None
    out = fromstring(joined, dtype)
    return out if out is not None and out.size == len(texts) else None


def _header_and_index(names, first_len, wanted, path):
    ncols = len(names) if names is not None else first_len
    return ncols, {arg: _resolve_col(col, arg, names, ncols, path) for arg, col in wanted.items()}


def _split_csv_fast(raw, path, wanted, sep, header, encoding):
    """Columns of a file without quotes, split with a few whole-file operations.

    Returns ``(columns, row_positions)`` or None when the file needs the csv
    module (quotes, lone carriage returns, or an encoding that is not ASCII-based).
    """
    if ord(sep) > 127 or codecs.lookup(encoding).name not in _ASCII_BASED:
        return None
    if b'"' in raw:
        return None
    if b"\r" in raw:
        raw = raw.replace(b"\r\n", b"\n")
        if b"\r" in raw:
            return None
    text = raw.decode(encoding)
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    buf = np.frombuffer(raw, dtype=np.uint8)
    nl = np.flatnonzero(buf == 10)
    starts = np.r_[0, nl + 1][:len(lines)]
    ends = np.r_[nl, buf.size][:len(lines)]
    seps = np.flatnonzero(buf == ord(sep))
    fields = np.searchsorted(seps, ends) - np.searchsorted(seps, starts) + 1
    fields[ends == starts] = 0  # blank line
    names = None
    if header:
        if not lines:
            raise ValueError(f"{path}: the file is empty; expected a header line.")
        names = lines[0].lstrip("\ufeff").split(sep)
        lines, fields = lines[1:], fields[1:]
    nonblank = np.flatnonzero(fields)
    first_len = int(fields[nonblank[0]]) if nonblank.size else 0
    ncols, index = _header_and_index(names, first_len, wanted, path)
    bad = (fields != ncols) & (fields != 0)
    if bad.any():
        k = int(np.argmax(bad))
        _raise_row(path, k, header, encoding, sep,
                   f"expected {ncols} fields separated by {sep!r}, got {int(fields[k])}")
    if nonblank.size != len(lines):
        lines = [line for line in lines if line]
    flat = sep.join(lines).split(sep) if lines else []
    cols = {arg: flat[c::ncols] for arg, c in index.items()}
    return cols, nonblank


def _split_csv_slow(path, wanted, sep, header, encoding):
    """Columns of any CSV file, through the csv module in chunks."""
    try:
        return _split_csv_slow_unchecked(path, wanted, sep, header, encoding)
    except csv.Error as e:
        raise ValueError(f"{path}: malformed CSV ({e}); fields are limited to "
                         f"{csv.field_size_limit()} characters and lines to {MAX_LINE_BYTES} "
                         "bytes") from None


def _split_csv_slow_unchecked(path, wanted, sep, header, encoding):
    with open(path, newline="", encoding=encoding) as f:
        reader = csv.reader(f, delimiter=sep)
        names = None
        if header:
            names = next(reader, None)
            if names is None:
                raise ValueError(f"{path}: the file is empty; expected a header line.")
            if names and names[0].startswith("\ufeff"):
                names[0] = names[0][1:]
        rows = list(itertools.islice(reader, _CSV_CHUNK))
        ncols, index = _header_and_index(names, next((len(r) for r in rows if r), 0), wanted,
                                         path)
        parts = {arg: [] for arg in index}
        row_pos = []
        offset = 0
        while rows:
            lens = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
            bad = (lens != ncols) & (lens != 0)
            if bad.any():
                k = int(np.argmax(bad))
                _raise_row(path, offset + k, header, encoding, sep,
                           f"expected {ncols} fields separated by {sep!r}, got {int(lens[k])}")
            nonblank = np.flatnonzero(lens)
            if nonblank.size != len(rows):
                rows = [r for r in rows if r]
            if rows:
                columns = list(zip(*rows))
                for arg, c in index.items():
                    parts[arg].extend(columns[c])
                row_pos.append(nonblank + offset)
            offset += lens.size
            rows = list(itertools.islice(reader, _CSV_CHUNK))
    row_pos_all = np.concatenate(row_pos) if row_pos else np.empty(0, dtype=np.int64)
    return parts, row_pos_all


def _resolve_col(col, arg, names, ncols, path):
    if isinstance(col, (int, np.integer)) and not isinstance(col, bool):
        if not 0 <= col < ncols:
            raise ValueError(f"`{arg}`={col} is out of range for {ncols} columns in {path}.")
        return int(col)
    if names is None:
        raise ValueError(f"`{arg}`={col!r}: with header=False, give columns by 0-based "
                         "position, e.g. user_col=0, item_col=1.")
    if col not in names:
        raise ValueError(f"`{arg}`={col!r} is not a column of {path}; the header has "
                         f"{names}.")
    return names.index(col)


def _parse_ids(col: np.ndarray) -> np.ndarray:
    try:
        return col.astype(np.int64)
    except (ValueError, OverflowError):
        return col


def _parse_times(col: np.ndarray, fail) -> np.ndarray:
    """Integer strings are Unix timestamps; otherwise every row must be an ISO 8601 date."""
    try:
        return col.astype(np.int64)
    except (ValueError, OverflowError):
        pass
    digits = np.char.isdigit(np.char.lstrip(np.char.strip(col), "-"))
    if digits.any():  # integers mixed with something else: report the first non-integer
        fail(int(np.argmin(digits)), "the column mixes integer timestamps and other text; "
             "expected an integer timestamp")
    try:
        times = col.astype("datetime64[s]")
        if not np.isnat(times).any():
            return times.astype(np.int64)
    except (ValueError, OverflowError):
        pass
    for k, text in enumerate(col.tolist()):  # error path only: find the offending row
        try:
            if not np.isnat(np.datetime64(text, "s")):
                continue
        except ValueError:
            pass
        fail(k)
    raise AssertionError("unreachable")  # pragma: no cover


def _parse_floats(col: np.ndarray, fail) -> np.ndarray:
    try:
        vals = col.astype(np.float64)
    except ValueError:
        for k, text in enumerate(col.tolist()):  # error path only
            try:
                float(text)
            except ValueError:
                fail(k)
        raise
    finite = np.isfinite(vals)
    if not finite.all():
        fail(int(np.argmin(finite)))
    return vals


def _raise_row(path, row_pos, header, encoding, sep, what):
    """Raise ValueError for the ``row_pos``-th data row, with its line number and text."""
    with open(path, newline="", encoding=encoding) as f:
        reader = csv.reader(f, delimiter=sep)
        if header:
            next(reader, None)
        for _ in itertools.islice(reader, row_pos):
            pass
        next(reader, None)
        lineno = reader.line_num
    with open(path, encoding=encoding, errors="replace") as f:
        text = next(itertools.islice(f, lineno - 1, None), "").rstrip("\r\n")
    shown = repr(text)
    if len(text) > 120:
        shown = f"{text[:120]!r}... ({len(text) - 120} more characters)"
    raise ValueError(f"{path}, line {lineno}: malformed row ({what}): {shown}")
