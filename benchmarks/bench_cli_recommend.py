"""`neurec recommend --all`: the wall time a user waits, from the shell, on a large catalogue.

What is timed: the command ``python -m neurec recommend --model M.neurec --all --k 10
--output recs.csv --threads T --verbose 0`` in a fresh process, start to exit: Python and
neurec imports, loading the model file (weights, id encoders, seen-matrix), scoring every
(customer, product) pair, excluding what each customer bought, and writing the CSV block by
block through one atomic write. Also timed, the same command for one customer (``--users``
with one id): the fixed cost (start-up and model load) inside that wall time. Peak memory is
the child's peak resident set (``VmHWM``, polled while it runs).

Models: MF (64 factors, the dot-product fast path: a fused multiply + top-K heap in C) and
NeuMF (factor 8, tower 64-32-16-8, the command line's default: user-only and item-only
parts precomputed, then the fused tower + top-K scorer in C), each at 1 and 2 threads
(``--threads``), alternated round by round (``common.alternate``).

Data: ``neurec.datasets.make_purchases`` with ``--users`` customers and ``--items`` products
(default 100,000 x 50,000, about 2.5M purchases); each model is trained ``--epochs`` epoch(s)
on it (weights only shape the scores, not the work) and saved with its encoders and the
seen-matrix of every purchase, as ``neurec train`` saves it.

Run: ``nice -n 5 python benchmarks/bench_cli_recommend.py`` (full size: NeuMF scores 5e9
pairs per run, several minutes each; ``--reps 1`` for one round), or small to check it
works: ``--users 5000 --items 2000 --reps 1`` (about a minute).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

MODELS = ("mf", "neumf")
FACTORS = {"mf": 64, "neumf": 8}


def build_files(args: Any, folder: str) -> dict[str, Any]:
    """The model files (one per model) and a one-customer users.csv; returns facts."""
    import neurec
    from neurec.cli._common import build_model
    from neurec.data import InteractionLog, NegativeSampler
    from neurec.datasets import make_purchases

    t = time.perf_counter()
    d = make_purchases(n_users=args.users, n_items=args.items, seed=args.seed)
    log, uenc, ienc = InteractionLog.from_arrays(d.users, d.items, timestamps=d.timestamps) \
        .to_implicit(dedupe="latest").encode()
    seen = log.to_matrix(shape=(len(uenc), len(ienc)), dedupe="max")
    facts = {"users": len(uenc), "items": len(ienc), "pairs": seen.nnz,
             "data_s": time.perf_counter() - t, "files": {}}
    print(f"data: {facts['users']:,} customers, {facts['items']:,} products, {seen.nnz:,} pairs "
          f"({facts['data_s']:.1f}s)", flush=True)
    for kind in args.models:
        neurec.utils.set_random_seed(args.seed)
        m = build_model(kind, len(uenc), len(ienc), FACTORS[kind], (64, 32, 16, 8), 0.001)
        t = time.perf_counter()
        m.fit(NegativeSampler(seen, num_negatives=4, seed=args.seed), epochs=args.epochs,
              batch_size=256, verbose=0, seed=args.seed)
        m.attach_encoders(user=uenc, item=ienc)
        m.attach_seen_matrix(seen)
        path = os.path.join(folder, f"{kind}.neurec")
        m.save(path)
        facts["files"][kind] = {"path": path, "bytes": os.path.getsize(path),
                                "train_s": time.perf_counter() - t}
        print(f"{kind}: trained {args.epochs} epoch(s) in {facts['files'][kind]['train_s']:.1f}s"
              f", file {os.path.getsize(path) / 2**20:.1f} MiB", flush=True)
    one = os.path.join(folder, "one.csv")
    with open(one, "w") as f:
        f.write(f"user_id\n{uenc.classes_[0]}\n")
    facts["one_user_csv"] = one
    return facts


def _vm_hwm_mib(pid: int) -> float | None:
    """The process's peak resident set so far (``VmHWM``), or None once it is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def run_cli(argv: list[str], cwd: str) -> tuple[float, float]:
    """``(wall seconds, peak RSS MiB)`` of ``python -m neurec ARGV`` in a fresh process.

    The peak is the child's ``VmHWM``, polled every 20 ms until it exits: ``ru_maxrss``
    would not do, since Linux carries the parent's peak (this benchmark's, with its data
    and models) across fork and exec into the child's.
    """
    with tempfile.TemporaryFile() as err:
        t = time.perf_counter()
        p = subprocess.Popen([sys.executable, "-m", "neurec", *argv], cwd=cwd,
                             stdout=subprocess.DEVNULL, stderr=err)
        peak = 0.0
        while p.poll() is None:
            hwm = _vm_hwm_mib(p.pid)
            if hwm is not None:
                peak = max(peak, hwm)
            time.sleep(0.02)
        wall = time.perf_counter() - t
        if p.returncode:
            err.seek(0)
            raise RuntimeError(f"neurec {' '.join(argv)} failed: {err.read().decode()[-500:]}")
    return wall, peak


def check_output(path: str, n_users: int, k: int) -> int:
    with open(path, encoding="utf-8") as f:
        rows = sum(1 for _ in f) - 1
    if rows != n_users * k:
        raise RuntimeError(f"{path}: {rows:,} rows, expected {n_users:,} x {k}")
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = common.bench_parser(__doc__, reps=3, seed=0, name="result name (default "
                             "cli_recommend, or cli_recommend_<users>x<items> when smaller)")
    ap.add_argument("--users", type=int, default=100_000, help="customers (default 100,000)")
    ap.add_argument("--items", type=int, default=50_000, help="products (default 50,000)")
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated: mf, neumf")
    ap.add_argument("--threads", default="1,2", help="thread counts to time (default 1,2)")
    ap.add_argument("--k", type=int, default=10, help="products per customer (default 10)")
    ap.add_argument("--epochs", type=int, default=1, help="training epochs of each model")
    args = ap.parse_args(argv)
    args.models = [m for m in args.models.split(",") if m]
    if set(args.models) - set(MODELS):
        ap.error(f"--models: choose from {MODELS}")
    threads = [int(t) for t in args.threads.split(",") if t]
    run = common.Run()
    full = (args.users, args.items) == (100_000, 50_000)
    name = args.name or ("cli_recommend" if full else f"cli_recommend_{args.users}x{args.items}")
    with tempfile.TemporaryDirectory(prefix="bench_cli_") as folder:
        facts = build_files(args, folder)
        out = os.path.join(folder, "recs.csv")
        runs, fixed, rss = {}, {}, {}
        for kind in args.models:
            for t in threads:
                key = f"{kind} {t}"
                model = facts["files"][kind]["path"]
                base = ["recommend", "--model", model, "--k", str(args.k), "--threads", str(t),
                        "--verbose", "0"]

                def go(rep, base=base, key=key):
                    wall, peak = run_cli(base + ["--all", "--output", out], folder)
                    check_output(out, facts["users"], args.k)
                    rss.setdefault(key, []).append(peak)
                    print(f"  {key} threads: {wall:.2f}s, peak {peak:.0f} MiB", flush=True)
                    return wall

                runs[key] = go
                fixed[key] = [run_cli(base + ["--users", facts["one_user_csv"], "--output", out],
                                      folder)[0] for _ in range(3)]
        times = common.alternate(runs, args.reps, warmup=False)
    rows = {}
    for key, ts in times.items():
        kind, t = key.split()
        rows[key] = {"model": kind, "threads": int(t), **common.summarize(ts, facts["users"]),
                     "fixed_s": float(np.median(fixed[key])), "peak_rss_mib": max(rss[key])}
    config = {**common.settings(args, "users", "items", "k", "epochs", "reps", "seed"),
              "models": args.models, "threads": threads}
    payload = {"data": {k: v for k, v in facts.items() if k not in ("files", "one_user_csv")},
               "files": {k: {"bytes": v["bytes"], "train_s": v["train_s"]}
                         for k, v in facts["files"].items()},
               "results": rows}
    return run.finish("cli_recommend", name, config, payload, markdown)


def markdown(rec: dict[str, Any]) -> str:
    c, d = rec["config"], rec["data"]
    lines = common.md_head(f"# `neurec recommend --all`: {d['users']:,} customers x "
                           f"{d['items']:,} products, k={c['k']}", rec["machine"])
    lines += [f"Wall time of the command in a fresh process (imports, model load, scoring, "
              f"exclusion of {d['pairs']:,} bought pairs, CSV write), median of {c['reps']} "
              "alternated round(s); 'fixed' is the same command for one customer (start-up and "
              "model load). Speeds on a shared machine are noisy.", ""]
    table = [[r["model"], r["threads"], r["median_s"], r["min_s"], r["max_s"], r["per_s"],
              r["fixed_s"], r["peak_rss_mib"]] for r in rec["results"].values()]
    lines.append(common.md_table(["model", "threads", "median s", "min s", "max s",
                                  "customers/s", "fixed s", "peak RSS MiB"], table))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
