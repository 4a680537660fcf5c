"""Growing a trained model's tables: Model.resize_embeddings and Embedding.resize."""
import numpy as np
import pytest

from neurec import optimizers
from neurec.data import InteractionMatrix, NegativeSampler
from neurec.layers import Concatenate, Dense, Dot, Embedding, Flatten, Input
from neurec.models import GMF, MF, Model, NeuMF, load_model

NU, NI, GROW_U, GROW_I = 20, 15, 6, 5


def _log(nu, ni, seed, n=120):
    rng = np.random.default_rng(seed)
    return InteractionMatrix.from_arrays(rng.integers(0, nu, n), rng.integers(0, ni, n),
                                         shape=(nu, ni), dedupe="max")


def _sampler(nu=NU, ni=NI, seed=0):
    return NegativeSampler(_log(nu, ni, seed), num_negatives=2, seed=seed)


def _neumf(nu=NU, ni=NI):
    return NeuMF(nu, ni, factors=4, layers=[8, 4])


def _trained(opt, nu=NU, ni=NI, make=_neumf):
    model = make(nu, ni)
    model.compile(optimizer=opt, loss="binary_crossentropy")
    model.fit(_sampler(nu, ni), epochs=2, batch_size=16, verbose=0, seed=3)
    return model


def _opt_state(model):
    return [v.copy() for v in model.optimizer.variables()]


def _lead(a, shape):
    """The part of ``a`` at the positions of an array of ``shape`` (its old rows)."""
    return a[tuple(slice(0, n) for n in shape)]


OPTIMIZERS = {
    "adam": lambda: optimizers.Adam(0.01),
    "adam-lazy": lambda: optimizers.Adam(0.01, catch_up=False),
    "adam-amsgrad": lambda: optimizers.Adam(0.01, amsgrad=True),
    "adam-dense": lambda: optimizers.Adam(0.01, sparse_updates=False),
    "adagrad": lambda: optimizers.Adagrad(0.05, initial_accumulator_value=0.3),
    "rmsprop": lambda: optimizers.RMSprop(0.01, momentum=0.5, centered=True),
    "sgd": lambda: optimizers.SGD(0.05, momentum=0.9),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_resize_keeps_rows_and_optimizer_state_bit_for_bit(name):
    model = _trained(OPTIMIZERS[name]())
    weights, state = model.get_weights(), _opt_state(model)
    iterations = model.optimizer.iterations
    model.resize_embeddings({"user": NU + GROW_U, "item": NI + GROW_I}, seed=1)
    for nm in ("gmf_user_embedding", "mlp_user_embedding"):  # an input key grows every table
        assert model.get_layer(nm).input_dim == NU + GROW_U
    for nm in ("gmf_item_embedding", "mlp_item_embedding"):
        assert model.get_layer(nm).embeddings.shape[0] == NI + GROW_I
    for old, new in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(_lead(new, old.shape), old)
    assert model.optimizer.iterations == iterations
    new_state = model.optimizer.variables()
    assert len(new_state) == len(state)
    init = model.optimizer._slot_init(0)
    for old, new in zip(state[1:], new_state[1:]):
        np.testing.assert_array_equal(_lead(new, old.shape), old)
        fresh = new[old.shape[0]:]
        if new.dtype == np.int64:
            assert (fresh == 0).all()          # new rows never took a step
        else:
            assert np.all((fresh == 0) | (fresh == init))


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_fit_after_resize_equals_fit_of_a_model_built_at_the_larger_size(name, one_thread):
    """B is built at the larger size with A's old rows and optimizer state, A's new rows and
    a fresh optimizer state for them: one more fit of both gives the same bits."""
    a = _trained(OPTIMIZERS[name]())
    state = _opt_state(a)
    a.resize_embeddings({"user": NU + GROW_U, "item": NI + GROW_I}, seed=5)
    b = _neumf(NU + GROW_U, NI + GROW_I)
    b.compile(optimizer=OPTIMIZERS[name](), loss="binary_crossentropy")
    b.build_optimizer()
    b.set_weights(a.get_weights())
    store = {}
    b.optimizer.save_own_variables(store)
    for k, old in enumerate(state):
        _lead(store[str(k)], old.shape)[...] = old  # old rows' state; new rows: B's fresh state
    b.optimizer.load_own_variables(store)
    for m in (a, b):
        m.fit(_sampler(NU + GROW_U, NI + GROW_I, seed=9), epochs=2, batch_size=16, verbose=0,
              seed=11)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    for va, vb in zip(a.optimizer.variables(), b.optimizer.variables()):
        np.testing.assert_array_equal(va, vb)
    assert all(np.isfinite(w).all() for w in a.get_weights())


def test_new_rows_take_no_phantom_catch_up_steps(one_thread):
    """Step count 0 for a new row: catch-up skips it (its moments are zero: there is nothing
    to decay) and lazy Adam starts its bias correction at step 1, as for a never-seen row of
    a model built at the larger size."""
    for catch_up in (True, False):
        model = _trained(optimizers.Adam(0.01, catch_up=catch_up))
        model.resize_embeddings({"item": NI + 1}, seed=2)
        k = [layer.name for layer, _, t in model._builder.params if t].index("gmf_item_embedding")
        steps = model.optimizer._slots[k][3]
        assert steps[NI] == 0 and model.optimizer.iterations > 0
        # train on the new item only: one step of batch 1
        before = model.get_layer("gmf_item_embedding").embeddings[NI].copy()
        model.fit([np.array([0]), np.array([NI])], np.ones((1, 1), np.float32), batch_size=1,
                  verbose=0, seed=0)
        row = model.get_layer("gmf_item_embedding").embeddings[NI]
        assert np.isfinite(row).all() and not np.array_equal(row, before)
        steps = model.optimizer._slots[k][3]
        assert steps[NI] == (model.optimizer.iterations if catch_up else 1)
        # the first step of fresh moments: lazy Adam corrects them as step 1 (a move of lr
        # per coordinate); with catch-up the correction is the global step's, as dense Adam
        # moves a row whose gradients were zero so far
        t = model.optimizer.iterations if catch_up else 1
        move = 0.01 * np.sqrt(1 - 0.999**t) / (1 - 0.9**t) * 0.1 / np.sqrt(0.001)
        np.testing.assert_allclose(np.abs(row - before), move, rtol=1e-3)


def test_seeded_new_rows():
    def grown(seed):
        model = _neumf()
        model.resize_embeddings({"user": NU + GROW_U}, seed=seed)
        return [model.get_layer(n).embeddings[NU:].copy()
                for n in ("gmf_user_embedding", "mlp_user_embedding")]
    a, b, c = grown(4), grown(4), grown(5)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)          # same seed, same rows
    assert not np.array_equal(a[0], c[0])
    assert not np.array_equal(a[0], a[1])            # tables of equal shape draw their own rows
    # variance scaling from the grown table's full shape
    emb = Embedding(10, 4, embeddings_initializer="glorot_uniform")
    emb.resize(1000, seed=0)
    lim = np.sqrt(6.0 / (1000 + 4))
    assert np.abs(emb.embeddings[10:]).max() <= lim and np.abs(emb.embeddings[10:]).max() > lim / 2
    zeros = Embedding(3, 2)
    zeros.resize(5, initializer="zeros")
    assert (zeros.embeddings[3:] == 0).all()


def test_resize_errors_name_the_layer_and_the_valid_keys():
    model = _trained("adam")
    before = model.get_weights()
    with pytest.raises(ValueError, match=r"'gmf_user_embedding' has 20 rows and cannot shrink to 19"):
        model.resize_embeddings({"user": NU - 1})
    with pytest.raises(ValueError, match=r"'usr'.*\['item', 'user'\].*gmf_item_embedding"):
        model.resize_embeddings({"usr": 30})
    with pytest.raises(ValueError, match="must be an integer"):
        model.resize_embeddings({"user": 30.0})
    with pytest.raises(ValueError, match="asked for 30 and 31 rows"):
        model.resize_embeddings({"user": 30, "gmf_user_embedding": 31})
    with pytest.raises(ValueError, match="cannot shrink"):   # checked before anything grows
        model.resize_embeddings({"item": NI + 4, "user": 2})
    with pytest.raises(ValueError, match="seed"):
        model.resize_embeddings({"user": 30}, seed=-1)
    with pytest.raises(TypeError, match="dict"):
        model.resize_embeddings([("user", 30)])
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="cannot shrink"):
        model.get_layer("gmf_item_embedding").resize(3)
    model.resize_embeddings({"user": NU})                     # same size: nothing changes
    assert model.get_weights()[0] is not None and model.get_layer("gmf_user_embedding").input_dim == NU


def test_save_and_load_after_resize_continue_the_same_fit(tmp_path, one_thread):
    model = _trained(optimizers.Adam(0.01, catch_up=False))
    model.resize_embeddings({"user": NU + GROW_U, "item": NI + GROW_I}, seed=0)
    path = tmp_path / "grown.neurec"
    model.save(path)                       # before any fit at the new size
    loaded = load_model(path)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(model.optimizer.variables(), loaded.optimizer.variables()):
        np.testing.assert_array_equal(a, b)
    for m in (model, loaded):
        m.fit(_sampler(NU + GROW_U, NI + GROW_I, seed=4), epochs=1, batch_size=16, verbose=0,
              seed=2)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


def _functional(nu, ni):
    u, i = Input(shape=(1,), name="u_ids"), Input(shape=(1,), name="i_ids")
    eu = Flatten()(Embedding(nu, 6, name="users")(u))
    ei = Flatten()(Embedding(ni, 6, name="items")(i))
    return Model([u, i], Dense(1, activation="sigmoid")(Dot(axes=1)([eu, ei])))


@pytest.mark.parametrize("make,keys", [
    (lambda nu, ni: GMF(nu, ni, factors=4), ("user", "item")),
    (lambda nu, ni: MF(nu, ni, factors=4, use_bias=True), ("user", "item")),
    (_functional, ("u_ids", "i_ids")),
    (_functional, ("users", "items")),     # by Embedding layer name
])
def test_grown_models_recommend_over_the_grown_item_range(make, keys, one_thread):
    model = _trained("adam", make=make)
    model.resize_embeddings({keys[0]: NU + GROW_U, keys[1]: NI + GROW_I}, seed=3)
    assert all(layer.input_dim in (NU + GROW_U, NI + GROW_I)
               for layer in model.layers if isinstance(layer, Embedding))
    model.fit(_sampler(NU + GROW_U, NI + GROW_I, seed=1), epochs=1, batch_size=16, verbose=0)
    users = np.arange(NU + GROW_U)
    ids, scores = model.recommend(users, k=NI + GROW_I)
    assert ids.shape == (NU + GROW_U, NI + GROW_I)
    assert (np.sort(ids, axis=1) == np.arange(NI + GROW_I)).all()  # the new items are ranked
    new = np.arange(NI, NI + GROW_I)
    ids, scores = model.recommend([NU + 1], k=2, items=new)        # candidates among new items
    assert set(ids[0]) <= set(new.tolist())
    np.testing.assert_allclose(
        scores[0], model.predict([np.array([NU + 1, NU + 1]), ids[0]])[:, 0], rtol=1e-6)


def test_neumf_recommends_new_items_and_serves_new_users():
    model = _trained("adam")
    model.resize_embeddings({"user": NU + 1, "item": NI + GROW_I}, seed=0)
    ids, _ = model.recommend([NU], k=NI + GROW_I)
    assert sorted(ids[0].tolist()) == list(range(NI + GROW_I))
    pop = model.recommend([NU + 5], k=3, unknown="popular")[0]  # popularity of the last fit
    assert (pop[0] >= 0).all() and (pop[0] < NI).all()          # new items: no interactions


def test_resizing_a_layer_directly_rebuilds_the_plan_and_keeps_the_state():
    model = _trained("adam")
    state = _opt_state(model)
    model.get_layer("gmf_item_embedding").resize(NI + 2, seed=0)
    model.get_layer("mlp_item_embedding").resize(NI + 2, seed=0)
    out = model.predict([np.array([0, 1]), np.array([NI, NI + 1])])   # the plan noticed
    assert out.shape == (2, 1)
    for old, new in zip(state[1:], model.optimizer.variables()[1:]):
        np.testing.assert_array_equal(_lead(new, old.shape), old)


def test_partial_fit_users_grows_through_resize_and_keeps_adam_state():
    model = _trained(optimizers.Adam(0.01), make=lambda nu, ni: MF(nu, ni, factors=4))
    state = _opt_state(model)
    row = InteractionMatrix.from_arrays([0, 0], [1, 2], shape=(1, NI))
    model.partial_fit_users([NU + 2], row)
    emb = model.get_layer("mf_user_embedding").embeddings
    assert emb.shape[0] == NU + 3 and (emb[NU:NU + 2] == 0).all() and emb[NU + 2].any()
    for old, new in zip(state, model.optimizer.variables()):   # was reset before
        np.testing.assert_array_equal(_lead(new, old.shape), old)


def _hybrid(nu, ni, n_feat=3):
    u, i = Input(shape=(1,), name="user"), Input(shape=(1,), name="item")
    f = Input(shape=(n_feat,), name="item_tags")
    eu = Flatten()(Embedding(nu, 4, name="u_emb")(u))
    ei = Flatten()(Embedding(ni, 4, name="i_emb")(i))
    h = Dense(8, activation="relu")(Concatenate()([eu, ei, f]))
    return Model([u, i, f], Dense(1, activation="sigmoid")(h))


def test_item_features_shorter_than_the_grown_table_raise_naming_the_feature():
    tags = np.random.default_rng(0).random((NI, 3)).astype(np.float32)
    model = _hybrid(NU, NI)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    model.fit(NegativeSampler(_log(NU, NI, 0), num_negatives=1, item_features={"item_tags": tags}),
              epochs=1, verbose=0)
    model.resize_embeddings({"item": NI + 2}, initializer="zeros")
    with pytest.raises(ValueError, match=r"item_features\['item_tags'\] has 15 rows .* 17 items"):
        model.recommend([0], k=3, item_features={"item_tags": tags})
    with pytest.raises(ValueError, match=r"item_features\['item_tags'\] has 15 rows"):
        NegativeSampler(_log(NU, NI + 2, 0), item_features={"item_tags": tags})
    # cold items: zero id rows, scored from their features alone
    more = np.vstack([tags, tags[:1], tags[:1]])
    ids, scores = model.recommend([0], k=NI + 2, item_features={"item_tags": more})
    s = dict(zip(ids[0].tolist(), scores[0].tolist()))
    assert s[NI] == s[NI + 1]                   # same features, same score
    model.get_layer("i_emb").embeddings[0] = 0.0
    assert model.predict([np.array([0]), np.array([0]), tags[:1]])[0, 0] == pytest.approx(s[NI])
