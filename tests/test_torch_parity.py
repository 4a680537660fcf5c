"""Parity of neurec's forward pass, gradients and optimizers with PyTorch.

The same NeuMF-style graph is built in neurec and in ``torch.nn``; neurec's
initial weights are copied into torch (``nn.Linear`` stores the kernel
transposed), then both are trained on the same batches in the same order.
Torch runs in float64, so it is the more precise side: a mismatch beyond the
tolerance is neurec's to explain.

Optimizer formulas compared (all with a constant learning rate):

* Adam: neurec (Keras) steps ``lr*sqrt(1-b2^t)/(1-b1^t) * m / (sqrt(v) + eps)``,
  that is ``lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps/sqrt(1-b2^t))``;
  torch steps ``lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)``. So Keras's
  ``eps`` acts like torch's ``eps/sqrt(1-b2^t)`` (31.6x larger at t=1). That is
  *not* negligible here: with Keras's default ±0.05 embedding init many
  gradients are ~1e-6, and plain ``torch.optim.Adam(eps=1e-8)`` ends up to ~1e-2
  away from neurec after 5 steps (pinned below). The parity test therefore sets
  torch's ``eps`` to ``1e-8/sqrt(1-b2^t)`` before step ``t``, which makes the two
  formulas identical, and runs the real ``torch.optim.Adam``.
* SGD with momentum: Keras ``v = mu*v - lr*g; w += v``, torch
  ``b = mu*b + g; w -= lr*b``, so ``v == -lr*b`` while lr is constant
  (Nesterov likewise).
* Adagrad: Keras puts ``eps`` inside the square root, torch outside; the
  accumulators start at 0.1, so a tiny ``eps`` (1e-10) makes both the same.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from neurec import optimizers  # noqa: E402
from neurec.layers import Concatenate, Dense, Embedding, Flatten, Input, Multiply  # noqa: E402
from neurec.models import Model  # noqa: E402

NU, NI = 37, 29
BATCH, STEPS = 64, 5
ATOL = 1e-5


# -- the two models -------------------------------------------------------------------------
def neurec_neumf(gmf_only=False):
    """NeuMF: GMF (8) and MLP (16+16 -> 32 -> 16 -> 8) merged by Dense(1, sigmoid).

    Returns the model and a dict of its layers by role, so weights are copied by
    role rather than by position.
    """
    u, i = Input(shape=(1,)), Input(shape=(1,))
    L = {"gu": Embedding(NU, 8), "gi": Embedding(NI, 8)}
    gmf = Multiply()([Flatten()(L["gu"](u)), Flatten()(L["gi"](i))])
    if gmf_only:
        L["out"] = Dense(1, activation="sigmoid")
        return Model([u, i], L["out"](gmf)), L
    L.update(mu=Embedding(NU, 16), mi=Embedding(NI, 16), d1=Dense(32, activation="relu"),
             d2=Dense(16, activation="relu"), d3=Dense(8, activation="relu"),
             out=Dense(1, activation="sigmoid"))
    h = Concatenate()([Flatten()(L["mu"](u)), Flatten()(L["mi"](i))])
    h = L["d3"](L["d2"](L["d1"](h)))
    return Model([u, i], L["out"](Concatenate()([gmf, h]))), L


class TorchNeuMF(torch.nn.Module):
    """The same graph in torch; ``forward`` returns logits."""

    def __init__(self, gmf_only=False, sparse=False):
        super().__init__()
        nn = torch.nn
        self.gmf_only = gmf_only
        self.gu, self.gi = nn.Embedding(NU, 8, sparse=sparse), nn.Embedding(NI, 8, sparse=sparse)
        if gmf_only:
            self.out = nn.Linear(8, 1)
        else:
            self.mu = nn.Embedding(NU, 16, sparse=sparse)
            self.mi = nn.Embedding(NI, 16, sparse=sparse)
            self.d1, self.d2, self.d3 = nn.Linear(32, 32), nn.Linear(32, 16), nn.Linear(16, 8)
            self.out = nn.Linear(16, 1)
        self.double()

    def forward(self, u, i):
        gmf = self.gu(u) * self.gi(i)
        if self.gmf_only:
            return self.out(gmf).squeeze(1)
        h = torch.cat([self.mu(u), self.mi(i)], dim=1)
        h = torch.relu(self.d3(torch.relu(self.d2(torch.relu(self.d1(h))))))
        return self.out(torch.cat([gmf, h], dim=1)).squeeze(1)


def copy_to_torch(layers, tm):
    with torch.no_grad():
        for role, layer in layers.items():
            mod = getattr(tm, role)
            w = layer.get_weights()
            if isinstance(layer, Embedding):
                mod.weight.copy_(torch.from_numpy(w[0].astype(np.float64)))
            else:
                mod.weight.copy_(torch.from_numpy(w[0].T.astype(np.float64)))
                mod.bias.copy_(torch.from_numpy(w[1].astype(np.float64)))


def assert_weights_match(layers, tm, before=None, min_move=10 * ATOL):
    """Every weight equal to torch's within ``ATOL``; with ``before``, each array also moved.

    ``before`` maps role -> weights before training; requiring a move of at least
    ``min_move`` in every array keeps the check from passing on weights that barely changed.
    """
    for role, layer in layers.items():
        mod = getattr(tm, role)
        w = layer.get_weights()
        got = [w[0] if isinstance(layer, Embedding) else w[0].T] + w[1:]
        want = [mod.weight.detach().numpy()] + ([] if isinstance(layer, Embedding)
                                                else [mod.bias.detach().numpy()])
        for k, (g, e) in enumerate(zip(got, want)):
            np.testing.assert_allclose(g, e, rtol=0, atol=ATOL, err_msg=f"{role} weight {k}")
            if before is not None:
                moved = np.max(np.abs(w[k] - before[role][k]))
                assert moved > min_move, f"{role} weight {k} moved only {moved:.2e}"


def make_data(n, seed=0, users=None):
    rng = np.random.default_rng(seed)
    u = rng.integers(0, NU if users is None else users, n).astype(np.int64)
    i = rng.integers(0, NI, n).astype(np.int64)
    y = rng.integers(0, 2, n).astype(np.float32)
    return u, i, y


def train_torch(tm, opts, u, i, y, batch, keras_eps=None, first_step=1):
    """Train ``tm`` batch by batch with one optimizer or a list of them.

    ``keras_eps`` re-expresses a Keras Adam epsilon for ``torch.optim.Adam`` before
    every step ``t`` as ``keras_eps / sqrt(1 - beta_2^t)`` (see the module docstring);
    ``first_step`` is the ``t`` of the first batch when training continues.
    """
    opts = opts if isinstance(opts, (list, tuple)) else [opts]
    loss_fn = torch.nn.BCEWithLogitsLoss()
    for t, s in enumerate(range(0, len(y), batch), start=first_step):
        for opt in opts:
            if keras_eps is not None and isinstance(opt, torch.optim.Adam):
                for group in opt.param_groups:
                    group["eps"] = keras_eps / np.sqrt(1.0 - group["betas"][1] ** t)
            opt.zero_grad()
        ub, ib = torch.from_numpy(u[s:s + batch]), torch.from_numpy(i[s:s + batch])
        loss = loss_fn(tm(ub, ib), torch.from_numpy(y[s:s + batch].astype(np.float64)))
        loss.backward()
        for opt in opts:
            opt.step()


def torch_predict(tm, u, i):
    with torch.no_grad():
        return torch.sigmoid(tm(torch.from_numpy(u), torch.from_numpy(i))).numpy()


def run_pair(neurec_opt, torch_opt_fn, gmf_only=False, seed=0, data=None, keras_eps=None,
             emb_scale=None):
    """Build, align and train both models.

    ``emb_scale`` replaces the ±0.05 embedding init by N(0, emb_scale) so that plain
    SGD/Adagrad steps (proportional to gradients) move the weights well past the tolerance.

    Returns:
        ``(model, layers, torch_model, (u, i, y), before)``, ``before`` mapping each
        role to its weights before training.
    """
    model, layers = neurec_neumf(gmf_only)
    if emb_scale is not None:
        rng = np.random.default_rng(seed + 100)
        for layer in layers.values():
            if isinstance(layer, Embedding):
                layer.set_weights([rng.normal(0, emb_scale, layer.embeddings.shape)
                                   .astype(np.float32)])
    before = {role: layer.get_weights() for role, layer in layers.items()}
    tm = TorchNeuMF(gmf_only)
    copy_to_torch(layers, tm)
    u, i, y = data if data is not None else make_data(BATCH * STEPS, seed)
    model.compile(optimizer=neurec_opt, loss="binary_crossentropy")
    model.fit([u, i], y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    train_torch(tm, torch_opt_fn(tm.parameters()), u, i, y, BATCH, keras_eps)
    return model, layers, tm, (u, i, y), before


# -- tests ----------------------------------------------------------------------------------
def test_initial_predictions_match(one_thread):
    model, layers = neurec_neumf()
    tm = TorchNeuMF()
    copy_to_torch(layers, tm)
    u, i, _ = make_data(500, seed=3)
    got = model.predict([u, i], verbose=0).ravel()
    want = torch_predict(tm, u, i)
    np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)
    assert np.ptp(want) > 1e-3  # the scores are not all equal, so the check has teeth


def test_dense_adam_matches_torch_adam(one_thread):
    model, layers, tm, (u, i, y), before = run_pair(
        optimizers.Adam(0.01, 0.9, 0.999, 1e-8, sparse_updates=False),
        lambda p: torch.optim.Adam(p, lr=0.01, betas=(0.9, 0.999), eps=1e-8), keras_eps=1e-8)
    assert model.optimizer.iterations == STEPS
    assert_weights_match(layers, tm, before)
    np.testing.assert_allclose(model.predict([u, i], verbose=0).ravel(), torch_predict(tm, u, i),
                               rtol=0, atol=ATOL)


def max_weight_gap(layers, tm):
    gap = 0.0
    for role, layer in layers.items():
        w = layer.get_weights()[0]
        w = w if isinstance(layer, Embedding) else w.T
        gap = max(gap, float(np.max(np.abs(w - getattr(tm, role).weight.detach().numpy()))))
    return gap


def test_adam_epsilon_sits_where_keras_puts_it(one_thread):
    """Plain torch Adam with the same eps differs visibly: neurec follows Keras's formula."""
    _, layers, tm, _, _ = run_pair(
        optimizers.Adam(0.01, 0.9, 0.999, 1e-8, sparse_updates=False),
        lambda p: torch.optim.Adam(p, lr=0.01, betas=(0.9, 0.999), eps=1e-8))
    assert max_weight_gap(layers, tm) > 1e-3


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_momentum_matches_torch(one_thread, nesterov):
    # Keras v = mu*v - lr*g equals torch's -lr*b with b = mu*b + g while lr is constant.
    model, layers, tm, (u, i, y), before = run_pair(
        optimizers.SGD(0.5, momentum=0.9, nesterov=nesterov, sparse_updates=False),
        lambda p: torch.optim.SGD(p, lr=0.5, momentum=0.9, nesterov=nesterov), emb_scale=0.5)
    assert_weights_match(layers, tm, before)
    np.testing.assert_allclose(model.predict([u, i], verbose=0).ravel(), torch_predict(tm, u, i),
                               rtol=0, atol=ATOL)


@pytest.mark.parametrize("sparse", [False, True])
def test_gmf_adagrad_matches_torch(one_thread, sparse):
    # eps=1e-10: inside the sqrt (Keras/neurec) or outside (torch) changes nothing visible
    # because the accumulators start at 0.1. Adagrad leaves rows with zero gradient alone,
    # so lazy and dense updates are the same maths.
    _, layers, tm, _, before = run_pair(
        optimizers.Adagrad(0.1, initial_accumulator_value=0.1, epsilon=1e-10,
                           sparse_updates=sparse),
        lambda p: torch.optim.Adagrad(p, lr=0.1, initial_accumulator_value=0.1, eps=1e-10),
        gmf_only=True, emb_scale=0.5)
    assert_weights_match(layers, tm, before)


def _two_batches():
    """Batch 1 uses users 0..9, batch 2 users 5..19; users 20.. never appear."""
    rng = np.random.default_rng(5)
    u = np.concatenate([rng.permutation(np.arange(BATCH) % 10),
                        5 + rng.permutation(np.arange(BATCH) % 15)]).astype(np.int64)
    i = rng.integers(0, NI, 2 * BATCH).astype(np.int64)
    y = rng.integers(0, 2, 2 * BATCH).astype(np.float32)
    return u, i, y


def test_lazy_adam_differs_from_dense_torch_adam(one_thread):
    """Lazy (sparse) Adam skips rows a batch does not touch; dense Adam keeps moving them."""
    u, i, y = _two_batches()
    model, layers = neurec_neumf()
    tm = TorchNeuMF()
    copy_to_torch(layers, tm)
    model.compile(optimizer=optimizers.Adam(0.01, epsilon=1e-8, sparse_updates=True),
                  loss="binary_crossentropy")
    opt = torch.optim.Adam(tm.parameters(), lr=0.01, eps=1e-8)
    # step 1: every moment is still zero, so lazy and dense agree everywhere
    model.fit([u[:BATCH], i[:BATCH]], y[:BATCH], batch_size=BATCH, shuffle=False, verbose=0)
    train_torch(tm, opt, u[:BATCH], i[:BATCH], y[:BATCH], BATCH, keras_eps=1e-8)
    assert_weights_match(layers, tm)
    after_one = layers["gu"].get_weights()[0]
    # step 2: rows 0..4 get no gradient
    model.fit([u[BATCH:], i[BATCH:]], y[BATCH:], batch_size=BATCH, shuffle=False, verbose=0)
    train_torch(tm, opt, u[BATCH:], i[BATCH:], y[BATCH:], BATCH, keras_eps=1e-8, first_step=2)
    lazy, dense = layers["gu"].get_weights()[0], tm.gu.weight.detach().numpy()
    np.testing.assert_array_equal(lazy[:5], after_one[:5])          # frozen in lazy mode
    assert np.min(np.max(np.abs(dense[:5] - after_one[:5]), axis=1)) > 1e-3  # dense moved them
    np.testing.assert_array_equal(lazy[20:], after_one[20:])        # never seen: untouched
    np.testing.assert_allclose(dense[20:], after_one[20:], rtol=0, atol=0)


@pytest.mark.parametrize("catch_up", [True, False])
def test_lazy_adam_against_torch_sparse_adam(catch_up, one_thread):
    """Sparse Adam vs ``torch.optim.SparseAdam`` (same Keras-style eps placement).

    With catch-up (the default) neurec bias-corrects with the global step like
    SparseAdam, and a row's skipped steps are only applied when it comes back, so
    over these two batches every row agrees. With ``catch_up=False`` (per-row
    step counts), rows first touched at step 2 are corrected as if t=1 and differ.
    """
    u, i, y = _two_batches()
    model, layers = neurec_neumf()
    tm = TorchNeuMF(sparse=True)
    copy_to_torch(layers, tm)
    model.compile(optimizer=optimizers.Adam(0.01, epsilon=1e-8, sparse_updates=True,
                                            catch_up=catch_up),
                  loss="binary_crossentropy")
    model.fit([u, i], y, batch_size=BATCH, shuffle=False, verbose=0)
    tables = [m.weight for m in (tm.gu, tm.gi, tm.mu, tm.mi)]
    others = [p for p in tm.parameters() if all(p is not t for t in tables)]
    opts = [torch.optim.SparseAdam(tables, lr=0.01, eps=1e-8),
            torch.optim.Adam(others, lr=0.01, eps=1e-8)]
    train_torch(tm, opts, u, i, y, BATCH, keras_eps=1e-8)
    lazy, sparse = layers["gu"].get_weights()[0], tm.gu.weight.detach().numpy()
    np.testing.assert_allclose(lazy[:10], sparse[:10], rtol=0, atol=ATOL)
    np.testing.assert_allclose(lazy[20:], sparse[20:], rtol=0, atol=0)
    if catch_up:
        np.testing.assert_allclose(lazy[10:20], sparse[10:20], rtol=0, atol=ATOL)
    else:
        gap = np.abs(lazy[10:20] - sparse[10:20]).max(axis=1)
        assert np.all(gap > 1e-3), gap
