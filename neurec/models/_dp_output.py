"""Scoring at scale: ``recommend(..., output=path)`` streams recommendations to a file
(one per rank under a distribution), and ``evaluate`` / ``recommend`` split their work
across the ranks with the result on every rank (``gather="all"``) or on rank 0 alone
(``gather="main"``).

A file is written block by block (``BLOCK_USERS`` users at a time, so memory holds one
block) through one atomic write: a failure leaves no file. Its format is long, one row
per (user, recommended item), best first, as ``neurec recommend --output`` writes it::

    user_id,rank,item_id,score

``rank`` starts at 1; a user with fewer candidates than ``k`` has fewer rows. Parquet
(pyarrow) has ``user_id`` and ``item_id`` typed as the ids (string or int64), ``rank``
int32 and ``score`` float32.
"""
import csv
import io
import os
from typing import Any, BinaryIO, Callable, Dict, Optional

import numpy as np

from neurec import distribution

BLOCK_USERS = 8192  # users scored and written per block of recommend(output=)


def check_gather(fn: str, gather: Any) -> str:
    if gather not in ("all", "main") or not isinstance(gather, str):
        raise ValueError(f"{fn}: gather must be 'all' (every rank gets the result) or 'main' "
                         f"(rank 0 gets it, the others None), got {gather!r}")
    return gather


def _local_data() -> bool:
    d = distribution.distribution()
    return isinstance(d, distribution.DataParallel) and d.local_data


def output_path(output: Any) -> str:
    """``output`` with ``{rank}`` replaced by this rank; checked.

    Raises:
        TypeError: If ``output`` is not a path.
        ValueError: For a suffix other than .csv / .parquet, several processes without
            ``{rank}`` in the name, or a directory.
        ImportError: For .parquet without pyarrow.
    """
    if not isinstance(output, (str, os.PathLike)):
        raise TypeError(f"recommend: output must be a file path ending in .csv or .parquet, "
                        f"got {type(output).__name__}")
    template = os.fspath(output)
    if distribution.size() > 1 and isinstance(distribution.distribution(),
                                              distribution.DataParallel) \
            and "{rank}" not in template:
        raise ValueError(f"recommend: output={template!r} under a distribution of "
                         f"{distribution.size()} processes would have every rank write the "
                         f"same file; put {{rank}} in the name, e.g. 'recs-{{rank}}.csv'")
    try:
        path = template.replace("{rank}", str(distribution.rank()))
    except (IndexError, KeyError, ValueError) as e:
        raise ValueError(f"recommend: output={template!r}: {e}") from None
    low = path.lower()
    if not low.endswith((".csv", ".parquet")):
        raise ValueError(f"recommend: output must end in .csv or .parquet, got {template!r}")
    if os.path.isdir(path):
        raise ValueError(f"recommend: output {path!r} is a directory; give a file name")
    if low.endswith(".parquet"):
        _pyarrow()
    return path


def _pyarrow():
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise ImportError("recommend: writing a .parquet file needs pyarrow (pip install "
                          "pyarrow); or write a .csv file") from None
    return pyarrow


def _rows(users: np.ndarray, ids: np.ndarray, scores: np.ndarray):
    """The long rows of a block: valid entries are a row's first ones (``-1`` / None
    and ``-inf`` trail when candidates run out)."""
    ok = ids != -1 if ids.dtype != object else np.not_equal(ids, None)
    rank = np.cumsum(ok, axis=1)[ok].astype(np.int32)
    return np.repeat(users, ok.sum(axis=1)), rank, ids[ok], scores[ok].astype(np.float32)


class _Writer:
    """Writes blocks of rows to an open binary file as CSV or Parquet."""

    def __init__(self, f: BinaryIO, parquet: bool):
        self.f, self.parquet, self.rows = f, parquet, 0
        self._csv = self._pq = self._text = None

    def write(self, users, ids, scores) -> None:
        u, rank, items, sc = _rows(np.asarray(users), ids, scores)
        if self.parquet:
            pa = _pyarrow()
            u = u.astype(str) if u.dtype == object else u
            items = items.astype(str) if items.dtype == object else items
            table = pa.table({"user_id": u, "rank": rank, "item_id": items, "score": sc})
            if self._pq is None:
                self._pq = pa.parquet.ParquetWriter(self.f, table.schema)
            self._pq.write_table(table)
        else:
            if self._csv is None:
                self._text = io.TextIOWrapper(self.f, encoding="utf-8", newline="")
                self._csv = csv.writer(self._text)
                self._csv.writerow(("user_id", "rank", "item_id", "score"))
            self._csv.writerows(zip(u.tolist(), rank.tolist(), items.tolist(),
                                    np.char.mod("%.6f", sc).tolist()))
        self.rows += int(u.size)

    def close(self) -> None:
        if self.parquet and self._pq is not None:
            self._pq.close()
        if self._text is not None:
            self._text.detach()  # flushes; atomic_write closes the file


def _blocks(flat: np.ndarray, shares, sharded: bool):
    """``(block, writer)``: the blocks of users this rank scores, and the rank that
    writes each. Alone: its own blocks. With sharded tables (ModelParallel) every rank takes
    part in scoring every rank's blocks, in rank order (the writer's users sent by it
    under ``local_data=True``, known to all otherwise)."""
    rank = distribution.rank()
    if not sharded:
        for lo in range(0, flat.size, BLOCK_USERS):
            yield flat[lo:lo + BLOCK_USERS], rank
        return
    comm = distribution.communicator()
    sizes = comm.allgather(int(flat.size)) if shares is None else np.diff(shares)
    for r in range(distribution.size()):
        for lo in range(0, int(sizes[r]), BLOCK_USERS):
            if shares is None:  # local data: rank r's users, from it
                block = comm.bcast(flat[lo:lo + BLOCK_USERS] if r == rank else None, root=r)
            else:
                block = flat[shares[r] + lo:min(shares[r + 1], shares[r] + lo + BLOCK_USERS)]
            yield block, r


def recommend_to_file(call: Callable, users, output, verbose, model=None) -> Dict[str, Any]:
    """``Model.recommend(users, output=...)``: this rank's users (its contiguous share,
    or under ``DataParallel(local_data=True)`` the users it was given) scored
    ``BLOCK_USERS`` at a time by ``call(block, verbose)`` and written to its file. With
    tables sharded by ModelParallel (``model._shards``) every rank scores every block
    against its item shard, ``call(block, verbose, gather_to=writer)``, in lockstep.

    Returns:
        ``{"path", "users", "rows"}`` of this rank's file, and ``"total_users"`` /
        ``"total_rows"`` over every rank (one Allreduce; the same as this rank's on one
        process).
    """
    from neurec._atomic import atomic_write
    path = output_path(output)
    flat = np.asarray(users).ravel()
    shares = None if _local_data() else distribution._shares(flat.size)
    sharded = getattr(model, "_shards", None) is not None and distribution.size() > 1
    everyone = flat
    if shares is not None:
        r = distribution.rank()
        flat = flat[shares[r]:shares[r + 1]]
    state = {"rows": 0}

    def fill(f: BinaryIO) -> None:
        w = _Writer(f, path.lower().endswith(".parquet"))
        try:
            if flat.size == 0 and w.parquet:  # an empty file is still a valid Parquet file
                w.write(flat[:0], np.empty((0, 0), np.int64), np.empty((0, 0), np.float32))
            quiet = verbose if distribution.is_main() else 0
            for block, writer in _blocks(everyone if sharded else flat, shares, sharded):
                ids, scores = call(block, quiet, gather_to=writer) if sharded else \
                    call(block, quiet)
                if writer == distribution.rank():
                    w.write(block, ids, scores)
        finally:
            w.close()
        state["rows"] = w.rows

    atomic_write(path, fill)
    out = {"path": path, "users": int(flat.size), "rows": int(state["rows"])}
    comm = distribution.communicator()
    if comm is not None and distribution.size() > 1:
        totals = comm.allreduce(np.array([out["users"], out["rows"]], dtype=np.int64))
        out["total_users"], out["total_rows"] = int(totals[0]), int(totals[1])
    else:
        out["total_users"], out["total_rows"] = out["users"], out["rows"]
    return out


# -- evaluate --------------------------------------------------------------------------
def split_evaluate(model, inputs, labels, weights, gather: str) -> Optional[Dict[str, float]]:
    """``Model.evaluate`` on arrays under DataParallel with several processes: each rank
    predicts a contiguous share of the rows (under ``local_data=True``: all of its own
    rows), the predictions (and, with local data, the labels and weights) are gathered in
    rank order and the loss and metrics computed from them: the same bytes on every rank
    that gets a result, so the same result, and one process's on the same rows. With
    tables sharded by ModelParallel (``model._shards``) each rank predicts its share
    through the rows it fetches (``_dp_predict.py``: every rank takes part, even with
    no rows) and the tables' L2 penalty is summed over the ranks."""
    from mpi4py import MPI
    comm, rank, size = distribution.communicator(), distribution.rank(), distribution.size()
    local = _local_data()
    n = labels.shape[0]
    if local:
        counts = np.array(comm.allgather(n), dtype=np.int64)
        lo, hi = 0, n
    else:
        bounds = np.arange(size + 1, dtype=np.int64) * n // size
        counts = np.diff(bounds)
        lo, hi = int(bounds[rank]), int(bounds[rank + 1])
    shards = getattr(model, "_shards", None)
    pred = model._predict_arrays([a[lo:hi] for a in inputs]) if hi > lo or shards else \
        np.empty((0,) + labels.shape[1:], dtype=np.float32)
    pred = np.ascontiguousarray(pred, dtype=np.float32)
    arrays = [(pred, MPI.FLOAT)]
    if local:
        arrays.append((np.ascontiguousarray(labels, dtype=np.float32), MPI.FLOAT))
        if comm.allreduce(weights is not None, op=MPI.LOR):
            w = np.ones(n, np.float32) if weights is None else weights
            arrays.append((np.ascontiguousarray(w, dtype=np.float32).reshape(n, -1), MPI.FLOAT))
    got = []
    for a, kind in arrays:
        per = int(np.prod(a.shape[1:])) if a.ndim > 1 else 1
        c = counts * per
        d = np.concatenate(([0], np.cumsum(c)[:-1]))
        full = np.empty((int(counts.sum()),) + a.shape[1:], dtype=a.dtype)
        if gather == "all":
            comm.Allgatherv([a, kind], [full, (c, d), kind])
        else:
            comm.Gatherv([a, kind], [full, (c, d), kind] if rank == 0 else None, root=0)
        got.append(full)
    penalty = None if shards is None else shards.penalty()  # every rank: a collective call
    if gather == "main" and rank != 0:
        return None
    if local:
        labels = got[1].reshape((-1,) + labels.shape[1:])
        weights = got[2].reshape(-1) if len(got) > 2 else None
    return model._evaluate_predictions(labels, got[0], weights, penalty)
