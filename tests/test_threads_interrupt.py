"""Threads, the GIL and Ctrl-C."""
import _thread
import threading
import time

import numpy as np
import pytest

import neurec
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


def test_fit_releases_the_gil():
    u, i, y = big_data()
    model = NeuMF(500, 400)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    ticks = []
    done = threading.Event()

    def ticker():
        while not done.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.005)

    t = threading.Thread(target=ticker)
    t.start()
    start = time.perf_counter()
    model.fit([u, i], y, epochs=1, batch_size=256, verbose=0)
    elapsed = time.perf_counter() - start
    done.set()
    t.join()
    # the ticker ran throughout the C loops, not only between chunks
    assert elapsed > 0.2
    gaps = np.diff([x for x in ticks if start <= x <= start + elapsed])
    assert len(gaps) > 10 and gaps.max() < 0.15


def test_ctrl_c_stops_fit_cleanly():
    u, i, y = big_data(1_000_000)
    model = NeuMF(500, 400)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    timer = threading.Timer(0.3, _thread.interrupt_main)
    timer.start()
    start = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        model.fit([u, i], y, epochs=50, batch_size=256, verbose=0)
    assert time.perf_counter() - start < 3.0  # stopped promptly, not after 50 epochs
    timer.cancel()
    steps = model.optimizer.iterations
    assert steps > 0
    for w in model.get_weights():
        assert np.all(np.isfinite(w))
    # the model is consistent and keeps training
    h = model.fit([u[:5000], i[:5000]], y[:5000], epochs=1, batch_size=256, verbose=0)
    assert np.isfinite(h.history["loss"][0])
    assert model.optimizer.iterations == steps + 20


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

        bu, bi, by = big_data(1_000_000)
        timer = threading.Timer(0.3, _thread.interrupt_main)
        timer.start()
        start = time.perf_counter()
        with pytest.raises(KeyboardInterrupt):
            model.fit([bu, bi], by, epochs=50, batch_size=256, verbose=0)
        assert time.perf_counter() - start < 3.0
        timer.cancel()
        steps = model.optimizer.iterations
        assert steps > 3 * 79
        h = model.fit([u[:5000], i[:5000]], y[:5000], epochs=1, batch_size=256, verbose=0)
        assert np.isfinite(h.history["loss"][0])
        assert model.optimizer.iterations == steps + 20
    finally:
        neurec.set_num_threads(old)
