"""``Model.recommend`` and ``Model.score_items`` against brute force.

The oracle: ``model.predict`` over every (user, item) pair, excluded items
dropped, sorted by descending score with ties broken by the lower item id,
padded with ``-1`` / ``-inf``. Checked for the dot-product fast path (MF, GMF,
Keras ``Dot`` graphs) and the generic path (NeuMF, MLP, hybrid models with
side features), for every form of ``exclude``, candidate subsets, cold start
and raw-id encoders.
"""
import numpy as np
import pytest

import neurec
from neurec.data import IdEncoder, InteractionMatrix, NegativeSampler
from neurec.layers import Add, Concatenate, Dense, Dot, Embedding, Flatten, Input, Multiply
from neurec.models import GMF, MF, MLP, Model, NeuMF, load_model
from neurec.models import recommend as recommend_mod
from neurec.models._foldin import scratch_model
from neurec.models.recommend import dot_structure

NU, NI = 25, 40


def _randomise(model, scale=0.7, seed=0):
    """Weights spread enough that scores are distinct and not saturated."""
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0, scale, w.shape).astype(np.float32)
                       for w in model.get_weights()])
    return model


BUILDERS = {
    "mf": lambda: MF(NU, NI, factors=6),
    "gmf": lambda: GMF(NU, NI, factors=6),
    "neumf": lambda: NeuMF(NU, NI, factors=4, layers=(16, 8)),
    "mlp": lambda: MLP(NU, NI, layers=(16, 8)),
}
FAST = {"mf": True, "gmf": True, "neumf": False, "mlp": False}


def _model(name, seed=0):
    return _randomise(BUILDERS[name](), seed=seed)


def _uses_fast_path(model):
    return dot_structure(model, model.inputs[0], model.inputs[1]) is not None


def _all_scores(model, users, n_items, extra=None):
    """``model.predict`` of every (user, item) pair: shape (len(users), n_items)."""
    u = np.repeat(users, n_items)
    i = np.tile(np.arange(n_items), users.size)
    x = [u, i] + ([] if extra is None else extra(u, i))
    return model.predict(x, verbose=0).reshape(users.size, n_items)


def _brute(P, k, excluded=None, cand=None):
    """Top-k of each row of P: descending score, ties by lower id, -1/-inf padding."""
    n_u, n_i = P.shape
    allowed = np.ones((n_u, n_i), bool)
    if excluded is not None:
        allowed &= ~excluded
    if cand is not None:
        allowed &= np.isin(np.arange(n_i), cand)
    kk = min(k, n_i if cand is None else np.unique(cand).size)
    ids = np.full((n_u, kk), -1, np.int64)
    sc = np.full((n_u, kk), -np.inf, np.float32)
    for r in range(n_u):
        it = np.flatnonzero(allowed[r])
        it = it[np.lexsort((it, -P[r, it]))][:kk]
        ids[r, :it.size] = it
        sc[r, :it.size] = P[r, it]
    return ids, sc


def _exclusions(seed=1, density=0.3, full_user=3, empty_user=4):
    rng = np.random.default_rng(seed)
    mask = rng.random((NU, NI)) < density
    mask[full_user] = True          # has seen every item
    mask[empty_user] = False        # has seen nothing
    users, items = np.nonzero(mask)
    return mask, users, items


def _exclude_forms(users, items):
    forms = {"pair": (users, items),
             "matrix": InteractionMatrix.from_arrays(users, items, shape=(NU, NI))}
    try:
        import scipy.sparse as sp
        forms["scipy"] = sp.csr_matrix((np.ones(users.size), (users, items)), shape=(NU, NI))
    except ImportError:
        forms["scipy"] = None
    return forms


# ---------------------------------------------------------------- brute force
@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_fast_path_only_for_dot_product_models(name):
    assert _uses_fast_path(_model(name)) == FAST[name]


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_no_exclusion_equals_brute_force(name):
    m = _model(name)
    users = np.arange(NU)
    P = _all_scores(m, users, NI)
    if name != "mlp":                                       # ReLU can tie whole rows
        assert all(np.unique(row).size == NI for row in P)
    for k in (1, 10, NI):
        ids, sc = m.recommend(users, k=k)
        bi, bs = _brute(P, k)
        np.testing.assert_array_equal(ids, bi)
        np.testing.assert_array_equal(sc, bs)


@pytest.mark.parametrize("form", ["pair", "matrix", "scipy"])
@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_exclude_forms_equal_brute_force(name, form):
    mask, eu, ei = _exclusions()
    exclude = _exclude_forms(eu, ei)[form]
    if exclude is None:
        pytest.skip("scipy is not installed")
    m = _model(name, seed=2)
    users = np.array([0, 3, 4, 7, 7, 24, 11, 1])          # repeated and unsorted users
    P = _all_scores(m, users, NI)
    ids, sc = m.recommend(users, k=12, exclude=exclude)
    bi, bs = _brute(P, 12, mask[users])
    np.testing.assert_array_equal(ids, bi)
    np.testing.assert_array_equal(sc, bs)
    assert ids.dtype == np.int64 and sc.dtype == np.float32
    # user 3 has seen everything: a row of -1 / -inf
    assert np.all(ids[1] == -1) and np.all(np.isneginf(sc[1]))
    # none of the returned items was excluded
    ok = ids >= 0
    assert not mask[np.repeat(users, 12).reshape(ids.shape)[ok], ids[ok]].any()


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_exclude_for_only_some_users(name):
    # the exclusion matrix has fewer rows than the model has users
    m = _model(name, seed=3)
    eu, ei = np.array([0, 0, 2]), np.array([5, 6, 7])
    users = np.arange(NU)
    P = _all_scores(m, users, NI)
    mask = np.zeros((NU, NI), bool)
    mask[eu, ei] = True
    ids, sc = m.recommend(users, k=NI, exclude=InteractionMatrix.from_arrays(eu, ei, shape=(3, NI)))
    bi, bs = _brute(P, NI, mask)
    np.testing.assert_array_equal(ids, bi)
    np.testing.assert_array_equal(sc, bs)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_items_subset_equals_brute_force(name):
    mask, eu, ei = _exclusions(seed=4)
    m = _model(name, seed=4)
    users = np.arange(NU)
    cand = np.array([39, 2, 17, 2, 5, 30, 8, 11, 21])      # unsorted, with a duplicate
    P = _all_scores(m, users, NI)
    for exclude, excl_mask in ((None, None), ((eu, ei), mask)):
        for k in (3, 8, 50):
            ids, sc = m.recommend(users, k=k, items=cand, exclude=exclude)
            assert ids.shape == (NU, min(k, 8))
            bi, bs = _brute(P, k, excl_mask, cand)
            np.testing.assert_array_equal(ids, bi)
            np.testing.assert_array_equal(sc, bs)
            assert np.isin(ids[ids >= 0], cand).all()


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_k_larger_than_catalog(name):
    m = _model(name, seed=5)
    mask, eu, ei = _exclusions(seed=5)
    ids, sc = m.recommend(np.arange(NU), k=1000, exclude=(eu, ei))
    assert ids.shape == sc.shape == (NU, NI)
    unseen = (~mask).sum(axis=1)
    for r in range(NU):                               # padding after the unseen items
        assert np.all(ids[r, :unseen[r]] >= 0) and np.all(ids[r, unseen[r]:] == -1)
        assert np.all(np.isfinite(sc[r, :unseen[r]])) and np.all(np.isneginf(sc[r, unseen[r]:]))
    bi, bs = _brute(_all_scores(m, np.arange(NU), NI), 1000, mask)
    np.testing.assert_array_equal(ids, bi)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_ties_go_to_the_lower_item_id(name):
    m = _model(name, seed=6)
    for layer in m.layers:                             # items 5, 9 and 30 become copies of 2
        if isinstance(layer, Embedding) and "item" in layer.name:
            w = layer.embeddings
            w[[5, 9, 30]] = w[2]
    users = np.arange(NU)
    P = _all_scores(m, users, NI)
    assert np.all(P[:, 5] == P[:, 2]) and np.all(P[:, 30] == P[:, 2])
    ids, sc = m.recommend(users, k=NI)
    np.testing.assert_array_equal(ids, _brute(P, NI)[0])
    for r in range(NU):
        pos = [int(np.flatnonzero(ids[r] == j)[0]) for j in (2, 5, 9, 30)]
        assert pos == sorted(pos) and pos[-1] - pos[0] == 3   # adjacent, ascending ids


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_scores_are_the_models_predictions(name):
    m = _model(name, seed=7)
    users = np.array([1, 8, 8, 20])
    mask, eu, ei = _exclusions(seed=7)
    ids, sc = m.recommend(users, k=7, exclude=(eu, ei))
    ok = ids >= 0
    p = m.predict([np.repeat(users, 7).reshape(ids.shape)[ok], ids[ok]], verbose=0).ravel()
    np.testing.assert_array_equal(sc[ok], p)
    assert np.all(np.diff(sc, axis=1)[np.isfinite(sc[:, 1:])] <= 0)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_score_items_equals_predict(name):
    m = _model(name, seed=8)
    users = np.array([0, 5, 24, 5])
    np.testing.assert_array_equal(m.score_items(users), _all_scores(m, users, NI))
    sub = np.array([3, 1, 39])
    np.testing.assert_array_equal(m.score_items(users, items=sub),
                                  _all_scores(m, users, NI)[:, sub])


def test_fast_path_over_several_item_blocks_and_threads():
    # more items than one C block (1024), several users, one vs two threads
    nu, ni = 40, 2500
    m = _randomise(MF(nu, ni, factors=16), scale=0.5, seed=9)
    rng = np.random.default_rng(9)
    mask = rng.random((nu, ni)) < 0.2
    eu, ei = np.nonzero(mask)
    users = np.arange(nu)
    P = _all_scores(m, users, ni)
    old = neurec.get_num_threads()
    try:
        out = []
        for nt in (1, 2):
            neurec.set_num_threads(nt)
            out.append(m.recommend(users, k=50, exclude=(eu, ei)))
    finally:
        neurec.set_num_threads(old)
    bi, bs = _brute(P, 50, mask)
    for ids, sc in out:
        np.testing.assert_array_equal(ids, bi)
        np.testing.assert_array_equal(sc, bs)


def test_accepts_integer_valued_floats_and_lists():
    m = _model("mf", seed=10)
    a = m.recommend(np.array([1.0, 4.0]), k=5)
    b = m.recommend([1, 4], k=5)
    np.testing.assert_array_equal(a[0], b[0])


# ---------------------------------------------------------------- Keras-style dot graphs
def _dot_graph(kernel, bias=0.0, item_bias=False, act="sigmoid"):
    u = Input(shape=(1,), dtype="int64")
    i = Input(shape=(1,), dtype="int64")
    pu = Flatten()(Embedding(NU, 5)(u))
    qi = Flatten()(Embedding(NI, 5)(i))
    s = Dot(axes=1)([pu, qi])
    if item_bias:
        s = Add()([s, Flatten()(Embedding(NI, 1)(i))])
    d = Dense(1, activation=act)
    m = Model([u, i], d(s))
    rng = np.random.default_rng(11)
    for layer in m.layers:
        if isinstance(layer, Embedding):
            layer.embeddings[:] = rng.normal(0, 0.6, layer.embeddings.shape)
    d.set_weights([np.array([[kernel]], np.float32), np.array([bias], np.float32)])
    return m


@pytest.mark.parametrize("kernel", [1.5, -2.0])
@pytest.mark.parametrize("item_bias", [False, True])
def test_keras_dot_graph_fast_path(kernel, item_bias):
    m = _dot_graph(kernel, bias=0.3, item_bias=item_bias)
    assert _uses_fast_path(m)
    mask, eu, ei = _exclusions(seed=12)
    users = np.arange(NU)
    P = _all_scores(m, users, NI)
    ids, sc = m.recommend(users, k=15, exclude=(eu, ei))
    bi, bs = _brute(P, 15, mask)
    np.testing.assert_array_equal(ids, bi)
    np.testing.assert_array_equal(sc, bs)
    # the kernel's sign decides the direction of the ranking by raw dot product
    emb = [l for l in m.layers if isinstance(l, Embedding)]
    raw = emb[0].embeddings[users] @ emb[1].embeddings.T
    if item_bias:
        raw = raw + emb[2].embeddings[:, 0][None, :]
    best = np.argmax(np.where(mask, -np.inf, raw), axis=1)
    worst = np.argmin(np.where(mask, np.inf, raw), axis=1)
    has = ~mask.all(axis=1)
    np.testing.assert_array_equal(ids[has, 0], (best if kernel > 0 else worst)[has])


def test_keras_dot_graph_with_non_monotone_head_uses_generic_path():
    m = _dot_graph(1.0, act="relu")
    assert not _uses_fast_path(m)
    users = np.arange(NU)
    ids, sc = m.recommend(users, k=NI)
    P = _all_scores(m, users, NI)
    np.testing.assert_array_equal(ids, _brute(P, NI)[0])
    np.testing.assert_array_equal(sc, _brute(P, NI)[1])


def test_mf_with_negative_prediction_kernel_flips():
    m = _model("mf", seed=13)
    m.get_layer("prediction").set_weights([np.array([[-1.0]], np.float32), np.zeros(1, np.float32)])
    users = np.arange(NU)
    P = _all_scores(m, users, NI)
    ids, sc = m.recommend(users, k=10)
    np.testing.assert_array_equal(ids, _brute(P, 10)[0])


# ---------------------------------------------------------------- hybrid models
def _hybrid(nu=NU, ni=NI, n_cats=4):
    u = Input((1,), dtype="int64", name="user")
    i = Input((1,), dtype="int64", name="item")
    c = Input((1,), dtype="int64", name="category")
    p = Input((1,), name="price")
    a = Input((1,), name="age")
    pu = Flatten()(Embedding(nu, 4)(u))
    qi = Flatten()(Embedding(ni, 4)(i))
    ce = Flatten()(Embedding(n_cats, 3)(c))
    h = Concatenate()([Multiply()([pu, qi]), ce, p, a])
    h = Dense(6, activation="tanh")(h)
    return _randomise(Model([u, i, c, p, a], Dense(1, activation="sigmoid")(h)), scale=0.8,
                      seed=14)


def test_hybrid_model_with_side_features_equals_brute_force():
    rng = np.random.default_rng(15)
    cats = rng.integers(0, 4, NI)
    price = rng.random(NI).astype(np.float32) * 3
    age = rng.random(NU).astype(np.float32)
    m = _hybrid()
    mask, eu, ei = _exclusions(seed=15)
    users = np.array([0, 2, 3, 9, 9, 17])
    extra = lambda u, i: [cats[i], price[i], age[u]]   # noqa: E731
    P = _all_scores(m, users, NI, extra)
    kw = dict(item_features={"category": cats, "price": price}, user_features={"age": age})
    ids, sc = m.recommend(users, k=10, exclude=(eu, ei), **kw)
    bi, bs = _brute(P, 10, mask[users])
    np.testing.assert_array_equal(ids, bi)
    np.testing.assert_array_equal(sc, bs)
    np.testing.assert_array_equal(m.score_items(users, **kw), P)
    # price matters: changing it changes the ranking
    ids2, _ = m.recommend(users, k=10, exclude=(eu, ei),
                          item_features={"category": cats, "price": price[::-1].copy()},
                          user_features={"age": age})
    assert not np.array_equal(ids, ids2)


def test_hybrid_model_missing_feature_raises():
    m = _hybrid()
    with pytest.raises(ValueError, match="'age'.*user_features="):
        m.recommend([0], k=3, item_features={"category": np.zeros(NI, int), "price": np.ones(NI)})


def test_hybrid_feature_array_too_short_raises_value_error():
    m = _hybrid()
    with pytest.raises(ValueError, match="category"):
        m.recommend([0], k=3, item_features={"category": np.zeros(NI - 5, int),
                                             "price": np.ones(NI)},
                    user_features={"age": np.ones(NU)})


# ---------------------------------------------------------------- cold start
def _trained_mf():
    rng = np.random.default_rng(16)
    p = 1.0 / np.arange(1, NI + 1)
    users = np.repeat(np.arange(NU), 6)
    items = rng.choice(NI, users.size, p=p / p.sum())
    matrix = InteractionMatrix.from_arrays(users, items, shape=(NU, NI), dedupe="max")
    m = MF(NU, NI, factors=4)
    m.compile(optimizer="adam", loss="binary_crossentropy")
    m.fit(NegativeSampler(matrix, num_negatives=2, seed=0), epochs=1, batch_size=64, verbose=0,
          seed=0)
    return m, matrix


def test_unknown_users_raise_naming_them():
    m = _model("gmf")
    with pytest.raises(ValueError, match=r"unknown users \[25, -1\]"):
        m.recommend([0, 25, 3, -1], k=3)


def _average_user_scores(model, items):
    """The C ``predict`` of a fold-in scratch model whose one user row is every user
    table's mean row (``fold_in(init='mean')`` before training): the average user."""
    scratch, _ = scratch_model(model, model.inputs[0], 1, "mean", 0)
    items = np.asarray(items)
    return scratch.predict([np.zeros(items.size, np.int64), items], verbose=0)[:, 0]


def _popular_then_by_score(model, pool):
    """``pool`` (most popular first) reordered by the average user's score, ties by pool
    order; and those scores."""
    sc = _average_user_scores(model, pool)
    order = np.argsort(-sc, kind="stable")
    return pool[order], sc[order]


def test_unknown_users_get_popular_items(tmp_path):
    m, matrix = _trained_mf()
    counts = matrix.item_counts()
    pop_order = np.lexsort((np.arange(NI), -counts))[:5]
    users = np.array([2, NU, 7, NU + 40, -3])
    ids, sc = m.recommend(users, k=5, unknown="popular")
    want_ids, want_sc = _popular_then_by_score(m, pop_order)
    for r in (1, 3, 4):
        assert set(ids[r]) == set(pop_order)                    # the 5 most popular items
        np.testing.assert_array_equal(ids[r], want_ids)         # best first for the model
        np.testing.assert_allclose(sc[r], want_sc, rtol=1e-5, atol=1e-7)
    known, known_sc = m.recommend([2, 7], k=5)
    np.testing.assert_array_equal(ids[[0, 2]], known)
    np.testing.assert_array_equal(sc[[0, 2]], known_sc)
    # with a candidate subset the popular items come from it
    cand = np.array([1, 3, 30, 31, 32, 33])
    ids_c, sc_c = m.recommend([NU], k=3, items=cand, unknown="popular")
    pool = cand[np.lexsort((cand, -counts[cand]))][:3]
    np.testing.assert_array_equal(ids_c[0], _popular_then_by_score(m, pool)[0])
    # a loaded model knows no popularity: taken from exclude, or an error
    m.save(tmp_path / "mf.neurec")
    m2 = load_model(tmp_path / "mf.neurec")
    with pytest.raises(ValueError, match="popular"):
        m2.recommend([NU], k=5, unknown="popular")
    ids2, _ = m2.recommend([NU], k=5, unknown="popular", exclude=matrix)
    np.testing.assert_array_equal(ids2[0], want_ids)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_unknown_user_scores_are_on_the_models_scale(name):
    """Regression: unknown users got popularity counts as scores (e.g. 17.0 beside
    probabilities); they get the model's output for the average user."""
    m = _model(name, seed=21)
    rng = np.random.default_rng(3)
    counts = (rng.zipf(1.6, NI) * 3).astype(np.float32)       # counts far above 1
    ids, sc = recommend_mod.recommend(m, [NU + 1, 0, -1], k=6, unknown="popular",
                                      item_popularity=counts)
    assert np.all((sc >= 0) & (sc <= 1))                       # sigmoid outputs, every row
    assert np.all((sc[[0, 2]] > 0) & (sc[[0, 2]] < 1))        # not counts (all >= 3)
    for r in (0, 2):
        assert set(ids[r]) == set(np.lexsort((np.arange(NI), -counts))[:6])
        assert np.all(np.diff(sc[r]) <= 0)                     # best first, as known users
        np.testing.assert_allclose(sc[r], _average_user_scores(m, ids[r]), rtol=1e-5,
                                   atol=1e-7)
    np.testing.assert_array_equal(ids[1], m.recommend([0], k=6)[0][0])


def test_unknown_users_of_a_hybrid_model_use_the_mean_features():
    m = _hybrid()
    rng = np.random.default_rng(2)
    cats = rng.integers(0, 4, NI)
    price = rng.random(NI).astype(np.float32) * 3
    age = rng.random(NU).astype(np.float32)
    counts = np.arange(NI, dtype=np.float32)
    kw = dict(item_features={"category": cats, "price": price}, user_features={"age": age},
              item_popularity=counts)
    ids, sc = recommend_mod.recommend(m, [NU + 2], k=4, unknown="popular", **kw)
    assert set(ids[0]) == set(range(NI - 4, NI))
    # oracle: the mean user row (a fold-in's start) with the mean age, through C predict
    scratch, _ = scratch_model(m, m.inputs[0], 1, "mean", 0)
    i = ids[0]
    x = [np.zeros(4, np.int64), i, cats[i], price[i], np.full(4, age.mean(), np.float32)]
    np.testing.assert_allclose(sc[0], scratch.predict(x, verbose=0)[:, 0], rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="age"):
        recommend_mod.recommend(m, [NU + 2], k=4, unknown="popular",
                                **dict(kw, user_features={"age": np.arange(NU)}))


# ---------------------------------------------------------------- raw ids
def test_encoders_round_trip_raw_ids():
    m = _model("neumf", seed=17)
    uenc = IdEncoder().fit(np.array([f"cust-{j:03d}" for j in range(NU)]))
    ienc = IdEncoder().fit(np.array([f"sku-{j * 7}" for j in range(NI)]))
    assert len(uenc) == NU and len(ienc) == NI
    mask, eu, ei = _exclusions(seed=18)
    raw_users = np.array(["cust-003", "cust-010", "cust-000"])
    users = uenc.transform(raw_users)
    ids, sc = m.recommend(users, k=6, exclude=(eu, ei))
    raw_ids, raw_sc = m.recommend(raw_users, k=6, exclude=(eu, ei), user_encoder=uenc,
                                  item_encoder=ienc)
    assert raw_ids.shape == (3, 6) and raw_ids.dtype == object
    np.testing.assert_array_equal(raw_sc, sc)
    assert raw_ids[0].tolist() == [None] * 6           # cust-003 has seen every item
    ok = ids >= 0
    assert list(raw_ids[ok]) == list(ienc.inverse_transform(ids[ok]))
    np.testing.assert_array_equal(ienc.transform(raw_ids[ok].astype(str)), ids[ok])
    with pytest.raises(ValueError, match="cust-999"):
        m.recommend(np.array(["cust-001", "cust-999"]), k=3, user_encoder=uenc)
    with pytest.raises(TypeError, match="user_encoder"):
        m.recommend(raw_users, k=3)


def test_encoder_with_unknown_raw_user_and_popular():
    m, matrix = _trained_mf()
    uenc = IdEncoder().fit(np.arange(NU) * 10 + 1000)        # integer raw ids
    counts = matrix.item_counts()
    ids, _ = m.recommend(np.array([1000, 5], dtype=np.int64), k=4, user_encoder=uenc,
                         unknown="popular")
    pool = np.lexsort((np.arange(NI), -counts))[:4]
    np.testing.assert_array_equal(ids[1], _popular_then_by_score(m, pool)[0])
    np.testing.assert_array_equal(ids[0], m.recommend([0], k=4)[0][0])


def test_items_are_raw_ids_with_an_item_encoder():
    m = _model("neumf", seed=5)
    ienc = IdEncoder().fit(np.array([f"sku-{j * 7}" for j in range(NI)]))
    mask, eu, ei = _exclusions(seed=6)
    cand = np.array([2, 9, 17, 30, 31])
    want, want_sc = m.recommend([0, 1, 3], k=3, items=cand, exclude=(eu, ei))
    raw_cand = ienc.inverse_transform(cand)
    got, got_sc = m.recommend([0, 1, 3], k=3, items=raw_cand, exclude=(eu, ei),
                              item_encoder=ienc)
    ok = want >= 0
    assert list(got[ok]) == list(ienc.inverse_transform(want[ok]))
    assert all(v is None for v in got[~ok])
    np.testing.assert_array_equal(got_sc, want_sc)
    # through the model's attached encoder, with raw users too
    uenc = IdEncoder().fit(np.array([f"cust-{j}" for j in range(NU)]))
    m.attach_encoders(user=uenc, item=ienc)
    got2, got2_sc = m.recommend(["cust-0", "cust-1", "cust-3"], k=3, items=list(raw_cand),
                                exclude=(eu, ei))
    np.testing.assert_array_equal(got2, got)
    np.testing.assert_array_equal(got2_sc, got_sc)
    # unknown raw items: named; item_encoder=False takes codes
    with pytest.raises(ValueError, match=r"unknown to the item encoder.*sku-999"):
        m.recommend(["cust-0"], k=2, items=["sku-7", "sku-999"])
    codes, _ = m.recommend(["cust-0", "cust-1", "cust-3"], k=3, items=cand, exclude=(eu, ei),
                           item_encoder=False)
    np.testing.assert_array_equal(codes, want)
    # mixed known and unknown users with raw candidates
    mixed, mixed_sc = m.recommend(["cust-0", "nobody"], k=3, items=raw_cand, exclude=(eu, ei),
                                  unknown="popular")
    assert list(mixed[0]) == list(got[0]) and set(mixed[1]) <= set(raw_cand)
    assert np.all((mixed_sc[1] > 0) & (mixed_sc[1] < 1))


# ---------------------------------------------------------------- bad arguments
@pytest.mark.parametrize("kw,exc,match", [
    ({"k": 0}, ValueError, "k must be"),
    ({"k": 2.5}, ValueError, "k must be"),
    ({"k": True}, ValueError, "k must be"),
    ({"unknown": "ignore"}, ValueError, "unknown"),
    ({"items": [NI]}, ValueError, "items"),
    ({"items": [-1, 2]}, ValueError, "items"),
    ({"items": []}, ValueError, "items"),
    ({"exclude": (np.array([0]), np.array([NI + 3]))}, ValueError, "exclude"),
    ({"user_input": "customer"}, ValueError, "customer"),
])
def test_bad_arguments_raise(kw, exc, match):
    m = _model("mf")
    with pytest.raises(exc, match=match):
        m.recommend([0, 1], **kw)


def test_bad_users_raise():
    m = _model("mlp")
    with pytest.raises(ValueError, match="empty"):
        m.recommend([], k=3)
    with pytest.raises(TypeError, match="integer"):
        m.recommend([0.5], k=3)


def test_saturated_outputs_fast_path_breaks_ties_by_logit():
    """Documented rule: on the dot-product fast path, items whose float32 outputs tie
    (a saturated sigmoid) are ordered by the exact logit; the scores returned are the
    same as the generic path's."""
    m = _randomise(MF(5, NI, factors=4), scale=6.0, seed=19)
    P = _all_scores(m, np.arange(5), NI)
    assert (P == 1.0).sum(axis=1).min() > 10                  # many exact float32 ties
    fast, fs = m.recommend(np.arange(5), k=10)
    generic, gs = m.recommend(np.arange(5), k=10, items=np.arange(NI))
    np.testing.assert_array_equal(fs, gs)
    U = m.get_layer("mf_user_embedding").embeddings.astype(np.float64)
    V = m.get_layer("mf_item_embedding").embeddings.astype(np.float64)
    bi = m.get_layer("mf_item_bias").embeddings[:, 0].astype(np.float64)
    w = float(m.get_layer("prediction").kernel[0, 0])
    for r in range(5):
        logits = np.sign(w) * (U[r] @ V[fast[r]].T + bi[fast[r]])
        assert np.all(np.diff(logits) <= 1e-5)


@pytest.mark.parametrize("name", ["neumf", "mlp"])
def test_the_function_without_a_scoring_model_class_gives_the_same_top_k(name):
    """``recommend.recommend(make_model=None)`` scores the model itself (no precomputed
    tables): slower, same results as ``Model.recommend``."""
    from neurec.models import recommend as rec
    model = _model(name, seed=4)
    users = np.arange(NU)
    train = InteractionMatrix.from_arrays(users, (users * 3) % NI, shape=(NU, NI))
    want = model.recommend(users, k=7, exclude=train)
    got = rec.recommend(model, users, k=7, exclude=train)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
