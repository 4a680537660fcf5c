"""The batch-scoring recipe for users whose data lives in Dask (README "Scaling out"):
a saved model loaded once per worker process and ``recommend`` called inside
``map_partitions``. Dask is the engine; neurec needs to be reachable by path (only the
path travels to the workers) and thread-safe (a threaded worker calls ``recommend`` on
one model from several threads). The Dask tests skip without ``dask[dataframe]``.
"""
import functools
import os
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import neurec

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "mpi"))
import dp_output  # noqa: E402

K = 5


@functools.lru_cache(maxsize=4)
def load(path):
    """One model per process and path (the recipe's cache)."""
    return neurec.models.load_model(path)


def score_partition(df, path):
    """The recipe's ``map_partitions`` function: a partition's users -> long rows."""
    import pandas as pd
    model = load(path)
    ids, scores = model.recommend(df["user"].to_numpy(), k=K, exclude=False, verbose=0)
    return pd.DataFrame({"user": np.repeat(df["user"].to_numpy(), K),
                         "rank": np.tile(np.arange(1, K + 1, dtype=np.int64), len(df)),
                         "item": ids.ravel(), "score": scores.ravel(),
                         "pid": os.getpid()}, index=np.repeat(df.index.to_numpy(), K))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("dask") / "model.neurec")
    dp_output.trained().save(path)
    return path


def test_recommend_from_several_threads_on_one_model(saved, one_thread):
    model = neurec.models.load_model(saved)
    blocks = np.array_split(np.random.default_rng(0).permutation(120), 24)
    serial = [model.recommend(b, k=K, exclude=False, verbose=0) for b in blocks]
    for _ in range(3):
        with ThreadPoolExecutor(6) as pool:
            got = list(pool.map(lambda b: model.recommend(b, k=K, exclude=False, verbose=0),
                                blocks))
        for (gi, gs), (wi, ws) in zip(got, serial):
            np.testing.assert_array_equal(gi, wi)
            np.testing.assert_array_equal(gs, ws)


@pytest.mark.parametrize("scheduler", ["threads", "processes"])
def test_dask_map_partitions(saved, scheduler):
    dd = pytest.importorskip("dask.dataframe")
    import pandas as pd
    users = pd.DataFrame({"user": np.arange(120, dtype=np.int64)[::-1]})
    ddf = dd.from_pandas(users, npartitions=6)
    meta = pd.DataFrame({"user": pd.Series(dtype="int64"), "rank": pd.Series(dtype="int64"),
                         "item": pd.Series(dtype="int64"), "score": pd.Series(dtype="float32"),
                         "pid": pd.Series(dtype="int64")})
    got = ddf.map_partitions(score_partition, saved, meta=meta).compute(scheduler=scheduler)
    want_ids, want_scores = neurec.models.load_model(saved).recommend(
        users["user"].to_numpy(), k=K, exclude=False, verbose=0)
    np.testing.assert_array_equal(got["user"].to_numpy(), np.repeat(users["user"], K))
    np.testing.assert_array_equal(got["item"].to_numpy(), want_ids.ravel())
    np.testing.assert_allclose(got["score"].to_numpy(), want_scores.ravel(), rtol=1e-6)
    if scheduler == "processes":  # the path travelled, the model was loaded in the workers
        assert os.getpid() not in set(got["pid"])
