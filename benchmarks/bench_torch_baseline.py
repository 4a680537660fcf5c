"""PyTorch eager baseline for neurec: train an NCF model, evaluate every epoch, write JSON.

Usage (from the repository root):
    nice -n 10 python benchmarks/bench_torch_baseline.py --dataset ml-100k --model neumf \
        --epochs 20 --threads 1 --seed 0

Protocol (docs/PROTOCOL.md): every epoch draws ``--num-neg`` fresh negatives per training positive
(vectorised NumPy rejection sampling against the training set), shuffles, trains with BCE in
mini-batches of ``--batch-size``; then the sampled protocol ranks each test item among its 99
fixed negatives (HR@10, NDCG@10, ties in favour of the test item).

Throughput: ``samples`` = positives + negatives seen in an epoch. ``train_samples_per_s``
counts only the mini-batch loop; ``total_samples_per_s`` also counts negative sampling,
shuffling, tensor conversion and evaluation of that epoch. ``train_cpu_s`` is the process CPU
time of the loop (all threads): on a shared machine, ``train_cpu_s / (threads * train_s)`` well
below 1 means the run was starved by other processes. ``loadavg_before/after`` are recorded too.

The JSON (default ``benchmarks/results/runs/torch_<dataset>_<model>_t<threads>_e<epochs>_s<seed>
[_quick][_<tag>].json``, a per-run log git ignores; ``results/baselines.md`` summarises the runs)
holds the config, the environment, per-epoch metrics and a summary.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402
import ncf_data  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parses the command line (see module docstring and ``--help``)."""
    return common.parse_args(
        "PyTorch NCF baseline (neurec benchmarks)", ["adam", "sparse_adam", "sgd", "adagrad"], argv
    )


def _make_optimizer(model: Any, args: argparse.Namespace) -> list[Any]:
    import torch

    if args.optimizer == "sparse_adam":
        sparse = [
            p for m in model.modules() if isinstance(m, torch.nn.Embedding) for p in m.parameters()
        ]
        ids = {id(p) for p in sparse}
        dense = [p for p in model.parameters() if id(p) not in ids]
        opts = [torch.optim.SparseAdam(sparse, lr=args.lr, eps=1e-8)]
        if dense:
            opts.append(
                torch.optim.Adam(dense, lr=args.lr, eps=1e-8, weight_decay=args.weight_decay)
            )
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

    run_start = time.perf_counter(), common.loadavg()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    t0 = time.perf_counter()
    data = ncf_data.load_dataset(args.dataset, args.data_dir)
    load_s = time.perf_counter() - t0

    model = torch_ncf.build_model(
        args.model,
        data.n_users,
        data.n_items,
        factors=args.factors,
        layers=args.layers,
        init_std=args.init_std,
        final_init=args.final_init,
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
            u = torch.from_numpy(users[s : s + step])
            i = torch.from_numpy(items[s : s + step])
            out[s : s + step] = model(u, i).numpy()
        return out

    def prepare(users: np.ndarray, items: np.ndarray, labels: np.ndarray) -> Any:
        return torch.from_numpy(users), torch.from_numpy(items), torch.from_numpy(labels)

    def fit_epoch(batch: Any) -> float:
        u_t, i_t, y_t = batch
        model.train()
        n, bs = u_t.shape[0], args.batch_size
        loss_sum = torch.zeros((), dtype=torch.float64)
        for s in range(0, n, bs):
            u, i, y = u_t[s : s + bs], i_t[s : s + bs], y_t[s : s + bs]
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
        return float(loss_sum) / n

    detail = (
        "torch.optim.Adam betas (0.9, 0.999) eps 1e-8, dense: updates every row of every "
        "table each step"
        if args.optimizer == "adam"
        else args.optimizer
    )
    return common.run_protocol("pytorch-eager", "torch", args, run_start, data, load_s, score,
                               prepare, fit_epoch, loss="BCEWithLogits (sigmoid + BCE)",
                               optimizer_detail=detail)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the process exit code."""
    args = parse_args(argv)
    return common.save_result(run(args), args, "torch", ncf_data.DATASETS)


if __name__ == "__main__":
    sys.exit(main())
