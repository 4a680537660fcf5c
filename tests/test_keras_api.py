"""Small Keras APIs: train_on_batch / test_on_batch, to_json / model_from_json, Keras
arguments neurec cannot honour (each works, warns once or raises), DataFrame inputs.

Expected semantics come from Keras 3 (``keras/src/trainers/trainer.py`` and the
TensorFlow backend's ``train_on_batch``): one optimizer step on the whole batch, the loss
and metrics of the batch before the step (the loss including regularization), the result
a scalar, ``[loss, *metrics]`` or a dict; a weighted loss is ``sum(w * loss) / n``.
"""
import json
import tracemalloc
import warnings

import numpy as np
import pytest

from graphs import interactions
from neurec import callbacks, optimizers
from neurec.data import InteractionMatrix, NegativeSampler
from neurec.layers import Concatenate, Dense, Embedding, Flatten, Input
from neurec.models import MF, Model, Sequential, _keras_api, load_model, model_from_json
from neurec.regularizers import L2


@pytest.fixture(autouse=True)
def _fresh_warnings():
    """Every test sees the first (warned) use of an ignored argument."""
    _keras_api._WARNED.clear()
    yield
    _keras_api._WARNED.clear()


def named_model(reg=1e-3):
    u, i = Input(shape=(1,), name="user"), Input(shape=(1,), name="item")
    eu = Flatten()(Embedding(30, 4, embeddings_regularizer=L2(reg) if reg else None)(u))
    ei = Flatten()(Embedding(20, 4)(i))
    h = Dense(8, activation="relu", kernel_regularizer=L2(reg) if reg else None)(
        Concatenate()([eu, ei]))
    return Model([u, i], Dense(1, activation="sigmoid")(h))


def compiled(optimizer="adam", metrics=("accuracy", "auc"), **kwargs):
    m = named_model(**kwargs)
    m.compile(optimizer=optimizer, loss="binary_crossentropy", metrics=list(metrics))
    return m


def data(n=500, seed=0):
    u, i, y = interactions(n, 30, 20, seed=seed)
    return [u, i], y


def no_warnings():
    """A context in which any warning fails the test."""
    ctx = warnings.catch_warnings()
    ctx.__enter__()
    warnings.simplefilter("error")
    return ctx


# -- DataFrame inputs -------------------------------------------------------------------
def test_dataframe_with_other_column_names_is_an_error_not_a_positional_guess():
    """Regression: a frame with as many columns as inputs was taken column by column in
    order, whatever the names (``item, uid`` fed the user input with item ids)."""
    pd = pytest.importorskip("pandas")
    m = compiled()
    (u, i), y = data(50)
    swapped = pd.DataFrame({"item": i, "uid": u})
    with pytest.raises(ValueError) as e:
        m.predict(swapped)
    msg = str(e.value)
    assert "['user']" in msg and "['item', 'uid']" in msg  # missing inputs, columns present
    assert "rename" in msg and "dict" in msg
    with pytest.raises(ValueError, match="rename"):
        m.fit(swapped, y, verbose=0)
    # columns named after the inputs work, in any order and with extra columns
    good = pd.DataFrame({"label": y, "item": i, "user": u})
    np.testing.assert_array_equal(m.predict(good), m.predict([u, i]))
    np.testing.assert_array_equal(m.predict(swapped.rename(columns={"uid": "user"})),
                                  m.predict({"user": u, "item": i}))


# -- train_on_batch / test_on_batch ------------------------------------------------------
@pytest.mark.parametrize("optimizer", ["adam", "sgd", "adagrad", "rmsprop"])
def test_train_on_batch_over_the_batches_equals_fit_bit_for_bit(optimizer, one_thread):
    (u, i), y = data(500)
    B = 64  # 8 batches, the last one of 52
    ref = compiled(optimizer)
    m = compiled(optimizer)
    m.set_weights(ref.get_weights())
    ref.fit([u, i], y, batch_size=B, epochs=1, shuffle=False, verbose=0)
    for start in range(0, len(y), B):
        m.train_on_batch([u[start:start + B], i[start:start + B]], y[start:start + B])
    assert m.optimizer.iterations == ref.optimizer.iterations == 8
    for a, b in zip(m.get_weights(), ref.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_train_on_batch_returns_the_batch_loss_before_the_step_as_keras():
    (u, i), y = data(200)
    m = compiled()
    before = m.test_on_batch([u, i], y, return_dict=True)  # no Dropout: the same forward pass
    w0 = m.get_weights()
    logs = m.train_on_batch([u, i], y, return_dict=True)
    assert list(logs) == ["loss", "accuracy", "auc"] and m.optimizer.iterations == 1
    assert all(isinstance(v, float) for v in logs.values())
    # the loss includes the L2 penalty of the weights the loss was computed with
    assert logs["loss"] == pytest.approx(before["loss"], rel=1e-5)
    assert m._regularization_penalty() > 1e-4
    assert logs["accuracy"] == pytest.approx(before["accuracy"], abs=1e-9)
    assert logs["auc"] == pytest.approx(before["auc"], abs=1e-3)
    assert any(not np.array_equal(a, b) for a, b in zip(w0, m.get_weights()))
    as_list = m.train_on_batch([u, i], y)
    assert isinstance(as_list, list) and len(as_list) == 3 and m.optimizer.iterations == 2
    bare = compiled(metrics=())
    loss = bare.train_on_batch([u, i], y)
    assert isinstance(loss, float)
    assert bare.train_on_batch([u, i], y, return_dict=True).keys() == {"loss"}


def test_test_on_batch_equals_evaluate_and_trains_nothing():
    (u, i), y = data(300)
    m = compiled()
    m.fit([u, i], y, epochs=1, verbose=0)
    w0 = m.get_weights()
    steps = m.optimizer.iterations
    assert m.test_on_batch([u, i], y) == m.evaluate([u, i], y, verbose=0)
    assert m.test_on_batch([u, i], y, return_dict=True) == m.evaluate([u, i], y, verbose=0,
                                                                      return_dict=True)
    assert m.optimizer.iterations == steps
    for a, b in zip(w0, m.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_test_on_batch_sample_weight_weighs_the_loss_only():
    (u, i), y = data(300)
    m = compiled()
    w = np.random.default_rng(0).uniform(0, 3, len(y))
    pred = m.predict([u, i]).astype(np.float64)[:, 0]
    p = np.clip(pred, 1e-7, 1 - 1e-7)
    per_sample = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    want = np.sum(w * per_sample) / len(y) + m._regularization_penalty()  # Keras: / n
    got = m.test_on_batch([u, i], y, sample_weight=w, return_dict=True)
    plain = m.test_on_batch([u, i], y, return_dict=True)
    assert got["loss"] == pytest.approx(want, rel=1e-5)
    assert got["loss"] != pytest.approx(plain["loss"], rel=1e-3)
    assert got["accuracy"] == plain["accuracy"] and got["auc"] == plain["auc"]  # unweighted
    ones = m.test_on_batch([u, i], y, sample_weight=np.ones(len(y)), return_dict=True)
    assert ones["loss"] == pytest.approx(plain["loss"], rel=1e-6)


def test_train_on_batch_sample_weight_is_a_weighted_step():
    """With sum(w * loss) / n, zero weights drop samples and the step shrinks by n_kept / n:
    SGD on a 0/1-weighted batch = SGD with lr * n_kept / n on the kept samples; and
    class_weight is sample_weight by class."""
    (u, i), y = data(200)
    keep = np.arange(len(y)) % 3 != 0
    full, part = compiled("sgd", reg=0), compiled("sgd", reg=0)
    part.set_weights(full.get_weights())
    part.optimizer.learning_rate = full.optimizer.learning_rate * keep.sum() / len(y)
    full.train_on_batch([u, i], y, sample_weight=keep.astype(np.float32))
    part.train_on_batch([u[keep], i[keep]], y[keep])
    for a, b in zip(full.get_weights(), part.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    by_class, by_sample = compiled("sgd", reg=0), compiled("sgd", reg=0)
    by_sample.set_weights(by_class.get_weights())
    by_class.train_on_batch([u, i], y, class_weight={0: 0.5, 1: 2.0})
    by_sample.train_on_batch([u, i], y, sample_weight=np.where(y == 1, 2.0, 0.5))
    for a, b in zip(by_class.get_weights(), by_sample.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_class_weight_to_sample_weight_follows_keras():
    from neurec.models import _weights
    labels = np.array([[0.0], [1.0], [1.0], [0.4], [0.6]], np.float32)
    w = _weights.class_weights_of("t", {0: 0.5, 1: 3}, labels)
    np.testing.assert_array_equal(w, [0.5, 3, 3, 0.5, 3])  # round(y) is the class
    onehot = np.eye(3, dtype=np.float32)[[2, 0, 1]]
    np.testing.assert_array_equal(_weights.class_weights_of("t", {2: 4.0}, onehot), [4, 1, 1])
    with pytest.raises(TypeError, match="integer labels"):
        _weights.array_weights("t", None, {"a": 1.0}, labels)

def test_train_on_batch_bad_input_raises_before_any_step():
    (u, i), y = data(100)
    m = compiled()
    w0 = m.get_weights()
    with pytest.raises(RuntimeError, match="compile"):
        named_model().train_on_batch([u, i], y)
    with pytest.raises(RuntimeError, match="compile"):
        named_model().test_on_batch([u, i], y)
    with pytest.raises(ValueError, match="not both"):
        m.train_on_batch([u, i], y, sample_weight=np.ones(100), class_weight={1: 2.0})
    with pytest.raises(ValueError, match="99 weights but there are 100 samples"):
        m.train_on_batch([u, i], y, sample_weight=np.ones(99))
    with pytest.raises(ValueError, match=">= 0"):
        m.test_on_batch([u, i], y, sample_weight=-np.ones(100))
    with pytest.raises(ValueError, match="finite"):
        m.test_on_batch([u, i], y, sample_weight=np.full(100, np.nan))
    with pytest.raises(ValueError, match="different lengths"):
        m.train_on_batch([u, i], y[:50])
    with pytest.raises(ValueError, match="y is required"):
        m.train_on_batch([u, i])
    matrix = InteractionMatrix.from_arrays(u, i, shape=(30, 20))
    with pytest.raises(TypeError, match="fit"):
        m.train_on_batch(NegativeSampler(matrix, seed=1))
    assert m.optimizer.iterations == 0
    for a, b in zip(w0, m.get_weights()):
        np.testing.assert_array_equal(a, b)
    als = MF(30, 20, 4)
    als.compile(optimizer=optimizers.ALS())
    with pytest.raises(ValueError, match="ALS"):
        als.train_on_batch([u, i], y)


# -- to_json / model_from_json -----------------------------------------------------------
def test_to_json_round_trip_gives_the_same_predictions():
    (u, i), y = data(100)
    m = compiled()
    m.fit([u, i], y, epochs=1, verbose=0)
    text = m.to_json()
    assert isinstance(text, str) and json.loads(text) == m.get_config()
    assert m.to_json(indent=2) != text and json.loads(m.to_json(indent=2)) == json.loads(text)
    twin = model_from_json(text)
    assert type(twin) is Model and [l.name for l in twin.layers] == [l.name for l in m.layers]
    assert not twin._compiled
    assert not np.array_equal(twin.predict([u, i]), m.predict([u, i]))  # fresh weights
    twin.set_weights(m.get_weights())
    np.testing.assert_array_equal(twin.predict([u, i]), m.predict([u, i]))
    assert model_from_json(text.encode("utf-8")).count_params() == m.count_params()
    seq = Sequential([Input(shape=(3,)), Dense(4), Dense(1)])
    again = model_from_json(seq.to_json())
    assert type(again) is Sequential and again.count_params() == seq.count_params()


@pytest.mark.parametrize("bad, match", [
    ("{not json", "not valid JSON"),
    ("", "not valid JSON"),
    ("[1, 2]", "not a neurec model config"),
    ('{"layers": 3}', "not a neurec model config"),
    ("[" * 100_000 + "]" * 100_000, "JSON|nested"),
    ('{"layers": [{"class_name": "Evil", "config": {}}], "nodes": []}', "unknown layer"),
    ('{"layers": [{"class_name": "Dense", "config": {"units": "x"}}], "nodes": []}',
     "units must be a positive integer"),
    ('{"layers": [], "nodes": []}', "invalid model config"),
])
def test_model_from_json_rejects_bad_json_with_value_error(bad, match):
    with pytest.raises(ValueError, match=match) as e:
        model_from_json(bad)
    if "JSON" in match:
        assert "json_string" in str(e.value)


def test_model_from_json_refuses_a_huge_model_before_allocating():
    cfg = json.loads(MF(10, 10, 4).to_json())
    for layer in cfg["layers"]:
        if layer["class_name"] == "Embedding":
            layer["config"]["input_dim"] = 10**12  # 4 TB of float32
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="max_params"):
            model_from_json(json.dumps(cfg))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2**20
    small = MF(1000, 10, 4)
    with pytest.raises(ValueError, match="max_params"):
        model_from_json(small.to_json(), max_params=1000)
    assert model_from_json(small.to_json(), max_params=small.count_params()).count_params() \
        == small.count_params()
    with pytest.raises(TypeError, match="str"):
        model_from_json({"layers": []})


# -- Keras arguments neurec cannot honour: work, warn once, or raise ---------------------
def test_compile_arguments_warn_once_or_raise():
    m = named_model()
    ctx = no_warnings()
    m.compile("adam", "binary_crossentropy", run_eagerly=False, jit_compile="auto",
              steps_per_execution=1, auto_scale_loss=False)  # defaults: silent
    ctx.__exit__(None, None, None)
    for kwargs, name in [({"run_eagerly": True}, "run_eagerly"),
                         ({"jit_compile": True}, "jit_compile"),
                         ({"steps_per_execution": 8}, "steps_per_execution")]:
        with pytest.warns(UserWarning, match=f"compile: {name}.*no effect"):
            m.compile("adam", "binary_crossentropy", **kwargs)
        ctx = no_warnings()  # once per process
        m.compile("adam", "binary_crossentropy", **kwargs)
        ctx.__exit__(None, None, None)
    with pytest.raises(ValueError, match="steps_per_execution"):
        m.compile("adam", "binary_crossentropy", steps_per_execution=0)
    with pytest.raises(ValueError, match="loss_weights"):
        m.compile("adam", "binary_crossentropy", loss_weights=[1.0])
    with pytest.raises(ValueError, match="weighted_metrics"):
        m.compile("adam", "binary_crossentropy", weighted_metrics=["accuracy"])


def test_fit_evaluate_call_and_summary_arguments(capsys):
    (u, i), y = data(100)
    m = compiled()
    with pytest.warns(UserWarning, match="validation_batch_size"):
        m.fit([u, i], y, verbose=0, validation_data=([u, i], y), validation_batch_size=16)
    with pytest.raises(ValueError, match="validation_steps"):
        m.fit([u, i], y, verbose=0, validation_steps=2)
    with pytest.raises(ValueError, match="steps"):
        m.evaluate([u, i], y, steps=1, verbose=0)
    with pytest.warns(UserWarning, match="training=True"):
        m([u, i], training=True)
    with pytest.warns(UserWarning, match="show_trainable"):
        m.summary(show_trainable=True)
    with pytest.warns(UserWarning, match="positions"):
        m.summary(positions=[0.3, 0.6, 0.8, 1.0])
    ctx = no_warnings()
    m.summary(expand_nested=True)  # nothing nests in neurec: nothing to expand
    ctx.__exit__(None, None, None)
    capsys.readouterr()
    with pytest.raises(ValueError, match="trainable"):
        Model(*(lambda t: (t, Dense(1)(t)))(Input(shape=(2,))), trainable=False)
    with pytest.raises(TypeError, match="unexpected"):
        Model(*(lambda t: (t, Dense(1)(t)))(Input(shape=(2,))), jit=True)


def test_evaluate_calls_the_test_hooks_of_its_callbacks():
    (u, i), y = data(100)
    m = compiled()
    seen = []
    cb = callbacks.LambdaCallback(
        on_test_begin=lambda logs: seen.append(("begin", dict(logs))),
        on_test_batch_end=lambda batch, logs: seen.append(("batch", batch, dict(logs))),
        on_test_end=lambda logs: seen.append(("end", dict(logs))))
    res = m.evaluate([u, i], y, verbose=0, callbacks=[cb], return_dict=True)
    assert seen == [("begin", {}), ("batch", 0, res), ("end", res)]
    assert m.evaluate([u, i], y, verbose=0, return_dict=True) == res


def test_als_fit_refuses_weights_and_warns_on_batch_size():
    rng = np.random.default_rng(0)
    matrix = InteractionMatrix.from_arrays(rng.integers(0, 30, 200), rng.integers(0, 20, 200),
                                           shape=(30, 20))
    m = MF(30, 20, 4)
    m.compile(optimizer=optimizers.ALS())
    for kwargs in ({"sample_weight": np.ones(200)}, {"class_weight": {1: 2.0}},
                   {"steps_per_epoch": 3}):
        with pytest.raises(ValueError, match="ALS"):
            m.fit(matrix, verbose=0, **kwargs)
    with pytest.warns(UserWarning, match="batch_size with optimizer=ALS"):
        m.fit(matrix, verbose=0, batch_size=64)


def test_save_arguments_include_optimizer_save_format_zipped(tmp_path):
    (u, i), y = data(100)
    m = compiled()
    m.fit([u, i], y, epochs=1, verbose=0)
    full, light = tmp_path / "full.neurec", tmp_path / "light.keras"
    m.save(full)
    m.save(light, include_optimizer=False)
    a, b = load_model(full), load_model(light)
    assert a.optimizer.iterations == m.optimizer.iterations and b.optimizer.iterations == 0
    assert b.get_compile_config()["loss"] == a.get_compile_config()["loss"]
    np.testing.assert_array_equal(a.predict([u, i]), b.predict([u, i]))
    assert light.stat().st_size < full.stat().st_size
    with pytest.warns(UserWarning, match="save_format"):
        m.save(tmp_path / "f.keras", save_format="keras")
    with pytest.raises(ValueError, match="save_format"):
        m.save(tmp_path / "f.keras", save_format="h5")
    with pytest.raises(ValueError, match="zipped"):
        m.save(tmp_path / "f.keras", zipped=False)
    with pytest.raises(TypeError):
        m.save(tmp_path / "f.keras", signatures=None)


def test_load_model_safe_mode(tmp_path):
    m = compiled()
    m.save(tmp_path / "m.neurec")
    with pytest.warns(UserWarning, match="safe_mode=False has no effect"):
        load_model(tmp_path / "m.neurec", safe_mode=False)
    with pytest.raises(TypeError, match="safe_mode"):
        load_model(tmp_path / "m.neurec", safe_mode="no")
    ctx = no_warnings()
    load_model(tmp_path / "m.neurec", safe_mode=True)
    ctx.__exit__(None, None, None)


def wider_tower():
    """named_model with a wider hidden layer: two layers' shapes differ."""
    u, i = Input(shape=(1,), name="user"), Input(shape=(1,), name="item")
    eu = Flatten()(Embedding(30, 4)(u))
    ei = Flatten()(Embedding(20, 4)(i))
    h = Dense(16, activation="relu")(Concatenate()([eu, ei]))
    return Model([u, i], Dense(1, activation="sigmoid")(h))


def test_load_weights_skip_mismatch_skips_mismatched_layers_with_a_warning(tmp_path):
    src = named_model()
    path = tmp_path / "w.weights.npz"
    src.save_weights(path)
    dst = wider_tower()
    before = dst.get_weights()
    with pytest.raises(ValueError, match=r"skip_mismatch=True") as e:
        dst.load_weights(path)
    assert "dense" in str(e.value) and "(8,)" in str(e.value)
    for a, b in zip(before, dst.get_weights()):  # left unchanged
        np.testing.assert_array_equal(a, b)
    with pytest.warns(UserWarning, match="skipping layer") as rec:
        dst.load_weights(path, skip_mismatch=True)
    assert len(rec) == 2  # the two Dense layers
    for k, (a, b) in enumerate(zip(src.get_weights(), dst.get_weights())):
        if k < 2:  # the embeddings were loaded
            np.testing.assert_array_equal(a, b)
    for a, b in zip(before[2:], dst.get_weights()[2:]):  # the Dense layers were skipped
        np.testing.assert_array_equal(a, b)
    # a model file works the same way; a different number of arrays cannot be aligned
    src.save(tmp_path / "m.keras")
    with pytest.warns(UserWarning, match="skipping layer"):
        wider_tower().load_weights(tmp_path / "m.keras", skip_mismatch=True)
    fewer = Model(*(lambda t: (t, Dense(1)(t)))(Input(shape=(2,))))
    with pytest.raises(ValueError, match="layer order"):
        fewer.load_weights(path, skip_mismatch=True)
    with pytest.raises(TypeError, match="skip_mismatch"):
        dst.load_weights(path, skip_mismatch="yes")
