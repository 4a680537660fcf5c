"""Samples to best HR@10 for MF and NeuMF under SGD/Adam recipe levers (issue 16, item 2).

For each model and recipe: train ``--epochs`` epochs with the in-C negative sampler, evaluate
HR@10 / NDCG@10 (NCF protocol, neurec's ``evaluate_sampled``) after every epoch, and report the
best HR@10, the training samples (positives + negatives) and seconds needed to reach it, and the
samples needed to reach the baseline recipe's best HR@10 minus 0.005 (its plateau). Seeds fixed
(one seed: one run on ml-100k moves HR@10 by about 0.015, so differences smaller than that are
noise).

Recipes:
    base        Adam 1e-3, batch 256, 4 negatives (the NCF paper's; the zoo's documented default)
    big_batch   Adam 4e-3, batch 1024 (4x batch, linearly scaled rate)
    decay       Adam 2e-3 decayed by 0.8 per epoch (LearningRateScheduler)
    adagrad     Adagrad 0.05, batch 256 (row-wise adaptive, no momentum)
    neg2        Adam 1e-3, batch 256, 2 negatives
    neg8_lr2    Adam 2e-3, batch 256, 8 negatives

Run: ``nice -n 5 python benchmarks/bench_sgd_recipes.py`` (~3 min on ml-100k).
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import neurec  # noqa: E402
from ncf_data import load_dataset  # noqa: E402
from neurec.callbacks import LambdaCallback, LearningRateScheduler  # noqa: E402
from neurec.data import NegativeSampler  # noqa: E402
from neurec.evaluation import evaluate_sampled  # noqa: E402
from neurec.models import MF, NeuMF  # noqa: E402
from neurec.optimizers import Adagrad, Adam  # noqa: E402

RECIPES = {
    "base": dict(opt=lambda: Adam(1e-3), batch=256, neg=4),
    "big_batch": dict(opt=lambda: Adam(4e-3), batch=1024, neg=4),
    "decay": dict(opt=lambda: Adam(2e-3), batch=256, neg=4, decay=0.8),
    "adagrad": dict(opt=lambda: Adagrad(0.05), batch=256, neg=4),
    "neg2": dict(opt=lambda: Adam(1e-3), batch=256, neg=2),
    "neg8_lr2": dict(opt=lambda: Adam(2e-3), batch=256, neg=8),
}
MODELS = {
    "mf": lambda ds: MF(ds.n_users, ds.n_items, factors=64),
    "neumf": lambda ds: NeuMF(ds.n_users, ds.n_items, factors=8),
}


def run(ds, m, model_name, recipe, epochs, seed=0):
    r = RECIPES[recipe]
    neurec.utils.set_random_seed(seed)
    model = MODELS[model_name](ds)
    model.compile(optimizer=r["opt"](), loss="binary_crossentropy")
    sampler = NegativeSampler(m, num_negatives=r["neg"])
    per_epoch = m.nnz * (1 + r["neg"])
    points = []
    clock = {"t0": time.perf_counter(), "eval": 0.0}

    def on_end(epoch, logs):
        t = time.perf_counter()
        res = evaluate_sampled(model, ds.test_users, ds.test_items, ds.test_negatives)
        points.append(
            (
                epoch + 1,
                (epoch + 1) * per_epoch,
                t - clock["t0"] - clock["eval"],
                float(res["hr@10"]),
                float(res["ndcg@10"]),
            )
        )
        clock["eval"] += time.perf_counter() - t

    cbs = [LambdaCallback(on_epoch_end=on_end)]
    if "decay" in r:
        lr0 = model.optimizer.learning_rate
        cbs.insert(0, LearningRateScheduler(lambda e, lr: lr0 * r["decay"] ** e))
    clock["t0"] = time.perf_counter()
    model.fit(sampler, epochs=epochs, batch_size=r["batch"], verbose=0, callbacks=cbs, seed=seed)
    best = max(points, key=lambda p: (p[3], -p[1]))
    return {
        "best_hr": best[3],
        "best_ndcg": best[4],
        "best_epoch": best[0],
        "samples_to_best": best[1],
        "seconds_to_best": best[2],
        "curve": points,
    }


def main() -> int:
    ap = common.bench_parser(__doc__, dataset="ml-100k", epochs=20, threads=2)
    ap.add_argument("--models", default="mf,neumf")
    ap.add_argument("--recipes", default=",".join(RECIPES))
    args = ap.parse_args()
    bench = common.Run(args.threads)
    ds = load_dataset(args.dataset)
    m = ds.train_matrix()
    out = {}
    for mn in args.models.split(","):
        out[mn] = {}
        for rc in args.recipes.split(","):
            res = run(ds, m, mn, rc, args.epochs)
            out[mn][rc] = res
            print(
                f"{mn} {rc}: best HR {res['best_hr']:.4f} / {res['best_ndcg']:.4f} at epoch "
                f"{res['best_epoch']} ({res['samples_to_best'] / 1e6:.1f}M samples, "
                f"{res['seconds_to_best']:.1f}s)",
                flush=True,
            )
        plateau = out[mn]["base"]["best_hr"] - 0.005 if "base" in out[mn] else None
        for res in out[mn].values():
            hit = [p for p in res["curve"] if plateau is not None and p[3] >= plateau]
            res["samples_to_base_plateau"] = hit[0][1] if hit else None
            res["seconds_to_base_plateau"] = hit[0][2] if hit else None

    def md(rec):
        lines = [
            *common.md_head(
                f"# SGD/Adam recipes: samples to best HR@10 ({rec['config']['dataset']})",
                rec["machine"],
            ),
            f"{rec['config']['epochs']} epochs, seed 0, {rec['config']['threads']} threads; "
            "samples = positives + negatives; 'to base plateau' = first epoch at or above the "
            "base recipe's best HR@10 - 0.005.",
            "",
        ]
        for mn, rs in rec["results"].items():
            rows = [
                [
                    rc,
                    f"{r['best_hr']:.4f}",
                    f"{r['best_ndcg']:.4f}",
                    r["best_epoch"],
                    f"{r['samples_to_best'] / 1e6:.1f}M",
                    f"{r['seconds_to_best']:.1f}",
                    "—"
                    if r["samples_to_base_plateau"] is None
                    else f"{r['samples_to_base_plateau'] / 1e6:.1f}M",
                    "—"
                    if r["seconds_to_base_plateau"] is None
                    else f"{r['seconds_to_base_plateau']:.1f}",
                ]
                for rc, r in rs.items()
            ]
            lines += [
                f"## {mn}",
                "",
                common.md_table(
                    [
                        "recipe",
                        "best HR@10",
                        "best NDCG@10",
                        "best epoch",
                        "samples to best",
                        "s to best",
                        "samples to base plateau",
                        "s to base plateau",
                    ],
                    rows,
                ),
                "",
            ]
        return "\n".join(lines)

    name = f"sgd_recipes_{args.dataset}"
    return bench.finish("sgd_recipes", name, vars(args), {"results": out}, md)


if __name__ == "__main__":
    sys.exit(main())
