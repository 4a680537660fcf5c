"""Top-K selection (C) against a brute-force NumPy sort, and PopularityModel."""
import numpy as np
import pytest

from neurec import _core
from neurec.evaluation import PopularityModel, top_k


def brute_topk(scores, k, excluded_rows=None):
    """Sort every row by (-score, id), dropping NaN and excluded ids; pad."""
    scores = np.atleast_2d(np.asarray(scores, np.float32))
    n_rows, n_cols = scores.shape
    ids = np.full((n_rows, k), -1, np.int64)
    out = np.full((n_rows, k), -np.inf, np.float32)
    for r in range(n_rows):
        keep = ~np.isnan(scores[r])
        if excluded_rows is not None:
            keep[np.asarray(excluded_rows[r], dtype=np.int64)] = False
        cand = np.flatnonzero(keep)
        order = cand[np.lexsort((cand, -scores[r, cand]))][:k]
        ids[r, :order.size] = order
        out[r, :order.size] = scores[r, order]
    return ids, out


def random_case(rng, n_rows, n_cols, nan_rate=0.05):
    scores = np.round(rng.standard_normal((n_rows, n_cols)), 1).astype(np.float32)
    scores[rng.random(scores.shape) < nan_rate] = np.nan
    scores[rng.random(scores.shape) < 0.01] = -np.inf
    users = rng.integers(0, n_rows, n_rows)
    ex_u = rng.integers(0, n_rows, n_rows * 5)
    ex_i = rng.integers(0, n_cols, n_rows * 5)
    excluded = [np.unique(ex_i[ex_u == u]) for u in range(n_rows)]
    return scores, users, (ex_u, ex_i), excluded


@pytest.mark.parametrize("k", [1, 5, 37, 64, 100])
def test_topk_matches_brute_force_with_exclusions_ties_nan(k):
    rng = np.random.default_rng(k)
    scores, users, pairs, excluded = random_case(rng, 70, 64)
    ids, got = top_k(scores, k, exclude=pairs, users=users)
    want_ids, want = brute_topk(scores, k, [excluded[u] for u in users])
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_array_equal(got, want)
    assert ids.dtype == np.int64 and got.dtype == np.float32 and ids.shape == (70, k)


def test_topk_without_exclusion_and_threads_agree():
    rng = np.random.default_rng(1)
    scores = np.round(rng.random((400, 1000)), 2).astype(np.float32)  # many ties
    one = _core.topk_rows(scores, 20, n_threads=1)
    two = _core.topk_rows(scores, 20, n_threads=2)
    want_ids, want = brute_topk(scores, 20)
    for ids, got in (one, two):
        np.testing.assert_array_equal(ids, want_ids)
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("k", [10, 16, 200, 1500, 9000])
def test_score_topk_matches_brute_force_at_every_k(k):
    """The dot scorer's selection: a heap for small k, the buffered top-K (nr_topkb) from
    k = 16 on (users in groups at k = 9000); exact ties, NaN, -0 and +0, exclusions."""
    import neurec

    rng = np.random.default_rng(k)
    nu, ni, d = 60, 1300, 4
    uv = rng.integers(-2, 3, (nu, d)).astype(np.float32)  # few distinct scores: ties
    iv = rng.integers(-2, 3, (ni, d)).astype(np.float32)
    bias = rng.integers(-1, 2, ni).astype(np.float32)
    bias[[3, 700]] = np.nan
    uv[5] = 0.0
    bias[rng.random(ni) < 0.2] = -0.0  # user 5 scores -0 and +0 alike
    mask = rng.random((nu, ni)) < 0.25
    mask[7] = True
    indptr = np.r_[0, np.cumsum(mask.sum(axis=1))].astype(np.int64)
    indices = np.nonzero(mask)[1].astype(np.int32)
    rows = np.arange(nu, dtype=np.int64)
    rows[::9] = -1  # no exclusions for these users
    scores = uv @ iv.T + bias
    want = brute_topk(scores, k, [mask[u].nonzero()[0] if rows[u] >= 0 else [] for u in range(nu)])
    old = neurec.get_num_threads()
    try:
        for threads in (1, 2):
            neurec.set_num_threads(threads)
            ids = np.empty((nu, k), np.int64)
            got = np.empty((nu, k), np.float32)
            _core.score_topk(uv, iv, bias, k, indptr, indices, rows, ids, got)
            np.testing.assert_array_equal(ids, want[0])
            np.testing.assert_array_equal(got, want[1])  # -0 == +0
            # any_order: the same entries in some order, the padding last
            _core.score_topk(uv, iv, bias, k, indptr, indices, rows, ids, got, any_order=True)
            real = want[0] >= 0
            np.testing.assert_array_equal(ids >= 0, real)
            order = np.lexsort((ids, -got), axis=1)
            np.testing.assert_array_equal(np.take_along_axis(ids, order, axis=1), want[0])
            np.testing.assert_array_equal(np.take_along_axis(got, order, axis=1), want[1])
    finally:
        neurec.set_num_threads(old)


def test_topk_pads_when_k_exceeds_candidates():
    ids, scores = top_k([[np.nan, 1.0, 3.0, 2.0]], 6, exclude=(np.array([0]), np.array([3])))
    np.testing.assert_array_equal(ids, [[2, 1, -1, -1, -1, -1]])
    assert scores[0, 0] == 3.0 and scores[0, 1] == 1.0
    assert np.all(np.isneginf(scores[0, 2:]))


def test_topk_shared_row_for_many_users():
    row = np.array([0.3, 0.9, 0.9, 0.1], np.float32)
    ids, _ = top_k(row, 2, exclude=(np.array([1, 1]), np.array([1, 2])), users=[0, 1, 2])
    np.testing.assert_array_equal(ids, [[1, 2], [0, 3], [1, 2]])


def test_topk_accepts_scipy_and_interaction_matrix():
    sp = pytest.importorskip("scipy.sparse")
    rng = np.random.default_rng(3)
    scores, users, (eu, ei), excluded = random_case(rng, 30, 40)
    want = brute_topk(scores, 7, [excluded[u] for u in users])[0]
    m = sp.coo_matrix((np.ones(eu.size), (eu, ei)), shape=(30, 40))  # has duplicates
    np.testing.assert_array_equal(top_k(scores, 7, exclude=m, users=users)[0], want)
    data = pytest.importorskip("neurec.data")
    im = data.InteractionMatrix.from_arrays(eu, ei, shape=(30, 40))
    np.testing.assert_array_equal(top_k(scores, 7, exclude=im, users=users)[0], want)


def test_topk_input_not_modified():
    rng = np.random.default_rng(0)
    scores = rng.random((5, 9)).astype(np.float32)
    before = scores.copy()
    top_k(scores, 3, exclude=(np.array([0, 1]), np.array([2, 3])))
    np.testing.assert_array_equal(scores, before)


def test_topk_bad_input_is_named():
    s = np.zeros((3, 4), np.float32)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        top_k(s, 0)
    with pytest.raises(ValueError, match="users has 2 entries but scores has 3 rows"):
        top_k(s, 2, users=[0, 1])
    with pytest.raises(TypeError, match="exclude must be"):
        top_k(s, 2, exclude={0: [1]})
    with pytest.raises(TypeError, match="scores must have dtype float32"):
        _core.topk_rows(s.astype(np.float64), 2)
    with pytest.raises(ValueError, match="scores must be C-contiguous"):
        _core.topk_rows(np.zeros((4, 3), np.float32).T, 2)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        _core.topk_rows(s, -1)
    indptr = np.array([0, 1, 2], np.int64)
    indices = np.array([0, 1], np.int32)
    with pytest.raises(ValueError, match="indptr and indices must be given together"):
        _core.topk_rows(s, 2, indptr=indptr)
    with pytest.raises(IndexError, match=r"row_users\[1\] = 5 is outside"):
        _core.topk_rows(s, 2, indptr=indptr, indices=indices,
                        row_users=np.array([0, 5, 1], np.int64))
    with pytest.raises(ValueError, match="pass row_users"):
        _core.topk_rows(s, 2, indptr=indptr, indices=indices)
    with pytest.raises(ValueError, match="indptr must be non-decreasing"):
        _core.topk_rows(s, 2, indptr=np.array([0, 2, 1, 2], np.int64), indices=indices)
    with pytest.raises(TypeError, match="indices must have dtype int32"):
        _core.topk_rows(s, 2, indptr=indptr, indices=indices.astype(np.int64),
                        row_users=np.zeros(3, np.int64))


# ------------------------------------------------------------ PopularityModel
def test_popularity_model_fit_predict_recommend():
    users = np.array([0, 0, 1, 1, 2, 2, 2, 3])
    items = np.array([1, 2, 2, 2, 2, 3, 1, 4])  # (1, 2) repeated: counted once
    pop = PopularityModel().fit((users, items), n_items=6)
    np.testing.assert_array_equal(pop.popularity_, [0, 2, 3, 1, 1, 0])
    p = pop.predict([np.array([0, 5]), np.array([2, 5])], batch_size=10, verbose=0)
    assert p.shape == (2, 1) and p.dtype == np.float32
    np.testing.assert_array_equal(p[:, 0], [3, 0])
    ids, scores = pop.recommend([0, 3, 4], k=3, exclude=(users, items))
    # popularity order 2, 1, 3, 4 (3 and 4 tie: lower id first), 0, 5
    np.testing.assert_array_equal(ids, [[3, 4, 0], [2, 1, 3], [2, 1, 3]])
    np.testing.assert_array_equal(scores[0], [1, 1, 0])


def test_popularity_model_errors():
    with pytest.raises(RuntimeError, match="not fitted"):
        PopularityModel().recommend([0])
    pop = PopularityModel().fit((np.array([0]), np.array([1])))
    with pytest.raises(ValueError, match="outside the catalog"):
        pop.predict([np.array([0]), np.array([7])])
    with pytest.raises(ValueError, match="same length"):
        pop.predict([np.array([0, 1]), np.array([1])])
    with pytest.raises(TypeError, match="integer ids"):
        pop.recommend([0.5])
