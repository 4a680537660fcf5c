"""Samples routed to the owners of their rows: how a data-parallel ``fit`` keeps the
largest embedding tables out of the gradient exchange.

A global batch's gradient is the sum of its samples' gradients, whichever rank computes
each one. ``DataParallel()`` is free to choose which rank takes which sample, so for one
id input it gives each rank the samples of the ids it owns: the rows of every table that
input alone reads (an item's GMF and MLP embeddings, say) are then read and written by
their owner only. Their gradients never travel and their owner applies the optimizer to
them on its own; the gradient exchange
(:class:`neurec.distribution._exchange.GradientExchange`) carries the other tables and the
dense layers. (On ml-1m with a ``NegativeSampler`` the items are routed: their uniform
negatives make a batch touch more distinct items than users.) At the end of each chunk of
batches every rank receives the rows the others updated in it (weights and optimizer
state), so at every callback, save and validation each rank holds the whole, identical
model.

The samples of a global batch keep their order on each rank, a rank's share of a batch
varies from step to step (``Plan.fit(bounds=, norms=)``: each step's loss is still
normalized by the global batch, so the ranks' gradients add up to the batch's), and a
rank whose ids are absent from a batch takes part in its step with no samples.

A rank finds its samples of a chunk in one pass (``_core.route_split``). From a fit's second
pass on, the pass's shuffle carries each sample's owner in its top byte
(``_core.permutation(tags=)``, the same order; the owners are found once per fit for
arrays and a sampler's users, once per pass for a sampler's drawn items,
``_core.route_tags``), so that pass reads the shuffle alone, sequentially.

The input is chosen for the bytes it keeps off the wire, per step: the floats per row of
the tables it alone reads times the distinct ids expected in a global batch (from the
ids' sample counts in the first chunk's arrays: for arrays, and a sampler's users, the
same choice for every fit on the same data and batch size, resumed or not). Its ids are
dealt to the ranks by their number of samples (largest first, in a serpentine order), which
balances the ranks' work; routing is not used when one id holds so many samples that
the shares cannot be balanced within ``MAX_IMBALANCE``.
"""
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from neurec import _core
from neurec.layers.core import OP_EMBEDDING

# routing is used when the busiest rank's expected share of the samples is at most this
# much above 1/P (the step waits for the busiest rank)
MAX_IMBALANCE = 0.05
# rows sent per Allgatherv when the ranks exchange updated rows, at most: a call's byte
# counts and displacements are C ints, so a call also stays under SYNC_BYTES in all
SYNC_ROWS = 1 << 16
SYNC_BYTES = 1 << 30


class Route(NamedTuple):
    """The routed input of a fit.

    Attributes:
        column: The input slot whose ids pick a sample's rank.
        params: The tables only that input reads (their plan parameter ids).
        owner: ``owner[id]``: the rank that trains the samples of ``id`` and owns the rows
            ``id`` of the tables in ``params`` (int32, one entry per row of the largest).
    """

    column: int
    params: tuple
    owner: np.ndarray


def routable(builder, live: Sequence[int]) -> Dict[int, List[int]]:
    """The tables of ``live`` (plan parameter ids) that one id input alone reads, by input
    slot: every op that reads such a table is an Embedding of that slot, one id per
    sample."""
    readers: Dict[int, set] = {}
    for op in builder.ops:
        for p in op.params:
            if p >= 0:
                single = op.kind == OP_EMBEDDING and op.params[0] == p and op.dims[0] == 1
                readers.setdefault(p, set()).add(op.inputs[0] if single else None)
    out: Dict[int, List[int]] = {}
    for p in live:
        slots = readers.get(p, {None})
        if len(slots) == 1 and None not in slots:
            out.setdefault(next(iter(slots)), []).append(p)
    return out


def deal(counts: np.ndarray, size: int) -> np.ndarray:
    """``owner[id]`` for ids with ``counts`` samples each: the ids, most samples first,
    dealt to ranks ``0, 1, .., P-1, P-1, .., 0, 0, 1, ..`` (a serpentine)."""
    order = np.argsort(-counts, kind="stable")
    turn = np.arange(order.size, dtype=np.int64) % (2 * size)
    owner = np.empty(order.size, dtype=np.int32)
    owner[order] = np.where(turn < size, turn, 2 * size - 1 - turn)
    return owner


def distinct_per_batch(counts: np.ndarray, batch_size: int) -> float:
    """The expected number of distinct ids in a batch of ``batch_size`` samples drawn from
    ids with ``counts`` samples each (with replacement: close enough for a shuffled
    epoch): a property of the counts and the batch, not of the shuffle."""
    p = counts[counts > 0] / float(counts.sum())
    return float(np.sum(-np.expm1(batch_size * np.log1p(-np.minimum(p, 1.0 - 1e-12)))))


def choose(builder, tables, inputs: Sequence[np.ndarray], batch_size: int,
           size: int) -> Optional[Route]:
    """The route of a data-parallel fit over ``size`` ranks: the input whose tables a
    batch touches most bytes of, among those whose ids balance the ranks; None when no
    input can be routed (no table read by one id input alone, or ids too skewed).

    Args:
        builder: The model's plan builder (its ops).
        tables: The plan's tables (``_exchange.TableSpec``); frozen ones are never routed.
        inputs: The fit's input arrays (those of its first chunk: every rank's are equal).
        batch_size: The global batch.
        size: The number of ranks.
    """
    spec = {t.param: t for t in tables if not t.frozen}
    candidates = []
    for slot, params in sorted(routable(builder, list(spec)).items()):
        ids = np.asarray(inputs[slot]).reshape(-1)
        if ids.dtype.kind not in "iu" or ids.size != np.shape(inputs[slot])[0] or not ids.size:
            continue
        rows = max(spec[p].rows for p in params)
        if ids.dtype == np.uint64:  # bincount reads intp
            ids = ids.astype(np.int64)  # (past 2^63: negative, then clipped)
        if ids.min() < 0 or ids.max() >= rows:  # the core refuses them later: clip here
            ids = np.clip(ids, 0, rows - 1)
        counts = np.bincount(ids, minlength=rows)
        saved = distinct_per_batch(counts, batch_size) * sum(spec[p].cols for p in params)
        candidates.append((-saved, slot, tuple(sorted(params)), counts))
    for _, slot, params, counts in sorted(candidates, key=lambda c: c[:2]):
        owner = deal(counts, size)  # the most bytes saved first, if the ranks balance
        shares = np.bincount(owner, weights=counts, minlength=size)
        if shares.max() <= (1.0 + MAX_IMBALANCE) * shares.sum() / size:
            return Route(slot, params, owner)
    return None


def sample_owners(route: Route, ids: np.ndarray, rank: int = 0,
                  out: Optional[np.ndarray] = None) -> Tuple[Optional[np.ndarray], np.ndarray]:
    """Each sample's owner (uint8; None past 255 ranks), which spares :func:`split`
    reading every sample's id at every epoch (into ``out`` when it has the size), and the
    rows ``rank`` owns that ``ids`` read (uint8, one per row: those a pass of tagged
    shuffles may train there, marked touched at each of its chunks, a few more than a
    chunk trains, which a swap sends unchanged); one pass over the ids (ids :func:`id_column`)."""
    present = np.zeros(route.owner.size, dtype=np.uint8)
    if int(route.owner.max(initial=0)) > 255:
        return None, present
    ids = ids.reshape(-1)
    if out is None or out.shape != ids.shape:
        out = np.empty(ids.shape, dtype=np.uint8)
    _core.route_tags(route.owner, ids, rank, out, present)
    return out, present


def id_column(column: np.ndarray) -> np.ndarray:
    """The routed input's ids as :func:`split` reads them (int32 or int64: converted only
    when the input holds another type)."""
    column = np.asarray(column)
    return column if column.dtype in (np.int32, np.int64) else column.astype(np.int64)


def split(route: Route, ids: np.ndarray, idx: np.ndarray, batch_size: int,
          rank: int, touched: np.ndarray, out: Optional[np.ndarray] = None,
          owners: Optional[np.ndarray] = None, tagged: bool = False, mark: bool = True):
    """This rank's samples of the global batches ``idx`` (consecutive batches of
    ``batch_size``, the last maybe short): ``(mine, bounds, norms)`` for
    ``Plan.fit(mine, bounds=bounds, norms=norms)``: step ``s`` trains ``mine[bounds[s]:
    bounds[s + 1]]`` (in the batch's order) over ``norms[s]``, the global batch's size.
    ``ids`` is the routed input (:func:`id_column`); ``touched[id]`` (uint8, one per id)
    is set for the ids of ``mine``; ``mine`` is a view of ``out`` when it holds
    ``idx.size`` values; ``owners``: :func:`sample_owners` of ``ids``, when known;
    ``tagged``: ``idx`` is a shuffle tagged with the samples' owners
    (``_core.permutation(tags=)``: each value's top byte its owner), which this rank reads
    in one sequential pass; with ``mark=False`` ``touched`` is then the caller's to mark
    (:func:`sample_owners`' rows present)."""
    n_steps = -(-idx.size // batch_size)
    if out is None or out.size < idx.size:
        out = np.empty(idx.size, dtype=np.int64)
    bounds = np.empty(n_steps + 1, dtype=np.int64)
    n = _core.route_split(route.owner, ids, np.ascontiguousarray(idx, dtype=np.int64),
                          batch_size, rank, out, bounds, touched, owners, tagged,
                          mark or not tagged)
    starts = np.minimum(np.arange(n_steps + 1, dtype=np.int64) * batch_size, idx.size)
    return out[:n], bounds, np.diff(starts)


def sync_rows(comm, arrays: Sequence[np.ndarray], ids: np.ndarray) -> int:
    """Every rank receives the rows each rank updated: ``ids`` are this rank's (rows it
    owns), and rows ``ids`` of every array of ``arrays`` (weights, optimizer slots, per-row
    step counts: the same list on every rank, rows first) travel from here to the others.
    A collective call; returns the bytes this rank sent."""
    from mpi4py import MPI
    size, me = comm.Get_size(), comm.Get_rank()
    widths = [a[:1].nbytes for a in arrays]  # bytes per row
    row = sum(widths)
    sent = 0
    n_every = np.array(comm.allgather(int(ids.size)), dtype=np.int64)
    step = max(1, min(SYNC_ROWS, SYNC_BYTES // (row * size)))
    for lo in range(0, int(n_every.max()) if n_every.size else 0, step):
        counts = np.clip(n_every - lo, 0, step)
        mine = ids[lo:lo + step]
        send = np.empty((mine.size, row), dtype=np.uint8)
        at = 0
        for a, w in zip(arrays, widths):
            send[:, at:at + w] = a[mine].reshape(mine.size, w // a.itemsize).view(np.uint8)
            at += w
        recv = np.empty((int(counts.sum()), row), dtype=np.uint8)
        displs = np.concatenate(([0], np.cumsum(counts[:-1])))
        comm.Allgatherv([send, MPI.BYTE], [recv, (counts * row, displs * row), MPI.BYTE])
        got = np.empty(int(counts.sum()), dtype=np.int64)
        comm.Allgatherv([np.ascontiguousarray(mine, dtype=np.int64), MPI.INT64_T],
                        [got, (counts, displs), MPI.INT64_T])
        keep = np.ones(got.size, dtype=bool)
        keep[displs[me]:displs[me] + counts[me]] = False
        rows, theirs = got[keep], recv[keep]
        at = 0
        for a, w in zip(arrays, widths):
            a[rows] = theirs[:, at:at + w].view(a.dtype).reshape((rows.size,) + a.shape[1:])
            at += w
        sent += send.nbytes * (size - 1)
    return sent
