"""iALS row solvers: conjugate gradient (3 steps, warm-started) vs Cholesky, 32-256 factors.

For each factor count: seconds per sweep (users then items, the C solves and Gramians, without
the objective; median of ``--reps`` alternating repetitions) and HR@10 / NDCG@10 after
``--epochs`` sweeps (NCF protocol) for both solvers, on ML-1M's NCF split with the
time-to-quality benchmark's best iALS settings (alpha 8, regularization 30, nu 1).

Run: ``nice -n 5 python benchmarks/bench_als_solvers.py`` (~3 min).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from ncf_data import load_dataset  # noqa: E402

import neurec  # noqa: E402
from neurec.data import InteractionMatrix  # noqa: E402
from neurec.evaluation import evaluate_sampled  # noqa: E402
from neurec.models import MF  # noqa: E402
from neurec.models._als import ALSTrainer, als_parts  # noqa: E402
from neurec.optimizers import ALS  # noqa: E402


def trainer(ds, m, f, solver, cg_steps=3):
    neurec.utils.set_random_seed(0)
    model = MF(ds.num_users, ds.num_items, factors=f, use_bias=False)
    model.compile(optimizer=ALS(alpha=8, regularization=30, nu=1, solver=solver,
                                cg_steps=cg_steps))
    return model, ALSTrainer(model, als_parts(model), m, model.optimizer)


def sweep_seconds(tr) -> float:
    t0 = time.perf_counter()
    tr.half_sweep("u")
    tr.half_sweep("i")
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="ml-1m")
    ap.add_argument("--factors", default="32,64,128,256")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    t_start = time.perf_counter()
    neurec.set_num_threads(args.threads)
    info = common.machine_info()
    common.print_machine(info)
    ds = load_dataset(args.dataset)
    m = InteractionMatrix.from_arrays(ds.train_users, ds.train_items,
                                      shape=(ds.num_users, ds.num_items))
    rows = []
    for f in (int(x) for x in args.factors.split(",")):
        times = {"cg": [], "cholesky": []}
        for _ in range(args.reps):
            for solver in times:
                _, tr = trainer(ds, m, f, solver)
                time.sleep(0.2)
                times[solver].append(sweep_seconds(tr))
        quality = {}
        for solver in times:
            epochs = args.epochs if (solver == "cg" or f <= 128) else 0
            model, tr = trainer(ds, m, f, solver)
            hr = []
            for _ in range(epochs):
                tr.half_sweep("u")
                tr.half_sweep("i")
                tr.write_back()
                r = evaluate_sampled(model, ds.test_users, ds.test_items, ds.test_negatives)
                hr.append((float(r["hr@10"]), float(r["ndcg@10"])))
            quality[solver] = hr
        row = {"factors": f,
               "cg_s": float(np.median(times["cg"])), "cholesky_s": float(np.median(times["cholesky"])),
               "cg_all": times["cg"], "cholesky_all": times["cholesky"], "hr": quality}
        row["ratio"] = row["cholesky_s"] / row["cg_s"]
        rows.append(row)
        print(f"f={f}: CG {row['cg_s']:.3f}s/sweep, Cholesky {row['cholesky_s']:.3f}s/sweep "
              f"({row['ratio']:.1f}x); HR after {args.epochs}: "
              f"{[q[-1][0] if q else None for q in quality.values()]}", flush=True)

    def md(rec):
        out = [f"# iALS solvers ({rec['config']['dataset']}, alpha 8, reg 30, nu 1)", "",
               common.machine_md(rec["machine"]), "",
               f"Seconds per sweep (users + items, median of {rec['config']['reps']}), "
               f"{rec['config']['threads']} threads; HR@10 / NDCG@10 after each of "
               f"{rec['config']['epochs']} sweeps (Cholesky at 256 factors: time only).", ""]
        body = []
        for r in rec["rows"]:
            cg = r["hr"]["cg"]
            ch = r["hr"]["cholesky"]
            body.append([r["factors"], f"{r['cg_s']:.3f}", f"{r['cholesky_s']:.3f}",
                         f"{r['ratio']:.1f}x",
                         f"{cg[-1][0]:.4f} / {cg[-1][1]:.4f}" if cg else "—",
                         f"{ch[-1][0]:.4f} / {ch[-1][1]:.4f}" if ch else "—",
                         " ".join(f"{h[0]:.3f}" for h in cg),
                         " ".join(f"{h[0]:.3f}" for h in ch) or "—"])
        out.append(common.md_table(["factors", "CG s/sweep", "Cholesky s/sweep", "Cholesky / CG",
                                    "CG HR/NDCG (last)", "Cholesky HR/NDCG (last)",
                                    "CG HR per sweep", "Cholesky HR per sweep"], body))
        return "\n".join(out)

    return common.finish("als_solvers", f"als_solvers_{args.dataset}", info, vars(args),
                         {"rows": rows}, t_start, md)


if __name__ == "__main__":
    sys.exit(main())
