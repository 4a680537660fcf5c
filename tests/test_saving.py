"""save/load_model, save/load_weights: round trips, atomic writes, corrupted files."""
import functools
import os
import warnings
import zipfile

import numpy as np
import pytest

from graphs import data_for, merges, neumf, nmf_example
from neurec import callbacks
from neurec.layers import Dense, Input
from neurec.models import Model, Sequential, load_model


def trained(make=neumf, n=400):
    m = make()
    m.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy", "auc"])
    xs = data_for(m, n, seed=2)
    y = np.random.default_rng(3).integers(0, 2, n).astype(np.float32)
    m.fit(xs, y, epochs=2, batch_size=32, verbose=0)
    return m, xs, y


@pytest.mark.parametrize("make", [neumf, merges, nmf_example])
def test_save_load_round_trip(tmp_path, make, one_thread):
    m, xs, y = trained(make)
    path = tmp_path / "m.neurec"
    m.save(path)
    m2 = load_model(path)
    np.testing.assert_array_equal(m.predict(xs), m2.predict(xs))
    assert [l.name for l in m2.layers] == [l.name for l in m.layers]
    assert m2.optimizer.iterations == m.optimizer.iterations
    assert m2.metrics_names == m.metrics_names
    # training continues identically (optimizer state restored)
    m.fit(xs, y, epochs=1, batch_size=32, verbose=0, seed=5)
    m2.fit(xs, y, epochs=1, batch_size=32, verbose=0, seed=5)
    for a, b in zip(m.get_weights(), m2.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_save_weights_round_trip_and_suffixes(tmp_path):
    m, xs, _ = trained()
    m.save_weights(tmp_path / "w.weights.npz")
    m2 = neumf()
    m2.load_weights(tmp_path / "w.weights.npz")
    np.testing.assert_array_equal(m.predict(xs), m2.predict(xs))
    with pytest.raises(ValueError, match=r"\.weights\.npz"):
        m.save_weights(tmp_path / "w.pkl")
    with pytest.raises(ValueError, match=r"\.neurec"):
        m.save(tmp_path / "m.pkl")


def test_corrupted_files_raise_value_error(tmp_path):
    m, _, _ = trained()
    path = tmp_path / "m.neurec"
    m.save(path)
    data = path.read_bytes()
    (tmp_path / "trunc.neurec").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a valid neurec file"):
        load_model(tmp_path / "trunc.neurec")
    flipped = bytearray(data)
    flipped[len(flipped) // 3] ^= 0xFF
    (tmp_path / "flip.neurec").write_bytes(bytes(flipped))
    with pytest.raises(ValueError):
        load_model(tmp_path / "flip.neurec")
    (tmp_path / "junk.neurec").write_bytes(b"hello")
    with pytest.raises(ValueError, match="not a valid neurec file"):
        load_model(tmp_path / "junk.neurec")
    with zipfile.ZipFile(tmp_path / "nocfg.neurec", "w") as z:
        z.writestr("weights/00000.npy", b"")
    with pytest.raises(ValueError, match="no config.json"):
        load_model(tmp_path / "nocfg.neurec")
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "missing.neurec")
    other = Model(*(lambda u: (u, Dense(1)(u)))(Input(shape=(3,))))
    with pytest.raises(ValueError, match="shape"):
        other.load_weights(path)


def test_atomic_save_leaves_old_file_on_failure(tmp_path, monkeypatch):
    m, xs, _ = trained()
    path = tmp_path / "m.neurec"
    m.save(path)
    before = path.read_bytes()
    import neurec.models.saving as saving

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(saving, "_npy_bytes", boom)
    with pytest.raises(OSError, match="disk full"):
        m.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.neurec"]  # no temp file left


def test_model_checkpoint_and_early_stopping_restore(tmp_path):
    m = neumf()
    m.compile(optimizer="adam", loss="binary_crossentropy")
    xs = data_for(m, 300)
    y = np.ones(300, np.float32)
    ck = callbacks.ModelCheckpoint(str(tmp_path / "ep{epoch:02d}.neurec"))
    m.fit(xs, y, epochs=2, batch_size=50, verbose=0, callbacks=[ck])
    assert sorted(os.listdir(tmp_path)) == ["ep01.neurec", "ep02.neurec"]
    m2 = load_model(tmp_path / "ep02.neurec")
    np.testing.assert_array_equal(m.predict(xs), m2.predict(xs))


def test_model_checkpoint_keras_name_writes_a_loadable_model(tmp_path):
    m = neumf()
    m.compile(optimizer="adam", loss="binary_crossentropy")
    xs = data_for(m, 300)
    ck = callbacks.ModelCheckpoint(str(tmp_path / "ep{epoch:02d}.keras"))
    m.fit(xs, np.ones(300, np.float32), epochs=1, batch_size=50, verbose=0, callbacks=[ck])
    np.testing.assert_array_equal(load_model(tmp_path / "ep01.keras").predict(xs), m.predict(xs))


def test_sequential_round_trip(tmp_path):
    m = Sequential([Input(shape=(3,)), Dense(4, activation="tanh"), Dense(1)])
    m.compile(optimizer="sgd", loss="mse")
    x = np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32)
    m.fit(x, x.sum(1), epochs=1, verbose=0)
    m.save(tmp_path / "s.neurec")
    m2 = load_model(tmp_path / "s.neurec")
    assert type(m2).__name__ == "Sequential"
    np.testing.assert_array_equal(m.predict(x), m2.predict(x))


def test_compile_config_round_trip_keeps_the_current_learning_rate():
    import json

    from neurec import losses, optimizers
    m = neumf()
    assert m.get_compile_config() is None
    with pytest.raises(RuntimeError, match="compile"):
        m.build_optimizer()
    m.compile(optimizer=optimizers.Adam(0.01, amsgrad=True), loss="mse",
              metrics=["mae", "auc"], hogwild=True)
    m.optimizer.learning_rate = 0.003  # as a callback would
    cfg = json.loads(json.dumps(m.get_compile_config()))
    m2 = neumf()
    m2.compile_from_config(cfg)
    assert isinstance(m2.optimizer, optimizers.Adam) and m2.optimizer is not m.optimizer
    assert m2.optimizer.get_config() == m.optimizer.get_config()
    assert m2.optimizer.learning_rate == 0.003 and m2.optimizer.amsgrad
    assert isinstance(m2.loss, losses.MeanSquaredError)
    assert m2.metrics_names == m.metrics_names and m2.hogwild
    assert not m2.optimizer.built  # created on first use, as before loading


def test_a_model_saved_before_its_first_step_loads_without_optimizer_state(tmp_path):
    m = neumf()
    m.compile(optimizer="adam", loss="binary_crossentropy")
    m.save(tmp_path / "fresh.neurec")
    with zipfile.ZipFile(tmp_path / "fresh.neurec") as z:
        assert not [n for n in z.namelist() if n.startswith("optimizer/")]
    m2 = load_model(tmp_path / "fresh.neurec")
    assert m2.optimizer.iterations == 0 and not m2.optimizer.built


# -- files written by earlier versions ---------------------------------------------------
FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "saved_models")
OLD_FILES = ["neumf_adam", "merges_rmsprop", "sequential_sgd", "mf_als", "neumf_fresh",
             "neumf_uncompiled"]


@pytest.mark.parametrize("name", OLD_FILES)
def test_files_written_before_the_models_refactor_load_and_resave_alike(name, tmp_path):
    """``tests/fixtures/make_saved_models.py`` wrote these with the code of commit 29dd31d."""
    import json

    path = os.path.join(FIXTURES, f"{name}.neurec")
    want = np.load(os.path.join(FIXTURES, f"{name}.expected.npz"))
    m = load_model(path)
    state = [want[f"optimizer_{k}"] for k in range(sum(f.startswith("optimizer_")
                                                      for f in want.files))]
    if state:
        assert [v.shape for v in m.optimizer.variables()] == [v.shape for v in state]
        for got, v in zip(m.optimizer.variables(), state):
            np.testing.assert_array_equal(got, v)
    else:
        assert m.optimizer is None or (not m.optimizer.built and m.optimizer.iterations == 0)
    # saving it again writes the same config and the same arrays
    m.save(tmp_path / "again.neurec")
    with zipfile.ZipFile(path) as old, zipfile.ZipFile(tmp_path / "again.neurec") as new:
        assert sorted(old.namelist()) == sorted(new.namelist())
        assert json.loads(old.read("config.json")) == json.loads(new.read("config.json"))
        for member in old.namelist():
            if member.endswith(".npy"):
                assert old.read(member) == new.read(member), member
    xs = [want[f"x{k}"] for k in range(len(m.inputs))]
    np.testing.assert_allclose(m.predict(xs), want["predictions"], rtol=1e-5, atol=1e-7)


def test_weights_file_written_before_the_models_refactor_loads():
    m = neumf()
    m.load_weights(os.path.join(FIXTURES, "weights.weights.npz"))
    want = np.load(os.path.join(FIXTURES, "neumf_adam.expected.npz"))
    np.testing.assert_allclose(m.predict([want["x0"], want["x1"]]), want["predictions"],
                               rtol=1e-5, atol=1e-7)


# -- file names: one rule for save, save_weights, load_model, load_weights, ModelCheckpoint --
# name -> what save / save_weights / ModelCheckpoint write under it (None: refused by all;
# Keras's weights names hold neurec's weights format, with a warning that it is not HDF5)
NAMES = {"m.neurec": "model", "m.keras": "model", "m.weights.npz": "weights",
         "m.weights.h5": "keras-weights", "m.h5": "keras-weights", "m.hdf5": "keras-weights",
         "m.weights.json": None, "m.pkl": None}


@pytest.mark.parametrize("name", sorted(NAMES))
def test_every_file_name_works_or_raises_naming_the_file_and_the_fix(tmp_path, name):
    """save, save_weights and ModelCheckpoint accept the same names; every refusal names
    the file and the name to use instead, before anything is written."""
    m, xs, _ = trained()
    kind = NAMES[name]
    path = str(tmp_path / name)
    stem = str(tmp_path / "m")
    for weights_only, save in ((False, m.save), (True, m.save_weights)):
        if kind == ("weights" if weights_only else "model"):
            callbacks.ModelCheckpoint(path, save_weights_only=weights_only)
            save(path)
            continue
        if kind == "keras-weights" and weights_only:
            for make in (functools.partial(callbacks.ModelCheckpoint, save_weights_only=True),
                         save):
                with pytest.warns(UserWarning, match="not HDF5") as w:
                    make(path)
                assert repr(path) in str(w[0].message)
            continue
        want = stem + (".weights.npz" if weights_only else ".neurec")
        checkpoint = functools.partial(callbacks.ModelCheckpoint, save_weights_only=weights_only)
        for make in (save, checkpoint):
            with pytest.raises(ValueError) as e:
                make(path)
            assert repr(path) in str(e.value) and repr(want) in str(e.value), str(e.value)
    assert os.listdir(tmp_path) == ([name] if kind else [])
    fresh = neumf()
    if kind == "model":
        np.testing.assert_array_equal(load_model(path).predict(xs), m.predict(xs))
        fresh.load_weights(path)
        np.testing.assert_array_equal(fresh.predict(xs), m.predict(xs))
    elif kind in ("weights", "keras-weights"):
        with pytest.raises(ValueError, match="load_weights") as e:
            load_model(path)
        assert path in str(e.value)
        fresh.load_weights(path)
        np.testing.assert_array_equal(fresh.predict(xs), m.predict(xs))
    if name.endswith(("h5", "hdf5")):  # a real HDF5 file (Keras wrote it): refused by content
        (tmp_path / name).write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(64))
        for load in (load_model, fresh.load_weights):
            with pytest.raises(ValueError, match="HDF5") as e:
                load(path)
            assert repr(path) in str(e.value)


def test_keras_weights_checkpoint_runs_unchanged_with_one_note(tmp_path):
    """Keras code: ModelCheckpoint('w{epoch}.weights.h5', save_weights_only=True) trains,
    notes once (when made) that the files are neurec's format, and every file loads."""
    m, xs, y = trained()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ckpt = callbacks.ModelCheckpoint(str(tmp_path / "w{epoch}.weights.h5"),
                                         save_weights_only=True)
        m.fit(xs, y, epochs=2, batch_size=64, verbose=0, callbacks=[ckpt])
    notes = [w for w in caught if "not HDF5" in str(w.message)]
    assert len(notes) == 1, [str(w.message) for w in caught]
    assert sorted(os.listdir(tmp_path)) == ["w1.weights.h5", "w2.weights.h5"]
    fresh = neumf()
    fresh.load_weights(tmp_path / "w2.weights.h5")
    np.testing.assert_array_equal(fresh.predict(xs), m.predict(xs))


def test_loading_reads_what_a_file_holds_whatever_its_name(tmp_path):
    m, xs, _ = trained()
    m.save(tmp_path / "m.neurec")
    m.save_weights(tmp_path / "w.weights.npz")
    os.rename(tmp_path / "m.neurec", tmp_path / "model.bin")
    os.rename(tmp_path / "w.weights.npz", tmp_path / "weights.bin")
    np.testing.assert_array_equal(load_model(tmp_path / "model.bin").predict(xs), m.predict(xs))
    for src in ("model.bin", "weights.bin"):
        fresh = neumf()
        fresh.load_weights(tmp_path / src)
        np.testing.assert_array_equal(fresh.predict(xs), m.predict(xs))
    with pytest.raises(ValueError, match="holds weights alone.*load_weights"):
        load_model(tmp_path / "weights.bin")
    # a .keras file Keras wrote (config, metadata, HDF5 weights): said so, not "corrupted"
    with zipfile.ZipFile(tmp_path / "k.keras", "w") as z:
        z.writestr("metadata.json", "{}")
        z.writestr("config.json", "{}")
        z.writestr("model.weights.h5", b"\x89HDF\r\n\x1a\n")
    for load in (load_model, neumf().load_weights):
        with pytest.raises(ValueError, match="written by Keras"):
            load(tmp_path / "k.keras")
