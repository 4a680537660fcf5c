"""Scripts that tests/test_distributed_local.py launches under ``mpiexec -n 2``:
``DataParallel(local_data=True)``, each rank passing only its own partition. Also
imported there to train the same models on one process.

    python dp_local.py MODE OUT_DIR

MODE: interleave | hr | uneven | mismatch.
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dp_fit  # noqa: E402  (the model and data of tests/test_distributed.py)

BATCH = 128


def interleaved(rank, size, n=dp_fit.N, batch=BATCH):
    """Rank ``rank``'s rows: its contiguous slice of every batch of ``batch`` rows (the
    last one short), the slices ``DataParallel()`` cuts with ``shuffle=False``."""
    out = []
    for s in range(0, n, batch):
        length = min(batch, n - s)
        out.append(np.arange(s + length * rank // size, s + length * (rank + 1) // size))
    return np.concatenate(out)


def train_interleave(optimizer, sparse, rows=None, epochs=2):
    """``shuffle=False`` training on ``rows`` of dp_fit's data (all of it by default)."""
    model = dp_fit.build(optimizer, sparse)
    (u, i), y = dp_fit.data()
    if rows is not None:
        u, i, y = u[rows], i[rows], y[rows]
    history = model.fit([u, i], y, batch_size=BATCH, epochs=epochs, shuffle=False, seed=11,
                        verbose=0)
    return model, history


# -- an ml-100k-like log, leave-one-out -------------------------------------------------
N_USERS, N_ITEMS = 4000, 1682


def purchases():
    """(train users, train items, test items per user, 99 negatives per user)."""
    from neurec.data import InteractionLog, leave_one_out, sample_negatives
    from neurec.datasets import make_purchases
    d = make_purchases(n_users=N_USERS, n_items=N_ITEMS, n_categories=20, mean_purchases=60,
                       seed=1)
    train, test = leave_one_out(InteractionLog(d.user_index, d.item_index,
                                               timestamps=d.timestamps))
    from neurec.data.sampling import as_matrix
    matrix = as_matrix((train.users, train.items), N_USERS, N_ITEMS)
    negatives = sample_negatives(matrix, test.users, 99, seed=2, exclude_items=test.items)
    return train.users, train.items, test, negatives


def train_hr(users, items, test, negatives, epochs=8, seed=7):
    """NeuMF trained with a NegativeSampler on ``(users, items)``; HR@10 and NDCG@10 on
    the leave-one-out test (every rank evaluates the same users)."""
    import neurec
    from neurec.data import NegativeSampler
    from neurec.evaluation import evaluate_sampled
    from neurec.models import zoo
    neurec.utils.set_random_seed(5)
    model = zoo.NeuMF(N_USERS, N_ITEMS, factors=8, layers=(32, 16, 8))
    model.compile(optimizer=neurec.optimizers.Adam(0.002), loss="binary_crossentropy")
    sampler = NegativeSampler((users, items), num_negatives=4, n_users=N_USERS,
                              n_items=N_ITEMS, seed=3)
    model.fit(sampler, batch_size=512, epochs=epochs, seed=seed, verbose=0)
    return model, evaluate_sampled(model, test.users, test.items, negatives, k=10, verbose=0)


def main(mode, out):
    from neurec import distribution
    distribution.initialize()
    distribution.set_distribution(distribution.DataParallel(local_data=True))
    rank, size = distribution.rank(), distribution.size()
    report = {}
    if mode == "interleave":
        rows = interleaved(rank, size)
        for optimizer, sparse in (("adam", True), ("sgd", False)):
            model, history = train_interleave(optimizer, sparse, rows)
            report[f"{optimizer}-{sparse}"] = {"sha256": dp_fit.digest(model),
                                              "history": history.history,
                                              "steps": int(model.optimizer.iterations)}
            if rank == 0:
                np.savez(os.path.join(out, f"{optimizer}-{sparse}.npz"), *model.get_weights())
        # the same data on every rank, DataParallel() cutting slices (not routing samples
        # to the owners of their users' rows): the same slices of the same batches
        from neurec.models import _distributed
        _distributed.ROUTE = False
        distribution.set_distribution(distribution.DataParallel())
        for optimizer, sparse in (("adam", True), ("sgd", False)):
            model, _ = train_interleave(optimizer, sparse)
            report[f"{optimizer}-{sparse}"]["whole data sha256"] = dp_fit.digest(model)
    elif mode == "hr":
        users, items, test, negatives = purchases()
        mine = users % size == rank  # each rank holds its users' interactions
        model, metrics = train_hr(users[mine], items[mine], test, negatives)
        report = {"metrics": metrics, "sha256": dp_fit.digest(model),
                  "positives": int(mine.sum())}
    elif mode == "uneven":
        from neurec.data import NegativeSampler
        (u, i), y = dp_fit.data()
        pos = np.flatnonzero(y > 0)
        mine = pos[: len(pos) // 4] if rank == 0 else pos[len(pos) // 4:]
        model = dp_fit.build("adam", True)
        sampler = NegativeSampler((u[mine], i[mine]), num_negatives=2, n_users=dp_fit.N_USERS,
                                  n_items=dp_fit.N_ITEMS, seed=3)
        history = model.fit(sampler, batch_size=100, epochs=2, seed=1, verbose=0)
        report = {"sha256": dp_fit.digest(model), "steps": int(model.optimizer.iterations),
                  "history": history.history, "samples": sampler.num_samples,
                  "n_positives": int(len(pos))}
    elif mode == "mismatch":
        from neurec.data import NegativeSampler
        (u, i), y = dp_fit.data()
        keep = (y > 0) & (i < dp_fit.N_ITEMS - 1)
        model = dp_fit.build("adam", True)
        # rank 1 leaves n_items to its partition, which lacks the last item
        sampler = NegativeSampler((u[keep], i[keep]), num_negatives=2, n_users=dp_fit.N_USERS,
                                  n_items=dp_fit.N_ITEMS if rank == 0 else None, seed=3)
        model.fit(sampler, batch_size=100, epochs=1, verbose=0)
    with open(os.path.join(out, f"{mode}-{rank}.json"), "w") as f:
        json.dump(report, f)
    print(f"rank {rank} done", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else ".")
