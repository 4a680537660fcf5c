"""The gradient exchange of a data-parallel ``fit``: the plan's reduce hook
(``Plan.set_reduce_hook``, nr_plan.h) that makes every rank apply the same update.

Each rank's C core computes the gradient of the mean loss over its slice of the global
batch and sums it over its threads; between that reduce phase and the apply phase the
hook below combines the ranks' gradients into the gradient of the global batch's mean
loss, ``sum_r (n_r / N) * g_r`` (``n_r`` samples on rank ``r``, ``N`` in the global
batch), through ``mpi4py``'s buffer calls on the C core's own buffers:

- dense parameters: every rank's gradient travels in the step's first message (an
  ``Allgather`` that also carries each rank's step, sample count and row counts), and
  every rank sums them in rank order, in float64: the same bytes summed by the same code,
  so every rank gets the same bits. (``MPI_Allreduce`` would be the textbook call, but MPI
  fixes neither the order nor the grouping of a floating-point sum, and implementations
  have shipped algorithms in which different ranks grouped the same sum differently: the
  weights of the ranks could then drift apart bit by bit. The standard's own advice for a
  fixed order is to gather and reduce locally, as here.) A dense buffer too large to
  gather whole (``(P - 1) * size`` over ``GATHER_DENSE_MAX`` floats) goes in two phases
  instead: each rank sums one slice of it (an ``Alltoallv``) and receives every summed
  slice (an ``Allgatherv``), the bytes of a ring allreduce, each value computed once.
- embedding tables with sparse updates: every rank sends the ids and gradients of the
  rows its slice touched (one ``Allgatherv`` for all tables); every rank sums each row
  over the ranks in rank order and hands the union of the rows back to the C core
  (``grads.set_part``), so the lazy optimizer updates the same rows with the same values
  everywhere; only touched rows travel.
- tables with dense updates: reduced as dense parameters (a copy of the table's gradient,
  whose size is the table's).

So a step costs one collective call, two with sparse tables. The header sizes the sparse
message and catches ranks that are out of step.

Ranks on one host exchange the same messages through a shared window instead
(``_shared.py``). Tables whose rows a routed fit keeps on their owners (``_routing.py``,
:meth:`route`) stay out of the message: each rank's own gradient of them is applied as it
is. The ranks' gradients are then those of their samples' losses over the global batch,
and add up unweighted.
"""
from typing import Dict, List, NamedTuple, Optional, Sequence

import numpy as np

from neurec import _core
from neurec.distribution._routing import sync_rows

# the most floats a rank receives in the step's first message for the dense gradient
# ((P - 1) * size); larger buffers are reduced in two phases
GATHER_DENSE_MAX = 1 << 22


class TableSpec(NamedTuple):
    """An embedding table of the plan, as the exchange needs it."""

    param: int  # its parameter id in the plan
    rows: int
    cols: int
    frozen: bool


class GradientExchange:
    """The reduce hook of a data-parallel fit over the ranks of ``comm``.

    Args:
        comm: The ``mpi4py`` communicator.
        tables: The plan's embedding tables.
        sparse: Whether the optimizer updates tables lazily (sparse parts) or densely.
        owners: Whether each row is updated by its owner alone (rank ``id % P``; sparse
            tables, several ranks): the gradients go to the owner, which applies the
            optimizer, and :meth:`after_apply` sends the new rows to every rank. The
            optimizer state of the rows a rank does not own then lags on that rank until
            :meth:`sync_state`.

    Attributes:
        bytes_sent: Payload bytes this rank sent to the others so far (headers included;
            what an MPI algorithm forwards on behalf of others is not counted).
        steps: Batches exchanged so far.
        placeholder: Set by the caller around a batch in which this rank has no samples
            of its own (it trains one placeholder sample to take part in the step): the
            rank then contributes nothing.
    """

    def __init__(self, comm, tables: Sequence[TableSpec], sparse: bool, owners: bool = False):
        from mpi4py import MPI
        self._mpi = MPI
        self.comm = comm
        self.rank, self.size = int(comm.Get_rank()), int(comm.Get_size())
        self.tables: Dict[int, TableSpec] = {t.param: t for t in tables}
        self.live: List[int] = sorted(t.param for t in tables if not t.frozen)
        # the sparse message's buffers, grown as needed and kept from step to step
        self._send = np.empty(0, dtype=np.uint32)
        self._recv = np.empty(0, dtype=np.uint32)
        self.sparse = bool(sparse)
        self.owners = bool(owners) and self.sparse and self.size > 1 and bool(self.live)
        self.route(())
        self._block = 0  # words of the longest block of new rows (after_apply), per step
        self._vsend = np.empty(0, dtype=np.uint32)
        self._vrecv = np.empty(0, dtype=np.uint32)
        self.stale = False  # whether other ranks' rows' optimizer state lags here
        self._last_words: Optional[np.ndarray] = None  # the last step's (sender, owner) words
        self.bytes_sent = 0
        self.steps = 0
        self.placeholder = False

    def route(self, routed: Sequence[int]) -> None:
        """Leave the tables ``routed`` out of the exchange: their rows are read and
        written by one rank each (``_routing.py``), so the rank's own gradients of them
        are applied as they are. The ranks' gradients are then those of their samples'
        losses over the global batch (``Plan.fit(norms=)``) and add up unweighted."""
        self.summed = bool(routed)
        self.sent: List[int] = [p for p in self.live if p not in set(routed)]
        self._sent = np.array(self.sent, dtype=np.int64)
        # 32-bit words per row: the id's two, then the gradient's (or the new values')
        self._widths = np.array([self.tables[p].cols + 2 for p in self.sent], dtype=np.int64)

    # -- the hook --------------------------------------------------------------------
    def __call__(self, grads) -> None:
        mine = 0 if self.placeholder else int(grads.n_samples)
        if self.sparse:  # this rank's rows, packed in C; none for a placeholder batch
            packed, counts = grads.pack_rows(self._sent, empty=self.placeholder, out=self._send,
                                             owners=self.size if self.owners else None)
            counts = counts.reshape(-1)
            if packed is not self._send:  # outgrew the buffer: keep a larger one
                self._send = np.empty(packed.size * 3 // 2 + 1024, dtype=np.uint32)
                self._send[:packed.size] = packed
        else:
            parts = self._parts(grads)
            counts = np.zeros(0, dtype=np.int64)
        dense = grads.dense
        gather = dense.size * (self.size - 1) <= GATHER_DENSE_MAX
        h = 2 * (2 + counts.size)  # 32-bit words: the bits travel, nothing is converted
        msg = np.empty(h + (dense.size if gather else 0), dtype=np.uint32)
        head = msg[:h].view(np.int64)
        head[0], head[1] = grads.step, mine
        head[2:] = counts
        if gather:
            msg[h:] = dense.view(np.uint32)
        every = np.empty((self.size, msg.size), dtype=np.uint32)
        self.comm.Allgather([msg, self._mpi.UINT32_T], [every, self._mpi.UINT32_T])
        self.bytes_sent += msg.nbytes * (self.size - 1)
        table = np.ascontiguousarray(every[:, :h]).view(np.int64)
        weights = self._weights(table, grads.step)
        if dense.size and gather:
            # in float64 and in rank order: every rank the same bits
            _core.weighted_sum(every[:, h:].view(np.float32), weights, dense)
        elif dense.size:
            self._reduce(dense, weights)
        if self.owners and self.sent:
            self._reduce_at_owners(grads, table[:, 2:].reshape(self.size, self.size, -1), weights)
        elif self.sparse:
            self._merge_rows(grads, np.ascontiguousarray(table[:, 2:]), weights)
        else:
            for param in self.live:
                self._reduce_dense_table(parts.get(param, []), self.tables[param], weights)
        self.steps += 1

    def _weights(self, table: np.ndarray, step: int) -> np.ndarray:
        """Each rank's weight in the sum, from the step's headers (``table[r]``: rank
        ``r``'s step, then its sample count)."""
        if not (table[:, 0] == step).all():
            raise RuntimeError(f"data-parallel fit: the ranks are at different optimizer steps "
                               f"{table[:, 0].tolist()}; every rank must run the same fit")
        total = int(table[:, 1].sum())
        if total <= 0:
            raise RuntimeError("data-parallel fit: a global batch without samples")
        if self.summed:  # gradients over the global batch already: add them up
            return (table[:, 1] > 0).astype(np.float64)
        return table[:, 1].astype(np.float64) / total

    def close(self) -> None:
        """Release what the exchange holds beyond the fit (collective; nothing here)."""

    @staticmethod
    def _parts(grads) -> Dict[int, list]:
        """The table parts of ``grads`` by parameter: ``{param: [(k, part(k)), ...]}``."""
        parts: Dict[int, list] = {}
        for k in range(grads.n_parts):
            part = grads.part(k)
            parts.setdefault(part[0], []).append((k, part))
        return parts

    # -- dense ------------------------------------------------------------------------
    def _reduce(self, buf: np.ndarray, weights: np.ndarray) -> None:
        """``buf`` (float32, 1-D, every rank's own) becomes ``sum_r weights[r] * buf_r``,
        the same bits on every rank."""
        MPI, size = self._mpi, self.size
        bounds = np.arange(size + 1, dtype=np.int64) * buf.size // size
        counts, displs = np.diff(bounds), bounds[:-1]
        n = int(counts[self.rank])
        slices = np.empty((size, n), dtype=np.float32)
        self.comm.Alltoallv([buf, (counts, displs), MPI.FLOAT],
                            [slices, (np.full(size, n), np.arange(size) * n), MPI.FLOAT])
        summed = np.empty(n, dtype=np.float32)
        _core.weighted_sum(slices, weights, summed)
        self.comm.Allgatherv([summed, MPI.FLOAT], [buf, (counts, displs), MPI.FLOAT])
        self.bytes_sent += 4 * (buf.size - n + n * (size - 1))

    def _reduce_dense_table(self, parts: list, spec: TableSpec, weights: np.ndarray) -> None:
        """A table with dense updates: its parts tile its rows (one block per thread, and
        threads may differ between ranks), so reduce a copy of the whole gradient."""
        if not sum(p[4].shape[0] for _, p in parts):
            return  # no op reads the table: nothing to update, on every rank
        full = np.empty((spec.rows, spec.cols), dtype=np.float32)
        for _, (_, _, first, _, grad) in parts:
            full[first:first + grad.shape[0]] = grad
        self._reduce(full.reshape(-1), weights)
        for _, (_, _, first, _, grad) in parts:
            grad[:] = full[first:first + grad.shape[0]]

    # -- sparse -----------------------------------------------------------------------
    def _merge_rows(self, grads, n_rows: np.ndarray, weights: np.ndarray) -> None:
        """Allgather every rank's ``pack_rows`` block (per table, the ids' 32-bit words,
        then the gradients' bits: never converted, so any bit pattern survives), and let
        the C core sum each row over the ranks in rank order (``grads.merge_rows``: in
        float64, each distinct row once, in order of first appearance) and apply the
        union on every rank. The blocks travel padded to the longest (an ``Allgather``:
        MPICH's ``Allgatherv`` took twice as long for the same bytes here), in buffers
        kept from step to step."""
        if not self.sent:
            return
        size = self.size
        width = int((n_rows @ self._widths).max())  # words of the longest block
        if self._send.size < width:
            grown = np.empty(width, dtype=np.uint32)
            grown[:self._send.size] = self._send
            self._send = grown
        if self._recv.size < size * width:
            self._recv = np.empty(size * width * 3 // 2, dtype=np.uint32)
        every = self._recv[:size * width]
        self.comm.Allgather([self._send[:width], self._mpi.UINT32_T],
                            [every, self._mpi.UINT32_T])
        self.bytes_sent += 4 * width * (size - 1)
        grads.merge_rows(self._sent, every.view(np.int32),
                         np.arange(size, dtype=np.int64) * width, n_rows, weights)

    # -- rows reduced and updated at their owners ----------------------------------------
    def _reduce_at_owners(self, grads, n_rows: np.ndarray, weights: np.ndarray) -> None:
        """Send each row's gradient to its owner (an ``Alltoallv``); the owner sums the
        senders' rows in rank order (``merge_rows``) and applies the union it owns.
        ``n_rows[s, d, j]``: table ``j``'s rows sender ``s`` has for owner ``d``."""
        MPI, size, me = self._mpi, self.size, self.rank
        words = n_rows @ self._widths  # (sender, owner)
        self._last_words = words
        send, recv = words[me], np.ascontiguousarray(words[:, me])
        sdispls, rdispls = np.zeros(size, np.int64), np.zeros(size, np.int64)
        np.cumsum(send[:-1], out=sdispls[1:])
        np.cumsum(recv[:-1], out=rdispls[1:])
        if self._recv.size < recv.sum():
            self._recv = np.empty(int(recv.sum()) * 3 // 2, dtype=np.uint32)
        self.comm.Alltoallv([self._send, (send, sdispls), MPI.UINT32_T],
                            [self._recv, (recv, rdispls), MPI.UINT32_T])
        self.bytes_sent += 4 * int(send.sum() - send[me])
        grads.merge_rows(self._sent, self._recv.view(np.int32), rdispls,
                         np.ascontiguousarray(n_rows[:, me, :]), weights)
        # an owner's new rows are at most the rows sent to it (the tables' counts first)
        self._block = int(2 * self._sent.size + (n_rows.sum(axis=0) @ self._widths).max())

    def after_apply(self, grads) -> None:
        """The plan's apply hook: every rank sends the new values of the rows it owns and
        updated, and writes the others' into its tables (an ``Allgather`` of blocks
        padded to the longest): every rank holds the same weights again."""
        size, block = self.size, self._block
        if not self.sent:
            return
        if self._vsend.size < block:
            self._vsend = np.empty(block * 3 // 2, dtype=np.uint32)
        if self._vrecv.size < size * block:
            self._vrecv = np.empty(size * block * 3 // 2, dtype=np.uint32)
        grads.pack_values(self._sent, out=self._vsend)
        every = self._vrecv[:size * block]
        self.comm.Allgather([self._vsend[:block], self._mpi.UINT32_T],
                            [every, self._mpi.UINT32_T])
        self.bytes_sent += 4 * block * (size - 1)
        grads.unpack_values(self._sent, every.view(np.int32),
                            np.arange(size, dtype=np.int64) * block, block, self.rank)
        self.stale = True

    def sync_state(self, state: Dict[int, Sequence[np.ndarray]]) -> None:
        """Every rank takes each table row's optimizer state (``state[param]``: its slot
        arrays and per-row step counts) from the row's owner (``_routing.sync_rows``;
        collective; nothing to do unless rows were updated at their owners since the
        last call)."""
        if not self.stale:
            return
        for param in self.sent:  # the rows id % P == rank are this rank's
            arrays = list(state.get(param, ()))
            if arrays:
                sync_rows(self.comm, arrays,
                          np.arange(self.rank, arrays[0].shape[0], self.size, dtype=np.int64))
        self.stale = False
