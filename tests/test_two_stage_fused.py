"""Two-stage re-ranking in the fused NCF scorer (``NcfParts.topk_per_user``,
``_core.ncf_topk_per_user``, ``nr_ncf_topk_per_user`` in ``csrc/src/score_ncf.c``).

Each user brings its own candidates (a row of item ids, ascending, ``-1`` padding anywhere).
The oracle is the generic path: the compiled plan's scores of every pair
(``score_items`` on the hoisted scoring model), ranked in NumPy by score then id over the
user's candidates minus its exclusions; and the fused scorer's own exhaustive mode with the
row as the candidate set. Then ``recommend(candidates=)`` with the fused scorer against the
same call with it off, at every SIMD level this CPU runs, and the argument checks.
"""
import numpy as np
import pytest

import test_fused_scorer as fs
from neurec import _core
from neurec.data import InteractionMatrix
from neurec.layers import Embedding
from neurec.models import GMF, MF, _fused
from neurec.models.recommend import score_items
from test_fused_scorer import NI, NU, SHAPES, _case, _ncf, _parts, _randomise

level, generic = fs.level, fs.generic  # the fixtures: every SIMD level; the fused scorer off


def _candidates(seed, n_cand, users=NU, n_items=NI, pad=0.2):
    """Random per-user candidates: distinct ids per row, sorted, some rows padded with -1."""
    rng = np.random.default_rng(seed)
    rows = np.stack([rng.choice(n_items, n_cand, replace=False) for _ in range(users)])
    rows[rng.random(rows.shape) < pad] = -1
    rows[1] = -1                      # a user without any candidate
    return np.sort(rows, axis=1)


def _exclusions(seed, n_items=NI, users=NU):
    rng = np.random.default_rng(seed)
    mask = rng.random((users, n_items)) < 0.2
    mask[4] = True                    # has seen everything: every entry is padding
    u, i = np.nonzero(mask)
    m = InteractionMatrix.from_arrays(u, i, shape=(users, n_items))
    return np.asarray(m.indptr, np.int64), np.asarray(m.indices, np.int32), mask


def _reference(P, users, cands, k, mask=None):
    """The generic ranking: each row's candidates minus exclusions, by score then id."""
    ids = np.full((users.size, k), -1, np.int64)
    scores = np.full((users.size, k), -np.inf, np.float32)
    for q, u in enumerate(users):
        row = cands[q][cands[q] >= 0]
        if mask is not None:
            row = row[~mask[u, row]]
        s = P[q, row]
        keep = ~np.isnan(s)
        row, s = row[keep], s[keep]
        order = np.lexsort((row, -s))[:k]
        ids[q, :order.size], scores[q, :order.size] = row[order], s[order]
    return ids, scores


@pytest.mark.parametrize("factors, layers, out, hidden", SHAPES)
@pytest.mark.parametrize("k, n_cand", [(1, 5), (10, 60), (40, 203)])
def test_per_user_scores_and_ranking_equal_the_generic_path(factors, layers, out, hidden, k,
                                                             n_cand, level):
    model = _case(factors, layers, out, hidden, seed=k + factors)
    fast, parts = _parts(model)
    assert parts is not None
    users = np.array([3, 0, 2, 5, 30, 7, 7, 4, 11, 19])
    cands = _candidates(k, n_cand, users.size)
    indptr, indices, mask = _exclusions(k)
    P = score_items(fast, users)  # the plan's scores of every pair
    for excl in (False, True):
        kw = dict(indptr=indptr, indices=indices, rows=users) if excl else {}
        ids, scores = parts.topk_per_user(users, cands, k, **kw)
        want_ids, want_scores = _reference(P, users, cands, k, mask if excl else None)
        np.testing.assert_array_equal(ids, want_ids)
        np.testing.assert_allclose(scores, want_scores, rtol=0, atol=1e-5)
        np.testing.assert_array_equal(scores, want_scores)  # the same sums in the same order
        # and each row is the exhaustive mode with that row as the candidate set
        for q in (0, 3, 8):
            row = cands[q][cands[q] >= 0]
            if excl:
                row = row[~mask[users[q], row]]
            if row.size:
                one = parts.topk(users[q:q + 1], k, items=row)
                np.testing.assert_array_equal(one[0], ids[q:q + 1])
                np.testing.assert_array_equal(one[1], scores[q:q + 1])
    assert (ids[1] == -1).all() and np.isneginf(scores[1]).all()


def test_more_candidates_than_a_block_and_padding_anywhere(level):
    """Rows longer than the scorer's item block (256), and -1 entries between the ids."""
    big = 700
    fast, parts = _parts(_randomise(_ncf(NU, big, 8, (32, 16, 8)), seed=5))
    users = np.arange(NU)
    rng = np.random.default_rng(1)
    cands = np.sort(np.stack([rng.choice(big, 600, replace=False) for _ in users]), axis=1)
    holes = cands.copy()
    holes[rng.random(holes.shape) < 0.3] = -1  # not sorted any more: padding in the middle
    P = score_items(fast, users)
    for c in (cands, holes):
        ids, scores = parts.topk_per_user(users, c, 50)
        want = _reference(P, users, c, 50)
        np.testing.assert_array_equal(ids, want[0])
        np.testing.assert_array_equal(scores, want[1])


def test_equal_items_tie_by_the_lower_id(level):
    model = _case(8, (32, 16, 8), "sigmoid", "relu", seed=11)
    for layer in model.layers:
        if isinstance(layer, Embedding) and layer.input_dim == NI:
            layer.embeddings[100:] = layer.embeddings[17]  # items 17 and 100.. are one item
    fast, parts = _parts(model)
    users = np.arange(NU)
    cands = np.tile(np.r_[17, np.arange(100, 160)], (NU, 1))
    ids, scores = parts.topk_per_user(users, cands, 30)
    np.testing.assert_array_equal(ids, np.tile(np.r_[17, np.arange(100, 129)], (NU, 1)))
    assert (scores == scores[:, :1]).all()


def _models(factors, layers, out, hidden, seed):
    neumf = _case(factors, layers, out, hidden, seed=seed)
    mf = MF(NU, NI, factors=12)
    rng = np.random.default_rng(seed)
    for w in mf.weights:
        w[...] = rng.normal(size=w.shape) * 0.5
    return neumf, mf


@pytest.mark.parametrize("factors, layers, out, hidden", SHAPES)
@pytest.mark.parametrize("n_candidates", [20, 80, NI])
def test_recommend_candidates_equals_the_generic_path(factors, layers, out, hidden,
                                                       n_candidates, level, generic):
    neumf, mf = _models(factors, layers, out, hidden, seed=n_candidates)
    neumf.retire_items([0, 9, 150])
    users = np.array([3, 0, 2, 5, 30, 7, 7, 4])
    _, _, mask = _exclusions(n_candidates)
    ex = InteractionMatrix.from_arrays(*np.nonzero(mask), shape=(NU, NI))
    for retriever in (mf, "popular"):
        call = dict(k=10, exclude=ex, candidates=retriever, n_candidates=n_candidates)
        got = neumf.recommend(users, **call)
        want = generic(lambda: neumf.recommend(users, **call))  # noqa: B023
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
    full = neumf.recommend(users, k=10, exclude=ex)
    if n_candidates == NI:  # the whole catalogue: the exhaustive answer
        np.testing.assert_array_equal(got[0], full[0])
        np.testing.assert_array_equal(got[1], full[1])


def test_recommend_candidates_takes_the_fused_scorer_when_it_can(monkeypatch):
    calls = []
    real = _core.ncf_topk_per_user

    def spy(*args, **kwargs):
        calls.append(args[1].size)
        return real(*args, **kwargs)

    monkeypatch.setattr(_core, "ncf_topk_per_user", spy)
    neumf, mf = _models(8, (32, 16, 8), "sigmoid", "relu", seed=3)
    users = np.arange(NU)
    neumf.recommend(users, k=5, candidates=mf, n_candidates=30)
    assert sum(calls) == NU
    calls.clear()
    gmf = GMF(NU, NI, factors=6)  # Dense(1) over a product: the fused scorer's shape too
    gmf.recommend(users, k=5, candidates=mf, n_candidates=30)
    assert sum(calls) == NU
    calls.clear()
    MF(NU, NI, factors=6).recommend(users, k=5, candidates=mf, n_candidates=30)
    assert not calls  # not that shape: the plan scores the pairs
    monkeypatch.setattr(_fused, "ENABLED", False)
    neumf.recommend(users, k=5, candidates=mf, n_candidates=30)
    assert not calls


def test_bad_arguments_raise_naming_them():
    model = _case(8, (32, 16, 8), "sigmoid", "relu", seed=1)
    _, parts = _parts(model)
    desc = parts._desc
    users = np.array([0, 1, 2])
    good = np.array([[1, 5, 9], [-1, 2, 3], [-1, -1, -1]], np.int64)

    def call(items=good, k=2, u=users, out=None, **kw):
        n = u.size
        oid, osc = out or (np.empty((n, k), np.int64), np.empty((n, k), np.float32))
        _core.ncf_topk_per_user(desc, u, items, k, oid, osc, **kw)
        return oid, osc

    oid, _ = call()
    assert oid[2].tolist() == [-1, -1]
    with pytest.raises(TypeError, match="items"):
        call(items=good.astype(np.int32))
    with pytest.raises(ValueError, match="items"):
        call(items=good.ravel())
    with pytest.raises(ValueError, match="items has 2 rows"):
        call(items=good[:2])
    with pytest.raises(IndexError, match=r"items\[0, 2\] = 203"):
        call(items=np.array([[1, 5, NI], [0, 1, 2], [0, 1, 2]]))
    with pytest.raises(IndexError, match="items"):
        call(items=np.array([[1, 5, -2], [0, 1, 2], [0, 1, 2]]))
    with pytest.raises(ValueError, match=r"items\[1\] must hold distinct item ids in ascending"):
        call(items=np.array([[1, 5, 9], [4, -1, 2], [0, 1, 2]]))
    with pytest.raises(ValueError, match="ascending"):
        call(items=np.array([[1, 5, 5], [0, 1, 2], [0, 1, 2]]))
    with pytest.raises(IndexError, match="users"):
        call(u=np.array([0, 1, NU]))
    with pytest.raises(ValueError, match="k must be >= 1"):
        call(k=0, out=(np.empty((3, 1), np.int64), np.empty((3, 1), np.float32)))
    with pytest.raises(ValueError, match="out_ids"):
        call(out=(np.empty((3, 3), np.int64), np.empty((3, 2), np.float32)))
    with pytest.raises(TypeError, match="out_scores"):
        call(out=(np.empty((3, 2), np.int64), np.empty((3, 2), np.float64)))
    indptr = np.array([0, 2, 2, 3], np.int64)
    indices = np.array([5, 9, 2], np.int32)
    rows = np.array([0, 1, -1], np.int64)
    oid, _ = call(indptr=indptr, indices=indices, rows=rows)
    assert oid[0].tolist() == [1, -1]  # 5 and 9 excluded
    with pytest.raises(ValueError, match="go together"):
        call(indptr=indptr, indices=indices)
    with pytest.raises(IndexError, match=r"rows\[1\] = 3"):
        call(indptr=indptr, indices=indices, rows=np.array([0, 3, -1]))
    with pytest.raises(ValueError, match="indices must be ascending"):
        call(indptr=indptr, indices=np.array([9, 5, 2], np.int32), rows=rows)
    with pytest.raises(ValueError, match="non-decreasing"):
        call(indptr=np.array([0, 2, 1, 3]), indices=indices, rows=rows)
    with pytest.raises(ValueError, match="rows"):
        parts.topk_per_user(users, good[:1], 2)
