"""``--distributed`` in the CLI under ``mpiexec -n 2`` (skipped without mpi4py/mpiexec):
the main job and ``neurec train`` train data-parallel and rank 0 alone prints and
writes; ``neurec recommend --all --distributed --output recs-{rank}.csv`` writes one
file per rank; an error on one rank ends the job."""
import csv
import os
import re
import subprocess
import sys

import pytest

import neurec
from neurec.datasets import make_purchases

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from test_distributed_local import mpi, mpiexec  # noqa: E402,F401


def neurec_cli(args, n=2, timeout=240):
    env = dict(os.environ, NEUREC_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return subprocess.run([mpiexec(), "-n", str(n), sys.executable, "-m", "neurec"] + args,
                          capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def purchases(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "purchases.csv"
    make_purchases(n_users=200, n_items=150, n_categories=5, seed=7).to_csv(str(path))
    return path


def rows(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_main_job_distributed(mpi, purchases, tmp_path):  # noqa: F811
    out, model = tmp_path / "recs.csv", tmp_path / "shop.neurec"
    p = neurec_cli(["--data", str(purchases), "--epochs", "2", "--verbose", "0", "--output",
                    str(out), "--save-model", str(model), "--distributed"])
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.count("trained in") == 1  # rank 0 alone prints
    assert sorted(os.listdir(tmp_path)) == ["recs.csv", "shop.neurec"]
    m = neurec.models.load_model(model)
    users = rows(out)[1:]
    assert len({r[0] for r in users}) == len(m.user_encoder)  # every customer, once
    # 2 epochs of ceil(samples / 256) steps: the ranks took the steps of one process
    hr = float(re.search(r"neumf\s+([0-9.]+)", p.stdout).group(1))
    assert 0.0 < hr <= 1.0
    one = subprocess.run([sys.executable, "-m", "neurec", "--data", str(purchases),
                          "--epochs", "2", "--verbose", "0", "--threads", "1"],
                         capture_output=True, text=True, timeout=240)
    assert one.returncode == 0, one.stderr
    assert abs(float(re.search(r"neumf\s+([0-9.]+)", one.stdout).group(1)) - hr) <= 0.02


def test_train_then_recommend_per_rank_files(mpi, purchases, tmp_path):  # noqa: F811
    model = tmp_path / "m.neurec"
    p = neurec_cli(["train", "--data", str(purchases), "--save", str(model), "--epochs", "1",
                    "--no-refit", "--verbose", "0", "--distributed"])
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.count("saved ") == 1 and os.path.exists(model)
    p = neurec_cli(["recommend", "--model", str(model), "--all", "--k", "3", "--verbose", "0",
                    "--output", str(tmp_path / "recs-{rank}.csv"), "--distributed"])
    assert p.returncode == 0, p.stderr[-3000:]
    parts = [rows(tmp_path / f"recs-{r}.csv") for r in (0, 1)]
    one = subprocess.run([sys.executable, "-m", "neurec", "recommend", "--model", str(model),
                          "--all", "--k", "3", "--verbose", "0", "--output",
                          str(tmp_path / "one.csv")], capture_output=True, text=True, timeout=240)
    assert one.returncode == 0, one.stderr
    whole = rows(tmp_path / "one.csv")
    assert parts[0][0] == parts[1][0] == whole[0]
    assert parts[0][1:] + parts[1][1:] == whole[1:]
    assert parts[0][1:] and parts[1][1:]


def test_an_error_on_the_cli_ends_every_rank(mpi, tmp_path):  # noqa: F811
    p = neurec_cli(["recommend", "--model", str(tmp_path / "missing.neurec"), "--all",
                    "--output", str(tmp_path / "recs.csv"), "--distributed"], timeout=120)
    assert p.returncode != 0
    assert "put {rank} in the name" in p.stderr or "missing.neurec" in p.stderr
    assert os.listdir(tmp_path) == []
