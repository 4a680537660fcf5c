"""Fold-in of unseen users: quality against the full fit, and time, on a leave-users-out split.

Protocol. ``--holdout`` users (seeded) are removed entirely from training. Model A trains on
every user (the full fit); model B, with the same settings and seed, on the others only. The
held-out users are then folded into B from their training interactions
(``Model.fold_in``; nothing of B but the new rows changes) and their held-out test item is
ranked: full ranking (among every item they have not trained on) and the NCF protocol (among
the split's 99 fixed negatives). The same users in A are the reference: HR@10 / NDCG@10 of
folded-in vs fully-trained users, with the paired difference and its standard error. Models:
NeuMF (factor 8, tower 64-32-16-8, Adam 0.001, 4 negatives), MF (32 factors with biases,
Adam 0.001, 8 negatives: accuracy_ml-1m_mf's best), iALS (MF 64 factors without biases,
``ALS()`` defaults); SGD fold-in and the closed form (``method='solve'``) where the model is a
dot product. Popularity (the most-trained items) is the floor.

Time: ``fold_in`` of 1,000 new users with 20 items each (drawn from held-out users'
histories) into the trained NeuMF (and MF), one thread (``neurec.set_num_threads(1)``),
median of ``--reps``; also ``recommend(histories=..., k=10)`` (fold-in on scratch rows plus
the top-10 over the catalog).

``--grid``: the SGD fold-in settings behind the defaults, one changed at a time (NeuMF, MF).
Also measured: the first 100 held-out users folded in one call each (a row trains the same
alone or in a group), and users B was trained on folded back in as new users (the fold-in's
own error, on the very items their rows were fitted with).

Data: ``--dataset ml-1m`` (the NCF split; ``../shared/data``, see ``ncf_data.py``), ``ml-100k``,
or ``planted`` (generated: taste groups of users and items, no files needed).

Run: ``nice -n 5 python benchmarks/bench_foldin.py`` (~25 min; ``--cache DIR`` keeps the
trained models between runs), ``--dataset planted`` (~3 min), ``--quick`` (~1 min).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import neurec  # noqa: E402
from ncf_data import NCFData, load_dataset  # noqa: E402
from neurec.data import InteractionMatrix, NegativeSampler  # noqa: E402
from neurec.evaluation import evaluate_full, evaluate_sampled  # noqa: E402
from neurec.models import MF, NeuMF, load_model  # noqa: E402
from neurec.models._foldin import DEFAULTS  # noqa: E402
from neurec.optimizers import ALS, Adam  # noqa: E402

MODELS = {
    # name: (builder(n_users, n_items), optimizer, negatives, fold-in methods)
    "neumf": (lambda nu, ni: NeuMF(nu, ni, 8, (64, 32, 16, 8)), lambda: Adam(0.001), 4, ("sgd",)),
    "mf": (lambda nu, ni: MF(nu, ni, 32), lambda: Adam(0.001), 8, ("sgd", "solve")),
    "ials": (lambda nu, ni: MF(nu, ni, 64, use_bias=False), ALS, 0, ("solve", "sgd")),
}


# -- data ----------------------------------------------------------------------------------
def planted(n_users: int = 6000, n_items: int = 2000, groups: int = 40, seed: int = 0) -> NCFData:
    """A generated leave-one-out split with learnable structure: each user belongs to one of
    ``groups`` taste groups (item ``i`` to group ``i % groups``); 80 % of a user's items come
    from their group, Zipf-like inside it, the rest from the whole catalog by popularity.
    Histories have 2 + Poisson(Gamma) items (mean ~40); the last one is the test item."""
    rng = np.random.default_rng(seed)
    group = rng.integers(0, groups, n_users)
    pop = 1.0 / np.arange(1, n_items + 1) ** 0.8
    pop = pop[rng.permutation(n_items)]
    pop /= pop.sum()
    per = n_items // groups
    members = [np.arange(g, per * groups, groups) for g in range(groups)]
    lengths = 2 + rng.poisson(rng.gamma(1.0, 38.0, n_users))
    lengths = np.minimum(lengths, per - 1)
    tu, ti, su, si = [], [], [], []
    for u in range(n_users):
        mem = members[group[u]]
        w = pop[mem] / pop[mem].sum()
        n_own = rng.binomial(lengths[u], 0.8)
        own = rng.choice(mem, n_own, replace=False, p=w)
        other = rng.choice(n_items, lengths[u] - n_own, replace=False, p=pop)
        items = np.unique(np.concatenate([own, other]))
        rng.shuffle(items)
        su.append(u)
        si.append(items[-1])
        tu.append(np.full(items.size - 1, u))
        ti.append(items[:-1])
    tu, ti = np.concatenate(tu), np.concatenate(ti)
    keys = np.unique(tu * n_items + ti)
    tu, ti = keys // n_items, keys % n_items
    indptr = np.zeros(n_users + 1, np.int64)
    np.cumsum(np.bincount(tu, minlength=n_users), out=indptr[1:])
    su, si = np.array(su, np.int64), np.array(si, np.int64)
    negatives = np.empty((n_users, 99), np.int64)
    for r, u in enumerate(su):
        seen = set(ti[indptr[u]:indptr[u + 1]].tolist()) | {int(si[r])}
        cand = rng.choice(n_items, 99 + len(seen) + 8, replace=False)
        negatives[r] = [c for c in cand if c not in seen][:99]
    return NCFData(n_users, n_items, tu, ti, keys, indptr, su, si, negatives)


class Split:
    """Leave-users-out: ``held`` users out of the training of model B (kept users renumbered)."""

    def __init__(self, d: NCFData, holdout: int, seed: int = 0):
        rng = np.random.default_rng(seed)
        tested = np.unique(d.test_users)
        self.d = d
        self.held = np.sort(rng.choice(tested, min(holdout, tested.size // 2), replace=False))
        keep = np.setdiff1d(np.arange(d.n_users), self.held)
        self.remap = np.full(d.n_users, -1, np.int64)
        self.remap[keep] = np.arange(keep.size)
        mask = self.remap[d.train_users] >= 0
        self.kept_users, self.kept_items = self.remap[d.train_users[mask]], d.train_items[mask]
        self.n_kept = keep.size
        pos = np.searchsorted(d.test_users, self.held)
        self.test_items, self.negatives = d.test_items[pos], d.test_negatives[pos]
        self.histories = [d.train_items[d.indptr[u]:d.indptr[u + 1]] for u in self.held]

    def history_matrix(self, ids: np.ndarray) -> InteractionMatrix:
        """The histories as rows ``ids`` (the folded-in users' ids) of a matrix."""
        lens = [h.size for h in self.histories]
        return InteractionMatrix.from_arrays(np.repeat(ids, lens), np.concatenate(self.histories),
                                             shape=(int(ids.max()) + 1, self.d.n_items))


# -- training -------------------------------------------------------------------------------
def train(kind: str, users, items, n_users: int, n_items: int, epochs: int, cache: str | None,
          tag: str):
    build, opt, negatives, _ = MODELS[kind]
    path = os.path.join(cache, f"foldin_{kind}_{tag}_{n_users}x{n_items}_e{epochs}.neurec") \
        if cache else None
    if path and os.path.exists(path):
        return load_model(path), float("nan")
    neurec.utils.set_random_seed(0)
    model = build(n_users, n_items)
    model.compile(optimizer=opt(), loss="binary_crossentropy")
    t0 = time.perf_counter()
    if kind == "ials":
        model.fit(InteractionMatrix.from_arrays(users, items, shape=(n_users, n_items)),
                  epochs=epochs, verbose=0)
    else:
        model.fit(NegativeSampler((users, items), num_negatives=negatives, n_users=n_users,
                                  n_items=n_items, seed=0),
                  epochs=epochs, batch_size=256, verbose=0, seed=0)
    seconds = time.perf_counter() - t0
    if path:
        os.makedirs(cache, exist_ok=True)
        model.save(path)
    return model, seconds


def metrics(model, s: Split, users: np.ndarray, exclude) -> dict[str, np.ndarray]:
    full = evaluate_full(model, users, s.test_items, exclude, n_items=s.d.n_items, per_user=True)
    sampled = evaluate_sampled(model, users, s.test_items, s.negatives, per_user=True)
    return {"full_hr": full["hr@10"], "full_ndcg": full["ndcg@10"],
            "sampled_hr": sampled["hr@10"], "sampled_ndcg": sampled["ndcg@10"]}


def compare(ref: dict, got: dict) -> dict[str, float]:
    out: dict[str, float] = {}
    for k in ref:
        diff = got[k] - ref[k]
        out[k] = float(got[k].mean())
        out[k + "_diff"] = float(diff.mean())
        out[k + "_se"] = float(diff.std(ddof=1) / np.sqrt(diff.size))
    return out


def popularity(s: Split) -> dict[str, float]:
    counts = np.bincount(s.kept_items, minlength=s.d.n_items).astype(np.float64)
    ranks_full, ranks_sampled = [], []
    for h, t, neg in zip(s.histories, s.test_items, s.negatives):
        c = counts.copy()
        c[h] = -np.inf
        ranks_full.append(int((c > c[t]).sum()))
        ranks_sampled.append(int((counts[neg] > counts[t]).sum()))

    def hr_ndcg(r):
        r = np.array(r)
        return float((r < 10).mean()), float(np.where(r < 10, 1 / np.log2(r + 2), 0).mean())

    (fh, fn), (sh, sn) = hr_ndcg(ranks_full), hr_ndcg(ranks_sampled)
    return {"full_hr": fh, "full_ndcg": fn, "sampled_hr": sh, "sampled_ndcg": sn}


def fold_in_copy(path: str, s: Split, threads: int, seed: int = 0, **kw):
    """Load B, fold the held-out users in (timed, ``threads`` threads), return (model, ids, s)."""
    model = load_model(path)
    neurec.set_num_threads(threads)
    t0 = time.perf_counter()
    ids = model.fold_in([h.tolist() for h in s.histories], seed=seed, **kw)
    return model, ids, time.perf_counter() - t0


def fold_in_seeds(path: str, s: Split, ref: dict, threads: int, seeds: int, method: str
                  ) -> dict[str, Any]:
    """Fold-ins with seeds ``0..seeds-1``: each user's metrics averaged over the seeds, against
    ``ref``; ``*_diff_seeds`` lists each seed's mean diff (their spread: the seed's share)."""
    per_seed, secs = [], []
    for seed in range(seeds):
        model, ids, t = fold_in_copy(path, s, threads, seed=seed, method=method)
        per_seed.append(metrics(model, s, ids, s.history_matrix(ids)))
        secs.append(t)
    mean = {k: np.mean([m[k] for m in per_seed], axis=0) for k in ref}
    out = {"fold_in_s": float(np.median(secs)), "seeds": seeds, **compare(ref, mean)}
    for k in ref:
        out[k + "_diff_seeds"] = [float((m[k] - ref[k]).mean()) for m in per_seed]
    return out


# -- time ----------------------------------------------------------------------------------------
def time_fold_in(path: str, s: Split, reps: int, n_users: int = 1000, per_user: int = 20,
                 **kw) -> dict[str, Any]:
    rng = np.random.default_rng(1)
    pool = [h for h in s.histories if h.size >= per_user] or s.histories
    hist = [rng.choice(pool[r % len(pool)], min(per_user, pool[r % len(pool)].size),
                       replace=False).tolist() for r in range(n_users)]
    neurec.set_num_threads(1)
    fold, rec = [], []
    for r in range(reps):
        model = load_model(path)
        model.predict([np.zeros(1, np.int64), np.zeros(1, np.int64)])  # plan built, as in service
        t0 = time.perf_counter()
        model.fold_in(hist, seed=r, **kw)
        fold.append(time.perf_counter() - t0)
        model = load_model(path)
        t0 = time.perf_counter()
        model.recommend(histories=hist, k=10, seed=r, fold_in_options=dict(kw))
        rec.append(time.perf_counter() - t0)
    return {"users": n_users, "items_per_user": per_user, "fold_in_s": fold,
            "recommend_histories_s": rec, "fold_in_median_s": float(np.median(fold)),
            "recommend_histories_median_s": float(np.median(rec)), "settings": kw}


# -- main ----------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = common.bench_parser(__doc__, dataset="ml-1m", epochs=20, reps=5, threads=2,
                             quick="ml-100k, 3 epochs, 200 users", name=None)
    ap.add_argument("--holdout", type=int, default=1000, help="users left out of training")
    ap.add_argument("--models", default="neumf,mf,ials")
    ap.add_argument("--cache", default=None, help="folder keeping trained models between runs")
    ap.add_argument("--grid", action="store_true", help="SGD fold-in settings around the defaults")
    ap.add_argument("--seeds", type=int, default=4, help="fold-in seeds of the main rows")
    args = ap.parse_args(argv)
    if args.quick:
        args.dataset, args.epochs, args.holdout, args.reps = "ml-100k", 3, 200, 2
        args.models, args.seeds = "neumf,mf", 2
    run = common.Run(args.threads)
    d = planted() if args.dataset == "planted" else load_dataset(args.dataset)
    s = Split(d, args.holdout)
    print(f"{args.dataset}: {d.n_users} users, {d.n_items} items, {d.num_train} positives; "
          f"{s.held.size} users held out", flush=True)
    tmp = tempfile.mkdtemp(prefix="bench_foldin_")
    rows, timings, grid, refolds = [], {}, [], []
    pop = popularity(s)
    full_train = InteractionMatrix.from_arrays(d.train_users, d.train_items,
                                               shape=(d.n_users, d.n_items))
    for kind in args.models.split(","):
        epochs = 15 if kind == "ials" else args.epochs
        neurec.set_num_threads(args.threads)
        a, a_s = train(kind, d.train_users, d.train_items, d.n_users, d.n_items, epochs,
                       args.cache, "full")
        b, b_s = train(kind, s.kept_users, s.kept_items, s.n_kept, d.n_items, epochs, args.cache,
                       "kept")
        path = os.path.join(tmp, f"{kind}_kept.neurec")
        b.save(path)
        ref = metrics(a, s, s.held, full_train)
        rows.append({"model": kind, "users": "full fit", "train_s": a_s,
                     **{k: float(v.mean()) for k, v in ref.items()}})
        print(rows[-1], flush=True)
        for method in MODELS[kind][3]:
            rows.append({"model": kind, "users": f"fold-in {method}", "threads": args.threads,
                         **fold_in_seeds(path, s, ref, args.threads, args.seeds, method)})
            print(rows[-1], flush=True)
        if kind != "ials":
            together, single = rows[-1], one_at_a_time(path, s, ref, min(100, s.held.size),
                                                       args.threads)
            rows.append({"model": kind, **single, "users": f"fold-in sgd, first "
                         f"{single['users']} one at a time"})
            print(rows[-1], together["full_hr"], flush=True)
        refolds.append({"model": kind, **refold(load_model(path), s, min(1000, s.n_kept // 2),
                                                args.threads, MODELS[kind][3][0])})
        print(refolds[-1], flush=True)
        timings[kind] = {m: time_fold_in(path, s, args.reps, method=m) for m in MODELS[kind][3]}
        print(kind, {m: (t["fold_in_median_s"], t["recommend_histories_median_s"])
                     for m, t in timings[kind].items()}, flush=True)
        if args.grid and kind != "ials":
            grid += [{"model": kind, **g} for g in run_grid(path, s, ref, args.threads)]
    config = {**common.settings(args, "dataset", "epochs", "threads", "reps", "models", "seeds"),
              "holdout": int(s.held.size), "defaults": DEFAULTS}
    payload = {"rows": rows, "popularity": pop, "timings": timings, "grid": grid,
               "refold": refolds}
    return run.finish("foldin", common.result_name(args, f"foldin_{args.dataset}"), config,
                      payload, markdown)


GRID = ([{}] + [{"learning_rate": x} for x in (0.005, 0.01, 0.05)]
        + [{"epochs": x} for x in (4, 8, 32)] + [{"batch_per_user": x} for x in (16, 25, 64)]
        + [{"init": "random"}, {"num_negatives": 8}])


def run_grid(path: str, s: Split, ref: dict, threads: int) -> list[dict[str, Any]]:
    """SGD fold-in with one setting changed from the defaults at a time."""
    out = []
    for change in GRID:
        settings = {**DEFAULTS, **change}
        model, ids, secs = fold_in_copy(path, s, threads, method="sgd", **settings)
        got = metrics(model, s, ids, s.history_matrix(ids))
        out.append({**settings, "changed": ", ".join(f"{k}={v}" for k, v in change.items())
                    or "defaults", "fold_in_s": secs, **compare(ref, got)})
        print(out[-1], flush=True)
    return out


def refold(b, s: Split, n: int, threads: int, method: str) -> dict[str, Any]:
    """Fold ``n`` users B was trained on back in as new users: the fold-in's own error, on
    the very items their trained rows were fitted against (no smaller training set)."""
    d = s.d
    kept = np.flatnonzero(s.remap >= 0)
    pick = np.sort(np.random.default_rng(2).choice(kept, n, replace=False))
    sub = Split.__new__(Split)
    sub.d, sub.held = d, pick
    pos = np.searchsorted(d.test_users, pick)
    sub.test_items, sub.negatives = d.test_items[pos], d.test_negatives[pos]
    sub.histories = [d.train_items[d.indptr[u]:d.indptr[u + 1]] for u in pick]
    own = InteractionMatrix.from_arrays(s.kept_users, s.kept_items, shape=(s.n_kept, d.n_items))
    ref = metrics(b, sub, s.remap[pick], own)
    neurec.set_num_threads(threads)
    ids = b.fold_in([h.tolist() for h in sub.histories], seed=0, method=method)
    return {"users": n, "method": method, **compare(ref, metrics(b, sub, ids,
                                                                  sub.history_matrix(ids))),
            **{"trained_" + k: float(v.mean()) for k, v in ref.items()}}


def one_at_a_time(path: str, s: Split, ref: dict, n: int, threads: int) -> dict[str, Any]:
    """The first ``n`` held-out users folded in one call each, against the same users in
    one call of all of them (steps of ``batch_per_user`` samples per user: the same either
    way)."""
    model = load_model(path)
    neurec.set_num_threads(threads)
    ids = np.array([model.fold_in([s.histories[r].tolist()], seed=r)[0] for r in range(n)])
    head = Split.__new__(Split)
    head.d, head.held = s.d, s.held[:n]
    head.test_items, head.negatives, head.histories = (s.test_items[:n], s.negatives[:n],
                                                        s.histories[:n])
    single = metrics(model, head, ids, head.history_matrix(ids))
    return {"users": n, **compare({k: v[:n] for k, v in ref.items()}, single)}


def _f(x: float, d: int = 4) -> str:
    return "—" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.{d}f}"


def _pm(r: dict, k: str) -> str:
    if k + "_diff" not in r:
        return ""
    out = f"{r[k + '_diff']:+.4f} ± {r[k + '_se']:.4f}"
    seeds = r.get(k + "_diff_seeds")
    return out + (f" [{min(seeds):+.3f}, {max(seeds):+.3f}]" if seeds else "")


def markdown(rec: dict[str, Any]) -> str:
    c = rec["config"]
    lines = [*common.md_head(f"# Fold-in of unseen users ({c['dataset']}, leave "
                             f"{c['holdout']} users out)", rec["machine"]),
             "Model A trains on every user, model B (same settings, seed 0) without the held-out "
             "users; these are then folded into B (`Model.fold_in`) from their training "
             "interactions. HR@10 / NDCG@10 of their held-out test item: full ranking (among all "
             "items they did not train on) and sampled (among the split's 99 negatives). Diff = "
             "folded-in minus the same users in A's full fit, ± its paired standard error. "
             f"Fold-in rows: each user's metrics averaged over {c['seeds']} fold-in seeds "
             "(in brackets: the range of the single seeds' diffs). "
             f"Fold-in defaults: {rec['config']['defaults']}.", "",
             "## Quality", "",
             "| model | users | full HR@10 | full NDCG@10 | sampled HR@10 | sampled NDCG@10 "
             "| full HR diff | sampled HR diff | fold-in s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rec["rows"]:
        lines.append(f"| {r['model']} | {r['users']} | {_f(r['full_hr'])} | {_f(r['full_ndcg'])} "
                     f"| {_f(r['sampled_hr'])} | {_f(r['sampled_ndcg'])} | {_pm(r, 'full_hr')} "
                     f"| {_pm(r, 'sampled_hr')} | {_f(r.get('fold_in_s'), 2)} |")
    p = rec["popularity"]
    lines.append(f"| popularity | held-out | {_f(p['full_hr'])} | {_f(p['full_ndcg'])} "
                 f"| {_f(p['sampled_hr'])} | {_f(p['sampled_ndcg'])} | | | |")
    lines += ["", f"Fold-in seconds above: all held-out users with their whole histories, "
              f"{c['threads']} threads.", "",
              "## Time: 1,000 new users x 20 items, one thread", "",
              "| model | method | fold_in (median s) | recommend(histories=, k=10) (median s) "
              "| runs |", "|---|---|---|---|---|"]
    for kind, by in rec["timings"].items():
        for method, t in by.items():
            lines.append(f"| {kind} | {method} | {t['fold_in_median_s']:.3f} "
                         f"| {t['recommend_histories_median_s']:.3f} "
                         f"| {', '.join(f'{x:.3f}' for x in t['fold_in_s'])} |")
    lines += ["", "## Re-folding users B was trained on", "",
              "The fold-in's own error: users of B's training set folded back in as new users "
              "(their training items), against their trained rows in B; the items are the very "
              "ones those rows were fitted with.", "",
              "| model | method | users | trained full HR@10 | re-folded full HR@10 | diff "
              "| trained sampled HR@10 | re-folded sampled HR@10 | diff |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in rec["refold"]:
        lines.append(f"| {r['model']} | {r['method']} | {r['users']} | {_f(r['trained_full_hr'])} "
                     f"| {_f(r['full_hr'])} | {_pm(r, 'full_hr')} "
                     f"| {_f(r['trained_sampled_hr'])} | {_f(r['sampled_hr'])} "
                     f"| {_pm(r, 'sampled_hr')} |")
    if rec["grid"]:
        lines += ["", "## SGD fold-in settings, one changed from the defaults at a time", "",
                  "Held-out users, diffs against the full fit as above.", "",
                  "| model | changed | full HR@10 | full HR diff | full NDCG diff | sampled HR@10 "
                  "| sampled HR diff | sampled NDCG diff | s |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for g in rec["grid"]:
            lines.append(f"| {g['model']} | {g['changed']} | {_f(g['full_hr'])} "
                         f"| {_pm(g, 'full_hr')} | {_pm(g, 'full_ndcg')} | {_f(g['sampled_hr'])} "
                         f"| {_pm(g, 'sampled_hr')} | {_pm(g, 'sampled_ndcg')} "
                         f"| {_f(g['fold_in_s'], 2)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
