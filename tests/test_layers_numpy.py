"""``Layer.call_numpy`` is the one NumPy definition of every layer: eager calls run it in
float32 (as the C core), the reference (``neurec._reference``) in float64."""
import warnings

import numpy as np
import pytest

from graphs import ALL, data_for
from neurec import _reference as ref
from neurec import activations
from neurec.layers import (
    Activation,
    Add,
    Average,
    Concatenate,
    Dense,
    Dot,
    Dropout,
    Embedding,
    Flatten,
    Input,
    Multiply,
    Subtract,
)
from neurec.models import Model


def test_eager_calls_compute_in_float32_like_keras():
    rng = np.random.default_rng(0)
    x64 = rng.normal(size=(6, 4))
    dense = Dense(3, activation="sigmoid")
    y = dense(x64)
    assert y.dtype == np.float32
    # float64 input is cast to float32 first (Keras casts to the compute dtype)
    np.testing.assert_array_equal(y, dense(x64.astype(np.float32)))
    np.testing.assert_array_equal(
        y, activations.sigmoid(x64.astype(np.float32) @ dense.kernel + dense.bias))
    a, b = rng.normal(size=(6, 4)), rng.normal(size=(6, 4))
    for layer in (Add(), Multiply(), Subtract(), Average(), Concatenate(), Dot(axes=1),
                  Dot(axes=1, normalize=True)):
        assert layer([a, b]).dtype == np.float32, layer
    assert Activation("tanh")(a).dtype == np.float32
    ids = np.array([[0], [3]])
    assert Embedding(5, 2)(ids).dtype == np.float32


def test_call_numpy_with_float64_weights_computes_in_float64():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5, 4))
    dense = Dense(2, activation="tanh")
    dense(x)  # built
    w64 = [w.astype(np.float64) for w in dense.weights]
    y64 = dense.call_numpy(x, weights=w64)
    assert y64.dtype == np.float64
    np.testing.assert_allclose(y64, np.tanh(x @ w64[0] + w64[1]), rtol=1e-15)
    # the layer's own weights are untouched and the float32 result agrees to float32 precision
    np.testing.assert_allclose(dense(x), y64, rtol=2e-6, atol=1e-7)
    dot = Dot(axes=1)
    d64 = dot.call_numpy([x, x])
    assert d64.dtype == np.float64
    np.testing.assert_allclose(d64[:, 0], (x * x).sum(axis=1), rtol=1e-15)


def test_float64_activations_are_stable_and_stay_float64():
    z = np.array([-1000.0, -30.0, 0.0, 30.0, 1000.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow in exp
        s = activations.sigmoid(z)
    assert s.dtype == np.float64
    np.testing.assert_allclose(s, [0.0, 1 / (1 + np.exp(30.0)), 0.5, 1 / (1 + np.exp(-30.0)), 1.0],
                               rtol=1e-15, atol=1e-300)
    for name in ("linear", "relu", "tanh", "softmax"):
        assert getattr(activations, name)(z).dtype == np.float64
        assert getattr(activations, name)(z.astype(np.float32)).dtype == np.float32


def test_the_reference_forward_is_the_layers_call_numpy(monkeypatch):
    """Changing one layer's ``call_numpy`` changes the reference: there is no second copy."""
    model = ALL["neumf"]()
    xs = data_for(model, 20, seed=2)
    before = ref.forward(model, xs)[0]
    tanh_dense = next(l for l in model.layers if isinstance(l, Dense)
                      and activations.serialize(l.activation) == "tanh")
    original = Dense.call_numpy

    def shifted(self, x, training=False, weights=None):
        y = original(self, x, training, weights)
        return y + 1.0 if self is tanh_dense else y

    monkeypatch.setattr(Dense, "call_numpy", shifted)
    after = ref.forward(model, xs)[0]
    assert after.dtype == np.float64
    assert np.abs(after - before).max() > 1e-3


def test_normalized_dot_of_a_zero_vector_is_zero_as_in_c():
    u, i = Input(shape=(1,)), Input(shape=(1,))
    eu = Embedding(3, 4, name="eu")
    ei = Embedding(3, 4, name="ei")
    cos = Dot(axes=1, normalize=True)([Flatten()(eu(u)), Flatten()(ei(i))])
    model = Model([u, i], cos)
    eu.embeddings[0] = 0.0  # user 0 has a zero vector: the C core divides by max(norm, 1e-12)
    xs = [np.array([0, 1, 2]), np.array([1, 1, 2])]
    want = ref.forward(model, xs)[0]
    assert np.isfinite(want).all() and want[0, 0] == 0.0
    np.testing.assert_allclose(model.predict(xs), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("rate", [0.25, 0.5])
def test_dropout_multiplies_by_its_mask(rate):
    x = np.random.default_rng(3).normal(size=(200, 8)).astype(np.float32)
    layer = Dropout(rate, seed=4)
    np.testing.assert_array_equal(layer(x), x)  # inference
    y = layer(x, training=True)
    kept = y != 0
    assert 0.5 * rate < 1 - kept.mean() < 1.5 * rate
    np.testing.assert_allclose(y[kept], x[kept] / (1 - rate), rtol=1e-6)
    mask = np.where(np.arange(x.size).reshape(x.shape) % 3 == 0, 0.0, 1 / (1 - rate))
    np.testing.assert_array_equal(layer.call_numpy(x, training=True, mask=mask),
                                  x * mask.astype(np.float32))


def test_the_reference_forward_runs_in_float64():
    u, i = Input(shape=(1,)), Input(shape=(1,))
    eu, ei = Embedding(7, 3), Embedding(5, 3)
    d = Dense(2, activation="tanh")
    out = Dense(1, activation="sigmoid")(d(Concatenate()([Flatten()(eu(u)), Flatten()(ei(i))])))
    model = Model([u, i], out)
    xs = [np.arange(7) % 7, np.arange(7) % 5]
    got = ref.forward(model, xs)[0]
    assert got.dtype == np.float64
    w = [a.astype(np.float64) for a in model.get_weights()]
    h = np.tanh(np.concatenate([w[0][xs[0]], w[1][xs[1]]], axis=1) @ w[2] + w[3])
    want = 1 / (1 + np.exp(-(h @ w[4] + w[5])))
    np.testing.assert_allclose(got, want, rtol=1e-14)
