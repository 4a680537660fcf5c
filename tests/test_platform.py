"""The build's platform layer: SIMD dispatch, show_config, thread pools, fork.

The kernels are compiled once per SIMD level and one is chosen at run time
(``csrc/include/neurec/nr_simd.h``); every level this CPU can run is checked
here against the NumPy reference and against the others. The thread pools are
borrowed per call (concurrent calls run concurrently, one call per model at a
time) and rebuilt in a forked child.
"""
from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import neurec
from neurec import _core, _reference
from neurec.models import NeuMF

LEVEL_ORDER = {"sse2": 0, "neon": 0, "generic": 0, "avx2": 1, "avx512": 2}


def _runnable_levels() -> list[str]:
    info = _core.build_info()
    best = LEVEL_ORDER[info["simd_supported"]]
    return [lv for lv in info["simd_compiled"] if LEVEL_ORDER[lv] <= best]


@pytest.fixture
def restore_level():
    before = _core.build_info()["simd_level"]
    yield
    _core._set_simd_level(before)


def _data(n=3000, users=50, items=80, seed=0):
    rng = np.random.default_rng(seed)
    u = rng.integers(0, users, n).astype(np.int64)
    i = rng.integers(0, items, n).astype(np.int64)
    y = (rng.random(n) < 0.3).astype(np.float32)
    return u, i, y


def _train_at(level: str, seed: int = 3):
    """Weights and predictions of a small NeuMF trained at one SIMD level, 1 thread."""
    assert _core._set_simd_level(level) == level
    u, i, y = _data()
    old = neurec.get_num_threads()
    neurec.set_num_threads(1)
    try:
        neurec.utils.set_random_seed(seed)
        model = NeuMF(50, 80, factors=8, layers=(32, 16, 8))
        model.compile(optimizer="adam", loss="binary_crossentropy")
        model.fit([u, i], y, epochs=2, batch_size=64, verbose=0, seed=seed)
        pred = model.predict([u[:500], i[:500]], verbose=0)
    finally:
        neurec.set_num_threads(old)
    return model, [w.copy() for w in model.get_weights()], pred


# ---- show_config --------------------------------------------------------------------------------


def test_show_config_reports_compiler_levels_and_threads(capsys):
    cfg = neurec.show_config(mode="dicts")
    assert cfg["neurec"]["version"] == neurec.__version__
    assert cfg["build"]["compiler"].split()[0] in ("gcc", "clang", "msvc")
    simd = cfg["simd"]
    assert simd["level"] in simd["compiled"] and simd["supported"] in simd["compiled"]
    assert LEVEL_ORDER[simd["level"]] <= LEVEL_ORDER[simd["supported"]]
    assert cfg["threads"]["num_threads"] == neurec.get_num_threads()
    assert cfg["machine"]["cpu_count"] >= 1
    assert neurec.show_config() is None
    out = capsys.readouterr().out
    assert "simd:" in out and f"level: {simd['level']}" in out and "compiler:" in out


def test_show_config_rejects_unknown_mode():
    with pytest.raises(ValueError, match="mode must be 'stdout' or 'dicts'"):
        neurec.show_config(mode="json")


def test_set_simd_level_rejects_unknown_names():
    with pytest.raises(ValueError, match="use 'baseline', 'avx2' or 'avx512'"):
        _core._set_simd_level("avx")


# ---- every SIMD level ---------------------------------------------------------------------------


@pytest.mark.parametrize("level", _runnable_levels())
def test_each_simd_level_matches_the_numpy_reference(level, restore_level):
    model, _, pred = _train_at(level)
    u, i, _ = _data()
    ref, _ = _reference.forward(model, [u[:500, None], i[:500, None]])
    np.testing.assert_allclose(pred, ref, rtol=1e-4, atol=1e-5)


def test_simd_levels_train_alike(restore_level):
    levels = _runnable_levels()
    if len(levels) < 2:
        pytest.skip("this CPU runs one SIMD level only")
    runs = {lv: _train_at(lv) for lv in levels}
    # AVX2 and AVX-512 sum in the same order with fused multiply-adds: bit for bit.
    if "avx2" in runs and "avx512" in runs:
        for a, b in zip(runs["avx2"][1], runs["avx512"][1]):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(runs["avx2"][2], runs["avx512"][2])
    # The baseline rounds without FMA: the same training up to float rounding.
    base = runs[levels[0]]
    for lv in levels[1:]:
        for a, b in zip(base[1], runs[lv][1]):
            np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-4)
        np.testing.assert_allclose(base[2], runs[lv][2], rtol=1e-3, atol=1e-4)


def _python(code: str, **env) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k != "NEUREC_SIMD"}
    full.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=full, timeout=120)


def test_neurec_simd_environment_variable_caps_the_level():
    code = "import neurec; print(neurec.show_config(mode='dicts')['simd']['level'])"
    supported = _core.build_info()["simd_supported"]
    base = _core.build_info()["simd_compiled"][0]
    r = _python(code, NEUREC_SIMD="baseline")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == base
    r = _python(code, NEUREC_SIMD="AVX2")
    assert r.stdout.strip() == ("avx2" if LEVEL_ORDER[supported] >= 1 else base)
    r = _python(code)  # no cap: the best the CPU has
    assert r.stdout.strip() == supported


def test_unknown_neurec_simd_value_warns_and_is_ignored():
    r = _python("import warnings, neurec\n"
                "print(neurec.show_config(mode='dicts')['simd']['level'])",
                NEUREC_SIMD="sse9")
    assert r.returncode == 0, r.stderr
    assert "NEUREC_SIMD='sse9' is not a SIMD level" in r.stderr
    assert r.stdout.strip() == _core.build_info()["simd_supported"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ELF symbol tables only")
def test_extension_module_uses_no_gnu_ifunc():
    """Regression: target_clones made GNU ifunc symbols, which musl's loader rejects
    ("unsupported relocation type 37")."""
    import shutil
    if shutil.which("readelf") is None:
        pytest.skip("readelf (binutils) is not installed")
    out = subprocess.run(["readelf", "-Ws", _core.__file__], capture_output=True, text=True,
                         check=True).stdout
    assert "FUNC" in out
    assert "IFUNC" not in out, [ln for ln in out.splitlines() if "IFUNC" in ln][:5]


# ---- thread pools -------------------------------------------------------------------------------


def _model(seed=0, users=2000, items=3000, layers=(64, 32, 16, 8)):
    neurec.utils.set_random_seed(seed)
    m = NeuMF(users, items, factors=8, layers=layers)
    m.compile(optimizer="adam", loss="binary_crossentropy")
    return m


def _predict_in_one_c_call(model, u, i) -> np.ndarray:
    """Like model.predict, but as ONE call into C (Model.predict splits the work into
    ~0.1 s calls so that Ctrl-C gets through), which holds its pool and the model's lock
    from start to end."""
    from neurec.models import _data
    plan = model._get_plan()
    inputs = _data.prepare_inputs(model, [u, i], model._builder)
    out = np.empty((len(u), 1), dtype=np.float32)
    plan.predict(inputs, out)
    return out


def test_set_num_threads_racing_predictions_is_safe():
    """Regression: set_num_threads freed the pool another thread was running on."""
    model = _model()
    rng = np.random.default_rng(1)
    u = rng.integers(0, 2000, 20000)
    i = rng.integers(0, 3000, 20000)
    expected = model.predict([u, i], verbose=0)
    old = neurec.get_num_threads()
    stop = threading.Event()
    errors: list = []
    counts = [0, 0]

    def predictor(k):
        try:
            while not stop.is_set():
                np.testing.assert_allclose(model.predict([u, i], verbose=0), expected,
                                           rtol=1e-5, atol=1e-6)
                counts[k] += 1
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=predictor, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    try:
        for n in [1, 3, 2, 4, 1, 2] * 8:
            neurec.set_num_threads(n)
            time.sleep(0.01)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
        neurec.set_num_threads(old)
    assert not errors, errors[0]
    assert min(counts) >= 1


def test_two_models_run_concurrently_not_queued():
    """Regression: one global lock serialised every C call of every model.

    While one long C call runs on one model, short calls on another model are issued one
    after another; each must end before the long call does. Behind a global lock only a
    short call that happened to start before the long one entered C could end first, so
    the check holds for all of them only if calls really run side by side (no timing
    threshold: the long call, a wide tower on 3M samples, takes ~1 s and the short ones
    ~1 ms)."""
    long_model = _model(0, layers=(256, 128, 64, 32))
    short_model = _model(1, users=50, items=50)
    rng = np.random.default_rng(2)
    n_long = 3_000_000
    lu, li = rng.integers(0, 2000, n_long), rng.integers(0, 3000, n_long)
    su, si = rng.integers(0, 50, 2000), rng.integers(0, 50, 2000)
    stamps: dict = {}
    started = threading.Event()

    def run_long():
        started.set()
        _predict_in_one_c_call(long_model, lu, li)
        stamps["long_end"] = time.perf_counter()

    t = threading.Thread(target=run_long)
    t.start()
    started.wait(30)
    short_ends = []
    for _ in range(5):
        time.sleep(0.02)
        short_model.predict([su, si], verbose=0)
        short_ends.append(time.perf_counter())
    t.join(120)
    assert "long_end" in stamps
    # queued behind the long call, the later short calls would end after it
    assert max(short_ends) < stamps["long_end"], (short_ends, stamps)


def test_one_model_from_two_threads_gives_each_caller_its_own_result():
    model = _model()
    rng = np.random.default_rng(3)
    inputs = [(rng.integers(0, 2000, 50000), rng.integers(0, 3000, 50000)) for _ in range(4)]
    expected = [model.predict(list(x), verbose=0) for x in inputs]
    results: dict = {}

    def work(k):
        for rep in range(5):
            results[(k, rep)] = model.predict(list(inputs[(k + rep) % 4]), verbose=0)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(results) == 15
    for (k, rep), got in results.items():
        np.testing.assert_array_equal(got, expected[(k + rep) % 4])


def _child_predict(model, u, i, queue):
    queue.put(model.predict([u, i], verbose=0))


def _predict_in_forked_child(model, u, i) -> np.ndarray:
    """model.predict([u, i]) in a fork()ed child; fails (and kills it) if it hangs."""
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child_predict, args=(model, u, i, queue))
    child.start()
    try:
        got = queue.get(timeout=120)
        child.join(60)
    finally:
        if child.is_alive():  # hung: do not leave it spinning
            child.kill()
    assert child.exitcode == 0
    return got


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork() on this platform")
def test_forked_child_can_predict_with_the_parents_model():
    """Regression: the child's first predict spun forever on the parent's pool."""
    model = _model()
    rng = np.random.default_rng(4)
    u, i = rng.integers(0, 2000, 50000), rng.integers(0, 3000, 50000)
    old = neurec.get_num_threads()
    neurec.set_num_threads(2)  # the parent's pool has worker threads before the fork
    try:
        expected = model.predict([u, i], verbose=0)
        got = _predict_in_forked_child(model, u, i)
    finally:
        neurec.set_num_threads(old)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork() on this platform")
def test_fork_while_another_thread_predicts_with_the_same_model():
    """The model's lock was held by a thread that does not exist in the child."""
    model = _model()
    rng = np.random.default_rng(5)
    big_u, big_i = rng.integers(0, 2000, 3_000_000), rng.integers(0, 3000, 3_000_000)
    u, i = rng.integers(0, 2000, 5000), rng.integers(0, 3000, 5000)
    expected = model.predict([u, i], verbose=0)
    started = threading.Event()

    def busy():
        started.set()
        _predict_in_one_c_call(model, big_u, big_i)

    t = threading.Thread(target=busy)
    t.start()
    started.wait(30)
    time.sleep(0.05)  # inside the C call, holding the model's lock
    try:
        got = _predict_in_forked_child(model, u, i)
    finally:
        t.join(120)
    np.testing.assert_array_equal(got, expected)
