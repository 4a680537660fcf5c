"""iALS (``optimizers.ALS``, ``csrc/src/als.c``) against a float64 NumPy reference.

The oracle solves each row's normal equations with ``np.linalg.solve`` over
the dense confidence matrix (no Gramian trick), so the C core's Gramian,
per-row corrections, bias augmentation and frequency-scaled regularization
are all checked against an independent formulation.
"""
import numpy as np
import pytest

import neurec
from neurec import _core
from neurec.data import InteractionMatrix
from neurec.layers import Dot, Embedding, Flatten, Input
from neurec.models import GMF, MF, Model, NeuMF, load_model
from neurec.optimizers import ALS

NU, NI, F = 30, 24, 5


def _matrix(seed=0, nu=NU, ni=NI, density=0.25, values=True):
    rng = np.random.default_rng(seed)
    mask = rng.random((nu, ni)) < density
    mask[0, :] = False          # a user without interactions
    mask[1, :] = True           # a user with every item
    u, i = np.nonzero(mask)
    v = rng.integers(1, 5, u.size).astype(np.float32) if values else None
    return InteractionMatrix.from_arrays(u, i, v, shape=(nu, ni))


def _dense(m):
    r = np.zeros(m.shape)
    rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    r[rows, m.indices] = m.data
    return r


def _ref_rows(R, Y, off, alpha, reg, nu):
    """Exact iALS rows (float64): argmin sum_j c (p - o_j - x.y_j)^2 + lambda_u |x|^2."""
    Y = Y.astype(np.float64)
    off = np.zeros(Y.shape[0]) if off is None else off.astype(np.float64)
    out = np.empty((R.shape[0], Y.shape[1]))
    for u in range(R.shape[0]):
        c = 1.0 + alpha * R[u]
        p = (R[u] > 0).astype(np.float64)
        lam = reg * (1.0 + alpha * R[u].sum() / R.shape[1]) ** nu
        A = Y.T @ (c[:, None] * Y) + lam * np.eye(Y.shape[1])
        out[u] = np.linalg.solve(A, Y.T @ (c * (p - off)))
    return out


def _ref_objective(R, X, Y, xo, yo, alpha, reg, nu):
    S = X.astype(np.float64) @ Y.T.astype(np.float64) + xo[:, None] + yo[None, :]
    C = 1.0 + alpha * R
    P = (R > 0).astype(np.float64)
    lu = reg * (1.0 + alpha * R.sum(1) / R.shape[1]) ** nu
    li = reg * (1.0 + alpha * R.sum(0) / R.shape[0]) ** nu
    ux = np.hstack([X, xo[:, None]]) if xo.any() else X
    iy = np.hstack([Y, yo[:, None]]) if yo.any() else Y
    return (C * (P - S) ** 2).sum() + (lu * (ux.astype(np.float64) ** 2).sum(1)).sum() + \
        (li * (iy.astype(np.float64) ** 2).sum(1)).sum()


def _raw_args(m, X, Y, off, alpha, reg, nu, solver, steps):
    d = Y.shape[1]
    gram = np.empty((d, d), np.float32)
    yo = None if off is None else np.empty(d, np.float32)
    _core.als_gram(Y, off, gram, yo)
    return [m.indptr, m.indices, m.data, X, Y, off, gram, yo, alpha, reg, nu, solver, steps]


@pytest.mark.parametrize("solver,steps,tol", [(1, 1, 2e-5), (0, 60, 2e-4)], ids=["cholesky", "cg"])
@pytest.mark.parametrize("with_offset", [False, True])
@pytest.mark.parametrize("nu", [0.0, 1.0])
def test_row_solves_match_float64_reference(solver, steps, tol, with_offset, nu):
    m = _matrix()
    rng = np.random.default_rng(1)
    Y = rng.normal(0, 0.3, (NI, F)).astype(np.float32)
    X = rng.normal(0, 0.3, (NU, F)).astype(np.float32)
    off = rng.normal(0, 0.3, NI).astype(np.float32) if with_offset else None
    args = _raw_args(m, X, Y, off, 1.5, 0.2, nu, solver, steps)
    np.testing.assert_allclose(args[6], Y.astype(np.float64).T @ Y, rtol=1e-5, atol=1e-5)
    _core.als_solve(*args, 0, NU)
    want = _ref_rows(_dense(m), Y, off, 1.5, 0.2, nu)
    np.testing.assert_allclose(X, want, rtol=tol, atol=tol)


def test_cg_few_steps_is_partial_and_warm_started():
    m = _matrix()
    rng = np.random.default_rng(2)
    Y = rng.normal(0, 0.3, (NI, F)).astype(np.float32)
    want = _ref_rows(_dense(m), Y, None, 1.5, 0.2, 0.0)
    X = np.zeros((NU, F), np.float32)
    err = []
    for _ in range(4):  # one CG step per call, from where the last call stopped
        _core.als_solve(*_raw_args(m, X, Y, None, 1.5, 0.2, 0.0, 0, 1), 0, NU)
        err.append(np.abs(X - want).max())
    assert err[0] > 1e-3 and all(b < a for a, b in zip(err, err[1:]))


def test_row_range_only_touches_those_rows():
    m = _matrix()
    rng = np.random.default_rng(3)
    Y = rng.normal(0, 0.3, (NI, F)).astype(np.float32)
    X = rng.normal(0, 0.3, (NU, F)).astype(np.float32)
    X0 = X.copy()
    _core.als_solve(*_raw_args(m, X, Y, None, 1.0, 0.1, 0.0, 1, 1), 5, 9)
    np.testing.assert_array_equal(X[:5], X0[:5])
    np.testing.assert_array_equal(X[9:], X0[9:])
    assert not np.array_equal(X[5:9], X0[5:9])


@pytest.mark.parametrize("use_bias", [False, True])
def test_objective_decreases_every_sweep_and_matches_reference(use_bias):
    m = _matrix()
    model = MF(NU, NI, factors=F, use_bias=use_bias)
    opt = ALS(alpha=1.5, regularization=0.3, nu=1.0, solver="cholesky")
    model.compile(optimizer=opt)
    hist = model.fit(m, epochs=6, verbose=0).history["loss"]
    assert all(b < a for a, b in zip(hist, hist[1:])), hist
    X = model.get_layer("mf_user_embedding").embeddings
    Y = model.get_layer("mf_item_embedding").embeddings
    xo = model.get_layer("mf_user_bias").embeddings[:, 0] if use_bias else np.zeros(NU)
    yo = model.get_layer("mf_item_bias").embeddings[:, 0] if use_bias else np.zeros(NI)
    want = _ref_objective(_dense(m), X, Y, xo, yo, 1.5, 0.3, 1.0) / m.nnz
    assert hist[-1] == pytest.approx(want, rel=1e-5)
    assert opt.iterations == 6


def test_cg_objective_decreases_too():
    model = MF(NU, NI, factors=F, use_bias=True)
    model.compile(optimizer=ALS(alpha=2.0, regularization=0.1, cg_steps=2))
    hist = model.fit(_matrix(), epochs=6, verbose=0).history["loss"]
    assert all(b < a for a, b in zip(hist, hist[1:])), hist


def test_full_sweep_solves_users_then_items_exactly():
    """After one Cholesky epoch, item rows are the exact solution given the user rows."""
    m = _matrix()
    model = MF(NU, NI, factors=F, use_bias=False)
    model.compile(optimizer=ALS(alpha=1.0, regularization=0.2, nu=0.0, solver="cholesky"))
    model.fit(m, epochs=1, verbose=0)
    X = model.get_layer("mf_user_embedding").embeddings
    Y = model.get_layer("mf_item_embedding").embeddings
    np.testing.assert_allclose(Y, _ref_rows(_dense(m).T, X, None, 1.0, 0.2, 0.0),
                               rtol=2e-5, atol=2e-5)


def _train(threads, seed=7, solver="cg"):
    old = neurec.get_num_threads()
    neurec.set_num_threads(threads)
    try:
        neurec.utils.set_random_seed(seed)
        model = MF(200, 150, factors=16)
        model.compile(optimizer=ALS(solver=solver, nu=0.5))
        model.fit(_matrix(seed=4, nu=200, ni=150, density=0.1), epochs=3, verbose=0)
        return model.get_weights()
    finally:
        neurec.set_num_threads(old)


@pytest.mark.parametrize("solver", ["cg", "cholesky"])
def test_deterministic_for_any_thread_count(solver):
    a, b, c = _train(1, solver=solver), _train(1, solver=solver), _train(3, solver=solver)
    for wa, wb, wc in zip(a, b, c):
        np.testing.assert_array_equal(wa, wb)
        np.testing.assert_array_equal(wa, wc)
    d = _train(1, seed=8, solver=solver)
    assert not np.array_equal(a[0], d[0])


def test_save_load_roundtrip_and_resume(tmp_path):
    m = _matrix()
    model = MF(NU, NI, factors=F)
    model.compile(optimizer=ALS(alpha=3.0, regularization=0.4, nu=0.5, cg_steps=4))
    model.fit(m, epochs=2, verbose=0)
    path = tmp_path / "als.neurec"
    model.save(path)
    loaded = load_model(path)
    assert isinstance(loaded.optimizer, ALS)
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert loaded.optimizer.iterations == 2
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    ids_a, sc_a = model.recommend(np.arange(NU), k=5, exclude=m)
    ids_b, sc_b = loaded.recommend(np.arange(NU), k=5, exclude=m)
    np.testing.assert_array_equal(ids_a, ids_b)
    model.fit(m, epochs=1, verbose=0)
    loaded.fit(m, epochs=1, verbose=0)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("use_bias", [False, True])
def test_recommend_equals_brute_force(use_bias):
    m = _matrix()
    model = MF(NU, NI, factors=F, use_bias=use_bias)
    model.compile(optimizer=ALS(alpha=2.0, regularization=0.1))
    model.fit(m, epochs=3, verbose=0)
    P = model.get_layer("mf_user_embedding").embeddings.astype(np.float64)
    Q = model.get_layer("mf_item_embedding").embeddings.astype(np.float64)
    S = P @ Q.T
    if use_bias:
        S += model.get_layer("mf_item_bias").embeddings[:, 0][None, :]
    S[_dense(m) > 0] = -np.inf
    ids, scores = model.recommend(np.arange(NU), k=4, exclude=m)
    for u in range(NU):
        if u == 1:  # every item seen
            assert (ids[u] == -1).all()
            continue
        want = np.argsort(-S[u], kind="stable")[:4]
        np.testing.assert_array_equal(ids[u], want)
    # predict returns sigmoid of the ALS score (prediction layer set to the identity scale)
    pred = model.predict([np.array([2, 3]), np.array([4, 5])])[:, 0]
    s = P[[2, 3]] @ Q[[4, 5]].T
    s = np.diag(s) + (model.get_layer("mf_user_bias").embeddings[[2, 3], 0] +
                      model.get_layer("mf_item_bias").embeddings[[4, 5], 0] if use_bias else 0)
    np.testing.assert_allclose(pred, 1 / (1 + np.exp(-s)), rtol=1e-5)


@pytest.mark.parametrize("use_bias", [False, True])
def test_fold_in_equals_exact_row_solve(use_bias):
    m = _matrix(values=False)
    model = MF(NU, NI, factors=F, use_bias=use_bias)
    opt = ALS(alpha=2.0, regularization=0.3, nu=1.0)
    model.compile(optimizer=opt)
    model.fit(m, epochs=3, verbose=0)
    before = model.get_weights()
    u = 7
    row = InteractionMatrix.from_arrays(np.zeros(m.user_items(u).size, np.int64), m.user_items(u),
                                        shape=(1, NI))
    vec = model.partial_fit_users([NU], row)     # a new user id: the table grows
    assert model.get_layer("mf_user_embedding").embeddings.shape == (NU + 1, F)
    Q = model.get_layer("mf_item_embedding").embeddings
    R = _dense(row)
    if use_bias:
        bi = model.get_layer("mf_item_bias").embeddings[:, 0]
        want = _ref_rows(R, np.hstack([Q, np.ones((NI, 1), np.float32)]), bi, 2.0, 0.3, 1.0)[0]
        assert model.get_layer("mf_user_bias").embeddings[NU, 0] == pytest.approx(want[F], abs=1e-5)
        want = want[:F]
    else:
        want = _ref_rows(R, Q, None, 2.0, 0.3, 1.0)[0]
    np.testing.assert_allclose(vec[0], want, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(model.get_layer("mf_user_embedding").embeddings[NU], vec[0])
    # nothing else moved
    after = model.get_weights()
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b[:a.shape[0]])
    ids, _ = model.recommend([NU], k=3, exclude=None)
    assert ids.shape == (1, 3)
    # an existing user re-solved: the exact solution of its row (what a Cholesky sweep gives)
    model.partial_fit_users([u], row)
    got = model.get_layer("mf_user_embedding").embeddings[u]
    np.testing.assert_allclose(got, vec[0], rtol=1e-6, atol=1e-7)


def test_gmf_and_functional_dot_graph_train_with_als():
    m = _matrix()
    gmf = GMF(NU, NI, factors=F)
    gmf.compile(optimizer="als")
    h = gmf.fit(m, epochs=3, verbose=0).history["loss"]
    assert h[-1] < h[0]
    np.testing.assert_array_equal(gmf.get_layer("prediction").kernel, np.ones((F, 1), np.float32))
    u, i = Input(shape=(1,)), Input(shape=(1,))
    eu = Flatten()(Embedding(NU, F, name="eu")(u))
    ei = Flatten()(Embedding(NI, F, name="ei")(i))
    model = Model([u, i], Dot(axes=1)([eu, ei]))
    model.compile(optimizer=ALS(alpha=2.0, solver="cholesky", regularization=0.2, nu=0.0))
    model.fit(m, epochs=2, verbose=0)
    X = model.get_layer("eu").embeddings
    np.testing.assert_allclose(model.get_layer("ei").embeddings,
                               _ref_rows(_dense(m).T, X, None, 2.0, 0.2, 0.0), rtol=2e-5, atol=2e-5)


def test_callbacks_ranking_metrics_and_early_stop():
    from neurec.callbacks import LambdaCallback
    from neurec.evaluation import RankingMetrics
    m = _matrix()
    model = MF(NU, NI, factors=F)
    model.compile(optimizer=ALS())
    seen = []

    def stop(epoch, logs):
        seen.append(epoch)
        if epoch == 1:
            model.stop_training = True

    users = np.arange(2, NU)
    rm = RankingMetrics(users, np.zeros(users.size, np.int64), train_matrix=(np.array([0]),
                                                                             np.array([0])),
                        n_items=NI, k=5)
    hist = model.fit(m, epochs=10, verbose=0,
                     callbacks=[rm, LambdaCallback(on_epoch_end=stop)])
    assert seen == [0, 1] and len(hist.history["loss"]) == 2
    assert "hr@5" in hist.history and len(hist.history["ndcg@5"]) == 2


def test_misuse_raises_with_the_fix():
    m = _matrix()
    with pytest.raises(ValueError, match="dot-product model.*from_ials"):
        NeuMF(NU, NI, factors=4, layers=(8, 4)).compile(optimizer=ALS())
    model = MF(NU, NI, factors=F)
    model.compile(optimizer=ALS())
    with pytest.raises(TypeError, match="InteractionMatrix"):
        model.fit([np.arange(3), np.arange(3)], np.ones(3))
    with pytest.raises(TypeError, match="InteractionMatrix"):
        model.fit(np.ones((NU, NI)))
    with pytest.raises(ValueError, match="no labels"):
        model.fit(m, np.ones(m.nnz))
    with pytest.raises(ValueError, match="n_users >= 40"):
        model.fit(_matrix(nu=40))
    with pytest.raises(ValueError, match="RankingMetrics"):
        model.fit(m, validation_split=0.1)
    bad = InteractionMatrix(m.indptr, m.indices, -m.data, m.shape)
    with pytest.raises(ValueError, match=">= 0"):
        model.fit(bad)
    with pytest.raises(ValueError, match="solver"):
        ALS(solver="lu")
    with pytest.raises(ValueError, match="cg_steps"):
        ALS(cg_steps=0)
    with pytest.raises(ValueError, match="alpha"):
        ALS(alpha=-1)
    with pytest.raises(TypeError, match="learning rate"):
        ALS(learning_rate=0.1)
    with pytest.raises(ValueError, match="one row per user"):
        model.partial_fit_users([0, 1], m)
    with pytest.raises(TypeError, match="sparse"):
        model.partial_fit_users([0], np.ones((1, NI)))
    # the C core refuses an id out of range and a singular system
    rng = np.random.default_rng(0)
    Y = rng.normal(size=(NI, F)).astype(np.float32)
    X = np.zeros((NU, F), np.float32)
    args = _raw_args(m, X, Y, None, 1.0, 0.1, 0.0, 1, 1)
    args[1] = m.indices.copy()
    args[1][3] = NI
    with pytest.raises(IndexError):
        _core.als_solve(*args, 0, NU)
    Z = np.zeros((NI, F), np.float32)
    with pytest.raises(ValueError, match="positive"):
        _core.als_solve(*_raw_args(m, X, Z, None, 1.0, 0.0, 0.0, 1, 1), 0, NU)


def test_from_ials_starts_gmf_and_neumf_from_the_factors():
    from neurec.models import from_ials
    m = _matrix()
    mf = MF(NU, NI, factors=F, use_bias=False)
    mf.compile(optimizer=ALS(regularization=0.2))
    mf.fit(m, epochs=3, verbose=0)
    P = mf.get_layer("mf_user_embedding").embeddings
    Q = mf.get_layer("mf_item_embedding").embeddings
    gmf = from_ials(mf, "gmf", scale=2.0)
    np.testing.assert_array_equal(gmf.get_layer("gmf_user_embedding").embeddings, P)
    users, items = np.repeat(np.arange(NU), NI), np.tile(np.arange(NI), NU)
    want = 1 / (1 + np.exp(-2.0 * np.einsum("ij,ij->i", P[users].astype(np.float64), Q[items])))
    np.testing.assert_allclose(gmf.predict([users, items])[:, 0], want, rtol=1e-5)
    neumf = from_ials(mf, "neumf", layers=(8, 4))
    np.testing.assert_array_equal(neumf.get_layer("gmf_item_embedding").embeddings, Q)
    e = neumf.get_layer("mlp_user_embedding").embeddings
    np.testing.assert_array_equal(e, P[:, :4])
    np.testing.assert_array_equal(neumf.get_layer("prediction").kernel[:F], np.ones((F, 1)))
    wide = from_ials(mf, "mlp", layers=(16, 4))
    e = wide.get_layer("mlp_item_embedding").embeddings
    np.testing.assert_array_equal(e[:, :F], Q)
    assert not e[:, F:].any()
    neumf.compile(optimizer="adam", loss="binary_crossentropy")
    neumf.fit([users, items], (_dense(m) > 0).ravel().astype(np.float32), epochs=1, verbose=0)
    with pytest.raises(ValueError, match="architecture"):
        from_ials(mf, "dnn")
    with pytest.raises(ValueError, match="dot-product"):
        from_ials(neumf)


def _big_matrix(nu=3000, ni=2000, density=0.03, seed=5):
    rng = np.random.default_rng(seed)
    n = int(nu * ni * density)
    return InteractionMatrix.from_arrays(rng.integers(0, nu, n), rng.integers(0, ni, n),
                                         shape=(nu, ni))


def test_als_fit_releases_the_gil(monkeypatch, one_thread):
    """A Python thread ticks while the row solves run in C (with the GIL held it could tick
    only at the calls' edges)."""
    import threading
    import time
    m = _big_matrix()
    model = MF(3000, 2000, factors=48)
    model.compile(optimizer=ALS(solver="cholesky"))
    state = {"in_c": False, "calls": 0, "ticks": 0}
    real = _core.als_solve

    def wrapped(*a):
        state["in_c"] = True
        state["calls"] += 1
        try:
            return real(*a)
        finally:
            state["in_c"] = False

    monkeypatch.setattr(_core, "als_solve", wrapped)
    done = threading.Event()

    def ticker():
        while not done.is_set():
            if state["in_c"]:
                state["ticks"] += 1
            time.sleep(0.0005)

    t = threading.Thread(target=ticker)
    t.start()
    try:
        model.fit(m, epochs=1, verbose=0)
    finally:
        done.set()
        t.join()
    assert state["calls"] >= 2
    assert state["ticks"] > 3 * state["calls"] + 10


def test_ctrl_c_stops_als_fit_and_keeps_a_consistent_model():
    import _thread
    import threading

    from neurec.callbacks import LambdaCallback
    m = _big_matrix(600, 500, 0.05)
    model = MF(600, 500, factors=16, use_bias=True)
    model.compile(optimizer=ALS())
    first = threading.Event()
    cb = LambdaCallback(on_train_batch_end=lambda b, logs: first.set())

    def send():
        first.wait()
        _thread.interrupt_main()

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    with pytest.raises(KeyboardInterrupt):
        model.fit(m, epochs=100_000, verbose=0, callbacks=[cb])
    sender.join()
    assert 0 <= model.optimizer.iterations < 100_000
    # the user side solved before the interrupt reached the layers (biases are written back)
    assert model.get_layer("mf_user_bias").embeddings.any()
    for w in model.get_weights():
        assert np.all(np.isfinite(w))
    h = model.fit(m, epochs=1, verbose=0)
    assert np.isfinite(h.history["loss"][0])


def test_stored_zeros_are_not_interactions():
    m = _matrix()
    zeros = InteractionMatrix(m.indptr, m.indices, np.where(np.arange(m.nnz) % 3 == 0, 0.0, m.data),
                              m.shape)
    dense = _dense(zeros)
    model = MF(NU, NI, factors=F, use_bias=False)
    model.compile(optimizer=ALS(alpha=1.0, regularization=0.2, nu=1.0, solver="cholesky"))
    model.fit(zeros, epochs=1, verbose=0)
    X = model.get_layer("mf_user_embedding").embeddings
    Y = model.get_layer("mf_item_embedding").embeddings
    np.testing.assert_allclose(Y, _ref_rows(dense.T, X, None, 1.0, 0.2, 1.0), rtol=2e-5, atol=2e-5)


def test_fit_accepts_a_sampler_or_scipy_matrix_as_the_same_data():
    from neurec.data import NegativeSampler
    m = _matrix(values=False)

    def train(x):
        neurec.utils.set_random_seed(3)
        model = MF(NU, NI, factors=F)
        model.compile(optimizer=ALS())
        model.fit(x, epochs=2, verbose=0)
        return model.get_weights()

    want = train(m)
    for a, b in zip(want, train(NegativeSampler(m, num_negatives=0))):
        np.testing.assert_array_equal(a, b)
    sparse = pytest.importorskip("scipy.sparse")
    for a, b in zip(want, train(sparse.csr_matrix(_dense(m)))):
        np.testing.assert_array_equal(a, b)
