"""Regression tests of issue 9 (hardening): each test is named after the defect it pins.

Model files, text files and public attributes are untrusted input: a bad value must raise a
Python exception that names the argument and the fix, never crash, hang or exhaust memory.
"""
import io
import json
import os
import stat
import sys
import threading
import time
import tracemalloc
import zipfile

import numpy as np
import pytest

import neurec
from neurec import optimizers
from neurec.data import InteractionLog, NegativeSampler, read_ncf, write_ncf
from neurec.layers import Dense, Embedding, Flatten, Input
from neurec.models import GMF, MF, Model, load_model

LINUX = sys.platform.startswith("linux")


def tiny(optimizer="adam", n=200, seed=0, fit=True):
    m = GMF(20, 15, factors=4)
    m.compile(optimizer=optimizer, loss="binary_crossentropy")
    rng = np.random.default_rng(seed)
    x = [rng.integers(0, 20, n), rng.integers(0, 15, n)]
    y = (rng.random(n) < 0.5).astype(np.float32)
    if fit:
        m.fit(x, y, epochs=1, batch_size=32, verbose=0, seed=1)
    return m, x, y


def members(path):
    with zipfile.ZipFile(path) as z:
        return {n: z.read(n) for n in z.namelist()}


def rewrite(path, items, compression=zipfile.ZIP_STORED):
    """Write a zip of (name, bytes) pairs (duplicates allowed) to path."""
    with zipfile.ZipFile(path, "w", compression=compression) as z:
        for name, data in items:
            z.writestr(name, data)


def npy(a):
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


def saved(tmp_path, optimizer="adam", name="m.neurec"):
    m, x, y = tiny(optimizer)
    path = tmp_path / name
    m.save(path)
    return m, x, y, path


def edited(tmp_path, path, edit, name="bad.neurec"):
    files = members(path)
    edit(files)
    out = tmp_path / name
    rewrite(out, list(files.items()))
    return out


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# --------------------------------------------------------------- 1: step counts
def test_negative_iterations_in_model_file_raises_not_segfaults(tmp_path):
    _, _, _, path = saved(tmp_path)
    bad = edited(tmp_path, path,
                 lambda f: f.__setitem__("optimizer/00000.npy", npy(np.array([-70000], np.int64))))
    with pytest.raises(ValueError, match="iterations"):
        load_model(bad)


def test_float_iterations_in_model_file_raises(tmp_path):
    _, _, _, path = saved(tmp_path)
    bad = edited(tmp_path, path,
                 lambda f: f.__setitem__("optimizer/00000.npy", npy(np.array([3.5]))))
    with pytest.raises(ValueError, match="iterations"):
        load_model(bad)


@pytest.mark.parametrize("value", [-1, -70000, 2**63 - 1, 2.5, "3", None])
def test_optimizer_iterations_attribute_is_range_checked(value):
    opt = optimizers.Adam()
    with pytest.raises((ValueError, TypeError), match="iterations"):
        opt.iterations = value
    opt.iterations = np.int64(5)
    assert opt.iterations == 5 and type(opt.iterations) is int


def test_negative_iterations_reaching_c_returns_a_status_not_a_crash():
    m, x, y = tiny()
    plan = m._get_plan()
    arrays = [np.ascontiguousarray(a.reshape(-1, 1), dtype=np.int64) for a in x]
    labels = y.reshape(-1, 1)
    idx = np.arange(y.size, dtype=np.int64)
    for bad in (-70000, 2**63 - 2):
        step = np.array([bad], np.int64)
        with pytest.raises(ValueError, match="step"):
            plan.fit(arrays, labels, idx, 32, step, 0)


def test_lazy_adam_negative_row_steps_in_model_file_raise(tmp_path):
    m, x, y = tiny(optimizers.Adam(catch_up=False))
    path = tmp_path / "m.neurec"
    m.save(path)
    files = members(path)
    # variables(): iterations, then per weight (m, v, row_steps for tables)
    steps = [n for n, b in files.items() if n.startswith("optimizer/")
             and np.load(io.BytesIO(b)).dtype == np.int64 and n != "optimizer/00000.npy"]
    assert steps, "lazy Adam should save per-row step counts"
    rs = np.load(io.BytesIO(files[steps[0]]))
    rs[3] = -100000
    files[steps[0]] = npy(rs)
    bad = tmp_path / "bad.neurec"
    rewrite(bad, list(files.items()))
    with pytest.raises(ValueError, match="step"):
        load_model(bad)


def test_lazy_adam_corrupted_row_steps_in_memory_never_index_out_of_bounds():
    # the C core must stay in bounds even when the live arrays are scribbled on
    m, x, y = tiny(optimizers.Adam(catch_up=False))
    for s in m.optimizer._slots:
        if s[3] is not None:
            s[3][:] = -100000
            s[3][1] = 2**63 - 1
    m.fit(x, y, epochs=1, batch_size=32, verbose=0)
    assert all(np.isfinite(w).all() for w in m.get_weights())


def test_catch_up_row_steps_from_the_future_are_harmless():
    m, x, y = tiny(optimizers.Adam())
    for s in m.optimizer._slots:
        if s[3] is not None:
            s[3][:] = 2**62
    m.fit(x, y, epochs=1, batch_size=32, verbose=0)
    assert all(np.isfinite(w).all() for w in m.get_weights())


@pytest.mark.parametrize("catch_up", [True, False])
def test_saved_model_loads_after_iterations_were_reset(tmp_path, catch_up):
    """Regression: resetting iterations to 0 and training on left per-row steps above
    iterations, which save wrote and load_model then refused (an unloadable file)."""
    m, x, y = tiny(optimizers.Adam(catch_up=catch_up))
    m.optimizer.iterations = 0
    m.fit([a[:64] for a in x], y[:64], epochs=1, batch_size=32, verbose=0)
    path = tmp_path / "reset.neurec"
    m.save(path)
    loaded = load_model(path)
    assert loaded.optimizer.iterations == m.optimizer.iterations
    for a, b in zip(loaded.optimizer.variables(), m.optimizer.variables()):
        np.testing.assert_array_equal(a, b)


def test_float64_weights_beyond_float32_range_are_rejected(tmp_path):
    """Regression: 1e39 in a float64 member passed the finiteness check and became inf."""
    m, x, y = tiny()
    path = tmp_path / "m.neurec"
    m.save(path)
    files = members(path)
    w = np.load(io.BytesIO(files["weights/00000.npy"])).astype(np.float64)
    w.flat[0] = 1e39
    files["weights/00000.npy"] = npy(w)
    bad = tmp_path / "bad.neurec"
    rewrite(bad, list(files.items()))
    with pytest.raises(ValueError, match="NaN or inf|range"):
        load_model(bad)


# --------------------------------------------------------------- 3: overflow in reserve
def test_fit_batch_size_2_pow_62_does_not_overflow():
    m, x, y = tiny()
    h = m.fit(x, y, epochs=1, batch_size=2**62, verbose=0)
    assert np.isfinite(h.history["loss"][0])


def test_plan_fit_with_huge_batch_sizes_trains_one_batch_not_a_heap_overflow():
    # the C core caps the batch at the sample count; nr_plan_reserve's own size checks
    # are pinned by csrc/tests/test_core.c (regress_reserve_overflow_and_bad_steps)
    m, x, y = tiny()
    plan = m._get_plan()
    arrays = [np.ascontiguousarray(a.reshape(-1, 1), dtype=np.int64) for a in x]
    idx = np.arange(y.size, dtype=np.int64)
    for bs in (2**62, 2**61 + 3, 2**63 - 1):
        step = np.array([7], np.int64)
        st = plan.fit(arrays, y.reshape(-1, 1), idx, bs, step, 0)
        assert step[0] == 8 and st["samples"] == y.size


@pytest.mark.skipif(not LINUX, reason="reads /proc/self/statm")
def test_batch_size_is_capped_by_the_sample_count():
    m, x, y = tiny(n=2000)
    before = rss_bytes()
    m.fit(x, y, epochs=1, batch_size=10**6, verbose=0)
    # 10**6 rows of scratch would be > 100 MB; 2,000 rows are a few hundred KB
    assert rss_bytes() - before < 50 * 2**20


# --------------------------------------------------------------- 4: hogwild with > 256 threads
def test_hogwild_with_300_threads_stays_in_bounds():
    old = neurec.get_num_threads()
    try:
        neurec.set_num_threads(300)
        m = GMF(50, 40, factors=4)
        m.compile(optimizer="adam", loss="binary_crossentropy", hogwild=True)
        rng = np.random.default_rng(0)
        n = 300 * 8 * 4
        x = [rng.integers(0, 50, n), rng.integers(0, 40, n)]
        y = (rng.random(n) < 0.5).astype(np.float32)
        h = m.fit(x, y, epochs=1, batch_size=8, verbose=0)
        assert m.optimizer.iterations == n // 8
        assert np.isfinite(h.history["loss"][0])
    finally:
        neurec.set_num_threads(old)


# --------------------------------------------------------------- 6: denial of service
def failed_load_peak(path, match=None):
    """Peak bytes tracemalloc sees allocated while ``load_model(path)`` raises ValueError."""
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=match):
            load_model(path)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_huge_embedding_in_small_model_file_fails_before_allocating(tmp_path):
    _, _, _, path = saved(tmp_path)

    def grow(files):
        cfg = json.loads(files["config.json"])
        for layer in cfg["model"]["layers"]:
            if layer["class_name"] == "Embedding":
                layer["config"]["input_dim"] = 100_000_000
                break
        files["config.json"] = json.dumps(cfg).encode()

    bad = edited(tmp_path, path, grow)
    assert os.path.getsize(bad) < 64 * 1024
    t0 = time.perf_counter()
    peak = failed_load_peak(bad, match="input_dim|shape")
    assert time.perf_counter() - t0 < 5.0
    assert peak < 16 * 2**20, f"loading allocated {peak / 2**20:.0f} MB before failing"


def test_npy_header_declaring_a_huge_array_fails_before_allocating(tmp_path):
    _, _, _, path = saved(tmp_path)
    header = b"{'descr': '<f4', 'fortran_order': False, 'shape': (100000000, 4), }"
    header += b" " * (118 - len(header)) + b"\n"
    fake = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + b"\0" * 64
    bad = edited(tmp_path, path, lambda f: f.__setitem__("weights/00000.npy", fake))
    assert failed_load_peak(bad, match="weights/00000.npy") < 16 * 2**20


def test_compressed_members_are_rejected(tmp_path):
    _, _, _, path = saved(tmp_path)
    bad = tmp_path / "deflated.neurec"
    rewrite(bad, list(members(path).items()), compression=zipfile.ZIP_DEFLATED)
    with pytest.raises(ValueError, match="compressed"):
        load_model(bad)


def test_zip_bomb_member_is_rejected_without_inflating(tmp_path):
    _, _, _, path = saved(tmp_path)
    files = members(path)
    bad = tmp_path / "bomb.neurec"
    with zipfile.ZipFile(bad, "w") as z:
        for n, b in files.items():
            z.writestr(n, b)
        z.writestr("weights/99999.npy", b"\0" * (64 * 2**20), compress_type=zipfile.ZIP_DEFLATED)
    assert os.path.getsize(bad) < 2**20
    assert failed_load_peak(bad) < 16 * 2**20


def test_duplicate_config_json_is_rejected(tmp_path):
    _, _, _, path = saved(tmp_path)
    files = members(path)
    bad = tmp_path / "dup.neurec"
    items = list(files.items()) + [("config.json", files["config.json"])]
    with pytest.warns(UserWarning, match="Duplicate"):
        rewrite(bad, items)
    with pytest.raises(ValueError, match="config.json.*more than once|more than once.*config.json"):
        load_model(bad)


def test_unexpected_member_names_are_rejected(tmp_path):
    _, _, _, path = saved(tmp_path)
    bad = edited(tmp_path, path, lambda f: f.__setitem__("payload.bin", b"x" * 10))
    with pytest.raises(ValueError, match="payload.bin"):
        load_model(bad)


@pytest.mark.skipif(not LINUX, reason="reads /proc/self/statm")
def test_csv_line_longer_than_the_limit_fails_with_line_number(tmp_path):
    from neurec.data.interactions import MAX_LINE_BYTES
    path = tmp_path / "long.csv"
    with open(path, "wb") as f:
        f.write(b"user,item\n1,2\n3," + b"9" * (MAX_LINE_BYTES + 10) + b"\n4,5\n")
    before = rss_bytes()
    with pytest.raises(ValueError, match=r"line 3.*" + str(MAX_LINE_BYTES)) as e:
        InteractionLog.read_csv(path)
    assert len(str(e.value)) < 500
    assert rss_bytes() - before < 8 * MAX_LINE_BYTES + 64 * 2**20


@pytest.mark.parametrize("eol", [b"\r", b"\r\n"])
def test_csv_with_cr_line_ends_over_the_limit_in_total_still_reads(tmp_path, eol):
    """Regression: only LF ended a line, so a CR-only file longer than MAX_LINE_BYTES in
    total was one 'line' too long."""
    from neurec.data.interactions import MAX_LINE_BYTES
    n = MAX_LINE_BYTES // 4 + 1000
    path = tmp_path / "cr.csv"
    path.write_bytes(b"user,item" + eol + b"".join(b"%d,%d" % (k % 97, k % 89) + eol
                                                     for k in range(n)))
    assert path.stat().st_size > MAX_LINE_BYTES
    log = InteractionLog.read_csv(path, user_col="user", item_col="item")
    assert len(log) == n
    # and a too-long line is still numbered right (lines 1-3 are short, line 4 long)
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"user,item" + eol + b"1,2" + eol + b"3,4" + eol + b"5,"
                    + b"9" * (MAX_LINE_BYTES + 10) + eol)
    with pytest.raises(ValueError, match=r"line 4\b"):
        InteractionLog.read_csv(bad, user_col="user", item_col="item")


def test_csv_quoted_field_longer_than_the_limit_fails_clearly(tmp_path):
    from neurec.data.interactions import MAX_LINE_BYTES
    path = tmp_path / "long.csv"
    with open(path, "wb") as f:
        f.write(b'user,item\n1,2\n"3",' + b"9" * (MAX_LINE_BYTES + 10) + b"\n")
    with pytest.raises(ValueError, match=r"line 3.*" + str(MAX_LINE_BYTES)):
        InteractionLog.read_csv(path)


def ncf_files(tmp_path, train):
    """Prefix of NCF files whose train file holds ``train``, with one valid test case."""
    prefix = tmp_path / "d"
    (tmp_path / "d.train.rating").write_text(train)
    (tmp_path / "d.test.rating").write_text("0\t1\t1\n")
    (tmp_path / "d.test.negative").write_text("(0,1)\t2\n")
    return str(prefix)


def test_read_ncf_error_message_truncates_the_offending_line(tmp_path):
    prefix = ncf_files(tmp_path, "0\t1\t1\n" + "1\t" + "2\t" * 100_000 + "x\n")
    with pytest.raises(ValueError, match="line 2") as e:
        read_ncf(prefix)
    assert len(str(e.value)) < 1000


# --------------------------------------------------------------- 7: silent wrong results
def test_recommend_rejects_fractional_candidate_item_ids():
    m, x, y = tiny()
    with pytest.raises(ValueError, match="items"):
        m.recommend([0, 1], k=2, items=[1.5, 2.0, 3.0])


def test_score_items_rejects_fractional_ids():
    m, x, y = tiny()
    with pytest.raises(ValueError, match="items"):
        m.score_items([0], items=[0.7, 1.0])
    with pytest.raises(ValueError, match="users"):
        m.score_items([0.5])


@pytest.mark.parametrize("alpha", [float("nan"), -1.0, float("inf")])
def test_negative_sampler_rejects_bad_alpha(alpha):
    with pytest.raises(ValueError, match="alpha"):
        NegativeSampler(([0, 1, 2], [0, 1, 2]), distribution="popularity", alpha=alpha)


def test_csv_ids_above_int64_are_rejected_not_saturated(tmp_path):
    path = tmp_path / "big.csv"
    path.write_text("user,item\n9223372036854775808,1\n9223372036854775809,2\n")
    with pytest.raises(ValueError, match="int64"):
        InteractionLog.read_csv(path)


def test_ncf_ids_above_int64_are_rejected(tmp_path):
    prefix = ncf_files(tmp_path, "0\t1\t1\n99999999999999999999\t2\t1\n")
    with pytest.raises(ValueError, match="int64"):
        read_ncf(prefix)


@pytest.mark.parametrize("epochs", [2.7, 2.0, float("nan"), "3"])
def test_fit_rejects_non_integer_epochs(epochs):
    m, x, y = tiny(fit=False)
    with pytest.raises(TypeError, match="epochs"):
        m.fit(x, y, epochs=epochs, verbose=0)
    assert m.optimizer.iterations == 0


@pytest.mark.parametrize("lr", [float("nan"), float("inf"), -0.1, "0.1", None])
def test_bad_learning_rate_attribute_is_rejected(lr):
    opt = optimizers.Adam()
    with pytest.raises(ValueError, match="learning_rate"):
        opt.learning_rate = lr
    with pytest.raises(ValueError, match="learning_rate"):
        optimizers.SGD(learning_rate=lr)


def test_learning_rate_schedule_returning_nan_stops_with_an_error():
    from neurec.callbacks import LearningRateScheduler
    m, x, y = tiny(fit=False)
    with pytest.raises(ValueError, match="learning_rate"):
        m.fit(x, y, epochs=2, verbose=0,
              callbacks=[LearningRateScheduler(lambda e, lr: float("nan"))])
    assert all(np.isfinite(w).all() for w in m.get_weights())


def test_load_model_rejects_negative_second_moments(tmp_path):
    m, _, _, path = saved(tmp_path)
    files = members(path)
    # Adam variables: iterations, then (m, v, row_steps?) per weight; v is the second slot
    names = sorted(n for n in files if n.startswith("optimizer/"))
    v = np.load(io.BytesIO(files[names[2]]))
    assert v.dtype == np.float32 and (v >= 0).all()
    v.flat[0] = -1.0
    files[names[2]] = npy(v)
    bad = tmp_path / "bad.neurec"
    rewrite(bad, list(files.items()))
    with pytest.raises(ValueError, match="negative"):
        load_model(bad)


def test_load_model_rejects_nan_weights_naming_them(tmp_path):
    _, _, _, path = saved(tmp_path)

    def poison(files):
        w = np.load(io.BytesIO(files["weights/00001.npy"]))
        w.flat[0] = np.nan
        files["weights/00001.npy"] = npy(w)

    with pytest.raises(ValueError, match="weights/00001.npy.*(NaN|finite)"):
        load_model(edited(tmp_path, path, poison))


def test_saving_nan_weights_raises_at_save_time_and_writes_nothing(tmp_path):
    m, x, y = tiny()
    m.layers[-1].kernel[0, 0] = np.nan
    path = tmp_path / "nan.neurec"
    with pytest.raises(ValueError, match=m.layers[-1].name):
        m.save(path)
    assert not path.exists()
    assert [p for p in os.listdir(tmp_path)] == []


# --------------------------------------------------------------- 8: smaller
def test_stale_temp_files_of_a_killed_save_are_cleaned_up(tmp_path):
    from neurec._atomic import temp_name
    m, x, y = tiny()
    target = tmp_path / "m.neurec"
    dead = _dead_pid()
    stale = tmp_path / temp_name(str(target), pid=dead)
    stale.write_bytes(b"half a model")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    other_target = tmp_path / temp_name(str(tmp_path / "other.neurec"), pid=dead)
    other_target.write_bytes(b"someone else's")
    os.utime(other_target, (old, old))
    live = tmp_path / temp_name(str(target), pid=os.getpid())
    live.write_bytes(b"in progress")
    unrelated = tmp_path / ".neurec-notes.tmp"
    unrelated.write_bytes(b"user file")
    m.save(target)
    left = sorted(os.listdir(tmp_path))
    assert stale.name not in left
    assert live.name in left and unrelated.name in left and other_target.name in left
    assert "m.neurec" in left


def _dead_pid():
    import subprocess
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_saved_files_respect_the_umask(tmp_path):
    m, x, y = tiny()
    old = os.umask(0o022)
    try:
        m.save(tmp_path / "a.neurec")
        m.save_weights(tmp_path / "a.weights.npz")
        os.umask(0o077)
        m.save(tmp_path / "b.neurec")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "a.neurec").st_mode) == 0o644
    assert stat.S_IMODE(os.stat(tmp_path / "a.weights.npz").st_mode) == 0o644
    assert stat.S_IMODE(os.stat(tmp_path / "b.neurec").st_mode) == 0o600


def test_atomic_directory_replaces_the_old_one_only_once_filled(tmp_path):
    from neurec._atomic import atomic_directory, temp_name
    target = tmp_path / "ds"

    def fill(text):
        return lambda path: open(os.path.join(path, "a.txt"), "w").write(text)

    atomic_directory(str(target), fill("one"))
    assert (target / "a.txt").read_text() == "one"

    def disk_full(path):
        fill("half")(path)
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        atomic_directory(str(target), disk_full)
    assert os.listdir(tmp_path) == ["ds"] and (target / "a.txt").read_text() == "one"
    stale = tmp_path / temp_name(str(target), pid=_dead_pid())  # a killed extraction's
    stale.mkdir()
    (stale / "a.txt").write_text("half")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    atomic_directory(str(target), fill("two"))
    assert os.listdir(tmp_path) == ["ds"] and os.listdir(target) == ["a.txt"]
    assert (target / "a.txt").read_text() == "two"


def test_failed_write_ncf_leaves_the_old_files_untouched(tmp_path, monkeypatch):
    import neurec.data.io as nio
    prefix = str(tmp_path / "d")
    tr = InteractionLog([0, 1], [1, 2])
    te = InteractionLog([0, 1], [2, 0])
    write_ncf(prefix, tr, te, np.array([[3], [3]]))
    before = {p: open(p, "rb").read() for p in
              (prefix + ".train.rating", prefix + ".test.rating", prefix + ".test.negative")}
    real = nio._format_rows

    def failing(fmt, columns):
        chunks = real(fmt, columns)
        if not fmt.startswith("(%d,%d)"):
            return chunks

        def disk_full():  # the third file fails after its first chunk
            yield next(chunks)
            raise OSError(28, "No space left on device")
        return disk_full()

    monkeypatch.setattr(nio, "_format_rows", failing)
    with pytest.raises(OSError):
        write_ncf(prefix, InteractionLog([5, 6], [7, 8]), te, np.array([[4], [4]]))
    after = {p: open(p, "rb").read() for p in before}
    assert after == before
    assert sorted(os.listdir(tmp_path)) == sorted(os.path.basename(p) for p in before)


def test_validation_freq_zero_raises_value_error():
    m, x, y = tiny(fit=False)
    with pytest.raises(ValueError, match="validation_freq"):
        m.fit(x, y, epochs=1, verbose=0, validation_split=0.2, validation_freq=0)


@pytest.mark.parametrize("kw,exc", [
    ({"epochs": float("nan")}, TypeError), ({"seed": "abc"}, TypeError),
    ({"seed": 1.5}, TypeError), ({"seed": -1}, ValueError), ({"verbose": "loud"}, ValueError),
    ({"verbose": 7}, ValueError), ({"initial_epoch": 0.5}, TypeError),
    ({"validation_freq": 1.5}, TypeError), ({"shuffle": "yes"}, TypeError),
])
def test_fit_bad_arguments_name_the_argument(kw, exc):
    m, x, y = tiny(fit=False)
    with pytest.raises(exc, match=list(kw)[0]):
        m.fit(x, y, **kw)


def test_deeply_nested_json_raises_value_error_not_recursion_error(tmp_path):
    _, _, _, path = saved(tmp_path)
    deep = b"[" * 200_000 + b"]" * 200_000
    bad = edited(tmp_path, path, lambda f: f.__setitem__("config.json", deep))
    with pytest.raises(ValueError, match="config.json"):
        load_model(bad)


def test_flipped_zip_header_raises_value_error_not_not_implemented(tmp_path):
    _, _, _, path = saved(tmp_path)
    data = bytearray(path.read_bytes())
    # compression method of every central-directory entry -> 99 (unknown)
    pos = data.find(b"PK\x01\x02")
    while pos >= 0:
        data[pos + 10:pos + 12] = (99).to_bytes(2, "little")
        pos = data.find(b"PK\x01\x02", pos + 4)
    bad = tmp_path / "flipped.neurec"
    bad.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="compress"):
        load_model(bad)


# --------------------------------------------------------------- Ctrl-C in long C calls
def _interrupt_after(seconds):
    import _thread
    t = threading.Timer(seconds, _thread.interrupt_main)
    t.start()
    return t


def test_ctrl_c_stops_a_large_predict_promptly():
    u = Input(shape=(1,))
    h = Flatten()(Embedding(10, 64)(u))
    h = Dense(512, activation="relu")(h)
    h = Dense(512, activation="relu")(h)
    m = Model(u, Dense(1)(h))
    t0 = time.perf_counter()
    m.predict(np.zeros(20_000, np.int64))
    per_sample = (time.perf_counter() - t0) / 20_000
    n = int(min(max(4.0 / per_sample, 400_000), 16_000_000))
    if per_sample * n < 2.0:
        pytest.skip("machine too fast for a several-second predict")
    x = np.zeros(n, np.int64)
    timer = _interrupt_after(0.3)
    t0 = time.perf_counter()
    try:
        with pytest.raises(KeyboardInterrupt):
            m.predict(x)
            time.sleep(5)  # a late interrupt lands here and fails the timing check
    finally:
        timer.cancel()
    assert time.perf_counter() - t0 < 0.3 + 1.5


def test_ctrl_c_stops_a_large_recommend_promptly():
    m = MF(20_000, 200_000, factors=64)
    users = np.arange(20_000)
    t0 = time.perf_counter()
    m.recommend(users[:200], k=10)
    if (time.perf_counter() - t0) * 100 < 2.0:
        pytest.skip("machine too fast for a several-second recommend")
    timer = _interrupt_after(0.3)
    t0 = time.perf_counter()
    try:
        with pytest.raises(KeyboardInterrupt):
            m.recommend(users, k=10)
            time.sleep(5)
    finally:
        timer.cancel()
    assert time.perf_counter() - t0 < 0.3 + 1.5


# --------------------------------------------------------------- found by tests/test_fuzz.py
def test_read_ncf_with_empty_files_returns_an_empty_dataset_not_index_error(tmp_path):
    prefix = str(tmp_path / "d")
    for suffix in (".train.rating", ".test.rating", ".test.negative"):
        open(prefix + suffix, "w").close()
    ds = read_ncf(prefix)
    assert len(ds.train) == 0 and ds.test_users.size == 0 and ds.test_negatives.shape[0] == 0


def test_csv_lone_minus_sign_is_not_read_as_id_zero(tmp_path):
    # np.fromstring reads a lone "-" as 0 (or joins it to the next number)
    path = tmp_path / "sign.csv"
    path.write_text("user,item\n5,1\n-,2\n")
    log = InteractionLog.read_csv(path)
    assert log.users.dtype.kind != "i" and list(log.users) == ["5", "-"]


def test_ncf_lone_minus_sign_is_a_malformed_line(tmp_path):
    prefix = ncf_files(tmp_path, "0\t1\t1\n1\t2\t-\n")
    with pytest.raises(ValueError, match="line 2"):
        read_ncf(prefix)


def test_save_load_then_fit_is_bit_identical_to_fit_on_the_saved_model(tmp_path, one_thread):
    # the README's determinism rule: optimizer state and step counts round-trip exactly
    from neurec.models import NeuMF
    rng = np.random.default_rng(0)
    x = [rng.integers(0, 30, 3000), rng.integers(0, 20, 3000)]
    y = (rng.random(3000) < .5).astype(np.float32)
    a = NeuMF(30, 20)
    a.compile(optimizer=optimizers.Adam(catch_up=False), loss="binary_crossentropy")
    a.fit(x, y, epochs=2, verbose=0, seed=7)
    a.save(tmp_path / "d.neurec")
    b = load_model(tmp_path / "d.neurec")
    a.fit(x, y, epochs=1, verbose=0, seed=9)
    b.fit(x, y, epochs=1, verbose=0, seed=9)
    assert b.optimizer.iterations == a.optimizer.iterations
    for p, q in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(p, q)


def test_binding_size_products_cannot_overflow():
    # n_pu * (1 + num_neg) and n_users * k were signed products of Python-given sizes
    from neurec import _core
    indptr = np.array([0, 1], np.int64)
    indices = np.array([0], np.int32)
    pu = np.zeros(1, np.int64)
    out_i, out_f = np.zeros(2, np.int64), np.zeros(2, np.float32)
    for num_neg in (2**62, 2**63 - 1):
        with pytest.raises(ValueError, match="num_negatives"):
            _core.sample_epoch(indptr, indices, 3, pu, pu, num_neg, None, 0, out_i, out_i.copy(),
                               out_f)
    u = np.ones((3, 4), np.float32)
    oid, osc = np.zeros((3, 2), np.int64), np.zeros((3, 2), np.float32)
    for k in (2**62, 2**63 - 1):
        with pytest.raises(ValueError):
            _core.score_topk(u, u, None, k, None, None, None, oid.ravel(), osc.ravel())


def test_evaluate_bad_verbose_names_the_argument():
    m, x, y = tiny()
    with pytest.raises(ValueError, match="verbose"):
        m.evaluate(x, y, verbose="loud")
    assert m.evaluate(x, y, verbose=0) == m.evaluate(x, y, verbose="auto")


def test_csv_blank_id_is_not_read_as_zero(tmp_path):
    # np.fromstring(" ") is [0]: a file whose only id is blank must not become user 0
    path = tmp_path / "blank.csv"
    path.write_text(" ,1\n")
    with pytest.raises(ValueError, match="expected an id"):
        InteractionLog.read_csv(path, header=False)


def test_recommend_users_beyond_int64_are_rejected_not_wrapped():
    m, x, y = tiny()
    with pytest.raises((ValueError, TypeError), match="users"):
        m.recommend(np.array([0, 2**63], dtype=np.uint64), k=2)
    with pytest.raises(TypeError, match="users"):
        m.recommend([0.0, 9.3e18], k=2)


@pytest.mark.skipif(os.name != "posix", reason="kill -9")
def test_kill_9_during_save_leaves_a_temp_file_that_the_next_save_removes(tmp_path):
    import signal
    import subprocess

    from neurec._atomic import TEMP_SUFFIX, clean_stale_temps
    target = tmp_path / "big.neurec"
    code = ("import sys, numpy as np\n"
            "from neurec.models import GMF\n"
            "m = GMF(2_000_000, 10, factors=16)\n"  # a 128 MB table: each save takes a while
            "while True:\n"
            "    m.save(sys.argv[1])\n")
    p = subprocess.Popen([sys.executable, "-c", code, str(target)])
    try:
        deadline = time.time() + 60
        temps = []
        while not temps and time.time() < deadline:
            temps = [n for n in os.listdir(tmp_path) if n.endswith(TEMP_SUFFIX)]
            time.sleep(0.01)
        assert temps, "the child never started a save"
        os.kill(p.pid, signal.SIGKILL)
    finally:
        p.kill()
        p.wait()
    left = [n for n in os.listdir(tmp_path) if n.endswith(TEMP_SUFFIX)]
    assert left  # kill -9 leaves the temp file behind
    if target.exists():  # an earlier complete save, never a torn one
        load_model(target, compile=False)
    # a dead writer's temp is removed once it is over a minute old (here: "now" is later)
    removed = clean_stale_temps(str(target), now=time.time() + 120)
    assert sorted(os.path.basename(r) for r in removed) == sorted(left)
    assert not [n for n in os.listdir(tmp_path) if n.endswith(TEMP_SUFFIX)]


def test_save_without_overwrite_never_replaces_a_file_created_meanwhile(tmp_path):
    """Regression: save(overwrite=False) checked, wrote, then os.replace'd: a file another
    process created in between was overwritten."""
    from neurec._atomic import atomic_write
    target = tmp_path / "m.neurec"

    def write(f):
        target.write_bytes(b"theirs")  # another process wins the race
        f.write(b"ours")

    with pytest.raises(FileExistsError, match="overwrite=True"):
        atomic_write(str(target), write, overwrite=False)
    assert target.read_bytes() == b"theirs"
    assert [p.name for p in tmp_path.iterdir()] == ["m.neurec"]  # no temp file left


def test_atomic_write_many_checks_every_target_before_renaming_any(tmp_path):
    from neurec._atomic import atomic_write_many
    first, second = tmp_path / "a.txt", tmp_path / "b"
    first.write_bytes(b"old")
    second.mkdir()
    with pytest.raises(IsADirectoryError, match="is a directory"):
        atomic_write_many([(str(first), lambda f: f.write(b"new")),
                           (str(second), lambda f: f.write(b"new"))])
    assert first.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b"]
