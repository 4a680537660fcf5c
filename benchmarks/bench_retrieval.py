"""Approximate retrieval and two-stage recommend: recall@10 vs exact, speed-ups, HR/NDCG.

Usage (from the repository root; long runs under ``nice``):
    nice -n 5 python benchmarks/bench_retrieval.py                  # ml-1m + 1M synthetic items
    python benchmarks/bench_retrieval.py --quick                    # smoke run (< 60 s)
    python benchmarks/bench_retrieval.py --only-two-stage --n-candidates 200   # part 2 alone

Part 1, recall@10 and speed-up over exact (MF, 64 factors; top 10 of every user, timed in
alternation, medians and median per-repetition ratios), without exclusions (every contender
answers the same question) and with seen items excluded (ml-1m: the training items;
synthetic: each user's exact top 20 and 30 random items):

- neurec exact: ``model.recommend(users, k=10)`` (fused dot-product + top-K in C);
- neurec ``build_index("hnsw")`` (faiss HNSW under the inner product) swept over
  ``set_search(ef_search=16..128)``, and ``build_index("ivf")`` (faiss IVF over the
  L2-augmented vectors) over ``nprobe=8..64``: over-fetch, exact re-scoring;
- faiss used directly on the same graph / cells (fetch 10, no re-scoring: neurec's overhead);
- the previous method, faiss HNSW over the L2-augmented vectors (ef 128, 512; skip with
  ``--no-l2-baseline``); hnswlib (space ``ip``) when installed;
- implicit (when installed): its exact ``recommend`` and its ANN model
  (``implicit.ann.faiss.FaissModel``, IVF under the inner product, nlist 400, nprobe 20)
  over the same factors;
- NumPy: ``U_block @ V.T`` + ``np.argpartition`` + sort of the 10 (exact).

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


def _implicit_pair(uv: np.ndarray, iv: np.ndarray, ib, threads: int) -> tuple[Any, Any] | None:
    """implicit's exact model and its faiss ANN model over ``[p_u, 1] . [q_i, b_i]``
    (``bench_scoring.implicit_models``), or None without implicit (or faiss)."""
    from bench_scoring import implicit_models

    u = np.hstack([uv, np.ones((uv.shape[0], 1), np.float32)]) if ib is not None else uv
    v = np.hstack([iv, ib.reshape(-1, 1)]) if ib is not None else iv
    pair = implicit_models(u, v, threads)
    return None if pair is None or pair[1] is None else pair


def _exclusions(exact_top: np.ndarray, n_items: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Seen items for the synthetic users: each user's exact top 20 (the index must look past
    them) and 30 random items, 50 per user (the fetch is 64)."""
    rng = np.random.default_rng(seed)
    n = exact_top.shape[0]
    cols = np.concatenate([exact_top[:, :20], rng.integers(0, n_items, (n, 30))], axis=1)
    return np.repeat(np.arange(n), cols.shape[1]), cols.ravel()


def recall_speed(name: str, model: Any, users: np.ndarray, exclude: Any, reps: int,
                 rows: list, threads: int, l2_baseline: bool = True) -> None:
    """Recall@10 against the exact top 10 and speed-up over the exact fused scorer of every
    contender, timed in alternation (medians; speed-up = median per-repetition ratio)."""
    import faiss

    from neurec.models._index import augment_items, augment_users, ip_items, ip_users

    faiss.omp_set_num_threads(threads)
    uv_all, iv, ib = _vectors(model)
    uv = uv_all[users]
    exact = model.recommend(users, k=K, exclude=False, verbose=0)[0]
    if exclude is None:  # synthetic: the users' top 20 and 30 random items are seen
        exclude = _exclusions(model.recommend(users, k=20, exclude=False, verbose=0)[0],
                              iv.shape[0])
    exact_ex = model.recommend(users, k=K, exclude=exclude, verbose=0)[0]
    print(f"[{name}] {users.size} users x {iv.shape[0]} items x {iv.shape[1]}", flush=True)
    builds: dict[str, float] = {}
    t0 = time.perf_counter()
    hnsw = model.build_index("hnsw")
    builds["hnsw"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    ivf = model.build_index("ivf")
    builds["ivf"] = time.perf_counter() - t0
    print(f"[{name}] built hnsw {hnsw.params} in {builds['hnsw']:.1f} s, ivf {ivf.params} in "
          f"{builds['ivf']:.1f} s", flush=True)
    defaults = {"hnsw": dict(hnsw.params), "ivf": dict(ivf.params)}

    def nr(idx: Any, setting: dict, ex: Any = False) -> Callable[[int], np.ndarray]:
        def run(rep: int) -> np.ndarray:
            idx.set_search(**setting)
            return model.recommend(users, k=K, exclude=ex, index=idx, verbose=0)[0]
        return run

    yi, yl2 = ip_users(uv), augment_users(uv)

    def faiss_hnsw(rep: int) -> np.ndarray:  # the same graph, fetch 10, no re-scoring
        sp_ = faiss.SearchParametersHNSW(efSearch=defaults["hnsw"]["ef_search"])
        return hnsw._index.search(yi, K, params=sp_)[1]

    def faiss_ivf(rep: int) -> np.ndarray:
        return ivf._index.search(yl2, K, params=faiss.SearchParametersIVF(
            nprobe=defaults["ivf"]["nprobe"]))[1]

    runs: dict[str, Callable[[int], Any]] = {
        "neurec exact (fused C)": lambda rep: model.recommend(users, k=K, exclude=False,
                                                              verbose=0)[0],
        "NumPy @ + argpartition": lambda rep: _numpy_exact(uv, iv, ib),
    }
    for ef in (16, 32, 64, 128):
        runs[f"neurec hnsw, ef_search {ef}"] = nr(hnsw, {"ef_search": ef})
    for npb in (8, 16, 32, 64):
        runs[f"neurec ivf, nprobe {npb}"] = nr(ivf, {"nprobe": npb})
    runs[f"faiss HNSW direct, same graph (ef {defaults['hnsw']['ef_search']})"] = faiss_hnsw
    runs[f"faiss IVF direct, same cells (nprobe {defaults['ivf']['nprobe']})"] = faiss_ivf
    if l2_baseline:  # the previous method: HNSW over the L2-augmented vectors
        t0 = time.perf_counter()
        l2 = faiss.IndexHNSWFlat(iv.shape[1] + 2, 32)
        l2.hnsw.efConstruction = 200
        l2.add(augment_items(iv, ib))
        builds["l2"] = time.perf_counter() - t0
        for ef in (128, 512):
            runs[f"faiss HNSW over L2-augmented vectors (previous), ef {ef}"] = \
                lambda rep, ef=ef: l2.search(yl2, K, params=faiss.SearchParametersHNSW(
                    efSearch=ef))[1]
    try:
        import hnswlib

        t0 = time.perf_counter()
        hl = hnswlib.Index(space="ip", dim=iv.shape[1] + 1)
        hl.init_index(max_elements=iv.shape[0], M=32, ef_construction=200, random_seed=0)
        hl.add_items(ip_items(iv, ib), num_threads=threads)
        builds["hnswlib"] = time.perf_counter() - t0
        hl.set_ef(defaults["hnsw"]["ef_search"])
        hl.set_num_threads(threads)
        runs["hnswlib direct, space ip"] = lambda rep: hl.knn_query(yi, k=K)[0].astype(np.int64)
    except ImportError:
        print("hnswlib not installed: skipped", flush=True)
    t0 = time.perf_counter()
    pair = _implicit_pair(uv, iv, ib, threads)
    builds["implicit"] = time.perf_counter() - t0
    if pair is not None:
        als, ann = pair
        uid = np.arange(users.size)
        runs["implicit exact recommend"] = lambda rep: als.recommend(
            uid, None, N=K, filter_already_liked_items=False)[0]
        runs["implicit FaissModel (IVF-IP, nlist 400, nprobe 20)"] = lambda rep: ann.recommend(
            uid, None, N=K, filter_already_liked_items=False)[0]
    else:
        print("implicit not installed: skipped", flush=True)
    # with exclusions: neurec exact and the two indexes at their defaults, implicit's ANN
    ex_runs: dict[str, Callable[[int], Any]] = {
        "neurec exact (fused C)": lambda rep: model.recommend(users, k=K, exclude=exclude,
                                                              verbose=0)[0],
        "neurec hnsw (defaults)": nr(hnsw, {"ef_search": defaults["hnsw"]["ef_search"]},
                                     exclude),
        "neurec ivf (defaults)": nr(ivf, {"nprobe": defaults["ivf"]["nprobe"]}, exclude),
    }
    if pair is not None:
        import scipy.sparse as sp

        seen_csr = sp.csr_matrix((np.ones(len(exclude[0]), np.float32), exclude),
                                 shape=(users.size, iv.shape[0]))
        ex_runs["implicit FaissModel, filter_already_liked_items"] = lambda rep: ann.recommend(
            np.arange(users.size), seen_csr, N=K)[0]
    for label, rr, want in (("no exclusions", runs, exact), ("seen items excluded", ex_runs,
                                                               exact_ex)):
        out: dict[str, Any] = {}

        def keep(nm: str, fn: Callable[[int], Any]) -> Callable[[int], Any]:
            def run(rep: int) -> Any:
                out[nm] = fn(rep)  # noqa: B023 (called within this iteration)
            return run

        times = common.alternate({nm: keep(nm, fn) for nm, fn in rr.items()}, reps)
        base = times["neurec exact (fused C)"]
        for nm, ts in times.items():
            got = np.asarray(out[nm]).reshape(users.size, -1)[:, :K]
            bkey = next((b for b in ("hnsw", "ivf", "l2", "hnswlib", "implicit")
                         if (b == "hnsw" and nm.startswith("neurec hnsw"))
                         or (b == "ivf" and nm.startswith("neurec ivf"))
                         or (b == "l2" and "previous" in nm)
                         or (b == "hnswlib" and nm.startswith("hnswlib"))
                         or (b == "implicit" and "FaissModel" in nm)), None)
            build = f"{builds[bkey]:.1f}" if bkey and label == "no exclusions" else ""
            rows.append((name, label, nm, build, float(np.median(ts)), _recall(got, want),
                         common.median_ratio(base, ts)))
            print(f"[{name}, {label}] {nm}: {np.median(ts) * 1e3:.1f} ms, recall@10 "
                  f"{rows[-1][5]:.4f}, x{rows[-1][6]:.2f} of exact's speed", flush=True)


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
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n-candidates", default="100,200,500")
    ap.add_argument("--no-l2-baseline", action="store_true",
                    help="skip the previous method (HNSW over L2-augmented vectors)")
    ap.add_argument("--no-two-stage", action="store_true", help="part 1 only")
    ap.add_argument("--quick", action="store_true", help="ml-100k, 20K items, 1 epoch, 1 rep")
    ap.add_argument("--only-two-stage", action="store_true",
                    help="part 2 alone (two-stage vs exhaustive NeuMF)")
    args = ap.parse_args()
    if args.quick:
        args.dataset, args.items, args.epochs, args.reps = "ml-100k", 20000, 1, 1
        args.n_candidates = "200"
    info = common.machine_info()
    common.print_machine(info)
    try:
        import faiss  # noqa: F401
    except ImportError:
        print("faiss-cpu is not installed: pip install 'neurec[ann]'")
        return
    from bench_scoring import _train

    common.set_threads(args.threads)
    data = ncf_data.load_dataset(args.dataset)
    mf = _train("mf", data, args.epochs, seed=0)
    rows: list = []
    if not args.only_two_stage:
        recall_speed(args.dataset, mf, np.arange(data.n_users),
                     (data.train_users, data.train_items), args.reps, rows, args.threads,
                     not args.no_l2_baseline)
    if args.items and not args.only_two_stage:
        uv, iv = _synthetic(args.synthetic_users, args.items, 64)
        recall_speed(f"synthetic {args.items:,}", _mf_with(uv, iv), np.arange(uv.shape[0]), None,
                     args.reps, rows, args.threads, not args.no_l2_baseline)
    lines = [f"Load average at the end: {common.loadavg()}; threads {args.threads}; medians of "
             f"{args.reps} alternating repetitions (noisy on a shared machine).", ""]
    if rows:
        lines += ["| data | exclusions | contender | build s | top-10 s | recall@10 vs exact "
                  "| speed-up vs exact |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | {r[4]:.3f} | {r[5]:.4f} "
                     f"| {r[6]:.2f}x |")
    if not args.no_two_stage:
        ts: list = []
        two_stage(data, mf, args.epochs, [int(v) for v in args.n_candidates.split(",")],
                  args.reps, ts)
        lines += ["", "| ranking | HR@10 | NDCG@10 | ms per 1,000 users "
                  "| top-10 overlap with exhaustive |", "|---|---|---|---|---|"]
        for r in ts:
            lines.append(f"| {r[0]} | {r[1]:.4f} | {r[2]:.4f} | {r[3]:.1f} | {r[4]:.3f} |")
    name = ("retrieval_two_stage" if args.only_two_stage else "retrieval") \
        + ("_quick" if args.quick else "")
    common.publish_markdown(name, "# Approximate retrieval: recall@10 and speed-up\n\n"
                            + common.machine_md(info) + "\n\n", lines)


if __name__ == "__main__":
    main()
