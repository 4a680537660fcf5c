"""Sample and class weights: ``fit(sample_weight=, class_weight=)``, ``evaluate(sample_weight=)``,
``validation_data=(x, y, w)`` and ``NegativeSampler(weights=)``.

Keras 3's default reduction (``"sum_over_batch_size"``): a batch's loss is
``sum_i w_i * l_i / batch_size`` and its gradient likewise. Checked against finite
differences and the float64 NumPy reference, against exact constructions (weights of 1,
weights of 2 with half the learning rate, integer class weights as duplicated samples),
and against Keras (torch backend) where it is installed.
"""
import os

import numpy as np
import pytest

import neurec
from graphs import ALL, data_for, dropout_masks, interactions
from neurec import _reference as ref
from neurec import losses, optimizers
from neurec.data import InteractionLog, InteractionMatrix, NegativeSampler
from neurec.layers import Concatenate, Dense, Embedding, Flatten, Input
from neurec.models import GMF, Model

SEED = 11
LOSSES = [losses.BinaryCrossentropy(), losses.BinaryCrossentropy(from_logits=True),
          losses.MeanSquaredError(), losses.MeanAbsoluteError()]


def weights_for(n, seed=3, zeros=2):
    """Weights in [0, 3) with a few exact zeros."""
    w = np.random.default_rng(seed).uniform(0.0, 3.0, n).astype(np.float32)
    w[:: max(n // zeros, 1)][:zeros] = 0.0
    return w


def sgd_gradients(model, xs, y, loss, **fit_kw):
    """The C core's gradient: one full-batch SGD step of learning rate 1."""
    before = model.get_weights()
    model.compile(optimizer=optimizers.SGD(learning_rate=1.0), loss=loss)
    model.fit(xs, y, batch_size=len(y), epochs=1, shuffle=False, verbose=0, seed=SEED, **fit_kw)
    after = model.get_weights()
    model.set_weights(before)
    return [b.astype(np.float64) - a for b, a in zip(before, after)]


def ref_gradients(model, xs, y, loss, w, params=None, masks=None):
    _, g = ref.gradients(model, xs, y, loss, params, masks=masks, sample_weight=w)
    return [np.asarray(g.get((layer.name, k), np.zeros(wt.shape)))
            for layer in model.layers for k, wt in enumerate(layer.weights)]


def assert_close_grads(got, want, tol=2e-4):
    assert len(got) == len(want) > 0
    for a, b in zip(got, want):
        scale = max(np.abs(b).max(), 1e-6)
        np.testing.assert_allclose(a, b, atol=tol * scale + 1e-7, rtol=1e-3)


def small_model(out_act="sigmoid", seed=0):
    neurec.utils.set_random_seed(seed)
    u, i = Input(shape=(1,), name="user"), Input(shape=(1,), name="item")
    h = Concatenate()([Flatten()(Embedding(30, 4)(u)), Flatten()(Embedding(20, 4)(i))])
    h = Dense(6, activation="tanh")(h)
    return Model([u, i], Dense(1, activation=out_act)(h))


# -- gradients ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(ALL))
@pytest.mark.parametrize("loss", LOSSES, ids=["bce", "bce_logits", "mse", "mae"])
def test_weighted_gradients_match_the_reference(name, loss, one_thread):
    model = ALL[name]()
    xs = data_for(model, 48, seed=1)
    y = np.random.default_rng(2).integers(0, 2, 48).astype(np.float32)
    w = weights_for(48)
    got = sgd_gradients(model, xs, y, loss, sample_weight=w)
    want = ref_gradients(model, xs, y, loss, w, masks=dropout_masks(model, 48, SEED))
    assert_close_grads(got, want)
    # the weights matter: the unweighted gradient is far from the weighted one
    plain = ref_gradients(model, xs, y, loss, None, masks=dropout_masks(model, 48, SEED))
    assert max(np.abs(a - b).max() for a, b in zip(want, plain)) > 1e-3


@pytest.mark.parametrize("name", ["ncf", "neumf", "dropout_tower"])
@pytest.mark.parametrize("loss", LOSSES[:3], ids=["bce", "bce_logits", "mse"])
def test_weighted_reference_matches_finite_differences(name, loss):
    model = ALL[name]()
    params = {(l.name, k): w.astype(np.float64) * 5.0 for l in model.layers
              for k, w in enumerate(l.weights)}
    xs = data_for(model, 16, seed=3)
    y = np.random.default_rng(4).random(16)
    w = weights_for(16, seed=5).astype(np.float64)
    masks = dropout_masks(model, 16, seed=6)
    _, g = ref.gradients(model, xs, y, loss, params, masks=masks, sample_weight=w)
    rng = np.random.default_rng(7)
    for key, gw in g.items():
        for _ in range(3):
            idx = tuple(rng.integers(0, s) for s in gw.shape)
            old, h = params[key][idx], 1e-6
            params[key][idx] = old + h
            lp = ref.loss_value(loss, y, ref.forward(model, xs, params, masks=masks)[0], w)
            params[key][idx] = old - h
            lm = ref.loss_value(loss, y, ref.forward(model, xs, params, masks=masks)[0], w)
            params[key][idx] = old
            fd = (lp - lm) / (2 * h)
            assert abs(fd - gw[idx]) <= 1e-5 * max(1.0, abs(gw[idx])), (key, idx, fd, gw[idx])


def test_weighted_loss_value_is_keras_sum_over_batch_size():
    y = np.array([1.0, 0.0, 1.0, 0.0])
    p = np.array([0.9, 0.2, 0.3, 0.6])
    w = np.array([1.0, 0.0, 2.0, 0.5])
    per = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    want = float(np.sum(w * per) / 4)  # divided by the batch size, not by sum(w)
    assert losses.BinaryCrossentropy()(y, p, w) == pytest.approx(want, rel=1e-12)
    assert ref.loss_value(losses.BinaryCrossentropy(), y, p.reshape(-1, 1), w) == \
        pytest.approx(want, rel=1e-12)


# -- exact constructions ------------------------------------------------------------------
def fit_weights(model_fn, x, y, opt, **kw):
    model = model_fn()
    model.compile(optimizer=opt, loss="binary_crossentropy", metrics=["accuracy", "mse", "auc"])
    h = model.fit(x, y, verbose=0, seed=5, **kw)
    return model.get_weights(), h.history


@pytest.mark.parametrize("threads", [1, 2])
def test_unit_weights_are_bit_for_bit_unweighted(threads):
    old = neurec.get_num_threads()
    neurec.set_num_threads(threads)
    try:
        u, i, y = interactions(3000, nu=30, ni=20)
        runs = [fit_weights(small_model, [u, i], y, optimizers.Adam(0.01), epochs=2,
                            batch_size=64, **kw)
                for kw in ({}, {"sample_weight": np.ones(len(y))},
                           {"class_weight": {0: 1, 1: 1.0}})]
    finally:
        neurec.set_num_threads(old)
    for w, h in runs[1:]:
        for a, b in zip(runs[0][0], w):
            np.testing.assert_array_equal(a, b)
        assert h == runs[0][1]


@pytest.mark.parametrize("hogwild", [False, True])
def test_weight_two_with_half_the_learning_rate_is_unweighted_sgd(hogwild, one_thread):
    """Scaling every gradient by 2 is exact in floating point, so the weights are equal bit
    for bit (and the logged loss doubles)."""
    u, i, y = interactions(1000)

    def model_fn():
        m = small_model()
        m.hogwild = hogwild
        return m
    w1, h1 = fit_weights(model_fn, [u, i], y, optimizers.SGD(0.2), epochs=2, batch_size=50)
    w2, h2 = fit_weights(model_fn, [u, i], y, optimizers.SGD(0.1), epochs=2, batch_size=50,
                         sample_weight=np.full(len(y), 2.0, np.float32))
    for a, b in zip(w1, w2):
        np.testing.assert_array_equal(a, b)
    assert h2["loss"] == pytest.approx([2 * v for v in h1["loss"]], rel=1e-6)
    for k in ("accuracy", "mse", "auc"):  # compiled metrics are unweighted (Keras's metrics=)
        assert h2[k] == pytest.approx(h1[k], rel=1e-9)


def test_zero_weights_change_nothing_on_two_hogwild_threads():
    old = neurec.get_num_threads()
    neurec.set_num_threads(2)
    try:
        model = GMF(30, 20, 8)
        model.compile(optimizer=optimizers.SGD(0.5), loss="binary_crossentropy", hogwild=True)
        before = model.get_weights()
        u, i, y = interactions(4000)
        model.fit([u, i], y, batch_size=16, verbose=0, sample_weight=np.zeros(len(y)))
    finally:
        neurec.set_num_threads(old)
    assert model.optimizer.iterations == 250
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_integer_weights_equal_duplicating_samples(one_thread):
    """Weight 2 on the positives of n samples, padded with zero-weight samples to the length
    of the data with every positive duplicated: one batch each, so both steps divide the
    same sums by the same batch size."""
    u, i, y = interactions(400)
    pos = np.flatnonzero(y == 1)
    dup = np.concatenate([np.arange(len(y)), pos])
    pad = np.concatenate([np.arange(len(y)), pos])  # any rows: their weight is 0
    sw = np.r_[np.where(y == 1, 2.0, 1.0), np.zeros(len(pos))]
    kw = dict(epochs=3, batch_size=len(dup), shuffle=False)
    w_dup, h_dup = fit_weights(small_model, [u[dup], i[dup]], y[dup], optimizers.SGD(0.5), **kw)
    w_sw, h_sw = fit_weights(small_model, [u[pad], i[pad]], y[pad], optimizers.SGD(0.5),
                             sample_weight=sw, **kw)
    moved = max(np.abs(a - b).max() for a, b in zip(w_dup, small_model().get_weights()))
    assert moved > 1e-2
    for a, b in zip(w_dup, w_sw):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    assert h_sw["loss"] == pytest.approx(h_dup["loss"], rel=1e-5)


def test_class_weight_is_the_sample_weight_of_each_label(one_thread):
    """Keras 3's rule: class_weight={0: 1, 1: 2} is sample_weight 2 on positives and 1 on
    negatives, bit for bit; a label the dict does not name weighs 1.0; validation data
    (validation_split) keeps unweighted losses."""
    u, i, y = interactions(400)
    kw = dict(epochs=2, batch_size=64, shuffle=False)
    w_cw, h_cw = fit_weights(small_model, [u, i], y, optimizers.SGD(0.5),
                             class_weight={0: 1, 1: 2}, **kw)
    w_sw, h_sw = fit_weights(small_model, [u, i], y, optimizers.SGD(0.5),
                             sample_weight=np.where(y == 1, 2.0, 1.0), **kw)
    for a, b in zip(w_cw, w_sw):
        np.testing.assert_array_equal(a, b)
    assert h_cw["loss"] == h_sw["loss"]
    w_one, _ = fit_weights(small_model, [u, i], y, optimizers.SGD(0.5), class_weight={1: 2}, **kw)
    for a, b in zip(w_one, w_sw):
        np.testing.assert_array_equal(a, b)
    model = small_model()
    model.compile(optimizer=optimizers.SGD(0.0), loss="binary_crossentropy")
    h = model.fit([u, i], y, class_weight={0: 5.0, 1: 5.0}, validation_split=0.25, verbose=0,
                  **kw).history
    assert h["loss"][-1] == pytest.approx(5 * h["val_loss"][-1], rel=0.3)  # same model, lr 0
    tail = slice(300, 400)
    assert h["val_loss"][-1] == pytest.approx(
        model.evaluate([u[tail], i[tail]], y[tail], verbose=0), rel=1e-6)


def test_loss_is_weighted_and_metrics_are_not(one_thread):
    """As Keras's ``metrics=`` (only ``weighted_metrics=`` see the weights): with a learning
    rate of 0, fit's epoch (C sums) and evaluate (NumPy) agree on the weighted loss and on
    unweighted metrics."""
    u, i, y = interactions(2000)
    w = weights_for(len(y), zeros=50)
    model = small_model()
    model.compile(optimizer=optimizers.SGD(0.0), loss="binary_crossentropy",
                  metrics=["accuracy", "mse", "mae", "auc"])
    h = model.fit([u, i], y, batch_size=128, verbose=0, sample_weight=w)
    ev = model.evaluate([u, i], y, sample_weight=w, return_dict=True, verbose=0)
    plain = model.evaluate([u, i], y, return_dict=True, verbose=0)
    p = model.predict([u, i])[:, 0].astype(np.float64)
    bce = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    assert ev["loss"] == pytest.approx(np.sum(w * bce) / len(y), rel=1e-6)
    assert plain["loss"] == pytest.approx(np.mean(bce), rel=1e-6)
    assert abs(ev["loss"] - plain["loss"]) > 1e-3
    assert h.history["loss"][0] == pytest.approx(ev["loss"], rel=1e-5)
    for k in ("accuracy", "mse", "mae"):
        assert ev[k] == plain[k]
        assert h.history[k][0] == pytest.approx(plain[k], rel=1e-5), k
    assert h.history["auc"][0] == pytest.approx(plain["auc"], abs=2e-3)


# -- data plumbing ------------------------------------------------------------------------
def test_validation_split_splits_the_weights(one_thread):
    u, i, y = interactions(1000)
    w = weights_for(len(y), zeros=30)
    m1 = small_model()
    m1.compile(optimizer=optimizers.SGD(0.3), loss="mse")
    h = m1.fit([u, i], y, sample_weight=w.reshape(-1, 1), validation_split=0.2, batch_size=40,
               verbose=0, seed=2)
    m2 = small_model()
    m2.compile(optimizer=optimizers.SGD(0.3), loss="mse")
    m2.fit([u[:800], i[:800]], y[:800], sample_weight=w[:800], batch_size=40, verbose=0, seed=2)
    for a, b in zip(m1.get_weights(), m2.get_weights()):
        np.testing.assert_array_equal(a, b)
    want = m2.evaluate([u[800:], i[800:]], y[800:], sample_weight=w[800:], verbose=0)
    assert h.history["val_loss"][0] == pytest.approx(want, rel=1e-9)
    h3 = m2.fit([u[:800], i[:800]], y[:800], epochs=1, verbose=0, batch_size=40,
                validation_data=([u[800:], i[800:]], y[800:], w[800:]))
    want = m2.evaluate([u[800:], i[800:]], y[800:], sample_weight=w[800:], verbose=0)
    assert h3.history["val_loss"][0] == pytest.approx(want, rel=1e-9)
    assert m2.evaluate([u[800:], i[800:]], y[800:], verbose=0) != pytest.approx(want, rel=1e-3)


def test_sampler_weights_follow_the_log_rows(one_thread):
    """Per-row weights of a log with repeated pairs: each positive's weight is the sum of its
    rows' (built here by a dict); negatives weigh 1; class_weight multiplies. The C
    gradient of one full-batch SGD step equals the NumPy reference with those weights."""
    rng = np.random.default_rng(1)
    users = rng.integers(0, 30, 300)
    items = rng.integers(0, 20, 300)
    qty = rng.integers(1, 5, 300).astype(np.float32)
    log = InteractionLog(users, items, values=qty)
    sampler = NegativeSampler(log, num_negatives=2, seed=4, weights=log.values)
    total = {}
    for uu, ii, q in zip(users.tolist(), items.tolist(), qty.tolist()):
        total[(uu, ii)] = total.get((uu, ii), 0.0) + q
    n = sampler.num_samples
    epoch_seed = (SEED * 1000003) % 2**64  # what fit draws epoch 0 with
    su, si, sy = sampler.sample(epoch_seed)
    pos_w = np.array([total[(a, b)] for a, b in zip(su[::3].tolist(), si[::3].tolist())])
    assert len(pos_w) == len(total) and sy[::3].min() == 1 and sy.sum() == len(total)
    cw = {0: 0.5, 1: 2.0}
    want_w = np.where(sy == 1, 2.0 * np.repeat(pos_w, 3), 0.5)
    loss = losses.BinaryCrossentropy()
    model = small_model()
    before = model.get_weights()
    model.compile(optimizer=optimizers.SGD(1.0), loss=loss)
    model.fit(sampler, batch_size=n, shuffle=False, verbose=0, seed=SEED, class_weight=cw)
    got = [b.astype(np.float64) - a for b, a in zip(before, model.get_weights())]
    model.set_weights(before)
    want = ref_gradients(model, [su, si], sy, loss, want_w)
    assert_close_grads(got, want)
    plain = ref_gradients(model, [su, si], sy, loss, None)
    assert max(np.abs(a - b).max() for a, b in zip(want, plain)) > 1e-3


def test_sampler_weight_alignment_for_matrices_and_positives():
    m = InteractionMatrix.from_arrays([2, 0, 1, 0], [1, 3, 0, 0], values=[5.0, 6.0, 7.0, 8.0])
    s = NegativeSampler(m, num_negatives=1, weights=m.data)  # CSR order: (0,0) (0,3) (1,0) (2,1)
    np.testing.assert_array_equal(s._epoch_weights(), [8, 1, 6, 1, 7, 1, 5, 1])
    s = NegativeSampler(m, num_negatives=0, positives=([1, 2, 1], [0, 1, 0]), weights=[1, 2, 3])
    np.testing.assert_array_equal(s._epoch_weights(), [1, 2, 3])
    np.testing.assert_array_equal(s._epoch_labels(), [1, 1, 1])
    assert NegativeSampler(m)._epoch_weights() is None


# -- Keras (torch backend), where installed -----------------------------------------------
@pytest.fixture
def keras():
    pytest.importorskip("torch")
    os.environ.setdefault("KERAS_BACKEND", "torch")
    k = pytest.importorskip("keras")
    if k.backend.backend() != "torch":
        pytest.skip("needs Keras's torch backend")
    return k


def keras_twin(keras, out_act):
    """small_model in Keras with neurec's initial weights (output kernel shrunk, so no
    prediction reaches Keras's probability clip)."""
    model = small_model(out_act)
    w = model.get_weights()
    w[-2] = w[-2] * 0.1
    model.set_weights(w)
    L = keras.layers
    u, i = L.Input(shape=(1,)), L.Input(shape=(1,))
    h = L.Concatenate()([L.Flatten()(L.Embedding(30, 4)(u)), L.Flatten()(L.Embedding(20, 4)(i))])
    h = L.Dense(6, activation="tanh")(h)
    km = keras.Model([u, i], L.Dense(1, activation=out_act)(h))
    km.set_weights(w)
    return km, model


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
@pytest.mark.parametrize("loss,act", [("binary_crossentropy", "sigmoid"), ("mse", "linear")])
@pytest.mark.parametrize("how", ["sample_weight", "class_weight"])
def test_keras_parity(keras, loss, act, how, one_thread):
    km, model = keras_twin(keras, act)
    u, i, y = interactions(96, seed=3)
    w = weights_for(96, zeros=4)
    fit_kw = {"sample_weight": w} if how == "sample_weight" else {"class_weight": {0: 0.5, 1: 3.0}}
    kx = [u.astype(np.float32).reshape(-1, 1), i.astype(np.float32).reshape(-1, 1)]
    km.compile(optimizer=keras.optimizers.SGD(learning_rate=0.5), loss=loss, metrics=["mse"])
    model.compile(optimizer=optimizers.SGD(0.5), loss=loss, metrics=["mse"])
    # the weighted loss and metric before training
    kl, kmse = km.evaluate(kx, y, sample_weight=w, batch_size=96, verbose=0)
    ev = model.evaluate([u, i], y, sample_weight=w, return_dict=True, verbose=0)
    assert ev["loss"] == pytest.approx(kl, abs=1e-5) and ev["mse"] == pytest.approx(kmse, abs=1e-5)
    # one SGD step over the whole batch, then an epoch of three batches
    for bs in (96, 32):
        kh = km.fit(kx, y, batch_size=bs, epochs=1, shuffle=False, verbose=0, **fit_kw)
        h = model.fit([u, i], y, batch_size=bs, epochs=1, shuffle=False, verbose=0, **fit_kw)
        for k, (a, b) in enumerate(zip(model.get_weights(), km.get_weights())):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-5, err_msg=f"weight {k}, batch {bs}")
        assert h.history["loss"][0] == pytest.approx(kh.history["loss"][0], abs=1e-5)
        assert h.history["mse"][0] == pytest.approx(kh.history["mse"][0], abs=1e-5)


# -- bad input ----------------------------------------------------------------------------
@pytest.fixture
def compiled():
    model = small_model()
    model.compile(optimizer="sgd", loss="binary_crossentropy")
    u, i, y = interactions(50)
    return model, [u, i], y


@pytest.mark.parametrize("w,exc,match", [
    (-np.ones(50), ValueError, "sample_weight must be finite and >= 0, got -1.0 at sample 0"),
    (np.r_[np.ones(49), np.nan], ValueError, "sample_weight must be finite.*sample 49"),
    (np.r_[np.inf, np.ones(49)], ValueError, "sample_weight must be finite"),
    (np.ones(49), ValueError, "sample_weight has 49 weights but there are 50 samples"),
    (np.ones((50, 2)), ValueError, r"sample_weight must have shape \(50,\) or \(50, 1\)"),
    (np.array(["a"] * 50), TypeError, "sample_weight must be numbers"),
])
def test_bad_sample_weight(compiled, w, exc, match):
    model, x, y = compiled
    before = model.get_weights()
    with pytest.raises(exc, match=match):
        model.fit(x, y, sample_weight=w, verbose=0)
    with pytest.raises(exc, match=match):
        model.evaluate(x, y, sample_weight=w, verbose=0)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("cw,exc,match", [
    ({0: 1.0, 1: -2.0}, ValueError, r"class_weight\[1\] must be a finite number >= 0"),
    ({"0": 1.0, 1: 2.0}, TypeError, "class_weight keys must be integer labels"),
    ([1.0, 2.0], TypeError, "class_weight must be a non-empty dict"),
])
def test_bad_class_weight(compiled, cw, exc, match):
    model, x, y = compiled
    with pytest.raises(exc, match=match):
        model.fit(x, y, class_weight=cw, verbose=0)


def test_bad_weights_elsewhere(compiled):
    model, x, y = compiled
    with pytest.raises(ValueError, match="validation_data's sample_weight has 3 weights"):
        model.fit(x, y, validation_data=(x, y, np.ones(3)), verbose=0)
    log = InteractionLog([0, 1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="weights has 2 values but there are 3 rows"):
        NegativeSampler(log, weights=[1.0, 2.0])
    with pytest.raises(ValueError, match="weights must be finite and >= 0"):
        NegativeSampler(log, weights=[1.0, -2.0, 1.0])
    sampler = NegativeSampler(log, num_negatives=1)
    with pytest.raises(ValueError, match="NegativeSampler.*weights="):
        model.fit(sampler, sample_weight=np.ones(6), verbose=0)
    als = GMF(5, 5, 2)
    als.compile(optimizer=optimizers.ALS(), loss="mse")
    m = InteractionMatrix.from_arrays([0, 1], [1, 2])
    with pytest.raises(ValueError, match="sample_weight and class_weight are not supported"):
        als.fit(m, sample_weight=np.ones(2), verbose=0)
    with pytest.raises(ValueError, match="not used by iALS"):
        als.fit(NegativeSampler(m, weights=[1.0, 2.0]), verbose=0)


def test_class_weight_of_one_hot_labels_is_by_argmax(compiled, one_thread):
    """Keras's rule for labels with several values per sample: the class is argmax(y)."""
    _, x, y = compiled
    onehot = np.stack([1 - y, y], 1).astype(np.float32)

    def two_outputs():
        u, i = Input(shape=(1,)), Input(shape=(1,))
        h = Concatenate()([Flatten()(Embedding(30, 2)(u)), Flatten()(Embedding(20, 2)(i))])
        model = Model([u, i], Dense(2, activation="sigmoid")(h))
        model.compile(optimizer="sgd", loss="binary_crossentropy")
        return model

    a, b = two_outputs(), two_outputs()
    b.set_weights(a.get_weights())
    a.fit(x, onehot, class_weight={0: 1.0, 1: 3.0}, shuffle=False, verbose=0)
    b.fit(x, onehot, sample_weight=np.where(y == 1, 3.0, 1.0), shuffle=False, verbose=0)
    for p, q in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(p, q)


def test_plan_fit_weights_argument(compiled):
    """The binding: float32 (n,) only, one per row, each finite and >= 0."""
    model, x, y = compiled
    plan = model._get_plan()
    idx = np.arange(50, dtype=np.int64)
    step = np.zeros(1, np.int64)
    labels = y.reshape(-1, 1)
    xs = [a.reshape(-1, 1) for a in x]
    with pytest.raises(TypeError, match="weights must have dtype float32"):
        plan.fit(xs, labels, idx, 10, step, 0, weights=np.ones(50))
    with pytest.raises(ValueError, match="weights has 49 values; expected one per row of y"):
        plan.fit(xs, labels, idx, 10, step, 0, weights=np.ones(49, np.float32))
    bad = np.ones(50, np.float32)
    bad[7] = -0.5
    with pytest.raises(ValueError, match="sample_weight must be finite and >= 0, got -0.5 at row 7"):
        plan.fit(xs, labels, idx, 10, step, 0, weights=bad)
    assert step[0] == 0
    st = plan.fit(xs, labels, idx[:7], 10, step, 0, weights=bad)  # row 7 not selected
    assert step[0] == 1 and st["samples"] == 7
