"""Small graphs covering every layer, used by several tests."""
import numpy as np

from neurec.layers import (
    Activation,
    Add,
    Average,
    Concatenate,
    Dense,
    Dot,
    Dropout,
    Embedding,
    Flatten,
    Input,
    Multiply,
    Reshape,
    Subtract,
)
from neurec.models import Model

NU, NI = 13, 11


def interactions(n=2000, nu=30, ni=20, seed=0):
    """n (user, item, label) rows over nu users and ni items; label 1 where (u + i) % 3 == 0."""
    rng = np.random.default_rng(seed)
    u = rng.integers(0, nu, n)
    i = rng.integers(0, ni, n)
    y = ((u + i) % 3 == 0).astype(np.float32)
    return u, i, y


def ncf_example(act="sigmoid"):
    u, i = Input(shape=(1,)), Input(shape=(1,))
    eu = Flatten()(Embedding(NU, 8)(u))
    ei = Flatten()(Embedding(NI, 8)(i))
    out = Dense(1, activation=act)(Concatenate(axis=1)([Dot(axes=1)([eu, ei]), u, i]))
    return Model([u, i], out)


def nmf_example(k=3, dim=4):
    u, i = Input(shape=(k,)), Input(shape=(k,))
    eu = Embedding(NU, dim)(u)
    ei = Embedding(NI, dim)(i)
    out = Dense(1, activation="sigmoid")(Dot(axes=1)([eu, ei]))
    return Model([u, i], out)


def neumf(act_tower="relu"):
    u, i = Input(shape=(1,)), Input(shape=(1,))
    gu = Flatten()(Embedding(NU, 4)(u))
    gi = Flatten()(Embedding(NI, 4)(i))
    mu = Flatten()(Embedding(NU, 6)(u))
    mi = Flatten()(Embedding(NI, 6)(i))
    h = Concatenate()([mu, mi])
    h = Dense(8, activation=act_tower)(h)
    h = Dense(4, activation="tanh")(h)
    out = Dense(1, activation="sigmoid")(Concatenate()([Multiply()([gu, gi]), h]))
    return Model([u, i], out)


def merges():
    u, i = Input(shape=(2,)), Input(shape=(2,))
    eu = Embedding(NU, 5)(u)        # (None, 2, 5)
    ei = Embedding(NI, 5)(i)
    s = Add()([eu, ei])
    d = Subtract()([eu, ei])
    a = Average()([eu, ei, s])
    c = Concatenate(axis=1)([s, d, a])                   # (None, 6, 5)
    h = Dense(3, activation="tanh")(c)                   # dense on 3-D
    h = Activation("softmax")(h)
    r = Reshape((6, 3))(Dropout(0.25)(Dense(18)(Flatten()(c))))  # (None, 6, 3)
    dot2 = Dot(axes=2)([h, r])                                  # (None, 6, 6)
    f = Flatten()(dot2)
    cos = Dot(axes=1, normalize=True)([Flatten()(eu), Flatten()(ei)])
    out = Dense(1, activation="sigmoid")(Concatenate()([f, cos, Dropout(0.5)(Flatten()(d))]))
    return Model([u, i], out)


def dropout_tower():
    """NeuMF-like tower with Dropout between Dense layers and before the output."""
    u, i = Input(shape=(1,)), Input(shape=(1,))
    h = Concatenate()([Flatten()(Embedding(NU, 6)(u)), Flatten()(Embedding(NI, 6)(i))])
    h = Dropout(0.2)(Dense(16, activation="relu")(h))
    h = Dropout(0.5)(Dense(8, activation="tanh")(h))
    return Model([u, i], Dense(1, activation="sigmoid")(h))


def dropout_masks(model, n, seed, step=1, samples=None):
    """The C core's Dropout masks for a training step (see ``neurec._reference.dropout_mask``).

    Args:
        model: A compiled model (its plan is built here if needed).
        n: Batch size.
        seed: The seed given to ``fit`` (epoch 0's seed is derived from it as in ``fit``).
        step: The batch's optimizer step (1 for a fresh optimizer's first batch).
        samples: Row indices of the batch (default ``arange(n)``: ``shuffle=False``).

    Returns:
        ``{layer name: mask}`` for every Dropout layer with ``rate > 0``.
    """
    from neurec import _reference as ref
    from neurec.layers.core import OP_DROPOUT
    model._get_plan()
    b = model._builder
    epoch_seed = (seed * 1000003) % 2**64
    samples = np.arange(n) if samples is None else samples
    masks = {}
    for node in model._nodes_in_order:
        layer = node.layer
        if isinstance(layer, Dropout) and layer.rate > 0:
            v = b.tensor_value[id(node.outputs[0])]
            oi = [k for k, op in enumerate(b.ops) if op.kind == OP_DROPOUT and op.out == v]
            assert len(oi) == 1
            width = b.value_sizes[v]
            masks[layer.name] = ref.dropout_mask(layer.rate, epoch_seed, step, oi[0], samples,
                                                 width).reshape((n,) + node.outputs[0].shape[1:])
    return masks


def regression():
    x = Input(shape=(3,))
    e = Input(shape=(1,), dtype="int32")
    emb = Flatten()(Embedding(NI, 3)(e))
    h = Dense(5, activation="relu")(Concatenate()([x, emb]))
    out = Dense(2)(h)
    return Model([x, e], out)


ALL = {"ncf": ncf_example, "nmf": nmf_example, "neumf": neumf, "merges": merges,
       "dropout_tower": dropout_tower}


def data_for(model, n, seed=0):
    rng = np.random.default_rng(seed)
    xs = []
    for t in model.inputs:
        # each input either feeds an Embedding (ids) or is a float feature
        dims = [l.input_dim for node in model._nodes_in_order for l in [node.layer]
                if node.inputs and node.inputs[0] is t and hasattr(l, "input_dim")]
        if dims:
            xs.append(rng.integers(0, min(dims), size=(n,) + t.shape[1:]).astype(np.int64))
        else:
            xs.append(rng.normal(size=(n,) + t.shape[1:]).astype(np.float32))
    return xs
