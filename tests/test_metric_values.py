"""Metric values of ``fit`` logs and ``evaluate`` against independent computations.

The model is the identity on a float feature (a frozen ``Dense(1)`` with kernel 1 and
bias 0), so its predictions are exactly the inputs, during ``fit`` too: every metric is
checked against a brute-force computation from those numbers. AUC is the Mann-Whitney
statistic counted pair by pair (ties count one half); ``fit``'s AUC comes from 8,192 bins
of predictions and must stay within its documented bound of the exact value.
"""
import numpy as np
import pytest

from neurec import losses
from neurec.layers import Dense, Input
from neurec.models import Model

BINS = 8192


def identity_model(loss="binary_crossentropy", metrics=("accuracy", "binary_accuracy", "auc",
                                                         "mse", "mae")):
    x = Input(shape=(1,))
    dense = Dense(1, kernel_initializer="ones", bias_initializer="zeros")
    dense.trainable = False
    model = Model(x, dense(x))
    model.compile(optimizer="sgd", loss=loss, metrics=list(metrics))
    return model


def mann_whitney(y, p):
    """Share of (positive, negative) pairs ranked right; a tie counts one half."""
    pos, neg = p[y == 1].astype(np.float64), p[y == 0].astype(np.float64)
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return wins / (len(pos) * len(neg))


def near_pairs(y, p, width=1.0 / (BINS - 1)):
    """Share of (positive, negative) pairs closer than one bin: the only pairs a binned
    AUC can misjudge, each by one half."""
    pos, neg = p[y == 1].astype(np.float64), p[y == 0].astype(np.float64)
    return (np.abs(pos[:, None] - neg[None, :]) < width * (1 + 1e-5)).sum() / (len(pos) * len(neg))


def tied_data(n=1500, seed=0):
    """Predictions on a 0.01 grid (many ties, some exactly 0.5), labels correlated with them."""
    rng = np.random.default_rng(seed)
    p = np.round(rng.uniform(0.02, 0.98, n), 2).astype(np.float32)
    p[:40] = 0.5
    y = (rng.random(n) < p).astype(np.float32)
    y[:30], y[30:40] = 0, 1
    return p, y


def expected(p, y):
    p64, y64 = p.astype(np.float64), y.astype(np.float64)
    pc = np.clip(p64, 1e-7, 1 - 1e-7)
    return {
        "loss": float(np.mean(-(y64 * np.log(pc) + (1 - y64) * np.log(1 - pc)))),
        "accuracy": float(np.mean((p64 > 0.5) == (y64 == 1))),  # Keras: y_pred > 0.5
        "binary_accuracy": float(np.mean((p64 > 0.5) == (y64 == 1))),
        "auc": mann_whitney(y, p),
        "mse": float(np.mean((p64 - y64) ** 2)),
        "mae": float(np.mean(np.abs(p64 - y64))),
    }


def test_evaluate_metrics_equal_brute_force():
    p, y = tied_data()
    model = identity_model()
    np.testing.assert_array_equal(model.predict(p[:, None]).ravel(), p)
    got = model.evaluate(p[:, None], y, return_dict=True, verbose=0)
    want = expected(p, y)
    assert set(got) == set(want)
    assert got["auc"] == pytest.approx(want["auc"], abs=1e-12)
    assert got["accuracy"] == got["binary_accuracy"] == pytest.approx(want["accuracy"], abs=1e-12)
    for k in ("loss", "mse", "mae"):
        assert got[k] == pytest.approx(want[k], rel=1e-6), k
    # the data has teeth: ties matter, 0.5 counts as a negative prediction
    assert abs(want["auc"] - mann_whitney(y, p + np.arange(len(p)) * 1e-9)) > 1e-4
    assert want["accuracy"] != pytest.approx(float(np.mean((p >= 0.5) == (y == 1))))
    assert 0.6 < want["auc"] < 0.95


def test_fit_logs_equal_brute_force():
    p, y = tied_data(seed=1)
    model = identity_model()
    h = model.fit(p[:, None], y, epochs=2, batch_size=64, verbose=0)
    want = expected(p, y)
    for epoch in range(2):  # frozen weights: both epochs see the same predictions
        got = {k: v[epoch] for k, v in h.history.items()}
        assert got["accuracy"] == got["binary_accuracy"] == pytest.approx(want["accuracy"], abs=1e-12)
        for k in ("loss", "mse", "mae"):
            assert got[k] == pytest.approx(want[k], rel=1e-5), k
        # 0.01-grid predictions never share a bin: the binned AUC is exact here
        assert near_pairs(y, p) == pytest.approx((p[y == 1][:, None] == p[y == 0][None, :]).mean())
        assert got["auc"] == pytest.approx(want["auc"], abs=1e-9)


def test_fit_auc_within_its_documented_bound():
    """|binned AUC - exact AUC| <= half the share of positive-negative pairs less than one
    bin (1/8191) apart (metrics.AUC's docstring); the bound is tight."""
    rng = np.random.default_rng(3)
    model = identity_model(metrics=["auc"])
    # (a) dense predictions: many pairs share bins
    p = rng.uniform(0.3, 0.31, 3000).astype(np.float32)
    y = (rng.random(3000) < (p - 0.3) * 100).astype(np.float32)
    h = model.fit(p[:, None], y, epochs=1, batch_size=256, verbose=0)
    exact, bound = mann_whitney(y, p), 0.5 * near_pairs(y, p)
    assert 0 < abs(h.history["auc"][0] - exact) <= bound
    assert model.evaluate(p[:, None], y, return_dict=True, verbose=0)["auc"] == pytest.approx(exact)
    # (b) a perfect ranking inside one bin: exact 1.0, binned 0.5, the bound reached
    p = (0.5 + np.linspace(0, 1e-5, 200)).astype(np.float32)
    y = (np.arange(200) >= 100).astype(np.float32)
    h = model.fit(p[:, None], y, epochs=1, batch_size=50, verbose=0)
    assert mann_whitney(y, p) == 1.0 and near_pairs(y, p) == 1.0
    assert h.history["auc"][0] == pytest.approx(0.5)
    assert model.evaluate(p[:, None], y, return_dict=True, verbose=0)["auc"] == 1.0


def test_auc_is_not_flipped():
    """A perfect ranking scores 1 and a reversed one 0, in fit and evaluate."""
    p = np.linspace(0.05, 0.95, 100).astype(np.float32)
    for y, want in (((p > 0.5).astype(np.float32), 1.0), ((p < 0.5).astype(np.float32), 0.0)):
        model = identity_model(metrics=["auc"])
        h = model.fit(p[:, None], y, epochs=1, batch_size=16, verbose=0)
        assert h.history["auc"][0] == pytest.approx(want)
        assert model.evaluate(p[:, None], y, return_dict=True, verbose=0)["auc"] == pytest.approx(want)


def test_metrics_of_logits_with_from_logits_loss():
    """With ``from_logits=True`` the metrics see sigmoid(logit): accuracy thresholds the
    logit at 0 and AUC ranks the logits; mse/mae compare the raw outputs (as Keras)."""
    rng = np.random.default_rng(4)
    z = np.round(rng.normal(0, 2, 800), 1).astype(np.float32)
    z[:20] = 0.0
    y = (rng.random(800) < 1 / (1 + np.exp(-z))).astype(np.float32)
    model = identity_model(loss=losses.BinaryCrossentropy(from_logits=True),
                           metrics=["accuracy", "auc", "mae"])
    got = model.evaluate(z[:, None], y, return_dict=True, verbose=0)
    z64 = z.astype(np.float64)
    assert got["accuracy"] == pytest.approx(np.mean((z64 > 0) == (y == 1)), abs=1e-12)
    assert got["auc"] == pytest.approx(mann_whitney(y, z), abs=1e-12)
    assert got["mae"] == pytest.approx(np.mean(np.abs(z64 - y)), rel=1e-6)
    assert got["loss"] == pytest.approx(np.mean(np.maximum(z64, 0) - z64 * y
                                                + np.log1p(np.exp(-np.abs(z64)))), rel=1e-6)
    h = model.fit(z[:, None], y, epochs=1, batch_size=32, verbose=0)
    assert h.history["accuracy"][0] == pytest.approx(got["accuracy"], abs=1e-12)
    assert h.history["mae"][0] == pytest.approx(got["mae"], rel=1e-5)


def test_fit_and_evaluate_loss_include_the_l2_penalty():
    """README: fit's loss includes the L2 penalties (evaluated at the end of each epoch)."""
    from neurec import regularizers
    x = Input(shape=(1,))
    dense = Dense(1, kernel_initializer="ones", bias_initializer="zeros",
                  kernel_regularizer=regularizers.L2(0.25))
    dense.trainable = False
    model = Model(x, dense(x))
    model.compile(optimizer="sgd", loss="mse")
    p, y = tied_data(seed=2)
    data_loss = float(np.mean((p.astype(np.float64) - y) ** 2))
    h = model.fit(p[:, None], y, epochs=1, batch_size=64, verbose=0)
    assert h.history["loss"][0] == pytest.approx(data_loss + 0.25, rel=1e-5)
    assert model.evaluate(p[:, None], y, verbose=0) == pytest.approx(data_loss + 0.25, rel=1e-6)
