"""PyTorch eager baseline for neurec: train an NCF model, evaluate every epoch, write JSON.

Usage (from the repository root):
    nice -n 10 python benchmarks/bench_torch_baseline.py --dataset ml-100k --model neumf \
        --epochs 20 --threads 1 --seed 0

Protocol (PROTOCOL.md): every epoch draws ``--num-neg`` fresh negatives per training positive
(vectorised NumPy rejection sampling against the training set), shuffles, trains with BCE in
mini-batches of ``--batch-size``; then the sampled protocol ranks each test item among its 99
fixed negatives (HR@10, NDCG@10, ties in favour of the test item).

Throughput: ``samples`` = positives + negatives seen in an epoch. ``train_samples_per_s``
counts only the mini-batch loop; ``total_samples_per_s`` also counts negative sampling,
shuffling, tensor conversion and evaluation of that epoch.

The JSON (default ``benchmarks/results/torch_<dataset>_<model>_t<threads>_e<epochs>_s<seed>
[_<tag>].json``) holds the config, the environment, per-epoch metrics and a summary.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import ncf_data  # noqa: E402

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _loadavg() -> list[float] | None:
    try:
        with open("/proc/loadavg") as f:
            return [float(x) for x in f.read().split()[:3]]
    except OSError:
        return None


def _peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _parse_layers(text: str) -> tuple[int, ...]:
    try:
        layers = tuple(int(x) for x in text.strip("[]() ").split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--layers must be comma-separated integers such as 64,32,16,8; got {text!r}"
        ) from None
    if not layers:
        raise argparse.ArgumentTypeError("--layers must list at least one width, e.g. 64,32,16,8")
    return layers


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parses the command line (see module docstring)."""
    p = argparse.ArgumentParser(description="PyTorch NCF baseline (neurec benchmarks)")
    p.add_argument("--dataset", default="ml-100k",
                   help="ml-100k | ml-1m | sports | beauty, or a path prefix of NCF files")
    p.add_argument("--data-dir", default=None, help="folder of the split folders "
                   "(default $NEUREC_DATA or /work/shared/data)")
    p.add_argument("--model", default="neumf", choices=["gmf", "mlp", "neumf", "mf"])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true",
                   help="smoke run: <= 2 epochs, <= 50k samples per epoch, 300 test users")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--num-neg", type=int, default=4)
    p.add_argument("--lr", type=float, default=0.001)
    p.add_argument("--optimizer", default="adam", choices=["adam", "sparse_adam", "sgd", "adagrad"],
                   help="adam: dense torch.optim.Adam over all parameters (Keras-like, default); "
                        "sparse_adam: sparse embedding grads + SparseAdam, Adam for dense layers")
    p.add_argument("--factors", type=int, default=None,
                   help="GMF/NeuMF factor (default 8) or MF factor (default 32)")
    p.add_argument("--layers", type=_parse_layers, default=(64, 32, 16, 8))
    p.add_argument("--init-std", type=float, default=0.01)
    p.add_argument("--final-init", default="glorot_uniform",
                   choices=["glorot_uniform", "lecun_uniform"])
    p.add_argument("--l2", type=float, default=0.0,
                   help="L2 on the rows a batch touches: loss += l2 * mean(||rows||^2)")
    p.add_argument("--weight-decay", type=float, default=0.0,
                   help="optimizer weight_decay (dense: decays every parameter every step)")
    p.add_argument("--full-eval", action="store_true",
                   help="also run the full-ranking protocol after the last epoch")
    p.add_argument("--out", default=None, help="JSON output path")
    p.add_argument("--tag", default="", help="suffix for the default output name")
    p.add_argument("--no-save", action="store_true", help="do not write JSON")
    args = p.parse_args(argv)
    for name in ("epochs", "threads", "batch_size"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.num_neg < 0:
        p.error(f"--num-neg must be >= 0, got {args.num_neg}")
    return args


def _make_optimizer(model: Any, args: argparse.Namespace) -> list[Any]:
    import torch

    if args.optimizer == "sparse_adam":
        sparse = [p for m in model.modules() if isinstance(m, torch.nn.Embedding)
                  for p in m.parameters()]
        ids = {id(p) for p in sparse}
        dense = [p for p in model.parameters() if id(p) not in ids]
        opts = [torch.optim.SparseAdam(sparse, lr=args.lr, eps=1e-8)]
        if dense:
            opts.append(torch.optim.Adam(dense, lr=args.lr, eps=1e-8,
                                         weight_decay=args.weight_decay))
        return opts
    params = model.parameters()
    if args.optimizer == "adam":
        # Keras 1 Adam defaults: beta 0.9 / 0.999, epsilon 1e-8.
        return [torch.optim.Adam(params, lr=args.lr, eps=1e-8, weight_decay=args.weight_decay)]
    if args.optimizer == "adagrad":
        return [torch.optim.Adagrad(params, lr=args.lr, weight_decay=args.weight_decay)]
    return [torch.optim.SGD(params, lr=args.lr, weight_decay=args.weight_decay)]


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Trains and evaluates one configuration; returns the result record."""
    import torch
    import torch.nn.functional as F

    import torch_ncf

    t_wall = time.perf_counter()
    load_before = _loadavg()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    t0 = time.perf_counter()
    data = ncf_data.load_dataset(args.dataset, args.data_dir)
    load_s = time.perf_counter() - t0

    epochs = min(args.epochs, 2) if args.quick else args.epochs
    max_samples = 50_000 if args.quick else None
    eval_rows = 300 if args.quick else None

    model = torch_ncf.build_model(
        args.model, data.num_users, data.num_items, factors=args.factors, layers=args.layers,
        init_std=args.init_std, final_init=args.final_init,
        sparse=args.optimizer == "sparse_adam",
    )
    opts = _make_optimizer(model, args)
    use_l2 = args.l2 > 0.0
    if use_l2 and not hasattr(model, "l2_rows"):
        raise ValueError("--l2 is implemented for --model mf only; use --weight-decay for others.")

    @torch.inference_mode()
    def score(users: np.ndarray, items: np.ndarray) -> np.ndarray:
        model.eval()
        out = np.empty(users.size, dtype=np.float32)
        step = 1 << 16
        for s in range(0, users.size, step):
            u = torch.from_numpy(users[s:s + step])
            i = torch.from_numpy(items[s:s + step])
            out[s:s + step] = model(u, i).numpy()
        return out

    t0 = time.perf_counter()
    hr0, ndcg0 = ncf_data.evaluate_sampled(score, data, max_rows=eval_rows)
    init_eval_s = time.perf_counter() - t0
    print(f"[torch {args.model} {args.dataset}] users={data.num_users} items={data.num_items} "
          f"train={data.num_train} test={data.test_users.size} threads={args.threads} | "
          f"init HR@10={hr0:.4f} NDCG@10={ndcg0:.4f}", flush=True)

    history = []
    bs = args.batch_size
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        users, items, labels = ncf_data.make_epoch(data, args.num_neg, rng)
        if max_samples is not None:
            users, items, labels = users[:max_samples], items[:max_samples], labels[:max_samples]
        u_t, i_t, y_t = torch.from_numpy(users), torch.from_numpy(items), torch.from_numpy(labels)
        sample_s = time.perf_counter() - t0

        model.train()
        n = users.size
        loss_sum = torch.zeros((), dtype=torch.float64)
        t0 = time.perf_counter()
        for s in range(0, n, bs):
            u, i, y = u_t[s:s + bs], i_t[s:s + bs], y_t[s:s + bs]
            logits = model(u, i)
            loss = F.binary_cross_entropy_with_logits(logits, y)
            if use_l2:
                loss = loss + args.l2 * model.l2_rows(u, i).mean()
            for opt in opts:
                opt.zero_grad(set_to_none=True)
            loss.backward()
            for opt in opts:
                opt.step()
            loss_sum += loss.detach() * y.shape[0]
        train_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        hr, ndcg = ncf_data.evaluate_sampled(score, data, max_rows=eval_rows)
        eval_s = time.perf_counter() - t0
        rec = {
            "epoch": epoch,
            "loss": float(loss_sum) / n,
            "hr10": hr,
            "ndcg10": ndcg,
            "samples": int(n),
            "sample_s": sample_s,
            "train_s": train_s,
            "eval_s": eval_s,
            "train_samples_per_s": n / train_s,
            "total_samples_per_s": n / (sample_s + train_s + eval_s),
        }
        history.append(rec)
        print(f"epoch {epoch:3d} loss={rec['loss']:.4f} HR@10={hr:.4f} NDCG@10={ndcg:.4f} | "
              f"train {train_s:.2f}s ({rec['train_samples_per_s']:,.0f} samples/s) "
              f"sample {sample_s:.2f}s eval {eval_s:.2f}s", flush=True)

    full = None
    if args.full_eval:
        t0 = time.perf_counter()
        fhr, fndcg = ncf_data.evaluate_full(score, data)
        full = {"hr10": fhr, "ndcg10": fndcg, "seconds": time.perf_counter() - t0}
        print(f"full-ranking HR@10={fhr:.4f} NDCG@10={fndcg:.4f} ({full['seconds']:.1f}s)")

    wall_s = time.perf_counter() - t_wall
    best = max(history, key=lambda r: r["hr10"])
    tot_samples = sum(r["samples"] for r in history)
    tot_train = sum(r["train_s"] for r in history)
    tot_all = sum(r["sample_s"] + r["train_s"] + r["eval_s"] for r in history)
    summary = {
        "final_hr10": history[-1]["hr10"],
        "final_ndcg10": history[-1]["ndcg10"],
        "best_epoch": best["epoch"],
        "best_hr10": best["hr10"],
        "best_ndcg10": best["ndcg10"],
        "train_samples_per_s": tot_samples / tot_train,
        "median_epoch_train_samples_per_s": float(
            np.median([r["train_samples_per_s"] for r in history])),
        "total_samples_per_s": tot_samples / tot_all,
        "wall_s": wall_s,
        "peak_rss_mb": _peak_rss_mb(),
        "full_ranking": full,
    }
    print(f"best epoch {best['epoch']}: HR@10={best['hr10']:.4f} NDCG@10={best['ndcg10']:.4f} | "
          f"train {summary['train_samples_per_s']:,.0f} samples/s, incl. sampling+eval "
          f"{summary['total_samples_per_s']:,.0f} samples/s | wall {wall_s:.1f}s | "
          f"peak RSS {summary['peak_rss_mb']:.0f} MB", flush=True)

    config = {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(args).items()}
    config.update(effective_epochs=epochs, max_samples_per_epoch=max_samples,
                  eval_rows=eval_rows, loss="BCEWithLogits (sigmoid + BCE)",
                  adam="torch.optim.Adam betas (0.9, 0.999) eps 1e-8, dense over all rows",
                  dense_init="hidden glorot_uniform, zero bias; prediction " + args.final_init,
                  embedding_init=f"normal(0, {args.init_std})",
                  tie_rule="rank = number of candidates with strictly higher score")
    return {
        "framework": "pytorch-eager",
        "config": config,
        "environment": {
            "torch_version": torch.__version__,
            "numpy_version": np.__version__,
            "python": platform.python_version(),
            "torch_threads": torch.get_num_threads(),
            "torch_interop_threads": torch.get_num_interop_threads(),
            "cpu_model": _cpu_model(),
            "cpu_count": os.cpu_count(),
            "loadavg_before": load_before,
            "loadavg_after": _loadavg(),
        },
        "data": {
            "num_users": data.num_users, "num_items": data.num_items,
            "num_train": data.num_train, "num_test": int(data.test_users.size),
            "num_test_negatives": int(data.test_negatives.shape[1]), "load_s": load_s,
        },
        "init_eval": {"hr10": hr0, "ndcg10": ndcg0, "seconds": init_eval_s},
        "epochs": history,
        "summary": summary,
    }


def _default_out(args: argparse.Namespace) -> str:
    ds = os.path.basename(args.dataset) if args.dataset not in ncf_data.DATASETS else args.dataset
    name = f"torch_{ds}_{args.model}_t{args.threads}_e{args.epochs}_s{args.seed}"
    if args.quick:
        name += "_quick"
    if args.tag:
        name += f"_{args.tag}"
    return os.path.join(RESULTS_DIR, name + ".json")


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the process exit code."""
    args = parse_args(argv)
    result = run(args)
    if not args.no_save:
        out = args.out or _default_out(args)
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        tmp = out + ".tmp"
        with open(tmp, "w") as f:
            json.dump(result, f, indent=1)
        os.replace(tmp, out)
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
