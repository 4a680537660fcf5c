"""Keras 3 baseline (torch backend by default): the NCF authors' Keras models, same protocol.

Usage (from the repository root):
    KERAS_BACKEND=torch nice -n 10 python benchmarks/bench_keras_baseline.py \
        --dataset ml-100k --model neumf --epochs 20 --threads 1 --seed 0

The models are the NCF code's functional graphs in Keras 3 spelling (Input(shape=(1,)),
Embedding(RandomNormal(stddev=0.01)), Flatten, Multiply / Concatenate, Dense(relu) tower,
Dense(1, sigmoid)); compiled with Adam(lr, epsilon=1e-8) and binary cross-entropy. Every epoch
calls ``model.fit(..., epochs=1, batch_size=256)`` on fresh negatives from ``ncf_data`` (the
same sampler and evaluation as the PyTorch baseline). Output: ``results/runs/keras_*.json`` with the
same fields as ``bench_torch_baseline.py``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "torch")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402
import ncf_data  # noqa: E402


def _global_bias_layer(keras: Any) -> type:
    """A layer adding one trainable scalar (zero-initialised) to its input."""

    class GlobalBias(keras.layers.Layer):
        def build(self, input_shape: Any) -> None:
            self.bias = self.add_weight(shape=(1,), initializer="zeros", name="bias")

        def call(self, x: Any) -> Any:
            return x + self.bias

    return GlobalBias


def build_keras_model(
    name: str,
    n_users: int,
    n_items: int,
    factors: int | None = None,
    layers: Sequence[int] = (64, 32, 16, 8),
    init_std: float = 0.01,
    final_init: str = "glorot_uniform",
    seed: int = 0,
) -> Any:
    """Builds a Keras 3 functional NCF model (GMF, MLP, NeuMF) or logistic MF with biases.

    Args:
        name: ``"gmf"``, ``"mlp"``, ``"neumf"`` or ``"mf"``.
        n_users: user id count.
        n_items: item id count.
        factors: GMF / NeuMF factor (default 8) or MF factor (default 32).
        layers: MLP tower; ``layers[0]`` is the concatenated embedding width.
        init_std: std of the normal embedding init.
        final_init: Keras initializer name of the prediction layer.
        seed: seed of the initializers.

    Returns:
        An uncompiled ``keras.Model`` taking ``[users, items]`` of shape ``(batch, 1)`` and
        returning probabilities of shape ``(batch, 1)``.

    Raises:
        ValueError: on an unknown model name or a tower with an odd first width.
    """
    import keras
    from keras import layers as L

    if name not in ("gmf", "mlp", "neumf", "mf"):
        raise ValueError(f"model must be one of 'gmf', 'mlp', 'neumf', 'mf'; got {name!r}.")
    if layers[0] % 2:
        raise ValueError(f"layers[0] must be even (two equal embeddings); got {tuple(layers)}.")
    seeds = iter(range(seed * 1000, seed * 1000 + 100))

    def emb(num: int, dim: int, nm: str, init: Any = None) -> Any:
        init = init or keras.initializers.RandomNormal(stddev=init_std, seed=next(seeds))
        return L.Embedding(num, dim, embeddings_initializer=init, name=nm)

    def final(nm: str = "prediction") -> Any:
        init = keras.initializers.get({"class_name": final_init, "config": {"seed": next(seeds)}})
        return L.Dense(1, activation="sigmoid", kernel_initializer=init, name=nm)

    def tower(x: Any) -> Any:
        for k, width in enumerate(layers[1:], 1):
            init = keras.initializers.GlorotUniform(seed=next(seeds))
            x = L.Dense(width, activation="relu", kernel_initializer=init, name=f"layer{k}")(x)
        return x

    u_in = keras.Input(shape=(1,), dtype="int32", name="user_input")
    i_in = keras.Input(shape=(1,), dtype="int32", name="item_input")
    f = factors or (32 if name == "mf" else 8)
    if name in ("gmf", "neumf", "mf"):
        pu = L.Flatten()(emb(n_users, f, "mf_embedding_user")(u_in))
        qi = L.Flatten()(emb(n_items, f, "mf_embedding_item")(i_in))
    if name in ("mlp", "neumf"):
        mu = L.Flatten()(emb(n_users, layers[0] // 2, "mlp_embedding_user")(u_in))
        mi = L.Flatten()(emb(n_items, layers[0] // 2, "mlp_embedding_item")(i_in))
        mlp = tower(L.Concatenate()([mu, mi]))
    if name == "gmf":
        out = final()(L.Multiply()([pu, qi]))
    elif name == "mlp":
        out = final()(mlp)
    elif name == "neumf":
        out = final()(L.Concatenate()([L.Multiply()([pu, qi]), mlp]))
    else:
        bu = L.Flatten()(emb(n_users, 1, "user_bias", "zeros")(u_in))
        bi = L.Flatten()(emb(n_items, 1, "item_bias", "zeros")(i_in))
        logit = L.Add()([L.Dot(axes=1)([pu, qi]), bu, bi])
        out = L.Activation("sigmoid")(_global_bias_layer(keras)(name="global_bias")(logit))
    return keras.Model([u_in, i_in], out, name=name)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parses the command line (same flags as bench_torch_baseline.py)."""
    args = common.parse_args(
        "Keras 3 NCF baseline (neurec benchmarks)", ["adam", "sgd", "adagrad"], argv
    )
    if args.l2 > 0:
        raise SystemExit("--l2 (row-wise L2) is only implemented in the PyTorch baseline.")
    return args


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Trains and evaluates one configuration; returns the result record."""
    import keras

    backend = keras.backend.backend()
    if backend == "torch":
        import torch

        torch.set_num_threads(args.threads)
    run_start = time.perf_counter(), common.loadavg()
    keras.utils.set_random_seed(args.seed)

    t0 = time.perf_counter()
    data = ncf_data.load_dataset(args.dataset, args.data_dir)
    load_s = time.perf_counter() - t0

    model = build_keras_model(
        args.model,
        data.n_users,
        data.n_items,
        args.factors,
        args.layers,
        args.init_std,
        args.final_init,
        args.seed,
    )
    if args.optimizer == "adam":
        opt = keras.optimizers.Adam(
            learning_rate=args.lr, epsilon=1e-8, weight_decay=args.weight_decay or None
        )
    elif args.optimizer == "adagrad":
        opt = keras.optimizers.Adagrad(learning_rate=args.lr)
    else:
        opt = keras.optimizers.SGD(learning_rate=args.lr)
    model.compile(optimizer=opt, loss="binary_crossentropy")

    def score(users: np.ndarray, items: np.ndarray) -> np.ndarray:
        p = model.predict(
            [users[:, None].astype(np.int32), items[:, None].astype(np.int32)],
            batch_size=1 << 16,
            verbose=0,
        )
        return np.asarray(p).reshape(-1)

    def prepare(users: np.ndarray, items: np.ndarray, labels: np.ndarray) -> Any:
        return [users[:, None].astype(np.int32), items[:, None].astype(np.int32)], labels

    def fit_epoch(batch: Any) -> float:
        x, labels = batch  # rows are already shuffled by make_epoch
        hist = model.fit(x, labels, batch_size=args.batch_size, epochs=1, shuffle=False, verbose=0)
        return float(hist.history["loss"][0])

    return common.run_protocol(
        f"keras3-{backend}", f"keras/{backend}", args, run_start, data, load_s, score, prepare,
        fit_epoch, loss="keras binary_crossentropy on sigmoid output",
        optimizer_detail=f"keras.optimizers.{type(opt).__name__}, epsilon 1e-8 (Adam)")


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the process exit code."""
    args = parse_args(argv)
    return common.save_result(run(args), args, "keras", ncf_data.DATASETS)


if __name__ == "__main__":
    sys.exit(main())
