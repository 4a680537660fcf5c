"""Scripts that tests/test_model_parallel.py launches under ``mpiexec -n 2``.

    python mp_fit.py MODE OUT_DIR [ROWS]

MODE: match | save | memory. The models and data are tests/mpi/dp_fit.py's.
"""
import gc
import json
import os
import sys
import time
import tracemalloc

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dp_fit  # noqa: E402

# the configurations ModelParallel trains (sparse updates, no validation data)
CONFIGS = ["adam-sparse", "adam-sampler", "adam-batch-list", "adam-last-batch-of-one"]


def weights_file(out, name, rank):
    return os.path.join(out, f"{name}-{rank}.npz")


def main(mode, out, rows=None):
    from neurec import distribution
    from neurec.distribution import _sharding
    distribution.initialize()
    rank = distribution.rank()
    if mode == "match":  # the same fits under DataParallel, then ModelParallel
        from neurec.models import _distributed
        _distributed.ROUTE = False  # DataParallel cuts slices, as ModelParallel: the same bits
        for small in (False, True):
            # small working tables: runs of one batch, grown by the first batch
            _sharding.WORK_ROWS = 16 if small else 1 << 16
            for name in CONFIGS:
                for dist in ("dp", "mp"):
                    if small and dist == "dp":
                        continue
                    distribution.set_distribution(distribution.ModelParallel() if dist == "mp"
                                                  else distribution.DataParallel())
                    model, history = dp_fit.train(name, verbose=0)
                    sharded = getattr(model, "_shards", None) is not None
                    tag = f"{name}-{dist}{'-small' if small else ''}"
                    np.savez(weights_file(out, tag, rank), *model.get_weights())
                    with open(os.path.join(out, f"{tag}-{rank}.json"), "w") as f:
                        json.dump({"sharded": sharded, "history": history.history,
                                   "iterations": model.optimizer.iterations}, f)
    elif mode == "save":  # save gathers on rank 0; load on every rank; fit re-shards
        import neurec
        distribution.set_distribution(distribution.ModelParallel())
        model, _ = dp_fit.train("adam-sparse", verbose=0)
        path = os.path.join(out, "mp.neurec")
        model.save(path)
        model.save_weights(os.path.join(out, "mp.weights.npz"))
        distribution.barrier()
        print(f"rank {rank} sharded after save {getattr(model, '_shards', None) is not None}", flush=True)
        results, _ = dp_fit.evaluation(model)  # scores shard by shard (_mp_score.py)
        with open(os.path.join(out, f"evaluate-{rank}.json"), "w") as f:
            json.dump(results, f)
        np.savez(weights_file(out, "trained", rank), *model.get_weights())
        opt = model.optimizer.variables()
        np.savez(os.path.join(out, f"opt-{rank}.npz"), *opt)
        loaded = neurec.models.load_model(path)
        x, y = dp_fit.data()
        loaded.fit(x, y, batch_size=101, epochs=2, initial_epoch=1, seed=12, verbose=0)
        print(f"rank {rank} resharded {getattr(loaded, '_shards', None) is not None}", flush=True)
        np.savez(weights_file(out, "resumed", rank), *loaded.get_weights())
        print(f"rank {rank} listdir {sorted(os.listdir(out))}", flush=True)
    elif mode == "memory":  # one big table under Adam: bytes per rank, sharded vs whole
        from neurec import layers, models, optimizers
        rows = int(rows)
        cols, n_items = 64, 1000
        distribution.set_distribution(distribution.ModelParallel())
        tracemalloc.start()
        u, i = layers.Input((1,), name="user"), layers.Input((1,), name="item")
        eu = layers.Flatten()(layers.Embedding(rows, cols, name="users")(u))
        ei = layers.Flatten()(layers.Embedding(n_items, cols, name="items")(i))
        out_t = layers.Dense(1, activation="sigmoid")(layers.Dot(axes=1)([eu, ei]))
        model = models.Model([u, i], out_t)
        model.compile(optimizer=optimizers.Adam(1e-3), loss="binary_crossentropy")
        rng = np.random.default_rng(0)
        n = 20000
        x = [rng.integers(0, rows, n), rng.integers(0, n_items, n)]
        y = (rng.random(n) < 0.5).astype(np.float32)
        t0 = time.perf_counter()
        model.fit(x, y, batch_size=1024, epochs=1, verbose=0, seed=1)
        seconds = time.perf_counter() - t0
        gc.collect()
        traced, peak = tracemalloc.get_traced_memory()
        shards = model._shards
        table = [t for t in shards.tables if t.rows == rows][0]
        held = sum(a.nbytes for a in table.shard + table.work if a is not None)
        # replicated: the weights, Adam's m and v and the per-row step counts
        whole = rows * cols * 4 * 3 + rows * 8
        # one file per rank: two ranks printing to one stdout may interleave their lines
        with open(os.path.join(out, f"memory-{rank}.json"), "w") as f:
            json.dump({"rank": rank, "rows": rows, "cols": cols, "table_bytes_per_rank": held,
                       "replicated_bytes": whole, "ratio": held / whole,
                       "traced_bytes": traced, "traced_ratio": traced / whole,
                       "working_rows": shards.capacity, "fit_seconds": seconds,
                       "fetch_bytes_sent": shards.bytes_sent}, f)
    print(f"rank {rank} done", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
