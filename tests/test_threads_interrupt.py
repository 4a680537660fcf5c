"""Threads, the GIL and Ctrl-C."""
import _thread
import threading
import time

import numpy as np
import pytest

import neurec
from neurec import callbacks
from neurec.models import NeuMF


def big_data(n=400_000, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 500, n), rng.integers(0, 400, n), (rng.random(n) < 0.3).astype(np.float32)


def test_set_num_threads_and_env(monkeypatch):
    old = neurec.get_num_threads()
    neurec.set_num_threads(3)
    assert neurec.get_num_threads() == 3
    neurec.set_num_threads(old)
    for bad in (0, -1, 1.5, "2", True):
        with pytest.raises(ValueError, match="positive integer"):
            neurec.set_num_threads(bad)


def test_env_var_sets_default_threads(tmp_path):
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", "import neurec; print(neurec.get_num_threads())"],
                         env={**__import__("os").environ, "NEUREC_NUM_THREADS": "3"},
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "3"


class TimedPlan:
    """Wraps a compiled plan to mark when the main thread is inside ``Plan.fit``'s C call."""

    def __init__(self, plan):
        self._plan, self.in_c, self.calls = plan, False, 0

    def fit(self, *args, **kwargs):
        self.in_c = True
        try:
            return self._plan.fit(*args, **kwargs)
        finally:
            self.in_c = False
            self.calls += 1

    def __getattr__(self, name):
        return getattr(self._plan, name)


def test_fit_releases_the_gil(one_thread):
    """A Python thread keeps running while fit's C chunks run: it ticks many times while
    the main thread is inside the C call. With the GIL held it could tick at most at the
    call's edges (about once per call), whatever the machine's speed."""
    u, i, y = big_data()
    model = NeuMF(500, 400)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    wrapper = TimedPlan(model._get_plan())
    model._plan = wrapper
    in_c_ticks = [0]
    done = threading.Event()

    def ticker():
        while not done.is_set():
            if wrapper.in_c:
                in_c_ticks[0] += 1
            time.sleep(0.0005)

    t = threading.Thread(target=ticker)
    t.start()
    try:
        model.fit([u, i], y, epochs=1, batch_size=256, verbose=0)
    finally:
        done.set()
        t.join()
        model._plan = wrapper._plan
    assert wrapper.calls >= 2
    assert in_c_ticks[0] > 3 * wrapper.calls + 10


def _interrupt_after_first_chunk():
    """A callback and a thread that sends a real SIGINT-equivalent (``interrupt_main``) once
    the first chunk has trained; no timer, so no assumption about the machine's speed."""
    first = threading.Event()
    cb = callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: first.set())

    def send():
        first.wait()
        _thread.interrupt_main()

    t = threading.Thread(target=send, daemon=True)
    t.start()
    return cb, t


def _row_steps_max(model):
    return max(int(s[3].max()) for s in model.optimizer._slots if s[3] is not None)


def test_ctrl_c_stops_fit_cleanly():
    u, i, y = big_data(200_000)
    model = NeuMF(500, 400)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    cb, sender = _interrupt_after_first_chunk()
    with pytest.raises(KeyboardInterrupt):
        model.fit([u, i], y, epochs=200, batch_size=256, verbose=0, callbacks=[cb])
    sender.join()
    steps = model.optimizer.iterations
    assert 0 < steps < 200 * 782  # stopped, long before the 200 epochs
    assert _row_steps_max(model) == steps  # the last chunk's steps were counted
    for w in model.get_weights():
        assert np.all(np.isfinite(w))
    # the model is consistent and keeps training
    h = model.fit([u[:5000], i[:5000]], y[:5000], epochs=1, batch_size=256, verbose=0)
    assert np.isfinite(h.history["loss"][0])
    assert model.optimizer.iterations == steps + 20
    assert _row_steps_max(model) == steps + 20


def _train(threads, hogwild, seed=3):
    neurec.set_num_threads(threads)
    neurec.utils.set_random_seed(seed)
    u, i, y = big_data(20_000, seed=1)
    y = ((u + i) % 2).astype(np.float32)
    model = NeuMF(500, 400)
    model.compile(optimizer="adam", loss="binary_crossentropy", hogwild=hogwild)
    h = model.fit([u, i], y, epochs=2, batch_size=256, verbose=0, seed=5)
    return model.get_weights(), h.history["loss"]


def test_table_updates_do_not_depend_on_thread_count_and_hogwild_trains():
    old = neurec.get_num_threads()
    try:
        w1, l1 = _train(1, False)
        w1h, _ = _train(1, True)
        for a, b in zip(w1, w1h):  # one thread: Hogwild is the same computation
            np.testing.assert_array_equal(a, b)
        w2, l2 = _train(2, False)
        w2b, _ = _train(2, False)
        for a, b in zip(w2, w2b):  # deterministic for a fixed thread count
            np.testing.assert_array_equal(a, b)
        _, l2h = _train(2, True)
        # batch-level Hogwild: each thread steps its own batches against the shared weights,
        # racing with the other; it trains as well, along another path
        assert l2h[-1] < l2h[0] - 0.1 and abs(l2h[-1] - l1[-1]) < 0.25
        assert abs(l2[-1] - l1[-1]) < 1e-3
    finally:
        neurec.set_num_threads(old)


def test_batch_level_hogwild_counts_every_batch_and_stops_on_ctrl_c():
    """With hogwild=True and 2 threads each thread trains whole batches on its own."""
    old = neurec.get_num_threads()
    try:
        neurec.set_num_threads(2)
        u, i, y = big_data(20_000, seed=2)
        y = ((u + i) % 2).astype(np.float32)
        model = NeuMF(500, 400)
        model.compile(optimizer="adam", loss="binary_crossentropy", hogwild=True)
        h = model.fit([u, i], y, epochs=3, batch_size=256, verbose=0, seed=1)
        assert model.optimizer.iterations == 3 * 79  # ceil(20000 / 256) batches per epoch
        assert h.history["loss"][-1] < h.history["loss"][0] - 0.1
        for w in model.get_weights():
            assert np.all(np.isfinite(w))

        bu, bi, by = big_data(200_000)
        cb, sender = _interrupt_after_first_chunk()
        with pytest.raises(KeyboardInterrupt):
            model.fit([bu, bi], by, epochs=200, batch_size=256, verbose=0, callbacks=[cb])
        sender.join()
        steps = model.optimizer.iterations
        assert 3 * 79 < steps < 3 * 79 + 200 * 782
        # two threads race on the last rows: one may be written last by the older batch
        assert steps - 1 <= _row_steps_max(model) <= steps
        h = model.fit([u[:5000], i[:5000]], y[:5000], epochs=1, batch_size=256, verbose=0)
        assert np.isfinite(h.history["loss"][0])
        assert model.optimizer.iterations == steps + 20
    finally:
        neurec.set_num_threads(old)
