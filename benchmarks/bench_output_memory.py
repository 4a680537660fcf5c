"""Peak memory of ``recommend(users, output=...)`` (CSV and Parquet) beyond the model.

Usage (from the repository root; Linux, as it reads ``/proc/self/status``):
    nice -n 5 python benchmarks/bench_output_memory.py            # MF and NeuMF, 1M x 100K
    python benchmarks/bench_output_memory.py --quick               # 100K users x 10K items

Each case runs in a fresh process: the model is built (weights drawn at random: the scores'
values do not change the memory), one warm-up call writes 64 users, the kernel's peak mark
is reset (``5 > /proc/self/clear_refs``) and ``recommend(arange(n), k=10, output=...)``
runs; reported are the model's bytes, the resident set before the call and the growth of
the peak over it. Two user counts per model show whether the peak grows with the number of
users (it should not: users are scored and written ``_dp_output.BLOCK_USERS`` at a time).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import common

K = 10


def child(kind: str, n_users: int, n_items: int, n_rec: int, fmt: str) -> None:
    """One measurement (run in its own process); prints a JSON line."""
    import numpy as np

    from neurec.models import MF, NeuMF

    if kind == "mf":
        model = MF(n_users, n_items, factors=32)
    else:
        model = NeuMF(n_users, n_items, factors=8, layers=(64, 32, 16, 8))
    rng = np.random.default_rng(0)
    for w in model.weights:
        w[...] = rng.standard_normal(w.shape, dtype=np.float32) * 0.1
    model_mb = sum(w.nbytes for w in model.weights) / 2**20
    with tempfile.TemporaryDirectory() as tmp:
        model.recommend(np.arange(64), k=K, output=os.path.join(tmp, "warm." + fmt), verbose=0)
        path = os.path.join(tmp, "recs." + fmt)
        users = np.arange(n_rec)  # the input is the caller's (8 bytes a user), not measured
        t0 = time.perf_counter()
        out, mem = common.measure_peak(lambda: model.recommend(
            users, k=K, output=path, verbose=0))
        secs = time.perf_counter() - t0
        size = os.path.getsize(path) / 2**20
    print(json.dumps({"kind": kind, "n_users": n_users, "n_items": n_items, "users": n_rec,
                      "format": fmt, "rows": out["rows"], "seconds": secs, "file_mb": size,
                      "model_mb": model_mb, **mem}))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="100K users x 10K items")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--child", nargs=5, metavar=("KIND", "USERS", "ITEMS", "N", "FMT"),
                   help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        kind, nu, ni, n, fmt = args.child
        child(kind, int(nu), int(ni), int(n), fmt)
        return 0
    info = common.machine_info()
    common.print_machine(info)
    nu, ni = (100_000, 10_000) if args.quick else (1_000_000, 100_000)
    cases = [("mf", nu, ni, n, fmt) for fmt in ("csv", "parquet")
             for n in (nu // 10, nu)]
    cases += [("neumf", nu, ni, n, "csv") for n in (16_384, 65_536)]
    env = {**os.environ, "NEUREC_NUM_THREADS": str(args.threads)}
    rows = []
    for case in cases:
        done = subprocess.run([sys.executable, os.path.abspath(__file__), "--child",
                               *map(str, case)], capture_output=True, text=True, env=env)
        if done.returncode:
            print(f"{case}: failed\n{done.stderr[-2000:]}", flush=True)
            continue
        r = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append(r)
        print(f"{r['kind']} {r['n_users']:,} x {r['n_items']:,}, {r['users']:,} users -> "
              f"{r['format']}: {r['seconds']:.1f} s, model {r['model_mb']:.0f} MiB, RSS before "
              f"{r['rss_before_mb']:.0f} MiB, peak growth {r['peak_growth_mb']:.1f} MiB "
              f"(exact: {r['exact']})", flush=True)
    lines = [f"Threads {args.threads}; load average at the end {common.loadavg()}; one run "
             "per case, each in a fresh process.", "",
             "| model | users scored | format | rows | seconds | file MiB | model MiB | "
             "RSS before MiB | peak growth MiB |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        name = f"{'MF 32' if r['kind'] == 'mf' else 'NeuMF 8, (64,32,16,8)'} " \
               f"{r['n_users']:,} x {r['n_items']:,}"
        lines.append(f"| {name} | {r['users']:,} | {r['format']} | {r['rows']:,} | "
                     f"{r['seconds']:.1f} | {r['file_mb']:.0f} | {r['model_mb']:.0f} | "
                     f"{r['rss_before_mb']:.0f} | {r['peak_growth_mb']:.1f} |")
    common.publish_markdown("output_memory_quick" if args.quick else "output_memory",
                            "# recommend(output=): peak memory beyond the model\n\n"
                            + common.machine_md(info) + "\n\n", lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
