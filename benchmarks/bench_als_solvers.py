"""iALS row solvers: conjugate gradient (3 steps, warm-started) vs Cholesky, 32-256 factors.

For each factor count: seconds per sweep (users then items, the C solves and Gramians, without
the objective; median of ``--reps`` alternating repetitions) and HR@10 / NDCG@10 after
``--epochs`` sweeps (NCF protocol) for both solvers, on ML-1M's NCF split with the
time-to-quality benchmark's best iALS settings (alpha 8, regularization 30, nu 1).

With ``--implicit``: one user half-sweep of neurec's CG against implicit's (``least_squares_cg``)
on the same system, one thread each, and the largest difference of the solved rows.

Run: ``nice -n 5 python benchmarks/bench_als_solvers.py --implicit`` (~4 min).
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import neurec  # noqa: E402
from ncf_data import load_dataset  # noqa: E402
from neurec.evaluation import evaluate_sampled  # noqa: E402
from neurec.models import MF  # noqa: E402
from neurec.models._als import ALSTrainer, als_parts  # noqa: E402
from neurec.optimizers import ALS  # noqa: E402


def trainer(ds, m, f, solver, cg_steps=3):
    neurec.utils.set_random_seed(0)
    model = MF(ds.n_users, ds.n_items, factors=f, use_bias=False)
    model.compile(optimizer=ALS(alpha=8, regularization=30, nu=1, solver=solver, cg_steps=cg_steps))
    return model, ALSTrainer(model, als_parts(model), m, model.optimizer)


def sweep_seconds(tr) -> float:
    t0 = time.perf_counter()
    tr.half_sweep("u")
    tr.half_sweep("i")
    return time.perf_counter() - t0


def main() -> int:
    ap = common.bench_parser(__doc__, dataset="ml-1m", epochs=8, reps=3, threads=2)
    ap.add_argument("--factors", default="32,64,128,256")
    ap.add_argument(
        "--implicit",
        action="store_true",
        help="also time one CG half-sweep against implicit's on the same system",
    )
    ap.add_argument("--solvers-only", action="store_true", help="skip the HR curves")
    args = ap.parse_args()
    run = common.Run(args.threads)
    ds = load_dataset(args.dataset)
    m = ds.train_matrix()
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
            epochs = 0 if args.solvers_only or (solver == "cholesky" and f > 128) else args.epochs
            model, tr = trainer(ds, m, f, solver)
            hr = []
            for _ in range(epochs):
                tr.half_sweep("u")
                tr.half_sweep("i")
                tr.write_back()
                r = evaluate_sampled(model, ds.test_users, ds.test_items, ds.test_negatives)
                hr.append((float(r["hr@10"]), float(r["ndcg@10"])))
            quality[solver] = hr
        row = {
            "factors": f,
            "cg_s": float(np.median(times["cg"])),
            "cholesky_s": float(np.median(times["cholesky"])),
            "cg_all": times["cg"],
            "cholesky_all": times["cholesky"],
            "hr": quality,
        }
        row["ratio"] = row["cholesky_s"] / row["cg_s"]
        rows.append(row)
        print(
            f"f={f}: CG {row['cg_s']:.3f}s/sweep, Cholesky {row['cholesky_s']:.3f}s/sweep "
            f"({row['ratio']:.1f}x); HR after {args.epochs}: "
            f"{[q[-1][0] if q else None for q in quality.values()]}",
            flush=True,
        )

    peer = []
    if args.implicit:
        peer = compare_implicit(ds, m, [int(x) for x in args.factors.split(",")], args.reps)

    def md(rec):
        out = [
            *common.md_head(
                f"# iALS solvers ({rec['config']['dataset']}, alpha 8, reg 30, nu 1)",
                rec["machine"],
            ),
            f"Seconds per sweep (users + items, median of {rec['config']['reps']}), "
            f"{rec['config']['threads']} threads; HR@10 / NDCG@10 after each of "
            f"{rec['config']['epochs']} sweeps (Cholesky at 256 factors: time only).",
            "",
        ]
        body = []
        for r in rec["rows"]:
            cg = r["hr"]["cg"]
            ch = r["hr"]["cholesky"]
            body.append(
                [
                    r["factors"],
                    f"{r['cg_s']:.3f}",
                    f"{r['cholesky_s']:.3f}",
                    f"{r['ratio']:.1f}x",
                    f"{cg[-1][0]:.4f} / {cg[-1][1]:.4f}" if cg else "—",
                    f"{ch[-1][0]:.4f} / {ch[-1][1]:.4f}" if ch else "—",
                    " ".join(f"{h[0]:.3f}" for h in cg),
                    " ".join(f"{h[0]:.3f}" for h in ch) or "—",
                ]
            )
        out.append(
            common.md_table(
                [
                    "factors",
                    "CG s/sweep",
                    "Cholesky s/sweep",
                    "Cholesky / CG",
                    "CG HR/NDCG (last)",
                    "Cholesky HR/NDCG (last)",
                    "CG HR per sweep",
                    "Cholesky HR per sweep",
                ],
                body,
            )
        )
        if rec["implicit"]:
            out += [
                "",
                "One user half-sweep (3 CG steps, the same system: alpha 8 / implicit's 9, "
                "reg 30, nu 0, 1 thread, OpenBLAS 1 thread), neurec `_core.als_solve` + Gramian "
                "vs `implicit.cpu._als.least_squares_cg`, median of the alternating "
                "repetitions; max |difference| of the solved rows:",
                "",
                common.md_table(
                    ["factors", "neurec s", "implicit s", "implicit / neurec", "max abs diff"],
                    [
                        [
                            r["factors"],
                            f"{r['neurec_s']:.3f}",
                            f"{r['implicit_s']:.3f}",
                            f"{r['ratio']:.2f}x",
                            f"{r['max_diff']:.1e}",
                        ]
                        for r in rec["implicit"]
                    ],
                ),
            ]
        return "\n".join(out)

    payload = {"rows": rows, "implicit": peer}
    return run.finish("als_solvers", f"als_solvers_{args.dataset}", vars(args), payload, md)


def compare_implicit(ds, m, factors, reps):
    """neurec's and implicit's CG half-sweep on the same system, one thread each."""
    from implicit.cpu import _als
    from threadpoolctl import threadpool_limits

    from neurec import _core

    csr = m.to_scipy().tocsr().astype(np.float32)
    csr.data[:] = 9.0  # implicit's confidence alpha * r = 1 + neurec's alpha 8
    old = neurec.get_num_threads()
    neurec.set_num_threads(1)
    out = []
    try:
        with threadpool_limits(1, "blas"):
            for f in factors:
                rng = np.random.default_rng(0)
                y = rng.normal(0, 0.1, (ds.n_items, f)).astype(np.float32)
                x0 = rng.normal(0, 0.1, (ds.n_users, f)).astype(np.float32)
                tn, ti = [], []
                for _ in range(reps):
                    x = x0.copy()
                    g = np.empty((f, f), np.float32)
                    t0 = time.perf_counter()
                    _core.als_gram(y, None, g, None)
                    _core.als_solve(
                        m.indptr,
                        m.indices,
                        None,
                        x,
                        y,
                        None,
                        g,
                        None,
                        8.0,
                        30.0,
                        0.0,
                        0,
                        3,
                        0,
                        ds.n_users,
                    )
                    tn.append(time.perf_counter() - t0)
                    time.sleep(0.2)
                    x2 = x0.copy()
                    t0 = time.perf_counter()
                    _als.least_squares_cg(csr, x2, y, 30.0, num_threads=1, cg_steps=3)
                    ti.append(time.perf_counter() - t0)
                    time.sleep(0.2)
                r = {
                    "factors": f,
                    "neurec_s": float(np.median(tn)),
                    "implicit_s": float(np.median(ti)),
                    "max_diff": float(np.abs(x - x2).max()),
                }
                r["ratio"] = r["implicit_s"] / r["neurec_s"]
                print(
                    f"f={f}: neurec {r['neurec_s']:.3f}s implicit {r['implicit_s']:.3f}s "
                    f"({r['ratio']:.2f}x), max diff {r['max_diff']:.1e}",
                    flush=True,
                )
                out.append(r)
    finally:
        neurec.set_num_threads(old)
    return out


if __name__ == "__main__":
    sys.exit(main())
