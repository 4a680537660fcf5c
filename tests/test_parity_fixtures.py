"""Parity with Keras 3 and PyTorch that runs without either framework.

The fixtures in ``tests/fixtures/`` were produced by Keras 3 (torch backend) and PyTorch
with ``tests/fixtures/make_parity_fixtures.py`` (which also checks that the two agree; each
file names the versions in its ``versions`` entry). neurec must reproduce:

* one epoch (4 batches of 32, no shuffle) of Adam, SGD (Nesterov momentum), Adagrad and
  RMSprop (with momentum) on a tiny NeuMF-style model, in dense mode
  (``sparse_updates=False``, the README's "reproduces Keras / PyTorch exactly"), and
  Adagrad, whose lazy updates are exact, in the default sparse mode too;
* the README's NCF example and the NMF example: Keras's predictions from Keras's initial
  weights, and the NCF example's weights, loss and predictions after an epoch of Adam.

The live comparisons (``test_torch_parity.py``, ``test_keras_parity.py``) still run where
the frameworks are installed.
"""
import os

import numpy as np
import pytest

from neurec import optimizers
from neurec.layers import Concatenate, Dense, Dot, Embedding, Flatten, Input, Multiply
from neurec.models import Model

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
NU, NI, BATCH = 12, 10, 32

OPTIMIZERS = {
    "adam": lambda sparse: optimizers.Adam(0.01, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                                           sparse_updates=sparse),
    "sgd": lambda sparse: optimizers.SGD(0.5, momentum=0.9, nesterov=True, sparse_updates=sparse),
    "adagrad": lambda sparse: optimizers.Adagrad(0.1, initial_accumulator_value=0.1,
                                                 epsilon=1e-30, sparse_updates=sparse),
    "rmsprop": lambda sparse: optimizers.RMSprop(0.01, rho=0.9, momentum=0.5, epsilon=1e-30,
                                                 sparse_updates=sparse),
}


def load(name):
    with np.load(os.path.join(FIXTURES, name)) as f:
        return {k: f[k] for k in f.files}


def weights(fx, prefix):
    """Arrays ``<prefix>_0``, ``<prefix>_1``, ... in order."""
    n = sum(1 for key in fx if key.startswith(prefix + "_") and key[len(prefix) + 1:].isdigit())
    return [fx[f"{prefix}_{k}"] for k in range(n)]


def tiny_neumf():
    """The fixture script's ``tiny_neumf`` in neurec (same layer order)."""
    u, i = Input(shape=(1,)), Input(shape=(1,))
    layers = [Embedding(NU, 4), Embedding(NI, 4), Embedding(NU, 4), Embedding(NI, 4),
              Dense(8, activation="relu"), Dense(4, activation="relu"),
              Dense(1, activation="sigmoid")]
    gu, gi, mu, mi, d1, d2, out = layers
    gmf = Multiply()([Flatten()(gu(u)), Flatten()(gi(i))])
    h = d2(d1(Concatenate()([Flatten()(mu(u)), Flatten()(mi(i))])))
    return Model([u, i], out(Concatenate()([gmf, h]))), layers


def set_layer_weights(layers, ws):
    k = 0
    for layer in layers:
        n = len(layer.get_weights())
        layer.set_weights(ws[k:k + n])
        k += n


def test_fixtures_are_small_and_name_their_sources():
    files = [f for f in os.listdir(FIXTURES) if f.endswith(".npz")]
    assert len(files) == 5
    assert sum(os.path.getsize(os.path.join(FIXTURES, f)) for f in files) < 200_000
    for f in files:
        v = str(load(f)["versions"])
        assert "keras 3." in v and "torch" in v


# Adagrad leaves rows without gradient alone, so its lazy (sparse) updates are the dense
# ones; the other optimizers' sparse modes apply skipped steps when a row comes back, so
# rows absent from the last batch still differ from dense updates at the end of the epoch.
CASES = [(name, False) for name in sorted(OPTIMIZERS)] + [("adagrad", True)]
# (no "torch" in the test names: .ci/sanitize.sh deselects -k torch, and these need neither)


@pytest.mark.parametrize("name, sparse", CASES, ids=[f"{n}-{'sparse' if s else 'dense'}"
                                                     for n, s in CASES])
def test_one_epoch_of_each_optimizer_matches_the_fixtures(name, sparse, one_thread):
    fx = load(f"optimizers_{name}.npz")
    w0 = weights(fx, "w0")
    model, layers = tiny_neumf()
    set_layer_weights(layers, w0)
    model.compile(optimizer=OPTIMIZERS[name](sparse), loss="binary_crossentropy")
    h = model.fit([fx["users"], fx["items"]], fx["labels"], batch_size=BATCH, epochs=1,
                  shuffle=False, verbose=0)
    assert model.optimizer.iterations == len(fx["labels"]) // BATCH
    got = [w for layer in layers for w in layer.get_weights()]
    for side in ("keras", "torch"):
        for k, (g, want, before) in enumerate(zip(got, weights(fx, side), w0)):
            assert np.max(np.abs(want - before)) > 1e-3  # the reference moved every array
            np.testing.assert_allclose(g, want, rtol=0, atol=2e-5, err_msg=f"{side} weight {k}")
        assert h.history["loss"][0] == pytest.approx(float(fx[f"{side}_loss"]), rel=1e-5)


def test_sparse_adam_differs_from_dense_reference(one_thread):
    """The fixtures can tell the modes apart: default sparse Adam is not dense Adam here."""
    fx = load("optimizers_adam.npz")
    model, layers = tiny_neumf()
    set_layer_weights(layers, weights(fx, "w0"))
    model.compile(optimizer=OPTIMIZERS["adam"](True), loss="binary_crossentropy")
    model.fit([fx["users"], fx["items"]], fx["labels"], batch_size=BATCH, shuffle=False, verbose=0)
    gap = max(float(np.max(np.abs(g - w))) for g, w in
              zip([w for l in layers for w in l.get_weights()], weights(fx, "torch")))
    assert gap > 1e-4


def readme_ncf(n_users=60, n_items=50):
    u = Input(shape=(1,))
    i = Input(shape=(1,))
    emb_u = Embedding(input_dim=n_users, output_dim=8)
    emb_i = Embedding(input_dim=n_items, output_dim=8)
    dense = Dense(1, activation="sigmoid")
    eu, ei = Flatten()(emb_u(u)), Flatten()(emb_i(i))
    out = dense(Concatenate(axis=1)([Dot(axes=1)([eu, ei]), u, i]))
    return Model(inputs=[u, i], outputs=out), [emb_u, emb_i, dense]


def test_readme_ncf_predictions_match_keras():
    fx = load("readme_examples.npz")
    model, layers = readme_ncf()
    set_layer_weights(layers, weights(fx, "ncf_w0"))
    got = model.predict([fx["ncf_users"], fx["ncf_items"]], verbose=0)
    assert got.shape == fx["ncf_pred"].shape == (640, 1)
    np.testing.assert_allclose(got, fx["ncf_pred"], rtol=0, atol=1e-5)
    assert np.ptp(fx["ncf_pred"]) > 1e-2


def test_readme_ncf_one_epoch_of_adam_matches_keras(one_thread):
    fx = load("readme_examples.npz")
    model, layers = readme_ncf()
    w0 = weights(fx, "ncf_w0")
    w0[2] = w0[2] * fx["ncf_adam_kernel_scale"]  # as the fixture script did before training
    set_layer_weights(layers, w0)
    model.compile(optimizer=optimizers.Adam(learning_rate=0.01, sparse_updates=False),
                  loss="binary_crossentropy")
    x = [fx["ncf_users"], fx["ncf_items"]]
    h = model.fit(x, fx["ncf_labels"], batch_size=64, epochs=1, shuffle=False, verbose=0)
    assert model.optimizer.iterations == 10
    got = [w for layer in layers for w in layer.get_weights()]
    for k, (g, want, before) in enumerate(zip(got, weights(fx, "ncf_adam"), w0)):
        assert np.max(np.abs(want - before)) > 1e-3
        np.testing.assert_allclose(g, want, rtol=0, atol=1e-4, err_msg=f"weight {k}")
    assert h.history["loss"][0] == pytest.approx(float(fx["ncf_adam_loss"]), rel=1e-4)
    np.testing.assert_allclose(model.predict(x, verbose=0), fx["ncf_adam_pred"], rtol=0, atol=1e-4)


def test_readme_nmf_predictions_match_keras():
    fx = load("readme_examples.npz")
    u, i = Input(shape=(3,)), Input(shape=(3,))
    emb_u, emb_i, dense = Embedding(60, 4), Embedding(50, 4), Dense(1, activation="sigmoid")
    model = Model(inputs=[u, i], outputs=dense(Dot(axes=1)([emb_u(u), emb_i(i)])))
    assert model.output_shape == (None, 4, 1)
    set_layer_weights([emb_u, emb_i, dense], weights(fx, "nmf_w0"))
    got = model.predict([fx["nmf_users"], fx["nmf_items"]], verbose=0)
    assert got.shape == fx["nmf_pred"].shape
    np.testing.assert_allclose(got, fx["nmf_pred"], rtol=0, atol=1e-5)
    assert np.ptp(fx["nmf_pred"]) > 1e-3
