"""Scripts that tests/test_distributed.py launches under ``mpiexec -n 2``; also imported
there (``build``, ``data``, ``CONFIGS``) to train the same models on one process.

    python dp_fit.py MODE OUT_DIR

MODE: hello | match | shared | sync-rows | many-fits | threads | evaluate | files |
raise-data | raise-callback | kill | interrupt | mismatch.
"""
import hashlib
import json
import os
import signal
import sys

import numpy as np

CONFIGS = {  # name: (optimizer, sparse_updates, global batch size, sampler)
    "sgd-sparse": ("sgd", True, 128, False),  # with validation_split: rank 0 validates
    "sgd-dense": ("sgd", False, 101, False),  # 101 = 50 + 51, the last short; sample weights
    "adam-sparse": ("adam", True, 101, False),
    "adam-dense": ("adam", False, 128, False),  # run with the two-phase dense reduction
    "adam-sampler": ("adam", True, 256, True),
    # 9,000 positives: three of the sampler's blocks, drawn in shares by the ranks
    "adam-sampler-blocks": ("adam", True, 1024, True),
    # the sampler's drawn column routed (its users feed the model's items): the owners
    # of each pass's samples are found anew and its shuffle carries them
    "adam-sampler-items": ("adam", True, 256, True),
    # a list of (x, y) batches of 128 (the last of 92) instead of arrays
    "adam-batch-list": ("adam", True, 128, False),
    # batches of 1499 and 1: rank 0 has no sample of the last one and steps with none
    "adam-last-batch-of-one": ("adam", True, 1499, False),
}
N_USERS, N_ITEMS, N = 120, 80, 1500


def data():
    rng = np.random.default_rng(0)
    u, i = rng.integers(0, N_USERS, N), rng.integers(0, N_ITEMS, N)
    return [u, i], ((u + 2 * i) % 5 < 2).astype(np.float32)


def build(optimizer="adam", sparse=True, factors=8):
    import neurec
    from neurec import optimizers
    from neurec.models import zoo
    neurec.utils.set_random_seed(5)
    model = zoo.NeuMF(N_USERS, N_ITEMS, factors=factors, layers=(16, 8))
    opt = optimizers.Adam(0.01, sparse_updates=sparse) if optimizer == "adam" else \
        optimizers.SGD(0.1, momentum=0.5, sparse_updates=sparse)
    model.compile(optimizer=opt, loss="binary_crossentropy", metrics=["accuracy"])
    return model


def sampler_of(name, seed=3):
    from neurec.data import NegativeSampler
    x, y = data()
    users, items = x[0][y > 0], x[1][y > 0]
    if name == "adam-sampler-blocks":
        rng = np.random.default_rng(2)
        users, items = rng.integers(0, N_USERS, 9000), rng.integers(0, N_ITEMS, 9000)
    if name == "adam-sampler-items":
        return NegativeSampler((items, users), num_negatives=2, n_users=N_ITEMS,
                               n_items=N_USERS, user_input="item", item_input="user", seed=seed)
    return NegativeSampler((users, items), num_negatives=2, n_users=N_USERS, n_items=N_ITEMS,
                           seed=seed)


def train(name, **fit):
    """One epoch of config ``name`` on however many processes run it; two for
    adam-sampler-blocks (the later epochs draw less), adam-sparse and adam-sampler-items
    (the later epochs' shuffles carry the samples' owners)."""
    optimizer, sparse, batch_size, sampler = CONFIGS[name]
    model = build(optimizer, sparse)
    x, y = data()
    if sampler:
        x, y = sampler_of(name), None
    if name == "sgd-sparse":
        fit["validation_split"] = 0.2
    if name == "sgd-dense":
        fit["sample_weight"] = np.random.default_rng(1).uniform(0.2, 3.0, N).astype(np.float32)
    if name == "adam-batch-list":
        x = [([x[0][k:k + batch_size], x[1][k:k + batch_size]], y[k:k + batch_size])
             for k in range(0, N, batch_size)]
        y = batch_size = None
    epochs = 2 if name in ("adam-sampler-blocks", "adam-sparse", "adam-sampler-items") else 1
    history = model.fit(x, y, batch_size=batch_size, epochs=epochs, seed=11, **fit)
    return model, history


def evaluation(model):
    """evaluate_sampled and evaluate_full (per user, several held-out items) of ``model``,
    and how many (user, item) pairs it scored."""
    from neurec.evaluation import evaluate_full, evaluate_sampled
    rng = np.random.default_rng(4)
    users = np.arange(N_USERS)
    pos, neg = rng.integers(0, N_ITEMS, N_USERS), rng.integers(0, N_ITEMS, (N_USERS, 20))
    held = (np.repeat(users, 2), rng.integers(0, N_ITEMS, 2 * N_USERS))
    seen = (rng.integers(0, N_USERS, 600), rng.integers(0, N_ITEMS, 600))
    scored, predict = [0], model.predict

    def counting(x, **kw):
        scored[0] += len(x[0])
        return predict(x, **kw)

    model.predict = counting
    out = {"sampled": evaluate_sampled(model, users, pos, neg, k=[5, 10], verbose=0),
           "full": evaluate_full(model, None, held, seen, k=10, n_items=N_ITEMS, verbose=0),
           "per_user": evaluate_sampled(model, users, pos, neg, per_user=True,
                                        verbose=0)["hr@10"].tolist()}
    del model.predict
    from neurec.models import recommend as module
    asked, rec = [], module.recommend

    def counting_rec(model, users, **kw):
        asked.append(len(users))
        return rec(model, users, **kw)

    module.recommend = counting_rec
    ids, scores = model.recommend(np.r_[users, N_USERS + 3], k=5, exclude=seen,
                                  unknown="popular", verbose=0)  # one unknown user
    module.recommend = rec
    out["recommend"] = {"ids": ids.tolist(), "scores": scores.tolist(), "users": asked}
    return out, scored[0]


def digest(model):
    """sha256 of the weights and of the optimizer state (slots, per-row step counts)."""
    return hashlib.sha256(b"".join(w.tobytes() for w in model.get_weights() + state(model))
                          ).hexdigest()


def state(model):
    """The optimizer's state arrays (empty before the first fit)."""
    return [a for slots in model.optimizer._slots for a in slots if a is not None]


def table_rows_digest(model, rank, size=2):
    """sha256 of the optimizer state of the table rows rank owns (ids = rank mod size)."""
    parts = []
    for k, (_, _, table) in enumerate(model._builder.params):
        if table:
            parts += [a[rank::size].tobytes() for a in model.optimizer._slots[k]
                      if a is not None]
    return hashlib.sha256(b"".join(parts)).hexdigest()


def raise_then_fit(model):
    """A fit stopped by an exception after its first chunk (16 batches: rows' optimizer
    state then lags on the ranks that do not own them), caught; then one more epoch."""
    from neurec import callbacks

    class Stop(Exception):
        pass

    def stop(batch, logs):
        raise Stop(batch)

    x, y = data()
    try:
        model.fit(x, y, batch_size=16, epochs=1, seed=5, verbose=0,
                  callbacks=[callbacks.LambdaCallback(on_train_batch_end=stop)])
    except Stop:
        pass
    model.fit(x, y, batch_size=16, epochs=1, seed=6, verbose=0)
    return model


def main(mode, out):
    before = "mpi4py" in sys.modules
    from neurec import callbacks, distribution
    imported = "mpi4py" in sys.modules
    distribution.initialize()
    distribution.set_distribution(distribution.DataParallel())
    rank = distribution.rank()
    if mode == "hello":
        print(f"rank={rank} size={distribution.size()} main={distribution.is_main()} "
              f"mpi4py_before_initialize={before or imported}", flush=True)
        model, (x, y) = build(), data()
        try:  # one step per process would part the weights
            model.train_on_batch(x, y)
        except ValueError as e:
            print(f"refused: {e}"[:40], flush=True)
    elif mode == "match":
        from neurec.distribution import _exchange
        from neurec.models import _distributed
        routes, end = [], _distributed.DataParallelFit.end

        def ending(self, failed=False):  # the tables left out of the exchange (_routing.py)
            routes.append((None if self.route is None else list(self.route.params),
                           self.tagged_chunks))
            end(self, failed)

        _distributed.DataParallelFit.end = ending
        for name in CONFIGS:
            _exchange.GATHER_DENSE_MAX = 0 if name == "adam-dense" else 1 << 22
            model, history = train(name, verbose=0)
            with open(os.path.join(out, f"{name}-{rank}.json"), "w") as f:
                json.dump({"sha256": digest(model), "history": history.history,
                           "routed": routes[-1][0], "tagged_chunks": routes[-1][1]}, f)
            if rank == 0:
                np.savez(os.path.join(out, f"{name}.npz"), *model.get_weights(), *state(model))
    elif mode == "shared":  # the shared-window exchange against messages
        from neurec.distribution import _shared
        from neurec.models import _distributed
        kinds, made = [], _shared.exchange_for

        def exchange_for(*a, **kw):
            ex = made(*a, **kw)
            kinds.append(ex)
            return ex

        _shared.exchange_for = exchange_for
        report = {}
        for how, shared, headroom, values in (
                ("messages", False, 1.5, 1.5), ("window", True, 1.5, 1.5),
                ("window outgrown every step", True, 0.5, 1.5),
                ("new rows outgrow it every step", True, 1.5, 0.5)):
            _shared.SHARED, _shared.HEADROOM, _shared.VALUES_HEADROOM = shared, headroom, values
            model, history = train("adam-sampler", verbose=0)
            ex = kinds[-1]
            report[how] = {"sha256": digest(model), "history": history.history,
                           "exchange": type(ex).__name__, "steps": ex.steps,
                           "window_steps": getattr(ex, "window_steps", 0)}
        with open(os.path.join(out, f"shared-{rank}.json"), "w") as f:
            json.dump(report, f)
    elif mode == "sync-rows":  # _routing.sync_rows with unequal, empty and split shares
        from neurec.distribution import _routing
        _routing.SYNC_ROWS = 3  # 3 rows a round: 5 rows take two, 0 rows none of their own
        comm = distribution.communicator()
        got = []
        for shares in ([[], [1, 5, 7, 9, 11]], [[0, 2, 4, 6], [3, 8]]):
            w = np.full((14, 4), -1.0, np.float32)
            steps = np.full(14, -1, np.int64)
            mine = np.array(shares[rank], dtype=np.int64)
            w[mine] = rank + mine[:, None] / 100.0  # the rows this rank updated
            steps[mine] = 10 * rank + mine
            _routing.sync_rows(comm, [w, steps], mine)
            got.append({"w": w.tolist(), "steps": steps.tolist()})
        with open(os.path.join(out, f"sync-rows-{rank}.json"), "w") as f:
            json.dump(got, f)
    elif mode == "many-fits":  # more fits than MPI has communicators (2048 in MPICH)
        model, (x, y) = build(), data()
        for _ in range(2100):
            model.fit([x[0][:64], x[1][:64]], y[:64], batch_size=64, epochs=1, verbose=0)
        print(f"rank {rank} fits done", flush=True)
    elif mode == "threads":  # rank r runs r + 1 threads; a model wide enough to use them
        import neurec
        from neurec import optimizers
        from neurec.models import zoo
        neurec.set_num_threads(rank + 1)
        (x, y) = data()
        for sparse in (True, False):
            neurec.utils.set_random_seed(5)
            model = zoo.NeuMF(N_USERS, N_ITEMS, factors=64, layers=(256, 128, 64))
            model.compile(optimizer=optimizers.Adam(1e-3, sparse_updates=sparse),
                          loss="binary_crossentropy")
            model.fit(x, y, batch_size=1024, epochs=1, verbose=0, seed=2)
            print(f"sparse={sparse} rank {rank} threads {neurec.get_num_threads()} "
                  f"{digest(model)}", flush=True)
    elif mode == "evaluate":
        results, scored = evaluation(build())
        with open(os.path.join(out, f"evaluate-{rank}.json"), "w") as f:
            json.dump({"results": results, "scored": scored}, f)
    elif mode == "files":
        model, (x, y) = build(), data()
        if rank == 1:  # fit starts from rank 0's weights and step count
            model.set_weights([w + 0.5 for w in model.get_weights()])
            model.optimizer.iterations = 7
        log = os.path.join(out, "log.csv")
        ckpt = os.path.join(out, "ckpt-{epoch}.weights.npz")
        def stop(epoch, logs):  # rank 1 alone asks to stop: every rank stops with it
            if rank == 1 and epoch == 2:
                model.stop_training = True
        history = model.fit(x, y, batch_size=100, epochs=5, seed=1, verbose=2, callbacks=[
            callbacks.CSVLogger(log, append=True),
            callbacks.ModelCheckpoint(ckpt, save_weights_only=True, verbose=1),
            callbacks.LambdaCallback(on_epoch_end=stop)])
        print(f"rank {rank} trained {len(history.history['loss'])} epochs "
              f"{model.optimizer.iterations} steps {digest(model)}")
        model.save(os.path.join(out, f"model-{rank}.neurec"))  # rank 0 alone writes
        model.save_weights(os.path.join(out, f"model-{rank}.weights.npz"))
    elif mode in ("raise-data", "raise-callback"):
        model, (x, y) = build(), data()
        if mode == "raise-data" and rank == 1:
            y = y.copy()
            y[7] = np.nan
        def fail(batch, logs):
            if rank == 1 and batch >= 2:
                raise RuntimeError("a callback failed on rank 1")
        model.fit(x, y, batch_size=16, epochs=50, verbose=0,
                  callbacks=[callbacks.LambdaCallback(on_train_batch_end=fail)])
    elif mode == "kill":
        model, (x, y) = build(), data()
        epoch = [0]
        def die(batch, logs):  # mid-way through the second epoch, after one checkpoint
            if rank == 1 and epoch[0] == 1 and batch >= 40:
                os.kill(os.getpid(), signal.SIGKILL)
        model.fit(x, y, batch_size=16, epochs=50, verbose=0, callbacks=[
            callbacks.ModelCheckpoint(os.path.join(out, "last.neurec")),
            callbacks.LambdaCallback(on_epoch_begin=lambda e, logs: epoch.__setitem__(0, e),
                                     on_train_batch_end=die)])
    elif mode == "interrupt":  # Ctrl-C while the ranks step through the shared window
        model, (x, y) = build(), data()
        epoch = [0]

        def started(batch, logs):  # the second epoch: the window and tagged shuffles in use
            marker = os.path.join(out, f"started-{rank}")
            if epoch[0] >= 1 and not os.path.exists(marker):
                open(marker, "w").close()

        model.fit(x, y, batch_size=16, epochs=100000, verbose=0, callbacks=[
            callbacks.LambdaCallback(on_epoch_begin=lambda e, logs: epoch.__setitem__(0, e),
                                     on_train_batch_end=started)])
    elif mode == "mismatch":
        model, (x, y) = build(factors=8 + rank), data()
        model.fit(x, y, batch_size=100, epochs=1, verbose=0)
    elif mode == "state-chunks":  # ModelCheckpoint(save_freq=int): rank 0 saves mid-epoch
        from neurec import callbacks
        model, (x, y) = build(), data()

        def record(batch, logs):  # what each rank holds of each owner's rows' state
            print(f"batch {batch} rank {rank} " + " ".join(
                table_rows_digest(model, r) for r in range(2)), flush=True)

        model.fit(x, y, batch_size=16, epochs=3, verbose=0, callbacks=[
            callbacks.ModelCheckpoint(os.path.join(out, "ckpt.neurec"), save_freq=20),
            callbacks.LambdaCallback(on_train_batch_end=record)])
    elif mode == "raise-then-fit":
        model = raise_then_fit(build())
        print(f"rank {rank} raised-then-fit {digest(model)}", flush=True)
        if rank == 0:
            np.savez(os.path.join(out, "raise-then-fit.npz"), *model.get_weights(),
                     *state(model))
    elif mode == "sampler-mismatch":  # the same positives, another seed on rank 1
        build().fit(sampler_of("adam-sampler", seed=3 + rank), batch_size=100, epochs=1,
                    verbose=0)
    elif mode == "validation-mismatch":  # rank 1 passes no validation data
        model, (x, y) = build(), data()
        val = {"validation_data": ([a[:100] for a in x], y[:100])}
        model.fit(x, y, batch_size=100, epochs=1, verbose=0, **(val if rank == 0 else {}))
    print(f"rank {rank} done", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else ".")
