"""Time to quality: neurec's iALS (and NeuMF/GMF started from it) vs implicit's ALS and BPR.

Every contender trains in this one process, with the same number of threads, on the same NCF
split, and is scored by the same metric code (neurec's ``evaluate_sampled``: the held-out item
among its 99 fixed negatives; ``evaluate_full``: among every item the user has not seen). After
every epoch (iteration) a callback records HR@10 / NDCG@10; the time spent evaluating is
subtracted, so a curve is (training seconds, HR@10, NDCG@10), setup (CSR transposes, factor
initialisation) included for both libraries.

Protocol:
1. A small grid per contender and data set (the same size for neurec's iALS and implicit's ALS;
   implicit's ALS has no frequency-scaled regularization, so its grid spans a wider range of
   plain regularization instead). Configurations are selected on the test metric, as the
   NCF-line papers do (Rendle et al. 2021 tune iALS the same way); say so when quoting.
2. The best configuration of each is re-run ``--reps`` times, alternating neurec, implicit, ...;
   times are medians over the repetitions, HR the first repetition's (the runs are seeded, and
   neurec's are bit-identical).
3. Reported: best HR@10 / NDCG@10 and the seconds to reach it, the seconds to reach implicit
   ALS's best HR@10 and fixed targets, and full-ranking HR@10 / NDCG@10 of the final models.

Run: ``nice -n 5 python benchmarks/bench_time_to_quality.py`` (all data sets, ~10 min),
``--datasets ml-100k --quick`` (~30 s).
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any, Callable

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import neurec  # noqa: E402
from ncf_data import load_dataset  # noqa: E402
from neurec.data import NegativeSampler  # noqa: E402
from neurec.evaluation import evaluate_full, evaluate_sampled  # noqa: E402
from neurec.models import MF, from_ials  # noqa: E402
from neurec.optimizers import ALS  # noqa: E402

# (factors, alpha, regularization, nu, epochs); alpha in neurec's convention c = 1 + alpha * r.
# The grids mirror each other: neurec's (f, a, reg, nu=1) against implicit's (f, a + 1, reg),
# plus one nu=0 twin (implicit's model exactly) and, for implicit, the setting.
NEUREC_GRID = {
    "ml-1m": [
        (64, 8, 30, 1, 12),
        (64, 4, 30, 1, 12),
        (128, 8, 60, 1, 12),
        (128, 8, 60, 0, 12),
        (128, 8, 60, 0.5, 12),
        (64, 8, 30, 0.5, 12),
    ],
    "ml-100k": [
        (64, 8, 10, 1, 15),
        (64, 8, 30, 1, 15),
        (128, 8, 30, 1, 15),
        (128, 8, 60, 1, 15),
        (64, 8, 30, 0.5, 15),
        (64, 8, 30, 0, 15),
    ],
    "beauty": [
        (64, 8, 10, 0.5, 15),
        (64, 8, 10, 1, 15),
        (64, 8, 30, 1, 15),
        (128, 8, 10, 1, 15),
        (128, 8, 30, 1, 15),
        (128, 8, 10, 0, 15),
    ],
}
# implicit: (factors, alpha, regularization, iterations); implicit's confidence is alpha * r
# (so its alpha = 1 + neurec's alpha for 0/1 data). The first entry is the setting.
IMPLICIT_GRID = {
    "ml-1m": [
        (64, 2, 0.01, 15),
        (64, 9, 30, 15),
        (64, 5, 30, 15),
        (128, 9, 60, 15),
        (128, 9, 100, 15),
        (192, 9, 100, 15),
    ],
    "ml-100k": [
        (64, 2, 0.01, 15),
        (64, 9, 10, 15),
        (64, 9, 30, 15),
        (128, 9, 30, 15),
        (128, 9, 60, 15),
        (32, 9, 10, 15),
    ],
    "beauty": [
        (64, 2, 0.01, 15),
        (64, 9, 3, 15),
        (64, 9, 10, 15),
        (64, 9, 30, 15),
        (128, 9, 10, 15),
        (128, 9, 30, 15),
    ],
}
# implicit BPR: (factors, learning_rate, regularization, iterations)
BPR_GRID = {
    "ml-1m": [(64, 0.01, 0.01, 100)],
    "ml-100k": [(64, 0.01, 0.01, 100)],
    "beauty": [(64, 0.01, 0.01, 100)],
}
TARGETS = {"ml-1m": [0.70, 0.708, 0.72]}


class FactorScorer:
    """implicit factors behind the interface neurec's metric code calls."""

    def __init__(self, user_factors, item_factors):
        self.u = np.ascontiguousarray(user_factors, np.float32)
        self.v = np.ascontiguousarray(item_factors, np.float32)

    def predict(self, x, batch_size=None, verbose=0):
        u, i = (np.asarray(a).ravel() for a in x)
        return np.einsum("ij,ij->i", self.u[u], self.v[i])[:, None]

    def score_items(self, users, items=None):
        return self.u[np.asarray(users)] @ self.v.T


class Curve:
    """Per-epoch metrics with the evaluation time taken out of the clock."""

    def __init__(self, ds, every: int = 1):
        self.ds, self.every = ds, every
        self.points: list[tuple[int, float, float, float]] = []
        self.t0 = time.perf_counter()
        self.eval_s = 0.0

    def start(self) -> None:
        self.t0 = time.perf_counter()
        self.eval_s = 0.0

    def record(self, epoch: int, scorer) -> None:
        if (epoch + 1) % self.every:
            return
        t = time.perf_counter()
        train_s = t - self.t0 - self.eval_s
        r = evaluate_sampled(scorer, self.ds.test_users, self.ds.test_items, self.ds.test_negatives)
        self.points.append((epoch + 1, train_s, float(r["hr@10"]), float(r["ndcg@10"])))
        self.eval_s += time.perf_counter() - t

    def summary(self) -> dict[str, Any]:
        best = max(self.points, key=lambda p: (p[2], -p[1]))
        return {
            "best_hr": best[2],
            "best_ndcg": best[3],
            "best_epoch": best[0],
            "time_to_best_s": best[1],
            "total_train_s": self.points[-1][1],
            "curve": [list(p) for p in self.points],
        }


def time_to(curve: list, target: float) -> float | None:
    for _, t, hr, _ in curve:
        if hr >= target - 1e-12:
            return t
    return None


def full_metrics(scorer, ds, m) -> dict[str, float]:
    r = evaluate_full(scorer, ds.test_users, ds.test_items, m)
    return {"full_hr@10": float(r["hr@10"]), "full_ndcg@10": float(r["ndcg@10"])}


# ----------------------------------------------------------------------------------------------
# contenders
# ----------------------------------------------------------------------------------------------


def run_neurec_ials(ds, m, cfg, seed=0, keep=False):
    f, alpha, reg, nu, epochs = cfg
    neurec.utils.set_random_seed(seed)
    model = MF(ds.n_users, ds.n_items, factors=f, use_bias=False)
    model.compile(optimizer=ALS(alpha=alpha, regularization=reg, nu=nu))
    curve = Curve(ds)
    cb = neurec.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: curve.record(e, model))
    curve.start()
    model.fit(m, epochs=epochs, verbose=0, callbacks=[cb])
    out = curve.summary()
    return (out, model) if keep else out


def run_implicit_als(ds, m, cfg, threads, seed=0, keep=False):
    from implicit.cpu.als import AlternatingLeastSquares

    f, alpha, reg, iters = cfg
    csr = m.to_scipy().tocsr().astype(np.float32)
    model = AlternatingLeastSquares(
        factors=f,
        alpha=alpha,
        regularization=reg,
        iterations=iters,
        num_threads=threads,
        random_state=seed,
    )
    curve = Curve(ds)

    def cb(it, elapsed, loss):
        return curve.record(it, FactorScorer(model.user_factors, model.item_factors))

    curve.start()
    model.fit(csr, show_progress=False, callback=cb)
    out = curve.summary()
    return (out, FactorScorer(model.user_factors, model.item_factors)) if keep else out


def run_implicit_bpr(ds, m, cfg, threads, seed=0, keep=False):
    from implicit.cpu.bpr import BayesianPersonalizedRanking

    f, lr, reg, iters = cfg
    csr = m.to_scipy().tocsr().astype(np.float32)
    model = BayesianPersonalizedRanking(
        factors=f,
        learning_rate=lr,
        regularization=reg,
        iterations=iters,
        num_threads=threads,
        random_state=seed,
    )
    curve = Curve(ds, every=5)
    cb = lambda it, *rest: curve.record(  # noqa: E731
        it, FactorScorer(model.user_factors, model.item_factors)
    )
    curve.start()
    model.fit(csr, show_progress=False, callback=cb)
    out = curve.summary()
    return (out, FactorScorer(model.user_factors, model.item_factors)) if keep else out


def run_pretrained(ds, m, ials_cfg, arch, epochs, lr, seed=0):
    """iALS, then ``from_ials`` + Adam fine-tuning; the clock runs through both."""
    res, mf = run_neurec_ials(ds, m, ials_cfg, seed=seed, keep=True)
    ials_s = res["total_train_s"]
    model = from_ials(mf, arch, layers=(2 * ials_cfg[0], ials_cfg[0], ials_cfg[0] // 2))
    model.compile(optimizer=neurec.optimizers.Adam(lr), loss="binary_crossentropy")
    r0 = evaluate_sampled(model, ds.test_users, ds.test_items, ds.test_negatives)
    curve = Curve(ds)
    curve.points.append((0, 0.0, float(r0["hr@10"]), float(r0["ndcg@10"])))
    cb = neurec.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: curve.record(e, model))
    sampler = NegativeSampler(m, num_negatives=4)
    curve.start()
    model.fit(sampler, epochs=epochs, batch_size=256, verbose=0, callbacks=[cb], seed=seed)
    out = curve.summary()
    out["ials"] = {k: res[k] for k in ("best_hr", "best_ndcg", "total_train_s")}
    out["curve"] = [[e, t + ials_s, hr, nd] for e, t, hr, nd in out["curve"]]
    out["time_to_best_s"] += ials_s
    out["total_train_s"] += ials_s
    return out


# ----------------------------------------------------------------------------------------------
# driver
# ----------------------------------------------------------------------------------------------


def bench_dataset(
    name: str,
    threads: int,
    reps: int,
    quick: bool,
    pretrain: bool,
    seeds: bool = False,
    grid_only: dict | None = None,
) -> dict:
    ds = load_dataset(name)
    m = ds.train_matrix()
    print(
        f"\n== {name}: {ds.n_users} users x {ds.n_items} items, {m.nnz} training interactions",
        flush=True,
    )
    ngrid = NEUREC_GRID[name][:2] if quick else NEUREC_GRID[name]
    igrid = IMPLICIT_GRID[name][:2] if quick else IMPLICIT_GRID[name]
    bgrid = BPR_GRID[name][:1] if quick else BPR_GRID[name]
    grid: dict[str, list] = {"neurec_ials": [], "implicit_als": [], "implicit_bpr": []}
    if grid_only:  # the best configurations given: skip the grid search
        ngrid, igrid, bgrid = (
            [grid_only["neurec_ials"]],
            [grid_only["implicit_als"]],
            [grid_only["implicit_bpr"]],
        )
    for cn, ci in zip(ngrid, igrid):  # alternate the two ALS grids
        r = run_neurec_ials(ds, m, cn)
        grid["neurec_ials"].append({"config": cn, **{k: r[k] for k in r if k != "curve"}})
        print(
            f"neurec iALS {cn}: best {r['best_hr']:.4f}/{r['best_ndcg']:.4f} at "
            f"{r['time_to_best_s']:.2f}s",
            flush=True,
        )
        time.sleep(0.3)
        r = run_implicit_als(ds, m, ci, threads)
        grid["implicit_als"].append({"config": ci, **{k: r[k] for k in r if k != "curve"}})
        print(
            f"implicit ALS {ci}: best {r['best_hr']:.4f}/{r['best_ndcg']:.4f} at "
            f"{r['time_to_best_s']:.2f}s",
            flush=True,
        )
        time.sleep(0.3)
    for cb in bgrid:
        r = run_implicit_bpr(ds, m, cb, threads)
        grid["implicit_bpr"].append({"config": cb, **{k: r[k] for k in r if k != "curve"}})
        print(
            f"implicit BPR {cb}: best {r['best_hr']:.4f} at {r['time_to_best_s']:.2f}s", flush=True
        )

    def pick(key):
        return max(grid[key], key=lambda g: (g["best_hr"], -g["time_to_best_s"]))["config"]

    best = {k: pick(k) for k in grid}
    default_implicit = IMPLICIT_GRID[name][0]
    runs: dict[str, Callable[[int], Any]] = {
        "neurec_ials": lambda sd: run_neurec_ials(ds, m, best["neurec_ials"], seed=sd),
        "implicit_als": lambda sd: run_implicit_als(ds, m, best["implicit_als"], threads, seed=sd),
        "implicit_als_issue_config": lambda sd: run_implicit_als(
            ds, m, default_implicit, threads, seed=sd
        ),
        "implicit_bpr": lambda sd: run_implicit_bpr(ds, m, best["implicit_bpr"], threads, seed=sd),
    }
    reps_of = {k: (reps if k != "implicit_bpr" else 1) for k in runs}
    results: dict[str, list] = {k: [] for k in runs}
    for rep in range(reps):
        for k, fn in runs.items():
            if rep < reps_of[k]:
                results[k].append(fn(rep if seeds else 0))
                time.sleep(0.3)
    summary: dict[str, Any] = {}
    for k, rs in results.items():
        first = rs[0]
        summary[k] = {
            "config": best.get(k, default_implicit),
            "best_hr": first["best_hr"],
            "best_ndcg": first["best_ndcg"],
            "best_epoch": first["best_epoch"],
            "best_hr_all": [r["best_hr"] for r in rs],
            "best_ndcg_all": [r["best_ndcg"] for r in rs],
            "best_hr_mean": float(np.mean([r["best_hr"] for r in rs])),
            "best_ndcg_mean": float(np.mean([r["best_ndcg"] for r in rs])),
            "time_to_best_s": float(np.median([r["time_to_best_s"] for r in rs])),
            "time_to_best_s_all": [r["time_to_best_s"] for r in rs],
            "total_train_s": float(np.median([r["total_train_s"] for r in rs])),
            "curves": [r["curve"] for r in rs],
        }
    imp_best = summary["implicit_als"]["best_hr"]
    targets = sorted(set(TARGETS.get(name, []) + [round(imp_best, 4)]))
    for s in summary.values():
        s["time_to"] = {
            f"{t:.4f}": (float(np.median(v)) if all(x is not None for x in v) else None)
            for t in targets
            for v in [[time_to(c, t) for c in s["curves"]]]
        }
    # full ranking of the final models of the best configurations
    r, model = run_neurec_ials(ds, m, best["neurec_ials"], keep=True)
    summary["neurec_ials"].update(full_metrics(model, ds, m))
    r, sc = run_implicit_als(ds, m, best["implicit_als"], threads, keep=True)
    summary["implicit_als"].update(full_metrics(sc, ds, m))
    r, sc = run_implicit_bpr(ds, m, best["implicit_bpr"], threads, keep=True)
    summary["implicit_bpr"].update(full_metrics(sc, ds, m))
    if pretrain and not quick:
        cfg = best["neurec_ials"]
        ep = 3
        for arch in ("gmf", "neumf"):
            res = run_pretrained(ds, m, cfg, arch, ep, 1e-4)
            summary[f"{arch}_from_ials"] = {
                "config": {"ials": cfg, "fine_tune_epochs": ep, "adam_lr": 1e-4, "negatives": 4},
                "time_to": {},
                **res,
                "curves": [res["curve"]],
            }
            print(
                f"{arch} from iALS: start {res['curve'][0][2]:.4f}, best {res['best_hr']:.4f} "
                f"after {res['time_to_best_s']:.1f}s",
                flush=True,
            )
    return {
        "dataset": name,
        "users": ds.n_users,
        "items": ds.n_items,
        "nnz": m.nnz,
        "grid": grid,
        "summary": summary,
        "targets": targets,
    }


def markdown(rec: dict) -> str:
    lines = [
        *common.md_head("# Time to quality: neurec iALS vs implicit ALS / BPR", rec["machine"]),
        f"Threads: {rec['config']['threads']} for every contender; sampled metrics over "
        "99 fixed negatives (NCF protocol), full ranking over every unseen item; "
        "configurations picked on the test metric from the grids in the JSON; "
        f"times are medians of {rec['config']['reps']} alternating runs (BPR: 1)"
        + (
            "; best HR/NDCG are means over seeds 0.."
            + str(rec["config"]["reps"] - 1)
            + " (each contender's initial factors)"
            if rec["config"].get("seeds")
            else "; best HR/NDCG of seed 0"
        )
        + ".",
        "",
    ]
    for d in rec["datasets"]:
        s = d["summary"]
        lines += [
            f"## {d['dataset']} ({d['users']} users x {d['items']} items, {d['nnz']} interactions)",
            "",
        ]
        rows = []
        for k, v in s.items():
            hr, nd = (
                (v.get("best_hr_mean", v["best_hr"]), v.get("best_ndcg_mean", v["best_ndcg"]))
                if rec["config"].get("seeds")
                else (v["best_hr"], v["best_ndcg"])
            )
            rows.append(
                [
                    k,
                    str(v["config"]),
                    f"{hr:.4f}",
                    f"{nd:.4f}",
                    f"{v['time_to_best_s']:.2f}",
                    f"{v['total_train_s']:.2f}",
                    f"{v.get('full_hr@10', float('nan')):.4f}",
                    f"{v.get('full_ndcg@10', float('nan')):.4f}",
                ]
                + [
                    (
                        "—"
                        if v["time_to"].get(f"{t:.4f}") is None
                        else f"{v['time_to'][f'{t:.4f}']:.2f}"
                    )
                    for t in d["targets"]
                ]
            )
        lines.append(
            common.md_table(
                [
                    "contender",
                    "config",
                    "best HR@10",
                    "best NDCG@10",
                    "s to best",
                    "s total",
                    "full HR@10",
                    "full NDCG@10",
                ]
                + [f"s to HR {t:.4f}" for t in d["targets"]],
                rows,
            )
        )
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    ap = common.bench_parser(
        __doc__, datasets="ml-1m,ml-100k,beauty", threads=2, reps=3, quick=True, name=None
    )
    ap.add_argument("--no-pretrain", action="store_true")
    ap.add_argument(
        "--seeds",
        action="store_true",
        help="repetition r uses seed r (initial factors) for every contender; the "
        "tables then give mean best HR / NDCG over the seeds",
    )
    ap.add_argument(
        "--configs",
        default=None,
        help="skip the grid: a JSON dict {dataset: {neurec_ials: [...], "
        "implicit_als: [...], implicit_bpr: [...]}}",
    )
    args = ap.parse_args()
    from threadpoolctl import threadpool_limits

    run = common.Run(args.threads)
    # implicit's own advice: OpenBLAS's pool fights its threads (it warns otherwise)
    with threadpool_limits(1, "blas"):
        fixed = json.loads(args.configs) if args.configs else {}
        out = [
            bench_dataset(
                d,
                args.threads,
                1 if args.quick else args.reps,
                args.quick,
                not args.no_pretrain,
                args.seeds,
                {k: tuple(v) for k, v in fixed[d].items()} if d in fixed else None,
            )
            for d in args.datasets.split(",")
        ]
    config = {
        "threads": args.threads,
        "reps": 1 if args.quick else args.reps,
        "datasets": args.datasets,
        "quick": args.quick,
        "seeds": args.seeds,
        "configs": args.configs,
    }
    name = common.result_name(args, "time_to_quality")
    return run.finish("time_to_quality", name, config, {"datasets": out}, markdown)


if __name__ == "__main__":
    sys.exit(main())
