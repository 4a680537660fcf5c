"""Scoring a model whose tables are sharded (``distribution.ModelParallel``) without
gathering them: each rank scores its item shard and the ranks' results are combined.

Rank ``r`` of ``N`` holds rows ``i % N == r`` of every table (``_sharding.py``).
``recommend``, ``evaluate_full`` and ``evaluate_sampled`` walk the users in blocks, the
same blocks on every rank (every rank passes the same users: checked, ``ShardScorer.agree``):

1. the rows of the block's users are fetched from their owners into every rank (one
   ``Allgatherv`` of the block's distinct users, every user table at once);
2. each rank scores the block against the items it owns through a *view* of the model:
   the same graph (rebuilt from its config), whose user tables are the block's rows,
   whose item tables are the rank's shards (borrowed, no copy) and whose every other
   layer borrows the model's weights. Local item ``j`` is item ``j * N + r``, so local
   order is global order and equal scores still break by the lower id;
3. ``recommend``: each rank keeps the top-K of its shard through the one-process
   scorers (``recommend.rank_known``: the dot-product, fused NCF or generic path,
   exclusions, candidates and retired items honoured), with the scores those top-Ks
   compared; the per-user lists are gathered in rank order and merged on those scores
   (equal scores by id), so the ids are one process's. The returned scores are the
   model's outputs for the chosen items, computed by their owners.
   ``evaluate_full``: the held-out items' scores come from their owners (one
   ``Allreduce``); each rank counts, per held-out item, the negatives of its shard
   scored above it and equal to it; the counts are summed over the ranks (integers: the
   ranks and AUCs of one process, bit for bit).
   ``evaluate_sampled``: each pair is scored by the owner of its item and one
   ``Allreduce`` gives every rank every score.

A rank holds its shards, one block's user rows, scores and top-K lists: never a whole
table. Models this cannot score (side-feature inputs, a table read by both id inputs,
approximate or two-stage retrieval) gather their tables first, as before.
"""
from typing import Callable, List, Optional, Tuple

import numpy as np

from neurec import distribution
from neurec.evaluation.ranking import _core as rank_core
from neurec.evaluation.ranking import _num_threads as num_threads
from neurec.layers.core import Embedding
from neurec.models import recommend as recommend_mod
from neurec.models._foldin import _borrow

__all__ = ["ShardScoring", "ShardScorer", "BLOCK_USERS"]

BLOCK_USERS = 8192  # users per block of a sharded recommend
PAIRS_PER_BLOCK = 1 << 20  # (user, item) pairs per block of pair_scores
MERGE_ENTRIES = 1 << 22  # top-K entries of every rank that one block merges, at most


class ShardScorer:
    """Scores a sharded model's users against this rank's item shard (module docstring).

    Args:
        model: A model whose tables are sharded (``model._shards``).
        roles: ``recommend``'s roles of its user and item inputs (no side features).
    """

    def __init__(self, model, roles):
        shards = model._shards
        self.comm, self.rank, self.size = shards.comm, shards.rank, shards.size
        self.user_tables, self.item_tables = _split_tables(model, roles, shards)
        self.n_items = roles.n_items
        self.uname, self.iname = roles.uname, roles.iname
        names = {t.layer.name for t in self.user_tables + self.item_tables}
        self.view = _view(model, names)
        self.layers = {layer.name: layer for layer in self.view.layers if layer.name in names}
        self._point_items()
        self.n_local = self.item_tables[0].shard[0].shape[0]

    # -- the view's tables -------------------------------------------------------------
    def _point_items(self) -> None:
        for t in self.item_tables:
            _point(self.layers[t.layer.name], t.shard[0])

    def _point_users(self, arrays: List[np.ndarray]) -> None:
        for t, a in zip(self.user_tables, arrays):
            _point(self.layers[t.layer.name], a)

    def _roles(self):
        return recommend_mod._Roles(self.view, self.uname, self.iname, None, None)

    def fetch(self, tables, ids: np.ndarray) -> List[np.ndarray]:
        """The rows ``ids`` (the same on every rank) of ``tables`` (weights only), from
        their owners: one ``Allgatherv`` for all the tables. A collective call."""
        from mpi4py import MPI
        size, rank = self.size, self.rank
        widths = [int(t.shard[0].shape[1]) for t in tables]
        width = sum(widths)
        owners = ids % size
        mine = ids[owners == rank] // size
        packed = np.concatenate([t.shard[0][mine] for t in tables], axis=1) if tables \
            else np.empty((mine.size, 0), np.float32)
        packed = np.ascontiguousarray(packed, np.float32)
        counts = np.bincount(owners, minlength=size).astype(np.int64) * width
        displs = np.concatenate(([0], np.cumsum(counts)[:-1]))
        every = np.empty(int(counts.sum()), np.float32)
        self.comm.Allgatherv([packed, MPI.FLOAT], [every, (counts, displs), MPI.FLOAT])
        rows = np.empty((ids.size, width), np.float32)  # owner by owner, each in id order
        rows[np.argsort(owners, kind="stable")] = every.reshape(ids.size, width)
        out, col = [], 0
        for w in widths:
            out.append(np.ascontiguousarray(rows[:, col:col + w]))
            col += w
        return out

    def load_users(self, users: np.ndarray) -> None:
        """Point the view's user tables at the rows of ``users`` (distinct ids): view user
        ``j`` is ``users[j]``. A collective call."""
        self._point_users(self.fetch(self.user_tables, users))

    def agree(self, fn: str, *arrays: Optional[np.ndarray]) -> None:
        """Raise on every rank unless every rank passed the same ``arrays`` (the users
        to score, ...): a collective call over different users would merge other users'
        lists, or wait forever for a block another rank does not have.

        Raises:
            ValueError: If a rank's arrays differ from rank 0's (sizes and checksums).
        """
        r = distribution._first_differing_rank(self.comm, arrays)
        if r is not None:
            raise ValueError(
                f"{fn} with tables sharded by ModelParallel: rank {r} passed other users "
                f"(or candidates, or held-out items) than rank 0; every rank scores every "
                f"user against its items, so pass the same ones on every rank (for each "
                f"rank's own users write files: recommend(output='recs-{{rank}}.csv') "
                f"under ModelParallel(local_data=True))")

    # -- recommend -----------------------------------------------------------------------
    def local_ids(self, ids: Optional[np.ndarray]) -> Optional[np.ndarray]:
        """This rank's ids of the sorted global ``ids`` (its local, still sorted)."""
        if ids is None:
            return None
        return ids[ids % self.size == self.rank] // self.size

    def _local_csr(self, indptr, indices, users: np.ndarray, extra=None):
        """Rows ``users`` of the CSR ``indptr, indices`` (global ids, ascending), keeping
        the items of this rank as local ids: the CSR of view users ``0..len(users)-1``.
        ``extra``: more ``(row, local id)`` pairs to add (merged, deduplicated)."""
        size, rank = self.size, self.rank
        if indptr is not None:
            lo, hi = indptr[users], indptr[users + 1]
            n = hi - lo
            at = np.repeat(lo - np.concatenate(([0], np.cumsum(n)[:-1])), n) + np.arange(n.sum())
            items = indices[at].astype(np.int64)
            row = np.repeat(np.arange(users.size, dtype=np.int64), n)
            own = items % size == rank
            row, local = row[own], items[own] // size
        else:
            row = local = np.empty(0, np.int64)
        if extra is not None:
            row, local = np.concatenate([row, extra[0]]), np.concatenate([local, extra[1]])
        span = int(local.max()) + 1 if local.size else 1
        key = np.unique(row * span + local)
        row, local = key // span, key % span
        out_ptr = np.zeros(users.size + 1, np.int64)
        np.cumsum(np.bincount(row, minlength=users.size), out=out_ptr[1:])
        return out_ptr, local.astype(np.int32)

    def topk(self, ku: np.ndarray, kk: int, cand: Optional[np.ndarray],
             retired: Optional[np.ndarray], indptr: Optional[np.ndarray],
             indices: Optional[np.ndarray], make_model: Optional[Callable],
             progress: Callable[[int], None], root: Optional[int] = None
             ) -> Tuple[np.ndarray, np.ndarray]:
        """``recommend``'s top-K of the known users ``ku`` (every rank passes the same):
        ``(ids, the model's scores)``, on every rank (``root`` None) or on rank ``root``
        alone (the others get ``-1`` / ``-inf``). A collective call."""
        self.agree("recommend", ku, np.array([kk]), cand)
        ids = np.full((ku.size, kk), -1, np.int64)
        scores = np.full((ku.size, kk), -np.inf, np.float32)
        cand_l = self.local_ids(cand)
        retired_l = self.local_ids(retired)
        if retired_l is not None and not retired_l.size:
            retired_l = None
        # every rank's lists of a block meet on each rank: size x users x kk entries
        per = max(1, min(BLOCK_USERS, MERGE_ENTRIES // (kk * self.size)))
        for s in range(0, ku.size, per):
            block = ku[s:s + per]
            uniq, inv = np.unique(block, return_inverse=True)
            inv = inv.reshape(-1).astype(np.int64)
            self.load_users(uniq)
            b_ptr = b_idx = None
            if indptr is not None:
                b_ptr, b_idx = self._local_csr(indptr, indices, uniq)
            roles = self._roles()
            if self.n_local:
                lid, sel = recommend_mod.rank_known(self.view, roles, inv, kk, cand_l, retired_l,
                                                    b_ptr, b_idx, make_model)
            else:  # more ranks than items: nothing here
                lid = np.full((block.size, kk), -1, np.int64)
                sel = np.full((block.size, kk), -np.inf, np.float32)
            exact = np.full(lid.shape, -np.inf, np.float32)
            valid = lid >= 0
            if valid.any():
                rr = np.repeat(inv, kk).reshape(block.size, kk)[valid]
                exact[valid] = recommend_mod._pairs_scores(self.view, roles, rr, lid[valid])
            gid = np.where(valid, lid * self.size + self.rank, -1)
            merged = self._merge(gid, sel, exact, root)
            if merged is not None:
                ids[s:s + block.size], scores[s:s + block.size] = merged
            progress(s + block.size)
        return ids, scores

    def _merge(self, gid: np.ndarray, sel: np.ndarray, exact: np.ndarray,
               root: Optional[int]) -> Optional[Tuple[np.ndarray, np.ndarray]]:
        """Every rank's top-K lists of a block, merged per user: by ranking score, equal
        ones by id, the lists' ends (``-1``) last."""
        from mpi4py import MPI
        n, kk = gid.shape
        size = self.size
        pair = np.ascontiguousarray(np.stack([sel, exact], axis=-1))
        if root is None:
            g = np.empty((size,) + gid.shape, np.int64)
            p = np.empty((size,) + pair.shape, np.float32)
            self.comm.Allgather([gid, MPI.INT64_T], [g, MPI.INT64_T])
            self.comm.Allgather([pair, MPI.FLOAT], [p, MPI.FLOAT])
        else:
            here = self.rank == root
            g = np.empty((size,) + gid.shape, np.int64) if here else None
            p = np.empty((size,) + pair.shape, np.float32) if here else None
            self.comm.Gather([gid, MPI.INT64_T], [g, MPI.INT64_T] if here else None, root=root)
            self.comm.Gather([pair, MPI.FLOAT], [p, MPI.FLOAT] if here else None, root=root)
            if not here:
                return None
        g = g.transpose(1, 0, 2).reshape(n, size * kk)
        s = p[..., 0].transpose(1, 0, 2).reshape(n, size * kk)
        e = p[..., 1].transpose(1, 0, 2).reshape(n, size * kk)
        order = np.lexsort((g, -s, g < 0), axis=-1)[:, :kk]
        ids = np.take_along_axis(g, order, axis=1)
        scores = np.take_along_axis(e, order, axis=1)
        scores[ids < 0] = -np.inf
        return ids, scores

    def average_user_scores(self, model, roles, items: np.ndarray) -> np.ndarray:
        """``recommend.average_user_scores`` of the sharded model: every user table's mean
        row (float64 sums of the shards, added in rank order) and ``items``' rows (the
        same on every rank) fetched from their owners. A collective call."""
        sums = [t.shard[0].sum(axis=0, dtype=np.float64) for t in self.user_tables]
        every = self.comm.allgather(sums)
        means = []
        for k, t in enumerate(self.user_tables):
            total = every[0][k].copy()
            for r in range(1, self.size):
                total += every[r][k]
            means.append((total / t.rows)[None, :])
        self._point_users(means)
        fetched = self.fetch(self.item_tables, items)
        try:
            for t, a in zip(self.item_tables, fetched):
                _point(self.layers[t.layer.name], a)
            return recommend_mod.average_user_scores(
                self.view, self._roles(), np.arange(items.size, dtype=np.int64))
        finally:
            self._point_items()

    # -- evaluate_sampled ---------------------------------------------------------------
    def pair_scores(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """The model's outputs for the pairs ``(users[j], items[j])`` (the same on every
        rank), float32: each rank predicts the pairs of its items, a block of
        ``PAIRS_PER_BLOCK`` pairs at a time, and one ``Allreduce`` (a sum of one nonzero
        term per pair: exact) gives every rank all of them. A collective call."""
        from mpi4py import MPI
        self.agree("evaluate_sampled", users, items)
        out = np.zeros(users.size, np.float32)
        for s in range(0, users.size, PAIRS_PER_BLOCK):
            u = np.asarray(users[s:s + PAIRS_PER_BLOCK], np.int64)
            i = np.asarray(items[s:s + PAIRS_PER_BLOCK], np.int64)
            uniq, inv = np.unique(u, return_inverse=True)
            self.load_users(uniq)
            own = np.flatnonzero(i % self.size == self.rank)
            block = out[s:s + u.size]
            if own.size:
                block[own] = recommend_mod._pairs_scores(self.view, self._roles(),
                                                         inv.reshape(-1)[own],
                                                         i[own] // self.size)
            self.comm.Allreduce(MPI.IN_PLACE, [block, MPI.FLOAT], op=MPI.SUM)
        return out

    # -- evaluate_full ------------------------------------------------------------------
    def count_full(self, task, above: np.ndarray, aucs: np.ndarray, max_block_bytes: int,
                   advance: Callable[[int, int], None]) -> None:
        """``evaluate_full``'s ranks and AUCs of every held-out item of ``task`` (a
        ``protocols._FullTask``), written into ``above`` and ``aucs``. A collective call."""
        from mpi4py import MPI
        size, rank, n_local = self.size, self.rank, self.n_local
        users, ptr, pos_all = task.users, task.pos_indptr, task.pos_indices
        self.agree("evaluate_full", users, ptr, pos_all)
        per_row = 4 * (n_local + int(np.diff(ptr).max()) + 1)  # a row of ``ext`` below
        rows = max(1, int(max_block_bytes) // per_row)
        cols = np.arange(n_local, dtype=np.int64)
        for i0 in range(0, users.size, rows):
            i1 = min(users.size, i0 + rows)
            block = users[i0:i1]
            uniq, inv = np.unique(block, return_inverse=True)
            inv = inv.reshape(-1).astype(np.int64)
            self.load_users(uniq)
            roles = self._roles()
            b = block.size
            # this shard's items, then each row's held-out items as extra columns: the
            # C counter ranks them against the shard alone
            pp = ptr[i0:i1 + 1] - ptr[i0]
            cnt = np.diff(pp)
            width = int(cnt.max()) if cnt.size else 0
            ext = np.zeros((b, n_local + width), np.float32)
            if n_local:
                for s, ub, part in recommend_mod._score_blocks(self.view, roles, inv, cols):
                    ext[s:s + ub.size, :n_local] = part
            scores = ext[:, :n_local]
            pos = pos_all[ptr[i0]:ptr[i1]].astype(np.int64)
            row = np.repeat(np.arange(b, dtype=np.int64), cnt)
            col = np.arange(pos.size, dtype=np.int64) - np.repeat(pp[:-1], cnt)
            own = pos % size == rank
            p = np.zeros(pos.size, np.float32)  # each held-out item's score, from its owner
            p[own] = scores[row[own], pos[own] // size]
            self.comm.Allreduce(MPI.IN_PLACE, [p, MPI.FLOAT], op=MPI.SUM)
            ext[row, n_local + col] = p
            ext_pos = (n_local + col).astype(np.int32)
            pad = width - cnt  # each row's unused extra columns: skipped
            pad_row = np.repeat(np.arange(b, dtype=np.int64), pad)
            pad_col = n_local + cnt[pad_row] + np.arange(pad_row.size) - np.repeat(
                np.concatenate(([0], np.cumsum(pad)[:-1])), pad)
            skip_row = np.concatenate([row[own], pad_row])
            skip_col = np.concatenate([pos[own] // size, pad_col])
            ex_ptr, ex_idx = self._local_csr(task.ex_indptr, task.ex_indices, block,
                                             extra=(skip_row, skip_col))
            ex_row = np.repeat(np.arange(b, dtype=np.int64), np.diff(ex_ptr))
            in_shard = np.bincount(ex_row[ex_idx < n_local], minlength=b)
            n_neg = (n_local - in_shard).astype(np.int64)[row]
            a_s = np.empty(pos.size, np.int64)
            auc_s = np.empty(pos.size, np.float64)
            rank_core().count_full(ext, pp, ext_pos, a_s, auc_s, indptr=ex_ptr, indices=ex_idx,
                                   n_threads=num_threads())
            # the ties with each held-out item, from the AUC (an exact integer count)
            with np.errstate(invalid="ignore"):
                eq = np.where(n_neg > 0, np.rint(2.0 * (n_neg - a_s - auc_s * n_neg)), 0)
            counts = np.stack([a_s, eq.astype(np.int64), n_neg])
            self.comm.Allreduce(MPI.IN_PLACE, [counts, MPI.INT64_T], op=MPI.SUM)
            a, e, n = counts
            sl = slice(int(ptr[i0]), int(ptr[i1]))
            above[sl] = a
            with np.errstate(invalid="ignore", divide="ignore"):
                aucs[sl] = np.where(n > 0, ((n - a - e).astype(np.float64) + 0.5 * e) / n, np.nan)
            advance(i1, users.size)


class ShardScoring:
    """The part of ``Model`` that scores with sharded tables (``Model`` mixes it in):
    ``recommend`` and ``evaluate_full`` find these hooks on the model."""

    def _shard_scorer(self, roles, retrieval: bool = False) -> Optional[ShardScorer]:
        """A :class:`ShardScorer` when the tables are sharded and the model can be scored
        shard by shard; else None (sharded tables are gathered first: a collective call)."""
        shards = getattr(self, "_shards", None)
        if shards is None:
            return None
        if not retrieval and len(roles.names) == 2 \
                and _split_tables(self, roles, shards) is not None:
            return ShardScorer(self, roles)
        shards.unshard()
        return None

    def _sharded_pair_scores(self) -> Optional[Callable[[np.ndarray, np.ndarray], np.ndarray]]:
        """``evaluate_sampled``'s scorer of (user, item) pairs with sharded tables
        (:meth:`ShardScorer.pair_scores`, the inputs' first two ids), or None when the
        tables are whole (or were gathered now, for a model that cannot be scored so)."""
        if getattr(self, "_shards", None) is None:
            return None
        scorer = self._shard_scorer(recommend_mod._Roles(self, None, None, None, None))
        return None if scorer is None else scorer.pair_scores

    def _sharded_count_full(self, task, above: np.ndarray, aucs: np.ndarray,
                            max_block_bytes: int, advance: Callable[[int, int], None]) -> bool:
        """``evaluate_full``'s counts with sharded tables (True), or False when the tables
        are whole (or were gathered now: a model :meth:`_shard_scorer` cannot score)."""
        if getattr(self, "_shards", None) is None:
            return False
        roles = recommend_mod._Roles(self, None, None, None, None)
        scorer = self._shard_scorer(roles)
        if scorer is None:
            return False
        if roles.n_items != task.n_items:
            raise ValueError(f"model.score_items returned shape (n, {roles.n_items}); expected "
                             f"(n, {task.n_items}) = (len(user_ids), n_items)")
        scorer.count_full(task, above, aucs, max_block_bytes, advance)
        return True


def _split_tables(model, roles, shards):
    """``(user tables, item tables)`` of the sharded tables, or None when a table is read by
    another input (or by both id inputs), or the tables of one side differ in rows."""
    uslot = model.inputs.index(roles.u_in)
    islot = model.inputs.index(roles.i_in)
    users, items = [], []
    for slots, tables in shards.groups:
        if slots == [uslot]:
            users.extend(tables)
        elif slots == [islot]:
            items.extend(tables)
        else:
            return None
    if not users or not items or len({t.rows for t in users}) != 1 \
            or len({t.rows for t in items}) != 1 or items[0].rows != roles.n_items:
        return None
    return users, items


def _view(model, tables: set):
    """A model of ``model``'s graph whose Embedding layers named in ``tables`` hold one
    row (pointed at other arrays by :func:`_point`) and whose other layers borrow
    ``model``'s weights (nothing is drawn: initializers are zeros)."""
    config = model.get_config()
    for entry in config["layers"]:
        c = entry["config"] = dict(entry["config"])
        if c.get("name") in tables:
            c["input_dim"] = 1
        for key in list(c):
            if key.endswith("_initializer"):
                c[key] = "zeros"
    view = type(model).from_config(config)
    for layer in view.layers:
        if layer.name not in tables:
            _borrow(layer, model.get_layer(layer.name))
    return view


def _point(layer: Embedding, array: np.ndarray) -> None:
    """Make the Embedding ``layer`` read ``array`` (its rows are the layer's ids)."""
    name, old, reg = layer._weights[0]
    layer._weights[0] = (name, array, reg)
    layer.embeddings = array
    layer.input_dim = int(array.shape[0])

