"""The NCF model zoo (GMF, MLP, NeuMF, MF, neumf_from_pretrained, from_ials).

Shapes, parameter counts against closed formulas, layer names, the paper's
initialisation defaults, learning on a planted low-rank data set under the NCF
protocol, save/load, the pretraining merge, and the docstrings' examples (each
runs as printed, from its own imports, and leaves a trained model behind).
"""
import doctest
import inspect
import re

import numpy as np
import pytest

from neurec import optimizers
from neurec.data import InteractionLog, NegativeSampler, leave_one_out, sample_negatives
from neurec.evaluation import PopularityModel, evaluate_sampled
from neurec.models import GMF, MF, MLP, Model, NeuMF, load_model, neumf_from_pretrained, zoo

NU, NI = 300, 200


def _planted(n_users=NU, n_items=NI, groups=8, per_user=16, seed=0):
    """Users in ``groups`` taste groups buy only items of their group, skewed by popularity.

    Popularity alone is a weak signal (it ignores the group); a model that learns
    the rank-``groups`` structure ranks the held-out item near the top.
    """
    rng = np.random.default_rng(seed)
    ug = rng.integers(0, groups, n_users)
    ig = np.arange(n_items) % groups
    pop = rng.pareto(1.0, n_items) + 1.0
    users, items = [], []
    for g in range(groups):
        cand = np.flatnonzero(ig == g)
        p = pop[cand] / pop[cand].sum()
        for u in np.flatnonzero(ug == g):
            users.append(np.full(per_user, u))
            items.append(rng.choice(cand, per_user, replace=False, p=p))
    users, items = np.concatenate(users), np.concatenate(items)
    return users, items, rng.permutation(users.size)


@pytest.fixture(scope="module")
def ncf_data():
    u, i, t = _planted()
    train, test = leave_one_out(InteractionLog.from_arrays(u, i, timestamps=t))
    matrix = train.to_matrix(shape=(NU, NI))
    negatives = sample_negatives(matrix, test.users, 99, seed=0, exclude_items=test.items)
    return matrix, test, negatives


BUILDERS = {
    "gmf": lambda nu, ni: GMF(nu, ni),
    "mlp": lambda nu, ni: MLP(nu, ni),
    "neumf": lambda nu, ni: NeuMF(nu, ni),
    "mf": lambda nu, ni: MF(nu, ni, factors=16),
}


def _mlp_params(nu, ni, layers):
    n = (nu + ni) * (layers[0] // 2)
    n += sum(a * b + b for a, b in zip(layers[:-1], layers[1:]))
    return n


# ---------------------------------------------------------------- structure
@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_output_shape_inputs_and_predict_range(name):
    m = BUILDERS[name](13, 11)
    assert isinstance(m, Model)
    assert m.output_shape == (None, 1)
    assert m.input_names == ["user", "item"]
    assert [tuple(t.shape) for t in m.inputs] == [(None, 1), (None, 1)]
    u = np.repeat(np.arange(13), 11)
    i = np.tile(np.arange(11), 13)
    p = m.predict([u, i], verbose=0)
    assert p.shape == (143, 1) and p.dtype == np.float32
    assert np.all((p > 0) & (p < 1))


@pytest.mark.parametrize("nu,ni,f", [(10, 20, 8), (7, 3, 5), (1000, 1, 16)])
def test_gmf_param_count(nu, ni, f):
    assert GMF(nu, ni, factors=f).count_params() == (nu + ni) * f + f + 1


@pytest.mark.parametrize("layers", [(64, 32, 16, 8), (16, 8), (10,), (128, 64, 32, 16, 8)])
def test_mlp_param_count(layers):
    m = MLP(10, 20, layers=layers)
    assert m.count_params() == _mlp_params(10, 20, layers) + layers[-1] + 1


def test_neumf_param_count_paper_setting():
    # factor 8, MLP [64, 32, 16, 8]: 8-wide GMF embeddings, 32-wide MLP embeddings
    nu, ni = 10, 20
    expected = (nu + ni) * 8 + _mlp_params(nu, ni, (64, 32, 16, 8)) + (8 + 8) + 1
    assert expected == 3961
    assert NeuMF(nu, ni, factors=8, layers=(64, 32, 16, 8)).count_params() == expected
    # a different tower and factor
    exp2 = (nu + ni) * 4 + _mlp_params(nu, ni, (20, 6)) + (4 + 6) + 1
    assert NeuMF(nu, ni, factors=4, layers=(20, 6)).count_params() == exp2


@pytest.mark.parametrize("bias", [True, False])
def test_mf_param_count(bias):
    nu, ni, f = 10, 20, 6
    extra = (nu + ni) if bias else 0
    assert MF(nu, ni, factors=f, use_bias=bias).count_params() == (nu + ni) * f + extra + 2


def test_layer_names():
    assert [l.name for l in GMF(3, 4).layers] == [
        "user", "item", "gmf_user_embedding", "gmf_user_flat", "gmf_item_embedding",
        "gmf_item_flat", "gmf_product", "prediction"]
    tower = ["mlp_user_embedding", "mlp_user_flat", "mlp_item_embedding", "mlp_item_flat",
             "mlp_concat", "layer1", "layer2", "layer3"]
    assert [l.name for l in MLP(3, 4).layers] == ["user", "item"] + tower + ["prediction"]
    assert [l.name for l in NeuMF(3, 4).layers] == [
        "user", "item", "gmf_user_embedding", "gmf_user_flat", "gmf_item_embedding",
        "gmf_item_flat", "gmf_product"] + tower + ["neumf_concat", "prediction"]
    names = {l.name for l in MF(3, 4).layers}
    assert {"mf_user_embedding", "mf_item_embedding", "mf_dot", "mf_user_bias", "mf_item_bias",
            "mf_sum", "prediction"} <= names
    assert "mf_user_bias" not in {l.name for l in MF(3, 4, use_bias=False).layers}
    assert GMF(3, 4).name == "gmf" and NeuMF(3, 4, name="x").name == "x"


def test_mlp_tower_sizes_and_activations():
    m = MLP(5, 6, layers=(64, 32, 16, 8))
    assert m.get_layer("mlp_user_embedding").output_dim == 32
    assert m.get_layer("mlp_item_embedding").output_dim == 32
    assert [m.get_layer(f"layer{k}").units for k in (1, 2, 3)] == [32, 16, 8]
    for k in (1, 2, 3):
        assert m.get_layer(f"layer{k}").get_config()["activation"] == "relu"
    assert m.get_layer("prediction").get_config()["activation"] == "sigmoid"


# ---------------------------------------------------------------- paper defaults
@pytest.mark.parametrize("builder,layer", [
    (lambda: GMF(40000, 10), "gmf_user_embedding"),
    (lambda: NeuMF(20000, 10, layers=(16, 8)), "gmf_user_embedding"),
    (lambda: NeuMF(20000, 10, layers=(16, 8)), "mlp_user_embedding"),
    (lambda: MLP(20000, 10, layers=(32, 8)), "mlp_user_embedding"),
])
def test_embeddings_are_normal_std_001(builder, layer):
    w = builder().get_layer(layer).embeddings.astype(np.float64).ravel()
    assert w.size >= 160000
    assert abs(w.std() - 0.01) < 0.0003
    assert abs(w.mean()) < 0.0002
    # normal, not uniform: about 4.55% beyond two standard deviations
    assert 0.04 < np.mean(np.abs(w) > 0.02) < 0.051


def test_mf_init_stddev_and_zero_biases():
    m = MF(30000, 10, factors=8, init_stddev=0.1)
    w = m.get_layer("mf_user_embedding").embeddings
    assert abs(w.std() - 0.1) < 0.003
    assert not m.get_layer("mf_user_bias").embeddings.any()
    assert not m.get_layer("mf_item_bias").embeddings.any()
    k, b = m.get_layer("prediction").get_weights()
    assert k.tolist() == [[1.0]] and b.tolist() == [0.0]


@pytest.mark.parametrize("builder,fan_in", [
    (lambda: MLP(5, 5, layers=(64, 1024)), 1024),
    (lambda: NeuMF(5, 5, factors=512, layers=(64, 512)), 1024),
    (lambda: GMF(5, 5, factors=1024), 1024),
])
def test_prediction_layer_is_lecun_uniform(builder, fan_in):
    m = builder()
    pred = m.get_layer("prediction")
    assert pred.get_config()["kernel_initializer"]["class_name"] == "LecunUniform"
    k, b = pred.get_weights()
    assert k.shape == (fan_in, 1)
    limit = np.sqrt(3.0 / fan_in)
    assert np.all(np.abs(k) <= limit)
    assert np.abs(k).max() > 0.95 * limit          # fills the range: uniform, not normal
    assert abs(k.std() - limit / np.sqrt(3.0)) < 0.1 * limit / np.sqrt(3.0)
    assert not b.any()


# ---------------------------------------------------------------- learning
@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_trains_on_planted_data_and_beats_popularity(name, ncf_data):
    matrix, test, negatives = ncf_data
    pop = evaluate_sampled(PopularityModel().fit(matrix), test.users, test.items, negatives)
    m = BUILDERS[name](NU, NI)
    m.compile(optimizer=optimizers.Adam(learning_rate=0.01), loss="binary_crossentropy")
    before = evaluate_sampled(m, test.users, test.items, negatives)
    hist = m.fit(NegativeSampler(matrix, num_negatives=4, seed=0), epochs=6, batch_size=256,
                 verbose=0, seed=0)
    loss = hist.history["loss"]
    assert len(loss) == 6
    assert loss[-1] < 0.5 * loss[0]
    res = evaluate_sampled(m, test.users, test.items, negatives)
    assert pop["hr@10"] < 0.35
    assert res["hr@10"] > 0.8
    assert res["hr@10"] > pop["hr@10"] + 0.4
    assert res["ndcg@10"] > pop["ndcg@10"] + 0.3
    assert res["hr@10"] > before["hr@10"] + 0.4


# ---------------------------------------------------------------- saving
@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_save_load_round_trip(name, tmp_path, ncf_data):
    matrix = ncf_data[0]
    m = BUILDERS[name](NU, NI)
    m.compile(optimizer="adam", loss="binary_crossentropy")
    m.fit(NegativeSampler(matrix, num_negatives=1, seed=1), epochs=1, batch_size=512, verbose=0,
          seed=0)
    path = tmp_path / f"{name}.neurec"
    m.save(path)
    m2 = load_model(path)
    assert m2.name == m.name
    assert [l.name for l in m2.layers] == [l.name for l in m.layers]
    assert m2.count_params() == m.count_params()
    for a, b in zip(m.get_weights(), m2.get_weights()):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    u = np.arange(NU).repeat(3)
    i = (np.arange(u.size) * 7) % NI
    np.testing.assert_array_equal(m2.predict([u, i], verbose=0), m.predict([u, i], verbose=0))
    # the loaded model keeps training
    h = m2.fit(NegativeSampler(matrix, num_negatives=1, seed=2), epochs=1, batch_size=512,
               verbose=0, seed=0)
    assert np.isfinite(h.history["loss"][0])


# ---------------------------------------------------------------- pretraining
def _perturbed(model, rng):
    """Give every weight a distinct random value (so a copy is checkable)."""
    model.set_weights([rng.normal(0, 0.5, w.shape).astype(np.float32) for w in model.get_weights()])
    return model


@pytest.mark.parametrize("alpha", [0.5, 0.3, 0.0, 1.0])
def test_neumf_from_pretrained_weights(alpha):
    rng = np.random.default_rng(3)
    gmf = _perturbed(GMF(17, 23, factors=6), rng)
    mlp = _perturbed(MLP(17, 23, layers=(20, 10, 4)), rng)
    nm = neumf_from_pretrained(gmf, mlp, alpha=alpha)
    assert nm.get_layer("gmf_user_embedding").output_dim == 6
    assert [nm.get_layer(f"layer{k}").units for k in (1, 2)] == [10, 4]
    for src in (gmf, mlp):
        for layer in src.layers:
            if layer.name == "prediction" or not layer.weights:
                continue
            for a, b in zip(layer.get_weights(), nm.get_layer(layer.name).get_weights()):
                np.testing.assert_array_equal(a, b)
    gk, gb = gmf.get_layer("prediction").get_weights()
    mk, mb = mlp.get_layer("prediction").get_weights()
    k, b = nm.get_layer("prediction").get_weights()
    assert k.shape == (6 + 4, 1)
    np.testing.assert_allclose(k[:6], alpha * gk, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(k[6:], (1 - alpha) * mk, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(b, alpha * gb + (1 - alpha) * mb, rtol=1e-6, atol=1e-7)
    # copies, not views: training the source afterwards leaves the NeuMF alone
    before = nm.get_layer("gmf_item_embedding").embeddings.copy()
    gmf.get_layer("gmf_item_embedding").embeddings[:] += 1.0
    np.testing.assert_array_equal(nm.get_layer("gmf_item_embedding").embeddings, before)


def _logit(p):
    p = p.astype(np.float64).ravel()
    return np.log(p) - np.log1p(-p)


@pytest.mark.parametrize("alpha", [0.5, 0.25])
def test_neumf_from_pretrained_prediction_mixes_logits(alpha):
    rng = np.random.default_rng(4)
    gmf = _perturbed(GMF(9, 12, factors=8), rng)
    mlp = _perturbed(MLP(9, 12, layers=(16, 8, 4)), rng)
    nm = neumf_from_pretrained(gmf, mlp, alpha=alpha)
    u = np.repeat(np.arange(9), 12)
    i = np.tile(np.arange(12), 9)
    lg = _logit(gmf.predict([u, i], verbose=0))
    lm = _logit(mlp.predict([u, i], verbose=0))
    ln = _logit(nm.predict([u, i], verbose=0))
    assert np.ptp(lg) > 0.5 and np.ptp(lm) > 0.1   # the check has something to compare
    np.testing.assert_allclose(ln, alpha * lg + (1 - alpha) * lm, atol=2e-4)


def test_neumf_from_pretrained_after_training(ncf_data):
    matrix, test, negatives = ncf_data
    gmf, mlp = GMF(NU, NI), MLP(NU, NI)
    for m in (gmf, mlp):
        m.compile(optimizer=optimizers.Adam(learning_rate=0.01), loss="binary_crossentropy")
        m.fit(NegativeSampler(matrix, seed=0), epochs=3, batch_size=256, verbose=0, seed=0)
    nm = neumf_from_pretrained(gmf, mlp)
    nm.compile(optimizer=optimizers.SGD(learning_rate=0.001), loss="binary_crossentropy")
    res = evaluate_sampled(nm, test.users, test.items, negatives)
    worst = min(evaluate_sampled(m, test.users, test.items, negatives)["hr@10"] for m in (gmf, mlp))
    assert res["hr@10"] >= worst - 0.05
    h = nm.fit(NegativeSampler(matrix, seed=1), epochs=1, batch_size=256, verbose=0, seed=0)
    assert np.isfinite(h.history["loss"][0])


def test_neumf_from_pretrained_rejects_mismatch_and_alpha():
    gmf, mlp = GMF(5, 6), MLP(5, 6, layers=(8, 4))
    for alpha in (2, -0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="alpha"):
            neumf_from_pretrained(gmf, mlp, alpha=alpha)
    with pytest.raises(ValueError, match="n_users"):
        neumf_from_pretrained(GMF(5, 6), MLP(4, 6, layers=(8, 4)))
    with pytest.raises(ValueError, match="n_items"):
        neumf_from_pretrained(GMF(5, 6), MLP(5, 7, layers=(8, 4)))
    with pytest.raises(ValueError):
        neumf_from_pretrained(mlp, gmf)   # swapped: no gmf_user_embedding in an MLP


# ---------------------------------------------------------------- bad arguments
@pytest.mark.parametrize("builder", [GMF, MLP, NeuMF, MF])
@pytest.mark.parametrize("nu,ni,arg", [(0, 5, "n_users"), (5, 0, "n_items"),
                                       (-3, 5, "n_users"), (2.5, 5, "n_users"),
                                       (True, 5, "n_users"), (5, None, "n_items")])
def test_bad_sizes_raise(builder, nu, ni, arg):
    with pytest.raises(ValueError, match=arg):
        builder(nu, ni)


@pytest.mark.parametrize("builder", [MLP, NeuMF])
@pytest.mark.parametrize("layers", [(63, 32), (7,), (), (64, 0), (64, -8)])
def test_bad_layers_raise(builder, layers):
    with pytest.raises(ValueError, match="layers"):
        builder(5, 6, layers=layers)


@pytest.mark.parametrize("builder", [MLP, NeuMF])
def test_reg_layers_length_mismatch_raises(builder):
    with pytest.raises(ValueError, match="reg_layers"):
        builder(5, 6, layers=(16, 8), reg_layers=(0.0,))


def test_sizes_accept_numpy_integers():
    m = NeuMF(np.int64(5), np.int32(6), layers=(8, 4))
    assert m.get_layer("gmf_user_embedding").input_dim == 5
    assert m.get_layer("mlp_item_embedding").input_dim == 6


# ---------------------------------------------------------------- docstring examples
def _run_doctest(obj, name):
    """Run ``obj``'s docstring examples in a fresh namespace; return (output, namespace)."""
    tests = doctest.DocTestFinder(recurse=False).find(obj, name, globs={})
    assert len(tests) == 1 and tests[0].examples, f"{name} has no >>> example"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report = []
    runner.run(tests[0], out=report.append, clear_globs=False)
    assert runner.failures == 0, "".join(report)
    return tests[0], tests[0].globs


def _check_trained(ns, name):
    model = ns["model"]
    assert isinstance(model, Model) and model.output_shape == (None, 1), name
    assert model.optimizer is not None, f"{name}: the example compiles its model"
    p = model.predict([np.arange(10), np.arange(10)[::-1]], verbose=0)
    assert p.shape == (10, 1) and np.all(np.isfinite(p)) and np.all((p > 0) & (p < 1))
    loss = ns["history"].history["loss"]
    # binary cross-entropy on 1 positive : 4 negatives: a sane model stays near 0.5
    assert loss and np.all(np.isfinite(loss)) and 0.0 < loss[-1] < 1.0, (name, loss)


@pytest.mark.parametrize("name", zoo.__all__)
def test_docstring_example_runs_as_printed(name):
    obj = getattr(zoo, name)
    doc = inspect.getdoc(obj)
    assert re.search(r"^Example:\n\s+>>> ", doc, re.M), f"{name}'s docstring has no Example:"
    for section in ("Args:", "Returns:", "Raises:"):
        assert f"\n{section}\n" in doc, f"{name}'s docstring has no {section}"
    test, ns = _run_doctest(obj, name)
    # copied alone it runs: the example imports what it uses (the namespace started empty)
    assert any("from neurec.models import" in e.source and name in e.source
               for e in test.examples), f"{name}'s example does not import {name}"
    _check_trained(ns, name)


def test_module_docstring_example_runs():
    m = re.search(r"::\n\n((?:    .*\n|\n)+)", zoo.__doc__)
    assert m, "neurec.models.zoo's docstring has no code block"
    code = "\n".join(line[4:] for line in m.group(1).splitlines())
    ns = {}
    exec(compile(code, "neurec.models.zoo docstring", "exec"), ns)
    _check_trained(ns, "zoo")
    assert ns["ids"].shape == (2, 5) and ns["scores"].shape == (2, 5)
    assert not ns["sampler"].matrix.contains(np.array([[0], [1]]), ns["ids"]).any()
