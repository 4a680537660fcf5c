"""Model API: fit/predict/evaluate options, summary, weights, Sequential, callbacks, seeds."""
import io

import numpy as np
import pytest

import neurec
from graphs import data_for, neumf
from graphs import interactions as data
from neurec import callbacks, optimizers
from neurec.layers import Dense, Dropout, Embedding, Flatten, Input, Multiply
from neurec.models import Model, Sequential


def gmf(nu=30, ni=20, seed=None):
    u, i = Input(shape=(1,), name="user"), Input(shape=(1,), name="item")
    g = Multiply()([Flatten()(Embedding(nu, 8)(u)), Flatten()(Embedding(ni, 8)(i))])
    return Model([u, i], Dense(1, activation="sigmoid")(g))


def test_fit_history_validation_and_evaluate():
    model = gmf()
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy", "auc", "mse"])
    u, i, y = data()
    h = model.fit([u, i], y, epochs=3, batch_size=64, validation_split=0.25, verbose=0)
    assert set(h.history) == {"loss", "accuracy", "auc", "mse", "val_loss", "val_accuracy",
                              "val_auc", "val_mse"}
    assert h.epoch == [0, 1, 2]
    d = model.evaluate([u, i], y, return_dict=True, verbose=0)
    assert set(d) == {"loss", "accuracy", "auc", "mse"}
    assert 0.0 <= d["auc"] <= 1.0
    h2 = model.fit([u, i], y, epochs=5, initial_epoch=3, validation_data=([u[:100], i[:100]], y[:100]),
                   verbose=0)
    assert h2.epoch == [3, 4]


def test_fit_metrics_match_evaluate_on_a_fixed_model():
    # with learning rate ~0 the weights stay put, so fit's running metrics equal evaluate's
    model = gmf()
    u, i, y = data(1000)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    model.fit([u, i], y, epochs=3, batch_size=32, verbose=0)  # spread the predictions
    model.compile(optimizer=optimizers.SGD(1e-12), loss="binary_crossentropy",
                  metrics=["accuracy", "mae", "auc"])
    h = model.fit([u, i], y, epochs=1, batch_size=100, verbose=0)
    d = model.evaluate([u, i], y, return_dict=True, verbose=0)
    assert h.history["loss"][0] == pytest.approx(d["loss"], rel=1e-4)
    assert h.history["accuracy"][0] == pytest.approx(d["accuracy"], abs=1e-6)
    assert h.history["mae"][0] == pytest.approx(d["mae"], rel=1e-4)
    assert h.history["auc"][0] == pytest.approx(d["auc"], abs=5e-3)


def test_seed_makes_single_thread_training_bit_identical(one_thread):
    u, i, y = data()
    runs = []
    for _ in range(2):
        neurec.utils.set_random_seed(7)
        model = neumf()
        model.compile(optimizer="adam", loss="binary_crossentropy")
        xs = data_for(model, 1000, seed=3)
        model.fit(xs, np.resize(y, 1000), epochs=2, batch_size=32, verbose=0, seed=11)
        runs.append(model.get_weights())
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)
    neurec.utils.set_random_seed(7)
    model = neumf()
    model.compile(optimizer="adam", loss="binary_crossentropy")
    model.fit(data_for(model, 1000, seed=3), np.resize(y, 1000), epochs=2, batch_size=32, verbose=0,
              seed=12)
    assert any(not np.array_equal(a, b) for a, b in zip(runs[0], model.get_weights()))


def test_two_threads_train_as_well_as_one():
    u, i, y = data(4000)
    losses = []
    for n in (1, 2):
        neurec.set_num_threads(n)
        neurec.utils.set_random_seed(3)
        model = gmf()
        model.compile(optimizer="adam", loss="binary_crossentropy")
        h = model.fit([u, i], y, epochs=3, batch_size=64, verbose=0, seed=1)
        losses.append(h.history["loss"][-1])
    neurec.set_num_threads(2)
    assert losses[1] == pytest.approx(losses[0], rel=1e-3)


def test_embedding_table_is_updated_in_place_and_inputs_untouched():
    model = gmf()
    model.compile(optimizer="adam", loss="binary_crossentropy")
    emb = model.get_layer(index=2)
    table = emb.embeddings
    before = table.copy()
    u, i, y = data(500)
    copies = (u.copy(), i.copy(), y.copy())
    model.fit([u, i], y, epochs=1, batch_size=50, verbose=0)
    assert emb.embeddings is table
    assert not np.array_equal(table, before)
    for a, b in zip((u, i, y), copies):
        np.testing.assert_array_equal(a, b)


def test_summary_lists_layers_and_params():
    model = gmf()
    out = io.StringIO()
    model.summary(print_fn=lambda s: out.write(s))
    text = out.getvalue()
    assert 'Model: "functional"' in text and "Embedding" in text and "Total params: 409" in text
    assert "(None, 8)" in text and "Connected to" in text


def test_get_set_weights_and_layers():
    model = gmf()
    ws = model.get_weights()
    assert [w.shape for w in ws] == [(30, 8), (20, 8), (8, 1), (1,)]
    ws[0][:] = 1.0
    model.set_weights(ws)
    assert np.all(model.get_layer(index=2).embeddings == 1.0)
    with pytest.raises(ValueError, match="weight arrays"):
        model.set_weights(ws[:2])
    with pytest.raises(ValueError, match="No such layer"):
        model.get_layer("nope")
    assert model.get_layer("user").name == "user"
    assert model.input_names == ["user", "item"]


def test_sequential_with_input_and_deferred_build():
    x = np.random.default_rng(0).normal(size=(300, 4)).astype(np.float32)
    y = (x.sum(1) > 0).astype(np.float32)
    m = Sequential([Input(shape=(4,)), Dense(8, activation="relu"), Dropout(0.2),
                    Dense(1, activation="sigmoid")])
    m.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    h = m.fit(x, y, epochs=20, batch_size=32, verbose=0)
    assert h.history["loss"][-1] < h.history["loss"][0]
    assert len(m.layers) == 3
    m2 = Sequential()
    m2.add(Dense(3))
    m2.add(Dense(1))
    m2.compile(optimizer="sgd", loss="mse")
    m2.fit(x, y, epochs=1, verbose=0)
    assert m2.predict(x).shape == (300, 1)


def test_callbacks_early_stopping_and_scheduler(tmp_path):
    model = gmf()
    model.compile(optimizer="adam", loss="binary_crossentropy")
    u, i, y = data(800)
    seen = []
    cbs = [callbacks.LearningRateScheduler(lambda epoch, lr: 0.01 if epoch < 2 else 0.001),
           callbacks.LambdaCallback(on_epoch_end=lambda e, logs: seen.append(model.optimizer.learning_rate)),
           callbacks.CSVLogger(str(tmp_path / "log.csv")),
           callbacks.EarlyStopping(monitor="loss", patience=0, min_delta=10.0)]
    h = model.fit([u, i], y, epochs=10, batch_size=64, verbose=0, callbacks=cbs)
    assert len(h.history["loss"]) == 2  # stopped after the first non-improvement
    assert seen == [0.01, 0.01]
    assert (tmp_path / "log.csv").read_text().startswith("epoch,")


def test_verbose_progress_output(capsys):
    model = gmf()
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    u, i, y = data(640)
    model.fit([u, i], y, epochs=2, batch_size=64, verbose=1)
    out = capsys.readouterr().out
    assert "Epoch 1/2" in out and "10/10" in out and "loss:" in out
    model.fit([u, i], y, epochs=1, batch_size=64, verbose=2)
    out = capsys.readouterr().out
    assert "10/10 - " in out


def test_sequential_accepts_keras2_input_shape():
    m = Sequential([Dense(4, activation="relu", input_shape=(3,)), Dense(1)])
    assert m.output_shape == (None, 1)
    m.compile(optimizer="adam", loss="mse")
    x = np.ones((10, 3), np.float32)
    m.fit(x, np.ones(10), epochs=1, verbose=0)
    assert m.predict(x).shape == (10, 1)


def test_contiguous_native_inputs_are_not_copied():
    from neurec.models import _data
    model = gmf()
    model.compile(optimizer="adam", loss="binary_crossentropy")
    model._get_plan()
    u = np.arange(30, dtype=np.int64)
    i = (np.arange(30) % 20).astype(np.int32)
    xs = _data.prepare_inputs(model, [u, i], model._builder)
    assert np.shares_memory(xs[0], u) and np.shares_memory(xs[1], i)
    y = np.ones(30, np.float64)
    assert np.shares_memory(_data.prepare_labels(y, 30, 1), y)
    # other dtypes / layouts are converted once, visibly, before the C loop
    xs = _data.prepare_inputs(model, [u.astype(np.int16), i[::-1]], model._builder)
    assert not np.shares_memory(xs[1], i) and xs[0].dtype == np.int64
