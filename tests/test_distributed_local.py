"""``DataParallel(local_data=True)``: each rank passes only its own partition of the log.

Launches ``mpiexec -n 2 python tests/mpi/dp_local.py MODE`` (skipped without mpi4py or
mpiexec, as tests/test_distributed.py). Expectations come from one process (this one)
and from ``DataParallel()`` with the whole data on every rank.
"""
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from neurec import distribution
from neurec.models._dp_local import local_batches

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "mpi"))
import dp_fit  # noqa: E402
import dp_local  # noqa: E402


def mpiexec():
    """The mpiexec beside this Python (the mpich wheel installs it there), else on PATH."""
    here = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return here if os.access(here, os.X_OK) else shutil.which("mpiexec")


def launch(script, args, n=2, timeout=240, env=None):
    """Run ``script ARGS`` under ``mpiexec -n n``: (return code, stdout, stderr, seconds)."""
    env = dict(os.environ, NEUREC_NUM_THREADS="1", PYTHONUNBUFFERED="1", **(env or {}))
    t0 = time.monotonic()
    p = subprocess.run([mpiexec(), "-n", str(n), sys.executable, script] + [str(a) for a in args],
                       capture_output=True, text=True, timeout=timeout, env=env)
    return p.returncode, p.stdout, p.stderr, time.monotonic() - t0


@pytest.fixture(scope="module")
def mpi():
    if importlib.util.find_spec("mpi4py") is None or mpiexec() is None:
        pytest.skip('mpi4py or mpiexec is not installed (pip install "neurec[mpi]")')


def run(mode, out, *args, script="dp_local.py", timeout=240):
    """Run ``tests/mpi/SCRIPT MODE OUT ARGS`` on two ranks, which must succeed; the
    ``{mode}-{rank}.json`` report each rank wrote to ``out``."""
    rc, stdout, stderr, _ = launch(os.path.join(HERE, "mpi", script), [mode, out, *args],
                                   timeout=timeout)
    assert rc == 0, (stdout + stderr)[-3000:]
    return [json.load(open(os.path.join(out, f"{mode}-{r}.json"))) for r in (0, 1)]


def test_local_batches_add_up_to_the_global_batch():
    assert local_batches([750, 750], 128).tolist() == [64, 64]
    assert local_batches([750, 750], 101).tolist() == [50, 51]  # DataParallel()'s slices
    assert local_batches([100, 300], 100).tolist() == [25, 75]
    assert local_batches([1, 10_000], 64).tolist() == [1, 64]  # at least one each
    assert local_batches([3, 5, 8], 16).sum() == 16


def test_interleaved_partitions_train_as_whole_data(mpi, tmp_path, one_thread):
    """Partitions made of each rank's slice of every batch, trained with shuffle=False,
    take exactly the steps of DataParallel() on the whole data cut in slices (routing
    off): bit-identical weights;
    and one process's weights within 1e-5 (relative), the same History."""
    reports = run("interleave", tmp_path)
    assert reports[0] == reports[1]
    steps = 2 * -(-dp_fit.N // dp_local.BATCH)
    for name, (optimizer, sparse) in {"adam-True": ("adam", True),
                                      "sgd-False": ("sgd", False)}.items():
        got = reports[0][name]
        assert got["sha256"] == got["whole data sha256"], name
        assert got["steps"] == steps
        model, history = dp_local.train_interleave(optimizer, sparse)
        assert dp_fit.digest(model) != dp_fit.digest(dp_fit.build(optimizer, sparse))
        weights = np.load(tmp_path / f"{name}.npz")
        for k, want in enumerate(model.get_weights()):
            np.testing.assert_allclose(weights[f"arr_{k}"], want, rtol=0,
                                       atol=1e-5 * float(np.abs(want).max()))
        for key, values in history.history.items():
            assert got["history"][key] == pytest.approx(values, rel=1e-5), key


def test_uneven_partitions_take_the_same_steps(mpi, tmp_path):
    """A quarter of the positives on rank 0, the rest on rank 1 (samplers with the
    global id ranges): local batches 25 and 75, the steps of the larger partition, and
    identical weights on both ranks."""
    reports = run("uneven", tmp_path)
    assert reports[0]["sha256"] == reports[1]["sha256"]
    assert reports[0]["history"] == reports[1]["history"]
    n0, n1 = reports[0]["samples"], reports[1]["samples"]
    assert 2 * n0 < n1 and n0 % 3 == n1 % 3 == 0  # (distinct pairs) x (1 + 2 negatives)
    b0, b1 = local_batches([n0, n1], 100)
    assert reports[0]["steps"] == 2 * max(-(-n0 // b0), -(-n1 // b1))
    assert np.isfinite(reports[0]["history"]["loss"]).all()


def test_partitions_by_user_reach_one_process_hit_rate(mpi, tmp_path, one_thread):
    """Each rank's sampler holds the interactions of its users (even and odd ids); HR@10
    on a leave-one-out split of an ml-100k-like log is within 0.01 of one process's."""
    reports = run("hr", tmp_path)
    assert reports[0] == {**reports[1], "positives": reports[0]["positives"]}
    users, items, test, negatives = dp_local.purchases()
    assert reports[0]["positives"] + reports[1]["positives"] == users.size
    _, want = dp_local.train_hr(users, items, test, negatives)
    assert want["hr@10"] > 0.3  # it learned something: chance is 0.1
    assert abs(reports[0]["metrics"]["hr@10"] - want["hr@10"]) <= 0.01, (reports[0], want)


def test_samplers_with_different_item_ranges_are_refused(mpi, tmp_path):
    rc, out, err, _ = launch(os.path.join(HERE, "mpi", "dp_local.py"), ["mismatch", tmp_path],
                             timeout=120)
    assert rc != 0
    assert "rank 1's sampler (n_users, n_items) differs from rank 0's" in err
    assert "n_items=" in err


def test_one_process_with_local_data_is_unchanged(one_thread):
    plain, _ = dp_local.train_interleave("adam", True, epochs=1)
    distribution.set_distribution(distribution.DataParallel(local_data=True))
    try:
        parallel, _ = dp_local.train_interleave("adam", True, epochs=1)
    finally:
        distribution.set_distribution(None)
    assert dp_fit.digest(parallel) == dp_fit.digest(plain)
