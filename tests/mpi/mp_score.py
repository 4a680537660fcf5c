"""Scripts that tests/test_mp_score.py launches under ``mpiexec -n 2``: scoring with
tables sharded by ``ModelParallel`` (each rank its item shard), ``ModelParallel(
local_data=True)`` and ``recommend(histories=)`` under a distribution. Also imported
there to compute one process's results.

    python mp_score.py MODE OUT_DIR [ARGS]

MODE: score | memory ROWS | local | callback | mismatch | histories MODEL_FILE.
"""
import gc
import hashlib
import json
import os
import sys
import time
import tracemalloc

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dp_local import interleaved  # noqa: E402  (DataParallel()'s slices of each batch)
from mp_predict import N_ITEMS, N_USERS, N, data, sharded  # noqa: E402  (the same log)

# NeuMF (fused NCF scorer), NeuMF through the generic scorer, MF with biases and GMF
# (the dot-product scorer), a graph no special scorer takes, and an MF whose frozen item
# rows repeat (ties, broken by the lower id across the shards)
MODELS = ["neumf", "neumf-generic", "mf", "gmf", "custom", "ties"]


def build(name):
    import neurec
    from neurec import layers, models, optimizers
    from neurec.models import zoo
    neurec.utils.set_random_seed(5)
    if name.startswith("neumf"):
        model = zoo.NeuMF(N_USERS, N_ITEMS, factors=8, layers=(16, 8))
    elif name == "mf":
        model = zoo.MF(N_USERS, N_ITEMS, factors=8, use_bias=True)
    elif name == "gmf":
        model = zoo.GMF(N_USERS, N_ITEMS, factors=8)
    elif name == "custom":
        u, i = layers.Input((1,), name="user"), layers.Input((1,), name="item")
        eu = layers.Flatten()(layers.Embedding(N_USERS, 8, name="users")(u))
        ei = layers.Flatten()(layers.Embedding(N_ITEMS, 8, name="items")(i))
        h = layers.Dense(4, activation="relu")(layers.Multiply()([eu, ei]))
        model = models.Model([u, i], layers.Dense(1, activation="sigmoid")(h))
    else:  # ties: items 4j..4j+3 share one frozen row, spread over both ranks
        model = zoo.MF(N_USERS, N_ITEMS, factors=8, use_bias=False)
        table = [layer for layer in model.layers if getattr(layer, "input_dim", 0) == N_ITEMS][0]
        table.embeddings[:] = np.repeat(table.embeddings[::4], 4, axis=0)
        table.trainable = False
    model.compile(optimizer=optimizers.Adam(0.01), loss="binary_crossentropy")
    return model


def train(name):
    model = build(name)
    x, y = data()
    model.fit(x, y, batch_size=128, epochs=2, seed=1, verbose=0)
    return model


def score(model, name):
    """Every recommend and evaluate_full variant the tests compare (plain lists)."""
    from neurec.evaluation import evaluate_full, evaluate_sampled
    from neurec.models import _fused
    _fused.ENABLED = name != "neumf-generic"
    rng = np.random.default_rng(4)
    users = np.r_[np.arange(N_USERS), 7, 3, 7]  # repeated users
    seen = (rng.integers(0, N_USERS, 900), rng.integers(0, N_ITEMS, 900))
    out = {}

    def rec(key, *args, **kw):
        ids, scores = model.recommend(*args, verbose=0, **kw)
        out[key] = {"ids": ids.tolist(), "scores": scores.tolist()}

    rec("all", users, k=10, exclude=seen)
    rec("unknown", np.r_[users[:30], N_USERS + 2], k=7, exclude=seen, unknown="popular")
    rec("odd-items", users[:40], k=6, exclude=seen, items=np.arange(1, N_ITEMS, 2))
    rec("few-items", users[:40], k=6, items=[5, 64, 3])
    rec("whole-ranking", users[:12], k=N_ITEMS, exclude=seen)
    rec("no-exclude", users, k=5, exclude=False)
    model.retire_items([0, 1, 2, 77])
    rec("retired", users, k=10, exclude=seen)
    rec("retired-items", users[:40], k=4, items=np.arange(0, 20))
    model.unretire_items()
    pos, neg = rng.integers(0, N_ITEMS, N_USERS), rng.integers(0, N_ITEMS, (N_USERS, 30))
    out["sampled"] = {"means": evaluate_sampled(model, np.arange(N_USERS), pos, neg,
                                                k=[5, 10], verbose=0),
                      "per_user": {k: v.tolist() for k, v in evaluate_sampled(
                          model, np.arange(N_USERS), pos, neg, per_user=True,
                          verbose=0).items()}}
    held = (np.repeat(np.arange(N_USERS), 3), rng.integers(0, N_ITEMS, 3 * N_USERS))
    for key, ks, pos in (("full", [5, 10], held),
                         ("full-one", 10, rng.integers(0, N_ITEMS, N_USERS))):
        users_arg = np.arange(N_USERS) if key == "full-one" else None
        got = evaluate_full(model, users_arg, pos, seen, k=ks, n_items=N_ITEMS, verbose=0)
        per = evaluate_full(model, users_arg, pos, seen, k=ks, n_items=N_ITEMS, per_user=True,
                            verbose=0, max_block_bytes=4 * N_ITEMS * 16)  # blocks of 16 users
        out[key] = {"means": {k: float(v) for k, v in got.items()},
                    "per_user": {k: np.asarray(v).tolist() for k, v in per.items()}}
    _fused.ENABLED = True
    return out


OUTPUT_USERS = np.arange(N_USERS)[::-1].copy()  # not in id order: the files keep it


def output_seen():
    rng = np.random.default_rng(8)
    return rng.integers(0, N_USERS, 700), rng.integers(0, N_ITEMS, 700)


def digest(model):
    return hashlib.sha256(b"".join(w.tobytes() for w in model.get_weights())).hexdigest()


# -- ModelParallel(local_data=True) ---------------------------------------------------
BATCH = 128


def main(mode, out, *args):
    from neurec import distribution
    from neurec.distribution import _sharding
    distribution.initialize()
    rank, size = distribution.rank(), distribution.size()
    report = {}
    if mode == "score":
        from neurec.models import _mp_score
        _mp_score.BLOCK_USERS, _mp_score.PAIRS_PER_BLOCK = 64, 1000  # several blocks
        distribution.set_distribution(distribution.ModelParallel())
        for name in MODELS:
            model = train(name)
            model.save(os.path.join(out, f"{name}.neurec"))  # rank 0 writes; stays sharded
            report[name] = score(model, name)
            report[name]["sharded"] = sharded(model)
            ids, _ = model.recommend(np.arange(5), k=3, gather="main", verbose=0) \
                or (None, None)
            report[name]["main"] = None if ids is None else ids.tolist()
            if name in ("neumf", "mf"):  # files of each rank's users, blocks of 16
                from neurec.models import _dp_output
                _dp_output.BLOCK_USERS = 16
                seen = output_seen()
                report[name]["output"] = model.recommend(
                    OUTPUT_USERS, k=5, exclude=seen, verbose=0,
                    output=os.path.join(out, name + "-recs-{rank}.csv"))
                distribution.set_distribution(distribution.ModelParallel(local_data=True))
                report[name]["output-local"] = model.recommend(
                    OUTPUT_USERS[OUTPUT_USERS % 3 == rank], k=5, exclude=seen, verbose=0,
                    output=os.path.join(out, name + "-local-{rank}.csv"))
                distribution.set_distribution(distribution.ModelParallel())
                report[name]["sharded-after-output"] = model._shards is not None
    elif mode == "memory":  # a big item table: what a rank allocates to score it
        from neurec import layers, models, optimizers
        from neurec.evaluation import evaluate_full
        rows, cols, n_users = int(args[0]), 32, 2000
        start = time.perf_counter()
        distribution.set_distribution(distribution.ModelParallel())
        u, i = layers.Input((1,), name="user"), layers.Input((1,), name="item")
        eu = layers.Flatten()(layers.Embedding(n_users, cols, name="users")(u))
        ei = layers.Flatten()(layers.Embedding(rows, cols, name="items")(i))
        model = models.Model([u, i], layers.Dot(axes=1)([eu, ei]))
        model.compile(optimizer=optimizers.Adam(1e-3), loss="binary_crossentropy")
        rng = np.random.default_rng(0)
        x = [rng.integers(0, n_users, 4096), rng.integers(0, rows, 4096)]
        model.fit(x, (rng.random(4096) < 0.5).astype(np.float32), batch_size=1024,
                  verbose=0, seed=1)
        gc.collect()
        users = np.arange(n_users)
        seen = (rng.integers(0, n_users, 20000), rng.integers(0, rows, 20000))
        tracemalloc.start()
        t0 = time.perf_counter()
        model.recommend(users, k=10, exclude=seen, verbose=0)
        seconds = time.perf_counter() - t0
        _, rec_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        t1 = time.perf_counter()
        evaluate_full(model, users[:64], rng.integers(0, rows, 64), seen, n_items=rows,
                      verbose=0, max_block_bytes=8 << 20)
        full_seconds = time.perf_counter() - t1
        _, full_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        whole = rows * cols * 4
        report = {"rank": rank, "rows": rows, "cols": cols, "item_table_bytes": whole,
                  "recommend_peak_bytes": rec_peak, "evaluate_full_peak_bytes": full_peak,
                  "recommend_seconds": seconds, "evaluate_full_seconds": full_seconds,
                  "max_block_bytes": 8 << 20, "setup_seconds": t0 - start,
                  "sharded": sharded(model)}
    elif mode == "local":  # each rank its partition vs the whole data on every rank
        (u, i), y = data()
        for small in (False, True):
            _sharding.WORK_ROWS = 16 if small else 1 << 16
            runs = {}
            for local in (True, False):
                distribution.set_distribution(distribution.ModelParallel(local_data=local))
                rows = interleaved(rank, size, N, BATCH) if local else np.arange(N)
                model = build("neumf")
                history = model.fit([u[rows], i[rows]], y[rows], batch_size=BATCH, epochs=2,
                                    shuffle=False, seed=11, verbose=0)
                runs[local] = {"sharded": sharded(model), "sha256": digest(model),  # gathers
                               "history": history.history,
                               "steps": int(model.optimizer.iterations)}
                if rank == 0 and local and not small:
                    np.savez(os.path.join(out, "local.npz"), *model.get_weights())
            report["small" if small else "big"] = {"local": runs[True], "whole": runs[False]}
        # a sampler over each rank's users, uneven partitions: as DataParallel(local_data)
        from neurec.data import NegativeSampler
        pos = np.flatnonzero(y > 0)
        mine = pos[u[pos] % 3 == 0] if rank == 0 else pos[u[pos] % 3 != 0]
        for key, d in (("sampler", distribution.ModelParallel(local_data=True)),
                       ("sampler-dp", distribution.DataParallel(local_data=True))):
            distribution.set_distribution(d)
            model = build("mf")
            sampler = NegativeSampler((u[mine], i[mine]), num_negatives=2, n_users=N_USERS,
                                      n_items=N_ITEMS, seed=3)
            history = model.fit(sampler, batch_size=100, epochs=2, seed=1, verbose=0)
            report[key] = {"sharded": sharded(model), "sha256": digest(model),
                           "history": history.history, "samples": int(sampler.num_samples)}
    elif mode == "mismatch":  # the ranks pass different users: a ValueError, no hang
        distribution.set_distribution(distribution.ModelParallel())
        model = train("mf")
        model.recommend(np.arange(10) + rank, k=3, verbose=0)
    elif mode == "callback":  # RankingMetrics while the tables are sharded
        from neurec.models import _distributed
        _distributed.ROUTE = False  # DataParallel cuts slices, as ModelParallel: the same bits
        from neurec.evaluation import RankingMetrics
        rng = np.random.default_rng(4)
        pos, neg = rng.integers(0, N_ITEMS, N_USERS), rng.integers(0, N_ITEMS, (N_USERS, 30))
        seen = (rng.integers(0, N_USERS, 900), rng.integers(0, N_ITEMS, 900))
        for key, d in (("dp", distribution.DataParallel()), ("mp", distribution.ModelParallel())):
            distribution.set_distribution(d)
            model = build("neumf")
            x, y = data()
            metrics = [RankingMetrics(np.arange(N_USERS), pos, negatives=neg, k=10),
                       RankingMetrics(np.arange(N_USERS), pos, train_matrix=seen, k=10,
                                      n_items=N_ITEMS, prefix="full_")]
            history = model.fit(x, y, batch_size=128, epochs=2, seed=1, verbose=0,
                                callbacks=metrics)
            report[key] = {"history": history.history,
                           "sharded": sharded(model)}
    elif mode == "histories":  # fold-in and ranking of new users, split across the ranks
        import neurec
        from neurec.models import _foldin, load_model
        from neurec.models import recommend as module
        done = {"ranked": 0, "groups": 0}
        rec, fit_rows = module.recommend, _foldin.fit_rows

        def counting_rec(model, users, **kw):
            done["ranked"] += len(users)
            return rec(model, users, **kw)

        def counting_fit(model, scratch, matrix, opts, progress=None, rows=None):
            original = scratch.fit

            def fit(*a, **kw):
                done["groups"] += 1
                return original(*a, **kw)
            scratch.fit = fit
            return fit_rows(model, scratch, matrix, opts, progress, rows)

        module.recommend, _foldin.fit_rows = counting_rec, counting_fit
        dist = {"dp": distribution.DataParallel(), "mp": distribution.ModelParallel()}
        for key, d in dist.items():
            distribution.set_distribution(d)
            model = load_model(args[0])
            if key == "mp":  # shard it
                x, y = data()
                model.fit(x, y, batch_size=128, epochs=1, seed=2, verbose=0)
                model.save(os.path.join(out, "histories-mp.neurec"))
            report[key] = {}
            for method, hist in histories_cases():
                ids, scores = model.recommend(histories=hist, k=8, seed=3, verbose=0,
                                              fold_in_options={"method": method})
                report[key][method] = {"ids": ids.tolist(), "scores": scores.tolist()}
            ids = model.recommend(histories=histories_cases()[0][1], k=8, seed=3,
                                  gather="main", verbose=0)
            report[key]["main"] = None if ids is None else ids[0].tolist()
            report[key]["sharded"] = sharded(model)
            report[key]["counts"] = dict(done)
            done.update(ranked=0, groups=0)
        neurec.utils.set_random_seed(0)
    with open(os.path.join(out, f"{mode}-{rank}.json"), "w") as f:
        json.dump(report, f)
    print(f"rank {rank} done", flush=True)


def histories_cases():
    """(fold-in method, histories): enough users for several fold-in groups."""
    rng = np.random.default_rng(9)
    hist = [rng.choice(N_ITEMS, size=int(rng.integers(1, 12)), replace=False).tolist()
            for _ in range(260)]
    return [("sgd", hist), ("solve", hist[:37])]


if __name__ == "__main__":
    main(*sys.argv[1:])
