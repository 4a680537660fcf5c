"""Training cost vs table size: neurec (sparse Adam) vs PyTorch (dense and sparse Adam), NeuMF.

Usage (from the repository root; long runs under ``nice``):
    nice -n 5 python benchmarks/bench_scale.py                  # 10K, 100K, 1M, 10M rows per table
    python benchmarks/bench_scale.py --quick                    # smoke run (< 60 s)

Synthetic data: ``--positives`` (default 200,000) unique (user, item) pairs drawn uniformly from
tables of N users and N items, 4 negatives per positive, so every epoch has the same
1,000,000 samples whatever N is. NeuMF (factor 8, tower [64, 32, 16, 8]), batch 256, Adam lr 1e-3.

Contenders, per size, in one child process (so that peak RSS is per size), alternating
repetitions: neurec ``fit`` on a pre-sampled epoch (default sparse row-wise Adam), neurec with
its in-C sampler, torch with dense ``torch.optim.Adam`` (what the NCF Keras code does: every
row of every table is updated every step) and torch with sparse embedding gradients +
``torch.optim.SparseAdam``. A torch epoch stops after ``--cap`` seconds (default 120) and reports
the throughput of the batches it ran ("partial"); once a torch variant hits the cap, larger
sizes skip it. A contender whose tables (+ optimizer state) would not fit the memory budget
beside the others runs in a separate child process, or is skipped if it cannot fit alone.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np

import common
import ncf_data

SIZES = (10_000, 100_000, 1_000_000, 10_000_000)
FACTORS, LAYERS, BATCH, LR, NUM_NEG = 8, (64, 32, 16, 8), 256, 1e-3, 4
WIDTH = FACTORS + LAYERS[0] // 2  # floats per user (and per item) row over both branches
CONTENDERS = ("neurec", "torch_dense", "torch_sparse")


def table_bytes(n: int, contender: str) -> int:
    """Estimated bytes of embedding tables + gradients + optimizer state for N users and N items.

    Args:
        n: rows per table.
        contender: ``"neurec"`` (params, Adam m and v, per-row step counts), ``"torch_dense"``
            (params, dense grads, m, v) or ``"torch_sparse"`` (params, m, v).

    Returns:
        Bytes (dense-layer weights ignored).
    """
    params = 2 * n * WIDTH * 4
    if contender == "neurec":
        return 3 * params + 4 * n * 8
    if contender == "torch_dense":
        return 4 * params
    if contender == "torch_sparse":
        return 3 * params
    raise ValueError(f"contender must be one of {CONTENDERS}, got {contender!r}.")


def synthetic(n: int, positives: int, seed: int) -> ncf_data.NCFData:
    """``positives`` unique uniform (user, item) pairs over N x N, as an ``NCFData`` (no tests)."""
    rng = np.random.default_rng(seed)
    keys = np.unique(
        rng.integers(0, n, positives, dtype=np.int64) * n
        + rng.integers(0, n, positives, dtype=np.int64)
    )
    while keys.size < positives:  # top up the few duplicates
        extra = rng.integers(0, n, positives - keys.size, dtype=np.int64) * n + rng.integers(
            0, n, positives - keys.size, dtype=np.int64
        )
        keys = np.unique(np.concatenate([keys, extra]))
    users, items = keys // n, keys % n
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(users, minlength=n), out=indptr[1:])
    empty = np.zeros(0, np.int64)
    return ncf_data.NCFData(
        n_users=n,
        n_items=n,
        train_users=users,
        train_items=items,
        train_keys=keys,
        indptr=indptr,
        test_users=empty,
        test_items=empty,
        test_negatives=np.zeros((0, 99), np.int64),
    )


def _torch_epoch_capped(
    model: Any, opts: list, u: np.ndarray, i: np.ndarray, y: np.ndarray, cap: float
) -> tuple[int, float]:
    """The torch mini-batch loop, stopped after ``cap`` seconds; returns (samples, seconds)."""
    import torch
    import torch.nn.functional as F

    model.train()
    u_t, i_t, y_t = torch.from_numpy(u), torch.from_numpy(i), torch.from_numpy(y)
    t0 = time.perf_counter()
    done = 0
    for s in range(0, u.size, BATCH):
        loss = F.binary_cross_entropy_with_logits(
            model(u_t[s : s + BATCH], i_t[s : s + BATCH]), y_t[s : s + BATCH]
        )
        for o in opts:
            o.zero_grad(set_to_none=True)
        loss.backward()
        for o in opts:
            o.step()
        done = min(u.size, s + BATCH)
        if time.perf_counter() - t0 > cap:
            break
    return done, time.perf_counter() - t0


def _build_torch(n: int, sparse: bool, seed: int) -> tuple[Any, list]:
    import torch

    import torch_ncf

    torch.manual_seed(seed)
    model = torch_ncf.build_model("neumf", n, n, factors=FACTORS, layers=LAYERS, sparse=sparse)
    if not sparse:
        return model, [torch.optim.Adam(model.parameters(), lr=LR, eps=1e-8)]
    emb = [p for m in model.modules() if isinstance(m, torch.nn.Embedding) for p in m.parameters()]
    ids = {id(p) for p in emb}
    dense = [p for p in model.parameters() if id(p) not in ids]
    return model, [
        torch.optim.SparseAdam(emb, lr=LR, eps=1e-8),
        torch.optim.Adam(dense, lr=LR, eps=1e-8),
    ]


def run_size(
    n: int, contenders: list[str], positives: int, reps: int, cap: float, threads: int, seed: int
) -> dict[str, Any]:
    """Child-process body: all requested contenders at one table size, alternating."""
    import neurec
    from neurec.data import NegativeSampler
    from neurec.models import NeuMF

    common.set_threads(threads)
    t0 = time.perf_counter()
    data = synthetic(n, positives, seed)
    u, i, y = ncf_data.make_epoch(data, NUM_NEG, np.random.default_rng(seed))
    gen_s = time.perf_counter() - t0
    samples = int(u.size)
    out: dict[str, Any] = {
        "rows_per_table": n,
        "positives": data.num_train,
        "samples": samples,
        "data_s": gen_s,
        "threads": threads,
        "results": {},
    }
    state: dict[str, Any] = {}

    def build(c: str) -> None:
        if c == "neurec":
            m = NeuMF(n, n, factors=FACTORS, layers=LAYERS)
            m.compile(
                optimizer=neurec.optimizers.Adam(LR, epsilon=1e-8), loss="binary_crossentropy"
            )
            sampler = NegativeSampler(
                (data.train_users, data.train_items),
                num_negatives=NUM_NEG,
                seed=seed,
                n_users=n,
                n_items=n,
            )
            state[c] = (m, sampler)
        else:
            state[c] = _build_torch(n, c == "torch_sparse", seed)

    def run(c: str, rep: int) -> dict[str, Any]:
        rec: dict[str, Any] = {}
        if c == "neurec":
            m, sampler = state[c]
            _, dt = common.timed(
                lambda: m.fit(
                    [u, i], y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0, seed=seed
                )
            )
            rec["arrays"] = {"samples": samples, "seconds": dt, "per_s": samples / dt}
            _, dt = common.timed(
                lambda: m.fit(
                    sampler,
                    epochs=rep + 2,
                    initial_epoch=rep + 1,
                    batch_size=BATCH,
                    verbose=0,
                    seed=seed,
                )
            )
            rec["sampler"] = {
                "samples": sampler.num_samples,
                "seconds": dt,
                "per_s": sampler.num_samples / dt,
            }
        else:
            model, opts = state[c]
            done, dt = _torch_epoch_capped(model, opts, u, i, y, cap)
            rec = {
                "samples": done,
                "seconds": dt,
                "per_s": done / dt,
                "partial": done < samples,
                "projected_epoch_s": dt * samples / max(done, 1),
            }
        return rec

    for c in contenders:
        # Build + first epoch under the peak-RSS probe (contenders are built one after another).
        def first(c: str = c) -> dict[str, Any]:
            t_b = time.perf_counter()
            build(c)
            b = time.perf_counter() - t_b
            r = run(c, 0)
            r["build_s"] = b
            return r

        r0, mem = common.measure_peak(first)
        out["results"][c] = {
            "reps": [r0],
            "memory": mem,
            "estimated_table_state_mb": table_bytes(n, c) / 2**20,
        }
        print(
            f"  [{n:>10,}] {c:12s} build {r0['build_s']:.1f}s | "
            + _fmt_rec(c, r0)
            + f" | peak RSS growth {mem['peak_growth_mb']:,.0f} MB",
            flush=True,
        )
    for rep in range(1, reps):
        for c in contenders:
            if c != "neurec" and out["results"][c]["reps"][0].get("partial"):
                continue  # capped: one partial epoch is enough
            r = run(c, rep)
            out["results"][c]["reps"].append(r)
            print(f"  [{n:>10,}] {c:12s} rep {rep} | " + _fmt_rec(c, r), flush=True)
    for c in contenders:
        res = out["results"][c]
        if c == "neurec":
            for key in ("arrays", "sampler"):
                res[key + "_per_s"] = float(np.median([r[key]["per_s"] for r in res["reps"]]))
        else:
            res["per_s"] = float(np.median([r["per_s"] for r in res["reps"]]))
            res["partial"] = bool(res["reps"][0]["partial"])
    out["process_peak_rss_mb"] = common.peak_rss_mb()
    out["machine"] = common.machine_info()
    state.clear()
    gc.collect()
    return out


def _fmt_rec(c: str, r: dict[str, Any]) -> str:
    if c == "neurec":
        return (
            f"arrays {r['arrays']['per_s']:,.0f}/s ({r['arrays']['seconds']:.1f}s) | sampler "
            f"{r['sampler']['per_s']:,.0f}/s ({r['sampler']['seconds']:.1f}s)"
        )
    tag = f" PARTIAL, projected epoch {r['projected_epoch_s']:,.0f}s" if r["partial"] else ""
    return f"{r['per_s']:,.0f}/s ({r['seconds']:.1f}s){tag}"


def _child(n: int, contenders: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """Runs ``run_size`` in a fresh ``nice``-inherited Python process and returns its record."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        path = f.name
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--child-size",
        str(n),
        "--child-contenders",
        ",".join(contenders),
        "--child-out",
        path,
        "--positives",
        str(args.positives),
        "--reps",
        str(args.reps),
        "--cap",
        str(args.cap),
        "--threads",
        str(args.threads),
        "--seed",
        str(args.seed),
    ]
    proc = subprocess.run(cmd)
    try:
        if proc.returncode != 0:
            return {
                "rows_per_table": n,
                "error": f"child exited with {proc.returncode}",
                "contenders": contenders,
            }
        with open(path) as f:
            return json.load(f)
    finally:
        os.unlink(path)


def _markdown(rec: dict[str, Any]) -> str:
    cfg = rec["config"]
    lines = [
        *common.md_head(
            "# Training cost vs table size: neurec vs PyTorch (NeuMF, synthetic)", rec["machine"]
        ),
        f"{cfg['positives']:,} positives x (1 + {NUM_NEG}) = "
        f"{cfg['positives'] * (1 + NUM_NEG):,} samples per epoch at every size; N users and "
        f"N items; batch {BATCH}, Adam lr {LR}; {cfg['threads']} thread(s); median of "
        f"{cfg['reps']} epochs (torch: epochs stop after {cfg['cap']:.0f} s — *partial* — "
        "and the throughput of the batches run is reported; larger sizes then skip that "
        "variant). Peak RSS growth = build + first epoch of that contender, measured with "
        "the kernel's peak-RSS mark reset just before; `tables+state` is the estimate of "
        "embedding tables + gradients + optimizer state.",
        "",
    ]
    rows = []
    for s in rec["sizes"]:
        n = s["rows_per_table"]
        if "error" in s:
            rows.append([n, ", ".join(s["contenders"]), s["error"], "—", "—", "—", "—"])
            continue
        base = s["results"].get("neurec", {}).get("arrays_per_s")
        for c, r in s["results"].items():
            if c == "neurec":
                rows.append(
                    [
                        n,
                        "neurec (sparse Adam), pre-sampled",
                        r["arrays_per_s"],
                        "1.00",
                        r["memory"]["peak_growth_mb"],
                        r["estimated_table_state_mb"],
                        r["reps"][0]["build_s"],
                    ]
                )
                rows.append(
                    [
                        n,
                        "neurec (sparse Adam), in-C sampler",
                        r["sampler_per_s"],
                        f"{r['sampler_per_s'] / base:.2f}" if base else "—",
                        "(same model)",
                        "—",
                        "—",
                    ]
                )
            else:
                label = {"torch_dense": "torch dense Adam", "torch_sparse": "torch SparseAdam"}[c]
                if r.get("partial"):
                    label += f" (partial, epoch ≈ {r['reps'][0]['projected_epoch_s']:,.0f} s)"
                if s.get("separate_process", {}).get(c):
                    label += " [separate process]"
                rows.append(
                    [
                        n,
                        label,
                        r["per_s"],
                        f"{r['per_s'] / base:.3f}" if base else "—",
                        r["memory"]["peak_growth_mb"],
                        r["estimated_table_state_mb"],
                        r["reps"][0]["build_s"],
                    ]
                )
        for c, why in s.get("skipped", {}).items():
            rows.append([n, f"{c}: skipped ({why})", "—", "—", "—", "—", "—"])
    lines.append(
        common.md_table(
            [
                "rows per table",
                "contender",
                "samples/s",
                "speed vs neurec",
                "peak RSS growth MB",
                "tables+state MB",
                "build s",
            ],
            rows,
        )
    )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parses the command line (see module docstring)."""
    p = common.bench_parser(
        __doc__,
        reps=2,
        threads=1,
        seed=0,
        quick="smoke run: sizes 10K and 100K, 20k positives, 1 rep, 10 s cap",
        name=None,
    )
    p.add_argument("--sizes", default=",".join(str(s) for s in SIZES))
    p.add_argument("--positives", type=int, default=200_000)
    p.add_argument("--cap", type=float, default=120.0, help="seconds per torch epoch")
    p.add_argument(
        "--mem-budget-gb",
        type=float,
        default=12.0,
        help="max estimated tables+state held by one child process",
    )
    p.add_argument("--contenders", default=",".join(CONTENDERS))
    p.add_argument("--child-size", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--child-contenders", default=None, help=argparse.SUPPRESS)
    p.add_argument("--child-out", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    try:
        args.sizes = [int(x) for x in args.sizes.split(",") if x]
    except ValueError:
        p.error(f"--sizes must be comma-separated integers; got {args.sizes!r}")
    args.contenders = [c for c in args.contenders.split(",") if c]
    if any(c not in CONTENDERS for c in args.contenders):
        p.error(f"--contenders must be among {CONTENDERS}; got {args.contenders}")
    if args.quick:
        args.sizes, args.positives, args.reps, args.cap = [10_000, 100_000], 20_000, 1, 10.0
    if min(args.sizes) < 2 or args.positives < 1 or args.reps < 1 or args.threads < 1:
        p.error("--sizes entries must be >= 2; --positives, --reps, --threads >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    args = parse_args(argv)
    if args.child_size is not None:
        rec = run_size(
            args.child_size,
            args.child_contenders.split(","),
            args.positives,
            args.reps,
            args.cap,
            args.threads,
            args.seed,
        )
        with open(args.child_out, "w") as f:
            json.dump(rec, f, default=float)
        return 0
    import torch  # noqa: F401

    import neurec  # noqa: F401

    run = common.Run()
    budget = args.mem_budget_gb * 2**30
    capped: set[str] = set()
    sizes = []
    for n in args.sizes:
        if args.positives > n * n // 2:
            print(f"size {n}: too small for {args.positives} positives; skipped")
            continue
        want = [c for c in args.contenders if c not in capped]
        skipped = {c: "hit the time cap at a smaller size" for c in args.contenders if c in capped}
        fits = [c for c in want if table_bytes(n, c) <= budget]
        skipped.update(
            {c: f"~{table_bytes(n, c) / 2**30:.1f} GB > budget" for c in want if c not in fits}
        )
        groups: list[list[str]] = []
        for c in fits:  # first-fit into child processes under the memory budget
            for g in groups:
                if sum(table_bytes(n, x) for x in g) + table_bytes(n, c) <= budget:
                    g.append(c)
                    break
            else:
                groups.append([c])
        print(f"size {n:,}: processes {groups} skipped {skipped}", flush=True)
        merged: dict[str, Any] = {
            "rows_per_table": n,
            "results": {},
            "skipped": skipped,
            "separate_process": {},
        }
        for g in groups:
            r = _child(n, g, args)
            if "error" in r:
                merged.setdefault("errors", []).append(r)
                for c in g:
                    merged["skipped"][c] = r["error"]
                continue
            for c, res in r["results"].items():
                merged["results"][c] = res
                merged["separate_process"][c] = len(groups) > 1
                if res.get("partial"):
                    capped.add(c)
            merged.update({k: v for k, v in r.items() if k not in ("results",)})
        sizes.append(merged)
    config = common.settings(
        args, "sizes", "positives", "reps", "cap", "threads", "mem_budget_gb", "quick"
    )
    return run.finish(
        "scale", common.result_name(args, "scale"), config, {"sizes": sizes}, _markdown
    )


if __name__ == "__main__":
    sys.exit(main())
