"""NegativeSampler: fresh, valid negatives every epoch, drawn in C.

Checks every epoch's samples against the interaction matrix, the label layout,
seeding and thread-count independence, popularity sampling against exact
expected frequencies, bad input, training through ``fit``, and side features
gathered per sample.
"""
import numpy as np
import pytest

import neurec
from neurec import optimizers
from neurec.data import InteractionLog, InteractionMatrix, NegativeSampler
from neurec.layers import Concatenate, Dense, Embedding, Flatten, Input, Multiply
from neurec.models import GMF, Model, NeuMF


def _random_matrix(n_users=120, n_items=60, per_user=(1, 20), seed=0):
    rng = np.random.default_rng(seed)
    counts = rng.integers(per_user[0], per_user[1] + 1, n_users)
    users = np.repeat(np.arange(n_users), counts)
    items = np.concatenate([rng.choice(n_items, c, replace=False) for c in counts])
    return InteractionMatrix.from_arrays(users, items, shape=(n_users, n_items), dedupe="max")


@pytest.fixture
def threads():
    old = neurec.get_num_threads()
    yield neurec.set_num_threads
    neurec.set_num_threads(old)


# ---------------------------------------------------------------- validity and layout
@pytest.mark.parametrize("num_negatives", [0, 1, 4, 9])
def test_layout_labels_and_negatives_unseen(num_negatives):
    m = _random_matrix()
    s = NegativeSampler(m, num_negatives=num_negatives, seed=3)
    w = 1 + num_negatives
    assert s.num_samples == m.nnz * w
    u, i, y = s.sample(seed=11)
    assert u.shape == i.shape == y.shape == (m.nnz * w,)
    assert u.dtype == np.int64 and i.dtype == np.int64 and y.dtype == np.float32
    U, I, Y = u.reshape(-1, w), i.reshape(-1, w), y.reshape(-1, w)
    assert np.all(Y[:, 0] == 1.0) and np.all(Y[:, 1:] == 0.0)
    assert np.all(U == U[:, :1])                      # one user per group
    pu, pi, _ = m.to_coo()
    np.testing.assert_array_equal(U[:, 0], pu)        # every positive exactly once
    np.testing.assert_array_equal(I[:, 0], pi)
    assert m.contains(U[:, 0], I[:, 0]).all()
    if num_negatives:
        assert I[:, 1:].min() >= 0 and I[:, 1:].max() < m.shape[1]
        assert not m.contains(U[:, 1:], I[:, 1:]).any()


class _Recording(NegativeSampler):
    """Keeps a copy of what every epoch of ``fit`` trained on."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.epochs = []

    def _neurec_epoch(self, seed, *args, **kwargs):
        arrays, y = super()._neurec_epoch(seed, *args, **kwargs)
        self.epochs.append(([a.copy() for a in arrays], y.copy()))
        return arrays, y


def test_every_fit_epoch_is_valid_and_fresh():
    m = _random_matrix(n_users=80, n_items=50, seed=1)
    s = _Recording(m, num_negatives=4, seed=0)
    model = GMF(80, 50)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    model.fit(s, epochs=4, batch_size=128, verbose=0, seed=5)
    assert len(s.epochs) == 4
    negs = []
    for (uu, ii), y in s.epochs:
        uu, ii, y = uu.ravel(), ii.ravel(), y.ravel()
        assert y.size == s.num_samples
        assert np.array_equal(m.contains(uu, ii), y == 1.0)   # negatives never seen, positives seen
        negs.append(ii[y == 0])
    for a in range(4):
        for b in range(a + 1, 4):
            assert np.mean(negs[a] != negs[b]) > 0.5          # fresh negatives each epoch


def test_deterministic_for_a_seed_and_seeds_differ():
    m = _random_matrix(seed=2)
    a = NegativeSampler(m, seed=7).sample(seed=1)
    b = NegativeSampler(m, seed=7).sample(seed=1)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    other_epoch = NegativeSampler(m, seed=7).sample(seed=2)[1]
    other_base = NegativeSampler(m, seed=8).sample(seed=1)[1]
    for other in (other_epoch, other_base):
        assert np.mean(other != a[1]) > 0.5
        np.testing.assert_array_equal(other[::5], a[1][::5])  # positives are the same


def test_same_sample_with_one_and_two_threads(threads):
    # > 4096 positives so that several blocks (and both threads) are used
    m = _random_matrix(n_users=2500, n_items=300, per_user=(2, 10), seed=4)
    assert m.nnz > 3 * 4096
    for dist in ("uniform", "popularity"):
        s = NegativeSampler(m, num_negatives=4, distribution=dist, seed=9)
        threads(1)
        one = s.sample(seed=3)
        threads(2)
        two = s.sample(seed=3)
        for x, y in zip(one, two):
            np.testing.assert_array_equal(x, y)


def test_draws_of_block_ranges_tile_the_epoch():
    """What the ranks of a data-parallel fit draw in shares (first..stop of the positives,
    on block bounds) is the whole epoch's bits; other bounds are refused."""
    from neurec import _core
    m = _random_matrix(n_users=2500, n_items=300, per_user=(2, 10), seed=4)
    block, n = _core.SAMPLER_BLOCK, m.nnz
    assert n > 3 * block
    for dist in ("uniform", "popularity"):
        s = NegativeSampler(m, num_negatives=3, distribution=dist, seed=9)
        whole = s.sample(seed=5)
        parts = [np.full_like(a, -1) for a in whole]
        for first, stop in [(2 * block, n), (0, block), (block, 2 * block)]:
            before = [p.copy() for p in parts]
            _core.sample_epoch(s._indptr, s._indices, m.shape[1], s._pos_users, s._pos_items,
                               3, s._cdf, s._mixed_seed(5), *parts,
                               first, stop)
            rows = slice(4 * first, 4 * stop)
            for b, p in zip(before, parts):  # nothing outside the range is written
                np.testing.assert_array_equal(np.delete(p, np.s_[rows]), np.delete(b, np.s_[rows]))
        for x, y in zip(whole, parts):
            np.testing.assert_array_equal(x, y)
    for first, stop in [(1, n), (0, block + 1), (block, block - 1), (0, n + 1), (-block, n)]:
        with pytest.raises(ValueError, match="multiples of 4096"):
            _core.sample_epoch(s._indptr, s._indices, m.shape[1], s._pos_users, s._pos_items,
                               3, s._cdf, 1, *parts, first, stop)


def test_input_forms_agree_and_duplicates_count_once():
    rng = np.random.default_rng(5)
    users = rng.integers(0, 30, 300)
    items = rng.integers(0, 25, 300)
    m = InteractionMatrix.from_arrays(users, items, shape=(30, 25), dedupe="max")
    assert m.nnz < 300                                   # there are duplicate pairs
    forms = [m, (users, items), InteractionLog.from_arrays(users, items)]
    try:
        import scipy.sparse as sp
        forms.append(sp.csr_matrix((np.ones(300), (users, items)), shape=(30, 25)))
    except ImportError:
        pass
    ref = NegativeSampler(m, seed=1).sample(seed=2)
    for f in forms:
        s = NegativeSampler(f, seed=1, n_users=30, n_items=25) if isinstance(f, tuple) else \
            NegativeSampler(f, seed=1)
        assert s.num_samples == m.nnz * 5
        for x, y in zip(s.sample(seed=2), ref):
            np.testing.assert_array_equal(x, y)


def test_uniform_negatives_are_uniform_over_unseen():
    # one user who has seen items 0..9 of 20: negatives uniform over 10..19
    m = InteractionMatrix.from_arrays(np.zeros(10, int), np.arange(10), shape=(1, 20))
    s = NegativeSampler(m, num_negatives=2000, seed=0)
    _, i, y = s.sample(seed=0)
    neg = i[y == 0]
    counts = np.bincount(neg, minlength=20)
    assert counts[:10].sum() == 0
    expected = neg.size / 10
    chi2 = ((counts[10:] - expected) ** 2 / expected).sum()
    assert chi2 < 35      # 9 dof: p < 1e-4


def test_heavy_user_gets_the_only_unseen_items():
    # user 0 has seen all but items 3 and 97 of 100: rejection fails often, fallback must be exact
    seen = np.setdiff1d(np.arange(100), [3, 97])
    users = np.r_[np.zeros(seen.size, int), [1]]
    items = np.r_[seen, [5]]
    for dist in ("uniform", "popularity"):
        s = NegativeSampler((users, items), num_negatives=50, distribution=dist, n_items=100,
                            seed=0)
        u, i, y = s.sample(seed=1)
        neg0 = i[(u == 0) & (y == 0)]
        assert set(np.unique(neg0).tolist()) <= {3, 97}
        assert neg0.size == seen.size * 50


# ---------------------------------------------------------------- popularity sampling
def _skewed_matrix(n_users=3000, n_items=50, seed=6):
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, n_items + 1) ** 1.1
    p[-3:] = 0.0                                         # three items nobody bought
    p /= p.sum()
    users = np.repeat(np.arange(n_users), 2)
    items = rng.choice(n_items, users.size, p=p)
    return InteractionMatrix.from_arrays(users, items, shape=(n_users, n_items), dedupe="max")


def _expected_negative_counts(m, w, num_negatives):
    """Exact expectation under 'w-proportional, rejecting the user's own items'."""
    W = w.sum()
    npos = m.user_counts().astype(np.float64)
    Wu = np.add.reduceat(np.r_[w[m.indices], 0.0], m.indptr[:-1]) * (npos > 0)
    f = np.where(npos > 0, npos / (W - Wu), 0.0)
    rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    inside = np.bincount(m.indices, weights=f[rows], minlength=m.shape[1])
    return num_negatives * w * (f.sum() - inside)


@pytest.mark.parametrize("alpha", [0.75, 1.0, 0.0])
def test_popularity_sampling_follows_count_power_alpha(alpha):
    m = _skewed_matrix()
    counts = m.item_counts().astype(np.float64)
    w = counts ** alpha                                  # 0 ** 0 == 1: alpha=0 is uniform
    s = NegativeSampler(m, num_negatives=8, distribution="popularity", alpha=alpha, seed=0)
    obs = np.zeros(m.shape[1])
    for ep in range(4):
        _, i, y = s.sample(seed=ep)
        obs += np.bincount(i[y == 0], minlength=m.shape[1])
    exp = _expected_negative_counts(m, w, 8) * 4
    assert abs(obs.sum() - exp.sum()) < 1e-6 * exp.sum()
    live = exp > 0
    if alpha > 0:
        assert not obs[~live].any()                      # zero-count items are never drawn
    chi2 = ((obs[live] - exp[live]) ** 2 / exp[live]).sum()
    dof = live.sum() - 1
    assert chi2 < dof + 6 * np.sqrt(2 * dof)
    # and the test can tell: plain uniform expectations are far off
    if alpha > 0:
        uni = _expected_negative_counts(m, np.ones(m.shape[1]), 8) * 4
        assert ((obs - uni) ** 2 / uni).sum() > 20 * (dof + 6 * np.sqrt(2 * dof))


def test_item_popularity_is_item_counts():
    m = _skewed_matrix(n_users=200)
    s = NegativeSampler(m, distribution="popularity")
    np.testing.assert_array_equal(s.item_popularity(), m.item_counts())


# ---------------------------------------------------------------- bad input
def test_user_who_saw_every_item_raises():
    users = np.r_[np.zeros(6, int), [1, 1]]
    items = np.r_[np.arange(6), [0, 1]]
    with pytest.raises(ValueError, match=r"users \[0\] have interacted with every item"):
        NegativeSampler((users, items))
    s = NegativeSampler((users, items), num_negatives=0)   # fine without negatives
    assert s.num_samples == 8


@pytest.mark.parametrize("interactions,kw", [
    ((np.array([], int), np.array([], int)), {}),
    ((np.array([], int), np.array([], int)), {"n_users": 3, "n_items": 4}),
    (InteractionMatrix.from_arrays(np.array([], int), np.array([], int), shape=(3, 4)), {}),
])
def test_empty_interactions_raise(interactions, kw):
    with pytest.raises(ValueError, match="empty"):
        NegativeSampler(interactions, **kw)


@pytest.mark.parametrize("kw,match", [
    ({"num_negatives": -1}, "num_negatives"),
    ({"num_negatives": 2.5}, "num_negatives"),
    ({"num_negatives": True}, "num_negatives"),
    ({"distribution": "zipf"}, "distribution"),
])
def test_bad_arguments_raise(kw, match):
    with pytest.raises(ValueError, match=match):
        NegativeSampler((np.array([0, 1]), np.array([1, 2])), n_items=5, **kw)


def test_bad_interaction_type_raises():
    with pytest.raises(TypeError, match="interactions"):
        NegativeSampler([[0, 1], [1, 2]])


def test_fit_rejects_y_and_validation_split():
    m = _random_matrix(n_users=20, n_items=15, per_user=(1, 5))
    model = GMF(20, 15)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    s = NegativeSampler(m)
    with pytest.raises(ValueError, match="y must be None"):
        model.fit(s, np.ones(s.num_samples), epochs=1, verbose=0)
    with pytest.raises(ValueError, match="validation_split"):
        model.fit(s, epochs=1, verbose=0, validation_split=0.1)


def test_fit_rejects_sampler_larger_than_the_model():
    m = _random_matrix(n_users=30, n_items=20, per_user=(1, 5))
    for nu, ni in ((29, 20), (30, 19)):
        model = GMF(nu, ni)
        model.compile(optimizer="adam", loss="binary_crossentropy")
        with pytest.raises(ValueError, match="input_dim"):
            model.fit(NegativeSampler(m), epochs=1, verbose=0)


# ---------------------------------------------------------------- training
def _planted_matrix(n_users=200, n_items=100, groups=5, per_user=10, seed=0):
    rng = np.random.default_rng(seed)
    ug = rng.integers(0, groups, n_users)
    ig = np.arange(n_items) % groups
    users = np.repeat(np.arange(n_users), per_user)
    items = np.concatenate([rng.choice(np.flatnonzero(ig == g), per_user, replace=False)
                            for g in ug])
    return InteractionMatrix.from_arrays(users, items, shape=(n_users, n_items)), ug, ig


def test_fit_with_sampler_trains(one_thread):
    m, _, _ = _planted_matrix()
    losses = []
    for _ in range(2):
        neurec.utils.set_random_seed(0)
        model = NeuMF(200, 100, layers=(16, 8))
        model.compile(optimizer=optimizers.Adam(learning_rate=0.01), loss="binary_crossentropy")
        h = model.fit(NegativeSampler(m, num_negatives=4, seed=2), epochs=5, batch_size=128,
                      verbose=0, seed=3)
        losses.append(h.history["loss"])
    loss = losses[0]
    assert loss[-1] < 0.6 * loss[0]
    assert losses[0] == losses[1]          # one thread: repeatable run
    assert model._item_popularity.tolist() == m.item_counts().tolist()


# ---------------------------------------------------------------- side features
def _hybrid(n_users, n_items, n_cats, n_segments):
    u = Input((1,), dtype="int64", name="user")
    i = Input((1,), dtype="int64", name="item")
    c = Input((1,), dtype="int64", name="category")
    p = Input((1,), name="price")
    s = Input((1,), dtype="int64", name="segment")
    pu = Flatten()(Embedding(n_users, 4)(u))
    qi = Flatten()(Embedding(n_items, 4)(i))
    ce = Flatten()(Embedding(n_cats, 4)(c))
    se = Flatten()(Embedding(n_segments, 4)(s))
    h = Concatenate()([Multiply()([pu, qi]), Multiply()([se, ce]), p])
    return Model([u, i, c, p, s], Dense(1, activation="sigmoid")(h))


def test_side_features_are_gathered_per_sample():
    m, ug, ig = _planted_matrix()
    price = np.linspace(1.0, 2.0, 100).astype(np.float32)
    model = _hybrid(200, 100, 5, 5)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    s = NegativeSampler(m, num_negatives=3, seed=1, item_features={"category": ig, "price": price},
                        user_features={"segment": ug})
    model._get_plan()                              # as fit does: plan, then check, then epochs
    roles = s._check_model(model, model._builder.id_checks)
    assert [r for r, _ in roles] == ["user", "item", "item_feature", "item_feature",
                                     "user_feature"]
    assert model._item_popularity is None           # the check changes neither object
    checked = []
    arrays, y = s._neurec_epoch(12345, model, roles, lambda a: checked.append(a) or a)
    assert len(checked) == 1                        # side features went through fit's check
    assert len(arrays) == 5 and y.shape == (s.num_samples, 1)
    uu, ii = arrays[0].ravel(), arrays[1].ravel()
    ref_u, ref_i, ref_y = NegativeSampler(m, num_negatives=3, seed=1).sample(12345)
    np.testing.assert_array_equal(uu, ref_u)
    np.testing.assert_array_equal(ii, ref_i)
    np.testing.assert_array_equal(y.ravel(), ref_y)
    assert arrays[2].shape == (s.num_samples, 1)
    np.testing.assert_array_equal(arrays[2].ravel(), ig[ii])
    np.testing.assert_array_equal(arrays[3].ravel(), price[ii])
    np.testing.assert_array_equal(arrays[4].ravel(), ug[uu])
    assert not m.contains(uu[y.ravel() == 0], ii[y.ravel() == 0]).any()


def test_model_with_side_features_trains_and_order_of_inputs_is_free():
    m, ug, ig = _planted_matrix()
    price = np.linspace(1.0, 2.0, 100).astype(np.float32)
    model = _hybrid(200, 100, 5, 5)
    model.compile(optimizer=optimizers.Adam(learning_rate=0.02), loss="binary_crossentropy")
    s = NegativeSampler(m, seed=1, item_features={"category": ig, "price": price},
                        user_features={"segment": ug})
    h = model.fit(s, epochs=5, batch_size=128, verbose=0, seed=0)
    assert h.history["loss"][-1] < 0.6 * h.history["loss"][0]
    # the learned segment x category interaction: own category scores higher
    users = np.arange(200)
    items = np.arange(100)
    same = model.predict([users.repeat(100), np.tile(items, 200), np.tile(ig, 200),
                          np.tile(price, 200), ug.repeat(100)], verbose=0).reshape(200, 100)
    own = ig[None, :] == ug[:, None]
    assert same[own].mean() > same[~own].mean() + 0.2


def test_missing_or_unknown_feature_input_raises():
    m, ug, ig = _planted_matrix()
    model = _hybrid(200, 100, 5, 5)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    s = NegativeSampler(m, item_features={"category": ig}, user_features={"segment": ug})
    with pytest.raises(ValueError, match="'price'.*item_features="):
        model.fit(s, epochs=1, verbose=0)
    s = NegativeSampler(m, user_input="customer")
    with pytest.raises(ValueError, match="no input 'customer'"):
        model.fit(s, epochs=1, verbose=0)


def test_feature_ids_out_of_embedding_range_raise():
    m, ug, ig = _planted_matrix()
    model = _hybrid(200, 100, 5, 5)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    s = NegativeSampler(m, item_features={"category": ig + 5, "price": np.ones(100)},
                        user_features={"segment": ug})
    with pytest.raises(ValueError, match="category"):
        model.fit(s, epochs=1, verbose=0)


def test_feature_array_too_short_raises_value_error():
    m, ug, ig = _planted_matrix()
    model = _hybrid(200, 100, 5, 5)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    with pytest.raises(ValueError, match=r"item_features\['category'\] has 90 rows"):
        s = NegativeSampler(m, item_features={"category": ig[:90], "price": np.ones(100)},
                            user_features={"segment": ug})
        model.fit(s, epochs=1, verbose=0)


@pytest.mark.parametrize("n", [0, 1, 2, 1000, 1 << 16, (1 << 16) + 1, (1 << 17) + 3])
def test_permutation_is_a_seeded_permutation(n):
    """fit's shuffle (``_core.permutation``): every value once, the same for a seed,
    another for another seed; Fisher-Yates up to 2^16 values, buckets above."""
    from neurec import _core
    a, b, c = _core.permutation(n, 7), _core.permutation(n, 7), _core.permutation(n, 8)
    np.testing.assert_array_equal(np.sort(a), np.arange(n))
    np.testing.assert_array_equal(a, b)
    if n > 2:
        assert not np.array_equal(a, c)
    out = np.full(n, -1, np.int64)  # fit rewrites one array every epoch
    assert _core.permutation(n, 7, out=out) is out
    np.testing.assert_array_equal(out, a)
    for bad in [np.empty(n + 1, np.int64), np.empty(n, np.int32)] + \
            ([np.empty(2 * n, np.int64)[::2]] if n > 1 else []):
        with pytest.raises(ValueError, match="out must be a writable C-contiguous"):
            _core.permutation(n, 7, out=bad)


def test_bucketed_permutation_is_uniform():
    """Above 2^16 values (here 8 buckets): where a value lands, which value lands first
    and the order of two values are uniform over 400 seeds (chi-square, 16 bins, fixed
    seeds: p < 0.001 would fail)."""
    from neurec import _core
    n, seeds = (1 << 17) + 3, range(400)
    perms = [_core.permutation(n, s) for s in seeds]
    where0 = np.array([int(np.flatnonzero(p == 0)[0]) for p in perms])
    where_last = np.array([int(np.flatnonzero(p == n - 1)[0]) for p in perms])
    first = np.array([int(p[0]) for p in perms])
    for sample in (where0, where_last, first):
        counts = np.bincount(sample * 16 // n, minlength=16)
        chi2 = float(((counts - 25.0) ** 2 / 25.0).sum())
        assert chi2 < 37.7, counts
    before = np.mean([np.flatnonzero(p == 0)[0] < np.flatnonzero(p == 1)[0] for p in perms])
    assert 0.4 < before < 0.6
