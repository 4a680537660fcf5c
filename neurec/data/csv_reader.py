"""The CSV reader behind `InteractionLog.read_csv`.

A file of interactions without quotes in an ASCII-based encoding is read in
blocks of whole lines (~16 MiB; every line checked against `MAX_LINE_BYTES`
first), each split with a few NumPy operations and its numeric columns parsed
in one C call each; any other file goes through the `csv` module in chunks
(after a streaming check of its line lengths). A progress bar, in MB, moves
between blocks. A malformed row raises ``ValueError`` naming its 1-based line
number and text.
"""
from __future__ import annotations

import codecs
import csv
import gc
import itertools
import os
from typing import Any, Iterator

import numpy as np

from neurec.data._numbers import at_int64_limits, fits_int64, fromstring, has_lone_sign
from neurec.utils.progbar import Progbar, waiting_bar

__all__ = ["MAX_LINE_BYTES", "read_interaction_columns"]

_CSV_CHUNK = 1 << 18
# Longest accepted line of a CSV file (bytes). A longer line is a corrupted or hostile file:
# it is reported before the file is read into memory (splitting it would cost ~5x its size).
MAX_LINE_BYTES = 1 << 20
_SCAN_BLOCK = 1 << 24
_ASCII_BASED = ("utf-8", "ascii", "latin-1", "iso8859-1", "cp1252", "utf-8-sig")
_MB = 1 << 20


def read_interaction_columns(
    path: str,
    user_col: str | int | None,
    item_col: str | int | None,
    time_col: str | int | None,
    value_col: str | int | None,
    sep: str,
    header: bool,
    encoding: str,
    verbose: Any = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Read the columns of a delimited file of interactions.

    The arguments and errors are those of `InteractionLog.read_csv`, which
    builds its log from the result.

    Returns:
        ``(users, items, timestamps, values)``: ids as int64 when every id
        parses as an integer (else strings), timestamps as int64 Unix seconds
        and values as float64, or ``None`` for a column not asked for.
    """
    bar = waiting_bar("read_csv", verbose, None, unit_name="MB")
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
    bar.target = max(1, -(-os.path.getsize(path) // _MB))
    gc_was_enabled = gc.isenabled()
    gc.disable()  # millions of small lists would trigger the cycle collector again and again
    try:
        split = _split_csv_fast(path, wanted, sep, header, encoding, bar)
        if split is None:
            _check_line_lengths(path, MAX_LINE_BYTES)
            split = _split_csv_slow(path, wanted, sep, header, encoding, bar)
    finally:
        if gc_was_enabled:
            gc.enable()
    cols, row_pos_all, parsed = split

    def numbers(arg, dtype):  # parsed block by block on the fast path
        return parsed[arg] if arg in parsed else _fast_numbers(cols[arg], dtype)

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
        ids[arg] = numbers(arg, np.int64)
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
        timestamps = numbers("time_col", np.int64)
        if timestamps is not None:
            check_int64("time_col", timestamps)
        if timestamps is None:
            timestamps = _parse_times(np.array(cols["time_col"], dtype=str),
                                      lambda k, what=None: fail("time_col", k, what or (
                                          "expected an integer timestamp or ISO 8601 date")))
    values = None
    if "value_col" in cols:
        values = numbers("value_col", np.float64)
        if values is None:
            values = _parse_floats(np.array(cols["value_col"], dtype=str),
                                   lambda k: fail("value_col", k, "expected a finite number"))
        finite = np.isfinite(values)
        if not finite.all():
            fail("value_col", int(np.argmin(finite)), "expected a finite number")
    bar.update(bar.target, finalize=True)
    return ids["user_col"], ids["item_col"], timestamps, values


class _LineCheck:
    """Checks, block after block of a file, that no line exceeds ``max_line`` bytes.

    LF, CRLF and CR-only (old Mac) files: both bytes end a line; a line's number counts
    LFs and lone CRs (a CR right before an LF ends the same line).
    """

    def __init__(self, path: str, max_line: int) -> None:
        self.path, self.max_line = path, max_line
        self.line_start, self.lineno, self.pos = 0, 1, 0

    def check(self, block: bytes) -> None:
        """Check the next ``block`` of the file.

        Raises:
            ValueError: Naming the 1-based line number and the limit.
        """
        pos = self.pos
        b = np.frombuffer(block, dtype=np.uint8)
        is_lf, is_cr = b == 10, b == 13
        nl = np.flatnonzero(is_lf | is_cr)
        lone_cr = is_cr.copy()
        lone_cr[:-1] &= ~is_lf[1:]
        breaks = (is_lf | lone_cr)[nl]
        ends = np.r_[nl + pos, pos + len(block)]
        starts = np.r_[self.line_start, nl + pos + 1]
        too_long = np.flatnonzero(ends - starts > self.max_line)
        if too_long.size:
            k = int(too_long[0])
            raise ValueError(
                f"{self.path}, line {self.lineno + int(breaks[:k].sum())}: the line is longer "
                f"than {self.max_line} bytes (neurec.data.interactions.MAX_LINE_BYTES); a CSV "
                "of interactions has short lines: check the separator and quoting, or split "
                "the file")
        self.lineno += int(breaks.sum())
        if nl.size:
            self.line_start = int(nl[-1]) + pos + 1
        self.pos = pos + len(block)


def _check_line_lengths(path: str, max_line: int) -> None:
    """Stream over the file (16 MiB at a time) checking that no line exceeds ``max_line``:
    a file with a huge line fails clearly at the cost of one block of memory."""
    check = _LineCheck(path, max_line)
    with open(path, "rb") as f:
        while True:
            block = f.read(_SCAN_BLOCK)
            if not block:
                return
            check.check(block)


def _line_blocks(f, path: str, max_line: int) -> Iterator[tuple[bytes, int]]:
    """The file's bytes as pieces of whole lines: ``(piece, file offset after it)``.

    Every read block is checked (`_LineCheck`) before any of it is given out; a piece
    ends after an LF, except the file's last piece and a block without any LF (only
    possible with lone CRs, which the fast path refuses), so it holds about one block.
    """
    check = _LineCheck(path, max_line)
    carry, pos = b"", 0
    while True:
        block = f.read(_SCAN_BLOCK)
        if not block:
            break
        check.check(block)
        pos += len(block)
        cut = block.rfind(b"\n") + 1
        if cut == 0 and b"\r" not in block:
            carry += block  # part of one line, shorter than max_line (checked)
            continue
        cut = cut or len(block)
        yield carry + block[:cut], pos - (len(block) - cut)
        carry = block[cut:]
    if carry:
        yield carry, pos


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


def _split_csv_fast(path, wanted, sep, header, encoding, bar: Progbar):
    """Columns of a file without quotes, split block by block with a few NumPy operations.

    Returns ``(columns, row_positions, parsed)`` or None when the file needs the csv
    module (quotes, lone carriage returns, or an encoding that is not ASCII-based).
    ``parsed`` maps each column to its numbers (``_fast_numbers`` of each block, joined),
    or to None when a block is not all plain numbers.
    """
    if ord(sep) > 127 or codecs.lookup(encoding).name not in _ASCII_BASED:
        return None
    dtypes = {arg: np.float64 if arg == "value_col" else np.int64 for arg in wanted}
    cols = {arg: [] for arg in wanted}
    nums: dict = {arg: [] for arg in wanted}
    row_pos = []
    names = index = None
    ncols = 0
    rows_before = 0  # data rows (blank ones included) of the earlier pieces
    first = True
    with open(path, "rb") as f:
        for raw, end in _line_blocks(f, path, MAX_LINE_BYTES):
            if b'"' in raw:
                return None
            if b"\r" in raw:
                raw = raw.replace(b"\r\n", b"\n")
                if b"\r" in raw:
                    return None
            # an LF byte never occurs inside a multi-byte character: pieces decode alone
            lines = raw.decode(encoding).split("\n")
            if lines[-1] == "":
                lines.pop()
            buf = np.frombuffer(raw, dtype=np.uint8)
            nl = np.flatnonzero(buf == 10)
            starts = np.r_[0, nl + 1][:len(lines)]
            ends = np.r_[nl, buf.size][:len(lines)]
            seps = np.flatnonzero(buf == ord(sep))
            fields = np.searchsorted(seps, ends) - np.searchsorted(seps, starts) + 1
            fields[ends == starts] = 0  # blank line
            if first and header:
                names = lines[0].lstrip("\ufeff").split(sep)
                lines, fields = lines[1:], fields[1:]
            first = False
            nonblank = np.flatnonzero(fields)
            if index is None and (names is not None or nonblank.size):
                first_len = int(fields[nonblank[0]]) if nonblank.size else 0
                ncols, index = _header_and_index(names, first_len, wanted, path)
            if index is not None:
                bad = (fields != ncols) & (fields != 0)
                if bad.any():
                    k = int(np.argmax(bad))
                    _raise_row(path, rows_before + k, header, encoding, sep,
                               f"expected {ncols} fields separated by {sep!r}, got "
                               f"{int(fields[k])}")
                n_lines = len(lines)
                if nonblank.size != n_lines:
                    lines = [line for line in lines if line]
                flat = sep.join(lines).split(sep) if lines else []
                for arg, c in index.items():
                    col = flat[c::ncols]
                    cols[arg].extend(col)
                    if nums[arg] is not None:
                        parsed = _fast_numbers(col, dtypes[arg])
                        if parsed is None:
                            nums[arg] = None  # not all numbers: the strings decide later
                        else:
                            nums[arg].append(parsed)
                row_pos.append(nonblank + rows_before)
                rows_before += n_lines
            else:
                rows_before += len(lines)  # blank lines before the first row
            bar.update(min(end // _MB, bar.target), finalize=False)
    if header and names is None:
        raise ValueError(f"{path}: the file is empty; expected a header line.")
    if index is None:
        _header_and_index(names, 0, wanted, path)  # raises: no column in an empty file
        index = {}
    parsed = {arg: (np.concatenate(v) if v else np.empty(0, dtypes[arg])) if v is not None
              else None for arg, v in nums.items()}
    return cols, (np.concatenate(row_pos) if row_pos else np.empty(0, np.int64)), parsed


def _split_csv_slow(path, wanted, sep, header, encoding, bar: Progbar):
    """Columns of any CSV file, through the csv module in chunks (nothing pre-parsed)."""
    try:
        return _split_csv_slow_unchecked(path, wanted, sep, header, encoding, bar) + ({},)
    except csv.Error as e:
        raise ValueError(f"{path}: malformed CSV ({e}); fields are limited to "
                         f"{csv.field_size_limit()} characters and lines to {MAX_LINE_BYTES} "
                         "bytes") from None


def _split_csv_slow_unchecked(path, wanted, sep, header, encoding, bar):
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
            bar.update(min(f.buffer.tell() // _MB, bar.target), finalize=False)
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
