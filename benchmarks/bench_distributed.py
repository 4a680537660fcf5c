"""Training on MPI: samples/s and HR@10 of NeuMF f8 for one process x one thread, one
process x two threads, two ranks x one thread (DataParallel; DataParallel through MPI
messages instead of a shared window; DataParallel cutting every batch in slices, without
routing samples to the owners of their rows, through messages, as before; then
ModelParallel; and DataParallel with its gradient exchange skipped, which trains nothing
useful but measures what two ranks' own work allows), and two
independent one-thread processes at once (what two cores give two processes that never
wait for each other: the bound for two ranks), plus what a step sends.

    python benchmarks/bench_distributed.py                     # ml-1m (NCF split)
    python benchmarks/bench_distributed.py --batch 1024,2048,8192   # a sweep of batches
    python benchmarks/bench_distributed.py --data planted --epochs 1   # no data files

Every configuration first trains ``--warmup`` epochs (default 1), untimed: the first
epoch pays one-time costs (first-touch page faults of the epoch's arrays, buffers
growing) that are not training throughput. The driver runs each configuration as a
fresh process (``mpiexec -n 2`` for the ranks,
from the ``mpich`` wheel beside this Python or on PATH) with ``NEUREC_NUM_THREADS`` set,
and prints one row per configuration: the median of ``--repeat`` rounds (default 3) run
one after the other, each round over every configuration, and the median and range of
its ratio to the same round's one-process run (this VM's speed drifts by 10% over
minutes; a ratio within a round does not). Two-rank runs also measure, for the model of
step time in benchmarks/README.md:

- ``compute_ms``: a step's time outside the gradient exchange (forward, backward, apply);
- ``exchange_ms`` and ``bytes_per_step``: the gradient exchange's time and payload per
  step (the reduce hook's, and under DataParallel the apply hook's: the new values of
  the rows each rank owns);
- ``alpha_us`` / ``beta_ns_per_byte``: an ``Allgather``'s fixed cost and per-byte cost
  between the two ranks (8 bytes and 4 MiB messages, best of 20).

ml-1m comes from the shared data directory through ``ncf_data.load_dataset`` (never
copied); ``--data planted`` generates a log of ml-1m's shape with planted structure.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


# -- data ------------------------------------------------------------------------------
def planted(n_users=6040, n_items=3706, per_user=160, seed=0):
    """A log of ml-1m's shape: users prefer items near their planted taste vector.
    Returns (train users, train items, test items, 99 negatives per user, n_users, n_items)."""
    rng = np.random.default_rng(seed)
    taste_u, taste_i = rng.normal(size=(n_users, 4)), rng.normal(size=(n_items, 4))
    pop = rng.zipf(1.3, n_items).clip(max=500).astype(np.float64)
    users, items = [], []
    for u0 in range(0, n_users, 500):
        block = np.arange(u0, min(u0 + 500, n_users))
        logits = taste_u[block] @ taste_i.T * 1.5 + np.log(pop)
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        for r, u in enumerate(block):
            chosen = rng.choice(n_items, size=per_user, replace=False, p=p[r])
            users.append(np.full(per_user, u))
            items.append(chosen)
    users, items = np.concatenate(users), np.concatenate(items)
    test_items = items.reshape(n_users, per_user)[:, -1]
    keep = np.ones(users.size, bool)
    keep[per_user - 1::per_user] = False
    tu, ti = users[keep], items[keep]
    seen = np.zeros((n_users, n_items), bool)
    seen[users, items] = True
    negatives = np.empty((n_users, 99), np.int64)
    for u in range(n_users):
        negatives[u] = rng.choice(np.flatnonzero(~seen[u]), 99, replace=False)
    return tu, ti, test_items, negatives, n_users, n_items


def load(name):
    if name == "planted":
        return planted()
    import ncf_data
    d = ncf_data.load_dataset(name)
    order = np.argsort(d.test_users, kind="stable")
    assert (d.test_users[order] == np.arange(d.n_users)).all(), "one test row per user"
    return (d.train_users, d.train_items, d.test_items[order], d.test_negatives[order],
            d.n_users, d.n_items)


# -- one configuration (a worker process, or every rank of an mpiexec job) ---------------
def worker(args) -> None:
    import neurec
    from neurec import distribution
    from neurec.data import NegativeSampler
    from neurec.distribution import _shared
    from neurec.evaluation import evaluate_sampled
    from neurec.models import _distributed, zoo
    distribution.initialize()
    distribution.set_distribution(distribution.ModelParallel() if args.mode == "model"
                                  else distribution.DataParallel())
    size = distribution.size()
    exchanges = []

    made = _shared.exchange_for

    def timed(*a, **kw):  # each fit's exchange, its hooks timed
        ex = made(*a, **kw)

        class Timed(type(ex)):
            seconds = 0.0

            def __call__(self, grads):
                t = time.perf_counter()
                super().__call__(grads)
                self.seconds += time.perf_counter() - t

            def after_apply(self, grads):  # rows updated at their owners: their new values
                t = time.perf_counter()
                super().after_apply(grads)
                self.seconds += time.perf_counter() - t

        if args.mode == "noexchange":  # the ranks' steps without their exchange: a ceiling
            Timed.__call__ = Timed.after_apply = lambda self, grads: None
        ex.__class__ = Timed
        exchanges.append(ex)
        return ex

    _shared.exchange_for = timed
    _shared.SHARED = args.mode != "messages"  # messages: no shared window
    _distributed.ROUTE = args.mode != "slices"  # slices: every batch cut, nothing routed
    if args.mode == "slices":
        _shared.SHARED = False
    users, items, test_items, negatives, n_users, n_items = load(args.data)
    neurec.utils.set_random_seed(1)
    model = zoo.NeuMF(n_users, n_items, factors=8, layers=(64, 32, 16, 8))
    model.compile(optimizer=neurec.optimizers.Adam(args.lr), loss="binary_crossentropy")
    sampler = NegativeSampler((users, items), num_negatives=4, n_users=n_users,
                              n_items=n_items, seed=2)
    if args.warmup:  # first-touch page faults, buffers growing: not the steady state
        model.fit(sampler, batch_size=args.batch[0], epochs=args.warmup, seed=4, verbose=0)
        for ex in exchanges:
            ex.seconds, ex.steps, ex.bytes_sent = 0.0, 0, 0
    distribution.barrier()
    t = time.perf_counter()
    step0 = int(model.optimizer.iterations)
    model.fit(sampler, batch_size=args.batch[0], epochs=args.epochs, seed=3, verbose=0)
    seconds = time.perf_counter() - t
    steps = int(model.optimizer.iterations) - step0
    res = evaluate_sampled(model, np.arange(n_users), test_items, negatives, k=10, verbose=0)
    out = {"ranks": size, "threads": neurec.get_num_threads(), "epochs": args.epochs,
           "warmup_epochs": args.warmup,
           "batch": args.batch[0], "samples_per_s": sampler.num_samples * args.epochs / seconds,
           "seconds": seconds, "steps": steps, "hr@10": res["hr@10"],
           "ndcg@10": res["ndcg@10"]}
    if exchanges:
        ex = exchanges[-1]
        out["bytes_per_step"] = ex.bytes_sent / max(steps, 1)  # chunk-end swaps included
        out["exchange_ms"] = 1e3 * ex.seconds / max(steps, 1)
        out["compute_ms"] = 1e3 * (seconds - ex.seconds) / max(steps, 1)
        out.update(link_cost(distribution.communicator()))
    if distribution.is_main():
        print(json.dumps(out), flush=True)


def link_cost(comm) -> dict:
    """An Allgather's fixed cost (8-byte messages) and per-byte cost (4 MiB), best of 20."""
    from mpi4py import MPI
    size = comm.Get_size()

    def best(nbytes):
        send = np.zeros(nbytes // 4, np.float32)
        recv = np.empty(send.size * size, np.float32)
        times = []
        for _ in range(20):
            comm.Barrier()
            t = time.perf_counter()
            comm.Allgather([send, MPI.FLOAT], [recv, MPI.FLOAT])
            times.append(time.perf_counter() - t)
        return min(times)

    small, big = best(8), best(4 << 20)
    return {"alpha_us": 1e6 * small,
            "beta_ns_per_byte": 1e9 * max(big - small, 0.0) / ((4 << 20) * (size - 1))}


# -- the driver ----------------------------------------------------------------------------
def mpiexec():
    here = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return here if os.access(here, os.X_OK) else shutil.which("mpiexec")


# (name, ranks, threads, mode): mode "data" or "model" (the distribution of the ranks), or
# "ceiling": two independent one-thread processes at once, each training on all the data,
# whose summed samples/s is what two cores give two processes that never wait for each
# other (the bound for two ranks on this machine)
CONFIGS = [("1 process x 1 thread", 1, 1, "data"), ("1 process x 2 threads", 1, 2, "data"),
           ("2 ranks x 1 thread", 2, 1, "data"),
           ("2 ranks x 1 thread, messages", 2, 1, "messages"),
           ("2 ranks x 1 thread, slices", 2, 1, "slices"),
           ("2 ranks x 1 thread, no exchange", 2, 1, "noexchange"),
           ("2 ranks x 1 thread, ModelParallel", 2, 1, "model"),
           ("2 independent processes (bound)", 1, 1, "ceiling")]


def run_config(base, name, ranks, threads, mode):
    """One configuration's row (None when it cannot run here)."""
    env = dict(os.environ, NEUREC_NUM_THREADS=str(threads))
    cmd = base + ["--mode", mode if mode in ("model", "slices", "messages", "noexchange")
                  else "data"]
    if ranks > 1:
        if mpiexec() is None:
            print(f"{name}: skipped (no mpiexec; pip install 'neurec[mpi]')")
            return None
        cmd = [mpiexec(), "-n", str(ranks)] + cmd
    copies = 2 if mode == "ceiling" else 1
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env) for _ in range(copies)]
    outs = [p.communicate() for p in procs]
    for p, (_, err) in zip(procs, outs):
        if p.returncode != 0:
            raise RuntimeError(f"{name}: failed\n{err[-2000:]}")
    got = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    row = dict(got[0], config=name, mode=mode)
    if mode == "ceiling":
        row["samples_per_s"] = sum(g["samples_per_s"] for g in got)
        row["ranks"] = 2
    return row


def print_row(name: str, runs: list, base: list) -> None:
    """A configuration's line: its median run, and the median (range) of its ratios to
    the one-process run of the same round."""
    row = sorted(runs, key=lambda r: r["samples_per_s"])[(len(runs) - 1) // 2]
    ratios = sorted(r["samples_per_s"] / b["samples_per_s"] for r, b in zip(runs, base))
    ratio = ratios[(len(ratios) - 1) // 2]
    spread = f" [{ratios[0]:.2f}-{ratios[-1]:.2f}]" if len(ratios) > 1 else ""
    extra = "" if "exchange_ms" not in row else (
        f"  {row['bytes_per_step'] / 1e3:8.1f} kB/step sent  compute "
        f"{row['compute_ms']:.2f} ms  exchange {row['exchange_ms']:.2f} ms/step  "
        f"alpha {row['alpha_us']:.1f} us  beta {row['beta_ns_per_byte']:.3f} ns/B")
    print(f"  {name:34s} {row['samples_per_s']:12,.0f} samples/s  {ratio:5.2f}x{spread:13s} "
          f"HR@10 {row['hr@10']:.4f}  ({row['seconds']:.1f}s, {row['steps']} steps)"
          f"{extra}", flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="ml-1m", help="ml-1m (default), ml-100k or planted")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch", type=lambda v: [int(b) for b in v.split(",")], default=[2048],
                   help="global batch, or several separated by commas (default 2048)")
    p.add_argument("--mode", default="data", help=argparse.SUPPRESS)
    p.add_argument("--lr", type=float, default=0.002)
    p.add_argument("--warmup", type=int, default=1,
                   help="epochs trained before the timed ones, in every configuration "
                        "(default 1; 0 times a cold start)")
    p.add_argument("--repeat", type=int, default=3,
                   help="rounds over the configurations, interleaved (default 3): each row "
                        "reports its median, and its ratio is the median of its ratios to "
                        "the same round's one-process run, with their range")
    p.add_argument("--json", default=None, help="write the rows to this JSON file")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    from common import machine_info, print_machine
    info = machine_info()
    print_machine(info)
    rows = []
    for batch in args.batch:
        base = [sys.executable, os.path.abspath(__file__), "--worker", "--data", args.data,
                "--epochs", str(args.epochs), "--batch", str(batch), "--lr", str(args.lr),
                "--warmup", str(args.warmup)]
        print(f"global batch {batch}:")
        runs = {name: [] for name, *_ in CONFIGS}
        for round_ in range(max(1, args.repeat)):  # interleaved: drift hits every config
            for name, ranks, threads, mode in CONFIGS:
                try:
                    row = run_config(base, name, ranks, threads, mode)
                except RuntimeError as e:
                    print(e)
                    return 1
                if row is not None:
                    row["round"] = round_
                    rows.append(row)
                    runs[name].append(row)
        for name, *_ in CONFIGS:
            if runs[name]:
                print_row(name, runs[name], runs[CONFIGS[0][0]])
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": info, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
