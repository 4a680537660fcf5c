"""Thread stress: fit, predict, recommend, sampling, save/load and set_num_threads at once.

Several Python threads hammer two models (one shared by three of them) for a bounded time
while another keeps changing the thread count. Nothing may crash, hang or corrupt a result:
predictions of a model nobody trains must stay exactly what they were, recommendations must
equal a brute-force top-K of its scores, and a model saved mid-run must load and predict
like the one it was saved from. ``.ci/sanitize.sh`` runs this under AddressSanitizer/UBSan;
``NEUREC_STRESS_SECONDS`` sets the duration (default 6 s).
"""
from __future__ import annotations

import os
import threading
import time
import traceback

import numpy as np

import neurec
from neurec.data import NegativeSampler
from neurec.data.interactions import InteractionMatrix
from neurec.models import MF, NeuMF, load_model

SECONDS = float(os.environ.get("NEUREC_STRESS_SECONDS", "6"))
N_USERS, N_ITEMS = 300, 400


def _matrix(seed: int = 0) -> InteractionMatrix:
    rng = np.random.default_rng(seed)
    users = rng.integers(0, N_USERS, 6000)
    items = rng.integers(0, N_ITEMS, 6000)
    return InteractionMatrix.from_arrays(users, items, shape=(N_USERS, N_ITEMS))


def test_everything_at_once_from_many_threads(tmp_path):
    matrix = _matrix()
    trained = NeuMF(N_USERS, N_ITEMS, factors=8, layers=(32, 16, 8))
    trained.compile(optimizer="adam", loss="binary_crossentropy")
    frozen = MF(N_USERS, N_ITEMS, factors=16)
    frozen.compile(optimizer="adam", loss="binary_crossentropy")
    frozen.fit(NegativeSampler(matrix, num_negatives=2), epochs=1, batch_size=256, verbose=0)
    rng = np.random.default_rng(1)
    u = rng.integers(0, N_USERS, 20000)
    i = rng.integers(0, N_ITEMS, 20000)
    frozen_pred = frozen.predict([u, i], verbose=0)
    some_users = np.arange(0, N_USERS, 7)
    scores = frozen.predict([np.repeat(some_users, N_ITEMS), np.tile(np.arange(N_ITEMS), len(some_users))],
                            verbose=0).reshape(len(some_users), N_ITEMS)
    old_threads = neurec.get_num_threads()
    deadline = time.monotonic() + SECONDS
    errors: list = []
    counts: dict = {}

    def loop(name, body):
        def run():
            try:
                while time.monotonic() < deadline:
                    body()
                    counts[name] = counts.get(name, 0) + 1
            except BaseException:  # noqa: BLE001 - reported by the main thread
                errors.append(f"in {name}:\n{traceback.format_exc()}")
        return threading.Thread(target=run, name=name)

    def fit_trained():
        trained.fit(NegativeSampler(matrix, num_negatives=2), epochs=1, batch_size=128, verbose=0)

    def predict_frozen():
        np.testing.assert_array_equal(frozen.predict([u, i], verbose=0), frozen_pred)

    def recommend_frozen():
        ids, top = frozen.recommend(some_users, k=5)
        np.testing.assert_allclose(top, -np.sort(-scores, axis=1)[:, :5], rtol=1e-5, atol=1e-6)

    def predict_trained():
        out = trained.predict([u, i], verbose=0)
        assert out.shape == (len(u), 1) and np.all(np.isfinite(out))

    def save_load():
        path = tmp_path / f"m{threading.get_ident()}.neurec"
        frozen.save(path)
        np.testing.assert_array_equal(load_model(path).predict([u, i], verbose=0), frozen_pred)

    def threads_knob():
        neurec.set_num_threads(int(rng.integers(1, 5)))
        time.sleep(0.005)

    workers = [loop("fit", fit_trained), loop("predict", predict_frozen),
               loop("recommend", recommend_frozen), loop("predict-trained", predict_trained),
               loop("save-load", save_load), loop("threads", threads_knob)]
    try:
        for w in workers:
            w.start()
        for w in workers:
            w.join(SECONDS + 120)
        hung = [w.name for w in workers if w.is_alive()]
    finally:
        neurec.set_num_threads(old_threads)
    assert not hung, f"threads still running long after the deadline: {hung}"
    assert not errors, "\n".join(errors)
    assert set(counts) == {w.name for w in workers}, counts  # every kind of call ran


def test_fresh_model_used_from_two_threads_at_once_builds_one_plan():
    """Regression: fit and predict on a model nobody had used yet both built its plan and
    optimizer state (IndexError in one thread, 'optimizer slot 0 ... has 3200 values,
    expected 2400' in the other): found by the stress test under ASan in CI."""
    matrix = _matrix()
    rng = np.random.default_rng(2)
    u, i = rng.integers(0, N_USERS, 5000), rng.integers(0, N_ITEMS, 5000)
    for trial in range(20):
        model = NeuMF(N_USERS, N_ITEMS, factors=8, layers=(32, 16, 8))
        model.compile(optimizer="adam", loss="binary_crossentropy")
        barrier = threading.Barrier(3)
        errors: list = []

        def run(fn, barrier=barrier, errors=errors):
            try:
                barrier.wait(30)
                fn()
            except BaseException:  # noqa: BLE001 - reported below
                errors.append(traceback.format_exc())

        calls = [lambda m=model: m.fit(NegativeSampler(matrix, num_negatives=1), epochs=1,
                                       batch_size=512, verbose=0),
                 lambda m=model: m.predict([u, i], verbose=0),
                 lambda m=model: m.predict([u[:100], i[:100]], verbose=0)]
        threads = [threading.Thread(target=run, args=(c,)) for c in calls]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors, f"trial {trial}:\n" + "\n".join(errors)
