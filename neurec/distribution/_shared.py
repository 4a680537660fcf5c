"""The gradient exchange of ranks on one host, through shared memory.

When every rank of a data-parallel fit runs on the same host, the rows each rank sends
to their owners and the new rows each owner sends back need not be copied through MPI's
own buffers (two copies a message on one host): the ranks allocate one MPI-3 shared
window (``MPI_Win_allocate_shared``, one segment per rank, contiguous), each rank writes
its step's message into its own segment (the header, the dense gradient, the rows
packed by owner: ``pack_rows`` writes there directly), and after a barrier every rank
reads the others' segments in place: the owners merge the rows sent to them straight
from the senders' segments (``merge_rows``), then write the rows they updated into
their segments (``pack_values``), and after a second barrier every rank writes the
others' new rows into its tables (``unpack_values``). A step is two barriers and no
message. The sums, their order and so the bits are those of
:class:`~neurec.distribution._exchange.GradientExchange`'s messages.

Each segment is read only between the barrier that follows its writing and the next
barrier, which every reader reaches after reading: one buffer per region is enough.
A step whose rows outgrow the segments goes through messages (the base class), and the
window grows, at a point all ranks reach together, for the steps after it.
"""
import ctypes
import sys
from typing import NamedTuple, Optional

import numpy as np

from neurec.distribution._exchange import GradientExchange

# a grown window holds this much more than the step that outgrew it: its rows region,
# and its new rows region (tests set them small to take the fallback paths)
HEADROOM = 1.5
VALUES_HEADROOM = 1.5
# through shared memory when the ranks share a host (a test's and a benchmark's switch)
SHARED = True


class _Window:
    """One MPI-3 shared window over the ranks of ``comm`` (all on one host): ``words``
    32-bit words a rank, the segments contiguous (collective).

    Raises:
        RuntimeError: On every rank, if some rank could not allocate its segment or MPI
            placed the segments apart (nothing is left allocated).
    """

    def __init__(self, comm, words: int):
        from mpi4py import MPI
        self.comm, self.words = comm, int(words)
        size = comm.Get_size()
        try:  # e.g. a small /dev/shm (64 MB in a Docker container)
            self.win, error = MPI.Win.Allocate_shared(4 * self.words, 4, comm=comm), None
        except MPI.Exception as e:
            self.win, error = None, e
        if not comm.allreduce(error is None, op=MPI.LAND):
            if self.win is not None:
                self.win.Free()
            raise RuntimeError(f"no shared window of {4 * self.words} bytes a rank: {error}")
        base = self.win.Shared_query(0)[0].address
        apart = any(self.win.Shared_query(r)[0].address != base + 4 * self.words * r
                    for r in range(size))
        if comm.allreduce(apart, op=MPI.LOR):
            self.win.Free()
            raise RuntimeError("the shared window's segments are not contiguous")
        self.all: Optional[np.ndarray] = np.ctypeslib.as_array(
            (ctypes.c_uint32 * (self.words * size)).from_address(base))
        self.rows = self.all.reshape(size, self.words)  # segment by segment
        self.win.Lock_all()

    def fence(self) -> None:
        """Every rank's writes so far are visible to every rank (a barrier)."""
        self.win.Sync()
        self.comm.Barrier()
        self.win.Sync()

    def free(self) -> None:
        """Release the window (collective); its arrays must not be used after."""
        self.all = self.rows = None
        self.win.Unlock_all()
        self.win.Free()


class _Views(NamedTuple):
    """The window's regions, as the steps read and write them."""

    head: np.ndarray        # this rank's header (int64)
    dense: np.ndarray       # this rank's dense gradient (uint32 words)
    rows: np.ndarray        # this rank's rows packed by owner (uint32 words)
    values_out: np.ndarray  # this rank's new rows (uint32 words)
    table: np.ndarray       # every rank's header (ranks x int64)
    values: np.ndarray      # every rank's dense gradient (ranks x float32)
    message: np.ndarray     # the whole window (int32 words)
    starts: np.ndarray      # where each rank's packed rows start in message
    values_at: np.ndarray   # where each rank's new rows start in message


class SharedGradientExchange(GradientExchange):
    """:class:`GradientExchange` with rows updated at their owners, for ranks that share
    one host (``node``: their communicator from ``Split_type(COMM_TYPE_SHARED)``, the
    same ranks in the same order): the same updates, through a shared window."""

    def __init__(self, comm, node, tables, sparse: bool):
        super().__init__(comm, tables, sparse, owners=True)
        self._node = node
        self._window: Optional[_Window] = None
        self._views: Optional[_Views] = None
        self._failed = False  # MPI could not place the segments together: messages only
        self._shared_step = False  # whether this step went through the window
        self._need = (0, 0)  # the rows' and new rows' words a segment must hold

    # -- layout of a segment: header | dense | rows packed by owner | new rows ---------------
    def _layout(self, dense: int):
        head = 2 * (3 + self.size * len(self.sent))  # step, samples, overflow, counts
        return head, head + dense, head + dense + self._need[0]

    def close(self) -> None:
        """Free the window and the host's communicator (collective: every rank at the end
        of the same fit)."""
        if self._window is not None:
            self._window.free()
            self._window = self._views = None
        if self._node is not None:
            self._node.Free()
            self._node = None
        super().close()

    def __call__(self, grads) -> None:
        if not (self.owners and self.sent) or self._window is None:
            self._shared_step = False
            return super().__call__(grads)
        v, me, size = self._views, self.rank, self.size
        packed, counts = grads.pack_rows(self._sent, empty=self.placeholder, out=v.rows,
                                         owners=size)
        head = v.head
        head[0], head[1] = grads.step, 0 if self.placeholder else grads.n_samples
        head[2] = packed is not v.rows  # outgrew the segment
        head[3:] = counts.reshape(-1)
        dense = grads.dense
        v.dense[:] = dense.view(np.uint32)
        self._window.fence()
        table = v.table
        if table[:, 2].any():  # some rank's rows did not fit: messages for this step
            self._shared_step = False
            return super().__call__(grads)
        self._shared_step = True
        weights = self._weights(table, grads.step)
        if dense.size:
            self._sum_dense(v.values, weights, dense)
        n_rows = table[:, 3:].reshape(size, size, -1)
        words = n_rows @ self._widths  # (sender, owner): where each block starts
        grads.merge_rows(self._sent, v.message, v.starts + (words[:, :me].sum(axis=1)),
                         np.ascontiguousarray(n_rows[:, me, :]), weights)
        self._block = self._new_rows_block(n_rows)
        self.bytes_sent += 4 * int(words[me].sum() - words[me, me] + table.shape[1] * 2
                                   + dense.size)
        self.steps += 1

    def after_apply(self, grads) -> None:
        if not self._shared_step or self._block > self._need[1]:
            super().after_apply(grads)  # every rank agrees: the same step, the same block
            self._grow(grads)
            return
        v, block = self._views, self._block
        out = v.values_out[:block]
        if grads.pack_values(self._sent, out=out) is not out:
            raise RuntimeError("data-parallel fit: new rows outgrew their block")
        self._window.fence()
        grads.unpack_values(self._sent, v.message, v.values_at, block, self.rank)
        self.bytes_sent += 4 * block * (self.size - 1)
        self.stale = True

    def _grow(self, grads) -> None:
        """After a step through messages (all ranks together): make the window hold
        that step's rows and new rows, with room to spare."""
        if not (self.owners and self.sent) or self._last_words is None or self._failed:
            return
        rows = int(self._last_words.sum(axis=1).max())
        need = (max(self._need[0], int(rows * HEADROOM) + 64),
                max(self._need[1], int(self._block * VALUES_HEADROOM) + 64))
        if self._window is not None and need == self._need:
            return
        if self._window is not None:
            self._window.free()
            self._window = self._views = None
        self._need = need
        h, d, r = self._layout(grads.dense.size)
        try:
            self._window = w = _Window(self._node, r + need[1])
        except RuntimeError:  # on every rank (the window agrees)
            self._failed = True
            return
        at = np.arange(self.size, dtype=np.int64) * w.words
        mine = w.rows[self.rank]
        self._views = _Views(head=mine[:h].view(np.int64), dense=mine[h:d], rows=mine[d:r],
                             values_out=mine[r:], table=w.rows[:, :h].view(np.int64),
                             values=w.rows[:, h:d].view(np.float32),
                             message=w.all.view(np.int32), starts=at + d, values_at=at + r)


def exchange_for(comm, tables, sparse: bool, owners: bool) -> GradientExchange:
    """The gradient exchange of a data-parallel fit: through shared memory when its rows
    are updated at their owners and every rank runs on this host (collective), else
    through messages."""
    base = GradientExchange(comm, tables, sparse, owners=owners)
    if not (base.owners and SHARED) or sys.platform == "win32":
        return base
    from mpi4py import MPI
    node = comm.Split_type(MPI.COMM_TYPE_SHARED)
    alone = node.Get_size() == comm.Get_size() and node.Get_rank() == comm.Get_rank()
    if not comm.allreduce(alone, op=MPI.LAND):
        node.Free()
        return base
    return SharedGradientExchange(comm, node, tables, sparse)

