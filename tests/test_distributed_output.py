"""``recommend(..., output=path)`` (one file per rank, streamed, atomic) and
``evaluate`` / ``recommend`` split across ranks with ``gather="all"|"main"``.

One-process behaviour is tested here directly; two processes through
``mpiexec -n 2 python tests/mpi/dp_output.py`` (skipped without mpi4py/mpiexec).
"""
import csv
import json
import os
import sys

import numpy as np
import pytest

from neurec.models import _dp_output

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "mpi"))
import dp_fit  # noqa: E402
import dp_output  # noqa: E402

from test_distributed_local import launch, mpi  # noqa: E402,F401


def read_csv(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["user_id", "rank", "item_id", "score"]
    return rows[1:]


def expected_rows(ids, scores, users):
    out = []
    for u, row_ids, row_scores in zip(users, ids, scores):
        valid = [(i, s) for i, s in zip(row_ids, row_scores) if i != -1]
        out += [[str(u), str(r + 1), str(i), f"{s:.6f}"] for r, (i, s) in enumerate(valid)]
    return out


@pytest.fixture(scope="module")
def model():
    return dp_output.trained()


def test_output_csv_streams_blocks_and_matches_the_arrays(model, tmp_path, monkeypatch):
    monkeypatch.setattr(_dp_output, "BLOCK_USERS", 7)  # 120 users: 18 blocks
    calls = []
    real = _dp_output._Writer.write

    def counting(self, users, ids, scores):
        calls.append(len(users))
        return real(self, users, ids, scores)

    monkeypatch.setattr(_dp_output._Writer, "write", counting)
    path = tmp_path / "recs-{rank}.csv"
    summary = model.recommend(dp_output.USERS, k=5, exclude=dp_output.seen(), output=path,
                              verbose=0)
    ids, scores = model.recommend(dp_output.USERS, k=5, exclude=dp_output.seen(), verbose=0)
    rows = read_csv(tmp_path / "recs-0.csv")
    assert rows == expected_rows(ids, scores, dp_output.USERS)
    assert summary == {"path": str(tmp_path / "recs-0.csv"), "users": 120, "rows": len(rows),
                       "total_users": 120, "total_rows": len(rows)}
    assert calls == [7] * 17 + [1]


def test_output_parquet(model, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    summary = model.recommend(dp_output.USERS[:30], k=3, output=tmp_path / "r.parquet",
                              verbose=0)
    table = pq.read_table(tmp_path / "r.parquet").to_pydict()
    ids, scores = model.recommend(dp_output.USERS[:30], k=3, verbose=0)
    assert summary["rows"] == len(table["user_id"]) == 90
    assert table["item_id"] == ids.ravel().tolist()
    assert table["rank"] == [1, 2, 3] * 30
    np.testing.assert_array_equal(np.array(table["score"], np.float32), scores.ravel())


def test_output_failure_leaves_no_file(model, tmp_path):
    with pytest.raises(ValueError, match="out of range|unknown|users"):
        model.recommend(np.r_[0, 1, 10_000], k=3, output=tmp_path / "r.csv", verbose=0)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("output,error,match", [
    ("r.txt", ValueError, r"\.csv or \.parquet"),
    (3, TypeError, "file path"),
])
def test_output_bad_arguments(model, tmp_path, output, error, match):
    with pytest.raises(error, match=match):
        model.recommend([0, 1], output=output if not isinstance(output, str)
                        else tmp_path / output)


def test_gather_bad_value(model):
    with pytest.raises(ValueError, match="gather must be 'all'"):
        model.recommend([0, 1], gather="rank0")
    x, y = dp_fit.data()
    with pytest.raises(ValueError, match="gather must be 'all'"):
        model.evaluate(x, y, gather=0)


def test_two_ranks_write_their_files_and_split_evaluate(mpi, tmp_path, one_thread):  # noqa: F811
    rc, out, err, _ = launch(os.path.join(HERE, "mpi", "dp_output.py"), ["score", tmp_path])
    assert rc == 0, err[-3000:]
    reports = [json.load(open(tmp_path / f"score-{r}.json")) for r in (0, 1)]
    model = dp_output.trained()  # the same weights as the ranks' (bit for bit? below)
    ids, scores = model.recommend(dp_output.USERS, k=5, exclude=dp_output.seen(), verbose=0)
    want = expected_rows(ids, scores, dp_output.USERS)
    got = read_csv(tmp_path / "recs-0.csv") + read_csv(tmp_path / "recs-1.csv")
    assert [r[:3] for r in got] == [r[:3] for r in want]  # users, ranks, items
    np.testing.assert_allclose([float(r[3]) for r in got], [float(r[3]) for r in want],
                               atol=2e-6)
    users = [r["summary"]["users"] for r in reports]
    assert users == [60, 60]
    assert reports[0]["summary"]["total_rows"] == reports[1]["summary"]["total_rows"] == len(want)
    if "parquet" in reports[0]:
        assert [r["parquet"]["rows"] for r in reports] == [r["summary"]["rows"] for r in reports]
    # gather="main": rank 0 alone gets one process's top-K
    assert reports[1]["main"] is None and reports[0]["main"] == ids.tolist()
    # evaluate: the same on both ranks (rank 0 alone with gather="main"), one process's
    x, y = dp_fit.data()
    one = model.evaluate(x, y, return_dict=True, verbose=0)
    assert reports[0]["evaluate"] == reports[1]["evaluate"] == reports[0]["evaluate_alone"]
    assert reports[0]["evaluate"] == pytest.approx(one, rel=1e-6)
    assert reports[0]["evaluate_main"] == reports[0]["evaluate"]
    assert reports[1]["evaluate_main"] is None
    # local_data=True: each rank passed half of the rows; the result is over both halves
    assert reports[0]["evaluate_local"] == reports[1]["evaluate_local"]
    assert reports[0]["evaluate_local"] == pytest.approx(one, rel=1e-6)
