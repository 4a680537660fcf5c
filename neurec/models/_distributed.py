"""``fit`` under :class:`neurec.distribution.DataParallel`: what the epoch loop does
differently when several processes train together.

Every rank runs the same loop over the same shuffled order (the same seed, broadcast from
rank 0). Each global batch is split among the ranks: by the owner of one id input's
rows where the tables allow it (``distribution/_routing.py``: the rank's samples of each
batch, in order, trained as steps of varying size), else into one contiguous slice per
rank. A rank hands the C core only its samples of a chunk of batches (indices into the
full arrays, so dropout masks, which depend on the sample's index and the step, are
those of one process), and
the reduce hook (:class:`neurec.distribution._exchange.GradientExchange`) combines the
ranks' gradients of every batch before it is applied. Between chunks the ranks sum their
loss and metric statistics in rank order and agree on the next chunk's size and on
stopping, so every rank sees the same logs and runs the same callbacks; only rank 0
prints, validates (the others receive its results) and writes files.

``Model.recommend`` goes through :func:`recommend` here: each rank ranks a contiguous
share of the users and the rows are gathered on every rank.
"""
import contextlib
import zlib
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from neurec import distribution
from neurec.callbacks import CSVLogger, ModelCheckpoint
from neurec.callbacks.callback_list import _flatten_callbacks
from neurec.distribution import _routing, _shared
from neurec.distribution._epoch import sampler_arrays
from neurec.distribution._exchange import TableSpec

# callbacks that write files: rank 0 alone runs them
_WRITERS = (CSVLogger, ModelCheckpoint)
# route samples to the owners of their rows where possible (_routing.py); off: every
# table's rows go through the gradient exchange (a benchmark's A/B switch)
ROUTE = True


def active() -> bool:
    """Whether training runs data-parallel: DataParallel set and several processes."""
    return isinstance(distribution.distribution(), distribution.DataParallel) and \
        distribution.size() > 1


def sharding() -> bool:
    """Whether ``fit`` shards the embedding tables: ModelParallel and several processes."""
    return isinstance(distribution.distribution(), distribution.ModelParallel) and \
        distribution.size() > 1


def alone(model) -> bool:
    """Whether ``model`` trains on this process alone whatever the distribution (a
    fold-in's scratch model: each rank fits its own users, ``_foldin.py``)."""
    return bool(getattr(model, "_train_alone", False))


def fit_plan(model):
    """The plan ``fit`` trains through: the model's own, or under ModelParallel the plan
    over its working tables (the tables sharded first if they are whole: their optimizer
    state, when not built yet, is built for this rank's rows only)."""
    if not sharding() or alone(model):
        if getattr(model, "_shards", None) is not None:
            model._shards.unshard()  # ModelParallel was unset: every rank gathers
        return model._get_plan()
    if getattr(model, "_shards", None) is None:
        from neurec.distribution._sharding import ShardedTables
        from neurec.models._plan import lower
        model._builder = lower(model)
        model._shards = ShardedTables(model, distribution.communicator())
    return model._shards.plan


def begin(model, plan, source, opts, callbacks) -> Optional["DataParallelFit"]:
    """The data-parallel state of a fit, or None when it trains as one process (no
    DataParallel distribution set, or a single process).

    Raises:
        ValueError: For a Hogwild model, or a batch smaller than the number of processes.
    """
    if not active() or alone(model):
        return None
    if sharding():
        return ModelParallelFit(model, plan, source, opts, callbacks)
    return DataParallelFit(model, plan, source, opts, callbacks)


class DataParallelFit:
    """One rank's side of a data-parallel fit (see the module docstring).

    Attributes:
        opts: ``fit``'s options with rank 0's seed (and ``verbose=0`` off rank 0).
        callbacks: The callbacks this rank runs (file writers only on rank 0).
        exchange: The reduce hook, with its byte and step counts.
    """

    def __init__(self, model, plan, source, opts, callbacks):
        self.comm = distribution.communicator()
        self.rank, self.size = distribution.rank(), distribution.size()
        self.is_main = self.rank == 0
        self.model, self.plan = model, plan
        self.source = source  # what fit's loop reads its chunks from
        if getattr(model, "hogwild", False) and model.optimizer.sparse_updates:
            raise ValueError("fit under DataParallel: a model compiled with hogwild=True updates "
                             "its tables without a reduce phase, where the processes combine "
                             "their gradients; compile it with hogwild=False")
        self._check_batch(self._global_batch(source, opts))  # arrays: known now
        seed = self.comm.bcast(opts.seed, root=0)
        self.opts = opts._replace(seed=seed, verbose=opts.verbose if self.is_main else 0)
        self.callbacks = _own_callbacks(callbacks, self.is_main)
        self.checked = False
        self.route: Optional[_routing.Route] = None
        self._touched: Optional[np.ndarray] = None  # uint8: routed ids trained, unsynced
        self._mine = np.empty(0, dtype=np.int64)  # this rank's samples of a chunk (reused)
        # the routed ids of the pass under way and their owners, when its shuffle carries
        # them (_tags; the owners' buffer is kept from pass to pass)
        self._ids: Optional[np.ndarray] = None
        self._owners: Optional[np.ndarray] = None
        self._present: Optional[np.ndarray] = None  # the rows this rank owns that they read
        self.tagged_chunks = 0  # chunks split from a shuffle that carried their owners
        self._present_rows = 0
        # (ids, each sample's owner, the rows this rank owns they read) of a fixed column
        self._fixed: Optional[Tuple] = None
        self._close_open_exchange()
        self.exchange = _shared.exchange_for(self.comm, _tables(model),
                                             model.optimizer.sparse_updates, owners=self.OWNERS)
        with self._freed_on_error():
            self._share_sampling(source)
        # ModelCheckpoint(save_freq=N batches) saves mid-epoch on rank 0: the optimizer
        # state of the rows other ranks own must be there at every chunk (the ranks agree)
        self._sync_chunks = self.exchange.owners and self.comm.allreduce(any(
            isinstance(cb, ModelCheckpoint) and not isinstance(cb.save_freq, str)
            for cb in _flatten_callbacks(callbacks)), op=_mpi().LOR)

    @contextlib.contextmanager
    def _freed_on_error(self) -> Iterator[None]:
        """Code that may raise once the exchange exists: it is then freed by the next
        fit (end() does not run when the fit's state fails to build)."""
        try:
            yield
        except BaseException:
            self.model._open_exchange = self.exchange
            raise

    # rows updated at their owners (GradientExchange(owners=True)); not with sharded tables
    OWNERS = True

    def hook(self) -> None:
        """Set the exchange as the plan's reduce hook (and apply hook, rows updated at
        their owners)."""
        self.plan.set_reduce_hook(self.exchange,
                                  after=self.exchange.after_apply if self.exchange.owners else None)

    def sync_state(self) -> None:
        """Every rank takes the optimizer state of each table row from its owner
        (collective): at each epoch's end, before the callbacks (ModelCheckpoint saves it
        from rank 0), which also makes it whole when fit returns."""
        opt = self.model.optimizer
        self.exchange.sync_state({t.param: [a for a in opt._slots[t.param] if a is not None]
                                  for t in _tables(self.model)})

    def _share_sampling(self, source) -> None:
        """Let the ranks draw a NegativeSampler's epochs in shares (``_epoch.py``), once
        every rank is known to hold the same sampler (a ValueError on every rank
        otherwise: the shares of different samplers would make one silent mixture)."""
        sampler = getattr(getattr(source, "data", None), "sampler", None)
        if sampler is None:
            return
        r = distribution._first_differing_rank(self.comm, sampler_arrays(sampler))
        if r is not None:
            raise ValueError(
                f"fit under DataParallel: rank {r}'s NegativeSampler differs from rank 0's "
                f"(its positives, seen items, weights, num_negatives or seed=); every rank "
                f"must pass the same sampler, or use DataParallel(local_data=True) for a "
                f"partition per rank")
        source.draw_comm = self.comm

    def end(self, failed: bool = False) -> None:
        """Remove the reduce hook (the plan trains alone again), and remember whether
        rows' optimizer state still lags on some rank (a fit that raised mid-epoch): the
        next data-parallel fit takes it from the owners first.

        Args:
            failed: Whether fit is raising: then no collective call is made (a rank may
                be failing alone), and the shared window is freed by the next fit.
        """
        self.plan.set_reduce_hook(None)
        if hasattr(self.source, "tagger"):  # no cycle through the source
            self.source.tagger = None
        if failed:
            self.model._open_exchange = self.exchange
        else:
            self.exchange.close()
        if not self.checked:  # nothing trained: an earlier fit's lags still stand
            return
        self.model._owner_state_lags = self.exchange.stale
        self.model._routed_lag = (self.route.params, np.flatnonzero(self._touched)) \
            if self.route is not None and self._touched.any() else None

    def _global_batch(self, source, opts) -> int:
        return getattr(source, "batch_size", self.size)

    def penalty(self) -> float:
        """The model's L2 penalty (added to the epoch's loss)."""
        return self.model._regularization_penalty()

    # -- a chunk of batches -----------------------------------------------------------
    def _check_batch(self, batch_size: int) -> None:
        if batch_size < self.size:
            raise ValueError(f"fit under DataParallel: the global batch ({batch_size} samples: "
                             f"batch_size, or the data when smaller) must hold at least one "
                             f"sample per process, {self.size}")

    def fit(self, inputs: List[np.ndarray], labels: np.ndarray, idx: np.ndarray,
            batch_size: int, step: np.ndarray, seed: int,
            weights: Optional[np.ndarray] = None) -> Dict[str, Any]:
        """``plan.fit`` for this rank: train its slices of the global batches ``idx``
        (consecutive batches of ``batch_size``, the last one maybe short) and return its
        statistics."""
        self._check_batch(batch_size)
        if not self.checked:  # the first chunk (inside fit's try: end() removes the hook)
            self._check(inputs, labels, weights, batch_size, step)
            self._choose_route(inputs, batch_size)
            self.hook()
        if self.route is not None:
            return self._fit_routed(inputs, labels, idx, batch_size, step, seed, weights)
        full = idx.size // batch_size
        lo, hi = self._slice(batch_size)
        stats = None
        if full:
            mine = idx[:full * batch_size].reshape(full, batch_size)[:, lo:hi].ravel()
            stats = self.plan.fit(inputs, labels, mine, hi - lo, step, seed, weights=weights)
        rest = idx[full * batch_size:]
        if rest.size:
            lo, hi = self._slice(rest.size)
            if hi > lo:
                st = self.plan.fit(inputs, labels, np.ascontiguousarray(rest[lo:hi]), hi - lo,
                                   step, seed, weights=weights)
                stats = st if stats is None else {k: v + st[k] for k, v in stats.items()}
            else:  # fewer samples than ranks: take part in the step with nothing of its own
                stats = self._placeholder_steps(inputs, labels, np.ascontiguousarray(rest[:1]),
                                                step, seed, weights, stats)
        return stats

    def _choose_route(self, inputs, batch_size: int) -> None:
        """Route samples to the owners of their rows (``_routing.py``) when the rows
        are updated at their owners and an input's tables can be left out of the
        exchange (the same choice on every rank: the same data and order)."""
        if not (self.exchange.owners and ROUTE and type(self).fit is DataParallelFit.fit):
            return
        self.route = _routing.choose(self.model._builder, _tables(self.model), inputs,
                                     batch_size, self.size)
        if self.route is not None:
            self.exchange.route(self.route.params)
            self._touched = np.zeros(self.route.owner.size, dtype=np.uint8)

    def _fit_routed(self, inputs, labels, idx, batch_size, step, seed, weights):
        """Train this rank's samples of the global batches ``idx``: those whose routed
        id it owns, each step's loss over the global batch."""
        if self._mine.size < idx.size:
            self._mine = np.empty(idx.size * 5 // 4, dtype=np.int64)
        column = inputs[self.route.column]
        if hasattr(self.source, "tagger") and self.source.tagger is None:
            self.source.tagger = self._tags  # the next passes' shuffles carry the owners
        tagged = getattr(self.source, "tagged", False)
        if tagged:  # the shuffle carries the owners: only this rank's samples' ids are read
            ids, owners = self._ids, None
        elif not self._fixed_for_the_fit(column):  # this chunk's ids
            ids, owners = _routing.id_column(column), None
        else:  # the same ids at every chunk: converted, and their owners found, once
            ids, owners, _ = self._fixed_owners(column)
        # a tagged pass marks the rows it may train at once when they are few next to a
        # chunk's samples (the chunk's swap sends the extra rows unchanged), else exactly
        coarse = tagged and self._present_rows * 8 <= idx.size // self.size
        mine, bounds, norms = _routing.split(self.route, ids, idx, batch_size, self.rank,
                                             self._touched, out=self._mine, owners=owners,
                                             tagged=tagged, mark=not coarse)
        if coarse:
            self._touched |= self._present
        self.tagged_chunks += tagged
        return self.plan.fit(inputs, labels, mine, batch_size, step, seed, weights=weights,
                             bounds=bounds, norms=norms)

    def _fixed_owners(self, column: np.ndarray):
        """The routed ids of a column fixed for the fit (converted once), their owners
        and the rows this rank owns that they read (found once)."""
        if self._fixed is None:
            ids = _routing.id_column(column)
            self._fixed = (ids,) + _routing.sample_owners(self.route, ids, self.rank)
        return self._fixed

    def _tags(self, inputs: List[np.ndarray]) -> Optional[np.ndarray]:
        """The owners of a pass's samples, for its shuffle to carry (``ArraySource.tagger``):
        found once for a column fixed for the fit, else at every pass (one sequential
        pass over the ids into a kept buffer); None past 255 ranks."""
        column = inputs[self.route.column]
        if self._fixed_for_the_fit(column):
            self._ids, owners, self._present = self._fixed_owners(column)
        else:
            self._ids = _routing.id_column(column)
            self._owners, self._present = _routing.sample_owners(
                self.route, self._ids, self.rank, out=self._owners)
            owners = self._owners
        self._present_rows = int(np.count_nonzero(self._present))
        return owners

    def _fixed_for_the_fit(self, ids: np.ndarray) -> bool:
        """Whether the id column ``ids`` holds the same values at every chunk of this fit:
        the arrays passed to fit, or a sampler's users (which do not depend on the
        epoch's seed); not a sampler's items, nor a generator's batches."""
        data = getattr(self.source, "data", None)
        if data is None:
            return False
        sampler = getattr(data, "sampler", None)
        if sampler is None:
            return True
        return ids.__array_interface__["data"][0] == sampler._u.__array_interface__["data"][0]

    def sync_routed(self) -> None:
        """Every rank receives the routed rows the others updated since the last call
        (collective): the whole model is then the same on every rank."""
        if self.route is None:
            return
        ids = np.flatnonzero(self._touched)
        self.exchange.bytes_sent += _routing.sync_rows(
            self.comm, _state_arrays(self.model, self.route.params), ids)
        self._touched[ids] = 0

    def _placeholder_steps(self, inputs, labels, idx: np.ndarray, step: np.ndarray, seed: int,
                           weights, stats: Optional[Dict[str, Any]]) -> Dict[str, Any]:
        """Take part in ``idx.size`` steps of the other ranks with nothing of this rank's
        own: one placeholder sample a step, which the exchange leaves out. Returns
        ``stats``, or zeros shaped like a step's statistics when there were none."""
        self.exchange.placeholder = True
        try:
            st = self.plan.fit(inputs, labels, idx, 1, step, seed, weights=weights)
        finally:
            self.exchange.placeholder = False
        return stats if stats is not None else {k: v * 0 for k, v in st.items()}

    def _slice(self, n: int) -> Tuple[int, int]:
        return n * self.rank // self.size, n * (self.rank + 1) // self.size

    def merge(self, stats: Dict[str, Any], chunk: int) -> Tuple[Dict[str, Any], int]:
        """Every rank's statistics of the chunk summed in rank order, and the size of the
        next chunk (the smallest any rank proposes): the same on every rank."""
        keys = sorted(stats)
        flat = np.concatenate([np.ravel(np.asarray(stats[k], dtype=np.float64)) for k in keys]
                              + [np.array([chunk], dtype=np.float64)])
        every = np.empty((self.size, flat.size), dtype=np.float64)
        self.comm.Allgather(flat, every)
        self.sync_routed()
        if self._sync_chunks:
            self.sync_state()
        total = every[0].copy()
        for r in range(1, self.size):
            total += every[r]
        out, at = {}, 0
        for k in keys:
            shape = np.shape(stats[k])
            n = int(np.prod(shape)) if shape else 1
            out[k] = total[at:at + n].reshape(shape) if shape else float(total[at])
            at += n
        return out, int(every[:, -1].min())

    def agree(self, stop: bool) -> bool:
        """Stop when any rank's callbacks asked to (they see the same logs, but a callback
        of the user's may decide on something else)."""
        return bool(self.comm.allreduce(bool(stop), op=_mpi().LOR))

    def validation(self, evaluate) -> Dict[str, float]:
        """Rank 0's validation results, computed there and sent to the others."""
        return self.comm.bcast(evaluate() if self.is_main else None, root=0)

    # -- the first chunk: the ranks must agree --------------------------------------
    def _check(self, inputs, labels, weights, batch_size: int, step: np.ndarray) -> None:
        """Every rank built the same model and passes the same fit arguments and data
        (a ValueError on every rank otherwise); then every rank takes rank 0's weights
        and optimizer state where they differ."""
        self.checked = True
        mine = _signature(self.model, self.opts, batch_size, inputs, labels, weights)
        # validation is collective (every rank validates, or rank 0 and the others wait)
        mine["validation data"] = self.source.validation is not None
        every = self.comm.allgather(mine)
        for r, theirs in enumerate(every):
            for field, value in theirs.items():
                if value != every[0][field]:
                    hint = " (a NegativeSampler: the same positives and seed= on every rank)" \
                        if field == "data checksum" else ""
                    raise ValueError(
                        f"fit under DataParallel: rank {r}'s {field} differs from rank 0's "
                        f"({value!r} != {every[0][field]!r}); every rank must build and compile "
                        f"the same model and call fit with the same arguments and data{hint}")
        if self.exchange.owners and self.comm.allreduce(
                bool(getattr(self.model, "_owner_state_lags", False)), op=_mpi().LOR):
            self.exchange.stale = True  # the last fit raised mid-epoch: catch up first
            self.sync_state()
        self._catch_up_routed()
        self._sync_state(step)

    def _close_open_exchange(self) -> None:
        """Free the shared window of a fit that raised on every rank (collective: every
        rank builds the next fit's state)."""
        open_ = getattr(self.model, "_open_exchange", None)
        if self.comm.allreduce(open_ is not None, op=_mpi().LAND):
            open_.close()
        self.model._open_exchange = None

    def _catch_up_routed(self) -> None:
        """A fit that raised mid-chunk left the routed rows its ranks updated in that
        chunk on their owners alone: every rank takes them before training on."""
        lag = getattr(self.model, "_routed_lag", None)
        every = self.comm.allgather(None if lag is None else lag[0])
        params = next((p for p in every if p is not None), None)
        if params is None:
            return
        ids = lag[1] if lag is not None else np.empty(0, np.int64)
        _routing.sync_rows(self.comm, _state_arrays(self.model, params), ids)
        self.model._routed_lag = None

    def _sync_state(self, step: np.ndarray) -> None:
        """Rank 0's weights, optimizer slots and step count (``step``, the C core's) on
        every rank; only the arrays whose checksums differ travel."""
        arrays = _state_arrays(self.model)
        sums = [zlib.crc32(memoryview(a).cast("B")) for a in arrays] + [int(step[0])]
        every = self.comm.allgather(sums)
        for k, a in enumerate(arrays):
            if any(s[k] != every[0][k] for s in every):
                self.comm.Bcast(a, root=0)
        step[0] = every[0][-1]
        self.model.optimizer.iterations = every[0][-1]


class ModelParallelFit(DataParallelFit):
    """One rank's side of a fit with row-sharded tables (``distribution.ModelParallel``):
    the data-parallel fit of :class:`DataParallelFit` over runs of global batches, each
    trained on working tables that hold the rows it reads
    (:class:`neurec.distribution._sharding.ShardedTables`). Every rank takes part in the
    validation, which fetches the rows its samples read (``_dp_predict.py``).

    Raises:
        ValueError: If some ranks pass validation data and others not.
    """

    OWNERS = False  # the shards own their rows already

    def __init__(self, model, plan, source, opts, callbacks):
        self.shards = model._shards
        every = self.shards.comm.allgather(source.validation is not None)
        if len(set(every)) > 1:
            raise ValueError(f"fit under ModelParallel: rank {every.index(not every[0])} "
                             f"{'passes no' if every[0] else 'passes'} validation data and rank "
                             f"0 {'does' if every[0] else 'does not'}; every rank takes part in "
                             f"validating, so pass validation_data (or validation_split) on "
                             f"every rank or on none")
        super().__init__(model, self.shards.plan, source, opts, callbacks)
        # every rank runs ModelCheckpoint (saving gathers the shards on rank 0, which
        # writes); CSVLogger and printing stay on rank 0
        if not self.is_main:
            callbacks = [cb for cb in _flatten_callbacks(callbacks)
                         if not isinstance(cb, CSVLogger)]
            for cb in callbacks:
                if isinstance(getattr(cb, "verbose", None), (int, np.integer)):
                    cb.verbose = 0
        self.callbacks = callbacks
        self.shards.in_fit = True

    def end(self, failed: bool = False) -> None:
        self.shards.in_fit = False
        super().end(failed)

    def penalty(self) -> float:
        return self.shards.penalty()

    def validation(self, evaluate) -> Dict[str, float]:
        """The validation logs, computed by every rank together (the tables stay sharded;
        under ``local_data=True`` they are rank 0's validation data's)."""
        return self.model._validate_sharded(self.source.validation)

    def _follow_working_tables(self) -> None:
        """Train through the working tables' current plan (a new one when they grew), with
        the reduce hook and the optimizer's settings."""
        if self.shards.plan is not self.plan:
            self.plan.set_reduce_hook(None)
            self.plan = self.shards.plan
            if self.checked:
                self.hook()
        self.plan.set_optimizer(self.model.optimizer._c_spec())

    def fit(self, inputs, labels, idx, batch_size, step, seed, weights=None):
        """Train the global batches ``idx`` run by run: fetch each run's rows, train this
        rank's slices of its batches, keep the rows this rank owns."""
        self._check_batch(batch_size)
        per = self.shards.batches_per_run(inputs, batch_size)
        self._follow_working_tables()
        stats = None
        run = per * batch_size
        for at in range(0, idx.size, run):
            sub = idx[at:at + run]
            local = self.shards.fetch(inputs, sub)
            st = super().fit(local, labels, sub, batch_size, step, seed, weights=weights)
            self.shards.write_back()
            stats = st if stats is None else {k: v + st[k] for k, v in stats.items()}
        return stats


def recommend(call: Callable, users, verbose, gather: str = "all", model=None):
    """``Model.recommend`` under DataParallel with several processes: ``call(users,
    verbose)`` for this rank's contiguous share of ``users``, the rows gathered on every
    rank (the same result as one process), or on rank 0 alone with ``gather="main"``
    (the others get None); on one process, or with fewer users than processes,
    ``call(users, verbose)`` for all of them. With tables sharded by ModelParallel
    (``model._shards``) every rank takes part in ranking every user against its item
    shard (``_mp_score.py``): ``call(users, verbose, gather_to)``, the users not split."""
    if getattr(model, "_shards", None) is not None:
        main = distribution.rank() == 0
        out = call(users, verbose if main else 0, None if gather == "all" else 0)
        return out if gather == "all" or main else None
    flat = np.asarray(users).ravel()
    shares = distribution._shares(flat.size)
    if shares is None or flat.size < distribution.size():
        return call(users, verbose)
    r = distribution.rank()
    mine = call(flat[shares[r]:shares[r + 1]], verbose if r == 0 else 0)
    comm = distribution.communicator()
    every = comm.allgather(mine) if gather == "all" else comm.gather(mine, root=0)
    if every is None:
        return None
    return tuple(np.concatenate([part[j] for part in every]) for j in range(len(mine)))


def _mpi():
    from mpi4py import MPI
    return MPI


def _own_callbacks(callbacks, is_main: bool):
    """Rank 0 runs every callback; the others skip the file writers and print nothing."""
    if is_main:
        return callbacks
    kept = [cb for cb in _flatten_callbacks(callbacks) if not isinstance(cb, _WRITERS)]
    for cb in kept:
        if isinstance(getattr(cb, "verbose", None), (int, np.integer)):
            cb.verbose = 0
    return kept


def _tables(model) -> List[TableSpec]:
    out = []
    for k, (layer, idx, table) in enumerate(model._builder.params):
        if table:
            w = layer._weights[idx][1]
            out.append(TableSpec(k, int(w.shape[0]), int(w.size // max(w.shape[0], 1)),
                                 not layer.trainable))
    return out


def _state_arrays(model, params: Optional[Sequence[int]] = None) -> List[np.ndarray]:
    """Every array the plan trains (of the plan parameters ``params``, default all):
    weights, optimizer slots, per-row step counts."""
    out = []
    for k, (layer, idx, _) in enumerate(model._builder.params):
        if params is None or k in params:
            out.append(layer._weights[idx][1])
            out.extend(a for a in model.optimizer._slots[k] if a is not None)
    return out


def _signature(model, opts, batch_size, inputs, labels, weights) -> Dict[str, Any]:
    """What must be equal on every rank, field by field (small values and checksums)."""
    b = model._builder
    graph = repr((b.ops, b.value_sizes)).encode()
    data = 0
    for a in list(inputs) + [labels] + ([] if weights is None else [weights]):
        data = zlib.crc32(memoryview(np.ascontiguousarray(a)).cast("B"), data)
    return {  # the most telling difference first
        "parameter shapes": [tuple(layer._weights[idx][1].shape) for layer, idx, _ in b.params],
        "trainable layers": [bool(layer.trainable) for layer, _, _ in b.params],
        "model graph (checksum)": zlib.crc32(graph),
        "optimizer": repr(model.optimizer._c_spec()),
        "loss": type(model.loss).__name__,
        "metrics": [m.name for m in model.compiled_metrics],
        "fit arguments": (batch_size, opts.epochs, opts.initial_epoch, opts.shuffle,
                          opts.validation_freq),
        "number of samples": int(labels.shape[0]),
        "data checksum": data,
    }
