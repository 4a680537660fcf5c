"""``neurec.distribution``: data-parallel ``fit`` across processes on MPI.

The multi-process tests launch ``mpiexec -n 2 python tests/mpi/dp_fit.py MODE`` as a
subprocess with a timeout; they skip when mpi4py or a matching ``mpiexec`` is absent
(``pip install "neurec[mpi]"`` brings both). Expectations come from one process: the same
model trained by this test process with the same global batch, the weights each rank
reports (sha256), and the files and exit codes the job leaves.
"""
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import neurec
from neurec import distribution

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "mpi", "dp_fit.py")
_spec = importlib.util.spec_from_file_location("dp_fit", SCRIPT)
dp_fit = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(dp_fit)


def _mpiexec():
    """The mpiexec beside this Python (the mpich wheel installs it there), else on PATH."""
    here = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return here if os.access(here, os.X_OK) else shutil.which("mpiexec")


def launch(mode, out, n=2, timeout=240):
    """Run dp_fit.py MODE under mpiexec; (return code, stdout, stderr, seconds)."""
    env = dict(os.environ, NEUREC_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    t0 = time.monotonic()
    p = subprocess.run([_mpiexec(), "-n", str(n), sys.executable, SCRIPT, mode, str(out)],
                       capture_output=True, text=True, timeout=timeout, env=env)
    return p.returncode, p.stdout, p.stderr, time.monotonic() - t0


@pytest.fixture(scope="module")
def mpi(tmp_path_factory):
    """Skip unless mpiexec starts two processes that mpi4py sees as one job of two."""
    if importlib.util.find_spec("mpi4py") is None or _mpiexec() is None:
        pytest.skip('mpi4py or mpiexec is not installed (pip install "neurec[mpi]")')
    rc, out, err, _ = launch("hello", tmp_path_factory.mktemp("hello"), timeout=120)
    if rc != 0 or "size=2" not in out:
        pytest.skip(f"mpiexec and mpi4py do not form a job of two processes: {out}{err}"[:500])
    return out


@pytest.fixture(scope="module", params=[2, 3], ids=["2-ranks", "3-ranks"])
def matched(mpi, tmp_path_factory, request):
    """Every configuration of dp_fit.CONFIGS trained for one epoch on two (and three:
    rows owned by id % 3, uneven slices) processes; (output directory, ranks)."""
    out = tmp_path_factory.mktemp(f"match{request.param}")
    rc, stdout, stderr, _ = launch("match", out, n=request.param)
    assert rc == 0, stderr[-3000:]
    return out, request.param


def test_initialize_rank_size(mpi):
    flag = "(?:True|False)"
    lines = sorted(re.findall(rf"rank=\d size=\d main={flag} mpi4py_before_initialize={flag}", mpi))
    assert lines == ["rank=0 size=2 main=True mpi4py_before_initialize=False",
                     "rank=1 size=2 main=False mpi4py_before_initialize=False"]
    assert mpi.count("refused: train_on_batch is not supported") == 2


@pytest.mark.parametrize("name", sorted(dp_fit.CONFIGS))
def test_processes_train_as_one_with_the_same_global_batch(matched, name, one_thread):
    """Bit-identical weights and optimizer state on every rank, equal to one process's
    within 1e-5 (relative to each array's largest value) after an epoch, and the same logs
    (loss, metrics and, for sgd-sparse, validation)."""
    out, ranks = matched
    reports = [json.load(open(out / f"{name}-{r}.json")) for r in range(ranks)]
    assert all(r == reports[0] for r in reports)  # sha256 of every array, and the History
    got = np.load(out / f"{name}.npz")
    model, history = dp_fit.train(name, verbose=0)
    assert dp_fit.digest(model) != dp_fit.digest(dp_fit.build())  # it trained
    # the weights, then the optimizer state (rows updated at their owners: every rank
    # takes each row's state from its owner at the end of fit)
    want_all = model.get_weights() + dp_fit.state(model)
    assert len(got.files) == len(want_all)
    for k, want in enumerate(want_all):
        if want.dtype == np.int64:  # per-row step counts
            np.testing.assert_array_equal(got[f"arr_{k}"], want)
        else:
            np.testing.assert_allclose(got[f"arr_{k}"], want, rtol=0,
                                       atol=1e-5 * float(np.abs(want).max()))
    # sparse updates: the user tables' rows stay with their owners (_routing.py)
    sparse = dp_fit.CONFIGS[name][1]
    users = [k for k, (_, _, table) in enumerate(model._builder.params)
             if table and model._builder.params[k][0].input_dim == dp_fit.N_USERS]
    assert reports[0]["routed"] == (users if sparse else None)
    # a second epoch's shuffle carries the samples' owners (a fixed column's found once,
    # a sampler's drawn column's at every pass): one sequential pass splits it
    two_epochs = name in ("adam-sampler-blocks", "adam-sparse", "adam-sampler-items")
    assert (reports[0]["tagged_chunks"] > 0) == (two_epochs and sparse)
    assert sorted(reports[0]["history"]) == sorted(history.history)
    for key, values in history.history.items():
        assert reports[0]["history"][key] == pytest.approx(values, rel=1e-5), key


@pytest.mark.parametrize("ranks", [2, 3])
def test_the_shared_window_exchanges_what_messages_do(mpi, tmp_path, ranks):
    """Ranks on one host exchange rows through a shared window: the same bits as through
    MPI messages, also when the rows, or the new rows, outgrow the window at every step
    (each such step, or its second half, goes through messages)."""
    rc, _, err, _ = launch("shared", tmp_path, n=ranks)
    assert rc == 0, err[-3000:]
    reports = [json.load(open(tmp_path / f"shared-{r}.json")) for r in range(ranks)]
    assert all(r == reports[0] for r in reports)
    got = reports[0]
    assert got["messages"]["exchange"] == "GradientExchange"
    for how in ("window", "window outgrown every step", "new rows outgrow it every step"):
        assert got[how]["exchange"] == "SharedGradientExchange"
        assert got[how]["sha256"] == got["messages"]["sha256"], how
        assert got[how]["history"] == got["messages"]["history"], how
    # the window took the steps (all but the first, which sizes it, and a few that
    # outgrew it), or none where every step outgrows it
    assert got["window"]["window_steps"] >= got["window"]["steps"] * 3 // 4
    assert got["new rows outgrow it every step"]["window_steps"] >= got["window"]["window_steps"]
    assert got["window outgrown every step"]["window_steps"] == 0


def test_ranks_swap_the_rows_they_updated(mpi, tmp_path):
    """_routing.sync_rows: every rank ends with each rank's updated rows, whatever the
    shares: one rank with none, shares split over several rounds, uneven rounds."""
    rc, _, err, _ = launch("sync-rows", tmp_path)
    assert rc == 0, err[-3000:]
    reports = [json.load(open(tmp_path / f"sync-rows-{r}.json")) for r in (0, 1)]
    assert reports[0] == reports[1]
    for shares, got in zip(([[], [1, 5, 7, 9, 11]], [[0, 2, 4, 6], [3, 8]]), reports[0]):
        w, steps = np.full((14, 4), -1.0, np.float32), np.full(14, -1, np.int64)
        for r, ids in enumerate(shares):
            ids = np.array(ids, dtype=np.int64)
            w[ids] = r + ids[:, None] / 100.0
            steps[ids] = 10 * r + ids
        np.testing.assert_array_equal(np.array(got["w"], np.float32), w)
        np.testing.assert_array_equal(got["steps"], steps)


def test_fits_release_what_they_hold_in_mpi(mpi, tmp_path):
    """Each fit's shared window and host communicator are freed when it ends: more fits
    than MPICH has communicators (2048) run in one job."""
    rc, out, err, _ = launch("many-fits", tmp_path)
    assert rc == 0, err[-3000:]
    assert sorted(re.findall(r"rank \d fits done", out)) == ["rank 0 fits done",
                                                            "rank 1 fits done"]


def test_checkpoints_mid_epoch_hold_every_rows_optimizer_state(mpi, tmp_path):
    """Rows are updated at their owners, so another rank's copy of a row's optimizer state
    lags until it is synchronized: with ModelCheckpoint(save_freq=int), which saves from
    rank 0 mid-epoch, every chunk ends with every rank holding every row's state (what
    rank 0 holds of rank 1's rows is what rank 1 holds, and the other way round)."""
    rc, out, err, _ = launch("state-chunks", tmp_path)
    assert rc == 0, err[-3000:]
    seen = {0: [], 1: []}  # per rank, in order: (batch, its copies of each owner's rows)
    for batch, r, own0, own1 in re.findall(r"batch (\d+) rank (\d) (\w{64}) (\w{64})", out):
        seen[int(r)].append((int(batch), own0, own1))
    assert len(seen[0]) >= 3 and seen[0] == seen[1]
    assert len({s[1:] for s in seen[0]}) == len(seen[0])  # the state moved between chunks
    assert os.path.exists(tmp_path / "ckpt.neurec")


def test_a_fit_that_raised_leaves_no_stale_optimizer_state(mpi, tmp_path, one_thread):
    """A fit that a callback stops mid-epoch leaves other ranks' copies of rows' optimizer
    state behind their owners'; the next fit takes them from the owners before anything
    else, so the job ends where one process doing the same ends."""
    rc, out, err, _ = launch("raise-then-fit", tmp_path)
    assert rc == 0, err[-3000:]
    digests = sorted(re.findall(r"rank (\d) raised-then-fit (\w{64})", out))
    assert [d[0] for d in digests] == ["0", "1"] and digests[0][1] == digests[1][1]
    got = np.load(tmp_path / "raise-then-fit.npz")
    model = dp_fit.raise_then_fit(dp_fit.build())
    want_all = model.get_weights() + dp_fit.state(model)
    for k, want in enumerate(want_all):
        np.testing.assert_allclose(got[f"arr_{k}"], want, rtol=0,
                                   atol=1e-5 * float(np.abs(want).max()))


def test_ranks_with_different_thread_counts_hold_the_same_weights(mpi, tmp_path):
    """The combined update does not depend on how each rank summed over its threads."""
    rc, out, err, _ = launch("threads", tmp_path)
    assert rc == 0, err[-3000:]
    for sparse in ("True", "False"):
        got = sorted(re.findall(rf"sparse={sparse} rank (\d) threads (\d) ([0-9a-f]{{64}})", out))
        assert [g[:2] for g in got] == [("0", "1"), ("1", "2")]
        assert got[0][2] == got[1][2]


def test_evaluation_splits_the_users(mpi, tmp_path, one_thread):
    """evaluate_sampled / evaluate_full on two processes: each scores about half of the
    pairs, and both return one process's metrics (per user too); recommend gives every
    rank one process's top-K."""
    rc, out, err, _ = launch("evaluate", tmp_path)
    assert rc == 0, err[-3000:]
    reports = [json.load(open(tmp_path / f"evaluate-{r}.json")) for r in (0, 1)]
    # recommend: each rank ranked its half of the users
    assert [r["results"]["recommend"].pop("users") for r in reports] == [[60], [61]]
    assert reports[0]["results"] == reports[1]["results"]
    want, scored = dp_fit.evaluation(dp_fit.build())
    assert want["recommend"].pop("users") == [dp_fit.N_USERS + 1]
    assert reports[0]["scored"] + reports[1]["scored"] == scored
    assert abs(reports[0]["scored"] - reports[1]["scored"]) <= 0.1 * scored
    got = reports[0]["results"]
    assert got["per_user"] == want["per_user"]
    for protocol in ("sampled", "full"):
        assert got[protocol] == pytest.approx(want[protocol], rel=1e-6), protocol
    assert got["recommend"]["ids"] == want["recommend"]["ids"]
    np.testing.assert_allclose(got["recommend"]["scores"], want["recommend"]["scores"],
                               rtol=1e-6)


def test_one_process_with_data_parallel_is_unchanged(one_thread):
    """Without mpiexec, DataParallel changes nothing (and needs no MPI)."""
    plain, _ = dp_fit.train("adam-sparse", verbose=0)
    distribution.set_distribution(distribution.DataParallel())
    try:
        assert distribution.size() == 1
        parallel, _ = dp_fit.train("adam-sparse", verbose=0)
    finally:
        distribution.set_distribution(None)
    assert dp_fit.digest(parallel) == dp_fit.digest(plain)


def test_launched_without_mpi4py_is_an_import_error(monkeypatch):
    state = distribution._state
    monkeypatch.setattr(state, "initialized", False)
    monkeypatch.setenv("PMI_SIZE", "2")
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    monkeypatch.setitem(sys.modules, "mpi4py.MPI", None)
    with pytest.raises(ImportError, match=r'pip install "neurec\[mpi\]"'):
        distribution.initialize()
    assert state.size == 1 and not state.initialized


def test_bad_arguments():
    with pytest.raises(TypeError, match="Distribution"):
        distribution.set_distribution("data")
    with pytest.raises(TypeError, match="local_data"):
        distribution.DataParallel(local_data=1)
    with pytest.raises(TypeError, match="mpi4py communicator"):
        distribution.initialize(comm=object())
    assert distribution.distribution() is None


def test_only_rank_0_prints_and_writes_files(mpi, tmp_path):
    rc, out, err, _ = launch("files", tmp_path)
    assert rc == 0, err[-3000:]
    assert [out.count(f"Epoch {e}/5") for e in (1, 2, 3, 4)] == [1, 1, 1, 0]
    trained = sorted(re.findall(r"rank (\d) trained (\d) epochs (\d+) steps ([0-9a-f]{64})",
                                out))
    # rank 1 started from other weights and step count: fit took rank 0's
    assert [t[:3] for t in trained] == [("0", "3", "45"), ("1", "3", "45")]
    assert trained[0][3] == trained[1][3]  # the same weights
    lines = open(tmp_path / "log.csv").read().splitlines()
    assert len(lines) == 4 and lines[0].startswith("epoch")  # one header, three epochs
    assert sorted(os.listdir(tmp_path)) == ["ckpt-1.weights.npz", "ckpt-2.weights.npz",
                                            "ckpt-3.weights.npz", "log.csv", "model-0.neurec",
                                            "model-0.weights.npz"]
    model = neurec.models.load_model(tmp_path / "model-0.neurec")
    assert model.optimizer.iterations == 3 * 15


@pytest.mark.parametrize("mode,message", [("raise-data", "NaN"),
                                          ("raise-callback", "a callback failed on rank 1")])
def test_an_exception_on_one_rank_ends_every_rank(mpi, tmp_path, mode, message):
    """Bad data on one rank (raised before its first step, while rank 0 waits in one) or a
    failure mid-epoch: the job ends at once, non-zero, with the rank's message."""
    rc, out, err, seconds = launch(mode, tmp_path, timeout=120)
    assert rc != 0
    assert message in err and "rank 1 of 2 stopped" in err
    assert "done" not in out
    assert seconds < 30


def test_a_killed_rank_ends_the_job_and_the_checkpoint_loads(mpi, tmp_path):
    rc, out, err, seconds = launch("kill", tmp_path, timeout=120)
    assert rc != 0 and "done" not in out
    assert seconds < 30
    model = neurec.models.load_model(tmp_path / "last.neurec")  # epoch 1, from rank 0
    want = dp_fit.build()
    assert [w.shape for w in model.get_weights()] == [w.shape for w in want.get_weights()]
    assert model.optimizer.iterations == -(-dp_fit.N // 16)


def test_ctrl_c_stops_ranks_stepping_through_the_shared_window(mpi, tmp_path):
    """Ctrl-C (SIGINT to the job's process group, as a terminal sends it) ends every rank
    promptly, also one waiting at a barrier of the window's C steps for the other."""
    env = dict(os.environ, NEUREC_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    p = subprocess.Popen([_mpiexec(), "-n", "2", sys.executable, SCRIPT, "interrupt",
                          str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not all((tmp_path / f"started-{r}").exists() for r in (0, 1)):
            assert p.poll() is None, p.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "the ranks never reached their second epoch"
            time.sleep(0.05)
        t0 = time.monotonic()
        os.killpg(p.pid, signal.SIGINT)
        _, err = p.communicate(timeout=60)
        seconds = time.monotonic() - t0
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.communicate()
    assert p.returncode != 0
    assert "KeyboardInterrupt" in err, err[-3000:]
    assert seconds < 20


def test_ranks_that_disagree_on_validation_are_refused_not_hung(mpi, tmp_path):
    rc, out, err, seconds = launch("validation-mismatch", tmp_path, timeout=120)
    assert rc != 0
    assert "rank 1's validation data differs from rank 0's" in err


def test_ranks_with_different_samplers_are_refused(mpi, tmp_path):
    """Ranks draw a sampler's epoch in shares: different samplers would mix silently."""
    rc, out, err, seconds = launch("sampler-mismatch", tmp_path, timeout=120)
    assert rc != 0
    assert "rank 1's NegativeSampler differs from rank 0's" in err


def test_ranks_with_different_models_are_refused(mpi, tmp_path):
    rc, out, err, seconds = launch("mismatch", tmp_path, timeout=120)
    assert rc != 0
    assert "rank 1's parameter shapes differs from rank 0's" in err
