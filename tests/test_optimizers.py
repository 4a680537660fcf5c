"""Each optimizer step in C against the NumPy reference, in dense and sparse modes."""
import numpy as np
import pytest

from graphs import data_for, neumf
from neurec import _reference as ref
from neurec import optimizers
from neurec.layers import Embedding, Input
from neurec.regularizers import L2

OPTS = [
    lambda s: optimizers.Adam(0.01, sparse_updates=s, catch_up=False),
    lambda s: optimizers.SGD(0.05, momentum=0.9, sparse_updates=s, catch_up=False),
    lambda s: optimizers.SGD(0.1, sparse_updates=s),
    lambda s: optimizers.SGD(0.05, momentum=0.9, sparse_updates=s),
    lambda s: optimizers.SGD(0.05, momentum=0.8, nesterov=True, sparse_updates=s),
    lambda s: optimizers.Adam(0.01, sparse_updates=s),
    lambda s: optimizers.Adam(0.01, amsgrad=True, sparse_updates=s),
    lambda s: optimizers.Adagrad(0.05, sparse_updates=s),
    lambda s: optimizers.RMSprop(0.01, sparse_updates=s),
    lambda s: optimizers.RMSprop(0.01, momentum=0.5, centered=True, sparse_updates=s),
    # every hyperparameter away from its default, so each must reach C
    lambda s: optimizers.Adam(0.02, beta_1=0.5, beta_2=0.9, epsilon=1e-3, sparse_updates=s),
    lambda s: optimizers.Adagrad(0.05, initial_accumulator_value=0.5, epsilon=1e-2,
                                 sparse_updates=s),
    lambda s: optimizers.RMSprop(0.01, rho=0.5, epsilon=1e-3, sparse_updates=s),
]


def run_reference(model, xs, y, opt, batch, sparse):
    params = {(l.name, k): w.astype(np.float64) for l in model.layers for k, w in enumerate(l.weights)}
    tables = {(l.name, 0) for l in model.layers if isinstance(l, Embedding)}
    inputs_of = {}
    for node in model._nodes_in_order:
        if isinstance(node.layer, Embedding):
            inputs_of.setdefault((node.layer.name, 0), []).append(model.inputs.index(node.inputs[0]))
    states = {k: {} for k in params}
    steps = {k: np.zeros(params[k].shape[0], np.int64) for k in tables}
    n = len(y)
    t = 0
    for start in range(0, n, batch):
        t += 1
        sl = slice(start, start + batch)
        bx = [x[sl] for x in xs]
        _, g = ref.gradients(model, bx, y[sl], model.loss, params)
        for key, w in params.items():
            gk = g.get(key, np.zeros_like(w))
            l2 = 0.0
            if sparse and key in tables:
                rows = np.concatenate([bx[i].ravel() for i in inputs_of[key]]).astype(np.int64)
                ref.optimizer_step_rows(opt, w, gk, rows, states[key], steps[key], l2, t)
            else:
                ref.optimizer_step(opt, w, gk, states[key], t, l2)
    return [params[(l.name, k)] for l in model.layers for k in range(len(l.weights))]


@pytest.mark.parametrize("make", OPTS)
@pytest.mark.parametrize("sparse", [False, True])
def test_optimizer_steps_match_reference(make, sparse, one_thread):
    model = neumf()
    xs = data_for(model, 48, seed=11)
    xs[0][:16] %= 4  # rows touched in batch 1, skipped in batch 2, back in batch 3: catch-up runs
    xs[0][16:32] = 5 + xs[0][16:32] % 4
    xs[0][32:] %= 4
    y = np.random.default_rng(12).integers(0, 2, 48).astype(np.float32)
    model.compile(optimizer=make(sparse), loss="binary_crossentropy")
    ref_opt = make(sparse)
    want = run_reference(model, xs, y, ref_opt, 16, sparse)
    model.fit(xs, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    assert model.optimizer.iterations == 3
    for got, exp in zip(model.get_weights(), want):
        np.testing.assert_allclose(got, exp, rtol=2e-5, atol=1e-5)


def test_sparse_updates_leave_untouched_rows_alone(one_thread):
    model = neumf()
    xs = data_for(model, 32, seed=1)
    xs[0][:] = xs[0] % 3  # users 0..2 only
    y = np.ones(32, np.float32)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    table = model.layers[2].embeddings
    before = table.copy()
    model.fit(xs, y, batch_size=8, epochs=2, verbose=0)
    assert not np.array_equal(table[:3], before[:3])
    np.testing.assert_array_equal(table[3:], before[3:])
    model2 = neumf()
    model2.compile(optimizer=optimizers.Adam(sparse_updates=False), loss="binary_crossentropy")
    t2 = model2.layers[2].embeddings
    b2 = t2.copy()
    model2.fit(xs, y, batch_size=8, epochs=2, verbose=0)
    # dense Adam moves rows with zero gradient too once their moments are non-zero
    assert not np.array_equal(t2[:3], b2[:3])


def test_l2_regularizer_gradient(one_thread):
    from neurec.layers import Dense, Flatten
    from neurec.models import Model
    u = Input(shape=(1,))
    emb = Embedding(10, 4, embeddings_regularizer=L2(0.1))
    out = Dense(1, kernel_regularizer=L2(0.05))(Flatten()(emb(u)))
    model = Model(u, out)
    model.compile(optimizer=optimizers.SGD(1.0, sparse_updates=False), loss="mse")
    x = np.arange(10)
    y = np.zeros(10, np.float32)
    w0 = model.get_weights()
    _, g = ref.gradients(model, [x], y, model.loss)
    model.fit(x, y, batch_size=10, epochs=1, shuffle=False, verbose=0)
    w1 = model.get_weights()
    want_emb = w0[0] - (g[(emb.name, 0)] + 2 * 0.1 * w0[0])
    np.testing.assert_allclose(w1[0], want_emb, rtol=1e-5, atol=1e-6)
    # the reported loss includes the penalty
    res = model.evaluate(x, y, return_dict=True, verbose=0)
    pen = 0.1 * np.sum(w1[0].astype(np.float64) ** 2) + 0.05 * np.sum(w1[1].astype(np.float64) ** 2)
    pred = model.predict(x)
    assert res["loss"] == pytest.approx(np.mean(pred.astype(np.float64) ** 2) + pen, rel=1e-5)


@pytest.mark.parametrize("make", [lambda: optimizers.Adam(0.01), lambda: optimizers.SGD(0.05, momentum=0.9),
                                  lambda: optimizers.RMSprop(0.01, momentum=0.5)])
def test_catch_up_tracks_dense_updates(make, one_thread):
    """Lazy updates with catch-up stay close to dense updates; plain lazy ones drift."""
    from neurec.layers import Dense, Flatten
    from neurec.models import Model
    rng = np.random.default_rng(0)
    users = rng.integers(0, 40, 4000)
    y = (users % 2).astype(np.float32)
    results = {}
    for mode in ("dense", "catch_up", "lazy"):
        u = Input(shape=(1,))
        emb = Embedding(40, 4, embeddings_initializer="ones")
        model = Model(u, Dense(1, activation="sigmoid", kernel_initializer="ones")(Flatten()(emb(u))))
        opt = make()
        opt.sparse_updates = mode != "dense"
        opt.catch_up = mode == "catch_up"
        model.compile(optimizer=opt, loss="binary_crossentropy")
        model.fit(users, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
        results[mode] = emb.embeddings.copy()
    err_catch = np.abs(results["catch_up"] - results["dense"]).max()
    err_lazy = np.abs(results["lazy"] - results["dense"]).max()
    # not exact: the touched step's gradient is taken before the catch-up moves the row
    assert err_catch < 0.2 * err_lazy + 1e-4, (err_catch, err_lazy)


def test_optimizer_arguments_validated():
    with pytest.raises(ValueError, match="learning_rate"):
        optimizers.Adam(learning_rate=-1)
    with pytest.raises(ValueError, match="beta_1"):
        optimizers.Adam(beta_1=1.5)
    with pytest.raises(ValueError, match="momentum"):
        optimizers.SGD(momentum=1.0)
    with pytest.raises(ValueError, match="Unknown optimizer"):
        optimizers.get("adamw2")
    assert isinstance(optimizers.get("Adam"), optimizers.Adam)
    assert optimizers.Adam().get_config()["epsilon"] == 1e-7


# -- state: build, save_own_variables, load_own_variables ---------------------------------
def _trained(opt):
    model = neumf()
    model.compile(optimizer=opt, loss="binary_crossentropy")
    xs = data_for(model, 64, seed=2)
    model.fit(xs, np.arange(64) % 2, batch_size=16, epochs=1, verbose=0, seed=1)
    return model, xs


@pytest.mark.parametrize("make", [lambda: optimizers.Adam(catch_up=False),
                                  lambda: optimizers.RMSprop(momentum=0.5, centered=True),
                                  lambda: optimizers.SGD()])
def test_own_variables_round_trip_into_a_model_of_the_same_shapes(make):
    a, xs = _trained(make())
    store = {}
    a.optimizer.save_own_variables(store)
    assert sorted(store, key=int) == [str(i) for i in range(len(a.optimizer.variables()))]
    b = neumf()
    b.set_weights(a.get_weights())
    b.compile(optimizer=make(), loss="binary_crossentropy")
    assert not b.optimizer.built
    b.build_optimizer()
    assert b.optimizer.built
    b.optimizer.load_own_variables(store)
    assert b.optimizer.iterations == a.optimizer.iterations == 4
    for x, y in zip(a.optimizer.variables(), b.optimizer.variables()):
        np.testing.assert_array_equal(x, y)
    a.fit(xs, np.arange(64) % 2, batch_size=16, epochs=1, verbose=0, shuffle=False)
    b.fit(xs, np.arange(64) % 2, batch_size=16, epochs=1, verbose=0, shuffle=False)
    for x, y in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(x, y)


def test_load_own_variables_checks_everything_before_assigning():
    model, _ = _trained(optimizers.Adam(catch_up=False))
    opt = model.optimizer
    before = [v.copy() for v in opt.variables()]
    good = {}
    opt.save_own_variables(good)
    good = {k: v.copy() for k, v in good.items()}
    steps_key = next(k for k, v in good.items() if k != "0" and v.dtype == np.int64)
    bad_cases = [
        ({"0": np.array([-1], np.int64)}, "iterations"),
        ({"0": np.array([2.0])}, "iterations"),
        ({steps_key: np.full_like(good[steps_key], -3)}, "step"),
        ({"2": -np.ones_like(good["2"])}, "negative"),        # Adam's v of the first weight
        ({"1": np.full_like(good["1"], np.nan)}, "NaN"),
        ({"1": np.ones((2, 2), np.float32)}, "shape"),
    ]
    for change, match in bad_cases:
        store = {**good, **change}
        store[str(len(good) - 1)] = store[str(len(good) - 1)] + 1  # a valid change, last
        with pytest.raises(ValueError, match=match):
            opt.load_own_variables(store)
        for v, b in zip(opt.variables(), before):
            np.testing.assert_array_equal(v, b)      # nothing was assigned
    with pytest.raises(ValueError, match="expected"):
        opt.load_own_variables({k: v for k, v in good.items() if k != "1"})
    with pytest.raises(ValueError, match="build"):
        optimizers.Adam().load_own_variables(good)


def test_build_keeps_matching_state_and_grows_it_with_a_table():
    opt = optimizers.Adam(catch_up=False)
    table, kernel = np.zeros((5, 3), np.float32), np.zeros((3, 1), np.float32)
    opt.build([table, kernel], [True, False])
    opt._slots[0][0][:] = 1.0
    opt._slots[0][3][:] = 4
    opt.build([table, kernel], [True, False])  # same shapes: the state carries over
    assert opt._slots[0][0].max() == 1.0
    opt.build([np.zeros((7, 3), np.float32), kernel], [True, False])  # the table grew
    m, steps = opt._slots[0][0], opt._slots[0][3]
    assert m.shape == (7, 3) and (m[:5] == 1.0).all() and (m[5:] == 0.0).all()
    np.testing.assert_array_equal(steps, [4, 4, 4, 4, 4, 0, 0])
    opt.build([np.zeros((7, 4), np.float32), kernel], [True, False])  # another width: renewed
    assert opt._slots[0][0].shape == (7, 4) and opt._slots[0][0].max() == 0.0
    assert opt._slots[0][3].max() == 0
    ada = optimizers.Adagrad(initial_accumulator_value=0.5)  # new rows: the initial value
    ada.build([table], [True])
    ada._slots[0][0][:] = 2.0
    ada.build([np.zeros((6, 3), np.float32)], [True])
    np.testing.assert_array_equal(ada._slots[0][0][:, 0], [2, 2, 2, 2, 2, 0.5])
    sgd = optimizers.SGD()  # no slots: only the per-row step counts say the table grew
    sgd.build([table], [True])
    sgd.build([np.zeros((9, 3), np.float32)], [True])
    assert sgd._slots[0][3].shape == (9,)
