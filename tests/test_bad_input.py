"""Bad input gets a clear Python exception naming the argument and the fix."""
import importlib

import numpy as np
import pytest

from neurec.layers import Concatenate, Dense, Dot, Embedding, Flatten, Input, Multiply
from neurec.models import Model


def model_2in(nu=10, ni=8, compile=True):
    u, i = Input(shape=(1,), name="user"), Input(shape=(1,), name="item")
    out = Dense(1, activation="sigmoid")(Multiply()([Flatten()(Embedding(nu, 4, name="user_emb")(u)),
                                                      Flatten()(Embedding(ni, 4, name="item_emb")(i))]))
    m = Model([u, i], out)
    if compile:
        m.compile(optimizer="adam", loss="binary_crossentropy")
    return m


U = np.arange(6) % 10
I = np.arange(6) % 8
Y = np.ones(6, np.float32)


def test_out_of_range_and_negative_ids_name_layer_and_input_dim():
    m = model_2in()
    with pytest.raises(ValueError, match=r"Embedding 'user_emb'.*input_dim=10"):
        m.fit([np.array([0, 10]), np.array([0, 1])], np.ones(2), verbose=0)
    with pytest.raises(ValueError, match=r"Embedding 'item_emb'.*-1"):
        m.predict([np.array([0, 1]), np.array([0, -1])])


def test_non_integral_float_ids():
    m = model_2in()
    with pytest.raises(ValueError, match="non-integral id 1.5"):
        m.predict([np.array([0.0, 1.5]), np.array([0.0, 1.0])])


def test_nan_labels_and_nan_features():
    m = model_2in()
    y = Y.copy()
    y[3] = np.nan
    with pytest.raises(ValueError, match=r"y contains NaN or inf \(first at sample 3\)"):
        m.fit([U, I], y, verbose=0)
    x = Input(shape=(2,))
    mm = Model(x, Dense(1)(x))
    mm.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match="contains NaN or inf"):
        mm.fit(np.array([[1.0, np.inf]]), np.ones(1), verbose=0)


def test_mismatched_lengths_and_wrong_number_of_inputs():
    m = model_2in()
    with pytest.raises(ValueError, match="different lengths"):
        m.fit([U, I[:5]], Y, verbose=0)
    with pytest.raises(ValueError, match="x and y have different lengths: 6 samples in x, 5 labels"):
        m.fit([U, I], Y[:5], verbose=0)
    with pytest.raises(ValueError, match="expects 2 input arrays"):
        m.fit([U, I, I], Y, verbose=0)
    with pytest.raises(ValueError, match="dict without keys"):
        m.predict({"user": U})


def test_empty_arrays():
    m = model_2in()
    with pytest.raises(ValueError, match="is empty"):
        m.fit([U[:0], I[:0]], Y[:0], verbose=0)


def test_wrong_dtypes():
    m = model_2in()
    with pytest.raises(TypeError, match="IdEncoder"):
        m.predict([np.array(["a", "b"]), np.array([0, 1])])
    with pytest.raises(TypeError, match="y must be numeric"):
        m.fit([U, I], np.array(["x"] * 6), verbose=0)


def test_non_contiguous_and_odd_dtypes_are_converted_not_rejected():
    m = model_2in()
    big = np.arange(12) % 10
    a = m.predict([big[::2], (np.arange(6) % 8).astype(np.int16)])
    b = m.predict([np.ascontiguousarray(big[::2]), np.arange(6) % 8])
    np.testing.assert_array_equal(a, b)


def test_shape_mismatch_at_build_time_names_both_shapes():
    a, b = Input(shape=(4,)), Input(shape=(5,))
    with pytest.raises(ValueError, match=r"\(None, 4\).*\(None, 5\)"):
        Dot(axes=1)([a, b])
    c = Input(shape=(2, 3))
    with pytest.raises(ValueError, match=r"\(None, 4\) and \(None, 2, 3\)"):
        Multiply()([a, c])
    with pytest.raises(ValueError, match="must match except on axis"):
        Concatenate(axis=1)([Input(shape=(2, 3)), Input(shape=(2, 4))])


def test_input_shape_mismatch_in_fit():
    m = model_2in()
    with pytest.raises(ValueError, match=r"input 'user' expects samples of shape \(1,\), got an array "
                                         r"of shape \(6, 2\)"):
        m.predict([np.zeros((6, 2), int), I])


@pytest.mark.parametrize("module,alias,cls", [
    ("optimizers", "adam", "Adam"), ("losses", "mse", "MeanSquaredError"),
    ("initializers", "glorot_uniform", "GlorotUniform")])
def test_one_resolution_rule_for_optimizers_losses_and_initializers(module, alias, cls):
    mod = importlib.import_module(f"neurec.{module}")
    base = type(mod.get(alias))
    assert base.__name__ == cls
    assert type(mod.get(cls)) is base  # a class name works as in Keras
    obj = mod.get(alias)
    assert mod.get(obj) is obj
    assert type(mod.get({"class_name": cls, "config": {}})) is base
    with pytest.raises(ValueError, match=f"Unknown {module[:-1] if module != 'losses' else 'loss'}"
                       r" class 'Nope'; expected one of \["):
        mod.get({"class_name": "Nope", "config": {}})
    with pytest.raises(ValueError, match="Unknown .*'nope9'; expected one of"):
        mod.get("nope9")


def test_unknown_strings_and_fit_before_compile():
    m = model_2in(compile=False)
    with pytest.raises(RuntimeError, match="compile the model before training"):
        m.fit([U, I], Y, verbose=0)
    with pytest.raises(ValueError, match="Unknown optimizer 'adamz'"):
        m.compile(optimizer="adamz", loss="mse")
    with pytest.raises(ValueError, match="Unknown loss 'hinge2'"):
        m.compile(optimizer="adam", loss="hinge2")
    with pytest.raises(ValueError, match="Unknown metric 'f7'"):
        m.compile(optimizer="adam", loss="mse", metrics=["f7"])
    with pytest.raises(ValueError, match="Unknown activation 'gelu9'"):
        Dense(3, activation="gelu9")
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        m.predict([U, I], batch_size=0)


def test_graph_errors():
    a, b = Input(shape=(1,)), Input(shape=(1,))
    out = Dense(1)(Concatenate()([a, b]))
    with pytest.raises(ValueError, match="Graph disconnected"):
        Model(a, out)
    with pytest.raises(ValueError, match="Embedding.*must be applied directly to a model Input"):
        x = Input(shape=(2,))
        m = Model(x, Embedding(5, 2)(Dense(2)(x)))
        m.predict(np.zeros((1, 2)))
    with pytest.raises(ValueError, match="input_dim must be a positive integer"):
        Embedding(0, 3)


def test_failed_fit_does_not_change_weights():
    m = model_2in()
    before = m.get_weights()
    with pytest.raises(ValueError):
        m.fit([np.array([0, 99]), np.array([0, 1])], np.ones(2), verbose=0)
    for a, b in zip(before, m.get_weights()):
        np.testing.assert_array_equal(a, b)
