"""Scripts that tests/test_mp_predict.py launches under ``mpiexec -n 2``: ``fit``'s
validation, ``predict`` and ``evaluate`` under DataParallel and ModelParallel (sharded
tables: rows fetched from their owners), and ``recommend`` straight after a sharded fit.
Also imported there (``build``, ``data``, ``test_data``) to compute one process's results.

    python mp_predict.py MODE OUT_DIR [ARGS]

MODE: validation | evaluate | memory ROWS | recommend | mismatch WHAT. Each rank writes
its report to ``OUT_DIR/MODE-RANK.json`` (and what it prints to ``OUT_DIR/MODE-RANK.out``).
"""
import contextlib
import gc
import json
import os
import sys
import tracemalloc

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dp_local import interleaved  # noqa: E402  (DataParallel()'s slices of each batch)

N_USERS, N_ITEMS, N, BATCH = 150, 128, 3000, 128
DISTS = ("dp", "mp")


def data(n=N, seed=0):
    rng = np.random.default_rng(seed)
    u, i = rng.integers(0, N_USERS, n), rng.integers(0, N_ITEMS, n)
    return [u, i], ((u + 3 * i) % 7 < 3).astype(np.float32)


def sparse_data():
    """Samples that never read users 5k nor items below 8: the working rows of a run
    (its distinct ids, in order) are not the tables' rows."""
    (u, i), y = data()
    keep = (u % 5 != 0) & (i >= 8)
    return [u[keep], i[keep]], y[keep]


def test_data():
    """Held-out samples with sample weights, not a multiple of the batch."""
    x, y = data(1001, seed=7)
    return x, y, np.random.default_rng(8).uniform(0.2, 2.0, y.size).astype(np.float32)


def build(name="neumf"):
    """NeuMF with an L2 penalty on its GMF tables (the penalty of sharded tables is summed
    over the ranks) and two metrics (AUC needs every prediction)."""
    import neurec
    from neurec import optimizers
    from neurec.models import zoo
    neurec.utils.set_random_seed(5)
    if name == "neumf":
        model = zoo.NeuMF(N_USERS, N_ITEMS, factors=8, layers=(16, 8), reg_mf=1e-3)
    elif name == "mf":
        model = zoo.MF(N_USERS, N_ITEMS, factors=8, use_bias=True)
    elif name == "mf-nobias":
        model = zoo.MF(N_USERS, N_ITEMS, factors=8, use_bias=False)
    else:
        model = zoo.GMF(N_USERS, N_ITEMS, factors=8)
    model.compile(optimizer=optimizers.Adam(0.01), loss="binary_crossentropy",
                  metrics=["accuracy", "auc"])
    return model


def set_dist(dist, local=False):
    from neurec import distribution
    distribution.set_distribution(distribution.ModelParallel(local_data=local) if dist == "mp"
                                  else distribution.DataParallel(local_data=local))


def sharded(model):
    return getattr(model, "_shards", None) is not None


def validation_cases(rank, size):
    """``{case: fit keyword arguments}``: a split, arrays with sample weights (every other
    epoch), a list of batches, and each rank's partition with its own split."""
    x, y = data()
    vx, vy, vw = test_data()
    batches = [([vx[0][k:k + 100], vx[1][k:k + 100]], vy[k:k + 100])
               for k in range(0, vy.size, 100)]
    mine = interleaved(rank, size, N, BATCH)
    return {
        "split": dict(x=x, y=y, validation_split=0.25),
        "data-weighted": dict(x=x, y=y, validation_data=(vx, vy, vw), validation_freq=2),
        "batches": dict(x=x, y=y, validation_data=batches),
        "local-split": dict(x=[a[mine] for a in x], y=y[mine], validation_split=0.2),
    }


def main(mode, out, *args):
    from neurec import distribution
    from neurec.distribution import _sharding
    from neurec.models import _dp_predict
    distribution.initialize()
    rank, size = distribution.rank(), distribution.size()
    report = {}
    printed = open(os.path.join(out, f"{mode}-{rank}.out"), "w")
    with contextlib.redirect_stdout(printed):
        if mode == "validation":
            _dp_predict.BLOCK_ROWS = 96  # several rounds, not as many on every rank
            for small in (False, True):
                _sharding.WORK_ROWS = 16 if small else 1 << 14
                for case, kw in validation_cases(rank, size).items():
                    for dist in DISTS:
                        if small and dist == "dp":
                            continue
                        set_dist(dist, local=case.startswith("local"))
                        model = build()
                        history = model.fit(batch_size=BATCH, epochs=3, seed=11, shuffle=True,
                                            verbose=2 if case == "split" else 0, **kw)
                        key = f"{case}-{dist}{'-small' if small else ''}"
                        report[key] = {"history": history.history, "sharded": sharded(model)}
        elif mode == "evaluate":
            _dp_predict.BLOCK_ROWS = 64
            from neurec.callbacks import Callback

            class Rows(Callback):  # the batches and rows this rank predicted
                def __init__(self):
                    super().__init__()
                    self.batches, self.rows = [], 0

                def on_predict_batch_end(self, batch, logs=None):
                    self.batches.append(int(batch))
                    self.rows += int(logs["outputs"].shape[0])

            x, y = data()
            tx, ty, tw = test_data()
            for dist in DISTS:
                for local in (False, True):
                    set_dist(dist, local)
                    model = build()
                    rows = interleaved(rank, size, N, BATCH) if local else np.arange(N)
                    model.fit([a[rows] for a in x], y[rows], batch_size=BATCH, epochs=1,
                              seed=11, verbose=0)
                    key = f"{dist}{'-local' if local else ''}"
                    model.save(os.path.join(out, f"{key}.neurec"))  # rank 0 writes
                    part = np.arange(ty.size) if not local else \
                        np.array_split(np.arange(ty.size), size)[rank]
                    px = [a[part] for a in tx]
                    cb = Rows()
                    pred = model.predict(px, batch_size=50, verbose=0, callbacks=[cb])
                    np.save(os.path.join(out, f"pred-{key}-{rank}.npy"), pred)
                    report[key] = {
                        "evaluate": model.evaluate(px, ty[part], sample_weight=tw[part],
                                                   verbose=0, return_dict=True),
                        "main": model.evaluate(px, ty[part], verbose=0, return_dict=True,
                                               gather="main"),
                        "predicted_batches": cb.batches, "predicted_rows": cb.rows,
                        "call": model([a[:3] for a in px]).tolist()}
                    if not local:  # every rank reads the same batches
                        report[key]["batch_list"] = model.evaluate(
                            [(px, ty[part])], verbose=0, return_dict=True)
                    report[key]["sharded"] = sharded(model)
        elif mode == "memory":  # a big item table: what a rank allocates to predict it
            from neurec import layers, models, optimizers
            rows, cols, n_users = int(args[0]), 32, 2000
            set_dist("mp")
            u, i = layers.Input((1,), name="user"), layers.Input((1,), name="item")
            eu = layers.Flatten()(layers.Embedding(n_users, cols, name="users")(u))
            ei = layers.Flatten()(layers.Embedding(rows, cols, name="items")(i))
            model = models.Model([u, i], layers.Dense(1, activation="sigmoid")(
                layers.Dot(axes=1)([eu, ei])))
            model.compile(optimizer=optimizers.Adam(1e-3), loss="binary_crossentropy")
            rng = np.random.default_rng(0)
            x = [rng.integers(0, n_users, 4096), rng.integers(0, rows, 4096)]
            y = (rng.random(4096) < 0.5).astype(np.float32)
            vx = [rng.integers(0, n_users, 20000), rng.integers(0, rows, 20000)]
            vy = (rng.random(20000) < 0.5).astype(np.float32)
            model.fit(x, y, batch_size=1024, verbose=0, seed=1)
            gc.collect()
            peaks = {}
            for what, call in (("predict", lambda: model.predict(vx, verbose=0)),
                               ("evaluate", lambda: model.evaluate(vx, vy, verbose=0)),
                               ("fit-validation", lambda: model.fit(
                                   x, y, batch_size=1024, verbose=0, seed=2,
                                   validation_data=(vx, vy)))):
                tracemalloc.start()
                call()
                peaks[what] = tracemalloc.get_traced_memory()[1]
                tracemalloc.stop()
                gc.collect()
            report = {"item_table_bytes": rows * cols * 4, "peaks": peaks,
                      "sharded": sharded(model)}
        elif mode == "recommend":  # recommend of a dot-product model straight after fit
            x, y = sparse_data()
            users = np.r_[np.arange(N_USERS), 3, 3]
            for name in ("mf", "mf-nobias", "gmf"):
                for small in (False, True):
                    _sharding.WORK_ROWS = 16 if small else 1 << 14
                    set_dist("mp")
                    model = build(name)
                    model.fit(x, y, batch_size=64, epochs=1, seed=3, verbose=0)
                    key = f"{name}{'-small' if small else ''}"
                    working = {t.layer.name: int(t.work[0].shape[0])
                               for t in model._shards.tables}
                    ids, scores = model.recommend(users, k=10, exclude=False, verbose=0)
                    report[key] = {"ids": ids.tolist(), "scores": scores.tolist(),
                                   "working_rows": working, "sharded": sharded(model)}
                    model.save(os.path.join(out, f"{key}.neurec"))
        elif mode == "mismatch":  # a ValueError on every rank, never a hang
            x, y = data()
            set_dist("mp")
            model = build()
            if args[0] == "validation":  # rank 1 alone passes validation data
                model.fit(x, y, batch_size=BATCH, epochs=1, seed=1, verbose=0,
                          validation_split=0.2 if rank == 1 else 0.0)
            else:  # the ranks predict different x
                model.fit(x, y, batch_size=BATCH, epochs=1, seed=1, verbose=0)
                model.predict([a[rank:] for a in x], verbose=0)
    printed.close()
    with open(os.path.join(out, f"{mode}-{rank}.json"), "w") as f:
        json.dump(report, f)


if __name__ == "__main__":
    main(*sys.argv[1:])
