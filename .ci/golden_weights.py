"""Fingerprints of trained weights, predictions and top-K for fixed seeds and thread counts.

A refactor that must not change results ("behaviour and results unchanged") is checked by
running this before and after it on the same machine and build flags and comparing:

    python .ci/golden_weights.py > before.json
    ... change ...
    python .ci/golden_weights.py > after.json && diff before.json after.json

The hashes depend on the CPU's SIMD level and the compiler, so they are not stored in the
repository; only the two runs on one machine are comparable.
"""

import hashlib
import json
import sys

import numpy as np

import neurec
from neurec import layers, models, optimizers
from neurec.data import NegativeSampler
from neurec.data.sampling import as_matrix
from neurec.datasets import make_purchases


def digest(arrays):
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str(a.dtype).encode() + str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def keras_style(n_users, n_items):
    u = layers.Input(shape=(1,), dtype="int64", name="u")
    i = layers.Input(shape=(1,), dtype="int64", name="i")
    eu = layers.Flatten()(layers.Embedding(n_users, 8, name="eu")(u))
    ei = layers.Flatten()(layers.Embedding(n_items, 8, name="ei")(i))
    x = layers.Concatenate()([eu, ei, layers.Dot(axes=1)([eu, ei])])
    x = layers.Dense(16, activation="tanh")(x)
    x = layers.Dense(4, activation="relu")(x)
    out = layers.Dense(1, activation="sigmoid")(x)
    return models.Model([u, i], out)


def main():
    log = make_purchases(n_users=300, n_items=200, seed=3)
    n_users, n_items = len(log.user_ids), len(log.item_ids)
    m = as_matrix((log.user_index, log.item_index), n_users, n_items)
    out = {}
    cases = [
        ("gmf", lambda: models.GMF(n_users, n_items, 8), "adam", "binary_crossentropy"),
        ("mlp", lambda: models.MLP(n_users, n_items, [32, 16, 8]), "adam", "binary_crossentropy"),
        (
            "neumf",
            lambda: models.NeuMF(n_users, n_items, 8, [32, 16, 8]),
            "adam",
            "binary_crossentropy",
        ),
        ("mf", lambda: models.MF(n_users, n_items, 16), "adagrad", "binary_crossentropy"),
        ("keras", lambda: keras_style(n_users, n_items), "rmsprop", "mse"),
        ("keras_sgd", lambda: keras_style(n_users, n_items), "sgd", "binary_crossentropy"),
    ]
    users = np.arange(n_users, dtype=np.int64)
    for threads in (1, 2):
        neurec.set_num_threads(threads)
        for name, build, opt, loss in cases:
            for sparse in (True, False):
                neurec.utils.set_random_seed(7)
                model = build()
                o = optimizers.get(opt)
                if not sparse:
                    o.sparse_updates = False
                model.compile(optimizer=o, loss=loss)
                sampler = NegativeSampler(m, num_negatives=4, seed=11)
                model.fit(sampler, batch_size=256, epochs=2, verbose=0, seed=5)
                w = digest(model.get_weights())
                p = digest([model.predict([users, (users * 7) % n_items], verbose=0)])
                r = digest(list(model.recommend(users[:50], k=10, exclude=m)))
                out[f"{name}/t{threads}/sparse={sparse}"] = [w, p, r]
        neurec.utils.set_random_seed(7)
        als = models.MF(n_users, n_items, 16)
        als.compile(optimizer=optimizers.ALS(regularization=0.05))
        als.fit(m, epochs=3, verbose=0)
        out[f"als/t{threads}"] = [digest(als.get_weights())]
    json.dump(out, sys.stdout, indent=1, sort_keys=True)
    print()


if __name__ == "__main__":
    main()
