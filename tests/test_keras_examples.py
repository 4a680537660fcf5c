"""The document's two Keras examples, run with only the imports changed."""
import numpy as np
import pytest

from neurec.layers import Concatenate, Dense, Dot, Embedding, Flatten, Input
from neurec.models import Model


def planted(n_users, n_items, n, seed=0, dim=3):
    rng = np.random.default_rng(seed)
    U = rng.normal(size=(n_users, dim))
    V = rng.normal(size=(n_items, dim))
    users = rng.integers(0, n_users, n)
    items = rng.integers(0, n_items, n)
    labels = ((U[users] * V[items]).sum(1) > 0).astype(np.float32)
    return users, items, labels


def test_ncf_example_runs_with_keras_shapes_and_learns():
    n_users, n_items = 60, 50
    users, items, labels = planted(n_users, n_items, 6000)
    u = Input(shape=(1,))
    i = Input(shape=(1,))
    eu = Flatten()(Embedding(input_dim=n_users, output_dim=8)(u))
    ei = Flatten()(Embedding(input_dim=n_items, output_dim=8)(i))
    dot = Dot(axes=1)([eu, ei])
    assert dot.shape == (None, 1)
    cat = Concatenate(axis=1)([dot, u, i])
    assert cat.shape == (None, 3)
    out = Dense(1, activation="sigmoid")(cat)
    model = Model(inputs=[u, i], outputs=out)
    assert model.output_shape == (None, 1)
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    history = model.fit([users, items], labels, epochs=10, batch_size=128, verbose=0)
    loss = history.history["loss"]
    assert len(loss) == 10 and loss[-1] < loss[0]
    assert set(history.history) == {"loss", "accuracy"}
    scores = model.predict([users[:7], items[:7]])
    assert scores.shape == (7, 1) and scores.dtype == np.float32
    res = model.evaluate([users, items], labels, verbose=0)
    assert isinstance(res, list) and len(res) == 2 and 0 <= res[1] <= 1


def test_ncf_example_with_pandas_inputs():
    pd = pytest.importorskip("pandas")
    users, items, labels = planted(30, 20, 2000)
    df = pd.DataFrame({"user": users, "item": items, "label": labels})
    u, i = Input(shape=(1,)), Input(shape=(1,))
    eu = Flatten()(Embedding(30, 8)(u))
    ei = Flatten()(Embedding(20, 8)(i))
    out = Dense(1, activation="sigmoid")(Concatenate(axis=1)([Dot(axes=1)([eu, ei]), u, i]))
    model = Model([u, i], out)
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    h = model.fit([df["user"], df[["item"]]], df["label"], epochs=2, batch_size=64, verbose=0)
    assert len(h.history["loss"]) == 2
    by_name = {u.node.layer.name: df["user"].to_numpy(), i.node.layer.name: df["item"].to_numpy()}
    p1 = model.predict(by_name)
    p2 = model.predict([df["user"], df["item"]])
    np.testing.assert_array_equal(p1, p2)


def test_nmf_example_output_shape_and_learning():
    n_users, n_items, k, dim = 40, 30, 4, 6
    rng = np.random.default_rng(1)
    users = rng.integers(0, n_users, (3000, k))
    items = rng.integers(0, n_items, (3000, k))
    # planted: the label is 1 when most of the user ids fall in the first half
    labels = ((users < n_users // 2).mean(1) > 0.5).astype(np.float32).reshape(-1, 1)
    u = Input(shape=(k,))
    i = Input(shape=(k,))
    eu = Embedding(n_users, dim)(u)
    ei = Embedding(n_items, dim)(i)
    assert eu.shape == (None, k, dim)
    d = Dot(axes=1)([eu, ei])
    assert d.shape == (None, dim, dim)
    out = Dense(1, activation="sigmoid")(d)
    model = Model(inputs=[u, i], outputs=out)
    assert model.output_shape == (None, dim, 1)
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    h = model.fit([users, items], labels, epochs=8, batch_size=64, verbose=0)
    assert h.history["loss"][-1] < h.history["loss"][0] - 0.05
    pred = model.predict([users[:5], items[:5]])
    assert pred.shape == (5, dim, 1)


def test_float_ids_are_accepted_when_integral():
    users, items, labels = planted(20, 10, 500)
    u, i = Input(shape=(1,)), Input(shape=(1,))
    out = Dense(1, activation="sigmoid")(Dot(axes=1)([Flatten()(Embedding(20, 4)(u)),
                                                       Flatten()(Embedding(10, 4)(i))]))
    model = Model([u, i], out)
    a = model.predict([users.astype(np.float64), items.astype(np.float32)])
    b = model.predict([users, items.astype(np.int32)])
    np.testing.assert_array_equal(a, b)
