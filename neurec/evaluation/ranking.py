"""Ranking metrics and top-K selection, computed in C (``neurec._core``).

A *rank* is the 0-based position of a held-out (positive) item among its
candidates: the number of candidate negatives the model scored **strictly
higher**. Tie rule (as in the README): a positive tied with negatives ranks
above all of them, and counts 1/2 per tied negative in AUC. A NaN positive
score ranks last (AUC 0); a NaN negative ranks below every non-NaN positive,
so a model that outputs NaN never gains from it.

With one positive per user and cutoff K::

    HR@K   = mean(rank < K)
    NDCG@K = mean((rank < K) / log2(rank + 2))
    MRR    = mean(1 / (rank + 1))                       (not cut at K)
    AUC    = mean share of negatives scored below the positive (ties 1/2)

With several positives per user (``indptr`` groups the ranks of each user),
positive ``j`` in ascending rank order sits at position ``p_j = rank_j + j``
(the positives compete with each other too), and with ``P`` positives::

    precision@K = hits / K,   recall@K = hits / P,   hits = #{j: p_j < K}
    NDCG@K      = sum_{p_j<K} 1/log2(p_j+2) / sum_{i<min(P,K)} 1/log2(i+2)
    MAP@K       = sum_{p_j<K} (j+1)/(p_j+1) / min(P, K)
    HR@K        = 1 if hits > 0,   MRR = 1/(p_0 + 1)

Every metric is averaged over users with at least one positive. The pure-NumPy
functions ``_reference_*`` below define the same quantities independently;
the tests use them as the oracle for the C code.
"""
from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any, Optional, Union

import numpy as np

__all__ = [
    "ranks_from_scores", "auc", "hit_rate", "ndcg", "mrr", "precision_at_k",
    "recall_at_k", "map_at_k", "ranking_metrics", "top_k",
]

_METRICS = ("hr", "ndcg", "mrr", "precision", "recall", "map", "auc")


# ---------------------------------------------------------------------------
# Plumbing shared by the evaluation modules
# ---------------------------------------------------------------------------
def _core():
    try:
        from neurec import _core as core
    except ImportError as e:  # pragma: no cover - depends on the build
        raise ImportError("neurec._core (the C extension) is not built; run "
                          "`pip install -e .` or `python setup.py build_ext --inplace`") from e
    return core


def _num_threads() -> int:
    from neurec import _threads  # the thread count the rest of neurec uses (set_num_threads)
    return int(_threads.get_num_threads())


def _check_k(k: Any, name: str = "k") -> int:
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise TypeError(f"{name} must be a positive integer, got {k!r}")
    if k < 1:
        raise ValueError(f"{name} must be a positive integer, got {k}")
    return int(k)


def _check_ks(k: Any) -> tuple:
    """An int or a sequence of ints -> a tuple of distinct positive ints."""
    if isinstance(k, (Sequence, np.ndarray)) and not isinstance(k, str):
        ks = tuple(dict.fromkeys(_check_k(v) for v in k))
        if not ks:
            raise ValueError("k must be a positive integer or a non-empty sequence of them")
        return ks
    return (_check_k(k),)


def _as_ids(x: Any, name: str, ndim: int = 1) -> np.ndarray:
    """Non-negative integer ids as a C-contiguous int64 array."""
    a = np.asarray(x)
    if a.dtype.kind not in "iu" and not (a.size == 0 and a.dtype.kind == "f"):
        raise TypeError(f"{name} must hold integer ids, got dtype {a.dtype}")
    if a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-dimensional, got shape {a.shape}")
    a = np.ascontiguousarray(a, dtype=np.int64)
    if a.size and a.min() < 0:
        raise ValueError(f"{name} must not contain negative ids (found {int(a.min())})")
    return a


def _as_scores(x: Any, name: str, ndims: tuple = (1,)) -> np.ndarray:
    """Real scores as a C-contiguous float32 array (one visible conversion)."""
    a = np.asarray(x)
    if a.dtype.kind not in "fiub":
        raise TypeError(f"{name} must hold real-valued scores, got dtype {a.dtype}")
    if a.ndim not in ndims:
        want = " or ".join(f"{d}-dimensional" for d in ndims)
        raise ValueError(f"{name} must be {want}, got shape {a.shape}")
    return np.ascontiguousarray(a, dtype=np.float32)


def _as_ranks(ranks: Any, name: str = "ranks") -> np.ndarray:
    return _as_ids(ranks, name)


def _as_indptr(indptr: Any, n_values: int, name: str = "indptr") -> Optional[np.ndarray]:
    if indptr is None:
        return None
    p = np.asarray(indptr)
    if p.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integer offsets, got dtype {p.dtype}")
    if p.ndim != 1 or p.size < 1:
        raise ValueError(f"{name} must be a 1-D array of n_users + 1 offsets, got shape {p.shape}")
    p = np.ascontiguousarray(p, dtype=np.int64)
    if p[0] != 0 or p[-1] != n_values or (np.diff(p) < 0).any():
        raise ValueError(f"{name} must start at 0, never decrease and end at the number of "
                         f"ranks ({n_values})")
    return p


def _to_csr(obj: Any, name: str, n_rows: Optional[int] = None,
            n_cols: Optional[int] = None) -> tuple:
    """Interactions -> ``(indptr int64, indices int32 sorted per row, (rows, cols))``.

    Accepts a ``neurec.data.InteractionMatrix`` (or anything with ``indptr``,
    ``indices`` and ``shape``), a scipy.sparse matrix, an ``InteractionLog``
    (``to_matrix``) or a ``(users, items)`` tuple of id arrays. Tuples get
    their shape from the largest ids, raised to ``n_rows`` / ``n_cols``; an
    explicit matrix must already have at least ``n_rows`` rows.
    """
    if isinstance(obj, tuple) and len(obj) == 2:
        users = _as_ids(obj[0], f"{name}[0] (users)")
        items = _as_ids(obj[1], f"{name}[1] (items)")
        if users.shape != items.shape:
            raise ValueError(f"{name} users and items must have the same length, got "
                             f"{users.size} and {items.size}")
        rows = max(int(users.max()) + 1 if users.size else 0, n_rows or 0)
        cols = max(int(items.max()) + 1 if items.size else 0, n_cols or 0)
        keys = np.sort(users * np.int64(max(cols, 1)) + items)
        if keys.size > 1:  # distinct: np.unique's hash path is ~100x slower here (NumPy 2.4)
            keys = keys[np.concatenate(([True], keys[1:] != keys[:-1]))]
        u = keys // max(cols, 1)
        indices = np.ascontiguousarray(keys % max(cols, 1), dtype=np.int32)
        indptr = np.zeros(rows + 1, dtype=np.int64)
        np.cumsum(np.bincount(u, minlength=rows), out=indptr[1:])
        return indptr, indices, (rows, cols)

    from neurec.data.interactions import InteractionMatrix

    if isinstance(obj, InteractionMatrix):  # its constructor checked every invariant below
        indptr, indices, shape = obj.indptr, obj.indices, (int(obj.shape[0]), int(obj.shape[1]))
    elif hasattr(obj, "tocsr"):  # scipy.sparse
        m = obj.tocsr(copy=True)
        m.eliminate_zeros()
        m.sum_duplicates()  # also sorts the indices of every row
        indptr = np.ascontiguousarray(m.indptr, dtype=np.int64)
        indices = np.ascontiguousarray(m.indices, dtype=np.int32)
        shape = (int(m.shape[0]), int(m.shape[1]))
    elif hasattr(obj, "indptr") and hasattr(obj, "indices") and hasattr(obj, "shape"):
        indptr = np.ascontiguousarray(obj.indptr, dtype=np.int64)
        indices = np.asarray(obj.indices)
        if indices.dtype.kind not in "iu":
            raise TypeError(f"{name}.indices must hold integer ids, got dtype {indices.dtype}")
        indices = np.ascontiguousarray(indices, dtype=np.int32)
        shape = (int(obj.shape[0]), int(obj.shape[1]))
        if (indptr.ndim != 1 or indptr.size != shape[0] + 1 or indptr[0] != 0
                or indptr[-1] != indices.size or (np.diff(indptr) < 0).any()):
            raise ValueError(f"{name} is not a valid CSR matrix: indptr must have "
                             f"shape[0] + 1 = {shape[0] + 1} non-decreasing entries from 0 to "
                             f"len(indices) = {indices.size}")
        if indices.size and (indices.min() < 0 or indices.max() >= shape[1]):
            raise ValueError(f"{name}.indices must lie in [0, {shape[1]})")
        if indices.size > 1:
            starts = np.zeros(indices.size, dtype=bool)
            starts[indptr[:-1][np.diff(indptr) > 0]] = True
            if not ((np.diff(indices) > 0) | starts[1:]).all():
                raise ValueError(f"{name}.indices must be sorted ascending and distinct within "
                                 "each row")
    elif hasattr(obj, "to_matrix"):  # neurec.data.InteractionLog
        return _to_csr(obj.to_matrix(), name, n_rows, n_cols)
    else:
        raise TypeError(f"{name} must be a neurec.data.InteractionMatrix, a scipy.sparse matrix "
                        f"or a (users, items) tuple of id arrays, got {type(obj).__name__}")

    if n_rows is not None and n_rows > shape[0]:
        raise ValueError(f"{name} has {shape[0]} rows (users) but user id {n_rows - 1} is "
                         "evaluated; build the matrix with shape=(n_users, n_items)")
    return indptr, indices, shape


# ---------------------------------------------------------------------------
# Ranks
# ---------------------------------------------------------------------------
def _count_sampled(pos_scores: Any, neg_scores: Any) -> tuple:
    pos = _as_scores(pos_scores, "pos_scores", (1,))
    neg = _as_scores(neg_scores, "neg_scores", (2,))
    if neg.shape[0] != pos.shape[0]:
        raise ValueError(f"neg_scores has {neg.shape[0]} rows but pos_scores has {pos.shape[0]} "
                         "entries; pass one row of negative scores per positive")
    return _core().count_sampled(pos, neg, n_threads=_num_threads())


def ranks_from_scores(pos_scores: Any, neg_scores: Any) -> np.ndarray:
    """Rank of each positive among its own negatives.

    Args:
        pos_scores: Shape ``(n,)``: the score of each user's positive item.
        neg_scores: Shape ``(n, n_neg)``: the scores of its negatives.

    Returns:
        An int64 array of shape ``(n,)``: for each positive, the number of its
        negatives scored strictly higher (0 = top of the list).

    Raises:
        TypeError: If the scores are not real numbers.
        ValueError: If the shapes do not match.

    Example:
        >>> ranks_from_scores([0.5, 0.9], [[0.9, 0.5, 0.1], [0.1, 0.2, 0.3]])
        array([1, 0])
    """
    return _count_sampled(pos_scores, neg_scores)[0]


def auc(pos_scores: Any, neg_scores: Any) -> float:
    """Mean AUC: share of a positive's negatives scored below it (ties 1/2).

    Args:
        pos_scores: Shape ``(n,)``.
        neg_scores: Shape ``(n, n_neg)``.

    Returns:
        The mean over the ``n`` users (NaN if ``n_neg == 0``).

    Raises:
        TypeError: If the scores are not real numbers.
        ValueError: If the shapes do not match.
    """
    a = _count_sampled(pos_scores, neg_scores)[1]
    return float(a.mean()) if a.size else float("nan")


# ---------------------------------------------------------------------------
# Metrics from ranks
# ---------------------------------------------------------------------------
def _checked_ranks(ranks: Any, indptr: Any = None, aucs: Any = None) -> tuple:
    """``(ranks, indptr, aucs)`` converted and checked for the C scorer."""
    r = _as_ranks(ranks)
    p = _as_indptr(indptr, r.size)
    a = None
    if aucs is not None:
        a = np.ascontiguousarray(aucs, dtype=np.float64)
        if a.shape != r.shape:
            raise ValueError(f"aucs must have one entry per rank ({r.size}), got shape {a.shape}")
    return r, p, a


def _score(ranks: Any, k: int, indptr: Any = None, aucs: Any = None) -> tuple:
    r, p, a = _checked_ranks(ranks, indptr, aucs)
    return _core().score(r, _check_k(k), indptr=p, auc=a)


def ranking_metrics(ranks: Any, k: Union[int, Sequence] = 10, indptr: Any = None,
                    aucs: Any = None, per_user: bool = False) -> dict:
    """All ranking metrics at once from ranks.

    Args:
        ranks: Non-negative integer ranks (negatives scored strictly above
            each positive), e.g. from `ranks_from_scores`.
        k: The cutoff, or a sequence of cutoffs (``(5, 10, 20)``).
        indptr: Optional ``n_users + 1`` offsets grouping several positives
            per user: user ``u`` owns ``ranks[indptr[u]:indptr[u+1]]``.
            ``None`` means one positive per user.
        aucs: Optional AUC per positive (same length as ``ranks``); adds
            ``'auc'`` (per-user mean, then mean over users).
        per_user: Return per-user float64 arrays (NaN for users without
            positives) instead of means.

    Returns:
        A dict with ``'hr@K'``, ``'ndcg@K'`` for every K, ``'mrr'``, with
        ``'precision@K'``, ``'recall@K'``, ``'map@K'`` when ``indptr`` is
        given, and ``'auc'`` when ``aucs`` is given.

    Raises:
        TypeError: If ``ranks`` are not integers or ``k`` is not an integer.
        ValueError: If ``k < 1``, a rank is negative or ``indptr`` is invalid.

    Example:
        >>> ranking_metrics([0, 3, 12], k=10)
        {'hr@10': 0.666..., 'ndcg@10': 0.476..., 'mrr': 0.442...}
    """
    out: dict = {}
    ks = _check_ks(k)
    r, p, a = _checked_ranks(ranks, indptr, aucs)  # once for every cutoff
    for kk in ks:
        means, users = _core().score(r, kk, indptr=p, auc=a)
        src = users if per_user else {m: float(v) for m, v in means.items() if m != "n_users"}
        out[f"hr@{kk}"] = src["hr"]
        out[f"ndcg@{kk}"] = src["ndcg"]
        if indptr is not None:
            out[f"precision@{kk}"] = src["precision"]
            out[f"recall@{kk}"] = src["recall"]
            out[f"map@{kk}"] = src["map"]
    out["mrr"] = src["mrr"]
    if aucs is not None:
        out["auc"] = src["auc"]
    return out


def _one(metric: str, ranks: Any, k: int, indptr: Any) -> float:
    return float(_score(ranks, k, indptr)[0][metric])


def hit_rate(ranks: Any, k: int, indptr: Any = None) -> float:
    """HR@K: share of users with a positive ranked in the top ``k``.

    Args:
        ranks: Non-negative integer ranks (see `ranking_metrics`).
        k: The cutoff, >= 1.
        indptr: Optional offsets grouping several positives per user.

    Returns:
        The mean over users, a float in [0, 1].

    Raises:
        TypeError, ValueError: As for `ranking_metrics`.

    Example:
        >>> hit_rate([0, 3, 12], k=10)
        0.6666666666666666
    """
    return _one("hr", ranks, k, indptr)


def ndcg(ranks: Any, k: int, indptr: Any = None) -> float:
    """NDCG@K: ``1/log2(rank+2)`` for a rank below ``k``, else 0, averaged.

    With several positives per user the gain is normalised by the ideal DCG
    of ``min(P, k)`` hits. Args, Returns and Raises as for `hit_rate`.
    """
    return _one("ndcg", ranks, k, indptr)


def mrr(ranks: Any, indptr: Any = None) -> float:
    """MRR: mean of ``1/(rank+1)`` of each user's best positive (no cutoff).

    Args:
        ranks: Non-negative integer ranks.
        indptr: Optional offsets grouping several positives per user.

    Returns:
        A float in (0, 1].

    Raises:
        TypeError, ValueError: As for `ranking_metrics`.
    """
    return _one("mrr", ranks, 1, indptr)


def precision_at_k(ranks: Any, k: int, indptr: Any = None) -> float:
    """Precision@K: hits in the top ``k`` divided by ``k``, averaged.

    Args, Returns and Raises as for `hit_rate`.
    """
    return _one("precision", ranks, k, indptr)


def recall_at_k(ranks: Any, k: int, indptr: Any = None) -> float:
    """Recall@K: hits in the top ``k`` divided by the user's positives.

    Args, Returns and Raises as for `hit_rate`.
    """
    return _one("recall", ranks, k, indptr)


def map_at_k(ranks: Any, k: int, indptr: Any = None) -> float:
    """MAP@K: average precision at each hit, divided by ``min(P, k)``.

    Args, Returns and Raises as for `hit_rate`.
    """
    return _one("map", ranks, k, indptr)


# ---------------------------------------------------------------------------
# Top-K
# ---------------------------------------------------------------------------
def top_k(scores: Any, k: int, exclude: Any = None, users: Any = None) -> tuple:
    """The ``k`` best items of every row of a score matrix.

    Args:
        scores: Shape ``(n_rows, n_items)``, or ``(n_items,)`` shared by all
            rows (then there is one row per entry of ``users``, or one row).
            Converted once to float32 if needed.
        k: How many items to return per row, >= 1.
        exclude: Items to skip per user: a ``neurec.data.InteractionMatrix``,
            a scipy.sparse matrix or a ``(users, items)`` tuple of id arrays.
        users: The user id (row of ``exclude``) of every score row; default
            ``arange(n_rows)``.

    Returns:
        ``(ids, scores)``: int64 and float32 arrays of shape ``(n_rows, k)``,
        best first; equal scores are ordered by ascending item id; NaN scores
        are never returned. A row with fewer than ``k`` candidates is padded
        with id ``-1`` and score ``-inf``.

    Raises:
        TypeError: If ``scores`` or ``users`` have the wrong kind of values.
        ValueError: If ``k < 1`` or the shapes do not match.

    Example:
        >>> top_k([[0.1, 0.9, 0.5]], 2)
        (array([[1, 2]]), array([[0.9, 0.5]], dtype=float32))
    """
    k = _check_k(k)
    s = _as_scores(scores, "scores", (1, 2))
    u = None if users is None else _as_ids(users, "users")
    if u is not None and s.ndim == 2 and u.size != s.shape[0]:
        raise ValueError(f"users has {u.size} entries but scores has {s.shape[0]} rows")
    indptr = indices = None
    if exclude is not None:
        n_rows = s.shape[0] if s.ndim == 2 else (u.size if u is not None else 1)
        need = int(u.max()) + 1 if u is not None and u.size else n_rows
        indptr, indices, _ = _to_csr(exclude, "exclude", n_rows=need)
        if u is None:
            u = np.arange(n_rows, dtype=np.int64)
    return _core().topk_rows(s, k, indptr=indptr, indices=indices, row_users=u,
                             n_threads=_num_threads())


# ---------------------------------------------------------------------------
# Pure-NumPy references (the oracle of the tests; slow, clear)
# ---------------------------------------------------------------------------
def _reference_ranks_sampled(pos_scores: np.ndarray, neg_scores: np.ndarray) -> tuple:
    pos = np.asarray(pos_scores, dtype=np.float32)[:, None]
    neg = np.asarray(neg_scores, dtype=np.float32)
    above = (neg > pos).sum(axis=1)
    equal = (neg == pos).sum(axis=1)
    n_neg = neg.shape[1]
    nan_pos = np.isnan(pos[:, 0])
    above = np.where(nan_pos, n_neg, above).astype(np.int64)
    equal = np.where(nan_pos, 0, equal)
    with np.errstate(invalid="ignore", divide="ignore"):
        aucs = (n_neg - above - equal + 0.5 * equal) / n_neg
    return above, aucs


def _reference_ranks_full(scores: np.ndarray, positives: list, excluded: list) -> tuple:
    """Row r of ``scores`` with positive ids ``positives[r]`` and excluded ids
    ``excluded[r]`` -> (ranks, aucs), concatenated over rows in the order of
    each row's positives."""
    ranks, aucs = [], []
    for row, pos, ex in zip(np.asarray(scores, dtype=np.float32), positives, excluded):
        cand = np.ones(row.size, dtype=bool)
        cand[np.asarray(ex, dtype=np.int64)] = False
        cand[np.asarray(pos, dtype=np.int64)] = False
        neg = row[cand]
        r, a = _reference_ranks_sampled(row[np.asarray(pos, dtype=np.int64)],
                                        np.broadcast_to(neg, (len(pos), neg.size)))
        ranks.append(r)
        aucs.append(a)
    if not ranks:
        return np.zeros(0, np.int64), np.zeros(0)
    return np.concatenate(ranks), np.concatenate(aucs)


def _reference_metrics(ranks: Any, k: int, indptr: Any = None, aucs: Any = None) -> dict:
    """Per-user metrics from ranks, one user at a time."""
    ranks = np.asarray(ranks, dtype=np.int64)
    indptr = np.arange(ranks.size + 1) if indptr is None else np.asarray(indptr)
    out = {m: np.full(indptr.size - 1, np.nan) for m in _METRICS}
    for u in range(indptr.size - 1):
        r = np.sort(ranks[indptr[u]:indptr[u + 1]])
        if r.size == 0:
            continue
        pos = r + np.arange(r.size)  # positives compete with each other
        hit = pos < k
        n_ideal = min(r.size, k)
        out["hr"][u] = float(hit.any())
        out["ndcg"][u] = (np.sum(1.0 / np.log2(pos[hit] + 2.0))
                          / np.sum(1.0 / np.log2(np.arange(n_ideal) + 2.0)))
        out["mrr"][u] = 1.0 / (pos[0] + 1.0)
        out["precision"][u] = hit.sum() / k
        out["recall"][u] = hit.sum() / r.size
        out["map"][u] = np.sum((np.arange(r.size)[hit] + 1.0) / (pos[hit] + 1.0)) / n_ideal
        if aucs is not None:
            out["auc"][u] = np.mean(np.asarray(aucs)[indptr[u]:indptr[u + 1]])
    return out
