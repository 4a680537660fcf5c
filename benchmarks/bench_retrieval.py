"""Approximate retrieval and two-stage recommend: recall@10 vs exact, speed-ups, HR/NDCG.

Usage (from the repository root; long runs under ``nice``):
    nice -n 5 python benchmarks/bench_retrieval.py                  # ml-1m + 1M synthetic items
    python benchmarks/bench_retrieval.py --quick                    # smoke run (< 60 s)
    python benchmarks/bench_retrieval.py --only-two-stage --n-candidates 200   # part 2 alone

Part 1, recall and speed (MF, 64 factors; no exclusions, so that every contender answers
the same question; neurec also with the training items excluded):

- neurec exact: ``model.recommend(users, k=10)`` (fused dot-product + top-K in C);
- neurec ``build_index("hnsw" | "ivf")`` + ``recommend(index=)``: faiss behind it, with the
  MIPS->L2 augmentation, over-fetch, exact re-scoring of the fetched items;
- faiss and hnswlib used directly on the same augmented vectors (fetch 10, no re-scoring);
- NumPy: ``U_block @ V.T`` + ``np.argpartition`` + sort of the 10 (exact);
- implicit's ANN models (``implicit.approximate_als``) when implicit is installed, else skipped.

Data: ml-1m (MF trained ``--epochs`` with neurec, 6,040 users x 3,706 items), and a synthetic
catalogue of ``--items`` (default 1M) items in 64 dimensions with cluster structure (items and
users drawn around 1,000 random centres; random Gaussian vectors, without structure, are the
worst case of every ANN method and unlike trained embeddings).

Part 2, two-stage (ml-1m): NeuMF trained ``--epochs``; HR@10 / NDCG@10 of the held-out item
under full ranking (training items excluded) for the exhaustive NeuMF ``recommend`` and for
``recommend(candidates=mf, n_candidates=N)`` (MF exact and MF through its HNSW index, and
``'popular'``); milliseconds per 1,000 users, the contenders taking turns rep by rep.

Times are medians of ``--reps`` alternating repetitions; the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import time
from typing import Any, Callable

import numpy as np

import common
import ncf_data

K = 10


def _median_time(fn: Callable[[], Any], reps: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), out


def _recall(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.mean([len(set(a[a >= 0]) & set(b[b >= 0])) / max(1, int((b >= 0).sum()))
                          for a, b in zip(got, want)]))


def _mf_with(uv: np.ndarray, iv: np.ndarray) -> Any:
    """An MF model whose score ranks like ``uv . iv`` (no biases)."""
    from neurec.models import MF

    model = MF(uv.shape[0], iv.shape[0], factors=uv.shape[1], use_bias=False)
    model.get_layer("mf_user_embedding").embeddings[...] = uv
    model.get_layer("mf_item_embedding").embeddings[...] = iv
    model.get_layer("prediction").kernel[...] = 1.0
    return model


def _synthetic(n_users: int, n_items: int, d: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(1000, d)).astype(np.float32)
    iv = centres[rng.integers(0, 1000, n_items)] + 0.5 * rng.normal(size=(n_items, d)).astype(
        np.float32)
    uv = centres[rng.integers(0, 1000, n_users)] + 0.5 * rng.normal(size=(n_users, d)).astype(
        np.float32)
    iv *= rng.lognormal(0, 0.3, size=(n_items, 1)).astype(np.float32)  # popularity in the norm
    return uv, iv


def _vectors(model: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    from neurec.models._dot import dot_structure

    build = dot_structure(model, model.inputs[0], model.inputs[1])
    return build(np.arange(model.get_layer("mf_user_embedding").input_dim))


def _numpy_exact(uv, iv, ib) -> np.ndarray:
    out = np.empty((uv.shape[0], K), np.int64)
    per = max(1, (1 << 22) // iv.shape[0])
    for s in range(0, uv.shape[0], per):
        sc = uv[s:s + per] @ iv.T + (0 if ib is None else ib)
        part = np.argpartition(-sc, K, axis=1)[:, :K]
        order = np.argsort(-np.take_along_axis(sc, part, axis=1), axis=1, kind="stable")
        out[s:s + per] = np.take_along_axis(part, order, axis=1)
    return out


def recall_speed(name: str, model: Any, users: np.ndarray, exclude: Any, reps: int,
                 hnsw_settings: dict, rows: list) -> None:
    from neurec.models._index import augment_items, augment_users

    uv_all, iv, ib = _vectors(model)
    uv = uv_all[users]
    t_exact, exact = _median_time(
        lambda: model.recommend(users, k=K, exclude=False, verbose=0)[0], reps)
    print(f"[{name}] {users.size} users x {iv.shape[0]} items x {iv.shape[1]}: neurec exact "
          f"{t_exact * 1e3:.0f} ms", flush=True)
    rows.append((name, "neurec exact (fused C)", "-", t_exact, 1.0, 1.0))
    t_np, got = _median_time(lambda: _numpy_exact(uv, iv, ib), reps)
    rows.append((name, "NumPy @ + argpartition", "-", t_np, _recall(got, exact), t_exact / t_np))
    for kind, settings in (("hnsw", hnsw_settings), ("ivf", {})):
        t0 = time.perf_counter()
        idx = model.build_index(kind, **settings)
        build = time.perf_counter() - t0
        t, got = _median_time(
            lambda idx=idx: model.recommend(users, k=K, exclude=False, index=idx, verbose=0)[0],
            reps)
        rows.append((name, f"neurec index {kind} {idx.params}", f"{build:.1f}", t,
                     _recall(got, exact), t_exact / t))
        if exclude is not None:
            want = model.recommend(users, k=K, exclude=exclude, verbose=0)[0]
            t, got = _median_time(lambda idx=idx: model.recommend(
                users, k=K, exclude=exclude, index=idx, verbose=0)[0], reps)
            rows.append((name, "  same, training items excluded", "", t, _recall(got, want),
                         None))
        print(f"[{name}] {rows[-1]}", flush=True)
    x, q = augment_items(iv, ib), augment_users(uv)
    try:
        import faiss

        p = dict(M=32, ef_construction=200, ef_search=128, **hnsw_settings)
        t0 = time.perf_counter()
        hn = faiss.IndexHNSWFlat(x.shape[1], p["M"])
        hn.hnsw.efConstruction = p["ef_construction"]
        hn.add(x)
        build = time.perf_counter() - t0
        hn.hnsw.efSearch = p["ef_search"]
        t, (_, got) = _median_time(lambda: hn.search(q, K), reps)
        rows.append((name, f"faiss HNSW direct (ef_search {p['ef_search']})", f"{build:.1f}", t,
                     _recall(got, exact), t_exact / t))
    except ImportError:
        print("faiss-cpu not installed: skipped (pip install 'neurec[ann]')")
    try:
        import hnswlib

        t0 = time.perf_counter()
        hl = hnswlib.Index(space="l2", dim=x.shape[1])
        hl.init_index(max_elements=x.shape[0], M=32, ef_construction=200, random_seed=0)
        hl.add_items(x)
        build = time.perf_counter() - t0
        hl.set_ef(128)
        t, (got, _) = _median_time(lambda: hl.knn_query(q, k=K), reps)
        rows.append((name, "hnswlib direct (M 32, ef 128)", f"{build:.1f}", t,
                     _recall(got.astype(np.int64), exact), t_exact / t))
    except ImportError:
        print("hnswlib not installed: skipped")
    try:
        from implicit.approximate_als import FaissAlternatingLeastSquares  # noqa: F401

        print("implicit installed: its ANN models need its own training; not compared here")
    except ImportError:
        print("implicit not installed: its ANN models are skipped")


def two_stage(data: ncf_data.NCFData, mf: Any, epochs: int, n_cands: list, reps: int,
              rows: list) -> None:
    from bench_scoring import _train

    t0 = time.perf_counter()
    neumf = _train("neumf", data, epochs, seed=0)
    print(f"NeuMF trained {epochs} epochs in {time.perf_counter() - t0:.0f} s", flush=True)
    users = data.test_users
    exclude = (data.train_users, data.train_items)

    def metrics(ids: np.ndarray) -> tuple[float, float]:
        hit = ids == data.test_items[:, None]
        pos = np.where(hit.any(axis=1), hit.argmax(axis=1), K)
        return ncf_data.rank_metrics(pos, K)

    mf.build_index("hnsw")
    index = mf._item_index

    def run(retr: Any, nc: int, with_index: bool) -> np.ndarray:
        mf._item_index = index if with_index else None
        try:
            if retr is None:
                return neumf.recommend(users, k=K, exclude=exclude, verbose=0)[0]
            return neumf.recommend(users, k=K, exclude=exclude, candidates=retr, n_candidates=nc,
                                   verbose=0)[0]
        finally:
            mf._item_index = index

    cases = [("NeuMF exhaustive (fused)", None, 0, False)]
    for label, cands in (("MF exact", "mf"), ("MF hnsw", "mf+idx"), ("popular", "popular")):
        for nc in n_cands:
            cases.append((f"two-stage, {label} -> {nc}", "popular" if cands == "popular" else mf,
                          nc, cands == "mf+idx"))
    # the contenders take turns, rep by rep, so that the machine's load is shared out
    times: dict = {c[0]: [] for c in cases}
    out: dict = {}
    for _ in range(reps):
        for label, retr, nc, with_index in cases:
            t0 = time.perf_counter()
            out[label] = run(retr, nc, with_index)
            times[label].append(time.perf_counter() - t0)
    ids = out[cases[0][0]]
    base = metrics(ids)
    for label, *_ in cases:
        hr, nd = metrics(out[label])
        rows.append((label, hr, nd, 1e3 * float(np.median(times[label])) / users.size * 1000,
                     _recall(out[label], ids)))
        print(rows[-1], flush=True)
    print(f"exhaustive HR@10 {base[0]:.4f} NDCG@10 {base[1]:.4f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="ml-1m")
    ap.add_argument("--items", type=int, default=1_000_000, help="synthetic catalogue (0: skip)")
    ap.add_argument("--synthetic-users", type=int, default=2000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--n-candidates", default="100,200,500")
    ap.add_argument("--quick", action="store_true", help="ml-100k, 20K items, 1 epoch, 1 rep")
    ap.add_argument("--only-two-stage", action="store_true",
                    help="part 2 alone (two-stage vs exhaustive NeuMF)")
    args = ap.parse_args()
    if args.quick:
        args.dataset, args.items, args.epochs, args.reps = "ml-100k", 20000, 1, 1
        args.n_candidates = "200"
    common.print_machine(common.machine_info())
    from bench_scoring import _train

    data = ncf_data.load_dataset(args.dataset)
    mf = _train("mf", data, args.epochs, seed=0)
    rows: list = []
    if not args.only_two_stage:
        recall_speed(args.dataset, mf, np.arange(data.n_users),
                     (data.train_users, data.train_items), args.reps, {}, rows)
    if args.items and not args.only_two_stage:
        uv, iv = _synthetic(args.synthetic_users, args.items, 64)
        recall_speed(f"synthetic {args.items}", _mf_with(uv, iv), np.arange(uv.shape[0]), None,
                     args.reps, {}, rows)
    if rows:
        print("\n| data | contender | build s | top-10 s | recall@10 vs exact | speed-up vs exact |")
        print("|---|---|---|---|---|---|")
    for r in rows:
        sp = "" if r[5] is None else f"{r[5]:.2f}x"
        print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]:.3f} | {r[4]:.4f} | {sp} |")
    ts: list = []
    two_stage(data, mf, args.epochs, [int(v) for v in args.n_candidates.split(",")], args.reps, ts)
    print("\n| ranking | HR@10 | NDCG@10 | ms per 1,000 users | top-10 overlap with exhaustive |")
    print("|---|---|---|---|---|")
    for r in ts:
        print(f"| {r[0]} | {r[1]:.4f} | {r[2]:.4f} | {r[3]:.1f} | {r[4]:.3f} |")


if __name__ == "__main__":
    main()
