"""Small graphs covering every layer, used by several tests."""
import numpy as np

from neurec.layers import (Activation, Add, Average, Concatenate, Dense, Dot, Dropout, Embedding,
                           Flatten, Input, Multiply, Reshape, Subtract)
from neurec.models import Model

NU, NI = 13, 11


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
    dot2 = Dot(axes=2)([h, Reshape((6, 3))(Dense(3)(Flatten()(c)) if False else h)])  # (None, 6, 6)
    f = Flatten()(dot2)
    cos = Dot(axes=1, normalize=True)([Flatten()(eu), Flatten()(ei)])
    out = Dense(1, activation="sigmoid")(Concatenate()([f, cos, Dropout(0.0)(Flatten()(d))]))
    return Model([u, i], out)


def regression():
    x = Input(shape=(3,))
    e = Input(shape=(1,), dtype="int32")
    emb = Flatten()(Embedding(NI, 3)(e))
    h = Dense(5, activation="relu")(Concatenate()([x, emb]))
    out = Dense(2)(h)
    return Model([x, e], out)


ALL = {"ncf": ncf_example, "nmf": nmf_example, "neumf": neumf, "merges": merges}


def data_for(model, n, seed=0):
    rng = np.random.default_rng(seed)
    xs = []
    for t in model.inputs:
        users = [n for l in model.layers if getattr(l, "input_dim", None)]
        # each input either feeds an Embedding (ids) or is a float feature
        dims = [l.input_dim for node in model._nodes_in_order for l in [node.layer]
                if node.inputs and node.inputs[0] is t and hasattr(l, "input_dim")]
        if dims:
            xs.append(rng.integers(0, min(dims), size=(n,) + t.shape[1:]).astype(np.int64))
        else:
            xs.append(rng.normal(size=(n,) + t.shape[1:]).astype(np.float32))
    return xs
