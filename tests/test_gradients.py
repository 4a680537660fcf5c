"""Gradients of every layer, activation and loss: C core vs the NumPy reference
vs finite differences."""
import numpy as np
import pytest

from graphs import ALL, data_for, dropout_masks, ncf_example, regression
from neurec import _reference as ref
from neurec import losses, optimizers

SEED = 11  # fit's seed, which keys the Dropout masks


def c_gradients(model, xs, y, loss):
    """Gradients computed by the C core: one full-batch SGD step with lr=1."""
    before = model.get_weights()
    model.compile(optimizer=optimizers.SGD(learning_rate=1.0), loss=loss)
    model.fit(xs, y, batch_size=len(y), epochs=1, shuffle=False, verbose=0, seed=SEED)
    after = model.get_weights()
    model.set_weights(before)
    return [b.astype(np.float64) - a for b, a in zip(before, after)]


def ref_grad_list(model, xs, y, loss):
    """Reference gradients under the masks the C core drew for ``c_gradients``'s step."""
    masks = dropout_masks(model, len(y), SEED) if model._compiled else None
    _, g = ref.gradients(model, xs, y, loss, masks=masks)
    out = []
    for layer in model.layers:
        for k, w in enumerate(layer.weights):
            out.append(np.asarray(g.get((layer.name, k), np.zeros(w.shape))))
    return out


def finite_diff(model, xs, y, loss, params, key, idx, h=1e-6, masks=None):
    w = params[key]
    old = w[idx]
    w[idx] = old + h
    lp = ref.loss_value(loss, y, ref.forward(model, xs, params, masks=masks)[0])
    w[idx] = old - h
    lm = ref.loss_value(loss, y, ref.forward(model, xs, params, masks=masks)[0])
    w[idx] = old
    return (lp - lm) / (2 * h)


@pytest.mark.parametrize("name", sorted(ALL))
@pytest.mark.parametrize("loss", ["binary_crossentropy", "mse", "mae"])
def test_c_gradients_match_reference(name, loss, one_thread):
    model = ALL[name]()
    xs = data_for(model, 64, seed=1)
    y = np.random.default_rng(2).integers(0, 2, 64).astype(np.float32)
    loss_obj = losses.get(loss)
    gc = c_gradients(model, xs, y, loss_obj)
    gr = ref_grad_list(model, xs, y, loss_obj)
    assert len(gc) == len(gr) > 0
    for a, b in zip(gc, gr):
        scale = max(np.abs(b).max(), 1e-6)
        np.testing.assert_allclose(a, b, atol=2e-4 * scale + 1e-7, rtol=1e-3)


@pytest.mark.parametrize("name", sorted(ALL))
@pytest.mark.parametrize("loss", [losses.BinaryCrossentropy(), losses.BinaryCrossentropy(from_logits=True),
                                  losses.MeanSquaredError()])
def test_reference_gradients_match_finite_differences(name, loss):
    model = ALL[name]()
    params = {(l.name, k): w.astype(np.float64) * 5.0 for l in model.layers for k, w in enumerate(l.weights)}
    xs = data_for(model, 16, seed=3)
    y = np.random.default_rng(4).random(16)
    masks = dropout_masks(model, 16, seed=6)  # training mode: Dropout layers apply a mask
    assert all(np.any(m == 0) for m in masks.values())
    _, g = ref.gradients(model, xs, y, loss, params, masks=masks)
    rng = np.random.default_rng(5)
    checked = 0
    for key, gw in g.items():
        for _ in range(4):
            idx = tuple(rng.integers(0, s) for s in gw.shape)
            fd = finite_diff(model, xs, y, loss, params, key, idx, masks=masks)
            assert abs(fd - gw[idx]) <= 1e-5 * max(1.0, abs(gw[idx])), (key, idx, fd, gw[idx])
            checked += 1
    assert checked >= 4 * len(model.weights) - 4


@pytest.mark.parametrize("act", ["linear", "relu", "sigmoid", "tanh"])
def test_activations_gradients(act, one_thread):
    model = ncf_example(act=act)
    xs = data_for(model, 32)
    y = np.random.default_rng(0).random(32).astype(np.float32)
    loss = losses.MeanSquaredError()
    for a, b in zip(c_gradients(model, xs, y, loss), ref_grad_list(model, xs, y, loss)):
        np.testing.assert_allclose(a, b, atol=1e-4 * max(np.abs(b).max(), 1e-6) + 1e-7, rtol=1e-3)


def test_from_logits_and_regression_outputs(one_thread):
    model = regression()
    xs = data_for(model, 40)
    y = np.random.default_rng(0).integers(0, 2, (40, 2)).astype(np.float32)
    for loss in (losses.BinaryCrossentropy(from_logits=True), losses.MeanSquaredError()):
        for a, b in zip(c_gradients(model, xs, y, loss), ref_grad_list(model, xs, y, loss)):
            np.testing.assert_allclose(a, b, atol=1e-4 * max(np.abs(b).max(), 1e-6) + 1e-7, rtol=1e-3)


@pytest.mark.parametrize("name", sorted(ALL))
def test_c_forward_matches_reference(name):
    model = ALL[name]()
    xs = data_for(model, 300, seed=7)
    got = model.predict(xs)
    want = ref.forward(model, xs)[0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(ALL))
def test_c_gradients_match_reference_over_many_chunks(name, one_thread):
    """A batch far larger than the samples the C core passes through the graph at once
    (it cuts a thread's block into chunks that fit its L2 cache): every chunk's gradient
    is accumulated, none is lost or counted twice."""
    model = ALL[name]()
    n = 20000
    xs = data_for(model, n, seed=3)
    y = np.random.default_rng(4).integers(0, 2, n).astype(np.float32)
    loss_obj = losses.get("binary_crossentropy")
    gc = c_gradients(model, xs, y, loss_obj)
    gr = ref_grad_list(model, xs, y, loss_obj)
    for a, b in zip(gc, gr):
        scale = max(np.abs(b).max(), 1e-6)
        np.testing.assert_allclose(a, b, atol=2e-4 * scale + 1e-7, rtol=1e-3)
