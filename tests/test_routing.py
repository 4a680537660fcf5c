"""Samples routed to the owners of their rows (``neurec/distribution/_routing.py``) and the
core's steps of varying size (``Plan.fit(bounds=, norms=)``) they train through, on one
process. The routed data-parallel fits themselves run in tests/test_distributed.py."""
import numpy as np
import pytest

import neurec
from neurec import _core, layers, models, optimizers
from neurec.distribution import _routing
from neurec.models import zoo
from neurec.models._distributed import _tables

N_USERS, N_ITEMS = 60, 40


def _data(n=600, seed=0):
    rng = np.random.default_rng(seed)
    u, i = rng.integers(0, N_USERS, n), rng.integers(0, N_ITEMS, n)
    return [u.reshape(-1, 1), i.reshape(-1, 1)], ((u + i) % 3 == 0).astype(np.float32)


def _model(opt):
    neurec.utils.set_random_seed(3)
    model = zoo.NeuMF(N_USERS, N_ITEMS, factors=4, layers=(8, 4))
    model.compile(optimizer=opt, loss="binary_crossentropy")
    x, _ = _data()
    model.predict([x[0][:2], x[1][:2]], verbose=0)  # built
    return model


def _fit(model, idx, batch_size=1, bounds=None, norms=None, seed=1):
    x, y = _data()
    step = np.array([int(model.optimizer.iterations)], dtype=np.int64)
    model._get_plan().fit(x, y.reshape(-1, 1), np.asarray(idx, dtype=np.int64), batch_size,
                          step, seed, bounds=bounds, norms=norms)
    model.optimizer.iterations = int(step[0])
    return int(step[0])


def _close(a, b, rtol=0.0):
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=rtol, atol=rtol * float(np.abs(wb).max()))


# -- Plan.fit(bounds=, norms=) ------------------------------------------------------------
def test_steps_of_the_batch_size_train_as_fit_does(one_thread):
    idx = np.random.default_rng(1).permutation(600)
    a, b = _model(optimizers.Adam(0.01)), _model(optimizers.Adam(0.01))
    assert _fit(a, idx, 64) == 10
    bounds = np.minimum(np.arange(11) * 64, 600)
    assert _fit(b, idx, bounds=bounds, norms=np.diff(bounds)) == 10
    _close(a, b)  # the same bits


def test_a_steps_loss_is_over_its_norm(one_thread):
    """Samples S over norm N: the gradient of sum(loss) / N, so SGD at lr steps as a batch
    of S at lr * |S| / N does."""
    idx = np.arange(50)
    a, b = _model(optimizers.SGD(0.2)), _model(optimizers.SGD(0.2 * 50 / 200))
    _fit(a, idx, bounds=np.array([0, 50]), norms=np.array([200]))
    _fit(b, idx, 50)
    _close(a, b, rtol=1e-5)
    assert not np.allclose(a.get_weights()[0], _model(optimizers.SGD(0.2)).get_weights()[0])


def test_an_empty_step_counts_and_changes_nothing_without_momentum(one_thread):
    a, b = _model(optimizers.SGD(0.1)), _model(optimizers.SGD(0.1))
    assert _fit(a, np.arange(30), bounds=np.array([0, 0, 30, 30]), norms=np.array([5, 30, 1])) == 3
    assert _fit(b, np.arange(30), 30) == 1
    _close(a, b)


@pytest.mark.parametrize("bounds, norms", [
    ([0, 20, 10, 30], [20, 20, 20]),  # going back
    ([1, 30], [30]),                  # not from 0
    ([0, 29], [30]),                  # not to idx.size
    ([0, 30], [29]),                  # a norm below the step's size
    ([0, 15, 30], [15]),              # a norm short
])
def test_bad_steps_are_refused(bounds, norms):
    model = _model(optimizers.SGD(0.1))
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(ValueError):
        _fit(model, np.arange(30), bounds=np.array(bounds), norms=np.array(norms))
    for w, w0 in zip(model.get_weights(), before):
        np.testing.assert_array_equal(w, w0)


# -- route_split ---------------------------------------------------------------------------
def _split_reference(owner, ids, idx, batch, rank):
    o = owner[np.clip(ids[idx], 0, owner.size - 1)]
    at = np.flatnonzero(o == rank)
    starts = np.minimum(np.arange(-(-idx.size // batch) + 1) * batch, idx.size)
    touched = np.zeros(owner.size, np.uint8)
    touched[np.clip(ids[idx[at]], 0, owner.size - 1)] = 1
    return idx[at], np.searchsorted(at, starts), touched


@pytest.mark.parametrize("dtype", [np.int64, np.int32])
@pytest.mark.parametrize("batch", [1, 7, 64, 1000])
def test_route_split_matches_numpy(dtype, batch):
    rng = np.random.default_rng(batch)
    ids = rng.integers(-2, 105, 900).astype(dtype)  # some out of range: clipped
    owner = rng.integers(0, 3, 100).astype(np.int32)
    idx = rng.permutation(900)[:700].astype(np.int64)
    route = _routing.Route(0, (0,), owner)
    for rank, owners in [(r, o) for r in range(3)
                         for o in (None, _routing.sample_owners(route, ids)[0])]:
        out, touched = np.full(700, -7, np.int64), np.zeros(100, np.uint8)
        bounds = np.empty(-(-700 // batch) + 1, np.int64)
        n = _core.route_split(owner, ids, idx, batch, rank, out, bounds, touched, owners)
        mine, want_bounds, want_touched = _split_reference(owner, ids, idx, batch, rank)
        np.testing.assert_array_equal(out[:n], mine)
        np.testing.assert_array_equal(bounds, want_bounds)
        np.testing.assert_array_equal(touched, want_touched)


@pytest.mark.parametrize("n", [1000, 200_003])  # Fisher-Yates, then buckets
def test_a_tagged_shuffle_is_the_shuffle_with_its_owners(n):
    """permutation(tags=): the same order, each value carrying its tag in its top byte."""
    tags = np.random.default_rng(n).integers(0, 256, n).astype(np.uint8)
    plain = _core.permutation(n, 7)
    tagged = _core.permutation(n, 7, tags=tags)
    np.testing.assert_array_equal(tagged & ((1 << 56) - 1), plain)
    np.testing.assert_array_equal(tagged.view(np.uint64) >> np.uint64(56), tags[plain])
    with pytest.raises(ValueError, match="tags"):
        _core.permutation(n, 7, tags=tags[:-1])
    with pytest.raises(ValueError, match="tags"):
        _core.permutation(n, 7, tags=tags.astype(np.int32))


@pytest.mark.parametrize("batch", [7, 64])
def test_route_split_of_a_tagged_shuffle_matches_numpy(batch):
    """The tagged path selects by the values' top byte alone and leaves touched to the
    caller, which marks the rows the pass may train (_routing.sample_owners' present), or
    marks exactly the rows its samples read (mark=True)."""
    rng = np.random.default_rng(batch)
    ids = rng.integers(0, 100, 900).astype(np.int64)
    owner = rng.integers(0, 3, 100).astype(np.int32)
    route = _routing.Route(0, (0,), owner)
    owners = _routing.sample_owners(route, ids)[0]
    idx = _core.permutation(900, batch, tags=owners)[:700]
    for rank in range(3):
        out, touched = np.full(700, -7, np.int64), np.zeros(100, np.uint8)
        bounds = np.empty(-(-700 // batch) + 1, np.int64)
        n = _core.route_split(owner, ids, idx, batch, rank, out, bounds, touched, None, True)
        mine, want_bounds, want_touched = _split_reference(owner, ids, idx & ((1 << 56) - 1),
                                                           batch, rank)
        np.testing.assert_array_equal(out[:n], mine)
        np.testing.assert_array_equal(bounds, want_bounds)
        assert not touched.any()
        _core.route_split(owner, ids, idx, batch, rank, out, bounds, touched, None, True, True)
        np.testing.assert_array_equal(touched, want_touched)  # mark=True: exactly
        present = _routing.sample_owners(route, ids, rank)[1]
        np.testing.assert_array_equal(present, np.isin(np.arange(100), ids) & (owner == rank))
    bad = idx.copy()
    bad[3] = (bad[3] & ~((1 << 56) - 1)) | 900  # a sample past the ids
    with pytest.raises(IndexError, match="idx"):
        _core.route_split(owner, ids, bad, batch, 0, out, bounds, touched, None, True)


def test_sample_owners_clip_ids_and_stop_past_255_ranks():
    owner = np.array([0, 1, 2, 1], np.int32)
    route = _routing.Route(0, (0,), owner)
    ids = np.array([3, -5, 9, 1, 1], np.int64)  # -5 and 9 clipped to rows 0 and 3
    tags, present = _routing.sample_owners(route, ids, rank=1)
    np.testing.assert_array_equal(tags, [1, 0, 1, 1, 1])
    np.testing.assert_array_equal(present, [0, 1, 0, 1])
    many = _routing.Route(0, (0,), np.array([0, 300], np.int32))
    assert _routing.sample_owners(many, np.array([0, 1]))[0] is None
    with pytest.raises(ValueError, match=r"\[0, 255\]"):
        _core.route_tags(many.owner, np.array([0, 1]), 0, np.empty(2, np.uint8),
                         np.zeros(2, np.uint8))
    with pytest.raises(ValueError, match="present"):
        _core.route_tags(owner, ids, 0, np.empty(5, np.uint8), np.zeros(3, np.uint8))


def test_weighted_sum_is_the_rank_ordered_float64_sum():
    rng = np.random.default_rng(0)
    values = rng.standard_normal((3, 50)).astype(np.float32)
    weights = np.array([0.25, 0.5, 0.25])
    out = np.empty(50, np.float32)
    _core.weighted_sum(values, weights, out)
    want = values[0] * weights[0]
    for r in (1, 2):
        want = want + values[r] * weights[r]
    np.testing.assert_array_equal(out, want.astype(np.float32))
    wide = np.zeros((3, 64), np.float32)  # rows apart, as in a gathered message
    wide[:, 7:57] = values
    strided = np.empty(50, np.float32)
    _core.weighted_sum(wide[:, 7:57], weights, strided)
    assert strided.tobytes() == out.tobytes()
    with pytest.raises(ValueError, match="weight"):
        _core.weighted_sum(values, weights[:2], out)
    with pytest.raises(ValueError, match="contiguous"):
        _core.weighted_sum(wide[:, ::2][:, :32], weights, out[:32])


def test_route_split_refuses_bad_arguments():
    owner, ids = np.zeros(10, np.int32), np.arange(10)
    out, bounds, touched = np.empty(5, np.int64), np.empty(2, np.int64), np.zeros(10, np.uint8)
    with pytest.raises(IndexError, match="idx"):
        _core.route_split(owner, ids, np.array([1, 10, 2]), 5, 0, out, bounds, touched)
    with pytest.raises(TypeError, match="int32 or int64"):
        _core.route_split(owner, ids.astype(np.float32), np.arange(3), 5, 0, out, bounds, touched)
    with pytest.raises(ValueError, match="bounds"):
        _core.route_split(owner, ids, np.arange(5), 2, 0, out, bounds, touched)
    with pytest.raises(ValueError, match="sample_owner"):
        _core.route_split(owner, ids, np.arange(5), 5, 0, out, bounds, touched,
                          np.zeros(9, np.uint8))
    with pytest.raises(IndexError, match="idx"):
        _core.route_split(owner, ids, np.array([1, -1]), 5, 0, out, bounds, touched,
                          np.zeros(10, np.uint8))


# -- choosing the input --------------------------------------------------------------------
def test_the_input_whose_rows_a_batch_touches_most_is_routed():
    model = _model(optimizers.Adam(0.01, sparse_updates=True))
    tables = _tables(model)
    x, _ = _data()
    route = _routing.choose(model._builder, tables, x, 128, 2)
    assert route.column == 0  # 60 users to 40 items: more distinct users a batch
    users = {t.param for t in tables if t.rows == N_USERS}
    assert set(route.params) == users and len(users) == 2  # GMF and MLP user tables
    x_items = [np.zeros_like(x[0]), x[1]]  # one user: the items go
    route = _routing.choose(model._builder, tables, x_items, 128, 2)
    assert route is not None and route.column == 1


@pytest.mark.parametrize("dtype", [np.int64, np.uint64, np.int32])
def test_the_choice_reads_any_integer_ids_and_clips_those_out_of_range(dtype):
    model = _model(optimizers.Adam(0.01, sparse_updates=True))
    x, _ = _data()
    route = _routing.choose(model._builder, _tables(model), [a.astype(dtype) for a in x],
                            128, 2)
    assert route is not None and route.column == 0
    users = x[0].astype(np.int64)
    users[:3, 0] = [-1, N_USERS, N_USERS + 7]  # refused by the core later; counted clipped
    again = _routing.choose(model._builder, _tables(model), [users, x[1]], 128, 2)
    assert again is not None and again.column == 0


def test_ids_too_skewed_to_balance_are_not_routed():
    model = _model(optimizers.Adam(0.01, sparse_updates=True))
    x, _ = _data()
    users = x[0].copy()
    users[: 400] = 5  # two thirds of the samples: no two ranks share them evenly
    assert _routing.choose(model._builder, _tables(model), [users, np.zeros_like(users)],
                           128, 2) is None
    route = _routing.choose(model._builder, _tables(model), [users, x[1]], 128, 2)
    assert route.column == 1  # the items balance: they go


def test_deal_balances_the_samples():
    counts = np.random.default_rng(0).zipf(1.6, 5000).clip(max=300)
    for size in (2, 3, 8):
        owner = _routing.deal(counts, size)
        shares = np.bincount(owner, weights=counts, minlength=size)
        assert shares.max() <= shares.sum() / size + counts.max()
        assert np.bincount(owner, minlength=size).min() >= 5000 // size - 1


def test_a_table_two_inputs_read_is_not_routable():
    a, b = layers.Input((1,), dtype="int64"), layers.Input((1,), dtype="int64")
    shared = layers.Embedding(30, 4)
    own = layers.Embedding(30, 4)
    h = layers.Concatenate()([layers.Flatten()(shared(a)), layers.Flatten()(shared(b)),
                              layers.Flatten()(own(b))])
    model = models.Model([a, b], layers.Dense(1, activation="sigmoid")(h))
    model.compile(optimizer=optimizers.Adam(0.01, sparse_updates=True), loss="binary_crossentropy")
    model.predict([np.zeros(2, np.int64), np.zeros(2, np.int64)], verbose=0)
    got = _routing.routable(model._builder, [t.param for t in _tables(model)])
    assert list(got) == [1] and len(got[1]) == 1  # b's own table alone


def test_a_shared_step_refuses_a_window_that_cannot_hold_its_regions():
    raw = np.zeros(2 * 80 + 16, np.uint32)
    at = (-raw.ctypes.data % 64) // 4  # a 64-byte boundary, as MPI's windows are
    win = raw[at:at + 160].reshape(2, 80)
    _core.SharedStep(win, 0, np.array([3]), np.array([4]), 4, 16, 16, True)  # fits
    for cols, need_rows, need_values in [([-5], 16, 16), ([4], 2**62, 2**62), ([4], 16, 1),
                                         ([4], 40, 16)]:
        with pytest.raises(ValueError, match="SharedStep"):
            _core.SharedStep(win, 0, np.array([3]), np.array(cols), 4, need_rows, need_values,
                             True)
