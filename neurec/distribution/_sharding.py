"""Row-sharded embedding tables of :class:`neurec.distribution.ModelParallel`.

Rank ``r`` of ``N`` owns the rows ``i`` with ``i % N == r`` of every Embedding table, and
their optimizer state (slots and per-row step counts): only that shard is allocated, at
local row ``i // N``. Round-robin rather than contiguous blocks: ids are often numbered
by first appearance or by popularity, so contiguous blocks would give one rank the hot
rows (and the traffic), or all the new users of a grown table; round-robin spreads both.

The C plan trains over a *working table* per Embedding: a small array (its ``capacity``
rows, about the most distinct ids a run of global batches holds) that the Embedding
layer and the optimizer point at while the tables are sharded. For each run of global
batches every rank computes the same sorted distinct ids per input (every rank sees the
same data and order), each owner packs its rows of them (weights, slots, step counts,
as raw 32-bit words) and one ``Allgatherv`` fills every rank's working tables; the ids of
those batches are rewritten as working rows (``np.searchsorted``); the plan trains them
with the data-parallel reduce hook (every rank applies the same update to the same
working rows); then each owner copies its rows back into its shard, without
communication. Every rank holds the working rows of the whole global batch because the
reduce hook hands the C core the union of every rank's touched rows.

Outside ``fit`` a sharded model gathers what it needs: ``save`` gathers the tables on
rank 0 alone (``Gatherv``) and writes one ordinary model file; ``recommend`` and the
ranking protocols score shard by shard (``neurec/models/_mp_score.py``: each rank its
items, the users' rows fetched block by block); ``predict``, ``evaluate`` and ``fit``'s
validation fetch the rows their samples read from the owners (``_dp_predict.py``, one
``Alltoallv`` of ids and one of rows per block); ``weights`` and ``get_weights`` first
gather the whole tables on every rank (:func:`unshard`, a collective call: every rank
must make it) and the model is an ordinary replicated one from then on; the next ``fit``
shards it again. Under ``ModelParallel(local_data=True)`` the ranks' samples
differ, and :meth:`ShardedTables.fetch` takes the union of their ids.
"""
import contextlib
import zlib
from typing import Dict, Iterator, List, Optional, Sequence

import numpy as np

from neurec.layers.core import OP_EMBEDDING, OP_INPUT

# working rows a table gets at first: runs of batches are cut to fit (a single batch
# with more distinct ids grows it)
WORK_ROWS = 1 << 14


class _Table:
    """One sharded Embedding table: its shard, its working table, where they live."""

    def __init__(self, param: int, layer, idx: int, rows: int, cols: int, frozen: bool):
        self.param, self.layer, self.idx = param, layer, idx
        self.rows, self.cols, self.frozen = rows, cols, frozen
        self.shard: List[Optional[np.ndarray]] = []  # weights, 3 slots (or None), steps
        self.work: List[Optional[np.ndarray]] = []


class ShardedTables:
    """The sharded tables of a model on this rank (see the module docstring).

    Args:
        model: A compiled model whose plan was built (its tables are whole).
        comm: The ``mpi4py`` communicator.

    Attributes:
        tables: One entry per Embedding table of the plan.
        groups: ``(input slots, tables)`` that share one id space: the ids of the slots
            are rewritten with one mapping, into working tables of the same rows.
        capacity: Rows of every working table.
        in_fit: True while ``fit`` trains (gathering the tables is refused then).
        bytes_sent: Payload bytes of row fetches this rank sent.

    Raises:
        ValueError: If a model input that feeds an Embedding is also read as a number,
            or the optimizer updates tables densely (``sparse_updates=False``).
    """

    def __init__(self, model, comm):
        from mpi4py import MPI
        self._mpi = MPI
        self.model, self.comm = model, comm
        self.rank, self.size = int(comm.Get_rank()), int(comm.Get_size())
        self.in_fit = False
        self.bytes_sent = 0
        opt = model.optimizer
        if not opt.sparse_updates:
            raise ValueError("fit under ModelParallel: the optimizer updates every table row "
                             "every step (sparse_updates=False), which a shard cannot do "
                             "without every row; compile with sparse_updates=True (the default)")
        b = model._builder
        self.tables: List[_Table] = []
        by_param: Dict[int, _Table] = {}
        for k, (layer, idx, table) in enumerate(b.params):
            if table:
                w = layer._weights[idx][1]
                t = _Table(k, layer, idx, int(w.shape[0]), int(w.size // max(w.shape[0], 1)),
                           not layer.trainable)
                self.tables.append(t)
                by_param[k] = t
        self.groups = _groups(b.ops, by_param)
        self._width = {}  # ids per sample of each input slot
        self._cache: Dict[int, tuple] = {}
        self.capacity = 0
        self._shard_all()

    # -- sharding ------------------------------------------------------------------
    def _shard_all(self) -> None:
        """Keep this rank's rows of rank 0's tables (and optimizer state), drop the rest."""
        opt = self.model.optimizer
        built = opt.built and len(opt._slots) == len(self.model._builder.params)
        self.model._plan = None  # it borrows the whole tables
        for t in self.tables:
            full = t.layer._weights[t.idx][1]
            state = list(opt._slots[t.param]) if built else [None] * 4
            fresh = state[3] is None  # no table state yet: this rank's rows start fresh
            arrays = [full] + state
            self._agree(arrays)
            mine = slice(self.rank, None, self.size)
            t.shard = [None if a is None else np.ascontiguousarray(a[mine]) for a in arrays]
            _set_weight(t.layer, t.idx, t.shard[0])  # the whole table is freed now
            del full, arrays, state
            if fresh:  # a fresh table's optimizer state, for this rank's rows only
                n = t.shard[0].shape[0]
                t.shard[1:4] = [np.full((n, t.cols), opt._slot_init(i), np.float32)
                                if opt._uses_slot(i) else None for i in range(3)] + \
                    [np.zeros(n, np.int64)]
        self._point_at_work(min(WORK_ROWS, max(t.rows for t in self.tables)), built)

    def _agree(self, arrays: Sequence[Optional[np.ndarray]]) -> None:
        """Rank 0's bytes of every array, sent only where a rank's differ."""
        sums = [zlib.crc32(memoryview(a).cast("B")) if a is not None else -1 for a in arrays]
        every = self.comm.allgather(sums)
        for k, a in enumerate(arrays):
            if a is not None and any(s[k] != every[0][k] for s in every):
                self.comm.Bcast(a, root=0)

    def _point_at_work(self, capacity: int, opt_built: bool = True) -> None:
        """Give every table a zeroed working table of ``capacity`` rows and rebuild the plan
        over them (the Embedding layers and the optimizer point at the working arrays)."""
        from neurec.models._plan import PLAN_LOCK
        self.capacity = capacity
        opt = self.model.optimizer
        with PLAN_LOCK:
            for t in self.tables:
                t.work = [None if a is None else np.zeros((capacity,) + a.shape[1:], a.dtype)
                          for a in t.shard]
                _set_weight(t.layer, t.idx, t.work[0])
                if opt_built:
                    opt._slots[t.param] = tuple(t.work[1:])
            self.model._plan = None
            self.model._build_plan()  # builds fresh optimizer state if there was none
            for t in self.tables:  # a fresh optimizer gave the working tables their own
                opt._slots[t.param] = tuple(t.work[1:])
            self.model._build_plan()

    @property
    def plan(self):
        return self.model._plan

    def nbytes(self) -> int:
        """Bytes of this rank's shards and working tables (weights and optimizer state)."""
        return sum(a.nbytes for t in self.tables for a in t.shard + t.work if a is not None)

    # -- a run of batches ---------------------------------------------------------------
    def batches_per_run(self, inputs: Sequence[np.ndarray], batch_size: int) -> int:
        """How many global batches one working table holds (grows it for one batch)."""
        width = max(int(np.prod(inputs[s].shape[1:])) for slots, _ in self.groups for s in slots)
        ids = batch_size * width * max(len(slots) for slots, _ in self.groups)
        most = max(t.rows for t in self.tables)
        if self.capacity >= most:  # whole tables fit: any run does
            return 1 << 40
        if ids > self.capacity:
            self._point_at_work(min(most, ids))
        return max(1, self.capacity // ids)

    def fetch(self, inputs: List[np.ndarray], sub: np.ndarray,
              local_data: bool = False) -> List[np.ndarray]:
        """Fill the working tables with the rows samples ``sub`` of ``inputs`` read, from
        their owners, and return ``inputs`` with those samples' ids rewritten as working
        rows (copies of the id inputs; the other samples' ids are stale). With
        ``local_data`` every rank passes its own samples: the working rows are the union
        of every rank's ids (one more ``Allgatherv`` per input group)."""
        out = list(inputs)
        self._ids = []
        for slots, _ in self.groups:
            got = [np.asarray(inputs[s][sub]) for s in slots]
            uniq = np.unique(np.concatenate([g.reshape(-1) for g in got]).astype(np.int64))
            if local_data:
                uniq = self._union(uniq)
            for s, g in zip(slots, got):
                src = inputs[s]
                cached = self._cache.get(s)
                if cached is None or cached[0] is not src:
                    cached = (src, src.copy())
                    self._cache[s] = cached
                cached[1][sub] = np.searchsorted(uniq, g.astype(np.int64)).astype(src.dtype)
                out[s] = cached[1]
            self._ids.append(uniq)
        self._exchange_rows()
        return out

    def _union(self, ids: np.ndarray) -> np.ndarray:
        """The sorted union of every rank's sorted distinct ``ids`` (the same everywhere)."""
        MPI = self._mpi
        counts = np.array(self.comm.allgather(int(ids.size)), np.int64)
        every = np.empty(int(counts.sum()), np.int64)
        displs = np.concatenate(([0], np.cumsum(counts)[:-1]))
        self.comm.Allgatherv([np.ascontiguousarray(ids), MPI.INT64_T],
                             [every, (counts, displs), MPI.INT64_T])
        return np.unique(every)

    def _exchange_rows(self) -> None:
        """One Allgatherv: every owner's rows (and state) of the run's ids, to every rank."""
        MPI, size = self._mpi, self.size
        owners = [uniq % size for uniq in self._ids]
        words = [_row_words(t) for _, tables in self.groups for t in tables]
        counts = np.zeros(size, np.int64)
        at = 0
        for g, (_, tables) in enumerate(self.groups):
            per_rank = np.bincount(owners[g], minlength=size)
            for _ in tables:
                counts += per_rank * words[at]
                at += 1
        packed = np.empty(int(counts[self.rank]), np.uint32)
        pos, at = 0, 0
        for g, (_, tables) in enumerate(self.groups):
            local = self._ids[g][owners[g] == self.rank] // size
            for t in tables:
                block = packed[pos:pos + local.size * words[at]].reshape(local.size, words[at])
                col = 0
                for a in t.shard:
                    if a is not None:
                        w = _width(a, t)
                        block[:, col:col + w] = a[local].view(np.uint32).reshape(local.size, w)
                        col += w
                pos += block.size
                at += 1
        every = np.empty(int(counts.sum()), np.uint32)
        displs = np.concatenate(([0], np.cumsum(counts)[:-1]))
        self.comm.Allgatherv([packed, MPI.UINT32_T], [every, (counts, displs), MPI.UINT32_T])
        self.bytes_sent += packed.nbytes * (size - 1)
        for r in range(size):
            pos, at = int(displs[r]), 0
            for g, (_, tables) in enumerate(self.groups):
                where = np.flatnonzero(owners[g] == r)
                for t in tables:
                    block = every[pos:pos + where.size * words[at]].reshape(where.size, words[at])
                    col = 0
                    for a in t.work:
                        if a is not None:
                            w = _width(a, t)
                            a[where] = block[:, col:col + w].view(a.dtype).reshape(
                                (where.size,) + a.shape[1:])
                            col += w
                    pos += block.size
                    at += 1

    def write_back(self) -> None:
        """Copy the working rows this rank owns (trained by the run) into its shards."""
        for g, (_, tables) in enumerate(self.groups):
            uniq = self._ids[g]
            mine = np.flatnonzero(uniq % self.size == self.rank)
            local = uniq[mine] // self.size
            for t in tables:
                if t.frozen:
                    continue
                for s, w in zip(t.shard, t.work):
                    if s is not None:
                        s[local] = w[mine]

    def penalty(self) -> float:
        """The L2 penalty of every weight: the tables' summed over the ranks in rank order."""
        dense = 0.0
        tables = {(id(t.layer), t.idx) for t in self.tables}
        for layer in self.model._layers:
            for k, (_, w, reg) in enumerate(layer._weights):
                if reg is not None and (id(layer), k) not in tables:
                    dense += reg(w)
        mine = [float(t.layer._weights[t.idx][2](t.shard[0]))
                if t.layer._weights[t.idx][2] is not None else 0.0 for t in self.tables]
        every = self.comm.allgather(mine)
        return dense + sum(sum(e) for e in every)

    # -- whole tables ---------------------------------------------------------------------
    def _gathered(self, t: _Table, a: np.ndarray, root: Optional[int]) -> Optional[np.ndarray]:
        """The whole array of which every rank holds its shard ``a`` (round-robin rows): on
        every rank (``root`` None) or on ``root`` alone (None elsewhere)."""
        MPI, size = self._mpi, self.size
        rows = np.array([max(0, (t.rows - r + size - 1) // size) for r in range(size)], np.int64)
        w = _width(a, t)
        counts = rows * w
        displs = np.concatenate(([0], np.cumsum(counts)[:-1]))
        flat = np.ascontiguousarray(a).reshape(-1).view(np.uint32)
        recv = np.empty(int(counts.sum()), np.uint32) if root in (None, self.rank) else None
        if root is None:
            self.comm.Allgatherv([flat, MPI.UINT32_T], [recv, (counts, displs), MPI.UINT32_T])
        else:
            self.comm.Gatherv([flat, MPI.UINT32_T],
                              [recv, (counts, displs), MPI.UINT32_T] if recv is not None
                              else None, root=root)
        if recv is None:
            return None
        full = np.empty((t.rows,) + a.shape[1:], a.dtype)
        for r in range(size):
            full[r::size] = recv[displs[r]:displs[r] + counts[r]].view(a.dtype).reshape(
                (int(rows[r]),) + a.shape[1:])
        return full

    def _whole(self, root: Optional[int]) -> Optional[List[List[Optional[np.ndarray]]]]:
        out = []
        for t in self.tables:
            arrays = [None if a is None else self._gathered(t, a, root) for a in t.shard]
            out.append(arrays)
        return out if root in (None, self.rank) else None

    @contextlib.contextmanager
    def on_main(self) -> Iterator[bool]:
        """Rank 0 holds the whole tables (and optimizer state) inside the block, which yields
        whether this rank is rank 0; the shards are back afterwards."""
        whole = self._whole(0)
        if whole is None:
            yield False
            return
        opt = self.model.optimizer
        self.model._shards = None
        try:
            for t, arrays in zip(self.tables, whole):
                _set_weight(t.layer, t.idx, arrays[0])
                opt._slots[t.param] = tuple(arrays[1:])
            yield True
        finally:
            for t in self.tables:
                _set_weight(t.layer, t.idx, t.work[0])
                opt._slots[t.param] = tuple(t.work[1:])
            self.model._shards = self

    def unshard(self) -> None:
        """Every rank gathers the whole tables; the model is an ordinary one again."""
        from neurec.models._plan import PLAN_LOCK
        if self.in_fit:
            raise RuntimeError("a model under ModelParallel cannot gather its tables (weights, "
                               "get_weights, recommend(histories=), ...) while fit trains them "
                               "(a callback?); predict, evaluate and the ranking protocols work "
                               "on the shards, the rest after fit, on every rank")
        whole = self._whole(None)
        opt = self.model.optimizer
        with PLAN_LOCK:
            for t, arrays in zip(self.tables, whole):
                _set_weight(t.layer, t.idx, arrays[0])
                opt._slots[t.param] = tuple(arrays[1:])
                t.shard = t.work = []
            self.model._shards = None
            self.model._plan = None


def _width(a: np.ndarray, t: _Table) -> int:
    """32-bit words per row of ``a`` (a table's weights, slots or step counts)."""
    return int(np.prod(a.shape[1:], dtype=np.int64)) * a.itemsize // 4


def _row_words(t: _Table) -> int:
    return sum(_width(a, t) for a in t.shard if a is not None)


def _set_weight(layer, idx: int, array: np.ndarray) -> None:
    name, old, reg = layer._weights[idx]
    layer._weights[idx] = (name, array, reg)
    if getattr(layer, "embeddings", None) is old:
        layer.embeddings = array


def _groups(ops, by_param) -> list:
    """``[(input slots, tables)]``: the inputs and tables linked by Embedding ops (an input
    feeding two tables, or a table fed by two inputs, is one group: one id mapping).

    Raises:
        ValueError: If an input feeding an Embedding is also read as numbers.
    """
    numeric = {op.inputs[0] for op in ops if op.kind == OP_INPUT}
    links = [(op.inputs[0], op.params[0]) for op in ops if op.kind == OP_EMBEDDING]
    bad = numeric & {s for s, _ in links}
    if bad:
        raise ValueError(f"fit under ModelParallel: model input(s) {sorted(bad)} feed an "
                         "Embedding and are also read as numbers; ids whose rows are sharded "
                         "are rewritten per batch, so give the numeric feature its own input")
    parent: Dict[tuple, tuple] = {}

    def find(x):
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    for s, p in links:
        parent[find(("s", s))] = find(("p", p))
    groups: Dict[tuple, tuple] = {}
    for s, p in links:
        slots, tables = groups.setdefault(find(("s", s)), ([], []))
        if s not in slots:
            slots.append(s)
        if by_param[p] not in tables:
            tables.append(by_param[p])
    return [(sorted(slots), tables) for slots, tables in groups.values()]
