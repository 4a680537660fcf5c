"""Two-stage recommend: a cheap retriever proposes candidates, the model re-ranks them."""
import numpy as np
import pytest

from neurec.models import GMF, MF, NeuMF

NU, NI = 150, 900


def _random(model, seed, scale=0.4):
    rng = np.random.default_rng(seed)
    for w in model.weights:
        w[...] = rng.normal(size=w.shape) * scale
    return model


@pytest.fixture
def models():
    neumf = _random(NeuMF(NU, NI, factors=8, layers=(32, 16, 8)), 0)
    mf = _random(MF(NU, NI, factors=16), 1)
    rng = np.random.default_rng(2)
    ex = (rng.integers(0, NU, 4000), rng.integers(0, NI, 4000))
    return neumf, mf, ex


@pytest.mark.parametrize("retriever", ["mf", "popular", "mf+hnsw"])
def test_two_stage_equals_exhaustive_with_the_whole_catalogue(models, retriever):
    neumf, mf, ex = models
    if retriever == "mf+hnsw":
        pytest.importorskip("faiss")
        mf.build_index("hnsw")
    cands = "popular" if retriever == "popular" else mf
    neumf.retire_items([4, 8, 15])
    users = np.arange(NU)
    want = neumf.recommend(users, k=10, exclude=ex, verbose=0)
    got = neumf.recommend(users, k=10, exclude=ex, candidates=cands, n_candidates=NI, verbose=0)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


def test_two_stage_on_a_generic_model(models):
    _, mf, ex = models
    gmf = _random(GMF(NU, NI, factors=6), 3)  # a dot product: re-ranked as pairs as well
    users = np.arange(0, NU, 3)
    want = gmf.recommend(users, k=5, exclude=ex, verbose=0)
    got = gmf.recommend(users, k=5, exclude=ex, candidates=mf, n_candidates=NI, verbose=0)
    np.testing.assert_array_equal(got[0], want[0])


def test_results_come_from_the_candidates_and_honour_exclusions(models):
    neumf, mf, ex = models
    neumf.retire_items([3, 5, 7])  # the model's retired items bind the retriever
    users = np.arange(NU)
    props = mf.recommend(users, k=53, exclude=ex, verbose=0)[0]
    props = np.array([[i for i in row if i not in (3, 5, 7)][:50] for row in props])
    got, scores = neumf.recommend(users, k=10, exclude=ex, candidates=mf, n_candidates=50,
                                  verbose=0)
    seen = set(zip(*ex))
    for u in users:
        assert set(got[u]) <= set(props[u])
        assert not any((u, i) in seen for i in got[u])
    assert not np.isin(got, [3, 5, 7]).any()
    # best first, by the model's own scores of the candidates
    full = neumf.score_items(users)
    np.testing.assert_allclose(scores, full[users[:, None], got], rtol=1e-6)
    masked = np.full_like(full, -np.inf)
    for u in users:
        masked[u, props[u]] = full[u, props[u]]
    assert (np.sort(masked, axis=1)[:, ::-1][:, :10] == scores).all()


def test_popular_candidates_skip_each_users_seen_items(models):
    neumf, _, _ = models
    pop_items = np.repeat(np.arange(40), 40 - np.arange(40))  # item j: 40 - j interactions
    ex = (np.zeros(pop_items.size, np.int64), pop_items)  # all by user 0
    got = neumf.recommend([0, 1], k=5, exclude=ex, candidates="popular", n_candidates=10,
                          verbose=0)[0]
    assert set(got[0]) <= set(range(40, NI)) and set(got[1]) <= set(range(10))


def test_bad_arguments_raise_naming_them(models):
    neumf, mf, ex = models
    call = dict(k=10, exclude=ex, verbose=0)
    with pytest.raises(ValueError, match="n_candidates"):
        neumf.recommend([0], candidates=mf, n_candidates=5, **call)
    with pytest.raises(ValueError, match="n_candidates"):
        neumf.recommend([0], candidates=mf, n_candidates="200", **call)
    with pytest.raises(ValueError, match="candidates must be"):
        neumf.recommend([0], candidates="random", **call)
    with pytest.raises(TypeError, match="candidates must be"):
        neumf.recommend([0], candidates=3, **call)
    with pytest.raises(ValueError, match="candidates needs a dot-product model"):
        neumf.recommend([0], candidates=neumf, **call)
    with pytest.raises(ValueError, match="candidates: the retriever has"):
        neumf.recommend([0], candidates=MF(NU, NI + 1, factors=4), **call)
    with pytest.raises(ValueError, match="items="):
        neumf.recommend([0], candidates=mf, items=[1, 2, 3], **call)
    with pytest.raises(ValueError, match="popularity"):
        neumf.recommend([0], k=5, exclude=False, candidates="popular", verbose=0)
    with pytest.raises(ValueError, match="not both"):
        neumf.recommend([0], candidates=mf, index=mf.build_index("exact"), **call)


@pytest.mark.parametrize("nc", [1, 7, 60, 200])
def test_popular_candidates_equal_a_brute_force(nc):
    """``_popular``: each user's nc most popular live items it has not seen, most popular
    first (ties by the lower id), -1 padded; users without exclusions, users who have seen
    everything, fewer live items than nc."""
    from neurec.evaluation.ranking import _to_csr
    from neurec.models._retrieval import _popular

    rng = np.random.default_rng(nc)
    n_users, n_items = 40, 90
    pop = rng.integers(0, 6, n_items).astype(np.float64)  # many ties
    dead = rng.random(n_items) < 0.15
    mask = rng.random((n_users, n_items)) < rng.random((n_users, 1))
    mask[3] = True
    mask[4] = False
    indptr, indices, _ = _to_csr(np.nonzero(mask), "exclude", n_rows=n_users, n_cols=n_items)
    rows = rng.permutation(n_users)
    got = _popular(pop, n_users, nc, indptr, indices, rows, dead)
    order = sorted(range(n_items), key=lambda i: (-pop[i], i))
    for q, u in enumerate(rows):
        want = [i for i in order if not dead[i] and not mask[u, i]][:nc]
        assert got[q].tolist() == want + [-1] * (nc - len(want))
    free = _popular(pop, 3, nc, None, None, None, dead)
    want = [i for i in order if not dead[i]][:nc]
    assert (free == want + [-1] * (nc - len(want))).all()
