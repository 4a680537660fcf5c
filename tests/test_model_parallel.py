"""``neurec.distribution.ModelParallel``: row-sharded embedding tables on ``mpiexec -n 2``.

The jobs run tests/mpi/mp_fit.py (through test_distributed.py's launcher, which skips
where mpi4py or mpiexec is absent). Expectations: the same fits under DataParallel in the
same job (ModelParallel applies the same updates in the same order: the same bits), one
process's weights, and the files the job leaves.
"""
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import neurec
from neurec import distribution
from test_distributed import _mpiexec, mpi  # noqa: F401  (the fixture)

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "mpi", "mp_fit.py")
CONFIGS = ["adam-sparse", "adam-sampler", "adam-batch-list", "adam-last-batch-of-one"]


def launch(mode, out, *args, timeout=300):
    env = dict(os.environ, NEUREC_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    p = subprocess.run([_mpiexec(), "-n", "2", sys.executable, SCRIPT, mode, str(out), *args],
                       capture_output=True, text=True, timeout=timeout, env=env)
    assert p.returncode == 0, (p.stdout + p.stderr)[-3000:]
    return p.stdout


@pytest.fixture(scope="module")
def matched(mpi, tmp_path_factory):  # noqa: F811
    out = tmp_path_factory.mktemp("mp-match")
    launch("match", out)
    return out


def _weights(path):
    with np.load(path) as z:
        return [z[f"arr_{k}"] for k in range(len(z.files))]


@pytest.mark.parametrize("small", [False, True])
@pytest.mark.parametrize("name", CONFIGS)
def test_model_parallel_trains_as_data_parallel(matched, name, small):
    """Sharded tables, the same bits as DataParallel cutting slices (not routing samples)
    on every rank, the same logs; with working tables of 16 rows (grown to a batch) too."""
    if small and name == "adam-last-batch-of-one":
        pytest.skip("a single batch per epoch: the same runs either way")
    tag = f"{name}-mp{'-small' if small else ''}"
    dp = _weights(matched / f"{name}-dp-0.npz")
    for rank in (0, 1):
        report = json.load(open(matched / f"{tag}-{rank}.json"))
        assert report["sharded"]  # fit left the tables sharded
        want = json.load(open(matched / f"{name}-dp-{rank}.json"))
        assert report["history"] == want["history"]
        assert report["iterations"] == want["iterations"] > 0
        got = _weights(matched / f"{tag}-{rank}.npz")
        assert len(got) == len(dp)
        for a, b in zip(got, dp):
            np.testing.assert_array_equal(a, b)


def test_model_parallel_matches_one_process(matched, one_thread):
    """And one process with the same global batch, within float rounding."""
    sys.path.insert(0, os.path.join(HERE, "mpi"))
    import dp_fit
    model, _ = dp_fit.train("adam-sparse", verbose=0)
    got = _weights(matched / "adam-sparse-mp-0.npz")
    assert dp_fit.digest(model) != dp_fit.digest(dp_fit.build())
    for a, want in zip(got, model.get_weights()):
        np.testing.assert_allclose(a, want, rtol=0, atol=1e-5 * float(np.abs(want).max()))


def test_save_gathers_on_rank_0_and_load_reshards(mpi, tmp_path):  # noqa: F811
    out = launch("save", tmp_path)
    assert out.count("sharded after save True") == 2  # save gathered on rank 0 alone
    assert out.count("resharded True") == 2
    files = sorted(os.listdir(tmp_path))
    assert [f for f in files if f.startswith("mp")] == ["mp.neurec", "mp.weights.npz"]
    trained = _weights(tmp_path / "trained-0.npz")
    for a, b in zip(trained, _weights(tmp_path / "trained-1.npz")):
        np.testing.assert_array_equal(a, b)
    model = neurec.models.load_model(tmp_path / "mp.neurec")  # one ordinary model file
    for a, b in zip(model.get_weights(), trained):
        np.testing.assert_array_equal(a, b)
    with np.load(tmp_path / "mp.weights.npz") as z:
        for k, b in enumerate(trained):
            np.testing.assert_array_equal(z[f"w{k:05d}"], b)
    got = [json.load(open(tmp_path / f"evaluate-{r}.json")) for r in (0, 1)]
    # every rank ranks every user against the items it holds (tests/test_mp_score.py)
    assert [r["recommend"].pop("users") for r in got] == [[121], [121]]
    assert got[0] == got[1]
    sys.path.insert(0, os.path.join(HERE, "mpi"))
    import dp_fit
    want, _ = dp_fit.evaluation(neurec.models.load_model(tmp_path / "mp.neurec"))
    want["recommend"].pop("users")
    assert got[0]["per_user"] == want["per_user"]
    assert got[0]["recommend"]["ids"] == want["recommend"]["ids"]
    for protocol in ("sampled", "full"):
        assert got[0][protocol] == pytest.approx(want[protocol], rel=1e-6), protocol
    opt = _weights(tmp_path / "opt-0.npz")  # the whole tables' Adam state, gathered
    assert [a.shape for a in model.optimizer.variables()] == [a.shape for a in opt]
    for a, b in zip(model.optimizer.variables(), opt):
        np.testing.assert_array_equal(a, b)
    resumed = [_weights(tmp_path / f"resumed-{r}.npz") for r in (0, 1)]
    for a, b in zip(*resumed):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, c) for a, c in zip(resumed[0], trained))


def test_table_memory_per_rank(mpi, tmp_path):  # noqa: F811
    """A 1M-row x 64 table under Adam: each of 2 ranks holds at most 0.55x of the
    replicated weights and optimizer state (numpy's allocations traced after fit)."""
    launch("memory", tmp_path, "1000000")
    reports = []
    for rank in (0, 1):
        with open(tmp_path / f"memory-{rank}.json") as f:
            reports.append(json.load(f))
    assert sorted(r["rank"] for r in reports) == [0, 1]
    for r in reports:
        print(f"rank {r['rank']}: table {r['table_bytes_per_rank'] / 2**20:.1f} MiB of "
              f"{r['replicated_bytes'] / 2**20:.1f} MiB replicated ({r['ratio']:.3f}); "
              f"all traced {r['traced_ratio']:.3f}")
        assert r["ratio"] <= 0.55
        assert r["traced_ratio"] <= 0.55  # the whole tables are gone, not just unused


def test_one_process_model_parallel_is_plain(one_thread):
    """Without mpiexec ModelParallel changes nothing."""
    sys.path.insert(0, os.path.join(HERE, "mpi"))
    import dp_fit
    plain, _ = dp_fit.train("adam-sparse", verbose=0)
    distribution.set_distribution(distribution.ModelParallel())
    try:
        parallel, _ = dp_fit.train("adam-sparse", verbose=0)
    finally:
        distribution.set_distribution(None)
    assert getattr(parallel, "_shards", None) is None
    assert dp_fit.digest(parallel) == dp_fit.digest(plain)
    assert re.fullmatch(r"ModelParallel\(\)", repr(distribution.ModelParallel()))
