"""The benchmarks' own code: every script starts, and the metric code behind every number.

``benchmarks/ncf_data.py`` is the data, sampler and HR/NDCG code every benchmark (neurec,
PyTorch, Keras) is scored with, so its tie rule and metrics are checked here like the package's
own. The tests build tiny NCF files in tmp_path and need no data set; the PyTorch and Keras
baselines are checked where those are installed (the ``bench`` extra).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

BENCH_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")
if not os.path.isfile(os.path.join(BENCH_DIR, "ncf_data.py")):
    pytest.skip("no benchmarks/ beside tests/", allow_module_level=True)
sys.path.insert(0, BENCH_DIR)

import ncf_data  # noqa: E402

# The scripts a user runs (the rest are modules they import).
SCRIPTS = sorted(
    f
    for f in os.listdir(BENCH_DIR)
    if f.endswith(".py") and f not in ("common.py", "ncf_data.py", "torch_ncf.py")
)


def test_every_benchmark_script_starts(tmp_path):
    """``--help`` of every script, in one child process: imports and argument parsers work
    without the optional peers (torch, keras, implicit are imported only when a run needs them).
    """
    code = """
import contextlib, io, os, runpy, sys
import neurec._core  # the installed package: common.py puts the source tree on sys.path,
                     # which in .ci/package.sh is an sdist without the C extension
failed = []
sys.path.insert(0, os.path.dirname(sys.argv[1]))  # as `python benchmarks/<script>.py` does
for path in sys.argv[1:]:
    sys.argv = [path, "--help"]
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            runpy.run_path(path, run_name="__main__")
        failed.append((path, "no exit"))
    except SystemExit as e:
        if e.code not in (0, None) or "usage:" not in out.getvalue():
            failed.append((path, f"exit {e.code}"))
    except Exception as e:
        failed.append((path, repr(e)))
print(failed)
sys.exit(1 if failed else 0)
"""
    assert len(SCRIPTS) >= 10, SCRIPTS
    # cwd: `python -c` puts the working directory first on sys.path, and a source tree there
    # (the sdist's, in .ci/package.sh) would shadow the installed package and its C core
    r = subprocess.run(
        [sys.executable, "-c", code] + [os.path.join(BENCH_DIR, f) for f in SCRIPTS],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]


def _write_split(tmp_path, train_rows, test_rows, negatives, name="toy"):
    prefix = str(tmp_path / name)
    with open(prefix + ".train.rating", "w") as f:
        f.writelines(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in train_rows)
    with open(prefix + ".test.rating", "w") as f:
        f.writelines(f"{u}\t{i}\t1\t999\n" for u, i in test_rows)
    with open(prefix + ".test.negative", "w") as f:
        for (u, i), negs in zip(test_rows, negatives):
            f.write(f"({u},{i})\t" + "\t".join(map(str, negs)) + "\n")
    return prefix


def _random_split(tmp_path, n_users=30, n_items=40, per_user=8, num_neg=20, seed=0):
    rng = np.random.default_rng(seed)
    train, test, negs = [], [], []
    for u in range(n_users):
        items = rng.choice(n_items, size=per_user + 1, replace=False)
        train += [(u, int(i), 1, 0) for i in items[:-1]]
        test.append((u, int(items[-1])))
        pool = np.setdiff1d(np.arange(n_items), items)
        negs.append(rng.choice(pool, size=num_neg, replace=False).tolist())
    return _write_split(tmp_path, train, test, negs)


def test_load_ncf_dedupes_drops_nonpositive_and_counts(tmp_path):
    prefix = _write_split(
        tmp_path,
        train_rows=[(0, 2, 1, 5), (0, 2, 1, 6), (0, 1, 0, 7), (1, 0, 4, 1), (0, 0, 3, 2)],
        test_rows=[(0, 3), (1, 1)],
        negatives=[[1, 4], [2, 5]],
    )
    d = ncf_data.load_ncf(prefix)
    assert (d.n_users, d.n_items) == (2, 6)  # item 5 only appears as a negative
    assert d.train_users.tolist() == [0, 0, 1]
    assert d.train_items.tolist() == [0, 2, 0]
    assert d.indptr.tolist() == [0, 2, 3]
    assert d.test_negatives.tolist() == [[1, 4], [2, 5]]


def test_load_ncf_rejects_mismatched_negative_file(tmp_path):
    prefix = _write_split(tmp_path, [(0, 0, 1, 0)], [(0, 1)], [[2, 3]])
    with open(prefix + ".test.negative", "w") as f:
        f.write("(0,2)\t2\t3\n")
    with pytest.raises(ValueError, match="same \\(user, item\\) pairs"):
        ncf_data.load_ncf(prefix)


def test_resolve_prefix_unknown_name_raises():
    with pytest.raises(ValueError, match="dataset="):
        ncf_data.resolve_prefix("no-such-dataset-xyz")


def test_sample_negatives_never_returns_training_items_and_covers_the_rest():
    n_items = 10
    users = np.array([0] * 6 + [1] * 2)
    items = np.array([0, 1, 2, 3, 4, 5, 7, 8])
    keys = np.sort(users * n_items + items)
    rng = np.random.default_rng(1)
    draw_u = np.repeat(np.array([0, 1]), 20_000)
    neg = ncf_data.sample_negatives(draw_u, n_items, keys, rng)
    u0, u1 = neg[draw_u == 0], neg[draw_u == 1]
    assert set(u0.tolist()) == {6, 7, 8, 9}
    assert set(u1.tolist()) == set(range(10)) - {7, 8}
    # Uniform over the allowed items: each of the 4 allowed items for user 0 gets ~25%.
    counts = np.bincount(u0, minlength=n_items)[6:]
    assert np.all(np.abs(counts / u0.size - 0.25) < 0.02)


def test_sample_negatives_raises_when_user_has_every_item():
    keys = np.arange(3, dtype=np.int64)  # user 0 owns items 0, 1, 2 of 3
    with pytest.raises(ValueError, match="max_rounds"):
        ncf_data.sample_negatives(
            np.zeros(4, np.int64), 3, keys, np.random.default_rng(0), max_rounds=5
        )


def test_make_epoch_sizes_labels_and_rejection(tmp_path):
    d = ncf_data.load_ncf(_random_split(tmp_path))
    users, items, labels = ncf_data.make_epoch(d, 3, np.random.default_rng(0))
    assert users.size == items.size == labels.size == d.num_train * 4
    assert labels.sum() == d.num_train
    keys = users * d.n_items + items
    is_pos = np.isin(keys, d.train_keys)
    assert np.array_equal(is_pos, labels == 1.0)
    with pytest.raises(ValueError, match="num_neg"):
        ncf_data.make_epoch(d, -1, np.random.default_rng(0))


def test_tie_rule_and_metric_values():
    pos = np.array([1.0, 1.0, 0.0])
    neg = np.array([[1.0, 1.0, 0.5], [2.0, 0.5, 1.0], [1.0, 2.0, 3.0]])
    assert ncf_data.sampled_ranks(pos, neg).tolist() == [0, 1, 3]
    hr, ndcg = ncf_data.rank_metrics(np.array([0, 9, 10, 50]), k=10)
    assert hr == pytest.approx(0.5)
    assert ndcg == pytest.approx((1.0 + 1.0 / math.log2(11)) / 4)
    with pytest.raises(ValueError, match="shape"):
        ncf_data.sampled_ranks(pos, neg[:2])


def test_evaluate_sampled_oracle_and_anti_oracle(tmp_path):
    d = ncf_data.load_ncf(_random_split(tmp_path))
    test_of = dict(zip(d.test_users.tolist(), d.test_items.tolist()))
    truth = np.array([test_of[u] for u in range(d.n_users)])

    def oracle(u, i):
        return (truth[u] == i).astype(np.float32)

    assert ncf_data.evaluate_sampled(oracle, d) == (1.0, 1.0)
    hr, ndcg = ncf_data.evaluate_sampled(lambda u, i: -oracle(u, i), d, k=10)
    assert (hr, ndcg) == (0.0, 0.0)  # 20 negatives all strictly above the positive
    # Constant scores: every rank is 0 under the tie rule.
    assert ncf_data.evaluate_sampled(lambda u, i: np.zeros(u.size), d) == (1.0, 1.0)


def test_evaluate_full_matches_brute_force(tmp_path):
    d = ncf_data.load_ncf(_random_split(tmp_path, n_users=12, n_items=30, per_user=5))
    table = np.random.default_rng(3).normal(size=(d.n_users, d.n_items))

    def score(u, i):
        return table[u, i]

    ranks = []
    for u, t in zip(d.test_users, d.test_items):
        seen = set(d.train_items[d.indptr[u] : d.indptr[u + 1]].tolist())
        cand = [j for j in range(d.n_items) if j not in seen]
        ranks.append(sum(table[u, j] > table[u, t] for j in cand))
    expected = ncf_data.rank_metrics(np.array(ranks), k=5)
    assert ncf_data.evaluate_full(score, d, k=5, users_per_block=5) == pytest.approx(expected)


# ---------------------------------------------------------------------------------------------
# PyTorch side
# ---------------------------------------------------------------------------------------------


def test_models_shapes_and_keras_style_init():
    torch = pytest.importorskip("torch")
    import torch_ncf

    torch.manual_seed(0)
    u = torch.tensor([0, 1, 2])
    i = torch.tensor([3, 4, 5])
    for name in ("gmf", "mlp", "neumf", "mf"):
        m = torch_ncf.build_model(name, 500, 600)
        assert m(u, i).shape == (3,)
    m = torch_ncf.NeuMF(2000, 3000)
    assert abs(m.mf_item_embedding.weight.std().item() - 0.01) < 0.001
    assert [x.out_features for x in m.tower if isinstance(x, torch.nn.Linear)] == [32, 16, 8]
    w = m.prediction.weight  # glorot_uniform, fan_in 16, fan_out 1
    assert w.abs().max().item() <= math.sqrt(6 / 17) and m.prediction.bias.item() == 0.0
    m2 = torch_ncf.MLP(10, 10, layers=(64, 32, 16, 8), final_init="lecun_uniform")
    assert m2.prediction.weight.abs().max().item() <= math.sqrt(3 / 8)
    assert m2.user_embedding.weight.shape == (10, 32)


def test_gmf_forward_matches_manual_formula():
    torch = pytest.importorskip("torch")
    import torch_ncf

    m = torch_ncf.GMF(5, 7, factors=4)
    u = torch.tensor([1, 4])
    i = torch.tensor([6, 0])
    x = m.user_embedding.weight[u] * m.item_embedding.weight[i]
    expected = x @ m.prediction.weight[0] + m.prediction.bias[0]
    torch.testing.assert_close(m(u, i), expected)


def test_build_model_rejects_bad_arguments():
    pytest.importorskip("torch")
    import torch_ncf

    with pytest.raises(ValueError, match="model must be one of"):
        torch_ncf.build_model("ncf", 3, 3)
    with pytest.raises(ValueError, match="even first entry"):
        torch_ncf.build_model("mlp", 3, 3, layers=(63, 8))
    with pytest.raises(ValueError, match="final_init"):
        torch_ncf.build_model("gmf", 3, 3, final_init="he_normal")


def test_bench_end_to_end_writes_json_and_learns(tmp_path):
    pytest.importorskip("torch")
    import bench_torch_baseline

    # Users 0..19 like items 0..9, users 20..39 like items 10..19 (plus noise-free structure),
    # so a trained model must rank the held-out item well above chance (HR@3 of 1/(1+9)*3).
    rng = np.random.default_rng(0)
    train, test, negs = [], [], []
    for u in range(40):
        group = np.arange(10) + (10 if u >= 20 else 0)
        items = rng.permutation(group)[:7]
        train += [(u, int(i), 1, 0) for i in items[:-1]]
        test.append((u, int(items[-1])))
        other = np.arange(20, 40)
        negs.append(rng.choice(other, size=9, replace=False).tolist())
    prefix = _write_split(tmp_path, train, test, negs)
    out = tmp_path / "r.json"
    rc = bench_torch_baseline.main(
        [
            "--dataset",
            prefix,
            "--model",
            "gmf",
            "--epochs",
            "30",
            "--lr",
            "0.05",
            "--batch-size",
            "64",
            "--seed",
            "1",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    res = json.loads(out.read_text())
    assert len(res["epochs"]) == 30
    assert res["epochs"][0]["samples"] == 40 * 6 * 5
    assert res["epochs"][-1]["loss"] < res["epochs"][0]["loss"]
    assert res["summary"]["final_hr10"] == 1.0  # 9 negatives: HR@10 is always 1 ...
    assert res["environment"]["torch_threads"] == 1
    assert res["summary"]["train_samples_per_s"] > 0
    # ... so check the ranking with NDCG: the positive must beat the unseen-group negatives.
    assert res["summary"]["final_ndcg10"] > 0.9


# ---------------------------------------------------------------------------------------------
# Keras side (optional: skipped when keras is not installed)
# ---------------------------------------------------------------------------------------------


def _keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras")


@pytest.mark.parametrize("name", ["gmf", "mlp", "neumf", "mf"])
def test_keras_and_torch_models_compute_the_same_function(name):
    torch = pytest.importorskip("torch")
    _keras()
    import bench_keras_baseline
    import torch_ncf

    nu, ni = 13, 17
    tm = torch_ncf.build_model(name, nu, ni, init_std=0.3)
    km = bench_keras_baseline.build_keras_model(name, nu, ni)
    assert km.count_params() == sum(p.numel() for p in tm.parameters())

    def put(layer, *arrays):
        km.get_layer(layer).set_weights([np.asarray(a, dtype=np.float32) for a in arrays])

    def lin(mod):
        return mod.weight.detach().numpy().T, mod.bias.detach().numpy()

    emb = {
        "gmf": [("mf_embedding_user", "user_embedding"), ("mf_embedding_item", "item_embedding")],
        "mf": [
            ("mf_embedding_user", "user_embedding"),
            ("mf_embedding_item", "item_embedding"),
            ("user_bias", "user_bias"),
            ("item_bias", "item_bias"),
        ],
        "mlp": [("mlp_embedding_user", "user_embedding"), ("mlp_embedding_item", "item_embedding")],
        "neumf": [
            ("mf_embedding_user", "mf_user_embedding"),
            ("mf_embedding_item", "mf_item_embedding"),
            ("mlp_embedding_user", "mlp_user_embedding"),
            ("mlp_embedding_item", "mlp_item_embedding"),
        ],
    }[name]
    for k_name, t_name in emb:
        put(k_name, getattr(tm, t_name).weight.detach().numpy())
    if name in ("mlp", "neumf"):
        linears = [m for m in tm.tower if isinstance(m, torch.nn.Linear)]
        for k, mod in enumerate(linears, 1):
            put(f"layer{k}", *lin(mod))
    if name == "mf":
        with torch.no_grad():
            tm.global_bias.fill_(0.25)
        put("global_bias", [0.25])
    else:
        put("prediction", *lin(tm.prediction))

    rng = np.random.default_rng(0)
    u = rng.integers(0, nu, 50)
    i = rng.integers(0, ni, 50)
    with torch.no_grad():
        expected = torch.sigmoid(tm(torch.from_numpy(u), torch.from_numpy(i))).numpy()
    got = km.predict([u[:, None].astype(np.int32), i[:, None].astype(np.int32)], verbose=0)
    np.testing.assert_allclose(got.reshape(-1), expected, rtol=1e-5, atol=1e-6)


def test_keras_bench_quick_run_writes_json(tmp_path):
    pytest.importorskip("torch")
    _keras()
    import bench_keras_baseline

    prefix = _random_split(tmp_path)
    out = tmp_path / "k.json"
    assert (
        bench_keras_baseline.main(
            ["--dataset", prefix, "--model", "neumf", "--epochs", "2", "--out", str(out)]
        )
        == 0
    )
    res = json.loads(out.read_text())
    assert res["framework"] == "keras3-torch"
    assert [r["epoch"] for r in res["epochs"]] == [1, 2]
    assert res["epochs"][0]["samples"] == 30 * 8 * 5
    assert 0.0 <= res["summary"]["final_hr10"] <= 1.0
