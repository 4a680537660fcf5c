"""``predict``, ``evaluate`` and ``fit``'s validation under a distribution: the samples
split across the ranks, and with tables sharded by ``ModelParallel`` the rows the samples
read fetched from their owners instead of gathering the tables.

Under ``DataParallel`` or ``ModelParallel`` with several processes, ``Model.predict(x)``
on arrays cuts the batches of ``x`` into one contiguous run per rank (every rank passes
the same ``x``: checked), each rank predicts its run, and one ``Allgatherv`` gives every
rank every prediction, in order: one process's array. Under ``local_data=True`` each
rank passes its own rows and gets its own predictions. Work the caller already split
across the ranks (``recommend``, the ranking protocols) predicts inside
``distribution._local()``: this rank's rows, no collective call.

With sharded tables (``model._shards``) a rank predicts through a *view* of the model
(``_mp_score._view``: the same graph, every other layer borrowing the model's weights)
whose tables hold only the rows its samples read, ``BLOCK_ROWS`` samples at a time.
Every rank takes part in every round (with an empty block once its rows ran out):

1. per group of inputs and tables (``ShardedTables.groups``), the block's distinct ids,
   which become view rows ``0..k-1`` (``np.searchsorted``);
2. each rank asks each owner for the ids it owns (``Alltoall`` of the counts, then
   ``Alltoallv`` of the ids) and the owners answer with the rows (``Alltoallv``): a rank
   receives its block's rows and sends the rows the others asked it for, never a table;
3. the view's C plan predicts the block, as one process would (each sample on its own,
   from the same weights: the same outputs).

``evaluate`` (``_dp_output.split_evaluate``) and ``fit``'s validation under
ModelParallel predict so, gather the predictions in rank order and compute the loss and
metrics from the same bytes on every rank; the L2 penalty of the sharded tables is
summed over the ranks in rank order (``ShardedTables.penalty``). Under
``ModelParallel(local_data=True)`` the validation is rank 0's (as
``DataParallel(local_data=True)``): rank 0 predicts it, the others serve rows.
"""
from typing import Dict, List, Optional, Tuple

import numpy as np

from neurec import distribution
from neurec.callbacks.callback_list import CallbackList
from neurec.models import _adapters, _distributed, _mp_score
from neurec.models._dp_output import split_evaluate
from neurec.models._predict import predict_arrays
from neurec.utils.progbar import resolve_verbose, waiting_bar

__all__ = ["DistributedInference", "ShardedPredictor", "fetch_rows", "BLOCK_ROWS"]

BLOCK_ROWS = 1 << 16  # samples a rank predicts per round with sharded tables


def _split(model) -> bool:
    """Whether ``predict`` splits across the ranks: a distribution of several processes,
    outside ``distribution._local()``, for a model that is not a rank's own scratch."""
    return isinstance(distribution.distribution(), distribution.DataParallel) \
        and distribution.size() > 1 and not distribution._is_local() \
        and not _distributed.alone(model)


def _keeps_shards(model) -> bool:
    """Whether predicting leaves the tables sharded: they are, ModelParallel is still
    set, and the caller did not ask for this rank's work alone (then they are gathered,
    a collective call, as before)."""
    return getattr(model, "_shards", None) is not None and not distribution._is_local() \
        and isinstance(distribution.distribution(), distribution.ModelParallel)


def _displs(counts: np.ndarray) -> np.ndarray:
    return np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.int64)


def fetch_rows(shards, tables, ids: np.ndarray) -> List[np.ndarray]:
    """The weight rows ``ids`` (this rank's own, distinct) of the sharded ``tables``, from
    their owners: each rank asks for what it needs and answers what it is asked
    (``Alltoall`` + two ``Alltoallv``). A collective call: every rank makes it, with its
    own ``ids`` (maybe none).

    Returns:
        One float32 array per table, ``(len(ids),) + row shape``, row ``j`` of id ``ids[j]``.
    """
    from mpi4py import MPI
    comm, size = shards.comm, shards.size
    ids = np.asarray(ids, np.int64)
    owners = ids % size
    order = np.argsort(owners, kind="stable")
    ask = np.bincount(owners, minlength=size).astype(np.int64)
    asked = np.empty(size, np.int64)
    comm.Alltoall([ask, MPI.INT64_T], [asked, MPI.INT64_T])
    wanted = np.empty(int(asked.sum()), np.int64)
    comm.Alltoallv([np.ascontiguousarray(ids[order]), (ask, _displs(ask)), MPI.INT64_T],
                   [wanted, (asked, _displs(asked)), MPI.INT64_T])
    local = wanted // size
    widths = [int(np.prod(t.shard[0].shape[1:], dtype=np.int64)) for t in tables]
    width = sum(widths)
    reply = np.empty((local.size, width), np.float32)
    col = 0
    for t, w in zip(tables, widths):
        reply[:, col:col + w] = t.shard[0][local].reshape(local.size, w)
        col += w
    got = np.empty((ids.size, width), np.float32)
    comm.Alltoallv([reply, (asked * width, _displs(asked) * width), MPI.FLOAT],
                   [got, (ask * width, _displs(ask) * width), MPI.FLOAT])
    rows = np.empty_like(got)
    rows[order] = got
    out, col = [], 0
    for t, w in zip(tables, widths):
        out.append(np.ascontiguousarray(rows[:, col:col + w]).reshape(
            (ids.size,) + t.shard[0].shape[1:]))
        col += w
    return out


class ShardedPredictor:
    """Predicts a model whose tables are sharded from this rank's samples, fetching the
    rows they read (module docstring).

    Args:
        model: A model whose tables are sharded (``model._shards``).
    """

    def __init__(self, model):
        self.model, self.shards = model, model._shards
        names = {t.layer.name for t in self.shards.tables}
        self.view = _mp_score._view(model, names)
        self.layers = {layer.name: layer for layer in self.view.layers if layer.name in names}

    def _load(self, block: List[np.ndarray]) -> List[np.ndarray]:
        """Point the view's tables at the rows ``block`` reads and return ``block`` with
        its ids rewritten as view rows. A collective call."""
        out = list(block)
        for slots, tables in self.shards.groups:
            got = [np.asarray(block[s]) for s in slots]
            ids = np.unique(np.concatenate([g.reshape(-1) for g in got]).astype(np.int64))
            rows = fetch_rows(self.shards, tables, ids)
            if not ids.size:
                continue  # nothing to predict here this round
            for t, a in zip(tables, rows):
                _mp_score._point(self.layers[t.layer.name], a)
            for s, g in zip(slots, got):
                out[s] = np.ascontiguousarray(
                    np.searchsorted(ids, g.astype(np.int64)).astype(g.dtype))
        return out

    def predict(self, inputs: List[np.ndarray], batch_size: int = 32, verbose=0,
                callbacks=None, first_batch: int = 0) -> np.ndarray:
        """The outputs of this rank's ``inputs`` (checked arrays, maybe none): rounds of
        ``BLOCK_ROWS`` samples (whole batches), as many on every rank; ``verbose`` and
        ``callbacks`` as ``_predict.predict_arrays`` (hooks once per round). A collective
        call."""
        from mpi4py import MPI
        n = int(inputs[0].shape[0])
        out = np.empty((n,) + tuple(self.model.output_shape[1:]), np.float32)
        per = max(1, BLOCK_ROWS // batch_size) * batch_size
        rounds = self.shards.comm.allreduce(-(-n // per), op=MPI.MAX)
        level = resolve_verbose("predict", verbose)
        steps = -(-n // batch_size)
        bar = waiting_bar("predict", level, steps, unit_name="step") if level else None
        cbs = CallbackList(callbacks, model=self.model, verbose=level, epochs=1,
                           steps=steps) if callbacks else None
        if cbs is not None:
            cbs.on_predict_begin()
        for k in range(rounds):
            s, e = min(n, k * per), min(n, (k + 1) * per)
            local = self._load([a[s:e] for a in inputs])
            if e <= s:
                continue
            b0, b1 = first_batch + s // batch_size, first_batch + -(-e // batch_size)
            if cbs is not None:
                cbs.on_predict_batch_begin(b0)
            out[s:e] = predict_arrays(self.view, local)
            if cbs is not None:
                cbs.on_predict_batch_end(b1 - 1, {"outputs": out[s:e]})
            if bar is not None:
                bar.update(b1 - first_batch, finalize=False)
        if bar is not None:
            bar.update(steps, finalize=True)
        if cbs is not None:
            cbs.on_predict_end()
        return out


def _agree(inputs: List[np.ndarray]) -> None:
    """Raise on every rank unless every rank passed the same ``x`` (sizes, checksums).

    Raises:
        ValueError: Naming the first rank whose ``x`` differs from rank 0's.
    """
    r = distribution._first_differing_rank(distribution.communicator(), inputs)
    if r is not None:
        raise ValueError(
            f"predict under {type(distribution.distribution()).__name__}: rank {r} passed "
            f"another x than rank 0; every rank predicts a share of the same x and gets "
            f"every prediction, so pass the same x on every rank (for each rank's own "
            f"rows set a distribution with local_data=True)")


def _validation_arrays(validation) -> Tuple[List[np.ndarray], np.ndarray, Optional[np.ndarray]]:
    """``fit``'s validation samples as arrays: its arrays, or its batches read and
    concatenated (``validation_steps`` of them, or a pass)."""
    if validation.batches is None:
        return validation.arrays
    parts = list(_adapters._inference_chunks(validation.batches, validation.builder,
                                             validation.steps))
    if not parts:
        raise ValueError("fit: validation_data has no batches left to evaluate on")
    weights = [p[2] for p in parts]
    if any(w is None for w in weights) and not all(w is None for w in weights):
        raise ValueError("fit: validation_data: some batches have sample weights and others "
                         "not; yield them with every batch or with none")
    inputs = [_adapters._concat([p[0][k] for p in parts]) for k in range(len(parts[0][0]))]
    return inputs, _adapters._concat([p[1] for p in parts]), \
        None if weights[0] is None else _adapters._concat(weights)


class DistributedInference:
    """The part of ``Model`` that predicts under a distribution (``Model`` mixes it in)."""

    def _ready_for_inference(self) -> None:
        """Build the plan (gathering sharded tables: a collective call), unless the tables
        are sharded and ModelParallel predicts them as they are."""
        if not _keeps_shards(self):
            self._get_plan()

    def _predict_arrays(self, inputs: List[np.ndarray]) -> np.ndarray:
        """This rank's outputs for ``inputs`` (checked arrays), silent: evaluate and
        validation. With sharded tables a collective call (every rank, its own rows)."""
        return self._predict_rows(inputs)

    def _predict_rows(self, inputs, batch_size=32, verbose=0, callbacks=None, first_batch=0):
        if _keeps_shards(self):
            return ShardedPredictor(self).predict(inputs, batch_size, verbose, callbacks,
                                                  first_batch)
        return predict_arrays(self, inputs, batch_size, verbose, callbacks, first_batch)

    def _predict_distributed(self, inputs: List[np.ndarray], batch_size: int, verbose,
                             callbacks) -> np.ndarray:
        """``Model.predict`` on checked arrays: under a distribution of several processes
        each rank predicts a contiguous run of the batches and every rank gets every
        prediction (with ``local_data=True``: its own rows' predictions); only rank 0
        shows a bar. Else this process predicts them all."""
        if not _split(self):
            return self._predict_rows(inputs, batch_size, verbose, callbacks)
        rank = distribution.rank()
        quiet = verbose if rank == 0 else 0
        if distribution.distribution().local_data:
            return self._predict_rows(inputs, batch_size, quiet, callbacks)
        from mpi4py import MPI
        _agree(inputs)
        n = int(inputs[0].shape[0])
        steps = -(-n // batch_size)
        first = distribution._shares(steps)  # each rank's batches
        bounds = np.minimum(first * batch_size, n)
        lo, hi = int(bounds[rank]), int(bounds[rank + 1])
        mine = np.ascontiguousarray(self._predict_rows(
            [a[lo:hi] for a in inputs], batch_size, quiet, callbacks, int(first[rank])))
        out = np.empty((n,) + tuple(self.output_shape[1:]), np.float32)
        per = int(np.prod(out.shape[1:], dtype=np.int64))
        counts = np.diff(bounds) * per
        distribution.communicator().Allgatherv(
            [mine, MPI.FLOAT], [out, (counts, bounds[:-1] * per), MPI.FLOAT])
        return out

    def _validate_sharded(self, validation) -> Dict[str, float]:
        """``fit``'s validation logs with sharded tables, the same on every rank (which
        all call it): the samples split across the ranks, or under ``local_data=True``
        rank 0's, predicted by rank 0."""
        inputs, labels, weights = _validation_arrays(validation)
        if not distribution.distribution().local_data:
            return split_evaluate(self, inputs, labels, weights, "all")
        main = distribution.rank() == 0
        pred = self._predict_arrays(inputs if main else [a[:0] for a in inputs])
        penalty = self._shards.penalty()
        logs = self._evaluate_predictions(labels, pred, weights, penalty) if main else None
        return distribution.communicator().bcast(logs, root=0)
