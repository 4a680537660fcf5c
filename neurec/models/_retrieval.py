"""``Model.build_index``, ``recommend(index=)`` and two-stage ``recommend(candidates=)``.

* **Index.** ``build_index`` indexes a dot-product model's items (:mod:`._index`);
  ``recommend(index=idx)`` ranks through it (``kind='exact'``: the fused exact path, the
  baseline with the same interface).
* **Two stages.** ``recommend(candidates=retriever, n_candidates=200)``: a cheap retriever
  (a dot-product model, through its index when it has one, or ``'popular'``) proposes
  ``n_candidates`` items per user, excluded and retired items removed first; the model
  re-scores exactly those (user, item) pairs (NeuMF / MLP through their hoisted scoring
  model, whose scores are the fused and generic paths') and keeps the ``k`` best, equal
  scores by the lower id as on the exhaustive paths. Candidates are per user, so they are
  scored as ``n_users x n_candidates`` pairs rather than as a union shared by a block of
  users (which scores up to ``n_candidates x block`` items per user): for NeuMF / MLP in
  the fused C scorer's per-user mode (``NcfParts.topk_per_user``: each user's candidates
  through the same tower kernels and top-K heap as the exhaustive path, so the same
  scores and ties), for any other model through the compiled plan over the pairs, then
  ``topk_rows``.
"""
from typing import Any, Optional

import numpy as np

from neurec import _core
from neurec.evaluation.ranking import _core as rank_core
from neurec.evaluation.ranking import _num_threads as num_threads
from neurec.models._dot import dot_structure
from neurec.models._index import ItemIndex, build_index, restore_index

__all__ = ["IndexMixin", "topk"]


def _dot_build(model, what: str):
    """``dot_structure`` of a model with two inputs, or ValueError naming ``what``."""
    build = dot_structure(model, model.inputs[0], model.inputs[1]) \
        if len(getattr(model, "inputs", None) or ()) == 2 else None
    if build is None:
        raise ValueError(f"{what} needs a dot-product model (MF, GMF, or a Dot of a user and an "
                         "item Embedding): its score must be user_vector . item_vector (+ bias); "
                         "use candidates= to retrieve with such a model and re-rank with this one")
    return build


def _vectors(build, users: np.ndarray, what: str):
    vecs = build(users)
    if vecs is None:
        raise ValueError(f"{what}: a Dense(1) on the dot product has a zero weight, so every "
                         "item scores the same; train the model first")
    return vecs


class IndexMixin:
    """``build_index`` and ``item_index`` (a base class of :class:`neurec.models.Model`)."""

    _item_index: Optional[ItemIndex] = None

    @property
    def item_index(self) -> Optional[ItemIndex]:
        """The index of the last :meth:`build_index` (saved with the model), or None."""
        return self._item_index

    def build_index(self, kind: str = "hnsw", **settings) -> ItemIndex:
        """Index the items of a dot-product model for fast approximate top-K.

        For models whose score is ``user_vector . item_vector (+ bias)`` (``MF``, ``GMF``,
        a ``Dot`` of two embeddings); biases are folded in: HNSW searches the inner product
        directly (items ``[q_i, b_i]``, queries ``[p_u, 1]``), IVF clusters the
        inner-product-to-L2 augmentation. ``recommend(users, index=model.item_index)`` then ranks through it,
        honouring exclusions and retired items. ``model.save`` stores it in the model
        file (its structure alone, as plain arrays checked on load). Training the model
        afterwards makes it stale: ``recommend`` then raises until it is rebuilt.

        Args:
            kind: ``'hnsw'`` (a graph: the best recall per query time), ``'ivf'`` (k-means
                cells: quicker to build) or ``'exact'`` (the fused exact path: a baseline
                with the same interface; needs no library).
            **settings: For ``'hnsw'``: ``M`` (32, links per node), ``ef_construction``
                (200), ``ef_search`` (32; raised to the fetch size per query). For
                ``'ivf'``: ``nlist`` (cells; default about ``4 sqrt(n_items)``) and
                ``nprobe`` (cells searched; default 32, scaled with the fetch depth).
                ``index.set_search(ef_search=...)`` or ``set_search(nprobe=...)``
                changes the search setting later, without rebuilding.

        Returns:
            The :class:`ItemIndex` (also kept as :attr:`item_index`).

        Raises:
            ImportError: For ``'hnsw'`` / ``'ivf'`` without faiss-cpu
                (``pip install "neurec[ann]"``).
            ValueError: For another kind of model, an unknown ``kind`` or a bad setting.
            TypeError: For a setting the kind does not have.

        Example:
            >>> model = neurec.models.zoo.MF(n_users, n_items, factors=64)
            >>> model.build_index("hnsw")
            >>> ids, scores = model.recommend(users, k=10, index=model.item_index)
        """
        _, iv, ib = _vectors(_dot_build(self, "build_index"), np.empty(0, np.int64),
                             "build_index")
        self._item_index = build_index(iv, ib, kind, **settings)
        return self._item_index

    def restore_item_index(self, spec: Any, arrays: dict) -> None:
        """Attach a saved index (``load_model``); ValueError when it does not fit."""
        _, iv, ib = _vectors(_dot_build(self, "the saved index"), np.empty(0, np.int64),
                             "the saved index")
        self._item_index = restore_index(spec, arrays, iv, ib)


def _popular(pop: np.ndarray, n: int, nc: int, indptr, indices, rows, dead) -> np.ndarray:
    """The ``nc`` most popular live items each user has not seen, most popular first
    (-1 padded).

    A user's ``j``-th allowed popularity rank is ``j`` plus the number of its excluded ranks
    ``e_i`` (ascending, ``i`` from 0) with ``e_i - i <= j``: one ``searchsorted`` over every
    user's excluded ranks at once, in O(exclusions + n * nc).
    """
    order = np.lexsort((np.arange(pop.size), -pop))
    order = order[~dead[order]]  # live items, most popular first, ties by the lower id
    if order.size == 0:
        return np.full((n, nc), -1, np.int64)
    j = np.arange(nc, dtype=np.int64)
    ranks = np.broadcast_to(j, (n, nc))
    if indptr is not None:
        rank = np.full(pop.size, -1, np.int64)
        rank[order] = np.arange(order.size)
        n_ex = indptr[rows + 1] - indptr[rows]
        owner = np.repeat(np.arange(n, dtype=np.int64), n_ex)
        flat = indices[np.repeat(indptr[rows], n_ex) + np.arange(owner.size)
                       - np.repeat(np.cumsum(n_ex) - n_ex, n_ex)]
        r = rank[flat]
        live = r >= 0
        big = np.int64(order.size + nc + 1)
        key = np.sort(owner[live] * big + r[live])  # per user, ascending ranks
        counts = np.bincount(owner[live], minlength=n)
        starts = np.cumsum(counts) - counts
        who = key // big
        f = key % big - (np.arange(key.size) - starts[who])  # e_i - i
        below = np.searchsorted(who * big + f, (np.arange(n)[:, None] * big + j).ravel(),
                                side="right").reshape(n, nc) - starts[:, None]
        ranks = ranks + below
    return np.where(ranks < order.size, order[np.minimum(ranks, order.size - 1)], -1)


def _dot_topk(model, users, k, indptr, indices, rows, retired, what) -> np.ndarray:
    """A dot-product model's top ``k`` (exact, or through its fresh index), in any order
    (``-1`` padding last on the exact path)."""
    uv, iv, ib = _vectors(_dot_build(model, what), users, what)
    index = model.item_index if isinstance(getattr(model, "item_index", None), ItemIndex) else None
    if index is not None and index.kind != "exact":
        index.check(iv, ib)
        return index.topk(uv, iv, ib, k, indptr, indices, rows, retired)
    if retired is not None:
        ib = np.zeros(iv.shape[0], np.float32) if ib is None else ib.copy()
        ib[retired] = np.nan
    oid = np.empty((users.size, k), np.int64)
    osc = np.empty((users.size, k), np.float32)
    _core.score_topk(uv, iv, ib, k, indptr, indices if indptr is not None else None,
                     rows if indptr is not None else None, oid, osc, any_order=True)
    return oid


def topk(model, n_items: int, users: np.ndarray, k: int, cand, indptr, indices, retired,
         index, candidates, n_candidates, popularity, pair_scores) -> Optional[np.ndarray]:
    """``recommend``'s ids for known ``users`` with ``index=`` / ``candidates=``, or None for
    ``index`` of kind ``'exact'`` alone (the caller's fused exact path runs).

    Args:
        pair_scores: ``pair_scores(positions in users, items)``: the model's scores; its
            ``topk(positions, candidates, k)`` re-ranks rows of ascending candidates (``-1``
            padded) in the fused C scorer, or gives None for a model it does not run (the
            pairs are then scored and ranked here).

    Raises:
        TypeError, ValueError: For bad ``index`` / ``candidates`` / ``n_candidates``.
    """
    if index is not None and not isinstance(index, ItemIndex):
        raise TypeError(f"index must be an ItemIndex from model.build_index, got "
                        f"{type(index).__name__}")
    if cand is not None:
        raise ValueError("items= does not combine with index= or candidates=: the index and "
                         "the retriever rank the whole catalogue")
    rows = users if indptr is not None else None
    if candidates is None:
        uv, iv, ib = _vectors(_dot_build(model, "recommend(index=)"), users, "recommend(index=)")
        index.check(iv, ib)
        if index.kind == "exact":
            return None
        return index.topk(uv, iv, ib, k, indptr, indices, users, retired)
    if index is not None:
        raise ValueError("pass index= or candidates=, not both: the retriever's own index "
                         "(retriever.build_index) is used by candidates=")
    if isinstance(n_candidates, bool) or not isinstance(n_candidates, (int, np.integer)) \
            or n_candidates < k:
        raise ValueError(f"n_candidates must be an integer >= k ({k}), got {n_candidates!r}")
    nc = int(min(n_candidates, n_items))
    pop = None
    if isinstance(candidates, str):
        if candidates != "popular":
            raise ValueError(f"candidates must be a dot-product model or 'popular', got "
                             f"{candidates!r}")
        pop = popularity
        if pop is None and indptr is not None:
            pop = np.bincount(indices, minlength=n_items)
        if pop is None:
            raise ValueError("candidates='popular' needs item popularity: pass exclude= (the "
                             "training interactions) or train with a NegativeSampler")
        pop = np.asarray(pop, np.float64).ravel()[:n_items]
        pop = np.concatenate([pop, np.zeros(n_items - pop.size)])
    elif not hasattr(candidates, "inputs") or not hasattr(candidates, "recommend"):
        raise TypeError(f"candidates must be a model or 'popular', got "
                        f"{type(candidates).__name__}")
    else:
        ni = _vectors(_dot_build(candidates, "candidates"), np.empty(0, np.int64),
                      "candidates")[1].shape[0]
        if ni != n_items:
            raise ValueError(f"candidates: the retriever has {ni} items, the model {n_items}; "
                             "both must share the item ids")
    dead = np.zeros(n_items, bool)
    if retired is not None:
        dead[retired] = True
    out = np.empty((users.size, k), np.int64)
    per = max(1, (1 << 20) // nc)  # pairs per block: bounded memory
    for s in range(0, users.size, per):
        u = users[s:s + per]
        rw = None if rows is None else rows[s:s + per]
        if pop is not None:
            props = _popular(pop, u.size, nc, indptr, indices, rw, dead)
        else:
            props = _dot_topk(candidates, u, nc, indptr, indices, rw, retired, "candidates")
        props = np.sort(props, axis=1)  # ties: the lower id first (-1 padding in front)
        fused = pair_scores.topk(np.arange(s, s + u.size), props, k)
        if fused is not None:  # NeuMF / MLP: each user's candidates re-ranked in C
            out[s:s + per] = fused
            continue
        scores = np.full(props.shape, np.nan, np.float32)  # NaN (padding) never enters
        r, c = np.nonzero(props >= 0)
        scores[r, c] = pair_scores(s + r, props[r, c])
        bi, _ = rank_core().topk_rows(scores, k, n_threads=num_threads())
        out[s:s + per] = np.where(bi >= 0, np.take_along_axis(props, np.maximum(bi, 0), axis=1),
                                  -1)
    return out
