"""A model's life after the first fit: ``Model.update`` with a new slice of the log vs a retrain.

On a time-ordered e-commerce log: train on the first 80% of the interactions by time, then
``model.update`` with the next 10% (new customers and products included: the encoders grow,
the tables grow, the pairs join the seen-matrix, a few epochs on the slice with fresh
negatives plus replayed old pairs), and evaluate on the last 10%. The peer is a retrain from
scratch on the first 90% with the same model and settings as the first fit. Targets: HR@10
within 0.01 of the retrain's, update time at most 20% of the retrain's.

Evaluation (docs/PROTOCOL.md, full ranking): each test user's first interaction in the last 10%
with an item they had not interacted with before (user and item known from the first 90%) is
ranked among every item the user has not interacted with in the first 90%; ties go to the
test item. HR@10 and NDCG@10 over all test users, over "old" users (known after the first 80%)
and over "new" users (first seen in the update slice; their share is reported). Beside them:
the stale model (the first fit, not updated; it cannot score new users or new items, which
count as misses; old users only) and item popularity over the first 90%.

Data sets:
- ``purchases``: ``neurec.datasets.make_purchases(seed=0)`` (5,000 customers, 2,000 products,
  125,003 purchases over a year, real timestamps from its generative story).
- ``amazon-beauty``: the Amazon Beauty 5-core review sequences of ``amazon-s3rec/Beauty.txt`` in
  the data folder (``$NEUREC_DATA``, default ``/work/shared/data``; see its PROVENANCE.md:
  22,363 users, 12,101 items, 198,502 reviews). The file keeps each user's order but no
  timestamps, so a seeded clock places them as ``make_purchases`` places its customers: each
  user is active for 25-100% of a 365-day window starting at a uniform day, the reviews at
  sorted uniform times inside it (seed 0). Global time order is therefore synthetic; each
  user's order is real.

Every seed trains a first model, updates it and retrains, alternating, on the same threads;
``--sweep`` adds other update settings (epochs, replay), each on a copy of the same first fit.

Run: ``nice -n 5 python benchmarks/bench_lifecycle.py`` (~5 min); ``--quick`` ~30 s.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import neurec  # noqa: E402
from ncf_data import DEFAULT_DATA_DIR  # noqa: E402
from neurec.data import InteractionLog, NegativeSampler  # noqa: E402
from neurec.evaluation import PopularityModel, evaluate_full  # noqa: E402

DATASETS = ("purchases", "amazon-beauty")


# ----------------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------------
def amazon_clock(path: str, seed: int = 0, n_days: int = 365) -> InteractionLog:
    """The S3-Rec sequences of ``path`` as a log with seeded timestamps (see the module doc)."""
    users, items, times = [], [], []
    rng = np.random.default_rng(seed)
    day = 86_400
    with open(path) as f:
        for line in f:
            parts = line.split()
            seq = parts[1:]
            span = rng.uniform(0.25, 1.0) * n_days * day
            start = rng.uniform(0.0, n_days * day - span)
            users += [parts[0]] * len(seq)
            items += seq
            times.append(np.sort(rng.uniform(start, start + span, len(seq))))
    return InteractionLog.from_arrays(np.array(users), np.array(items),
                                      timestamps=np.concatenate(times).astype(np.int64))


def load_log(name: str, data_dir: str) -> tuple[InteractionLog, str]:
    if name == "purchases":
        d = neurec.datasets.make_purchases(seed=0)
        return (InteractionLog.from_arrays(d.users, d.items, timestamps=d.timestamps),
                "neurec.datasets.make_purchases(seed=0)")
    if name == "amazon-beauty":
        path = os.path.join(data_dir, "amazon-s3rec", "Beauty.txt")
        return amazon_clock(path), f"{path} (seeded clock, see the module doc)"
    raise SystemExit(f"unknown dataset {name!r}; choose from {DATASETS}")


def split(log: InteractionLog, head: float = 0.8, tail: float = 0.9) -> dict:
    """The three slices by time (stable order on ties) and the test pairs, as raw ids."""
    order = np.argsort(log.timestamps, kind="stable")
    n = len(log)
    c1, c2 = int(round(head * n)), int(round(tail * n))
    first, update, rest = order[:c1], order[c1:c2], order[c2:]
    take = log._take
    first_log, update_log, test_log = take(first), take(update), take(rest)
    upto = take(order[:c2])
    known_users, known_items = set(upto.users.tolist()), set(upto.items.tolist())
    old_users = set(first_log.users.tolist())
    had = set(zip(upto.users.tolist(), upto.items.tolist()))
    test_u, test_i, seen_u = [], [], set()
    for u, i in zip(test_log.users.tolist(), test_log.items.tolist()):
        if u in seen_u or u not in known_users or i not in known_items or (u, i) in had:
            continue
        seen_u.add(u)
        test_u.append(u)
        test_i.append(i)
    test_u = np.array(test_u)
    is_new = np.array([u not in old_users for u in test_u.tolist()])
    new_items = set(update_log.items.tolist()) - set(first_log.items.tolist())
    new_users = set(update_log.users.tolist()) - old_users
    return {"first": first_log, "update": update_log, "upto": upto,
            "test_users": test_u, "test_items": np.array(test_i), "test_new": is_new,
            "stats": {"rows": n, "first_rows": int(c1), "update_rows": int(c2 - c1),
                      "test_rows": int(n - c2), "users": len(set(log.users.tolist())),
                      "items": len(set(log.items.tolist())),
                      "update_users": len(set(update_log.users.tolist())),
                      "update_new_users": len(new_users), "update_new_items": len(new_items),
                      "test_users": int(test_u.size), "test_new_users": int(is_new.sum()),
                      "test_new_share": float(is_new.mean()) if test_u.size else 0.0}}


# ----------------------------------------------------------------------------------------------
# models
# ----------------------------------------------------------------------------------------------
def build(args, n_users: int, n_items: int):
    layers = tuple(int(x) for x in args.layers.split(","))
    if args.model == "neumf":
        m = neurec.models.NeuMF(n_users, n_items, factors=args.factors, layers=layers)
    elif args.model == "gmf":
        m = neurec.models.GMF(n_users, n_items, factors=args.factors)
    else:
        m = neurec.models.MLP(n_users, n_items, layers=layers)
    m.compile(optimizer=neurec.optimizers.Adam(learning_rate=args.lr), loss="binary_crossentropy")
    return m


def train(args, raw_log: InteractionLog, seed: int):
    """A model trained from scratch on ``raw_log``, encoders and seen-matrix attached."""
    neurec.utils.set_random_seed(seed)
    log, ue, ie = raw_log.encode()
    matrix = log.to_matrix(shape=(len(ue), len(ie)), dedupe="max")
    model = build(args, len(ue), len(ie))
    model.fit(NegativeSampler(matrix, num_negatives=args.negatives, seed=seed),
              epochs=args.epochs, batch_size=args.batch_size, verbose=0, seed=seed)
    model.attach_encoders(user=ue, item=ie)
    model.attach_seen_matrix(matrix)
    return model


def evaluate(model, sp: dict, mask: np.ndarray | None = None) -> dict:
    """Full-ranking HR@10 / NDCG@10 of ``model`` on the test users (``mask``: a subset),
    excluding each user's first-90% history; test items the model does not know are misses."""
    users, items = sp["test_users"], sp["test_items"]
    if mask is not None:
        users, items = users[mask], items[mask]
    ue, ie = model.user_encoder, model.item_encoder
    u = _codes(ue, users)
    i = _codes(ie, items)
    ok = (u >= 0) & (i >= 0)
    if not ok.any():
        return {"hr10": 0.0, "ndcg10": 0.0, "users": int(users.size)}
    hist = sp["upto"]
    hu, hi = _codes(ue, hist.users), _codes(ie, hist.items)
    keep = (hu >= 0) & (hi >= 0)
    n_items = len(ie)
    res = evaluate_full(model, u[ok], i[ok], (hu[keep], hi[keep]), k=10, n_items=n_items,
                        per_user=True)
    scale = users.size
    return {"hr10": float(res["hr@10"].sum() / scale), "ndcg10": float(res["ndcg@10"].sum() / scale),
            "users": int(scale)}


def _codes(enc, raw) -> np.ndarray:
    """Codes of ``raw``, -1 for ids the encoder does not know."""
    tmp = enc.copy()
    tmp.unknown = "ignore"
    return tmp.transform(raw)


def groups(model, sp: dict) -> dict:
    new = sp["test_new"]
    out = {"all": evaluate(model, sp), "old": evaluate(model, sp, ~new)}
    out["new"] = evaluate(model, sp, new) if new.any() else None
    return out


def popularity(sp: dict) -> dict:
    log, ue, ie = sp["upto"].encode()
    pop = PopularityModel().fit(log.to_matrix(shape=(len(ue), len(ie)), dedupe="max"))
    pop.user_encoder, pop.item_encoder = ue, ie
    new = sp["test_new"]
    out = {"all": evaluate(pop, sp), "old": evaluate(pop, sp, ~new)}
    out["new"] = evaluate(pop, sp, new) if new.any() else None
    return out


# ----------------------------------------------------------------------------------------------
# the run
# ----------------------------------------------------------------------------------------------
def run_dataset(args, name: str) -> dict:
    raw, source = load_log(name, args.data_dir)
    sp = split(raw)
    st = sp["stats"]
    print(f"\n== {name}: {source}\n   {st}", flush=True)
    runs = []
    for seed in range(args.seeds):
        t0 = time.perf_counter()
        model = train(args, sp["first"], seed)
        first_s = time.perf_counter() - t0
        stale = {"old": evaluate(model, sp, ~sp["test_new"])}
        sweep = sweep_settings(args, model, sp, seed)
        time.sleep(0.3)  # let other jobs' busy-waiting threads settle (common.alternate)
        t0 = time.perf_counter()
        hist = model.update(sp["update"], epochs=args.update_epochs, replay=args.replay,
                            num_negatives=args.negatives, batch_size=args.batch_size,
                            seed=seed, verbose=0)
        update_s = time.perf_counter() - t0
        updated = groups(model, sp)
        time.sleep(0.3)
        t0 = time.perf_counter()
        retrained = train(args, sp["upto"], seed)
        retrain_s = time.perf_counter() - t0
        scratch = groups(retrained, sp)
        r = {"seed": seed, "first_s": first_s, "update_s": update_s, "retrain_s": retrain_s,
             "update_loss": hist.history["loss"][-1], "update": updated, "retrain": scratch,
             "stale": stale, "sweep": sweep,
             "grown": {"users": len(model.user_encoder), "items": len(model.item_encoder),
                       "seen": model.seen_matrix.nnz}}
        runs.append(r)
        print(f"   seed {seed}: update HR@10 {updated['all']['hr10']:.4f} NDCG@10 "
              f"{updated['all']['ndcg10']:.4f} ({update_s:.2f}s) | retrain HR@10 "
              f"{scratch['all']['hr10']:.4f} NDCG@10 {scratch['all']['ndcg10']:.4f} "
              f"({retrain_s:.2f}s) | stale old users HR@10 {stale['old']['hr10']:.4f}", flush=True)
    return {"source": source, "stats": st, "runs": runs, "popularity": popularity(sp),
            "summary": summarize(runs)}


def parse_sweep(text: str) -> list[tuple[int, float]]:
    """``"1:0,2:0.5"`` -> ``[(1, 0.0), (2, 0.5)]``: (update epochs, replay) settings."""
    out = []
    for part in filter(None, text.split(",")):
        e, r = part.split(":")
        out.append((int(e), float(r)))
    return out


def sweep_settings(args, model, sp: dict, seed: int) -> list[dict]:
    """HR@10 / NDCG@10 of each ``--sweep`` setting, every one updating a copy of ``model``."""
    out = []
    if not args.sweep:
        return out
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "first.neurec")
        model.save(path)
        for epochs, replay in parse_sweep(args.sweep):
            m = neurec.models.load_model(path)
            t0 = time.perf_counter()
            m.update(sp["update"], epochs=epochs, replay=replay, num_negatives=args.negatives,
                     batch_size=args.batch_size, seed=seed, verbose=0)
            secs = time.perf_counter() - t0
            out.append({"epochs": epochs, "replay": replay, "seconds": secs, **evaluate(m, sp)})
    return out


def _ms(values) -> dict:
    a = np.asarray([v for v in values if v is not None], dtype=np.float64)
    return {"mean": float(a.mean()), "sd": float(a.std(ddof=1)) if a.size > 1 else 0.0}


def summarize(runs: list[dict]) -> dict:
    out = {}
    for who in ("update", "retrain"):
        for grp in ("all", "old", "new"):
            for met in ("hr10", "ndcg10"):
                vals = [r[who][grp][met] if r[who][grp] else None for r in runs]
                if any(v is not None for v in vals):
                    out[f"{who}_{grp}_{met}"] = _ms(vals)
    out["stale_old_hr10"] = _ms([r["stale"]["old"]["hr10"] for r in runs])
    out["stale_old_ndcg10"] = _ms([r["stale"]["old"]["ndcg10"] for r in runs])
    sweep = []
    for k, first in enumerate(runs[0]["sweep"]):
        sweep.append({"epochs": first["epochs"], "replay": first["replay"],
                      "hr10": _ms([r["sweep"][k]["hr10"] for r in runs]),
                      "ndcg10": _ms([r["sweep"][k]["ndcg10"] for r in runs]),
                      "gap": _ms([r["sweep"][k]["hr10"] - r["retrain"]["all"]["hr10"] for r in runs]),
                      "seconds": float(np.median([r["sweep"][k]["seconds"] for r in runs]))})
    out["sweep"] = sweep
    out["hr10_gap"] = _ms([r["update"]["all"]["hr10"] - r["retrain"]["all"]["hr10"] for r in runs])
    out["update_s"] = float(np.median([r["update_s"] for r in runs]))
    out["retrain_s"] = float(np.median([r["retrain_s"] for r in runs]))
    out["first_s"] = float(np.median([r["first_s"] for r in runs]))
    out["time_ratio"] = common.median_ratio([r["update_s"] for r in runs],
                                            [r["retrain_s"] for r in runs])
    return out


def _pm(d: dict | None, digits: int = 4) -> str:
    if not d:
        return "—"
    return f"{d['mean']:.{digits}f} ± {d['sd']:.{digits}f}"


def markdown(rec: dict) -> str:
    cfg = rec["config"]
    lines = common.md_head("# Keeping a model fresh: update vs retrain", rec["machine"]) + [
        f"Model {cfg['model']} (factors {cfg['factors']}, layers {cfg['layers']}), Adam lr "
        f"{cfg['lr']}, batch {cfg['batch_size']}, {cfg['negatives']} negatives; first fit and "
        f"retrain {cfg['epochs']} epochs; update {cfg['update_epochs']} epochs with replay "
        f"{cfg['replay']}; {cfg['threads']} threads; {cfg['seeds']} seeds (mean ± sd). "
        "Full ranking (docs/PROTOCOL.md), see bench_lifecycle.py for the split.",
        "",
    ]
    for name, d in rec["datasets"].items():
        st, s = d["stats"], d["summary"]
        pop = d["popularity"]
        lines += [
            f"## {name}",
            "",
            f"{d['source']}: {st['rows']:,} interactions, {st['users']:,} users, "
            f"{st['items']:,} items. Update slice: {st['update_rows']:,} interactions, "
            f"{st['update_users']:,} users of which {st['update_new_users']:,} new, "
            f"{st['update_new_items']:,} new items. Test: {st['test_users']:,} users, "
            f"{st['test_new_users']:,} new ({st['test_new_share']:.1%}).",
            "",
        ]
        rows = [
            ["update (first fit + update)", _pm(s["update_all_hr10"]), _pm(s["update_all_ndcg10"]),
             _pm(s["update_old_hr10"]), _pm(s.get("update_new_hr10")), f"{s['update_s']:.2f} s"],
            ["retrain on 90%", _pm(s["retrain_all_hr10"]), _pm(s["retrain_all_ndcg10"]),
             _pm(s["retrain_old_hr10"]), _pm(s.get("retrain_new_hr10")), f"{s['retrain_s']:.2f} s"],
            ["stale (first fit only; old users)", "—", "—", _pm(s["stale_old_hr10"]), "—",
             "0"],
            ["popularity (90%)", f"{pop['all']['hr10']:.4f}", f"{pop['all']['ndcg10']:.4f}",
             f"{pop['old']['hr10']:.4f}",
             f"{pop['new']['hr10']:.4f}" if pop["new"] else "—", "—"],
        ]
        lines += [
            common.md_table(["model", "HR@10", "NDCG@10", "HR@10 old users", "HR@10 new users",
                             "time"], rows),
            "",
            f"- HR@10 update − retrain: {_pm(s['hr10_gap'])} (target ≥ −0.01).",
            f"- Update time / retrain time: {s['time_ratio']:.3f} (median of per-seed ratios; "
            f"target ≤ 0.20); the first fit on 80% took {s['first_s']:.2f} s.",
            "",
        ]
        if s["sweep"]:
            lines += [
                "Other update settings, each on a copy of the same first fit:",
                "",
                common.md_table(
                    ["update epochs", "replay", "HR@10", "NDCG@10", "HR@10 − retrain", "time"],
                    [[w["epochs"], w["replay"], _pm(w["hr10"]), _pm(w["ndcg10"]), _pm(w["gap"]),
                      f"{w['seconds']:.2f} s"] for w in s["sweep"]]),
                "",
            ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = common.bench_parser(__doc__, datasets=",".join(DATASETS), epochs=10, threads=2,
                             quick="purchases only, 1 seed, 3 epochs, one sweep setting",
                             name="results name (default lifecycle[_quick])")
    ap.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    ap.add_argument("--model", default="neumf", choices=["neumf", "gmf", "mlp"])
    ap.add_argument("--factors", type=int, default=8)
    ap.add_argument("--layers", default="64,32,16,8")
    ap.add_argument("--lr", type=float, default=0.001)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--negatives", type=int, default=4)
    ap.add_argument("--update-epochs", type=int, default=2)
    ap.add_argument("--replay", type=float, default=1.0)
    ap.add_argument("--sweep", default="1:0,1:1,2:0.5,3:2,6:1",
                    help="more update settings EPOCHS:REPLAY,... ('' for none)")
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args(argv)
    if args.quick:
        args.datasets, args.seeds, args.epochs, args.sweep = "purchases", 1, 3, "1:0"
    run = common.Run(args.threads)
    datasets = {name: run_dataset(args, name) for name in args.datasets.split(",") if name}
    config = {k: v for k, v in vars(args).items() if k != "data_dir"}
    return run.finish("lifecycle", common.result_name(args, "lifecycle"), config,
                      {"datasets": datasets}, markdown)


if __name__ == "__main__":
    sys.exit(main())
