"""Public API that had no test: initializers, predict_on_batch, ``Model.__call__``, weight
lists, configs, ``Sequential.pop``, ``load_model(compile=False)``, ``save(overwrite=False)``,
``recommend(item_input=)``, ``Dense(bias_regularizer=)``, ``model_from_json`` and the
optimizers' defaults.

Expected values come from the Keras documentation's formulas (initializer limits and
standard deviations, optimizer defaults) or from brute force.
"""
import math

import numpy as np
import pytest

import neurec
from neurec import initializers, optimizers, regularizers
from neurec.layers import Concatenate, Dense, Embedding, Flatten, Input, Multiply
from neurec.models import Model, Sequential, load_model

TRUNC_STD = 0.87962566103423978  # std of a standard normal truncated to [-2, 2]


# -- initializers ---------------------------------------------------------------------------
FAN_IN, FAN_OUT = 400, 100  # a (400, 100) kernel: fan_in != fan_out tells the modes apart
SHAPE = (FAN_IN, FAN_OUT)

# Keras documentation: (distribution, limit for uniform / stddev for truncated normal)
VARIANCE_SCALING = {
    "GlorotUniform": ("uniform", math.sqrt(6 / (FAN_IN + FAN_OUT))),
    "GlorotNormal": ("normal", math.sqrt(2 / (FAN_IN + FAN_OUT))),
    "HeUniform": ("uniform", math.sqrt(6 / FAN_IN)),
    "HeNormal": ("normal", math.sqrt(2 / FAN_IN)),
    "LecunUniform": ("uniform", math.sqrt(3 / FAN_IN)),
    "LecunNormal": ("normal", math.sqrt(1 / FAN_IN)),
}


@pytest.mark.parametrize("name", sorted(VARIANCE_SCALING))
def test_variance_scaling_statistics(name):
    dist, param = VARIANCE_SCALING[name]
    w = getattr(initializers, name)(seed=0)(SHAPE)
    assert w.shape == SHAPE and w.dtype == np.float32
    n = w.size  # 40,000 draws: the sample std is within ~1% of the true one (4 sigma)
    assert abs(w.mean()) < 4 * param / math.sqrt(n)
    if dist == "uniform":
        assert np.abs(w).max() <= param
        assert np.abs(w).max() > 0.999 * param  # the whole interval is used
        assert w.std() == pytest.approx(param / math.sqrt(3), rel=0.015)
    else:
        # Keras: a normal truncated at 2 stddev, scaled so that the result has this stddev
        bound = 2 * param / TRUNC_STD
        assert np.abs(w).max() <= bound * (1 + 1e-6)
        assert np.abs(w).max() > 0.99 * bound
        assert w.std() == pytest.approx(param, rel=0.015)


def test_variance_scaling_fans_of_embeddings_and_3d_kernels():
    """fan_in is the first dimension of a 2-D kernel and (receptive field x in) beyond."""
    w = initializers.HeUniform(seed=1)((5, 30, 20))  # receptive field 5: fan_in 150, fan_out 100
    assert np.abs(w).max() <= math.sqrt(6 / 150)
    assert np.abs(w).max() > 0.99 * math.sqrt(6 / 150)
    w = initializers.GlorotUniform(seed=1)((1000,))  # 1-D: fan_in = fan_out = 1000
    assert np.abs(w).max() <= math.sqrt(6 / 2000) and np.abs(w).max() > 0.99 * math.sqrt(6 / 2000)


def test_truncated_normal_statistics():
    w = initializers.TruncatedNormal(mean=1.0, stddev=0.5, seed=3)((200_000,))
    assert w.min() >= 0.0 and w.max() <= 2.0  # mean -/+ 2 stddev
    assert w.min() < 0.01 and w.max() > 1.99
    assert w.mean() == pytest.approx(1.0, abs=0.005)
    assert w.std() == pytest.approx(0.5 * TRUNC_STD, rel=0.01)
    d = initializers.TruncatedNormal(seed=3)((200_000,))  # Keras defaults: mean 0, stddev 0.05
    assert np.abs(d).max() <= 0.1 and d.std() == pytest.approx(0.05 * TRUNC_STD, rel=0.01)


def test_random_uniform_and_normal_statistics():
    u = initializers.RandomUniform(-0.3, 0.7, seed=4)((100_000,))
    assert u.min() >= -0.3 and u.max() < 0.7 and u.min() < -0.299 and u.max() > 0.699
    assert u.mean() == pytest.approx(0.2, abs=0.005)
    assert u.std() == pytest.approx(1 / math.sqrt(12), rel=0.01)
    d = initializers.RandomUniform(seed=4)((100_000,))  # Keras defaults: [-0.05, 0.05)
    assert d.min() >= -0.05 and d.max() < 0.05 and d.max() > 0.0499
    n = initializers.RandomNormal(mean=2.0, stddev=3.0, seed=4)((100_000,))
    assert n.mean() == pytest.approx(2.0, abs=0.05) and n.std() == pytest.approx(3.0, rel=0.01)
    assert initializers.RandomNormal(seed=4)((100_000,)).std() == pytest.approx(0.05, rel=0.01)


def test_constant_initializers():
    for init, value in ((initializers.Zeros(), 0.0), (initializers.Ones(), 1.0),
                        (initializers.Constant(2.5), 2.5), (initializers.Constant(), 0.0)):
        w = init((3, 4))
        assert w.dtype == np.float32 and w.shape == (3, 4)
        np.testing.assert_array_equal(w, np.full((3, 4), value, np.float32))
    assert initializers.get("zeros")((2,)).tolist() == [0.0, 0.0]
    c = initializers.get(initializers.serialize(initializers.Constant(-1.5)))
    assert c((2,)).tolist() == [-1.5, -1.5]


RANDOM = ["GlorotUniform", "GlorotNormal", "HeUniform", "HeNormal", "LecunUniform", "LecunNormal",
          "TruncatedNormal", "RandomUniform", "RandomNormal"]


@pytest.mark.parametrize("name", RANDOM)
def test_initializer_seeding(name):
    cls = getattr(initializers, name)
    a, b, c = cls(seed=7)((20, 10)), cls(seed=7)((20, 10)), cls(seed=8)((20, 10))
    np.testing.assert_array_equal(a, b)  # same seed, same values
    assert not np.array_equal(a, c)
    # unseeded: neurec's global generator, reset by set_random_seed
    neurec.utils.set_random_seed(3)
    d = cls()((20, 10))
    e = cls()((20, 10))
    neurec.utils.set_random_seed(3)
    np.testing.assert_array_equal(cls()((20, 10)), d)
    assert not np.array_equal(d, e)
    assert cls.__name__ in repr(cls(seed=7)) and cls(seed=7).get_config()["seed"] == 7


def test_layers_use_their_initializers():
    d = Dense(3, kernel_initializer=initializers.Constant(0.25), bias_initializer="ones")
    d.build((None, 4))
    np.testing.assert_array_equal(d.kernel, np.full((4, 3), 0.25, np.float32))
    np.testing.assert_array_equal(d.bias, np.ones(3, np.float32))
    e = Embedding(1000, 50)  # Keras default: RandomUniform(-0.05, 0.05)
    e.build((None, 1))
    assert np.abs(e.embeddings).max() < 0.05 and np.abs(e.embeddings).max() > 0.049
    k = Dense(100)
    k.build((None, 400))  # Keras default kernel: GlorotUniform; bias: zeros
    assert np.abs(k.kernel).max() <= math.sqrt(6 / 500) and np.abs(k.kernel).max() > 0.99 * math.sqrt(6 / 500)
    assert not k.bias.any()


# -- Model API --------------------------------------------------------------------------------
def gmf(nu=30, ni=20):
    u, i = Input(shape=(1,), name="user"), Input(shape=(1,), name="item")
    g = Multiply()([Flatten()(Embedding(nu, 8, name="eu")(u)), Flatten()(Embedding(ni, 8, name="ei")(i))])
    return Model([u, i], Dense(1, activation="sigmoid", name="out")(g))


def ids(n=200, nu=30, ni=20, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, nu, n), rng.integers(0, ni, n)


def brute_gmf(model, u, i):
    eu, ei = model.get_layer("eu").embeddings, model.get_layer("ei").embeddings
    k, b = model.get_layer("out").get_weights()
    z = (eu[u].astype(np.float64) * ei[i]) @ k[:, 0] + b[0]
    return 1 / (1 + np.exp(-z))


def test_predict_on_batch_and_call_are_predict():
    model = gmf()
    u, i = ids()
    want = brute_gmf(model, u, i)
    for got in (model.predict_on_batch([u, i]), model([u, i]), model([u, i], training=False),
                model({"user": u, "item": i})):
        assert got.shape == (200, 1) and got.dtype == np.float32
        np.testing.assert_allclose(got[:, 0], want, rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="symbolic"):
        model(model.inputs)


def test_trainable_and_non_trainable_weights():
    model = gmf()
    assert [w.shape for w in model.trainable_weights] == [(30, 8), (20, 8), (8, 1), (1,)]
    assert model.non_trainable_weights == []
    model.get_layer("ei").trainable = False
    assert [w.shape for w in model.trainable_weights] == [(30, 8), (8, 1), (1,)]
    assert [w.shape for w in model.non_trainable_weights] == [(20, 8)]
    assert model.non_trainable_weights[0] is model.get_layer("ei").embeddings  # live arrays
    # fit leaves the non-trainable weights alone and trains the rest
    model.compile(optimizer="adam", loss="binary_crossentropy")
    before = [w.copy() for w in model.trainable_weights], model.non_trainable_weights[0].copy()
    u, i = ids()
    model.fit([u, i], (u % 2).astype(np.float32), epochs=1, batch_size=32, verbose=0)
    np.testing.assert_array_equal(model.non_trainable_weights[0], before[1])
    assert all(not np.array_equal(a, b) for a, b in zip(model.trainable_weights, before[0]))


def test_model_get_config_from_config_round_trip():
    model = gmf()
    cfg = model.get_config()
    clone = Model.from_config(cfg)
    assert [l.name for l in clone.layers] == [l.name for l in model.layers]
    assert [type(l) for l in clone.layers] == [type(l) for l in model.layers]
    assert clone.get_config() == cfg
    assert [w.shape for w in clone.weights] == [w.shape for w in model.weights]
    clone.set_weights(model.get_weights())
    u, i = ids()
    np.testing.assert_array_equal(clone.predict([u, i]), model.predict([u, i]))


def test_sequential_pop():
    x = Input(shape=(4,))
    d1, d2, d3 = Dense(6, activation="relu"), Dense(3), Dense(1)
    model = Sequential([x, d1, d2, d3])
    assert model.output_shape == (None, 1)
    assert model.pop() is d3
    assert model.output_shape == (None, 3) and model.layers[-1] is d2
    data = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    h = np.maximum(data.astype(np.float64) @ d1.kernel + d1.bias, 0)
    np.testing.assert_allclose(model.predict(data), h @ d2.kernel + d2.bias, rtol=1e-5, atol=1e-6)
    assert model.pop() is d2 and model.output_shape == (None, 6)
    model.pop()
    with pytest.raises(ValueError, match="no layers"):
        model.pop()


def test_load_model_compile_false(tmp_path):
    model = gmf()
    model.compile(optimizer=optimizers.Adam(0.01), loss="binary_crossentropy", metrics=["auc"])
    u, i = ids()
    model.fit([u, i], (u % 2).astype(np.float32), epochs=1, batch_size=32, verbose=0)
    path = tmp_path / "m.neurec"
    model.save(path)
    bare = load_model(path, compile=False)
    assert bare.optimizer is None and not bare._compiled
    with pytest.raises(RuntimeError, match="compile"):
        bare.fit([u, i], (u % 2).astype(np.float32), verbose=0)
    np.testing.assert_array_equal(bare.predict([u, i]), model.predict([u, i]))
    full = load_model(path)
    assert full._compiled and full.optimizer.iterations == model.optimizer.iterations == 7
    assert full.metrics_names == ["loss", "auc"]


def test_save_overwrite_false(tmp_path):
    model = gmf()
    path = tmp_path / "m.neurec"
    model.save(path)
    first = path.read_bytes()
    model.get_layer("out").set_weights([np.ones((8, 1), np.float32), np.zeros(1, np.float32)])
    with pytest.raises(FileExistsError):
        model.save(path, overwrite=False)
    assert path.read_bytes() == first  # untouched
    wpath = tmp_path / "w.weights.npz"
    model.save_weights(wpath)
    with pytest.raises(FileExistsError):
        model.save_weights(wpath, overwrite=False)
    model.save(path, overwrite=True)
    np.testing.assert_array_equal(load_model(path).get_layer("out").kernel, np.ones((8, 1)))


def test_model_from_json_is_public_and_round_trips():
    """``neurec.models.model_from_json`` (Keras's ``keras.models.model_from_json``) is in
    the public surface; ``tests/test_keras_api.py`` tests it in depth."""
    import neurec.models
    assert "model_from_json" in neurec.models.__all__
    assert all(hasattr(neurec.models, name) for name in neurec.models.__all__)
    model = gmf()
    twin = neurec.models.model_from_json(model.to_json())
    twin.set_weights(model.get_weights())
    u, i = ids()
    np.testing.assert_array_equal(twin.predict([u, i]), model.predict([u, i]))


def test_recommend_with_named_inputs_in_any_order():
    """``item_input=``/``user_input=`` pick the id inputs when they are not the first two."""
    it, us = Input(shape=(1,), name="item_id"), Input(shape=(1,), name="user_id")
    eu, ei = Embedding(12, 4, name="eu"), Embedding(9, 4, name="ei")
    out = Dense(1, activation="sigmoid", name="out")(
        Concatenate()([Flatten()(eu(us)), Flatten()(ei(it))]))
    model = Model([it, us], out)  # items first
    users = np.array([0, 5, 11])
    got_ids, got_scores = model.recommend(users, k=3, user_input="user_id", item_input="item_id")
    k, b = model.get_layer("out").get_weights()
    for row, user in enumerate(users):  # brute force over the 9 items
        z = np.concatenate([np.repeat(eu.embeddings[user][None], 9, 0), ei.embeddings], 1) @ k[:, 0] + b
        order = np.argsort(-z, kind="stable")[:3]
        np.testing.assert_array_equal(got_ids[row], order)
        np.testing.assert_allclose(got_scores[row], 1 / (1 + np.exp(-z[order])), rtol=1e-5)
    with pytest.raises(ValueError, match="no input"):
        model.recommend(users, k=3, user_input="user_id", item_input="nope")


def test_dense_bias_regularizer():
    """The L2 penalty of the bias joins the loss and its gradient 2 * l2 * b the update."""
    x = Input(shape=(2,))
    d = Dense(1, bias_regularizer=regularizers.L2(0.5), kernel_initializer="zeros",
              bias_initializer=initializers.Constant(3.0))
    model = Model(x, d(x))
    assert d.get_config()["bias_regularizer"] == {"class_name": "L2", "config": {"l2": 0.5}}
    model.compile(optimizer=optimizers.SGD(0.1), loss="mse")
    xs, ys = np.zeros((4, 2), np.float32), np.full(4, 3.0, np.float32)  # zero data loss at b = 3
    assert model.evaluate(xs, ys, verbose=0) == pytest.approx(0.5 * 9.0)
    model.fit(xs, ys, batch_size=4, epochs=1, shuffle=False, verbose=0)
    # gradient: data 2 * (b - 3) = 0, penalty 2 * 0.5 * 3 = 3 -> b = 3 - 0.1 * 3
    assert d.bias[0] == pytest.approx(2.7, rel=1e-6)
    assert not d.kernel.any()
    plain = Dense(1, bias_initializer=initializers.Constant(3.0), kernel_initializer="zeros")
    x2 = Input(shape=(2,))
    m2 = Model(x2, plain(x2))
    m2.compile(optimizer=optimizers.SGD(0.1), loss="mse")
    m2.fit(xs, ys, batch_size=4, epochs=1, shuffle=False, verbose=0)
    assert plain.bias[0] == 3.0  # without the regularizer, nothing moves


# -- optimizer defaults --------------------------------------------------------------------
# keras.optimizers.* signatures (Keras 3 documentation)
KERAS_DEFAULTS = {
    "SGD": dict(learning_rate=0.01, momentum=0.0, nesterov=False),
    "Adam": dict(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False),
    "Adagrad": dict(learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7),
    "RMSprop": dict(learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False),
}


@pytest.mark.parametrize("name", sorted(KERAS_DEFAULTS))
def test_optimizer_defaults_match_keras(name):
    opt = getattr(optimizers, name)()
    for key, value in KERAS_DEFAULTS[name].items():
        assert getattr(opt, key) == value, key
    assert opt.iterations == 0 and opt.sparse_updates and opt.catch_up
    by_name = optimizers.get(name.lower())
    assert type(by_name) is type(opt) and by_name.get_config() == opt.get_config()


def test_compile_default_optimizer_is_rmsprop():
    model = gmf()
    model.compile(loss="mse")  # Keras: optimizer="rmsprop"
    assert type(model.optimizer) is optimizers.RMSprop
    assert model.optimizer.learning_rate == 0.001
