"""A NegativeSampler's epoch drawn by every rank of a data-parallel fit together.

The C sampler draws its positives in blocks of ``_core.SAMPLER_BLOCK``, each from its own
random stream (the epoch's seed and the block's index), so any process can draw any
block and get the same bits. Under ``DataParallel`` (and ``ModelParallel``) every rank
trains on the same epoch: instead of each drawing all of it, each rank draws a
contiguous share of the blocks and receives the other shares (one in-place
``Allgatherv`` per array: users, items, labels). The epoch is bit for bit the one a
single process draws.
"""
from typing import Callable, List, Sequence

import numpy as np

from neurec import _core

# an epoch whose arrays pass this many elements is drawn whole by every rank (MPI's
# counts and displacements are C ints)
MAX_SHARED = (1 << 31) - 1


def draw_shared(comm, n_pos: int, stride: int, draw: Callable[[int, int], None],
                outputs: Sequence[np.ndarray]) -> None:
    """Fill ``outputs`` (one epoch: ``n_pos * stride`` rows each) on every rank of
    ``comm``: ``draw(first, stop)`` fills the rows of positives ``first..stop-1`` here,
    and the other ranks' rows arrive by ``Allgatherv``.

    Args:
        comm: The ``mpi4py`` communicator.
        n_pos: Positives in the epoch.
        stride: Rows per positive (``1 + num_negatives``).
        draw: Draws a range of positives whose bounds are multiples of
            ``_core.SAMPLER_BLOCK`` (the last may be ``n_pos``) into ``outputs``.
        outputs: The epoch's contiguous arrays (int64 or float32), the same length.
    """
    size, rank = comm.Get_size(), comm.Get_rank()
    if size == 1 or n_pos * stride > MAX_SHARED:
        draw(0, n_pos)
        return
    from neurec.distribution import _allgather_blocks
    block = _core.SAMPLER_BLOCK
    n_blocks = -(-n_pos // block)
    bounds = np.minimum(np.arange(size + 1, dtype=np.int64) * n_blocks // size * block, n_pos)
    draw(int(bounds[rank]), int(bounds[rank + 1]))
    _allgather_blocks(outputs, bounds * stride, comm)


def sampler_arrays(sampler) -> List[np.ndarray]:
    """What a NegativeSampler draws from (its positives, seen-matrix, weights, negatives
    per positive and seed): ranks that share an epoch must pass the same."""
    settings = np.frombuffer(repr((sampler.num_negatives, sampler.seed)).encode(), np.uint8)
    return [sampler._pos_users, sampler._pos_items, sampler._indptr, sampler._indices,
            sampler._cdf, settings]
