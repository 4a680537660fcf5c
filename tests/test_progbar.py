"""Tests for neurec.utils.progbar.Progbar and the ProgbarLogger callback.

The expected lines follow Keras 3's format. Batch hooks arrive once per chunk
of batches (jumps of several steps) with running-mean logs.
"""
import io
import re
import sys
import types

import pytest

from neurec.callbacks import CallbackList, ProgbarLogger
from neurec.utils import progbar as pb
from neurec.utils.progbar import Progbar

ANSI = re.compile(r"\x1b\[[0-9;]*m")
BAR = "\u2501"
TIME = r"\d+s \d+(?:us|ms|s)/step"


class _Tty(io.StringIO):
    def isatty(self):
        return True


class _FakeClock:
    """Replaces the progbar's clock: scripted times, then fixed steps."""

    def __init__(self, step=0.1):
        self.now, self.step, self.script = 0.0, step, []

    def __call__(self):
        self.now = self.script.pop(0) if self.script else self.now + self.step
        return self.now


@pytest.fixture(autouse=True)
def clock(monkeypatch):
    """Chunks of batches arrive ~0.1 s apart, as from neurec's C core."""
    fake = _FakeClock()
    monkeypatch.setattr(pb, "_clock", fake)
    return fake


@pytest.fixture
def no_notebook(monkeypatch):
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    monkeypatch.delenv("PYCHARM_HOSTED", raising=False)


@pytest.fixture
def use_tty(monkeypatch, no_notebook):
    """Return a function that swaps sys.stdout for a fake TTY.

    It must be called inside the test body: pytest's output capturing resets
    sys.stdout between the setup and call phases.
    """
    def swap():
        stream = _Tty()
        monkeypatch.setattr(sys, "stdout", stream)
        return stream
    return swap


def _run_fit(epochs, steps, chunk, verbose, train_logs, val_logs=None):
    """Drive a ProgbarLogger like neurec's fit: one batch hook per chunk."""
    model = types.SimpleNamespace(stop_training=False)
    cbl = CallbackList(None, add_progbar=True, model=model, epochs=epochs,
                       steps=steps, verbose=verbose)
    cbl.on_train_begin()
    for epoch in range(epochs):
        cbl.on_epoch_begin(epoch)
        for end in range(chunk - 1, steps + chunk - 1, chunk):
            cbl.on_train_batch_end(min(end, steps - 1), dict(train_logs))
        logs = dict(train_logs)
        if val_logs:
            cbl.on_test_begin()  # validation inside fit stays silent
            cbl.on_test_batch_end(0, dict(val_logs))
            cbl.on_test_end(dict(val_logs))
            logs.update({"val_" + k: v for k, v in val_logs.items()})
        cbl.on_epoch_end(epoch, logs)
    cbl.on_train_end()


# ---------------------------------------------------------------------------
# ProgbarLogger through CallbackList
# ---------------------------------------------------------------------------
def test_verbose1_not_a_tty_prints_only_final_lines(capsys, no_notebook):
    _run_fit(2, 12, 5, 1, {"accuracy": 0.5, "loss": 0.6931},
             {"accuracy": 0.25, "loss": 0.7})
    out = capsys.readouterr().out
    assert "\r" not in out and "\x1b" not in out
    lines = out.splitlines()
    assert len(lines) == 4
    assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2"
    pattern = (rf"^12/12 {BAR * 20} {TIME} - accuracy: 0\.5000 - loss: 0\.6931"
               r" - val_accuracy: 0\.2500 - val_loss: 0\.7000$")
    assert re.match(pattern, lines[1]), lines[1]
    assert re.match(pattern, lines[3]), lines[3]


@pytest.mark.parametrize("verbose, times, expected", [
    # bar created at t=0; chunks end at steps 4, 8, 12 (t = 12, 24, 36 ms);
    # time per step excludes the first update: 24 ms / 8 steps = 3 ms.
    (1, [0.0, 0.012, 0.024, 0.036, 0.036],
     f"12/12 {BAR * 20} 0s 3ms/step - accuracy: 0.5000 - loss: 0.6931\n"),
    # verbose=2 only reads the clock at creation and at the end: 36 ms / 12.
    (2, [0.0, 0.036], "12/12 - 0s - 3ms/step - accuracy: 0.5000 - loss: 0.6931\n"),
])
def test_exact_keras_line(verbose, times, expected, capsys, no_notebook, clock):
    clock.script = list(times)
    _run_fit(1, 12, 4, verbose, {"accuracy": 0.5, "loss": 0.6931})
    assert capsys.readouterr().out == expected


def test_verbose2_one_line_per_epoch(capsys, no_notebook):
    _run_fit(3, 12, 4, 2, {"accuracy": 0.5, "loss": 0.6931}, {"loss": 0.7})
    lines = capsys.readouterr().out.splitlines()
    assert lines[0::2] == ["Epoch 1/3", "Epoch 2/3", "Epoch 3/3"]
    for line in lines[1::2]:
        assert re.match(r"^12/12 - \d+s - \d+(?:us|ms|s)/step - accuracy: 0\.5000"
                        r" - loss: 0\.6931 - val_loss: 0\.7000$", line), line
    assert len(lines) == 6


def test_single_epoch_has_no_epoch_header(capsys, no_notebook):
    _run_fit(1, 3, 1, 2, {"loss": 0.5})
    out = capsys.readouterr().out
    assert "Epoch" not in out and out.startswith("3/3 - ")


def test_verbose1_tty_redraws_in_place_across_chunk_jumps(use_tty):
    tty = use_tty()
    _run_fit(1, 12, 5, 1, {"accuracy": 0.5, "loss": 0.6931})
    out = tty.getvalue()
    frames = out.split("\r")[1:]
    # chunks end at steps 5, 10, 12, then the epoch-end redraw at 12/12
    plain = [ANSI.sub("", f) for f in frames]
    assert [f.split()[0] for f in plain] == ["5/12", "10/12", "12/12", "12/12"]
    assert out.endswith("\n") and out.count("\n") == 1
    # The green (done) part of the bar follows the steps: 20 * 5/12 -> 8 chars.
    assert f"\x1b[32m{BAR * 8}\x1b[0m\x1b[37m{BAR * 12}\x1b[0m" in frames[0]
    assert re.match(rf"^ 5/12 {BAR * 20} \d+s \d+(?:us|ms|s)/step - accuracy: "
                    r"0\.5000 - loss: 0\.6931\s*$", plain[0]), plain[0]
    assert re.match(rf"^12/12 {BAR * 20} {TIME} - accuracy: 0\.5000 - loss: "
                    r"0\.6931\n$", plain[-1]), plain[-1]


def test_logger_shows_running_means_as_given(use_tty):
    tty = use_tty()
    """neurec's batch logs are already epoch means: no re-averaging."""
    logger = ProgbarLogger()
    cbl = CallbackList([logger], model=types.SimpleNamespace(), epochs=1,
                       steps=10, verbose=1)
    cbl.on_epoch_begin(0)
    logger.progbar.interval = 0
    cbl.on_train_batch_end(1, {"loss": 1.0})
    cbl.on_train_batch_end(9, {"loss": 0.5})
    frames = [ANSI.sub("", f) for f in tty.getvalue().split("\r")[1:]]
    assert frames[-1].rstrip().endswith("loss: 0.5000")


def test_jupyter_counts_as_interactive(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    _run_fit(1, 4, 2, 1, {"loss": 0.5})
    assert capsys.readouterr().out.count("\r") == 3


def test_verbose0_prints_nothing(capsys, no_notebook):
    _run_fit(2, 4, 2, 0, {"loss": 0.5})
    assert capsys.readouterr().out == ""


def test_predict_and_evaluate_outside_fit(capsys, no_notebook):
    logger = ProgbarLogger()
    cbl = CallbackList([logger], model=types.SimpleNamespace(), epochs=1,
                       steps=None, verbose=2)
    cbl.on_predict_begin()
    cbl.on_predict_batch_end(6, {"outputs": [1, 2]})
    cbl.on_predict_end()
    cbl.on_test_begin()
    cbl.on_test_batch_end(6, {"loss": 0.25})
    cbl.on_test_end({"loss": 0.25, "hr@10": 0.61})
    lines = capsys.readouterr().out.splitlines()
    assert re.match(r"^7/7 - \d+s - \d+(?:us|ms|s)/step$", lines[0]), lines
    assert re.match(r"^7/7 - .* - loss: 0\.2500 - hr@10: 0\.6100$", lines[1]), lines


# ---------------------------------------------------------------------------
# Progbar on its own
# ---------------------------------------------------------------------------
def test_progbar_averages_stateless_metrics_weighted_by_jump(use_tty):
    tty = use_tty()
    bar = Progbar(10, interval=0)
    bar.update(2, [("loss", 1.0), ("lr", 0.1)])
    bar.update(6, [("loss", 0.5), ("lr", 0.2)])
    text = ANSI.sub("", tty.getvalue().split("\r")[-1])
    # (1.0 * 2 + 0.5 * 4) / 6 = 0.6667 ; (0.1 * 2 + 0.2 * 4) / 6 = 0.1667
    assert "loss: 0.6667" in text and "lr: 0.1667" in text


def test_progbar_stateful_metrics_shown_as_is(use_tty):
    tty = use_tty()
    bar = Progbar(10, interval=0, stateful_metrics=["loss"])
    bar.update(2, {"loss": 1.0})
    bar.update(6, {"loss": 0.5})
    assert ANSI.sub("", tty.getvalue().split("\r")[-1]).rstrip().endswith("loss: 0.5000")


def test_progbar_add_and_finalize(capsys, no_notebook):
    bar = Progbar(4, verbose=1)
    bar.add(3, [("loss", 2.0)])
    assert capsys.readouterr().out == ""  # not interactive: final line only
    bar.add(1, [("loss", 1e-5)])
    out = capsys.readouterr().out
    assert re.match(rf"^4/4 {BAR * 20} {TIME} - loss: 1\.0000e-05\n$", out), out


def test_progbar_unknown_target(use_tty):
    tty = use_tty()
    bar = Progbar(None, interval=0)
    bar.update(5, [("loss", 0.5)])
    bar.update(9, [("loss", 0.5)], finalize=True)
    frames = [ANSI.sub("", f) for f in tty.getvalue().split("\r")[1:]]
    assert frames[0].startswith("      5/Unknown ")
    assert re.match(rf"^      9/Unknown {TIME} - loss: 0\.5000\n$", frames[1]), frames


def test_progbar_pads_shorter_redraw(use_tty):
    tty = use_tty()
    bar = Progbar(10, interval=0)
    bar.update(5, [("a_long_metric_name", 0.5)], )
    first = ANSI.sub("", tty.getvalue().split("\r")[1])
    bar._values.clear()
    bar._values_order.clear()
    bar.update(6)
    second = ANSI.sub("", tty.getvalue().split("\r")[2])
    assert len(second) == len(first)


def test_progbar_interval_throttles_redraws(use_tty):
    tty = use_tty()
    bar = Progbar(100, interval=60)
    for step in range(1, 100):
        bar.update(step)
    assert tty.getvalue().count("\r") == 1  # first draw only
    bar.update(100)
    assert tty.getvalue().count("\r") == 2 and tty.getvalue().endswith("\n")


@pytest.mark.parametrize("seconds, text", [
    (0.0, "0s/step"), (1.6, "2s/step"), (0.0031, "3ms/step"), (2e-5, "20us/step"),
])
def test_time_per_step_format(seconds, text):
    assert pb._format_time_per_unit(seconds, "step") == text


def test_eta_format():
    assert pb._format_eta(42) == "42s"
    assert pb._format_eta(125) == "2:05"
    assert pb._format_eta(3725) == "1:02:05"


@pytest.mark.parametrize("kwargs, exc, word", [
    ({"target": -1}, ValueError, "target"),
    ({"target": 2.5}, TypeError, "target"),
    ({"target": 5, "width": 0}, ValueError, "width"),
    ({"target": 5, "verbose": 3}, ValueError, "verbose"),
    ({"target": 5, "interval": -1}, ValueError, "interval"),
    ({"target": 5, "stateful_metrics": "loss"}, TypeError, "stateful_metrics"),
])
def test_progbar_rejects_bad_arguments(kwargs, exc, word):
    with pytest.raises(exc, match=word):
        Progbar(**kwargs)


def test_progbar_rejects_bad_update_values():
    bar = Progbar(5, verbose=0)
    with pytest.raises(TypeError, match="values"):
        bar.update(1, [0.5])
    with pytest.raises(TypeError, match="current"):
        bar.update(1.5)
