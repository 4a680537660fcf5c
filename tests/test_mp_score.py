"""Scoring with tables sharded by ``ModelParallel`` (each rank its item shard, the top-K
lists merged), ``ModelParallel(local_data=True)`` and ``recommend(histories=)`` under a
distribution, on ``mpiexec -n 2``.

The jobs run tests/mpi/mp_score.py (skipped where mpi4py or mpiexec is absent, through
test_distributed.py's fixture). Expectations come from one process: the model files the
jobs save (rank 0 gathers the shards), loaded and scored here.
"""
import os
import sys

import numpy as np
import pytest

from neurec import distribution
from neurec.models import _foldin, load_model
from test_distributed import mpi  # noqa: F401  (the fixture)
from test_distributed_local import launch as launch_script
from test_distributed_local import run
from test_distributed_output import read_csv

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "mpi", "mp_score.py")
sys.path.insert(0, os.path.join(HERE, "mpi"))
import mp_score  # noqa: E402


def launch(mode, out, *args):
    return run(mode, out, *args, script="mp_score.py", timeout=300)


@pytest.fixture(scope="module")
def scored(mpi, tmp_path_factory):  # noqa: F811
    out = tmp_path_factory.mktemp("mp-score")
    return out, launch("score", out)


@pytest.mark.parametrize("name", mp_score.MODELS)
def test_sharded_scoring_is_one_process_scoring(scored, name, one_thread):
    """recommend (exclusions, candidates, retired items, an unknown user, the whole
    ranking, equal scores), evaluate_sampled and evaluate_full (one and several held-out
    items per user) with each rank scoring its item shard: both ranks return one
    process's ids, scores within 1e-5 and metrics (per user too), and the tables stay
    sharded."""
    out, reports = scored
    got = reports[0][name]
    assert got["sharded"] and reports[1][name]["sharded"]  # nothing was gathered
    files = ("output", "output-local")  # each rank's own file
    assert {k: v for k, v in reports[1][name].items() if k not in files} == \
        {**{k: v for k, v in got.items() if k not in files}, "main": None}  # "main": rank 0
    model = load_model(out / f"{name}.neurec")
    want = mp_score.score(model, name)
    assert got["main"] == model.recommend(np.arange(5), k=3, verbose=0)[0].tolist()
    for key, value in want.items():
        if "ids" in value:
            assert got[key]["ids"] == value["ids"], (name, key)
            np.testing.assert_allclose(got[key]["scores"], value["scores"], rtol=1e-5,
                                       atol=1e-6, err_msg=f"{name} {key}")
        else:
            assert got[key]["per_user"] == value["per_user"], (name, key)
            assert got[key]["means"] == pytest.approx(value["means"], rel=1e-12), (name, key)
    if name == "ties":  # the case the merge's tie order decides
        scores = np.array(want["all"]["scores"])
        assert (scores[:, 1:] == scores[:, :-1]).sum() > 100


@pytest.mark.parametrize("name", ["neumf", "mf"])
def test_sharded_output_files(scored, name, one_thread):
    """recommend(output="recs-{rank}.csv") with sharded tables: every rank scores every
    block of 16 users against its shard, in rank order, and each rank's file holds its
    users' rows as one process ranks them (its contiguous share, or with local_data=True
    the users it passed), and the tables stay sharded."""
    out, reports = scored
    model = load_model(out / f"{name}.neurec")
    users, seen = mp_score.OUTPUT_USERS, mp_score.output_seen()
    for key, parts in (("output", np.array_split(users, 2)),
                       ("output-local", [users[users % 3 == r] for r in (0, 1)])):
        for r, report in enumerate(reports):
            summary = report[name][key]
            assert summary["users"] == parts[r].size
            assert summary["total_users"] == sum(p.size for p in parts)
            ids, scores = model.recommend(parts[r], k=5, exclude=seen, verbose=0)
            path = out / f"{name}-{'recs' if key == 'output' else 'local'}-{r}.csv"
            assert summary["path"] == str(path)
            rows = read_csv(path)
            assert summary["rows"] == len(rows) == parts[r].size * 5
            assert [row[:3] for row in rows] == [[str(u), str(j + 1), str(i)] for u, line in
                                                 zip(parts[r], ids) for j, i in enumerate(line)]
            np.testing.assert_allclose([float(row[3]) for row in rows], scores.ravel(),
                                       rtol=1e-5, atol=2e-6)
            assert report[name]["sharded-after-output"]


def test_a_rank_scores_without_the_whole_item_table(mpi, tmp_path):  # noqa: F811
    """A 1M-item x 32 table under ModelParallel: what a rank allocates while recommending
    (2,000 users, top 10, exclusions) and ranking held-out items in full is a small part
    of the item table (numpy's allocations, traced); gathering would allocate the whole
    table and its Adam state."""
    reports = launch("memory", tmp_path, 1_000_000)
    for r in reports:
        table = r["item_table_bytes"]
        print(f"rank {r['rank']}: recommend peak {r['recommend_peak_bytes'] / 2**20:.1f} MiB, "
              f"evaluate_full peak {r['evaluate_full_peak_bytes'] / 2**20:.1f} MiB "
              f"(blocks of {r['max_block_bytes'] / 2**20:.0f} MiB), item table "
              f"{table / 2**20:.1f} MiB; recommend {r['recommend_seconds']:.2f} s")
        assert r["sharded"]
        assert r["recommend_peak_bytes"] < 0.1 * table
        assert r["evaluate_full_peak_bytes"] < 0.5 * table


def test_model_parallel_local_data_trains_as_the_whole_data(mpi, tmp_path):  # noqa: F811
    """ModelParallel(local_data=True), each rank passing its slice of every batch, trains
    as ModelParallel() on the whole data, bit for bit (also with working tables of 16
    rows); samplers over uneven partitions of users train as DataParallel(local_data=True)."""
    reports = launch("local", tmp_path)
    for size in ("big", "small"):
        for r in reports:
            local, whole = r[size]["local"], r[size]["whole"]
            assert local["sharded"] and whole["sharded"]
            assert local["sha256"] == whole["sha256"] == reports[0][size]["local"]["sha256"]
            assert local["history"] == whole["history"]
            assert local["steps"] == whole["steps"] == 2 * -(-mp_score.N // mp_score.BATCH)
    for r in reports:
        assert r["sampler"]["sharded"] and not r["sampler-dp"]["sharded"]
        assert r["sampler"]["sha256"] == r["sampler-dp"]["sha256"]
        assert r["sampler"]["history"] == r["sampler-dp"]["history"]
    assert reports[0]["sampler"]["samples"] < reports[1]["sampler"]["samples"]
    # and one process on the whole data, within float rounding
    model = mp_score.build("neumf")
    (u, i), y = mp_score.data()
    model.fit([u, i], y, batch_size=mp_score.BATCH, epochs=2, shuffle=False, seed=11, verbose=0)
    with np.load(tmp_path / "local.npz") as z:
        for k, want in enumerate(model.get_weights()):
            np.testing.assert_allclose(z[f"arr_{k}"], want, rtol=0,
                                       atol=1e-5 * float(np.abs(want).max()))


def test_recommend_histories_splits_the_new_users(scored, tmp_path, one_thread):
    """recommend(histories=) under DataParallel and ModelParallel: each rank folds in and
    ranks its share of the histories (whole fit groups), and every rank returns one
    process's rows (the tables of ModelParallel are gathered first)."""
    out, _ = scored
    reports = launch("histories", tmp_path, out / "mf.neurec")
    cases = mp_score.histories_cases()
    for key, path in (("dp", out / "mf.neurec"), ("mp", tmp_path / "histories-mp.neurec")):
        got = reports[0][key]
        assert reports[1][key] == {**got, "main": None, "counts": reports[1][key]["counts"]}
        assert got["main"] == got["sgd"]["ids"]
        ranked = [r[key]["counts"]["ranked"] for r in reports]
        fitted = [r[key]["counts"]["groups"] for r in reports]
        n_sgd, n_solve = len(cases[0][1]), len(cases[1][1])
        assert sum(ranked) == 2 * n_sgd + n_solve and min(ranked) > 0  # split, not repeated
        group = _foldin.MAX_STEP_SAMPLES // _foldin.DEFAULTS["batch_per_user"]
        assert sum(fitted) == 2 * -(-n_sgd // group) and min(fitted) > 0
        for method, hist in cases:
            model = load_model(path)
            ids, scores = model.recommend(histories=hist, k=8, seed=3, verbose=0,
                                          fold_in_options={"method": method})
            assert got[method]["ids"] == ids.tolist(), (key, method)
            np.testing.assert_allclose(got[method]["scores"], scores, rtol=1e-5, atol=1e-6)


def test_ranking_metrics_while_the_tables_are_sharded(mpi, tmp_path):  # noqa: F811
    """The RankingMetrics callback (sampled and full) during a ModelParallel fit scores
    the shards between epochs: the logs of DataParallel, and the tables stay sharded."""
    for r in launch("callback", tmp_path):
        assert r["mp"]["sharded"] and not r["dp"]["sharded"]
        assert r["mp"]["history"] == r["dp"]["history"]
        assert len(r["mp"]["history"]["full_hr@10"]) == 2 and "hr@10" in r["mp"]["history"]


def test_ranks_passing_different_users_are_refused(mpi, tmp_path):  # noqa: F811
    rc, _, err, _ = launch_script(SCRIPT, ["mismatch", tmp_path], timeout=120)
    assert rc != 0
    assert "recommend with tables sharded by ModelParallel: rank 1 passed other users" in err
    assert "pass the same ones on every rank" in err


def test_model_parallel_local_data_argument():
    assert repr(distribution.ModelParallel(local_data=True)) == "ModelParallel(local_data=True)"
    assert repr(distribution.ModelParallel()) == "ModelParallel()"
    assert distribution.ModelParallel(local_data=True).local_data
    with pytest.raises(TypeError, match="local_data must be True or False"):
        distribution.ModelParallel(local_data=1)
