"""Tests for neurec.utils.progbar.Progbar and the ProgbarLogger callback.

The expected lines follow Keras 3's format. Batch hooks arrive once per chunk
of batches (jumps of several steps) with running-mean logs.
"""
import io
import re
import sys
import types

import numpy as np
import pytest

import neurec
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


# ---------------------------------------------------------------------------
# The delayed bar of calls a person waits for (predict, recommend, evaluate_full,
# read_csv): nothing before WAIT_SECONDS, nothing at all for a shorter call
# ---------------------------------------------------------------------------
def test_delayed_bar_draws_only_after_start_after(use_tty, clock):
    tty = use_tty()
    clock.script = [0.0, 0.5, 1.99]                # creation, then two updates
    bar = Progbar(10, interval=0, start_after=2.0)
    bar.update(2)
    bar.update(5)
    assert tty.getvalue() == ""
    clock.script = [2.0]
    bar.update(7)                                  # the first update at 2 s draws at once
    frames = [ANSI.sub("", f) for f in tty.getvalue().split("\r")[1:]]
    assert len(frames) == 1 and frames[0].startswith(" 7/10 ")
    bar.update(10)
    assert tty.getvalue().endswith("\n")


@pytest.mark.parametrize("verbose", [1, 2])
def test_delayed_bar_finished_sooner_prints_nothing(verbose, capsys, no_notebook, clock):
    clock.script = [0.0, 1.5]
    bar = Progbar(4, verbose=verbose, start_after=2.0)
    bar.update(4)
    assert capsys.readouterr().out == ""
    clock.script = [0.0, 2.5]
    bar = Progbar(4, verbose=verbose, start_after=2.0)
    bar.update(4)
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith("4/4 ")


def test_resolve_verbose(monkeypatch, no_notebook):
    assert [pb.resolve_verbose("f", v) for v in (0, 1, 2, True, False)] == [0, 1, 2, 1, 0]
    assert pb.resolve_verbose("f", "auto") == 0    # pytest's stdout is not a terminal
    monkeypatch.setattr(sys, "stdout", _Tty())
    assert pb.resolve_verbose("f", "auto") == 1
    for bad in (3, -1, "yes", 1.0, None):
        with pytest.raises(ValueError, match=r"^f: verbose must be"):
            pb.resolve_verbose("f", bad)


def test_waiting_bar_counts_from_the_calls_start(clock):
    clock.script = [10.0, 11.5, 11.5]              # call start; waiting_bar; Progbar()
    since = pb._clock()
    bar = pb.waiting_bar("f", 1, 5, since=since)
    assert bar.start_after == pytest.approx(pb.WAIT_SECONDS - 1.5)
    assert pb.waiting_bar("f", 0, 5).start_after == pb.WAIT_SECONDS


# -- the calls themselves, on a fake clock ----------------------------------------------
@pytest.fixture
def slow(clock):
    """Every clock read is 3 s after the one before: calls last long enough for a bar."""
    clock.step = 3.0


@pytest.fixture
def quick(clock):
    """The clock stands still: every call is shorter than WAIT_SECONDS."""
    clock.step = 0.0


def _mf(nu=300, ni=60):
    from neurec.models import MF
    neurec.utils.set_random_seed(0)
    return MF(nu, ni, factors=4)


def _pairs(n, nu=300, ni=60):
    rng = np.random.default_rng(0)
    return [rng.integers(0, nu, n), rng.integers(0, ni, n)]


def test_predict_bar_after_two_seconds_only(capsys, no_notebook, slow, clock):
    model = _mf()
    x = _pairs(5000)
    want = model.predict(x, verbose=0)
    out = model.predict(x, verbose=1, batch_size=100)
    np.testing.assert_array_equal(out, want)
    cap = capsys.readouterr()
    assert cap.err == ""
    assert re.match(rf"^50/50 {BAR * 20} \d+s \d+(?:us|ms|s)/step\n$", cap.out), cap.out
    model.predict(x, verbose=2, batch_size=100)
    assert re.match(r"^50/50 - \d+s - \d+(?:us|ms|s)/step\n$", capsys.readouterr().out)
    for verbose in (0, "auto"):                     # silent; 'auto' off when not interactive
        model.predict(x, verbose=verbose)
        assert capsys.readouterr().out == ""
    clock.step = 0.0                                # a call shorter than 2 s: nothing
    model.predict(x, verbose=1)
    assert capsys.readouterr().out == ""


def test_predict_auto_draws_on_a_terminal(use_tty, slow):
    tty = use_tty()
    _mf().predict(_pairs(3000), batch_size=1000)
    frames = [ANSI.sub("", f) for f in tty.getvalue().split("\r")[1:]]
    assert frames and frames[-1].startswith("3/3 ") and tty.getvalue().endswith("\n")


def test_predict_updates_the_bar_per_chunk_not_per_batch(monkeypatch, slow):
    calls = []
    real = Progbar.update
    monkeypatch.setattr(Progbar, "update", lambda self, *a, **k: (calls.append(a[0]),
                                                                  real(self, *a, **k)))
    _mf().predict(_pairs(60_000), batch_size=1, verbose=1)   # 60,000 batches
    assert 1 < len(calls) <= 60_000 // 1024 + 2 and calls[-1] == 60_000
    assert calls == sorted(calls)


class _Recorder(neurec.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.events = []

    def on_predict_begin(self, logs=None):
        self.events.append(("begin", None, logs))

    def on_predict_batch_begin(self, batch, logs=None):
        self.events.append(("batch_begin", batch, None))

    def on_predict_batch_end(self, batch, logs=None):
        self.events.append(("batch_end", batch, logs["outputs"].copy()))

    def on_predict_end(self, logs=None):
        self.events.append(("end", None, logs))


@pytest.mark.parametrize("n, batch_size", [(20_000, 7), (5, 32), (1024, 1024), (9000, None)])
def test_predict_calls_the_predict_hooks_per_chunk_of_batches(n, batch_size, quick, capsys):
    model = _mf()
    x = _pairs(n)
    rec = _Recorder()
    out = model.predict(x, batch_size=batch_size, callbacks=[rec], verbose=0)
    np.testing.assert_array_equal(out, model.predict(x, verbose=0))
    ev = rec.events
    assert ev[0] == ("begin", None, {}) and ev[-1] == ("end", None, {})
    assert rec.model is model and rec.params["steps"] == -(-n // (batch_size or 32))
    begins = [b for kind, b, _ in ev if kind == "batch_begin"]
    ends = [b for kind, b, _ in ev if kind == "batch_end"]
    steps = -(-n // (batch_size or 32))
    assert [kind for kind, _, _ in ev[1:-1]] == ["batch_begin", "batch_end"] * len(ends)
    assert begins[0] == 0 and ends[-1] == steps - 1
    assert begins[1:] == [e + 1 for e in ends[:-1]]            # consecutive, no gap or overlap
    assert all(b <= e for b, e in zip(begins, ends))
    chunks = [o for kind, _, o in ev if kind == "batch_end"]
    np.testing.assert_array_equal(np.concatenate(chunks), out)  # each chunk's own outputs
    assert capsys.readouterr().out == ""


def test_predict_rejects_bad_verbose_steps_and_callbacks():
    model = _mf()
    with pytest.raises(ValueError, match="predict: verbose"):
        model.predict(_pairs(10), verbose=3)
    with pytest.raises(ValueError, match="steps"):
        model.predict(_pairs(10), steps=2)
    with pytest.raises(TypeError, match="Callback"):
        model.predict(_pairs(10), callbacks=[print])


@pytest.mark.parametrize("zoo", ["MF", "NeuMF"])                # fast path, generic path
def test_recommend_bar(zoo, capsys, no_notebook, slow, clock):
    from neurec import models
    neurec.utils.set_random_seed(1)
    model = getattr(models, zoo)(300, 60)
    users = np.arange(300)
    want = model.recommend(users, k=5, verbose=0)
    assert capsys.readouterr().out == ""
    got = model.recommend(users, k=5, verbose=1)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    out = capsys.readouterr().out
    assert re.match(rf"^300/300 {BAR * 20} \d+s \d+(?:us|ms|s)/user\n$", out), out
    model.recommend(users, k=5, verbose=2)
    assert re.match(r"^300/300 - \d+s - \d+(?:us|ms|s)/user\n$", capsys.readouterr().out)
    clock.step = 0.0
    model.recommend(users, k=5, verbose=1)
    assert capsys.readouterr().out == ""
    with pytest.raises(ValueError, match="recommend: verbose"):
        model.recommend(users, k=5, verbose="loud")


def test_recommend_histories_bars_fold_in_then_ranking(capsys, no_notebook, slow, clock):
    from neurec.models import NeuMF
    neurec.utils.set_random_seed(2)
    model = NeuMF(50, 40)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    histories = [[1, 2, 3], [4, 5], [6]]
    kw = dict(k=3, seed=0, fold_in_options={"epochs": 1})
    want = model.recommend(histories=histories, verbose=0, **kw)
    assert capsys.readouterr().out == ""
    got = model.recommend(histories=histories, verbose=1, **kw)
    np.testing.assert_array_equal(got[0], want[0])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2, lines
    assert re.match(rf"^3/3 {BAR * 20} .*/user - stage: fold-in$", lines[0]), lines
    assert re.match(rf"^3/3 {BAR * 20} \d+s \d+(?:us|ms|s)/user$", lines[1]), lines
    clock.step = 0.0
    model.recommend(histories=histories, verbose=1, **kw)
    assert capsys.readouterr().out == ""


def test_evaluate_bars(capsys, no_notebook, slow, clock):
    from neurec.evaluation import evaluate_full, evaluate_sampled
    model = _mf(40, 30)
    users = np.arange(40)
    pos = np.arange(40) % 30
    neg = np.tile(np.arange(5), (40, 1)) + 20
    kw = dict(n_items=30)
    want = evaluate_full(model, users, pos, None, verbose=0, **kw)
    assert capsys.readouterr().out == ""
    assert evaluate_full(model, users, pos, None, verbose=1, max_block_bytes=1000, **kw) == want
    out = capsys.readouterr().out
    assert re.match(rf"^40/40 {BAR * 20} \d+s \d+(?:us|ms|s)/user\n$", out), out
    evaluate_sampled(model, users, pos, neg, verbose=2)
    assert re.match(r"^40/40 - \d+s - \d+(?:us|ms|s)/user\n$", capsys.readouterr().out)
    clock.step = 0.0
    evaluate_full(model, users, pos, None, verbose=1, **kw)
    evaluate_sampled(model, users, pos, neg, verbose=1)
    assert capsys.readouterr().out == ""
    with pytest.raises(ValueError, match="evaluate_full: verbose"):
        evaluate_full(model, users, pos, None, verbose=7, **kw)


def test_read_csv_bar_in_megabytes(tmp_path, monkeypatch, use_tty, slow, clock):
    from neurec.data import InteractionLog, csv_reader
    path = tmp_path / "log.csv"
    path.write_text("user,item\n" + "".join(f"{u},{u % 7}\n" for u in range(2000)))
    monkeypatch.setattr(csv_reader, "_MB", 1000)           # "MB" of 1,000 bytes
    monkeypatch.setattr(csv_reader, "_SCAN_BLOCK", 1500)   # blocks of ~1.5 of them
    size = path.stat().st_size
    tty = use_tty()
    log = InteractionLog.read_csv(path)
    assert len(log) == 2000 and log.users[-1] == 1999
    frames = [ANSI.sub("", f).split()[0] for f in tty.getvalue().split("\r")[1:]]
    target = -(-size // 1000)
    counts = [int(f.split("/")[0]) for f in frames]
    assert all(f.endswith(f"/{target}") for f in frames) and counts == sorted(counts)
    assert len(set(counts)) > 3 and counts[-1] == target      # moves block by block
    assert "MB" in tty.getvalue()
    tty.truncate(0)
    tty.seek(0)
    InteractionLog.read_csv(path, verbose=0)
    clock.step = 0.0
    InteractionLog.read_csv(path, verbose=1)
    assert tty.getvalue() == ""
    with pytest.raises(ValueError, match="read_csv: verbose"):
        InteractionLog.read_csv(path, verbose="x")


def test_read_csv_bar_on_the_csv_module_path(tmp_path, capsys, no_notebook, slow):
    from neurec.data import InteractionLog
    path = tmp_path / "quoted.csv"
    path.write_text('user,item\n"1",2\n3,"4"\n')               # quotes: the csv module
    log = InteractionLog.read_csv(path, verbose=2)
    assert log.users.tolist() == [1, 3]
    assert re.match(r"^1/1 - \d+s - \d+(?:us|ms|s)/MB\n$", capsys.readouterr().out)
