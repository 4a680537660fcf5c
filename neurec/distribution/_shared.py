"""The gradient exchange of ranks on one host, through shared memory.

When every rank of a data-parallel fit runs on the same host, the rows each rank sends
to their owners and the new rows each owner sends back need not be copied through MPI's
own buffers (two copies a message on one host): the ranks allocate one MPI-3 shared
window (``MPI_Win_allocate_shared``, one segment per rank, contiguous), and each step
runs in C (``_core.SharedStep``, csrc/py/_window.c) with no Python and no MPI call:
each rank writes its header, dense gradient and rows packed by owner into its own
segment; after a barrier (each rank's count, on its own cache line, spun on) every rank
sums the dense gradients and the owners merge the rows sent to them straight from the
senders' segments; after the apply phase the owners write the rows they updated into
their segments, and after a second barrier every rank writes the others' new rows into
its tables. The sums, their order and so the bits are those of
:class:`~neurec.distribution._exchange.GradientExchange`'s messages.

Each segment is read only between the barrier that follows its writing and the next
barrier, which every reader reaches after reading: one buffer per region is enough.
A step whose rows outgrow the segments goes through messages (the base class), and the
window grows, at a point all ranks reach together, for the steps after it.
"""
import ctypes
import sys
from typing import Optional

import numpy as np

from neurec import _core
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
        self.rows: Optional[np.ndarray] = np.ctypeslib.as_array(  # segment by segment
            (ctypes.c_uint32 * (self.words * size)).from_address(base)).reshape(size, self.words)
        self.win.Lock_all()

    def fence(self) -> None:
        """Every rank's writes so far are visible to every rank (a barrier)."""
        self.win.Sync()
        self.comm.Barrier()
        self.win.Sync()

    def free(self) -> None:
        """Release the window (collective); its arrays must not be used after."""
        self.rows = None
        self.win.Unlock_all()
        self.win.Free()


class SharedGradientExchange(GradientExchange):
    """:class:`GradientExchange` with rows updated at their owners, for ranks that share
    one host (``node``: their communicator from ``Split_type(COMM_TYPE_SHARED)``, the
    same ranks in the same order): the same updates, through a shared window."""

    def __init__(self, comm, node, tables, sparse: bool):
        super().__init__(comm, tables, sparse, owners=True)
        self._node = node
        self._window: Optional[_Window] = None
        self._step = None  # the window's steps in C (_core.SharedStep)
        self._failed = False  # MPI could not place the segments together: messages only
        self._shared_step = False  # whether this step went through the window
        self._need = (0, 0)  # the rows' and new rows' words a segment must hold
        self.window_steps = 0  # steps whose rows went through the window

    def close(self) -> None:
        """Free the window and the host's communicator (collective: every rank at the end
        of the same fit)."""
        self._free_window()
        if self._node is not None:
            self._node.Free()
            self._node = None
        super().close()

    def _free_window(self) -> None:
        self._step = None  # before the memory it reads goes
        if self._window is not None:
            self._window.free()
            self._window = None

    def __call__(self, grads) -> None:
        if not (self.owners and self.sent) or self._step is None:
            self._shared_step = False
            return super().__call__(grads)
        done = self._step.reduce(grads, self.placeholder)
        if done is None:  # some rank's rows did not fit: messages for this step
            self._shared_step = False
            return super().__call__(grads)
        self._shared_step = True
        self.window_steps += 1
        self._block, sent = done
        self.bytes_sent += 4 * sent
        self.steps += 1

    def after_apply(self, grads) -> None:
        if not self._shared_step or self._block > self._need[1]:
            super().after_apply(grads)  # every rank agrees: the same step, the same block
            self._grow(grads)
            return
        self._step.after(grads, self._block)
        self.bytes_sent += 4 * self._block * (self.size - 1)
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
        self._free_window()
        self._need = need
        dense = grads.dense.size
        # the barrier's line, the header, dense, rows, new rows; segments of whole lines
        words = 16 + 2 * (3 + self.size * len(self.sent)) + dense + need[0] + need[1]
        try:
            self._window = w = _Window(self._node, -(-words // 16) * 16)
        except RuntimeError:  # on every rank (the window agrees)
            self._failed = True
            return
        w.rows[self.rank, :16] = 0  # the barrier counts start at 0 on every rank
        try:
            step, error = _core.SharedStep(
                w.rows, self.rank, self._sent, self._widths - 2, dense, need[0], need[1],
                self.summed), None
        except Exception as e:  # e.g. segments MPI did not align to a cache line
            step, error = None, str(e)  # (not e: its traceback would hold grads)
        w.fence()
        if not self._node.allreduce(error is None, op=self._mpi.LAND):
            self._free_window()
            self._failed = True
            return
        self._step = step


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

