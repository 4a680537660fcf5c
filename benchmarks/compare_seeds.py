"""Ranking quality of neurec vs PyTorch over several seeds (ml-100k, NCF protocol).

A single seed on ml-100k (943 test users) has a standard error of about 0.015 in
HR@10, as large as the differences being judged, so this script compares means
over seeds at the same epoch count. PyTorch runs come from
``bench_torch_baseline.py`` (its JSON results in ``results/runs/`` are reused when present).

    python benchmarks/compare_seeds.py --models neumf gmf --seeds 0 1 2 --epochs 20
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import common  # noqa: E402  (benchmarks/common.py, beside this script)


def run_neurec(model_name, seed, epochs, prefix, threads):
    import neurec
    from neurec.data import NegativeSampler, read_ncf
    from neurec.evaluation import evaluate_sampled
    from neurec.models import GMF, MLP, NeuMF

    neurec.set_num_threads(threads)
    ds = read_ncf(prefix)
    neurec.utils.set_random_seed(seed)
    model = {"neumf": NeuMF, "gmf": GMF, "mlp": MLP}[model_name](ds.n_users, ds.n_items)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    sampler = NegativeSampler(ds.train_matrix, num_negatives=4, seed=seed)
    per_epoch = []
    for ep in range(epochs):
        model.fit(sampler, epochs=ep + 1, initial_epoch=ep, batch_size=256, verbose=0, seed=seed)
        r = evaluate_sampled(model, ds.test_users, ds.test_items, ds.test_negatives, k=10)
        per_epoch.append((r["hr@10"], r["ndcg@10"]))
    return per_epoch


def run_torch(model_name, seed, epochs):
    path = os.path.join(common.RUNS_DIR, f"torch_ml-100k_{model_name}_t1_e{epochs}_s{seed}.json")
    if not os.path.exists(path):
        subprocess.run(
            [
                sys.executable,
                os.path.join(HERE, "bench_torch_baseline.py"),
                "--dataset",
                "ml-100k",
                "--model",
                model_name,
                "--epochs",
                str(epochs),
                "--seed",
                str(seed),
                "--threads",
                "1",
                "--out",
                path,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    with open(path) as f:
        d = json.load(f)
    return [(e["hr10"], e["ndcg10"]) for e in d["epochs"] if e["epoch"] >= 1]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["neumf", "gmf"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--prefix", default="/work/shared/data/ml-100k-ncf/ml-100k")
    args = p.parse_args()
    rows = []
    for m in args.models:
        res = {"neurec": [], "torch": []}
        for s in args.seeds:
            t = time.time()
            res["neurec"].append(run_neurec(m, s, args.epochs, args.prefix, args.threads))
            res["torch"].append(run_torch(m, s, args.epochs))
            print(
                f"{m} seed {s}: neurec HR@10 {res['neurec'][-1][-1][0]:.4f}, torch "
                f"{res['torch'][-1][-1][0]:.4f} ({time.time() - t:.0f}s)",
                flush=True,
            )
        for fw in ("neurec", "torch"):
            a = np.array(res[fw])  # seeds x epochs x 2
            last = a[:, -1, :]
            best = a.max(axis=1)
            rows.append((m, fw, last.mean(0), last.std(0), best.mean(0)))
    out = [
        f"| model | framework | HR@10 (epoch {args.epochs}, mean ± sd) | NDCG@10 "
        "| best-epoch HR@10 / NDCG@10 (mean) |",
        "|---|---|---|---|---|",
    ]
    for m, fw, mean, sd, best in rows:
        out.append(
            f"| {m} | {fw} | {mean[0]:.4f} ± {sd[0]:.4f} | {mean[1]:.4f} ± {sd[1]:.4f} | "
            f"{best[0]:.4f} / {best[1]:.4f} |"
        )
    common.publish_markdown(
        "compare_seeds_ml-100k",
        f"# neurec vs PyTorch over seeds {args.seeds} (ml-100k, {args.epochs} epochs)\n\n", out)


if __name__ == "__main__":
    main()
