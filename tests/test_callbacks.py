"""Tests for neurec.callbacks, driven through CallbackList with a fake model.

`_fit` mimics neurec's Model.fit: batch hooks run once per *chunk* of batches
(the begin hook gets the chunk's first batch index, the end hook its last),
and the model's weights are updated in place, as the C core does.
"""
import csv
import math
import types

import numpy as np
import pytest

from neurec import callbacks as cbm
from neurec.callbacks import (
    Callback,
    CallbackList,
    CSVLogger,
    EarlyStopping,
    History,
    LambdaCallback,
    LearningRateScheduler,
    ModelCheckpoint,
    ProgbarLogger,
    ReduceLROnPlateau,
    TerminateOnNaN,
)


class FakeModel:
    """Minimal model: live weight arrays, an optimizer with a float rate."""

    def __init__(self, lr=0.1):
        self.stop_training = False
        self.optimizer = types.SimpleNamespace(learning_rate=lr)
        self._w = [np.zeros(3, dtype=np.float32), np.zeros((2, 2), dtype=np.float32)]
        self.saved = []

    def get_weights(self):
        return self._w  # live arrays on purpose: the C core writes in place

    def set_weights(self, weights):
        for dst, src in zip(self._w, weights):
            dst[...] = src

    def save(self, path):
        self.saved.append(("model", str(path)))
        with open(path, "w") as f:
            f.write("model")

    def save_weights(self, path):
        self.saved.append(("weights", str(path)))
        with open(path, "w") as f:
            f.write("weights")


def _fit(callbacks, epoch_logs, model=None, steps=4, chunk=4, batch_logs=None,
         verbose=0):
    """Run a scripted fit; returns (model, History)."""
    model = model or FakeModel()
    cbl = CallbackList(callbacks, add_history=True, add_progbar=verbose != 0,
                       model=model, epochs=len(epoch_logs), steps=steps,
                       verbose=verbose)
    cbl.on_train_begin()
    for epoch, logs in enumerate(epoch_logs):
        if model.stop_training:
            break
        cbl.on_epoch_begin(epoch)
        for start in range(0, steps, chunk):
            end = min(start + chunk, steps) - 1
            cbl.on_train_batch_begin(start)
            for w in model._w:  # training writes weights in place
                w[...] = epoch + 1
            cbl.on_train_batch_end(end, dict(batch_logs or logs))
        cbl.on_epoch_end(epoch, dict(logs))
    cbl.on_train_end()
    return model, model.history


def _losses(values, key="val_loss"):
    return [{"loss": 1.0, key: v} for v in values]


# ---------------------------------------------------------------------------
# Callback, CallbackList, History, LambdaCallback
# ---------------------------------------------------------------------------
class Recorder(Callback):
    def __init__(self):
        super().__init__()
        self.calls = []

    def on_train_begin(self, logs=None):
        self.calls.append(("train_begin",))

    def on_epoch_begin(self, epoch, logs=None):
        self.calls.append(("epoch_begin", epoch))

    def on_batch_begin(self, batch, logs=None):
        self.calls.append(("batch_begin", batch))

    def on_batch_end(self, batch, logs=None):
        self.calls.append(("batch_end", batch, dict(logs)))

    def on_epoch_end(self, epoch, logs=None):
        self.calls.append(("epoch_end", epoch))

    def on_train_end(self, logs=None):
        self.calls.append(("train_end",))


def test_callback_list_fans_out_hooks_in_order_with_chunked_batches():
    rec = Recorder()
    _fit([rec], [{"loss": 0.5}], steps=10, chunk=4)
    assert rec.calls == [
        ("train_begin",), ("epoch_begin", 0),
        ("batch_begin", 0), ("batch_end", 3, {"loss": 0.5}),
        ("batch_begin", 4), ("batch_end", 7, {"loss": 0.5}),
        ("batch_begin", 8), ("batch_end", 9, {"loss": 0.5}),
        ("epoch_end", 0), ("train_end",),
    ]


def test_callback_list_sets_model_params_and_default_callbacks():
    model = FakeModel()
    rec = Recorder()
    cbl = CallbackList([rec], add_history=True, add_progbar=True, model=model,
                       epochs=3, steps=7, verbose=2)
    assert [type(c) for c in cbl.callbacks] == [Recorder, History, ProgbarLogger]
    assert all(c.model is model for c in cbl.callbacks)
    assert rec.params == {"epochs": 3, "steps": 7, "verbose": 2}
    assert model.history is cbl.callbacks[1]
    assert cbl.callbacks[2].target == 7 and cbl.callbacks[2].verbose == 2


def test_callback_list_does_not_duplicate_user_history_or_progbar():
    hist, bar = History(), ProgbarLogger()
    cbl = CallbackList([[hist], bar], add_history=True, add_progbar=True,
                       model=FakeModel(), epochs=1, steps=1, verbose=1)
    assert cbl.callbacks == [hist, bar]


def test_callback_list_rejects_non_callbacks():
    with pytest.raises(TypeError, match="LambdaCallback"):
        CallbackList([lambda epoch, logs: None])
    with pytest.raises(TypeError, match="callbacks"):
        CallbackList("EarlyStopping")


def test_batch_logs_are_pythonified_and_sorted():
    seen = []
    cb = LambdaCallback(on_train_batch_end=lambda b, logs: seen.append(logs))
    cbl = CallbackList([cb], model=FakeModel())
    cbl.on_train_batch_end(0, {"loss": np.float32(0.25), "accuracy": np.array(0.5)})
    assert list(seen[0]) == ["accuracy", "loss"]
    assert type(seen[0]["loss"]) is float and seen[0]["accuracy"] == 0.5


def test_history_records_every_epoch():
    logs = [{"loss": 0.9, "val_loss": 1.0}, {"loss": 0.8, "val_loss": 0.95}]
    model, history = _fit([], logs)
    assert history.epoch == [0, 1]
    assert history.history == {"loss": [0.9, 0.8], "val_loss": [1.0, 0.95]}
    assert history.params["epochs"] == 2 and history.model is model


def test_lambda_callback_hooks_and_extra_kwargs():
    calls = []
    cb = LambdaCallback(
        on_epoch_end=lambda epoch, logs: calls.append(("end", epoch, logs["loss"])),
        on_train_batch_end=lambda batch, logs: calls.append(("batch", batch)),
        on_test_end=lambda logs: calls.append(("test_end",)))
    _fit([cb], [{"loss": 0.3}], steps=8, chunk=4)
    cb.on_test_end({})
    assert calls == [("batch", 3), ("batch", 7), ("end", 0, 0.3), ("test_end",)]


def test_lambda_callback_rejects_bad_hooks():
    with pytest.raises(TypeError, match="on_epoch_finish"):
        LambdaCallback(on_epoch_finish=print)
    with pytest.raises(TypeError, match="callable"):
        LambdaCallback(on_epoch_end=3)


# ---------------------------------------------------------------------------
# EarlyStopping
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("monitor, mode", [
    ("val_loss", "min"), ("loss", "min"), ("mse", "min"), ("val_mape", "min"),
    ("accuracy", "max"), ("val_binary_accuracy", "max"), ("val_auc", "max"),
    ("hr@10", "max"), ("val_ndcg@10", "max"), ("mrr", "max"),
    ("val_precision@5", "max"), ("recall@20", "max"), ("map@10", "max"),
    ("val_map", "max"),
])
def test_auto_mode_inference(monitor, mode):
    assert cbm.monitor._infer_mode(monitor) == mode


def test_early_stopping_patience():
    es = EarlyStopping(monitor="val_loss", patience=2)
    model, history = _fit([es], _losses([1.0, 0.9, 0.95, 0.96, 0.5, 0.4]))
    assert model.stop_training is True
    assert es.stopped_epoch == 3 and history.epoch == [0, 1, 2, 3]
    assert es.best == 0.9 and es.best_epoch == 1


def test_early_stopping_patience_zero_and_no_stop_while_improving():
    es = EarlyStopping(monitor="val_loss", patience=0)
    model, history = _fit([es], _losses([1.0, 0.9, 0.8, 0.7]))
    assert not model.stop_training and es.stopped_epoch == 0
    assert len(history.epoch) == 4
    es2 = EarlyStopping(monitor="val_loss", patience=0)
    model2, history2 = _fit([es2], _losses([1.0, 1.0, 0.5]))
    assert es2.stopped_epoch == 1 and history2.epoch == [0, 1]


def test_early_stopping_min_delta():
    values = [1.0, 0.95, 0.9, 0.85, 0.8]
    plain = EarlyStopping(patience=1)
    _, h_plain = _fit([plain], _losses(values))
    assert len(h_plain.epoch) == 5
    delta = EarlyStopping(patience=1, min_delta=0.1)
    _, h_delta = _fit([delta], _losses(values))
    assert delta.stopped_epoch == 1 and len(h_delta.epoch) == 2
    assert delta.best == 1.0


def test_early_stopping_max_mode_for_ranking_metric():
    es = EarlyStopping(monitor="val_hr@10", patience=1)
    logs = [{"loss": 1.0, "val_hr@10": v} for v in [0.3, 0.5, 0.4, 0.6]]
    model, history = _fit([es], logs)
    assert es.best == 0.5 and es.stopped_epoch == 2
    assert history.history["val_hr@10"] == [0.3, 0.5, 0.4]


def test_early_stopping_explicit_mode_overrides_name():
    es = EarlyStopping(monitor="loss", mode="max", patience=0)
    _fit([es], [{"loss": v} for v in [1.0, 2.0, 1.5]])
    assert es.best == 2.0 and es.stopped_epoch == 2


def test_early_stopping_baseline_counts_epochs_that_miss_it():
    values = [0.5, 0.5, 0.5, 0.5]
    logs = [{"val_accuracy": v} for v in values]
    without = EarlyStopping(monitor="val_accuracy", patience=2)
    _fit([without], logs)
    assert without.stopped_epoch == 2
    with_base = EarlyStopping(monitor="val_accuracy", patience=2, baseline=0.8)
    _fit([with_base], logs)
    assert with_base.stopped_epoch == 1


def test_early_stopping_baseline_beaten_resets_wait():
    es = EarlyStopping(monitor="val_accuracy", patience=2, baseline=0.8)
    model, history = _fit([es], [{"val_accuracy": v} for v in [0.5, 0.9, 0.85, 0.85, 0.85]])
    assert es.best == 0.9 and es.stopped_epoch == 3
    assert len(history.epoch) == 4


def test_early_stopping_restore_best_weights_copies_live_arrays():
    es = EarlyStopping(patience=2, restore_best_weights=True)
    model, _ = _fit([es], _losses([1.0, 0.5, 0.7, 0.8, 0.1]))
    assert es.stopped_epoch == 3 and es.best_epoch == 1
    # epoch e leaves weights == e + 1; the best epoch (1) left 2.0
    for w in model.get_weights():
        np.testing.assert_array_equal(w, 2.0)


def test_early_stopping_without_restore_keeps_last_weights():
    es = EarlyStopping(patience=2)
    model, _ = _fit([es], _losses([1.0, 0.5, 0.7, 0.8, 0.1]))
    np.testing.assert_array_equal(model.get_weights()[0], 4.0)


def test_early_stopping_restores_even_without_stopping(capsys):
    es = EarlyStopping(patience=5, restore_best_weights=True, verbose=1)
    model, _ = _fit([es], _losses([1.0, 0.4, 0.6]))
    np.testing.assert_array_equal(model.get_weights()[1], 2.0)
    assert "best epoch: 2." in capsys.readouterr().out


def test_early_stopping_start_from_epoch():
    worsening = _losses([1.0, 2.0, 3.0, 4.0, 5.0])
    early = EarlyStopping(patience=0)
    _fit([early], worsening)
    assert early.stopped_epoch == 1
    warm = EarlyStopping(patience=0, start_from_epoch=2)
    _, history = _fit([warm], worsening)
    assert warm.stopped_epoch == 3 and warm.best == 3.0
    assert history.epoch == [0, 1, 2, 3]


def test_early_stopping_warns_when_monitor_missing():
    es = EarlyStopping(monitor="val_ndcg@10")
    with pytest.warns(UserWarning, match=r"val_ndcg@10.*Available metrics are: loss"):
        model, _ = _fit([es], [{"loss": 1.0}, {"loss": 2.0}])
    assert not model.stop_training


def test_early_stopping_is_reusable_and_verbose(capsys):
    es = EarlyStopping(patience=0, verbose=1)
    _fit([es], _losses([1.0, 2.0]))
    assert "Epoch 2: early stopping" in capsys.readouterr().out
    model, history = _fit([es], _losses([5.0, 4.0, 3.0]))
    assert es.best == 3.0 and es.stopped_epoch == 0 and len(history.epoch) == 3


def test_early_stopping_bad_arguments():
    with pytest.raises(ValueError, match="patience"):
        EarlyStopping(patience=-1)
    with pytest.warns(UserWarning, match="unknown"):
        es = EarlyStopping(mode="down")
    assert es.mode == "auto"


# ---------------------------------------------------------------------------
# ModelCheckpoint
# ---------------------------------------------------------------------------
def test_checkpoint_formats_filepath_each_epoch(tmp_path):
    ckpt = ModelCheckpoint(str(tmp_path / "{epoch:02d}-{val_loss:.2f}.neurec"))
    model, _ = _fit([ckpt], _losses([0.5, 0.456, 0.3]))
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["01-0.50.neurec", "02-0.46.neurec", "03-0.30.neurec"]
    assert [kind for kind, _ in model.saved] == ["model"] * 3


def test_checkpoint_save_best_only(tmp_path, capsys):
    path = tmp_path / "sub" / "e{epoch}.neurec"
    ckpt = ModelCheckpoint(path, save_best_only=True, verbose=1)
    model, _ = _fit([ckpt], _losses([0.5, 0.6, 0.4, 0.45]))
    assert [p for _, p in model.saved] == [str(tmp_path / "sub" / "e1.neurec"),
                                            str(tmp_path / "sub" / "e3.neurec")]
    out = capsys.readouterr().out
    assert "val_loss improved from 0.50000 to 0.40000" in out
    assert "Epoch 2: val_loss did not improve from 0.50000" in out


def test_checkpoint_save_best_only_max_mode_and_threshold(tmp_path):
    path = str(tmp_path / "best.neurec")
    ckpt = ModelCheckpoint(path, monitor="val_ndcg@10", save_best_only=True,
                           initial_value_threshold=0.35)
    logs = [{"val_ndcg@10": v} for v in [0.3, 0.4, 0.38, 0.41]]
    model, _ = _fit([ckpt], logs)
    assert len(model.saved) == 2 and ckpt.best == 0.41


def test_checkpoint_save_weights_only(tmp_path):
    path = str(tmp_path / "w{epoch}.weights.npz")
    ckpt = ModelCheckpoint(path, save_weights_only=True)
    model, _ = _fit([ckpt], _losses([0.5, 0.6]))
    assert model.saved == [("weights", str(tmp_path / "w1.weights.npz")),
                           ("weights", str(tmp_path / "w2.weights.npz"))]


@pytest.mark.parametrize("path, weights_only, expected", [
    ("m.h5", False, "'m.neurec'"), ("m.weights.npz", False, "save_weights_only=True"),
    ("m.weights.json", True, "'m.weights.npz'"), ("m.neurec", True, "'m.weights.npz'"),
    ("m.keras", True, "save_weights_only=False"), ("m.weights.h5", False, "'m.neurec'"),
])
def test_checkpoint_rejects_wrong_suffix(path, weights_only, expected):
    with pytest.raises(ValueError, match=expected.replace(".", r"\.")) as e:
        ModelCheckpoint(path, save_weights_only=weights_only)
    assert repr(path) in str(e.value)


def test_checkpoint_accepts_every_name_save_accepts(tmp_path):
    """``.keras`` is a name of neurec's model format, as for ``Model.save``."""
    path = str(tmp_path / "e{epoch}.keras")
    model, _ = _fit([ModelCheckpoint(path)], _losses([0.5, 0.6]))
    assert model.saved == [("model", str(tmp_path / "e1.keras")),
                           ("model", str(tmp_path / "e2.keras"))]


def test_checkpoint_rejects_bad_save_freq():
    for bad in ("batch", 0, 2.5):
        with pytest.raises(ValueError, match="save_freq"):
            ModelCheckpoint("m.neurec", save_freq=bad)


def test_checkpoint_integer_save_freq_with_chunked_batches(tmp_path):
    ckpt = ModelCheckpoint(str(tmp_path / "e{epoch}-b{batch}.neurec"), save_freq=5)
    # 10 batches per epoch in chunks ending at batches 3, 7, 9: the running
    # count 4, 8, 10 | 14, 18, 20 crosses a multiple of 5 at 8, 10, 18, 20.
    model, _ = _fit([ckpt], _losses([0.5, 0.4]), steps=10, chunk=4)
    assert [p.rsplit("/", 1)[1] for _, p in model.saved] == [
        "e1-b8.neurec", "e1-b10.neurec", "e2-b8.neurec", "e2-b10.neurec"]


def test_checkpoint_integer_save_freq_larger_than_epoch(tmp_path):
    ckpt = ModelCheckpoint(str(tmp_path / "m.neurec"), save_freq=25)
    model, _ = _fit([ckpt], _losses([0.5] * 5), steps=10, chunk=3)
    assert len(model.saved) == 2  # 50 batches in all: crosses 25 and 50


def test_checkpoint_missing_format_key(tmp_path):
    ckpt = ModelCheckpoint(str(tmp_path / "{val_auc:.2f}.neurec"))
    with pytest.raises(KeyError, match="val_auc"):
        _fit([ckpt], _losses([0.5]))


def test_checkpoint_save_best_only_missing_monitor_warns_and_saves(tmp_path):
    ckpt = ModelCheckpoint(str(tmp_path / "m.neurec"), save_best_only=True)
    with pytest.warns(UserWarning, match="val_loss"):
        model, _ = _fit([ckpt], [{"loss": 1.0}])
    assert len(model.saved) == 1


# ---------------------------------------------------------------------------
# CSVLogger
# ---------------------------------------------------------------------------
def _read_csv(path, sep=","):
    with open(path, newline="") as f:
        return list(csv.reader(f, delimiter=sep))


def test_csv_logger_header_rows_and_flush(tmp_path):
    path = tmp_path / "log.csv"
    seen_mid_training = []
    peek = LambdaCallback(on_epoch_end=lambda e, logs: seen_mid_training.append(
        path.read_text()))
    logs = [{"val_loss": 0.7, "loss": 0.69, "accuracy": 0.5},
            {"val_loss": 0.6, "loss": 0.5, "accuracy": 0.75}]
    _fit([CSVLogger(path), peek], logs)
    assert _read_csv(path) == [["epoch", "accuracy", "loss", "val_loss"],
                               ["0", "0.5", "0.69", "0.7"],
                               ["1", "0.75", "0.5", "0.6"]]
    assert seen_mid_training[0].splitlines()[1] == "0,0.5,0.69,0.7"


def test_csv_logger_append_and_overwrite(tmp_path):
    path = tmp_path / "log.csv"
    _fit([CSVLogger(path)], [{"loss": 1.0}])
    _fit([CSVLogger(path, append=True)], [{"loss": 0.5}, {"loss": 0.25}])
    assert _read_csv(path) == [["epoch", "loss"], ["0", "1.0"], ["0", "0.5"],
                               ["1", "0.25"]]
    _fit([CSVLogger(path)], [{"loss": 2.0}])
    assert _read_csv(path) == [["epoch", "loss"], ["0", "2.0"]]


def test_csv_logger_append_to_missing_file_writes_header(tmp_path):
    path = tmp_path / "new.csv"
    _fit([CSVLogger(path, append=True)], [{"loss": 1.0}])
    assert _read_csv(path)[0] == ["epoch", "loss"]


def test_csv_logger_separator_and_missing_keys(tmp_path):
    path = tmp_path / "log.tsv"
    _fit([CSVLogger(str(path), separator="\t")],
         [{"loss": 1.0, "hr@10": 0.4}, {"loss": 0.5}])
    assert _read_csv(path, "\t") == [["epoch", "hr@10", "loss"],
                                     ["0", "0.4", "1.0"], ["1", "NA", "0.5"]]
    with pytest.raises(ValueError, match="separator"):
        CSVLogger(path, separator="::")


# ---------------------------------------------------------------------------
# Learning-rate callbacks and TerminateOnNaN
# ---------------------------------------------------------------------------
def test_learning_rate_scheduler_two_arg_schedule():
    seen = []

    def schedule(epoch, lr):
        seen.append((epoch, lr))
        return lr * 0.5 if epoch > 0 else lr

    model, history = _fit([LearningRateScheduler(schedule)], [{"loss": 1.0}] * 3,
                          model=FakeModel(lr=0.1))
    assert seen == [(0, 0.1), (1, 0.1), (2, 0.05)]
    assert history.history["learning_rate"] == [0.1, 0.05, 0.025]
    assert model.optimizer.learning_rate == 0.025


def test_learning_rate_scheduler_one_arg_schedule_and_verbose(capsys):
    sched = LearningRateScheduler(lambda epoch: 0.01 * (epoch + 1), verbose=1)
    model, history = _fit([sched], [{"loss": 1.0}] * 2)
    assert history.history["learning_rate"] == pytest.approx([0.01, 0.02])
    assert "Epoch 2: LearningRateScheduler setting learning rate to 0.02" in \
        capsys.readouterr().out


def test_learning_rate_scheduler_errors():
    def broken(epoch, lr):
        raise TypeError("bug inside the schedule")

    with pytest.raises(TypeError, match="bug inside"):  # not swallowed
        _fit([LearningRateScheduler(broken)], [{"loss": 1.0}])
    with pytest.raises(ValueError, match="should be a float"):
        _fit([LearningRateScheduler(lambda e, lr: "fast")], [{"loss": 1.0}])
    with pytest.raises(TypeError, match="schedule"):
        LearningRateScheduler(0.1)
    model = FakeModel()
    model.optimizer = None
    with pytest.raises(ValueError, match="compile"):
        _fit([LearningRateScheduler(lambda e, lr: lr)], [{"loss": 1.0}], model=model)


def test_reduce_lr_on_plateau():
    cb = ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=1, min_lr=0.03)
    model, history = _fit([cb], _losses([1.0, 1.0, 1.0, 1.0, 0.5]),
                          model=FakeModel(lr=0.1))
    assert history.history["learning_rate"] == [0.1, 0.1, 0.05, 0.03, 0.03]
    assert model.optimizer.learning_rate == 0.03


def test_reduce_lr_on_plateau_cooldown_and_max_mode():
    cb = ReduceLROnPlateau(monitor="val_auc", factor=0.5, patience=1, cooldown=2)
    logs = [{"val_auc": v} for v in [0.7, 0.7, 0.7, 0.7, 0.7, 0.8]]
    _, history = _fit([cb], logs, model=FakeModel(lr=0.1))
    # Keras semantics: reduce at the end of epoch 1; the cooldown counter (2)
    # counts down at epochs 2 and 3, so epoch 3 may reduce again; epoch 4 is
    # in the new cooldown and epoch 5 improves.
    assert history.history["learning_rate"] == [0.1, 0.1, 0.05, 0.05, 0.025, 0.025]
    with pytest.raises(ValueError, match="factor"):
        ReduceLROnPlateau(factor=1.0)


# (monitor, two values, min_delta, whether the second value improves on the first). Changes of
# exactly min_delta fall either side in float64; the rule is Keras 3's MonitorCallback one,
# ``value - min_delta > best`` (max) / ``value + min_delta < best`` (min), with |min_delta|.
IMPROVEMENT_EDGES = [
    ("val_loss", [0.0313, 0.0312], 1e-4, False),  # 0.0312 < 0.0313 - 1e-4 holds in float64
    ("val_hr@10", [0.0312, 0.0313], 1e-4, True),  # 0.0313 > 0.0312 + 1e-4 does not
    ("val_loss", [1.0, 1.0], -0.5, False),        # a negative min_delta counts as |min_delta|
    ("val_auc", [0.5, 0.5], -0.5, False),
]


@pytest.mark.parametrize("monitor, values, min_delta, improves", IMPROVEMENT_EDGES)
def test_monitor_callbacks_share_one_improvement_rule(monitor, values, min_delta, improves):
    """Regression: ReduceLROnPlateau tested ``current < best - min_delta`` and kept the sign
    of ``min_delta``, while EarlyStopping and ModelCheckpoint tested
    ``current + min_delta < best`` with ``abs(min_delta)``: on the same values one could
    count an improvement that the other did not."""
    logs = [{monitor: v} for v in values]
    es = EarlyStopping(monitor=monitor, min_delta=min_delta, patience=1)
    _fit([es], logs)
    assert (es.stopped_epoch == 0) == improves
    rl = ReduceLROnPlateau(monitor=monitor, min_delta=min_delta, patience=1, factor=0.5)
    model, _ = _fit([rl], logs, model=FakeModel(lr=0.1))
    assert (model.optimizer.learning_rate == 0.1) == improves

def test_monitor_callbacks_warn_when_the_monitor_is_missing(tmp_path):
    logs = [{"loss": 1.0}, {"loss": 2.0}, {"loss": 3.0}]
    es = EarlyStopping(monitor="val_auc", patience=0)
    with pytest.warns(UserWarning, match=r"^Early stopping conditioned on metric `val_auc` "
                      r"which is not available\. Available metrics are: loss$"):
        model, _ = _fit([es], logs)
    assert not model.stop_training
    rl = ReduceLROnPlateau(monitor="val_auc", patience=0)
    with pytest.warns(UserWarning, match=r"^Learning rate reduction is conditioned on metric "
                      r"`val_auc` which is not available\. Available metrics are: "
                      r"loss,learning_rate\.$"):
        model, _ = _fit([rl], logs, model=FakeModel(lr=0.1))
    assert model.optimizer.learning_rate == 0.1
    ckpt = ModelCheckpoint(str(tmp_path / "m.neurec"), monitor="val_auc", save_best_only=True)
    with pytest.warns(UserWarning, match=r"^Can save best model only with val_auc available\.$"):
        model, _ = _fit([ckpt], logs)
    assert len(model.saved) == 3  # saved anyway, as in Keras 3

def test_terminate_on_nan_stops_within_epoch():
    model = FakeModel()
    logs = [{"loss": 0.5}, {"loss": math.nan}, {"loss": 0.1}]
    model, history = _fit([TerminateOnNaN()], logs, model=model, steps=8, chunk=4)
    assert model.stop_training and history.epoch == [0, 1]
    model2, _ = _fit([TerminateOnNaN()], [{"loss": math.inf}])
    assert model2.stop_training
    model3, _ = _fit([TerminateOnNaN()], [{"loss": 0.5}] * 2)
    assert not model3.stop_training
