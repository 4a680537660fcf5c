"""``fit``'s validation, ``predict`` and ``evaluate`` under DataParallel and ModelParallel
on ``mpiexec -n 2`` (each rank a share of the samples; sharded tables stay sharded, the
rows the samples read fetched from their owners), and ``recommend`` straight after a
sharded fit.

The jobs run tests/mpi/mp_predict.py (skipped where mpi4py or mpiexec is absent, through
test_distributed.py's fixture); each rank writes its own report file. Expectations: the
same fits under DataParallel in the same job, and one process here, on the model files
the jobs save (rank 0 gathers the shards).
"""
import os
import sys

import numpy as np
import pytest

from neurec.models import load_model
from test_distributed import mpi  # noqa: F401  (the fixture)
from test_distributed_local import launch as launch_script
from test_distributed_local import run

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "mpi", "mp_predict.py")
sys.path.insert(0, os.path.join(HERE, "mpi"))
import mp_predict  # noqa: E402

CASES = ["split", "data-weighted", "batches", "local-split"]


def launch(mode, out, *args):
    return run(mode, out, *args, script="mp_predict.py", timeout=300)


@pytest.fixture(scope="module")
def validated(mpi, tmp_path_factory):  # noqa: F811
    out = tmp_path_factory.mktemp("mp-validation")
    return out, launch("validation", out)


@pytest.fixture(scope="module")
def evaluated(mpi, tmp_path_factory):  # noqa: F811
    out = tmp_path_factory.mktemp("mp-evaluate")
    return out, launch("evaluate", out)


@pytest.mark.parametrize("case", CASES)
def test_model_parallel_validation_is_data_parallels(validated, case):
    """validation_split, validation_data with sample weights (validation_freq=2), a list
    of validation batches, and under local_data=True each rank's split (rank 0's
    validates): ModelParallel's val_loss / val_accuracy / val_auc of every epoch are
    DataParallel's within 1e-5 (also with working tables of 16 rows), the same on both
    ranks, and the tables stay sharded."""
    _, reports = validated
    assert reports[0] == reports[1]
    want = reports[0][f"{case}-dp"]["history"]
    epochs = 1 if case == "data-weighted" else 3
    assert len(want["val_loss"]) == epochs and {"val_accuracy", "val_auc"} <= set(want)
    for tag in ("mp", "mp-small"):
        got = reports[0][f"{case}-{tag}"]
        assert got["sharded"]
        assert set(got["history"]) == set(want)
        for key, values in want.items():
            np.testing.assert_allclose(got["history"][key], values, rtol=1e-5, atol=1e-7,
                                       err_msg=f"{case} {tag} {key}")


def test_only_rank_0_prints_the_validation_logs(validated):
    out, _ = validated
    assert (out / "validation-1.out").read_text() == ""
    lines = [line for line in (out / "validation-0.out").read_text().splitlines()
             if "val_loss" in line]
    assert len(lines) == 3 * 3  # dp, mp, mp with small working tables: 3 epochs each


@pytest.mark.parametrize("dist", ["dp", "mp"])
@pytest.mark.parametrize("local", [False, True])
def test_evaluate_and_predict_split_across_ranks(evaluated, dist, local, one_thread):
    """evaluate(x, y, sample_weight) and predict(x) on 1,001 samples: each rank predicts
    a share (a contiguous run of batches, the hooks' indices global; under local_data=True
    its own rows), every rank returns one process's predictions (bit for bit) and
    metrics (within 1e-6, over the union under local_data); gather="main" on rank 0
    alone; the sharded tables stay sharded (nothing gathered)."""
    out, reports = evaluated
    key = f"{dist}{'-local' if local else ''}"
    model = load_model(out / f"{key}.neurec")
    tx, ty, tw = mp_predict.test_data()
    parts = np.array_split(np.arange(ty.size), 2) if local else [np.arange(ty.size)] * 2
    want = model.evaluate(tx, ty, sample_weight=tw, verbose=0, return_dict=True)
    for r, report in enumerate(reports):
        got = report[key]
        assert got["sharded"] == (dist == "mp")
        assert got["evaluate"] == pytest.approx(want, rel=1e-6)
        assert got["evaluate"] == reports[0][key]["evaluate"]
        px = [a[parts[r]] for a in tx]
        pred = np.load(out / f"pred-{key}-{r}.npy")
        np.testing.assert_array_equal(pred, model.predict(px, verbose=0))
        np.testing.assert_array_equal(np.array(got["call"]), pred[:3])
        if r == 0:
            unweighted = model.evaluate(tx, ty, verbose=0, return_dict=True)
            assert got["main"] == pytest.approx(unweighted, rel=1e-6)
        else:
            assert got["main"] is None
        if not local:
            assert got["batch_list"] == pytest.approx(reports[0][key]["main"], rel=1e-12)
    # split: 21 batches of 50, batches 0-9 on rank 0 and 10-20 on rank 1
    rows = [report[key]["predicted_rows"] for report in reports]
    if local:
        assert rows == [parts[0].size, parts[1].size]
    else:
        assert rows == [500, 501]
        assert max(reports[0][key]["predicted_batches"]) == 9
        assert min(reports[1][key]["predicted_batches"]) >= 10
        assert max(reports[1][key]["predicted_batches"]) == 20


def test_sharded_predict_and_validation_fetch_rows_not_tables(mpi, tmp_path):  # noqa: F811
    """A 1M-item x 32 table under ModelParallel: what a rank allocates (numpy, traced)
    to predict and evaluate 20,000 pairs, and to fit with them as validation_data, is a
    small part of the item table; gathering would allocate all of it and more."""
    for r in launch("memory", tmp_path, 1_000_000):
        table = r["item_table_bytes"]
        print({k: f"{v / 2**20:.1f} MiB" for k, v in r["peaks"].items()},
              f"table {table / 2**20:.0f} MiB")
        assert r["sharded"]
        for what, peak in r["peaks"].items():
            assert peak < 0.1 * table, what


def test_recommend_right_after_a_sharded_fit_reads_the_real_tables(mpi, tmp_path,  # noqa: F811
                                                                   one_thread):
    """Regression: recommend of a dot-product model (MF with and without biases, GMF)
    straight after a ModelParallel fit read the layers' small working tables (the rows of
    the last run, renumbered) instead of the model's rows, and returned wrong ids (or
    raised IndexError with working tables smaller than the catalog). Both ranks must
    return one process's ids on the gathered model."""
    reports = launch("recommend", tmp_path)
    assert reports[0] == reports[1]
    users = np.r_[np.arange(mp_predict.N_USERS), 3, 3]
    for key, got in reports[0].items():
        assert got["sharded"]
        if key.endswith("-small"):  # working tables smaller than the tables
            assert max(got["working_rows"].values()) < mp_predict.N_ITEMS
        ids, scores = load_model(tmp_path / f"{key}.neurec").recommend(
            users, k=10, exclude=False, verbose=0)
        assert got["ids"] == ids.tolist(), key
        np.testing.assert_allclose(got["scores"], scores, rtol=1e-5, atol=1e-6, err_msg=key)


@pytest.mark.parametrize("what, message", [
    ("validation", "fit under ModelParallel: rank 1 passes validation data and rank 0 does "
                   "not"),
    ("predict", "predict under ModelParallel: rank 1 passed another x than rank 0"),
])
def test_ranks_that_disagree_get_an_error_not_a_hang(mpi, tmp_path, what, message):  # noqa: F811
    rc, _, err, _ = launch_script(SCRIPT, ["mismatch", tmp_path, what], timeout=120)
    assert rc != 0
    assert message in err
