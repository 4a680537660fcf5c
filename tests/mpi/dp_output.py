"""Scoring under ``mpiexec -n 2`` for tests/test_distributed_output.py: ``recommend(...,
output="recs-{rank}.csv")``, ``recommend(gather="main")`` and ``evaluate`` split across
the ranks (``gather="all"|"main"``, and ``local_data=True``).

    python dp_output.py MODE OUT_DIR        MODE: score
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dp_fit  # noqa: E402

USERS = np.arange(dp_fit.N_USERS)[::-1].copy()  # not in id order: the files keep it


def seen():
    rng = np.random.default_rng(4)
    return rng.integers(0, dp_fit.N_USERS, 600), rng.integers(0, dp_fit.N_ITEMS, 600)


def trained():
    model = dp_fit.build()
    x, y = dp_fit.data()
    model.fit(x, y, batch_size=128, epochs=1, seed=2, verbose=0)
    return model


def main(mode, out):
    from neurec import distribution
    distribution.initialize()
    distribution.set_distribution(distribution.DataParallel())
    rank = distribution.rank()
    model = trained()
    x, y = dp_fit.data()
    report = {}
    report["summary"] = model.recommend(USERS, k=5, exclude=seen(), verbose=0,
                                        output=os.path.join(out, "recs-{rank}.csv"))
    try:
        import pyarrow  # noqa: F401
        report["parquet"] = model.recommend(USERS, k=5, exclude=seen(), verbose=0,
                                            output=os.path.join(out, "recs-{rank}.parquet"))
    except ImportError:
        pass
    main_only = model.recommend(USERS, k=5, exclude=seen(), verbose=0, gather="main")
    report["main"] = None if main_only is None else main_only[0].tolist()
    report["evaluate"] = model.evaluate(x, y, return_dict=True, verbose=0)
    report["evaluate_main"] = model.evaluate(x, y, return_dict=True, verbose=0, gather="main")
    distribution.set_distribution(None)  # this rank alone, the same weights
    report["evaluate_alone"] = model.evaluate(x, y, return_dict=True, verbose=0)
    distribution.set_distribution(distribution.DataParallel(local_data=True))
    half = slice(rank * dp_fit.N // 2, (rank + 1) * dp_fit.N // 2)
    report["evaluate_local"] = model.evaluate([a[half] for a in x], y[half], return_dict=True,
                                              verbose=0)
    with open(os.path.join(out, f"{mode}-{rank}.json"), "w") as f:
        json.dump(report, f)
    print(f"rank {rank} done", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else ".")
