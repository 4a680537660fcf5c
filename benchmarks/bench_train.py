"""Training speed, neurec vs PyTorch eager (and Keras 3 on the torch backend), side by side.

Usage (from the repository root; long runs under ``nice``):
    nice -n 5 python benchmarks/bench_train.py               # ml-100k, 5 reps, 1 and 2 threads
    python benchmarks/bench_train.py --quick                 # smoke run (< 60 s)

What it measures (docs/PROTOCOL.md, "Speed"):
- NeuMF (factor 8, tower [64, 32, 16, 8]), GMF (factor 8) and MLP ([64, 32, 16, 8]), batch 256,
  Adam lr 1e-3 (eps 1e-8 in both), BCE, 4 negatives per positive, on ml-100k-ncf.
- Per-epoch training time on the *same pre-sampled, pre-shuffled epoch arrays* for neurec
  (``model.fit([u, i], y, shuffle=False)``) and for torch (the mini-batch loop of
  ``bench_torch_baseline.py``): negative sampling is excluded from both.
- neurec with its in-C sampler (``fit(NegativeSampler)``): fresh negatives and a shuffle inside
  the timed epoch, i.e. the real end-to-end epoch.
- neurec's default optimizer is sparse (lazy, row-wise) Adam; torch uses dense ``torch.optim.Adam``
  as the NCF code's Keras does. A "neurec dense Adam" row (``sparse_updates=False``, updates every
  row every step like torch) separates the optimizer's share of the speed-up from the rest.
- At 2+ threads, a "neurec hogwild" column (``compile(hogwild=True)``: each thread trains whole
  batches and applies its updates at once, not reproducible).
- Repetitions alternate (neurec, torch, neurec sampler, ..., then the next repetition) in one
  process; the table reports median samples/s and the median of per-repetition ratios.
- GFLOP/s of neurec's loop: 3 x (dense-layer MACs of the forward pass) x 2 flops per sample
  (forward + two backward products; embedding gathers/updates and elementwise ops ignored),
  against a nominal peak of cores x 2 FMA units x 8 fp32 lanes x 2 x clock (``cpu MHz``), and
  against a measured one (threads x one core's AVX2 FMA-loop throughput, compiled with gcc here).
- Keras 3 (``KERAS_BACKEND=torch``), NeuMF, one epoch per thread count, alternated with neurec.
- Peak RSS growth of one neurec fit (model build + optimizer state + scratch) beside the bytes of
  its inputs, parameters and optimizer state; the same for torch.
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")  # before anything imports keras

import argparse  # noqa: E402
import sys  # noqa: E402
from typing import Any, Callable  # noqa: E402

import numpy as np  # noqa: E402

import common  # noqa: E402  (puts the repo root on sys.path)
import ncf_data  # noqa: E402

MODELS = ("neumf", "gmf", "mlp")
FACTORS = 8
LAYERS = (64, 32, 16, 8)
LR = 1e-3
EPS = 1e-8
BATCH = 256
NUM_NEG = 4


# ----------------------------------------------------------------------------------------------
# Model builders
# ----------------------------------------------------------------------------------------------


def forward_macs(name: str, factors: int = FACTORS, layers: tuple[int, ...] = LAYERS) -> int:
    """Dense-layer multiply-accumulates of one forward pass of one sample.

    Args:
        name: ``"neumf"``, ``"gmf"`` or ``"mlp"``.
        factors: GMF factor.
        layers: MLP tower.

    Returns:
        MACs per sample (the prediction layer included; elementwise products ignored).
    """
    tower = sum(a * b for a, b in zip(layers[:-1], layers[1:]))
    if name == "gmf":
        return factors
    if name == "mlp":
        return tower + layers[-1]
    if name == "neumf":
        return tower + factors + layers[-1]
    raise ValueError(f"name must be one of {MODELS}, got {name!r}.")


def build_neurec(
    name: str, n_users: int, n_items: int, dense: bool = False, hogwild: bool = False
) -> Any:
    """A compiled neurec model (Adam lr 1e-3, eps 1e-8, BCE); ``dense`` = dense Adam updates,
    ``hogwild`` = batch-level Hogwild training across threads."""
    import neurec
    from neurec.models import GMF, MLP, NeuMF

    if name == "neumf":
        model = NeuMF(n_users, n_items, factors=FACTORS, layers=LAYERS)
    elif name == "gmf":
        model = GMF(n_users, n_items, factors=FACTORS)
    elif name == "mlp":
        model = MLP(n_users, n_items, layers=LAYERS)
    else:
        raise ValueError(f"name must be one of {MODELS}, got {name!r}.")
    model.compile(
        optimizer=neurec.optimizers.Adam(LR, epsilon=EPS, sparse_updates=not dense),
        loss="binary_crossentropy",
        hogwild=hogwild,
    )
    return model


def build_torch(name: str, n_users: int, n_items: int, seed: int = 0) -> tuple[Any, Any]:
    """A torch_ncf model and its dense ``torch.optim.Adam`` (lr 1e-3, eps 1e-8)."""
    import torch

    import torch_ncf

    torch.manual_seed(seed)
    model = torch_ncf.build_model(name, n_users, n_items, factors=FACTORS, layers=LAYERS)
    return model, torch.optim.Adam(model.parameters(), lr=LR, eps=EPS)


def build_keras_neumf(n_users: int, n_items: int) -> Any:
    """NeuMF in Keras 3 (functional API), compiled with Adam and binary cross-entropy."""
    import keras
    from keras import layers as kl

    init = keras.initializers.RandomNormal(0.0, 0.01)
    u = keras.Input(shape=(1,), dtype="int64", name="user")
    i = keras.Input(shape=(1,), dtype="int64", name="item")
    gu = kl.Flatten()(kl.Embedding(n_users, FACTORS, embeddings_initializer=init)(u))
    gi = kl.Flatten()(kl.Embedding(n_items, FACTORS, embeddings_initializer=init)(i))
    mu = kl.Flatten()(kl.Embedding(n_users, LAYERS[0] // 2, embeddings_initializer=init)(u))
    mi = kl.Flatten()(kl.Embedding(n_items, LAYERS[0] // 2, embeddings_initializer=init)(i))
    h = kl.Concatenate()([mu, mi])
    for units in LAYERS[1:]:
        h = kl.Dense(units, activation="relu")(h)
    out = kl.Dense(1, activation="sigmoid", kernel_initializer="lecun_uniform")(
        kl.Concatenate()([kl.Multiply()([gu, gi]), h])
    )
    model = keras.Model([u, i], out)
    model.compile(optimizer=keras.optimizers.Adam(LR, epsilon=EPS), loss="binary_crossentropy")
    return model


def torch_train_epoch(
    model: Any,
    opt: Any,
    users: np.ndarray,
    items: np.ndarray,
    labels: np.ndarray,
    batch_size: int = BATCH,
) -> float:
    """One pass of the mini-batch loop of ``bench_torch_baseline.py``; returns the mean loss."""
    import torch
    import torch.nn.functional as F

    model.train()
    u_t, i_t, y_t = torch.from_numpy(users), torch.from_numpy(items), torch.from_numpy(labels)
    total = torch.zeros((), dtype=torch.float64)
    for s in range(0, users.size, batch_size):
        u, i, y = u_t[s : s + batch_size], i_t[s : s + batch_size], y_t[s : s + batch_size]
        loss = F.binary_cross_entropy_with_logits(model(u, i), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += loss.detach() * y.shape[0]
    return float(total) / max(users.size, 1)


# ----------------------------------------------------------------------------------------------
# Benchmark
# ----------------------------------------------------------------------------------------------


def _presample(
    data: ncf_data.NCFData, n: int, seed: int, max_samples: int | None
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        u, i, y = ncf_data.make_epoch(data, NUM_NEG, rng)
        if max_samples is not None:
            u, i, y = u[:max_samples], i[:max_samples], y[:max_samples]
        out.append((u, i, y))
    return out


def _sampler(data: ncf_data.NCFData, seed: int) -> Any:
    from neurec.data import NegativeSampler

    return NegativeSampler(
        (data.train_users, data.train_items),
        num_negatives=NUM_NEG,
        seed=seed,
        n_users=data.n_users,
        n_items=data.n_items,
    )


def bench_model(
    name: str,
    data: ncf_data.NCFData,
    epochs: list,
    threads: list[int],
    reps: int,
    seed: int,
    with_dense: bool,
    fma_core: float | None = None,
) -> dict[str, Any]:
    """Alternating neurec / torch / neurec-with-sampler epochs at each thread count."""
    nu, ni = data.n_users, data.n_items
    nr = build_neurec(name, nu, ni)
    nr_s = build_neurec(name, nu, ni)
    nr_d = build_neurec(name, nu, ni, dense=True) if with_dense else None
    nr_h = build_neurec(name, nu, ni, hogwild=True) if max(threads) > 1 else None
    tm, topt = build_torch(name, nu, ni, seed)
    sampler = _sampler(data, seed)
    n_samples = epochs[0][0].size
    warm = min(20_000, n_samples)
    counter = {"sampler_epoch": 0}

    def data_of(rep: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        u, i, y = epochs[rep % len(epochs)]
        return (u[:warm], i[:warm], y[:warm]) if rep < 0 else (u, i, y)

    def run_neurec(model: Any) -> Callable[[int], Any]:
        def fn(rep: int) -> Any:
            u, i, y = data_of(rep)
            return model.fit(
                [u, i], y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0, seed=seed
            )

        return fn

    def run_torch(rep: int) -> Any:
        u, i, y = data_of(rep)
        return torch_train_epoch(tm, topt, u, i, y)

    def run_sampler(rep: int) -> Any:
        ep = counter["sampler_epoch"]
        counter["sampler_epoch"] += 1
        return nr_s.fit(
            sampler, epochs=ep + 1, initial_epoch=ep, batch_size=BATCH, verbose=0, seed=seed
        )

    sampler_samples = sampler.num_samples  # the in-C sampler always makes a whole epoch
    out: dict[str, Any] = {
        "model": name,
        "samples_per_epoch": n_samples,
        "sampler_samples_per_epoch": sampler_samples,
        "forward_macs_per_sample": forward_macs(name),
        "threads": {},
    }
    for t in threads:
        common.set_threads(t)
        runs: dict[str, Callable[[int], Any]] = {
            "neurec": run_neurec(nr),
            "torch": run_torch,
            "neurec_sampler": run_sampler,
        }
        if nr_d is not None:
            runs["neurec_dense_adam"] = run_neurec(nr_d)
        if nr_h is not None and t > 1:
            runs["neurec_hogwild"] = run_neurec(nr_h)
        times = common.alternate(runs, reps)
        res: dict[str, Any] = {}
        for key, ts in times.items():
            work = sampler_samples if key == "neurec_sampler" else n_samples
            res[key] = common.summarize(ts, work)
        # Per-repetition speed ratios (samples/s neurec over samples/s torch).
        tput = {
            k: [(sampler_samples if k == "neurec_sampler" else n_samples) / s for s in ts]
            for k, ts in times.items()
        }
        res["ratio_vs_torch"] = {
            k: common.median_ratio(tput[k], tput["torch"]) for k in tput if k != "torch"
        }
        flops = 6.0 * forward_macs(name)
        res["neurec_gflops"] = res["neurec"]["per_s"] * flops / 1e9
        res["peak_gflops"] = common.peak_gflops(t, common.cpu_mhz())
        res["share_of_peak"] = res["neurec_gflops"] / res["peak_gflops"]
        if fma_core:
            res["measured_peak_gflops"] = t * fma_core
            res["share_of_measured_peak"] = res["neurec_gflops"] / res["measured_peak_gflops"]
        out["threads"][t] = res
        r = res["ratio_vs_torch"]
        print(
            f"[{name} t={t}] neurec {res['neurec']['per_s']:,.0f}/s | torch "
            f"{res['torch']['per_s']:,.0f}/s | neurec+sampler "
            f"{res['neurec_sampler']['per_s']:,.0f}/s"
            + (
                f" | neurec dense Adam {res['neurec_dense_adam']['per_s']:,.0f}/s"
                if "neurec_dense_adam" in res
                else ""
            )
            + (
                f" | neurec hogwild {res['neurec_hogwild']['per_s']:,.0f}/s"
                if "neurec_hogwild" in res
                else ""
            )
            + f" | ratio {r['neurec']:.2f}x (sampler {r['neurec_sampler']:.2f}x) | "
            f"{res['neurec_gflops']:.2f} GFLOP/s = {100 * res['share_of_peak']:.1f}% of "
            f"{res['peak_gflops']:.0f}",
            flush=True,
        )
    return out


def bench_keras(
    data: ncf_data.NCFData, epochs: list, threads: list[int], reps: int, seed: int
) -> dict[str, Any]:
    """Keras 3 (torch backend) NeuMF, one epoch per rep, alternated with neurec NeuMF."""
    try:
        import keras
    except ImportError as e:  # pragma: no cover - optional peer
        return {"skipped": f"keras not importable: {e}"}
    keras.utils.set_random_seed(seed)
    km = build_keras_neumf(data.n_users, data.n_items)
    nr = build_neurec("neumf", data.n_users, data.n_items)
    n = epochs[0][0].size
    warm = min(5_000, n)

    def run_keras(rep: int) -> Any:
        u, i, y = epochs[rep % len(epochs)]
        if rep < 0:
            u, i, y = u[:warm], i[:warm], y[:warm]
        return km.fit([u, i], y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)

    def run_neurec(rep: int) -> Any:
        u, i, y = epochs[rep % len(epochs)]
        if rep < 0:
            u, i, y = u[:warm], i[:warm], y[:warm]
        return nr.fit([u, i], y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0, seed=seed)

    out: dict[str, Any] = {
        "backend": keras.backend.backend(),
        "version": keras.__version__,
        "samples_per_epoch": n,
        "threads": {},
    }
    for t in threads:
        common.set_threads(t)
        times = common.alternate({"neurec": run_neurec, "keras": run_keras}, reps)
        res = {k: common.summarize(v, n) for k, v in times.items()}
        res["ratio_neurec_over_keras"] = common.median_ratio(times["keras"], times["neurec"])
        out["threads"][t] = res
        print(
            f"[keras neumf t={t}] neurec {res['neurec']['per_s']:,.0f}/s | keras "
            f"{res['keras']['per_s']:,.0f}/s | ratio {res['ratio_neurec_over_keras']:.1f}x",
            flush=True,
        )
    return out


def _nbytes(arrays: Any) -> int:
    return int(sum(a.nbytes for a in arrays if a is not None))


def bench_memory(data: ncf_data.NCFData, epoch: tuple, seed: int) -> dict[str, Any]:
    """Peak RSS growth of building + fitting one epoch, neurec vs torch, beside the array bytes."""
    import torch

    u, i, y = epoch
    inputs = u.nbytes + i.nbytes + y.nbytes
    holder: dict[str, Any] = {}

    def neurec_fit() -> None:
        m = build_neurec("neumf", data.n_users, data.n_items)
        m.fit([u, i], y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0, seed=seed)
        holder["nr"] = m

    def neurec_sampler_fit() -> None:
        m = build_neurec("neumf", data.n_users, data.n_items)
        m.fit(_sampler(data, seed), epochs=1, batch_size=BATCH, verbose=0, seed=seed)
        holder["nrs"] = m

    def torch_fit() -> None:
        m, opt = build_torch("neumf", data.n_users, data.n_items, seed)
        torch_train_epoch(m, opt, u, i, y)
        holder["t"] = (m, opt)

    _, mem_nr = common.measure_peak(neurec_fit)
    _, mem_nrs = common.measure_peak(neurec_sampler_fit)
    _, mem_t = common.measure_peak(torch_fit)
    nr = holder["nr"]
    params = _nbytes(nr.get_weights())
    state = _nbytes(nr.optimizer.variables())
    tm, topt = holder["t"]
    t_params = sum(p.numel() * p.element_size() for p in tm.parameters())
    t_state = sum(
        v.numel() * v.element_size()
        for st in topt.state.values()
        for v in st.values()
        if torch.is_tensor(v)
    )
    mb = 1024.0**2
    return {
        "inputs_mb": inputs / mb,
        "neurec": {"params_mb": params / mb, "optimizer_state_mb": state / mb, **mem_nr},
        "neurec_sampler": {
            "params_mb": params / mb,
            "optimizer_state_mb": state / mb,
            "epoch_arrays_mb": data.num_train * (1 + NUM_NEG) * (8 + 8 + 4) / mb,
            **mem_nrs,
        },
        "torch": {
            "params_mb": t_params / mb,
            "grads_mb": t_params / mb,
            "optimizer_state_mb": t_state / mb,
            **mem_t,
        },
    }


# ----------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------


def _markdown(rec: dict[str, Any]) -> str:
    info, cfg = rec["machine"], rec["config"]
    lines = [
        *common.md_head(f"# Training speed: neurec vs PyTorch eager ({cfg['dataset']})", info),
        f"Batch {BATCH}, Adam lr {LR} eps {EPS}, {NUM_NEG} negatives, median of "
        f"{cfg['reps']} alternating repetitions (after one warm-up); ratios are medians of "
        "per-repetition ratios. `neurec` and `torch` train on the same pre-sampled, "
        "pre-shuffled epoch arrays (sampling excluded); `neurec+sampler` draws negatives "
        "and shuffles in C inside the timed epoch. neurec uses sparse (row-wise lazy) "
        "Adam; torch dense Adam (as the NCF Keras code); `neurec dense` updates every row "
        "every step like torch.",
        "",
    ]
    rows = []
    for m in rec["models"]:
        for t, r in m["threads"].items():
            rows.append(
                [
                    m["model"],
                    t,
                    r["torch"]["per_s"],
                    r["neurec"]["per_s"],
                    f"{r['ratio_vs_torch']['neurec']:.2f}x",
                    r["neurec_sampler"]["per_s"],
                    f"{r['ratio_vs_torch']['neurec_sampler']:.2f}x",
                    (
                        f"{r['neurec_dense_adam']['per_s']:,.0f} "
                        f"({r['ratio_vs_torch']['neurec_dense_adam']:.2f}x)"
                    )
                    if "neurec_dense_adam" in r
                    else "—",
                    (
                        f"{r['neurec_hogwild']['per_s']:,.0f} "
                        f"({r['ratio_vs_torch']['neurec_hogwild']:.2f}x)"
                    )
                    if "neurec_hogwild" in r
                    else "—",
                    f"{r['neurec_gflops']:.2f} / {r['peak_gflops']:.0f} "
                    f"({100 * r['share_of_peak']:.1f}%)"
                    + (
                        f"; / {r['measured_peak_gflops']:.0f} measured "
                        f"({100 * r['share_of_measured_peak']:.1f}%)"
                        if r.get("measured_peak_gflops")
                        else ""
                    ),
                ]
            )
    lines.append(
        common.md_table(
            [
                "model",
                "threads",
                "torch samples/s",
                "neurec samples/s",
                "neurec / torch",
                "neurec+sampler samples/s",
                "sampler / torch",
                "neurec dense Adam",
                "neurec hogwild",
                "neurec GFLOP/s / peak",
            ],
            rows,
        )
    )
    lines += [
        "",
        "GFLOP/s counts 3 x the forward dense-layer MACs x 2 flops per sample "
        f"(NeuMF {6 * forward_macs('neumf'):,} flops, MLP {6 * forward_macs('mlp'):,}, "
        f"GMF {6 * forward_macs('gmf')}); peak = cores x 2 FMA x 8 lanes x 2 x "
        f"{info['cpu_mhz']:.0f} MHz (AVX2 width; the default build has no -march=native); "
        "measured peak = threads x one core's throughput of an AVX2 FMA loop "
        f"({info.get('measured_fma_gflops_per_core') or float('nan'):.0f} GFLOP/s: the cores run "
        "above the base clock). "
        "GMF's arithmetic is trivial, so its GFLOP/s is not meaningful.",
    ]
    k = rec.get("keras")
    if k and "threads" in k:
        lines += [
            "",
            f"## Keras {k['version']} (backend {k['backend']}), NeuMF, one epoch per rep",
            "",
            common.md_table(
                ["threads", "keras samples/s", "neurec samples/s", "neurec / keras"],
                [
                    [
                        t,
                        r["keras"]["per_s"],
                        r["neurec"]["per_s"],
                        f"{r['ratio_neurec_over_keras']:.1f}x",
                    ]
                    for t, r in k["threads"].items()
                ],
            ),
        ]
    elif k:
        lines += ["", f"Keras: {k.get('skipped')}"]
    mem = rec.get("memory")
    if mem:
        n, ns, t = mem["neurec"], mem["neurec_sampler"], mem["torch"]
        lines += [
            "",
            "## Memory (NeuMF, one epoch, fresh model)",
            "",
            f"Inputs (pre-sampled epoch: int64 users, int64 items, float32 labels): "
            f"{mem['inputs_mb']:.1f} MB, allocated before the measurement.",
            "",
            common.md_table(
                [
                    "run",
                    "params MB",
                    "optimizer state MB",
                    "other arrays MB",
                    "peak RSS growth MB",
                    "process peak MB",
                ],
                [
                    [
                        "neurec fit(arrays)",
                        n["params_mb"],
                        n["optimizer_state_mb"],
                        "—",
                        n["peak_growth_mb"],
                        n["peak_rss_mb"],
                    ],
                    [
                        "neurec fit(NegativeSampler)",
                        ns["params_mb"],
                        ns["optimizer_state_mb"],
                        f"epoch arrays ≈ {ns['epoch_arrays_mb']:.1f}",
                        ns["peak_growth_mb"],
                        ns["peak_rss_mb"],
                    ],
                    [
                        "torch (dense Adam)",
                        t["params_mb"],
                        t["optimizer_state_mb"],
                        f"grads {t['grads_mb']:.1f}",
                        t["peak_growth_mb"],
                        t["peak_rss_mb"],
                    ],
                ],
            ),
            "",
            "Peak RSS growth = kernel peak-RSS mark (reset just before) minus RSS before "
            "the model is built; it includes allocator and library warm-up. Runs go in the order "
            "of the table, so a later run can reuse memory an earlier one freed (torch's "
            "~0 MB here); `bench_scale.py` measures memory where the tables are large.",
        ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parses the command line (see module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="ml-100k")
    p.add_argument("--reps", type=int, default=3, help="timed repetitions per contender")
    p.add_argument(
        "--threads", default=None, help="comma-separated thread counts (default 1,2; --quick: 1)"
    )
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-keras", action="store_true")
    p.add_argument("--keras-reps", type=int, default=1)
    p.add_argument(
        "--keras-threads",
        default="1",
        help="thread counts for Keras (default 1: Keras on 2 busy cores is very slow)",
    )
    p.add_argument(
        "--quick", action="store_true", help="smoke run: 20k-sample epochs, 1 rep, 1 thread"
    )
    p.add_argument("--name", default=None, help="result name (default train_<dataset>[_quick])")
    args = p.parse_args(argv)
    if args.threads is None:
        args.threads = "1" if args.quick else "1,2"
    try:
        args.threads = [int(x) for x in args.threads.split(",") if x]
        args.keras_threads = [int(x) for x in args.keras_threads.split(",") if x]
    except ValueError:
        p.error("--threads and --keras-threads must be comma-separated integers such as 1,2")
    args.models = [m for m in args.models.split(",") if m]
    bad = [m for m in args.models if m not in MODELS]
    if bad:
        p.error(f"--models must be among {MODELS}; got {bad}")
    if (
        args.reps < 1
        or args.keras_reps < 1
        or not args.threads
        or min(args.threads) < 1
        or not args.keras_threads
        or min(args.keras_threads) < 1
    ):
        p.error("--reps, --keras-reps and every --threads / --keras-threads entry must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    args = parse_args(argv)
    import torch  # noqa: F401  (versions in machine info)

    import neurec

    run = common.Run()
    data = ncf_data.load_dataset(args.dataset)
    max_samples = 20_000 if args.quick else None
    reps = 1 if args.quick else args.reps
    epochs = _presample(data, reps, args.seed, max_samples)
    fma_core = common.measured_fma_gflops()
    print(f"measured FMA peak of one core (AVX2 width): {fma_core} GFLOP/s", flush=True)
    print(
        f"data {args.dataset}: {data.n_users} users, {data.n_items} items, "
        f"{data.num_train} positives, {epochs[0][0].size} samples per timed epoch",
        flush=True,
    )
    models = [
        bench_model(
            m,
            data,
            epochs,
            args.threads,
            reps,
            args.seed,
            with_dense=(m == "neumf"),
            fma_core=fma_core,
        )
        for m in args.models
    ]
    keras_res = None
    if not args.no_keras:
        keras_res = bench_keras(
            data, epochs, args.keras_threads, 1 if args.quick else args.keras_reps, args.seed
        )
    memory = bench_memory(data, epochs[0], args.seed)
    neurec.set_num_threads(max(args.threads))
    run.info = common.machine_info()
    run.info["measured_fma_gflops_per_core"] = fma_core
    return run.finish(
        "train",
        common.result_name(args, f"train_{args.dataset}"),
        {
            "dataset": args.dataset,
            "reps": reps,
            "threads": args.threads,
            "batch_size": BATCH,
            "lr": LR,
            "epsilon": EPS,
            "num_neg": NUM_NEG,
            "factors": FACTORS,
            "layers": list(LAYERS),
            "quick": args.quick,
            "seed": args.seed,
        },
        {"models": models, "keras": keras_res, "memory": memory},
        _markdown,
    )


if __name__ == "__main__":
    sys.exit(main())
