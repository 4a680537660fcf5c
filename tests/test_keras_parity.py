"""Parity of neurec with Keras 3 (torch backend) on the document's two examples.

The same graph is built twice, once with ``keras.layers`` and once with
``neurec.layers``, by one function that takes the layers module; Keras's
initial weights are copied into neurec layer by layer. neurec's Adam, loss and
summary follow Keras's formulas and format, so predictions, weights after an
epoch of Adam, and the summary's shapes and parameter counts must agree.

One deliberate difference: for ``Dense(1, activation="sigmoid")`` +
``binary_crossentropy``, neurec's ``fit`` differentiates the loss through the
logit (gradient ``p - y``), while Keras (torch backend) clips ``p`` to
``[1e-7, 1 - 1e-7]`` first, which zeroes the gradient of saturated samples. The
NCF example concatenates raw ids into the Dense input, so with Keras's initial
kernel about half the samples saturate; the training-parity test scales that
kernel down to stay out of the clip, and a separate test pins which side is
exact against a float64 NumPy gradient.
"""
import os
import re

import numpy as np
import pytest

pytest.importorskip("torch")
os.environ["KERAS_BACKEND"] = "torch"
keras = pytest.importorskip("keras")
if keras.backend.backend() != "torch":  # keras was imported earlier with another backend
    pytest.skip("these tests need Keras's torch backend", allow_module_level=True)
# Keras 3.15 calls np.array(variable) internally, which NumPy 2 flags; not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

import neurec.layers as nl  # noqa: E402
import neurec.models as nm  # noqa: E402
from neurec import optimizers  # noqa: E402

NU, NI = 60, 50


def ncf_example(L, M, n_users=NU, n_items=NI):
    """The document's NCF example; returns (model, trainable layers in build order)."""
    u = L.Input(shape=(1,))
    i = L.Input(shape=(1,))
    emb_u = L.Embedding(input_dim=n_users, output_dim=8)
    emb_i = L.Embedding(input_dim=n_items, output_dim=8)
    dense = L.Dense(1, activation="sigmoid")
    eu = L.Flatten()(emb_u(u))
    ei = L.Flatten()(emb_i(i))
    dot = L.Dot(axes=1)([eu, ei])
    out = dense(L.Concatenate(axis=1)([dot, u, i]))
    return M.Model(inputs=[u, i], outputs=out), [emb_u, emb_i, dense]


def nmf_example(L, M, k, dim, n_users=NU, n_items=NI):
    """The document's NMF example: (None, k) ids -> Embedding -> Dot(axes=1) -> Dense."""
    u = L.Input(shape=(k,))
    i = L.Input(shape=(k,))
    emb_u, emb_i = L.Embedding(n_users, dim), L.Embedding(n_items, dim)
    dense = L.Dense(1, activation="sigmoid")
    out = dense(L.Dot(axes=1)([emb_u(u), emb_i(i)]))
    return M.Model(inputs=[u, i], outputs=out), [emb_u, emb_i, dense]


def twins(builder, *args):
    """The same graph in Keras and neurec, neurec holding Keras's initial weights."""
    keras.utils.set_random_seed(0)
    km, klayers = builder(keras.layers, keras.models, *args)
    model, layers = builder(nl, nm, *args)
    for kl, nl_ in zip(klayers, layers):
        nl_.set_weights([np.asarray(w, dtype=np.float32) for w in kl.get_weights()])
    return km, klayers, model, layers


def planted(n, seed=0):
    rng = np.random.default_rng(seed)
    U, V = rng.normal(size=(NU, 3)), rng.normal(size=(NI, 3))
    users, items = rng.integers(0, NU, n), rng.integers(0, NI, n)
    labels = ((U[users] * V[items]).sum(1) > 0).astype(np.float32)
    return users, items, labels


def keras_predict(km, xs):
    return np.asarray(km.predict([np.asarray(x, np.float32) for x in xs], verbose=0))


def test_ncf_predictions_match(one_thread):
    km, _, model, _ = twins(ncf_example)
    users, items, _ = planted(400)
    want = keras_predict(km, [users, items])
    got = model.predict([users, items], verbose=0)
    assert got.shape == want.shape == (400, 1)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    assert np.ptp(want) > 1e-3  # scores vary, so the comparison has teeth


def _shrink_dense(klayers, layers, factor):
    kernel, bias = klayers[2].get_weights()
    klayers[2].set_weights([kernel * factor, bias])
    layers[2].set_weights([kernel * factor, bias])


def test_ncf_one_epoch_of_adam_matches(one_thread):
    km, klayers, model, layers = twins(ncf_example)
    _shrink_dense(klayers, layers, 0.01)  # keep every sample out of Keras's probability clip
    users, items, labels = planted(640, seed=1)
    before = [w.copy() for l in layers for w in l.get_weights()]
    km.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), loss="binary_crossentropy")
    model.compile(optimizer=optimizers.Adam(learning_rate=0.01, sparse_updates=False),
                  loss="binary_crossentropy")
    kx = [users.astype(np.float32).reshape(-1, 1), items.astype(np.float32).reshape(-1, 1)]
    kh = km.fit(kx, labels, batch_size=64, epochs=1, shuffle=False, verbose=0)
    h = model.fit([users, items], labels, batch_size=64, epochs=1, shuffle=False, verbose=0)
    assert model.optimizer.iterations == 10
    got = [w for l in layers for w in l.get_weights()]
    want = [np.asarray(w) for l in klayers for w in l.get_weights()]
    for k, (g, w, b) in enumerate(zip(got, want, before)):
        assert np.max(np.abs(g - b)) > 1e-3, f"weight {k} barely moved"
        np.testing.assert_allclose(g, w, rtol=0, atol=1e-4, err_msg=f"weight {k}")
    # the mean training loss of the epoch agrees too
    assert h.history["loss"][0] == pytest.approx(kh.history["loss"][0], rel=1e-4)
    kp = keras_predict(km, [users, items])
    assert np.all((kp > 1e-6) & (kp < 1 - 1e-6))  # the clip never engaged
    np.testing.assert_allclose(model.predict([users, items], verbose=0), kp, rtol=0, atol=1e-4)


def test_saturated_sigmoid_keeps_its_gradient(one_thread):
    """One SGD step on the unscaled example: neurec uses the exact ``p - y``, Keras clips."""
    km, klayers, model, layers = twins(ncf_example)
    users, items, labels = planted(64, seed=2)
    kernel0 = layers[2].get_weights()[0].astype(np.float64)
    bias0 = layers[2].get_weights()[1].astype(np.float64)
    eu = layers[0].get_weights()[0][users].astype(np.float64)
    ei = layers[1].get_weights()[0][items].astype(np.float64)
    x = np.stack([(eu * ei).sum(1), users, items], axis=1)
    p = 1.0 / (1.0 + np.exp(-(x @ kernel0 + bias0).ravel()))
    clipped = (p < 1e-7) | (p > 1 - 1e-7)
    assert 0.2 < clipped.mean() < 0.8
    exact = kernel0 - 0.1 * x.T @ (p - labels)[:, None] / 64
    masked = kernel0 - 0.1 * x.T @ np.where(clipped, 0.0, p - labels)[:, None] / 64
    km.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="binary_crossentropy")
    model.compile(optimizer=optimizers.SGD(0.1, sparse_updates=False), loss="binary_crossentropy")
    km.fit([users.astype(np.float32), items.astype(np.float32)], labels, batch_size=64,
           shuffle=False, verbose=0)
    model.fit([users, items], labels, batch_size=64, shuffle=False, verbose=0)
    assert np.max(np.abs(exact - masked)) > 1e-2
    np.testing.assert_allclose(layers[2].get_weights()[0], exact, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(klayers[2].get_weights()[0], masked, rtol=1e-5, atol=1e-5)


def _summary_rows(text):
    """(layer type, output shape, param count) for each row of a Keras-style summary table."""
    rows, current = [], None
    for line in text.splitlines():
        if line.startswith("│"):
            cells = [c.strip() for c in line.strip("│").split("│")]
            current = cells if current is None else [a + " " + b if b else a
                                                     for a, b in zip(current, cells)]
        elif current is not None and line[:1] in ("├", "└"):
            kind = re.search(r"\((\w+)\)\s*$", current[0]).group(1)
            rows.append((kind, current[1].replace(" ", ""), int(current[2].replace(",", ""))))
            current = None
    return sorted(rows)


def _summary_text(model, **kwargs):
    lines = []
    model.summary(print_fn=lambda s, *a, **k: lines.append(s), **kwargs)
    return "\n".join(lines)


def test_summary_shapes_and_param_counts_match():
    km, _, model, _ = twins(ncf_example)
    ktext, ntext = _summary_text(km), _summary_text(model)
    krows, nrows = _summary_rows(ktext), _summary_rows(ntext)
    assert len(krows) == 9 and ("Embedding", "(None,1,8)", NU * 8) in krows
    assert nrows == krows
    total = re.search(r"Total params: ([\d,]+)", ktext).group(1)
    assert f"Total params: {total}" in ntext and int(total.replace(",", "")) == model.count_params()


@pytest.mark.parametrize("k,dim", [(3, 4), (4, 6)])
def test_nmf_output_shape_and_predictions_match(one_thread, k, dim):
    km, _, model, _ = twins(nmf_example, k, dim)
    assert km.output_shape == (None, dim, 1)
    assert model.output_shape == km.output_shape
    rng = np.random.default_rng(k)
    xs = [rng.integers(0, NU, (50, k)), rng.integers(0, NI, (50, k))]
    want = keras_predict(km, xs)
    got = model.predict(xs, verbose=0)
    assert got.shape == want.shape == (50, dim, 1)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    assert _summary_rows(_summary_text(model)) == _summary_rows(_summary_text(km))
