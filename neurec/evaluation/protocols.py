"""Evaluation protocols: the sampled NCF protocol and full-catalog ranking.

Both take any ``model`` with the Keras signature
``predict([user_ids, item_ids], batch_size=..., verbose=0)`` returning one
score per (user, item) pair as an ``(n, 1)`` array. A model that also has
``score_items(user_ids)`` returning an ``(n_users, n_items)`` float32 block
is scored through it in the full protocol (faster: no id arrays).

Ranks, ties and NaN follow `neurec.evaluation.ranking`: only strictly
higher-scored candidates go above a positive.

Under :class:`neurec.distribution.DataParallel` with several processes every rank must
call the protocol: each scores a contiguous share of the users, the per-user results are
gathered, and every rank returns the same metrics. A model whose tables are sharded by
:class:`neurec.distribution.ModelParallel` is scored shard by shard instead, every rank
taking part for every user (``neurec/models/_mp_score.py``): the sampled protocol's
pairs are scored by the ranks that hold their items, and the full protocol's counts of
negatives above each held-out item are summed over the ranks' item shards.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional, Union

import numpy as np

from neurec import distribution
from neurec.evaluation.ranking import (
    _as_ids,
    _check_k,
    _check_ks,
    _core,
    _num_threads,
    _to_csr,
    ranking_metrics,
)
from neurec.utils.progbar import Progbar, waiting_bar

__all__ = ["evaluate_sampled", "evaluate_full"]

_MAX_PAIRS = 1 << 22                 # (user, item) pairs per predict call, sampled protocol
_DEFAULT_BLOCK_BYTES = 64 << 20      # scoring buffers per block, full protocol


def _check_batch_size(batch_size: Any) -> Optional[int]:
    return None if batch_size is None else _check_k(batch_size, "batch_size")


def _predict_pairs(model: Any, users: np.ndarray, items: np.ndarray,
                   batch_size: Optional[int]) -> np.ndarray:
    with distribution._local():  # this rank's share of the users: no split of its own
        out = np.asarray(model.predict([users, items], batch_size=batch_size, verbose=0))
    if out.dtype.kind not in "fiub":
        raise TypeError(f"model.predict must return real scores, got dtype {out.dtype}")
    if out.size != users.size or (out.ndim == 2 and out.shape[1] != 1) or out.ndim > 2:
        raise ValueError(f"model.predict returned shape {out.shape} for {users.size} "
                         f"(user, item) pairs; expected ({users.size}, 1)")
    return np.ascontiguousarray(out.reshape(-1), dtype=np.float32)


def _score_block(model: Any, users: np.ndarray, n_items: int,
                 batch_size: Optional[int]) -> np.ndarray:
    if hasattr(model, "score_items"):
        s = np.asarray(model.score_items(users))
        if s.shape != (users.size, n_items):
            raise ValueError(f"model.score_items returned shape {s.shape}; expected "
                             f"({users.size}, {n_items}) = (len(user_ids), n_items)")
        return np.ascontiguousarray(s, dtype=np.float32)
    u = np.repeat(users.astype(np.int32), n_items)
    i = np.tile(np.arange(n_items, dtype=np.int32), users.size)
    return _predict_pairs(model, u, i, batch_size).reshape(users.size, n_items)


class _SampledTask:
    """Validated inputs of the sampled protocol, reusable every epoch."""

    def __init__(self, users: Any, pos_items: Any, negatives: Any,
                 k: Union[int, Sequence]) -> None:
        self.ks = _check_ks(k)
        users = _as_ids(users, "users")
        pos = _as_ids(pos_items, "pos_items")
        neg = _as_ids(negatives, "negatives", ndim=2)
        if users.size == 0:
            raise ValueError("users is empty: pass at least one user to evaluate")
        if pos.size != users.size or neg.shape[0] != users.size:
            raise ValueError(f"users, pos_items and negatives must have one entry (row) per "
                             f"user; got {users.size}, {pos.size} and {neg.shape[0]}")
        if neg.shape[1] == 0:
            raise ValueError("negatives has no columns: give each user at least one negative")
        if max(users.max(), pos.max(), neg.max()) > np.iinfo(np.int32).max:
            raise ValueError("ids must fit in int32")
        self.users = users.astype(np.int32)
        # Column 0 is the positive, then its negatives: one predict per chunk.
        self.items = np.ascontiguousarray(
            np.concatenate([pos[:, None], neg], axis=1), dtype=np.int32)

    def run(self, model: Any, batch_size: Optional[int] = 4096, per_user: bool = False,
            bar: Optional[Progbar] = None) -> dict:
        n, width = self.items.shape
        rows = max(1, _MAX_PAIRS // width)
        ranks = np.empty(n, dtype=np.int64)
        aucs = np.empty(n, dtype=np.float64)
        core, nt = _core(), _num_threads()
        sharded = getattr(model, "_sharded_pair_scores", None)  # ModelParallel's tables
        pairs = sharded() if sharded is not None else None  # every rank scores every pair
        shares = distribution._shares(n) if pairs is None else None  # else a share of users
        lo, hi = _share_of(shares, n)
        for i0 in range(lo, hi, rows):
            i1 = min(hi, i0 + rows)
            u, i = np.repeat(self.users[i0:i1], width), self.items[i0:i1].ravel()
            s = (_predict_pairs(model, u, i, batch_size) if pairs is None else
                 pairs(u, i)).reshape(i1 - i0, width)
            ranks[i0:i1], aucs[i0:i1] = core.count_sampled(
                np.ascontiguousarray(s[:, 0]), np.ascontiguousarray(s[:, 1:]), n_threads=nt)
            _advance(bar, i1 - lo, hi - lo)
        if shares is not None:
            distribution._allgather_blocks([ranks, aucs], shares)
        return ranking_metrics(ranks, self.ks, aucs=aucs, per_user=per_user)


def _is_interactions(x: Any) -> bool:
    return ((isinstance(x, tuple) and len(x) == 2) or hasattr(x, "tocsr")
            or hasattr(x, "indptr") or hasattr(x, "to_matrix"))


class _FullTask:
    """Validated inputs of the full-ranking protocol, reusable every epoch."""

    def __init__(self, users: Any, pos_items: Any, train_matrix: Any,
                 k: Union[int, Sequence], n_items: Optional[int] = None) -> None:
        self.ks = _check_ks(k)
        users = None if users is None else _as_ids(users, "users")
        self.multi = _is_interactions(pos_items)
        if self.multi:
            need = int(users.max()) + 1 if users is not None and users.size else None
            p_indptr, p_indices, _ = _to_csr(pos_items, "pos_items", n_rows=need)
            if users is None:
                users = np.flatnonzero(np.diff(p_indptr)).astype(np.int64)
            lengths = p_indptr[users + 1] - p_indptr[users]
            self.pos_indptr = np.zeros(users.size + 1, dtype=np.int64)
            np.cumsum(lengths, out=self.pos_indptr[1:])
            take = (np.repeat(p_indptr[users] - self.pos_indptr[:-1], lengths)
                    + np.arange(self.pos_indptr[-1]))
            self.pos_indices = np.ascontiguousarray(p_indices[take], dtype=np.int32)
        else:
            if users is None:
                raise ValueError("users is required when pos_items is an array of one item "
                                 "per user")
            pos = _as_ids(pos_items, "pos_items")
            if pos.size != users.size:
                raise ValueError(f"users and pos_items must have the same length, got "
                                 f"{users.size} and {pos.size}")
            self.pos_indptr = np.arange(users.size + 1, dtype=np.int64)
            self.pos_indices = pos.astype(np.int32)
        if users.size == 0:
            raise ValueError("no user to evaluate: users is empty or no user has a positive")

        self.ex_indptr = self.ex_indices = None
        if train_matrix is not None:
            self.ex_indptr, self.ex_indices, ex_shape = _to_csr(
                train_matrix, "train_matrix", n_rows=int(users.max()) + 1)
        if n_items is None:
            # A tuple of ids does not tell how many items exist; guessing from
            # the largest id would silently drop unseen items from the ranking.
            if train_matrix is None or not hasattr(train_matrix, "shape"):
                raise ValueError("n_items is required when train_matrix is None or a "
                                 "(users, items) tuple or log: pass the catalog size")
            n_items = ex_shape[1]
        self.n_items = _check_k(n_items, "n_items")
        if self.pos_indices.size and int(self.pos_indices.max()) >= self.n_items:
            raise ValueError(f"pos_items contains item id {int(self.pos_indices.max())} but "
                             f"there are only n_items = {self.n_items} items")
        self.users = users

    def run(self, model: Any, batch_size: Optional[int] = 4096, per_user: bool = False,
            max_block_bytes: int = _DEFAULT_BLOCK_BYTES, bar: Optional[Progbar] = None) -> dict:
        # Bytes per scored pair: the float32 score, plus the two int32 id
        # arrays and predict's own output when going through predict.
        per_pair = 4 if hasattr(model, "score_items") else 16
        rows = max(1, int(max_block_bytes) // (per_pair * self.n_items))
        n_pos = self.pos_indices.size
        above = np.empty(n_pos, dtype=np.int64)
        aucs = np.empty(n_pos, dtype=np.float64)
        core, nt = _core(), _num_threads()
        n = self.users.size
        sharded = getattr(model, "_sharded_count_full", None)  # ModelParallel's tables
        if sharded is not None and sharded(self, above, aucs, max_block_bytes,
                                           lambda done, total: _advance(bar, done, total)):
            return ranking_metrics(above, self.ks, indptr=self.pos_indptr if self.multi
                                   else None, aucs=aucs, per_user=per_user)
        shares = distribution._shares(n)  # several processes: this rank's users only
        lo, hi = _share_of(shares, n)
        for i0 in range(lo, hi, rows):
            i1 = min(hi, i0 + rows)
            block = self.users[i0:i1]
            scores = _score_block(model, block, self.n_items, batch_size)
            core.count_full(scores, self.pos_indptr[i0:i1 + 1], self.pos_indices, above, aucs,
                            indptr=self.ex_indptr, indices=self.ex_indices,
                            row_users=block if self.ex_indptr is not None else None,
                            n_threads=nt)
            _advance(bar, i1 - lo, hi - lo)
        if shares is not None:  # the results are per positive: the users' entries
            distribution._allgather_blocks([above, aucs], self.pos_indptr[shares])
        return ranking_metrics(above, self.ks, indptr=self.pos_indptr if self.multi else None,
                               aucs=aucs, per_user=per_user)


def _share_of(shares: Optional[np.ndarray], n: int) -> tuple:
    """This rank's rows ``[lo, hi)`` of ``n`` (all of them on one process)."""
    if shares is None:
        return 0, n
    r = distribution.rank()
    return int(shares[r]), int(shares[r + 1])


def _advance(bar: Optional[Progbar], done: int, n: int) -> None:
    """Move the bar to ``done`` users of ``n`` (between blocks; finalized at the end)."""
    if bar is not None:
        bar.target = n
        bar.update(done, finalize=done >= n)


def evaluate_sampled(model: Any, users: Any, pos_items: Any, negatives: Any,
                     k: Union[int, Sequence] = 10, batch_size: Optional[int] = 4096,
                     per_user: bool = False, verbose: Union[str, int] = "auto") -> dict:
    """The NCF protocol: rank each positive among its own sampled negatives.

    Args:
        model: Anything with ``predict([user_ids, item_ids], batch_size=...,
            verbose=0)`` returning ``(n, 1)`` scores (a neurec or Keras model).
        users: Shape ``(n,)``: integer user ids.
        pos_items: Shape ``(n,)``: each user's held-out item.
        negatives: Shape ``(n, n_neg)``: each user's fixed negatives (e.g. the
            99 of an NCF ``.test.negative`` file).
        k: Cutoff for HR and NDCG, or a sequence of cutoffs.
        batch_size: Passed to ``model.predict``.
        per_user: Return per-user float64 arrays instead of means.
        verbose: ``'auto'`` (a bar when the output is interactive), 0 (silent), 1
            (a bar, in users, updated after each block of about 4M pairs) or 2 (one
            line at the end); nothing is printed for a call shorter than two seconds.

    Returns:
        ``{'hr@10': ..., 'ndcg@10': ..., 'mrr': ..., 'auc': ...}`` (one
        ``hr@K``/``ndcg@K`` pair per cutoff). A positive tied with negatives
        ranks above them.

    Raises:
        TypeError: If ids are not integers or ``k`` is not an integer.
        ValueError: If lengths disagree, an id is negative, ``k < 1``, or the
            model returns the wrong number of scores.

    Example:
        >>> evaluate_sampled(model, ds.test_users, ds.test_items, ds.test_negatives)
        {'hr@10': 0.68, 'ndcg@10': 0.41, 'mrr': 0.36, 'auc': 0.91}
    """
    bar = waiting_bar("evaluate_sampled", verbose if distribution.is_main() else 0, None,
                      unit_name="user")
    task = _SampledTask(users, pos_items, negatives, k)
    return task.run(model, _check_batch_size(batch_size), per_user=per_user, bar=bar)


def evaluate_full(model: Any, users: Any, pos_items: Any, train_matrix: Any,
                  k: Union[int, Sequence] = 10, batch_size: Optional[int] = 4096,
                  n_items: Optional[int] = None, per_user: bool = False,
                  max_block_bytes: int = _DEFAULT_BLOCK_BYTES,
                  verbose: Union[str, int] = "auto") -> dict:
    """Full ranking: rank each positive among all items the user has not seen.

    Users are scored in blocks against the whole catalog (at most about
    ``max_block_bytes`` of scores and ids at a time).

    Args:
        model: As for `evaluate_sampled`; ``model.score_items(user_ids)`` is
            used instead of ``predict`` when the model has it.
        users: Integer user ids to evaluate. May be ``None`` when
            ``pos_items`` is a matrix: then every user with a held-out item.
        pos_items: Either shape ``(n,)``, one held-out item per user, or
            several per user as a ``neurec.data.InteractionMatrix``, a
            scipy.sparse matrix or a ``(users, items)`` tuple of id arrays
            (rows indexed by user id). Users without a held-out item are left
            out of the means.
        train_matrix: Items to exclude per user (an InteractionMatrix,
            scipy.sparse matrix or ``(users, items)`` tuple), or ``None``.
            A held-out item is ranked even if it also appears here.
        k: Cutoff, or a sequence of cutoffs.
        batch_size: Passed to ``model.predict``.
        n_items: Catalog size; default ``train_matrix.shape[1]``. Required
            when ``train_matrix`` is ``None`` or a ``(users, items)`` tuple.
        per_user: Return per-user float64 arrays instead of means.
        max_block_bytes: Memory budget of one scoring block.
        verbose: ``'auto'`` (a bar when the output is interactive), 0 (silent), 1
            (a bar, in users, updated after each block) or 2 (one line at the end);
            nothing is printed for a call shorter than two seconds.

    Returns:
        ``{'hr@K', 'ndcg@K', 'mrr', 'auc'}``, plus ``'precision@K'``,
        ``'recall@K'`` and ``'map@K'`` when ``pos_items`` holds several items
        per user.

    Raises:
        TypeError: If ids are not integers or an argument has the wrong type.
        ValueError: If lengths disagree, an id is out of range, ``k < 1``, or
            the model returns the wrong number of scores.
    """
    bar = waiting_bar("evaluate_full", verbose if distribution.is_main() else 0, None,
                      unit_name="user")
    task = _FullTask(users, pos_items, train_matrix, k, n_items)
    return task.run(model, _check_batch_size(batch_size), per_user=per_user,
                    max_block_bytes=_check_k(max_block_bytes, "max_block_bytes"), bar=bar)
