"""``fit`` under ``DataParallel(local_data=True)``: each rank passes only its own partition
of the log (arrays, or a ``NegativeSampler`` over its users' interactions).

The global batch ``B`` (``fit``'s ``batch_size``) is apportioned to the ranks in
proportion to their partitions: with ``n_r`` samples on rank ``r`` and ``N = sum n_r``
(one ``Allgather`` of the partition sizes), rank ``r``'s local batch is
``floor(B * c_{r+1} / N) - floor(B * c_r / N)`` (``c_r = n_0 + ... + n_{r-1}``, at least
1), so the local batches add up to ``B`` and equal partitions get the slices
``DataParallel()`` cuts from every global batch. Every rank takes the same number of
steps per epoch, ``S = max_r ceil(n_r / b_r)``; a rank whose partition runs out before
the others takes part in the remaining steps without samples (the exchange weighs every
rank's gradient by its sample count, so the update is the gradient of the mean loss over
the samples of the step). Each rank shuffles its own partition with the epoch's seed
(the same on every rank); a sampler draws the negatives of its own users from the global
item range (every rank's sampler must have the same ``(n_users, n_items)`` shape).
"""
from typing import Any, Dict, Optional, Tuple

import numpy as np

from neurec import distribution
from neurec.models import _distributed
from neurec.models._distributed import DataParallelFit, ModelParallelFit, _signature


def begin(model, plan, source, opts, callbacks) -> Optional[DataParallelFit]:
    """The data-parallel state of a fit (``_distributed.begin``), of a
    :class:`LocalDataFit` under ``DataParallel(local_data=True)`` (a
    :class:`LocalModelParallelFit` under ``ModelParallel(local_data=True)``); None on one
    process."""
    if _distributed.active() and distribution.distribution().local_data \
            and not _distributed.alone(model):
        if _distributed.sharding():
            return LocalModelParallelFit(model, plan, source, opts, callbacks)
        return LocalDataFit(model, plan, source, opts, callbacks)
    return _distributed.begin(model, plan, source, opts, callbacks)


def local_batches(sizes: np.ndarray, batch_size: int) -> np.ndarray:
    """Each rank's local batch: ``batch_size`` apportioned in proportion to ``sizes``
    (cumulative rounding, so they add up to ``batch_size``; at least 1 each)."""
    sizes = np.asarray(sizes, dtype=np.int64)
    total = int(sizes.sum())
    cum = np.concatenate(([0], np.cumsum(sizes)))
    bounds = np.array([batch_size * int(c) // total for c in cum], dtype=np.int64)
    return np.maximum(np.diff(bounds), 1)


class _LocalSource:
    """A ``_adapters.ArraySource`` over this rank's partition, cut into ``steps`` batches of
    ``batch_size`` per epoch; the batches past the end of the partition are empty
    (their rows -1 in ``idx``), so every rank runs the same number of steps."""

    def __init__(self, inner, batch_size: int, steps: int):
        self.inner, self.batch_size, self.steps = inner, batch_size, steps
        inner.batch_size = batch_size
        self.validation = inner.validation
        self._done = 0
        self._arrays = None

    def available(self, seed: int) -> bool:
        return self.inner.available(seed)

    def begin_epoch(self, seed: int) -> None:
        self.inner.begin_epoch(seed)
        self._done = 0

    def end_epoch(self) -> None:
        self.inner.end_epoch()

    def next_chunk(self, max_batches: int) -> Optional[Tuple[Any, ...]]:
        if self._done >= self.steps:
            return None
        nb = min(max_batches, self.steps - self._done)
        self._done += nb
        part = self.inner.next_chunk(nb)
        if part is not None:
            self._arrays = part[:3]
            idx = part.idx
        else:
            idx = np.empty(0, dtype=np.int64)
        padded = np.full(nb * self.batch_size, -1, dtype=np.int64)
        padded[:idx.size] = idx
        return (*self._arrays, padded, self.batch_size)  # a _adapters.Chunk's fields


class LocalDataFit(DataParallelFit):
    """One rank's side of a fit on its own partition (see the module docstring).

    Raises:
        ValueError: For batches from a generator or PyDataset, ``steps_per_epoch``, an
            empty partition, or a global batch smaller than the number of processes.
    """

    def __init__(self, model, plan, source, opts, callbacks):
        if getattr(source, "data", None) is None:  # not arrays or a sampler (ArraySource)
            raise ValueError("fit under DataParallel(local_data=True): pass each rank's "
                             "partition as arrays or a NegativeSampler (batches from a "
                             "generator or PyDataset are not supported)")
        if source.steps_per_epoch is not None:
            raise ValueError("fit under DataParallel(local_data=True): steps_per_epoch is not "
                             "supported; the ranks agree on the steps of an epoch themselves")
        super().__init__(model, plan, source, opts, callbacks)
        comm = self.comm
        n = int(source.data.num_samples)
        self.sizes = np.array(comm.allgather(n), dtype=np.int64)
        if (self.sizes <= 0).any():
            self.model._open_exchange = self.exchange  # freed by the next fit
            raise ValueError(f"fit under DataParallel(local_data=True): rank "
                             f"{int(np.argmin(self.sizes))}'s partition has no samples; give "
                             f"every rank part of the data")
        self.global_batch = min(int(opts.batch_size), int(self.sizes.sum()))
        batches = local_batches(self.sizes, self.global_batch)
        self.local_batch = int(batches[self.rank])
        self.steps = int(max(-(-int(s) // int(b)) for s, b in zip(self.sizes, batches)))
        self.source = _LocalSource(source, self.local_batch, self.steps)

    def _share_sampling(self, source) -> None:
        """Each rank's sampler holds its own partition: each draws its own epochs."""

    def _global_batch(self, source, opts) -> int:
        return int(opts.batch_size)

    def fit(self, inputs, labels, idx, batch_size, step, seed, weights=None) -> Dict[str, Any]:
        """Train this rank's rows of the chunk's batches (``idx``: ``nb`` batches of the
        local batch size, the rows of the batches past its partition's end -1)."""
        if not self.checked:
            self._check(inputs, labels, weights, batch_size, step)
            self.hook()
        nb = idx.size // batch_size
        real = idx[idx >= 0]
        full = real.size // batch_size
        stats = None
        if full:
            stats = self.plan.fit(inputs, labels, np.ascontiguousarray(real[:full * batch_size]),
                                  batch_size, step, seed, weights=weights)
        rest = real[full * batch_size:]
        if rest.size:
            st = self.plan.fit(inputs, labels, np.ascontiguousarray(rest), rest.size, step,
                               seed, weights=weights)
            stats = st if stats is None else {k: v + st[k] for k, v in stats.items()}
        empty = nb - full - (1 if rest.size else 0)
        if empty:  # take part in the others' steps, contributing nothing
            stats = self._placeholder_steps(inputs, labels, np.zeros(empty, dtype=np.int64),
                                            step, seed, weights, stats)
        return stats

    def _check(self, inputs, labels, weights, batch_size: int, step: np.ndarray) -> None:
        """Every rank built the same model, passes the same fit arguments and the same
        id ranges (a ValueError on every rank otherwise); then every rank takes rank 0's
        weights and optimizer state."""
        self.checked = True
        mine = _signature(self.model, self.opts, self.global_batch, inputs, labels, weights)
        del mine["number of samples"], mine["data checksum"]
        sampler = self.source.inner.sampler
        mine["sampler (n_users, n_items)"] = None if sampler is None else \
            tuple(int(d) for d in sampler.matrix.shape)
        every = self.comm.allgather(mine)
        for r, theirs in enumerate(every):
            for field, value in theirs.items():
                if value != every[0][field]:
                    hint = "; build every rank's NegativeSampler with the global n_users= and " \
                        "n_items=" if field.startswith("sampler") else ""
                    raise ValueError(
                        f"fit under DataParallel(local_data=True): rank {r}'s {field} differs "
                        f"from rank 0's ({value!r} != {every[0][field]!r}); every rank must "
                        f"build and compile the same model and call fit with the same "
                        f"arguments{hint}")
        self._catch_up_routed()
        self._sync_state(step)


class LocalModelParallelFit(ModelParallelFit, LocalDataFit):
    """One rank's side of a fit on its own partition with row-sharded tables
    (``ModelParallel(local_data=True)``): :class:`LocalDataFit`'s steps, run by run as
    :class:`ModelParallelFit` trains them, but the ranks' samples differ, so a run's
    working rows are the union of every rank's ids (``ShardedTables.fetch(local_data=
    True)``: one more ``Allgatherv`` of the distinct ids per run).
    """

    def fit(self, inputs, labels, idx, batch_size, step, seed, weights=None) -> Dict[str, Any]:
        """Train the chunk's ``nb`` local batches (``idx``: rows of this rank's partition,
        -1 past its end) in runs of batches whose rows fit the working tables."""
        per = self.shards.batches_per_run(inputs, self.global_batch)
        self._follow_working_tables()
        stats = None
        run = per * batch_size
        for at in range(0, idx.size, run):
            sub = idx[at:at + run]
            real = sub[sub >= 0]
            if real.size < sub.size:  # empty steps read sample 0 (their rows must be here)
                real = np.concatenate([real, [0]])
            local = self.shards.fetch(inputs, real, local_data=True)
            st = LocalDataFit.fit(self, local, labels, sub, batch_size, step, seed, weights)
            self.shards.write_back()
            stats = st if stats is None else {k: v + st[k] for k, v in stats.items()}
        return stats
