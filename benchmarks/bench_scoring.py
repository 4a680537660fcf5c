"""Full-catalog top-10 for every user, neurec vs PyTorch, NumPy BLAS and implicit, side by side.

Usage (from the repository root; long runs under ``nice``):
    nice -n 5 python benchmarks/bench_scoring.py                # ml-100k and ml-1m, 1 and 2 threads
    python benchmarks/bench_scoring.py --quick                  # smoke run (< 60 s)
    nice -n 5 python benchmarks/bench_scoring.py --datasets beauty --threads 2   # 22K x 12K

For every user: score all items, drop the user's training items, keep the 10 best.

- neurec ``model.recommend(users, k=10, exclude=train_matrix)``: NeuMF takes the fused NCF
  path (``neurec/models/_fused.py``: hoisted first layer, tower, GMF and prediction layer over
  SIMD lanes of items, top-K heap fused in); "NeuMF (generic)" is the same call with the fused
  scorer off (compiled plan over blocks of (user, item) pairs + top-K in C); MF and GMF take the
  fused dot-product + top-K fast path.
- Fused tower throughput: the fused scorer alone on one thread (every user, all items,
  exclusions, top 10), in GFLOP/s of the tower's Dense layers after the hoisted one (2 x
  multiply-adds per pair), over wall time and over the calling thread's CPU time (the latter is
  what a loaded host distorts least).
- PyTorch, NeuMF: the same weights copied into ``torch_ncf.NeuMF``; blocks of users x all items
  (about 1M pairs per block) through ``forward`` under ``inference_mode``, seen items set to
  -inf, ``torch.topk`` (skipped above ``--max-torch-pairs`` users x items).
- PyTorch, dot product (MF, GMF): ``U_block @ V.T`` (``torch.mm``) + mask + ``torch.topk``, on
  the folded vectors (GMF: ``p_u * h``; MF: ``w * p_u`` with the item bias as an extra column;
  user-only terms and the final sigmoid do not change a user's ranking).
- NumPy, dot product: the "BLAS-bound" reference, ``U_block @ V.T`` + mask +
  ``np.argpartition`` + sort of the 10, BLAS threads limited with threadpoolctl.
- implicit (C++ top-K over BLAS) ``recommend(..., filter_already_liked_items=True)`` with the
  same folded vectors set as its factors.
- Approximate top-10, MF: neurec ``build_index("hnsw" | "ivf")`` + ``recommend(index=)``
  (faiss underneath; over-fetch by the user's seen items, filter, exact re-scoring); faiss
  used directly on the same HNSW graph (queries grouped by fetch size, seen items filtered
  in NumPy); implicit's ANN model (``implicit.ann.faiss.FaissModel``: IVF under the inner
  product, nlist 400, nprobe 20) ``recommend(..., filter_already_liked_items=True)`` over the
  folded vectors. ``overlap`` is then recall@10 against the exact top 10. Index builds are
  timed once, outside the table.
- ``model.predict`` throughput (NeuMF, random pairs) vs torch forward in blocks.

Peers that are not installed (torch, implicit, faiss-cpu, threadpoolctl) are skipped with a
note; neurec's own rows always run.

Models are trained for ``--train-epochs`` (default 1) so that scores are not ties; the top-10
lists of the peers are compared with neurec's (mean overlap of the 10-item sets).
Repetitions alternate between contenders in one process; medians and median ratios reported.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from typing import Any, Callable

import numpy as np

import common
import ncf_data

K = 10
PAIRS_PER_BLOCK = 1 << 20


def _train(kind: str, data: ncf_data.NCFData, epochs: int, seed: int) -> Any:
    import neurec
    from neurec.data import NegativeSampler
    from neurec.models import GMF, MF, NeuMF

    nu, ni = data.n_users, data.n_items
    if kind == "neumf":
        model = NeuMF(nu, ni, factors=8, layers=(64, 32, 16, 8))
    elif kind == "gmf":
        model = GMF(nu, ni, factors=8)
    else:
        model = MF(nu, ni, factors=64)
    model.compile(optimizer=neurec.optimizers.Adam(1e-3), loss="binary_crossentropy")
    if epochs:
        sampler = NegativeSampler(
            (data.train_users, data.train_items), num_negatives=4, seed=seed, n_users=nu, n_items=ni
        )
        model.fit(sampler, epochs=epochs, batch_size=256, verbose=0, seed=seed)
    return model


def folded_vectors(model: Any, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """User and item vectors whose dot product ranks items as the model does.

    GMF ``sigmoid(h . (p * q) + b)`` -> ``(p * h, q)``; MF ``sigmoid(w (p . q + b_u + b_i) + b)``
    -> ``([w p, w], [q, b_i])`` (user-only terms dropped: they do not change a user's ranking).

    Returns:
        ``(U, V)``: C-contiguous float32 arrays of shape ``(n_users, d)`` and ``(n_items, d)``.
    """
    if kind == "gmf":
        p = model.get_layer("gmf_user_embedding").get_weights()[0]
        q = model.get_layer("gmf_item_embedding").get_weights()[0]
        h = model.get_layer("prediction").get_weights()[0][:, 0]
        return np.ascontiguousarray(p * h, np.float32), np.ascontiguousarray(q, np.float32)
    if kind == "mf":
        p = model.get_layer("mf_user_embedding").get_weights()[0]
        q = model.get_layer("mf_item_embedding").get_weights()[0]
        bi = model.get_layer("mf_item_bias").get_weights()[0]
        w = float(model.get_layer("prediction").get_weights()[0][0, 0])
        u = np.hstack([w * p, np.full((p.shape[0], 1), w, np.float32)])
        v = np.hstack([q, bi.reshape(-1, 1)])
        return np.ascontiguousarray(u, np.float32), np.ascontiguousarray(v, np.float32)
    raise ValueError(f"kind must be 'gmf' or 'mf', got {kind!r}.")


def torch_neumf_from(model: Any) -> Any:
    """A ``torch_ncf.NeuMF`` holding a copy of a neurec NeuMF's weights (same scores)."""
    import torch

    import torch_ncf

    g = model.get_layer
    nu, f = g("gmf_user_embedding").get_weights()[0].shape
    ni = g("gmf_item_embedding").get_weights()[0].shape[0]
    half = g("mlp_user_embedding").get_weights()[0].shape[1]
    layers = [2 * half] + [g(f"layer{k}").get_weights()[0].shape[1] for k in (1, 2, 3)]
    tm = torch_ncf.NeuMF(nu, ni, factors=f, layers=layers)
    with torch.no_grad():
        tm.mf_user_embedding.weight.copy_(
            torch.from_numpy(g("gmf_user_embedding").get_weights()[0])
        )
        tm.mf_item_embedding.weight.copy_(
            torch.from_numpy(g("gmf_item_embedding").get_weights()[0])
        )
        tm.mlp_user_embedding.weight.copy_(
            torch.from_numpy(g("mlp_user_embedding").get_weights()[0])
        )
        tm.mlp_item_embedding.weight.copy_(
            torch.from_numpy(g("mlp_item_embedding").get_weights()[0])
        )
        for k, lin in zip((1, 2, 3), (tm.tower[0], tm.tower[2], tm.tower[4])):
            w, b = g(f"layer{k}").get_weights()
            lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(w.T)))
            lin.bias.copy_(torch.from_numpy(b))
        w, b = g("prediction").get_weights()
        tm.prediction.weight.copy_(torch.from_numpy(np.ascontiguousarray(w.T)))
        tm.prediction.bias.copy_(torch.from_numpy(b))
    tm.eval()
    return tm


def implicit_models(u: np.ndarray, v: np.ndarray, threads: int) -> tuple[Any, Any] | None:
    """implicit's exact ALS model with factors ``u``, ``v`` (folded: their dot product is the
    score) and its faiss ANN model over them (``FaissModel``, its defaults nlist 400, nprobe
    20; ``None`` in place of it without faiss), or None without implicit."""
    try:
        from implicit.cpu.als import AlternatingLeastSquares
    except ImportError:
        return None
    with warnings.catch_warnings():  # its OpenBLAS-threads advice is about ALS training
        warnings.simplefilter("ignore", RuntimeWarning)
        als = AlternatingLeastSquares(factors=u.shape[1], random_state=0, num_threads=threads)
    als.user_factors = np.ascontiguousarray(u, np.float32)
    als.item_factors = np.ascontiguousarray(v, np.float32)
    try:
        from implicit.ann.faiss import FaissModel
    except ImportError:
        return als, None
    ann = FaissModel(als, approximate_similar_items=False, use_gpu=False)
    fit, als.fit = als.fit, (lambda *a, **k: None)  # the factors are given: its index only
    try:
        ann.fit(None, show_progress=False)
    finally:
        als.fit = fit
    return als, ann


def faiss_topk_excluding(index: Any, q: np.ndarray, data: ncf_data.NCFData, ef: int,
                         k: int = K) -> np.ndarray:
    """faiss HNSW used directly: each user fetches ``k`` + its seen items (rounded up to a
    power of two, users grouped by it), the seen items are dropped, the first ``k`` kept."""
    import faiss

    nu, ni = q.shape[0], data.n_items
    n_seen = np.diff(data.indptr)
    fetch = np.minimum(ni, 1 << np.ceil(np.log2(k + n_seen)).astype(np.int64))
    out = np.full((nu, k), -1, np.int64)
    for f in np.unique(fetch):
        grp = np.flatnonzero(fetch == f)
        ids = index.search(q[grp], int(f), params=faiss.SearchParametersHNSW(
            efSearch=max(ef, int(f))))[1]
        counts = n_seen[grp]
        owner = np.repeat(np.arange(grp.size), counts)
        pos = np.arange(owner.size) - np.repeat(np.cumsum(counts) - counts, counts)
        seen = data.train_items[np.repeat(data.indptr[grp], counts) + pos]
        key = owner * ni + seen
        ok = (ids >= 0) & ~np.isin(np.arange(grp.size)[:, None] * ni + ids, key)
        order = np.argsort(~ok, axis=1, kind="stable")[:, :k]
        out[grp] = np.where(np.take_along_axis(ok, order, 1), np.take_along_axis(ids, order, 1),
                            -1)
    return out


def _seen_block(data: ncf_data.NCFData, s: int, e: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of the training items of consecutive users ``s..e-1`` (rows from 0)."""
    lo, hi = data.indptr[s], data.indptr[e]
    rows = np.repeat(np.arange(e - s), np.diff(data.indptr[s : e + 1]))
    return rows, data.train_items[lo:hi]


def torch_topk_neumf(tm: Any, data: ncf_data.NCFData, k: int = K) -> np.ndarray:
    """Top-k of every user with a torch NeuMF: blocks of users x all items, mask, topk."""
    import torch

    nu, ni = data.n_users, data.n_items
    per = max(1, PAIRS_PER_BLOCK // ni)
    items = torch.arange(ni, dtype=torch.int64)
    out = np.empty((nu, k), np.int64)
    with torch.inference_mode():
        for s in range(0, nu, per):
            e = min(nu, s + per)
            users = torch.arange(s, e, dtype=torch.int64)
            scores = tm(users.repeat_interleave(ni), items.repeat(e - s)).view(e - s, ni)
            rows, cols = _seen_block(data, s, e)
            scores[torch.from_numpy(rows), torch.from_numpy(cols)] = float("-inf")
            out[s:e] = torch.topk(scores, k, dim=1).indices.numpy()
    return out


def torch_topk_dot(
    u: Any, v: Any, data: ncf_data.NCFData, k: int = K, users_per_block: int = 1024
) -> np.ndarray:
    """Top-k of every user with ``torch.mm`` of folded vectors + mask + ``torch.topk``."""
    import torch

    nu = data.n_users
    out = np.empty((nu, k), np.int64)
    vt = v.t()
    with torch.inference_mode():
        for s in range(0, nu, users_per_block):
            e = min(nu, s + users_per_block)
            scores = torch.mm(u[s:e], vt)
            rows, cols = _seen_block(data, s, e)
            scores[torch.from_numpy(rows), torch.from_numpy(cols)] = float("-inf")
            out[s:e] = torch.topk(scores, k, dim=1).indices.numpy()
    return out


def numpy_topk_dot(
    u: np.ndarray, v: np.ndarray, data: ncf_data.NCFData, k: int = K, users_per_block: int = 1024
) -> np.ndarray:
    """Top-k of every user with NumPy BLAS ``U @ V.T`` + mask + ``argpartition`` + sort."""
    nu = data.n_users
    out = np.empty((nu, k), np.int64)
    vt = np.ascontiguousarray(v.T)
    for s in range(0, nu, users_per_block):
        e = min(nu, s + users_per_block)
        scores = u[s:e] @ vt
        rows, cols = _seen_block(data, s, e)
        scores[rows, cols] = -np.inf
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
        out[s:e] = np.take_along_axis(part, order, axis=1)
    return out


def overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Mean share of common ids between the rows of two (n, k) top-k id arrays."""
    a = np.sort(a, axis=1)
    b = np.sort(b, axis=1)
    common_ = [np.intersect1d(x, y, assume_unique=True).size for x, y in zip(a, b)]
    return float(np.mean(common_) / a.shape[1])


def fused_tower(model: Any, data: ncf_data.NCFData, reps: int) -> dict[str, Any]:
    """The fused NCF scorer alone on one thread: every user, all items, training items
    excluded, top 10; GFLOP/s of the tower (Dense layers after the hoisted one)."""
    from neurec.models import Model
    from neurec.models._fused import ncf_parts
    from neurec.models.recommend import _Roles, hoisted_pair_model

    roles = _Roles(model, None, None, None, None)
    fast = hoisted_pair_model(model, roles, Model) or model
    sroles = _Roles(fast, None, None, None, None)
    parts = ncf_parts(fast, sroles.u_in, sroles.i_in)
    if parts is None:
        raise RuntimeError("the NeuMF model did not take the fused path")
    nu, ni = data.n_users, data.n_items
    users = np.arange(nu, dtype=np.int64)
    indptr = np.ascontiguousarray(data.indptr, np.int64)
    indices = np.ascontiguousarray(data.train_items, np.int32)
    common.set_threads(1)
    walls, cpus = [], []
    for rep in range(reps + 1):  # the first is a warm-up
        t0, c0 = time.perf_counter(), time.thread_time()
        parts.topk(users, K, None, indptr, indices, users)
        if rep:
            walls.append(time.perf_counter() - t0)
            cpus.append(time.thread_time() - c0)
    flop = float(nu) * ni * parts.tower_flops_per_pair
    wall, cpu = float(np.median(walls)), float(np.median(cpus))
    return {
        "pairs": nu * ni,
        "tower_flops_per_pair": parts.tower_flops_per_pair,
        "flops_per_pair": parts.flops_per_pair,
        "wall_s": walls,
        "cpu_s": cpus,
        "tower_gflops_wall": flop / wall / 1e9,
        "tower_gflops_cpu": flop / cpu / 1e9,
        "all_gflops_cpu": float(nu) * ni * parts.flops_per_pair / cpu / 1e9,
    }


def bench_dataset(
    name: str,
    threads: list[int],
    reps: int,
    train_epochs: int,
    seed: int,
    predict_pairs: int,
    max_torch_pairs: int = 10**8,
) -> dict[str, Any]:
    """All contenders on one dataset at each thread count."""
    import contextlib

    import neurec
    from neurec.data import InteractionMatrix
    from neurec.models import _fused

    try:
        import torch
    except ImportError:
        torch = None
        print("torch not installed: its rows are skipped")
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # NumPy's BLAS then runs on its own thread count
        print("threadpoolctl not installed: NumPy's BLAS threads are not limited")
        threadpool_limits = lambda limits: contextlib.nullcontext()  # noqa: E731
    try:
        import faiss
    except ImportError:
        faiss = None
        print("faiss-cpu not installed: the index rows are skipped (pip install 'neurec[ann]')")

    data = ncf_data.load_dataset(name)
    nu, ni = data.n_users, data.n_items
    common.set_threads(max(threads))
    t0 = time.perf_counter()
    models = {kind: _train(kind, data, train_epochs, seed) for kind in ("neumf", "gmf", "mf")}
    train_s = time.perf_counter() - t0
    matrix = InteractionMatrix.from_arrays(data.train_users, data.train_items, shape=(nu, ni))
    users = np.arange(nu, dtype=np.int64)
    tm = torch_neumf_from(models["neumf"]) if torch is not None else None
    folded = {kind: folded_vectors(models[kind], kind) for kind in ("gmf", "mf")}
    folded_t = {k: (torch.from_numpy(u), torch.from_numpy(v)) for k, (u, v) in folded.items()
                } if torch is not None else {}
    imp, imp_ann = {}, None
    user_items = None
    for kind, (u, v) in folded.items():
        pair = implicit_models(u, v, max(threads))
        if pair is None:
            print("implicit not installed: its rows are skipped")
            break
        imp[kind] = pair[0]
        if kind == "mf":
            imp_ann = pair[1]
    if imp:
        import scipy.sparse as sp

        user_items = sp.csr_matrix(
            (np.ones(data.num_train, np.float32), data.train_items, data.indptr), shape=(nu, ni)
        )
    indexes: dict[str, Any] = {}
    builds: dict[str, float] = {}
    if faiss is not None:
        from neurec.models._dot import dot_structure
        from neurec.models._index import ip_users

        common.set_threads(max(threads))
        for kind in ("hnsw", "ivf"):
            t0 = time.perf_counter()
            indexes[kind] = models["mf"].build_index(kind)
            builds[kind] = time.perf_counter() - t0
        mf = models["mf"]
        q_mf = ip_users(dot_structure(mf, mf.inputs[0], mf.inputs[1])(users)[0])
        print(f"[{name}] MF indexes built: hnsw {builds['hnsw']:.1f} s "
              f"{indexes['hnsw'].params}, ivf {builds['ivf']:.1f} s {indexes['ivf'].params}",
              flush=True)
    rng = np.random.default_rng(seed)
    pu = rng.integers(0, nu, predict_pairs, dtype=np.int64)
    pi = rng.integers(0, ni, predict_pairs, dtype=np.int64)
    results: dict[str, Any] = {}

    def nr_rec(kind: str, fused: bool = True) -> Callable[[int], np.ndarray]:
        def run(rep: int) -> np.ndarray:
            old = _fused.ENABLED
            _fused.ENABLED = fused  # off: the generic path (plan over pair blocks + topk_rows)
            try:
                return models[kind].recommend(users, k=K, exclude=matrix)[0]
            finally:
                _fused.ENABLED = old

        return run

    def imp_rec(kind: str) -> Callable[[int], np.ndarray]:
        return lambda rep: imp[kind].recommend(users, user_items, N=K)[0]

    def nr_index(kind: str) -> Callable[[int], np.ndarray]:
        return lambda rep: models["mf"].recommend(users, k=K, exclude=matrix,
                                                  index=indexes[kind])[0]

    def torch_predict(rep: int) -> np.ndarray:
        out = np.empty(predict_pairs, np.float32)
        step = 1 << 18
        with torch.inference_mode():
            for s in range(0, predict_pairs, step):
                out[s : s + step] = torch.sigmoid(
                    tm(torch.from_numpy(pu[s : s + step]), torch.from_numpy(pi[s : s + step]))
                ).numpy()
        return out

    for t in threads:
        common.set_threads(t)
        for m in imp.values():
            m.num_threads = t
        if faiss is not None:
            faiss.omp_set_num_threads(t)
        with threadpool_limits(limits=t):
            runs: dict[str, Callable[[int], Any]] = {
                "neurec NeuMF (fused)": nr_rec("neumf"),
                "neurec NeuMF (generic)": nr_rec("neumf", fused=False),
            }
            if tm is not None and nu * ni <= max_torch_pairs:
                runs["torch NeuMF forward+topk"] = lambda rep: torch_topk_neumf(tm, data)
            for kind in ("mf", "gmf"):
                fam = kind.upper()
                runs[f"neurec {fam} (dot fast path)"] = nr_rec(kind)
                if kind in folded_t:
                    runs[f"torch {fam} mm+topk"] = lambda rep, kind=kind: torch_topk_dot(
                        *folded_t[kind], data
                    )
                runs[f"numpy {fam} BLAS+argpartition"] = lambda rep, kind=kind: numpy_topk_dot(
                    *folded[kind], data
                )
                if kind in imp:
                    runs[f"implicit {fam} topk"] = imp_rec(kind)
            for kind in indexes:
                runs[f"neurec MF index {kind} (defaults)"] = nr_index(kind)
            if indexes:
                ef = indexes["hnsw"].params["ef_search"]
                runs[f"faiss MF HNSW direct (same graph, ef {ef})"] = (
                    lambda rep, ef=ef: faiss_topk_excluding(indexes["hnsw"]._index, q_mf, data, ef)
                )
            if imp_ann is not None:
                runs["implicit MF FaissModel (IVF, nprobe 20)"] = (
                    lambda rep: imp_ann.recommend(users, user_items, N=K)[0]
                )
            runs["neurec NeuMF predict"] = lambda rep: models["neumf"].predict([pu, pi])
            if tm is not None:
                runs["torch NeuMF forward"] = torch_predict
            outputs: dict[str, Any] = {}

            def keep(nm: str, fn: Callable[[int], Any]) -> Callable[[int], Any]:
                def run(rep: int) -> Any:
                    outputs[nm] = fn(rep)  # noqa: B023 (called within this iteration)

                return run

            times = common.alternate({nm: keep(nm, fn) for nm, fn in runs.items()}, reps)
        ref = {
            "NeuMF": "neurec NeuMF (fused)",
            "MF": "neurec MF (dot fast path)",
            "GMF": "neurec GMF (dot fast path)",
        }
        res: dict[str, Any] = {}
        for nm, ts in times.items():
            is_pred = nm.endswith("predict") or nm.endswith("forward")
            r = common.summarize(ts, predict_pairs if is_pred else nu)
            fam = next(f for f in ("NeuMF", "GMF", "MF") if f" {f} " in f" {nm} ")
            base = "neurec NeuMF predict" if is_pred else ref[fam]
            r["family"] = fam + (" predict" if is_pred else " top-10")
            r["ratio_vs_neurec"] = common.median_ratio(ts, times[base])  # peer time / neurec time
            if not is_pred:
                r["top10_overlap_with_neurec"] = overlap(
                    np.asarray(outputs[nm]).reshape(nu, K), np.asarray(outputs[base]).reshape(nu, K)
                )
            else:
                r["max_abs_diff_vs_neurec"] = float(
                    np.max(
                        np.abs(
                            np.asarray(outputs[nm]).reshape(-1)
                            - np.asarray(outputs[base]).reshape(-1)
                        )
                    )
                )
            res[nm] = r
            unit = "pairs/s" if is_pred else "users/s"
            print(
                f"[{name} t={t}] {nm:30s} {r['median_s'] * 1000:9.1f} ms  "
                f"{r['per_s']:12,.0f} {unit}"
                f"  x{r['ratio_vs_neurec']:.2f} of neurec time",
                flush=True,
            )
        results[t] = res
    tower = fused_tower(models["neumf"], data, reps)
    print(
        f"[{name} t=1] fused NeuMF scorer alone: {np.median(tower['wall_s']) * 1000:.1f} ms wall, "
        f"{np.median(tower['cpu_s']) * 1000:.1f} ms CPU; tower {tower['tower_gflops_wall']:.1f} "
        f"GFLOP/s (wall), {tower['tower_gflops_cpu']:.1f} GFLOP/s (CPU time)",
        flush=True,
    )
    return {
        "dataset": name,
        "index_build_s": builds,
        "index_params": {kind: dict(idx.params) for kind, idx in indexes.items()},
        "n_users": nu,
        "n_items": ni,
        "num_train": data.num_train,
        "train_epochs": train_epochs,
        "train_s": train_s,
        "predict_pairs": predict_pairs,
        "neurec_threads_default": neurec.get_num_threads(),
        "max_torch_pairs": max_torch_pairs,
        "threads": results,
        "fused_tower": tower,
    }


def _markdown(rec: dict[str, Any]) -> str:
    lines = [
        *common.md_head(
            "# Full-catalog top-10 for every user: neurec vs PyTorch, NumPy BLAS, implicit",
            rec["machine"],
        ),
        "Every user, all items scored, training items excluded, top 10. Median of "
        f"{rec['config']['reps']} alternating repetitions; `time / neurec` is the median "
        "per-repetition ratio of the peer's time to neurec's for the same model "
        "(> 1: neurec faster). `overlap` = mean share of the 10 ids equal to neurec's "
        "(same weights). Predict rows: NeuMF on random (user, item) pairs.",
        "",
    ]
    for ds in rec["datasets"]:
        lines += [f"## {ds['dataset']} ({ds['n_users']:,} users x {ds['n_items']:,} items)", ""]
        rows = []
        for t, res in ds["threads"].items():
            for nm, r in res.items():
                is_pred = "predict" in r["family"]
                rows.append(
                    [
                        t,
                        nm,
                        r["median_s"] * 1000,
                        f"{r['per_s']:,.0f} {'pairs' if is_pred else 'users'}/s",
                        f"{r['ratio_vs_neurec']:.2f}",
                        f"{r['top10_overlap_with_neurec']:.3f}"
                        if not is_pred
                        else f"max abs diff {r['max_abs_diff_vs_neurec']:.1e}",
                    ]
                )
        lines.append(
            common.md_table(
                ["threads", "contender", "median ms", "throughput", "time / neurec", "overlap"],
                rows,
            )
        )
        if ds.get("index_build_s"):
            lines += [
                "",
                "MF indexes (built once, outside the table): "
                + "; ".join(
                    f"{kind} {ds['index_params'][kind]} in {sec:.1f} s"
                    for kind, sec in ds["index_build_s"].items()
                )
                + ". For the index, faiss and implicit ANN rows `overlap` is recall@10 "
                "against the exact top 10.",
            ]
        tw = ds.get("fused_tower")
        if tw:
            lines += [
                "",
                f"Fused NeuMF scorer alone, 1 thread ({tw['pairs']:,} pairs, "
                f"{tw['tower_flops_per_pair']} tower flop per pair): "
                f"{np.median(tw['wall_s']) * 1000:.1f} ms wall, "
                f"{np.median(tw['cpu_s']) * 1000:.1f} ms CPU; tower "
                f"**{tw['tower_gflops_wall']:.1f} GFLOP/s** over wall time, "
                f"{tw['tower_gflops_cpu']:.1f} GFLOP/s over CPU time.",
            ]
        lines.append("")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parses the command line (see module docstring)."""
    p = common.bench_parser(
        __doc__,
        datasets="ml-100k,ml-1m",
        reps=3,
        seed=0,
        quick="smoke run: ml-100k, 1 thread, 1 rep",
        name=None,
    )
    p.add_argument("--threads", default=None, help="comma-separated (default 1,2; --quick: 1)")
    p.add_argument("--train-epochs", type=int, default=1)
    p.add_argument("--predict-pairs", type=int, default=2_000_000)
    p.add_argument(
        "--max-torch-pairs",
        type=int,
        default=10**8,
        help="skip torch NeuMF forward+topk above this many users x items (default 1e8)",
    )
    args = p.parse_args(argv)
    if args.threads is None:
        args.threads = "1" if args.quick else "1,2"
    try:
        args.threads = [int(x) for x in args.threads.split(",") if x]
    except ValueError:
        p.error(f"--threads must be comma-separated integers such as 1,2; got {args.threads!r}")
    if not args.threads or min(args.threads) < 1 or args.reps < 1 or args.predict_pairs < 1:
        p.error("--threads entries, --reps and --predict-pairs must be >= 1")
    args.datasets = ["ml-100k"] if args.quick else [d for d in args.datasets.split(",") if d]
    return args


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    args = parse_args(argv)
    import neurec  # noqa: F401

    for peer in ("torch", "implicit", "faiss"):  # imported before the timing starts
        try:
            __import__(peer)
        except ImportError:
            pass
    run = common.Run()
    reps = 1 if args.quick else args.reps
    pairs = 200_000 if args.quick else args.predict_pairs
    datasets = [
        bench_dataset(
            d, args.threads, reps, args.train_epochs, args.seed, pairs, args.max_torch_pairs
        )
        for d in args.datasets
    ]
    return run.finish(
        "scoring",
        common.result_name(args, "scoring"),
        {
            "datasets": args.datasets,
            "threads": args.threads,
            "reps": reps,
            "k": K,
            "train_epochs": args.train_epochs,
            "quick": args.quick,
            "max_torch_pairs": args.max_torch_pairs,
        },
        {"datasets": datasets},
        _markdown,
    )


if __name__ == "__main__":
    sys.exit(main())
