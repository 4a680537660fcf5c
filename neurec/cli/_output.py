"""Recommendation files, written block by block through one atomic write.

The format is long: one row per (user, recommended item), best first::

    user_id,rank,item_id,score
    C000001,1,P00042,0.981234
    C000001,2,P00007,0.975310

``rank`` starts at 1; a user with fewer candidates than ``k`` has fewer rows. CSV is UTF-8
(ids quoted where they hold the separator or a quote); Parquet (pyarrow) has the columns
``user_id`` and ``item_id`` typed as the model's ids (string or int64), ``rank`` int32 and
``score`` float32.
"""
import csv
import io
import os
from typing import BinaryIO, Callable, Iterator, Optional, Tuple

import numpy as np

from neurec.cli._common import CliError

__all__ = ["OUTPUT_SUFFIXES", "check_output", "write_recommendations"]

OUTPUT_SUFFIXES = (".csv", ".parquet")
COLUMNS = ("user_id", "rank", "item_id", "score")

# (raw user ids (n,), item codes (n, k) with -1 for "none", scores (n, k)) per block
Block = Tuple[np.ndarray, np.ndarray, np.ndarray]


def _pyarrow():
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise CliError("writing a .parquet file needs pyarrow: pip install pyarrow (or pip "
                       "install 'neurec[parquet]'), or write a .csv file") from None
    return pyarrow


def check_output(path: str) -> str:
    """The output format (``'csv'`` or ``'parquet'``) of ``path``; checks pyarrow early."""
    if os.path.isdir(path):
        raise CliError(f"--output {path} is a directory; give a file name ending in .csv or "
                       ".parquet")
    low = path.lower()
    if low.endswith(".csv"):
        return "csv"
    if low.endswith(".parquet"):
        _pyarrow()
        return "parquet"
    raise CliError(f"--output must end in .csv or .parquet, got {path!r}")


def _rows(block: Block, item_classes: np.ndarray):
    users, codes, scores = block
    ok = codes >= 0
    n_per = ok.sum(axis=1)
    u = np.repeat(users, n_per)
    # the valid entries of a row are its first ones (trailing -1 when candidates run out)
    rank = (np.cumsum(ok, axis=1)[ok]).astype(np.int32)
    items = item_classes[codes[ok]]
    return u, rank, items, scores[ok].astype(np.float32)


def _csv_writer(f: BinaryIO, item_classes: np.ndarray):
    text = io.TextIOWrapper(f, encoding="utf-8", newline="")
    w = csv.writer(text)
    w.writerow(COLUMNS)

    def write(block: Block) -> int:
        u, rank, items, sc = _rows(block, item_classes)
        w.writerows(zip(u.tolist(), rank.tolist(), items.tolist(),
                        np.char.mod("%.6f", sc).tolist()))
        return u.size

    def close() -> None:
        text.detach()  # flushes; atomic_write closes f

    return write, close


def _arrow_type(pa, dtype: np.dtype):
    return pa.string() if dtype.kind == "U" else pa.from_numpy_dtype(dtype)


def _parquet_writer(f: BinaryIO, user_classes: np.ndarray, item_classes: np.ndarray):
    pa = _pyarrow()
    schema = pa.schema([("user_id", _arrow_type(pa, user_classes.dtype)),
                        ("rank", pa.int32()),
                        ("item_id", _arrow_type(pa, item_classes.dtype)),
                        ("score", pa.float32())])
    writer = pa.parquet.ParquetWriter(f, schema)

    def write(block: Block) -> int:
        u, rank, items, sc = _rows(block, item_classes)
        table = pa.Table.from_arrays([pa.array(u), pa.array(rank), pa.array(items),
                                      pa.array(sc)], schema=schema)
        writer.write_table(table)
        return u.size

    return write, writer.close


def write_recommendations(path: str, fmt: str, blocks: Iterator[Block],
                          user_classes: np.ndarray, item_classes: np.ndarray,
                          after_block: Optional[Callable[[int], None]] = None) -> int:
    """Write the blocks to ``path`` through one atomic write (nothing on an error).

    Args:
        fmt: ``'csv'`` or ``'parquet'``.
        blocks: Yields ``(raw user ids, item codes, scores)``; computing them happens inside
            the write, so memory holds one block at a time.
        user_classes, item_classes: The encoders' ids (types of the Parquet columns; item
            codes are mapped through ``item_classes``).
        after_block: Called with the number of users of each block once it is written.

    Returns:
        The number of rows written.
    """
    from neurec._atomic import atomic_write
    total = [0]

    def fill(f: BinaryIO) -> None:
        if fmt == "csv":
            write, close = _csv_writer(f, item_classes)
        else:
            write, close = _parquet_writer(f, user_classes, item_classes)
        try:
            for block in blocks:
                total[0] += write(block)
                if after_block is not None:
                    after_block(len(block[0]))
        finally:
            close()

    atomic_write(path, fill)
    return total[0]
