"""Helpers shared by the benchmark scripts: environment facts, summaries, atomic JSON output."""

from __future__ import annotations

import json
import os
import platform
import time
from typing import Any, Sequence

import numpy as np

# machine facts live in common.py (shared with the bench_*.py scripts)
from common import _cpuinfo, loadavg, peak_rss_mb  # noqa: E402,F401

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo (or platform.processor())."""
    return _cpuinfo().get("model name") or platform.processor() or "unknown"


def environment(load_before: list[float] | None) -> dict[str, Any]:
    """Facts about the machine and libraries (torch facts only if torch is imported)."""
    env: dict[str, Any] = {
        "numpy_version": np.__version__,
        "python": platform.python_version(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "loadavg_before": load_before,
        "loadavg_after": loadavg(),
    }
    import sys

    torch = sys.modules.get("torch")
    if torch is not None:
        env.update(torch_version=torch.__version__, torch_threads=torch.get_num_threads(),
                   torch_interop_threads=torch.get_num_interop_threads())
    keras = sys.modules.get("keras")
    if keras is not None:
        env.update(keras_version=keras.__version__, keras_backend=keras.backend.backend())
    return env


def epoch_record(epoch: int, loss: float, hr: float, ndcg: float, n: int, sample_s: float,
                 train_s: float, train_cpu_s: float, eval_s: float) -> dict[str, Any]:
    """One per-epoch entry of the result JSON."""
    return {
        "epoch": epoch,
        "loss": loss,
        "hr10": hr,
        "ndcg10": ndcg,
        "samples": int(n),
        "sample_s": sample_s,
        "train_s": train_s,
        "train_cpu_s": train_cpu_s,
        "eval_s": eval_s,
        "train_samples_per_s": n / train_s,
        "total_samples_per_s": n / (sample_s + train_s + eval_s),
    }


def evaluate_epoch(score: Any, data: Any, eval_rows: int | None, epoch: int, loss: float, n: int,
                   sample_s: float, train_s: float, train_cpu_s: float) -> dict[str, Any]:
    """Sampled HR@10 / NDCG@10 after an epoch, as a printed ``epoch_record``."""
    import ncf_data

    t0 = time.perf_counter()
    hr, ndcg = ncf_data.evaluate_sampled(score, data, max_rows=eval_rows)
    rec = epoch_record(epoch, loss, hr, ndcg, n, sample_s, train_s, train_cpu_s,
                       time.perf_counter() - t0)
    print_epoch(rec)
    return rec


def full_ranking(score: Any, data: Any) -> dict[str, Any]:
    """Full-ranking HR@10 / NDCG@10 (rank among all unseen items), printed."""
    import ncf_data

    t0 = time.perf_counter()
    fhr, fndcg = ncf_data.evaluate_full(score, data)
    full = {"hr10": fhr, "ndcg10": fndcg, "seconds": time.perf_counter() - t0}
    print(f"full-ranking HR@10={fhr:.4f} NDCG@10={fndcg:.4f} ({full['seconds']:.1f}s)")
    return full


def print_epoch(r: dict[str, Any]) -> None:
    """Prints one epoch entry on one line."""
    print(f"epoch {r['epoch']:3d} loss={r['loss']:.4f} HR@10={r['hr10']:.4f} "
          f"NDCG@10={r['ndcg10']:.4f} | train {r['train_s']:.2f}s "
          f"({r['train_samples_per_s']:,.0f} samples/s) cpu {r['train_cpu_s']:.2f}s "
          f"sample {r['sample_s']:.2f}s eval {r['eval_s']:.2f}s", flush=True)


def summarize(history: Sequence[dict[str, Any]], wall_s: float,
              full: dict[str, Any] | None) -> dict[str, Any]:
    """Summary block: final and best-epoch quality, throughput, wall time, peak RSS.

    ``best_*`` picks the epoch with the highest test HR@10, which is optimistic (model
    selection on the test set, as the NCF code does); ``final_*`` is the honest number.
    """
    best = max(history, key=lambda r: r["hr10"])
    n = sum(r["samples"] for r in history)
    train = sum(r["train_s"] for r in history)
    cpu = sum(r["train_cpu_s"] for r in history)
    total = sum(r["sample_s"] + r["train_s"] + r["eval_s"] for r in history)
    s = {
        "final_hr10": history[-1]["hr10"],
        "final_ndcg10": history[-1]["ndcg10"],
        "best_epoch": best["epoch"],
        "best_hr10": best["hr10"],
        "best_ndcg10": best["ndcg10"],
        "train_samples_per_s": n / train,
        "median_epoch_train_samples_per_s": float(
            np.median([r["train_samples_per_s"] for r in history])),
        "train_samples_per_cpu_s": n / cpu if cpu > 0 else None,
        "total_samples_per_s": n / total,
        "wall_s": wall_s,
        "peak_rss_mb": peak_rss_mb(),
        "full_ranking": full,
    }
    print(f"best epoch {s['best_epoch']}: HR@10={s['best_hr10']:.4f} "
          f"NDCG@10={s['best_ndcg10']:.4f} | final HR@10={s['final_hr10']:.4f} | train "
          f"{s['train_samples_per_s']:,.0f} samples/s (median epoch "
          f"{s['median_epoch_train_samples_per_s']:,.0f}), incl. sampling+eval "
          f"{s['total_samples_per_s']:,.0f} samples/s | wall {wall_s:.1f}s | peak RSS "
          f"{s['peak_rss_mb']:.0f} MB", flush=True)
    return s


def result_record(framework: str, args: Any, load_before: list[float] | None, data: Any,
                  load_s: float, init_eval: dict[str, float], history: Sequence[dict[str, Any]],
                  summary: dict[str, Any], **config: Any) -> dict[str, Any]:
    """The JSON record of one baseline run: arguments + run-specific config, environment, data
    sizes, the pre-training evaluation, per-epoch history and summary."""
    cfg = {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(args).items()}
    cfg.update(config, dense_init="hidden glorot_uniform, zero bias; prediction " + args.final_init,
               embedding_init=f"normal(0, {args.init_std})",
               tie_rule="rank = number of candidates with strictly higher score")
    return {
        "framework": framework,
        "config": cfg,
        "environment": environment(load_before),
        "data": {
            "num_users": data.num_users, "num_items": data.num_items,
            "num_train": data.num_train, "num_test": int(data.test_users.size),
            "num_test_negatives": int(data.test_negatives.shape[1]), "load_s": load_s,
        },
        "init_eval": init_eval,
        "epochs": history,
        "summary": summary,
    }


def write_json(result: dict[str, Any], path: str) -> None:
    """Writes ``result`` to ``path`` atomically (temporary file, then rename)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=1)
    os.replace(tmp, path)
    print(f"wrote {path}")


def default_out(framework: str, args: Any, datasets: Sequence[str]) -> str:
    """``results/<framework>_<dataset>_<model>_t<threads>_e<epochs>_s<seed>[_quick][_tag].json``."""
    ds = args.dataset if args.dataset in datasets else os.path.basename(args.dataset)
    name = f"{framework}_{ds}_{args.model}_t{args.threads}_e{args.epochs}_s{args.seed}"
    if args.quick:
        name += "_quick"
    if args.tag:
        name += f"_{args.tag}"
    return os.path.join(RESULTS_DIR, name + ".json")


def _parse_layers(text: str) -> tuple[int, ...]:
    import argparse

    try:
        layers = tuple(int(x) for x in text.strip("[]() ").split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--layers must be comma-separated integers such as 64,32,16,8; got {text!r}"
        ) from None
    if not layers:
        raise argparse.ArgumentTypeError("--layers must list at least one width, e.g. 64,32,16,8")
    return layers


def parse_args(description: str, optimizers: Sequence[str], argv: list[str] | None = None):
    """The command line shared by the baseline scripts (see bench_torch_baseline.py)."""
    import argparse

    p = argparse.ArgumentParser(description=description)
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
    p.add_argument("--optimizer", default="adam", choices=list(optimizers),
                   help="adam: dense Adam over all parameters (Keras-like, default); "
                        "sparse_adam (torch only): sparse embedding grads + SparseAdam")
    p.add_argument("--factors", type=int, default=None,
                   help="GMF/NeuMF factor (default 8) or MF factor (default 32)")
    p.add_argument("--layers", type=_parse_layers, default=(64, 32, 16, 8))
    p.add_argument("--init-std", type=float, default=0.01)
    p.add_argument("--final-init", default="glorot_uniform",
                   choices=["glorot_uniform", "lecun_uniform"])
    p.add_argument("--l2", type=float, default=0.0,
                   help="(torch, mf only) L2 on the rows a batch touches: "
                        "loss += l2 * mean over the batch of ||touched rows||^2")
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
    if args.l2 < 0 or args.weight_decay < 0:
        p.error("--l2 and --weight-decay must be >= 0")
    return args


def quick_limits(args: Any) -> tuple[int, int | None, int | None]:
    """(epochs, max samples per epoch, evaluated test rows) after applying ``--quick``."""
    if args.quick:
        return min(args.epochs, 2), 50_000, 300
    return args.epochs, None, None
