"""Ranking quality per epoch, neurec vs PyTorch (torch_ncf.py), on the NCF protocol.

Usage (from the repository root; long runs under ``nice``):
    nice -n 5 python benchmarks/bench_accuracy.py                  # ml-100k, 20 epochs, + MF sweep
    nice -n 5 python benchmarks/bench_accuracy.py --dataset ml-1m  # neurec 20 epochs, torch 1 epoch
    python benchmarks/bench_accuracy.py --quick                    # smoke run (< 60 s)

Protocol (docs/PROTOCOL.md): leave-one-out split, 4 fresh negatives per positive every epoch (8
where an MF setting says so), BCE, Adam lr 1e-3, batch 256, seed 0; after every epoch the test item
is ranked among its 99 fixed negatives (HR@10, NDCG@10; ties in favour of the test item). neurec
trains with its in-C sampler and default sparse (lazy, row-wise) Adam; torch with NumPy-sampled
epochs and dense ``torch.optim.Adam`` (``bench_torch_baseline.py``'s loop). Epochs of the two
frameworks alternate in one process. Both evaluate with the same metric code
(``ncf_data.evaluate_sampled``), and neurec's own ``neurec.evaluation.evaluate_sampled`` is
recorded beside it as a cross-check. After the last epoch the full-ranking protocol (test item
among all items the user has not trained on) is reported too.

Differences in the recipe (documented, not tuned away): the prediction layer is
``lecun_uniform`` in neurec's zoo (as in the NCF code) and ``glorot_uniform`` in torch_ncf.py (its
default); Adam epsilon is 1e-8 in both.

MF (``neurec.models.MF``: dot product + biases, logistic loss) is swept over a few settings on
ml-100k to find settings that beat NeuMF (Rendle et al. 2020).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import numpy as np

import common  # also puts the repo root on sys.path
import ncf_data

NCF_MODELS = ("gmf", "mlp", "neumf")
BATCH = 256
LR = 1e-3
EPS = 1e-8

#: MF settings: (factors, learning rate, negatives, L2, init stddev).
MF_SWEEP = (
    (32, 1e-3, 4, 0.0, 0.1),
    (32, 5e-3, 4, 0.0, 0.1),
    (32, 5e-3, 4, 1e-4, 0.1),
    (32, 2e-3, 8, 1e-4, 0.1),
    (64, 1e-3, 4, 0.0, 0.1),
    (64, 2e-3, 8, 1e-4, 0.1),
    (64, 5e-3, 8, 1e-4, 0.1),
    (64, 2e-3, 8, 1e-3, 0.1),
    (32, 1e-3, 4, 0.0, 0.01),
    (32, 1e-3, 8, 0.0, 0.01),
    (64, 1e-3, 8, 0.0, 0.01),
    (64, 2e-3, 8, 1e-5, 0.01),
    (64, 1e-3, 4, 1e-5, 0.01),
    (64, 1e-3, 4, 3e-5, 0.01),
)


def _mf_name(cfg: tuple) -> str:
    f, lr, neg, reg, init = cfg
    return f"mf f{f} lr{lr:g} n{neg} l2 {reg:g} init {init:g}"


def _parse_mf(text: str) -> tuple:
    """``"64,0.002,8,1e-4[,0.01]"`` -> (64, 0.002, 8, 0.0001, 0.01); init stddev defaults to 0.1."""
    try:
        parts = text.split(",")
        if len(parts) not in (4, 5):
            raise ValueError
        init = float(parts[4]) if len(parts) == 5 else 0.1
        return int(parts[0]), float(parts[1]), int(parts[2]), float(parts[3]), init
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--mf takes factors,lr,negatives,l2[,init_stddev] such as 64,0.002,8,1e-4,0.01; "
            f"got {text!r}"
        ) from None


class _NeurecRun:
    """One neurec model trained epoch by epoch with the in-C sampler."""

    def __init__(self, kind: str, data: ncf_data.NCFData, seed: int, mf: tuple | None = None):
        import neurec
        from neurec.data import NegativeSampler
        from neurec.models import GMF, MF, MLP, NeuMF

        nu, ni = data.n_users, data.n_items
        lr, neg = LR, 4
        if kind == "gmf":
            self.model = GMF(nu, ni, factors=8)
        elif kind == "mlp":
            self.model = MLP(nu, ni, layers=(64, 32, 16, 8))
        elif kind == "neumf":
            self.model = NeuMF(nu, ni, factors=8, layers=(64, 32, 16, 8))
        elif kind == "mf":
            factors, lr, neg, reg, init = mf
            self.model = MF(nu, ni, factors=factors, reg=reg, init_stddev=init)
        else:
            raise ValueError(f"unknown model {kind!r}")
        self.model.compile(
            optimizer=neurec.optimizers.Adam(lr, epsilon=EPS), loss="binary_crossentropy"
        )
        self.sampler = NegativeSampler(
            (data.train_users, data.train_items),
            num_negatives=neg,
            seed=seed,
            n_users=nu,
            n_items=ni,
        )
        self.seed = seed
        self.epoch = 0

    def train_epoch(self) -> tuple[float, float]:
        """Trains one more epoch; returns (loss, seconds)."""
        t0 = time.perf_counter()
        hist = self.model.fit(
            self.sampler,
            epochs=self.epoch + 1,
            initial_epoch=self.epoch,
            batch_size=BATCH,
            verbose=0,
            seed=self.seed,
        )
        dt = time.perf_counter() - t0
        self.epoch += 1
        return float(hist.history["loss"][-1]), dt

    def score(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return self.model.predict([users, items]).reshape(-1)


class _TorchRun:
    """One torch_ncf model with dense Adam, trained on NumPy-sampled epochs."""

    def __init__(self, kind: str, data: ncf_data.NCFData, seed: int):
        import torch

        from bench_train import build_torch

        self.model, self.opt = build_torch(kind, data.n_users, data.n_items, seed)
        self.rng = np.random.default_rng(seed)
        self.data = data
        self.torch = torch

    def train_epoch(self, max_samples: int | None = None) -> tuple[float, float]:
        from bench_train import torch_train_epoch

        u, i, y = ncf_data.make_epoch(self.data, 4, self.rng)
        if max_samples is not None:
            u, i, y = u[:max_samples], i[:max_samples], y[:max_samples]
        t0 = time.perf_counter()
        loss = torch_train_epoch(self.model, self.opt, u, i, y)
        return loss, time.perf_counter() - t0

    def score(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        torch = self.torch
        self.model.eval()
        out = np.empty(users.size, dtype=np.float32)
        step = 1 << 16
        with torch.inference_mode():
            for s in range(0, users.size, step):
                out[s : s + step] = self.model(
                    torch.from_numpy(users[s : s + step]), torch.from_numpy(items[s : s + step])
                ).numpy()
        return out


def _eval(run: Any, data: ncf_data.NCFData, max_rows: int | None) -> dict[str, float]:
    hr, ndcg = ncf_data.evaluate_sampled(run.score, data, max_rows=max_rows)
    return {"hr10": hr, "ndcg10": ndcg}


def _summary(hist: list[dict[str, Any]]) -> dict[str, Any]:
    trained = [h for h in hist if h["epoch"] > 0]
    best = max(trained, key=lambda h: h["hr10"])
    last = trained[-1]
    return {
        "best_epoch": best["epoch"],
        "best_hr10": best["hr10"],
        "best_ndcg10": best["ndcg10"],
        "last_epoch": last["epoch"],
        "last_hr10": last["hr10"],
        "last_ndcg10": last["ndcg10"],
        "median_epoch_s": float(np.median([h["train_s"] for h in trained])),
    }


def run_pair(
    kind: str,
    data: ncf_data.NCFData,
    epochs: int,
    torch_epochs: int,
    seed: int,
    max_rows: int | None,
    max_torch_samples: int | None,
    full_eval: bool,
) -> dict[str, Any]:
    """neurec and torch for one NCF model, epochs alternating; returns both histories."""
    from neurec.evaluation import evaluate_full, evaluate_sampled

    nr = _NeurecRun(kind, data, seed)
    tr = _TorchRun(kind, data, seed) if torch_epochs > 0 else None
    h_nr = [{"epoch": 0, **_eval(nr, data, max_rows), "loss": None, "train_s": 0.0}]
    h_t = [{"epoch": 0, **_eval(tr, data, max_rows), "loss": None, "train_s": 0.0}] if tr else []
    for ep in range(1, epochs + 1):
        loss, dt = nr.train_epoch()
        h_nr.append({"epoch": ep, **_eval(nr, data, max_rows), "loss": loss, "train_s": dt})
        line = (
            f"[{kind}] epoch {ep:2d} neurec HR {h_nr[-1]['hr10']:.4f} NDCG "
            f"{h_nr[-1]['ndcg10']:.4f} ({dt:.1f}s)"
        )
        if tr is not None and ep <= torch_epochs:
            loss, dt = tr.train_epoch(max_torch_samples)
            h_t.append({"epoch": ep, **_eval(tr, data, max_rows), "loss": loss, "train_s": dt})
            line += f" | torch HR {h_t[-1]['hr10']:.4f} NDCG {h_t[-1]['ndcg10']:.4f} ({dt:.1f}s)"
        print(line, flush=True)
    n = data.test_users.size if max_rows is None else max_rows
    own = evaluate_sampled(
        nr.model, data.test_users[:n], data.test_items[:n], data.test_negatives[:n], k=10
    )
    out: dict[str, Any] = {
        "model": kind,
        "neurec": {"history": h_nr, "summary": _summary(h_nr), "neurec_evaluate_sampled_last": own},
    }
    if full_eval:
        t0 = time.perf_counter()
        full = evaluate_full(
            nr.model,
            data.test_users,
            data.test_items,
            (data.train_users, data.train_items),
            k=10,
            n_items=data.n_items,
        )
        out["neurec"]["full_ranking_last"] = {
            "hr10": full["hr@10"],
            "ndcg10": full["ndcg@10"],
            "seconds": time.perf_counter() - t0,
        }
    if tr is not None:
        out["torch"] = {"history": h_t, "summary": _summary(h_t)}
        if full_eval and torch_epochs == epochs:
            t0 = time.perf_counter()
            fhr, fndcg = ncf_data.evaluate_full(tr.score, data)
            out["torch"]["full_ranking_last"] = {
                "hr10": fhr,
                "ndcg10": fndcg,
                "seconds": time.perf_counter() - t0,
            }
    return out


def run_mf(
    cfg: tuple, data: ncf_data.NCFData, epochs: int, seed: int, max_rows: int | None
) -> dict[str, Any]:
    """neurec MF for one setting; returns its history."""
    nr = _NeurecRun("mf", data, seed, mf=cfg)
    hist = [{"epoch": 0, **_eval(nr, data, max_rows), "loss": None, "train_s": 0.0}]
    for ep in range(1, epochs + 1):
        loss, dt = nr.train_epoch()
        hist.append({"epoch": ep, **_eval(nr, data, max_rows), "loss": loss, "train_s": dt})
    s = _summary(hist)
    print(
        f"[{_mf_name(cfg)}] best epoch {s['best_epoch']} HR {s['best_hr10']:.4f} NDCG "
        f"{s['best_ndcg10']:.4f} | last HR {s['last_hr10']:.4f} NDCG {s['last_ndcg10']:.4f} | "
        f"{s['median_epoch_s']:.1f}s/epoch",
        flush=True,
    )
    f, lr, neg, reg, init = cfg
    return {
        "model": "mf",
        "name": _mf_name(cfg),
        "config": {"factors": f, "lr": lr, "num_neg": neg, "l2": reg, "init_stddev": init},
        "neurec": {"history": hist, "summary": s},
    }


# ----------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------


def _markdown(rec: dict[str, Any]) -> str:
    import common as c

    cfg = rec["config"]
    lines = [
        *c.md_head(
            f"# Ranking quality: neurec vs PyTorch ({cfg['dataset']}, seed {cfg['seed']})",
            rec["machine"],
        ),
        f"NCF protocol: HR@10 / NDCG@10 of the test item among its 99 fixed negatives after "
        f"each epoch; batch {BATCH}, Adam lr {LR} (MF: its own lr), 4 fresh negatives per "
        f"positive per epoch; neurec: in-C sampler, sparse lazy Adam, {cfg['threads']} "
        f"thread(s); torch: dense Adam. neurec {cfg['epochs']} epochs, torch "
        f"{cfg['torch_epochs']} epoch(s).",
        "",
        "## Summary",
        "",
    ]

    def row(name, fw, s, full):
        return [
            name,
            fw,
            s["best_epoch"],
            f"{s['best_hr10']:.4f}",
            f"{s['best_ndcg10']:.4f}",
            s["last_epoch"],
            f"{s['last_hr10']:.4f}",
            f"{s['last_ndcg10']:.4f}",
            f"{full['hr10']:.4f} / {full['ndcg10']:.4f}" if full else "—",
            f"{s['median_epoch_s']:.2f}",
        ]

    rows = [
        row(r["model"], fw, r[fw]["summary"], r[fw].get("full_ranking_last"))
        for r in rec["ncf"]
        for fw in ("neurec", "torch")
        if fw in r
    ]
    rows += [row(r["name"], "neurec", r["neurec"]["summary"], None) for r in rec["mf"]]
    lines.append(
        c.md_table(
            [
                "model",
                "framework",
                "best epoch",
                "best HR@10",
                "best NDCG@10",
                "last epoch",
                "last HR@10",
                "last NDCG@10",
                "full-ranking HR/NDCG (last)",
                "s/epoch",
            ],
            rows,
        )
    )
    if cfg["dataset"] == "ml-1m":
        lines += [
            "",
            "Paper (NCF, Table 2, ML-1M): NeuMF factor 8 without pretraining HR .688 / "
            "NDCG .410. Our ML-1M training file is reconstructed (see the data's "
            "PROVENANCE.md); the test files are the paper's.",
        ]
    lines += [
        "",
        "s/epoch: neurec = whole epoch incl. in-C sampling; torch = mini-batch loop "
        "only (sampling excluded). Both under the same machine load. Full-ranking: the "
        "test item among all items the user has not trained on (after the last epoch).",
    ]
    if rec["mf"]:
        lines += [
            "",
            "MF rows: `neurec.models.MF(factors, reg=l2, init_stddev=init)` (dot product "
            "+ user/item biases, sigmoid, logistic loss), Adam at the given lr, n negatives "
            "per positive. `reg` adds 2·reg·w to the gradient of each embedding row a batch "
            "touches, once per batch (≈ `bench_torch_baseline.py --l2` divided by the batch "
            "size).",
        ]
    for r in rec["ncf"]:
        lines += ["", f"## {r['model']} per epoch", ""]
        hn = r["neurec"]["history"]
        ht = r.get("torch", {}).get("history", [])
        rows = []
        for k, h in enumerate(hn):
            t = ht[k] if k < len(ht) else None
            rows.append(
                [
                    h["epoch"],
                    f"{h['hr10']:.4f}",
                    f"{h['ndcg10']:.4f}",
                    f"{t['hr10']:.4f}" if t else "—",
                    f"{t['ndcg10']:.4f}" if t else "—",
                ]
            )
        lines.append(
            c.md_table(
                ["epoch", "neurec HR@10", "neurec NDCG@10", "torch HR@10", "torch NDCG@10"], rows
            )
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parses the command line (see module docstring)."""
    p = common.bench_parser(
        __doc__,
        dataset="ml-100k",
        epochs=20,
        threads=1,
        seed=0,
        quick="smoke run: 2 epochs, 300 test users, NeuMF and one MF, torch 20k samples",
        name=None,
    )
    p.add_argument(
        "--torch-epochs",
        type=int,
        default=None,
        help="torch epochs (default: --epochs on ml-100k, 1 elsewhere)",
    )
    p.add_argument(
        "--torch-models",
        default=None,
        help="models also trained in torch (default: all on ml-100k, neumf elsewhere)",
    )
    p.add_argument("--models", default=",".join(NCF_MODELS))
    p.add_argument(
        "--mf",
        type=_parse_mf,
        action="append",
        default=None,
        help="MF setting factors,lr,negatives,l2[,init_stddev] (repeatable); default: "
        "the sweep on ml-100k, 64,0.002,8,0.0001 elsewhere",
    )
    p.add_argument("--no-mf", action="store_true")
    args = p.parse_args(argv)
    if args.epochs < 1 or args.threads < 1:
        p.error("--epochs and --threads must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    args = parse_args(argv)
    import torch  # noqa: F401  (threads and versions in machine info)

    import neurec  # noqa: F401

    run = common.Run(args.threads)
    data = ncf_data.load_dataset(args.dataset)
    small = args.dataset == "ml-100k"
    epochs = 2 if args.quick else args.epochs
    torch_epochs = args.torch_epochs if args.torch_epochs is not None else (epochs if small else 1)
    torch_epochs = min(torch_epochs, epochs)
    models = ["neumf"] if args.quick else [m for m in args.models.split(",") if m]
    torch_models = (
        args.torch_models.split(",")
        if args.torch_models is not None
        else (models if small else ["neumf"])
    )
    max_rows = 300 if args.quick else None
    max_torch = 20_000 if args.quick else None
    if args.no_mf:
        mf_cfgs: list = []
    elif args.mf:
        mf_cfgs = args.mf
    else:
        mf_cfgs = list(MF_SWEEP) if small else [(64, 2e-3, 8, 1e-4, 0.1)]
    if args.quick:
        mf_cfgs = mf_cfgs[:1]
    print(
        f"data {args.dataset}: {data.n_users} users, {data.n_items} items, "
        f"{data.num_train} positives; threads {args.threads}",
        flush=True,
    )
    ncf = [
        run_pair(
            m,
            data,
            epochs,
            torch_epochs if m in torch_models else 0,
            args.seed,
            max_rows,
            max_torch,
            full_eval=not args.quick,
        )
        for m in models
    ]
    mf = [run_mf(cfg, data, epochs, args.seed, max_rows) for cfg in mf_cfgs]
    return run.finish(
        "accuracy",
        common.result_name(args, f"accuracy_{args.dataset}"),
        {
            "dataset": args.dataset,
            "epochs": epochs,
            "torch_epochs": torch_epochs,
            "torch_models": torch_models,
            "threads": args.threads,
            "seed": args.seed,
            "batch_size": BATCH,
            "lr": LR,
            "epsilon": EPS,
            "quick": args.quick,
            "eval_rows": max_rows,
        },
        {"ncf": ncf, "mf": mf},
        _markdown,
    )


if __name__ == "__main__":
    sys.exit(main())
