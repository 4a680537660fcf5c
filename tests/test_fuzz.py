"""Standing fuzz suite (issue 9): untrusted files and arguments never crash, hang or exhaust.

Property-based (``hypothesis``) over ``load_model`` (mutated bytes of a real saved file,
mutated members with valid CRCs, crafted zips), ``InteractionLog.read_csv``, ``read_ncf`` and
the arguments of ``fit``/``predict``/``recommend``. Every case must either work or raise a
``ValueError``/``TypeError`` (``FileNotFoundError`` where a file is missing): anything else
(another exception, a NumPy ``RuntimeWarning`` such as an invalid cast, a crash of the
process, a hang) fails.

Bounded for CI: ``NEUREC_FUZZ_EXAMPLES`` scales the number of cases (default 1, i.e. the
per-test ``max_examples`` below; ``.ci/sanitize.sh`` runs the same suite against the ASan/UBSan
build). ``NEUREC_FUZZ_EXAMPLES=20 python -m pytest tests/test_fuzz.py`` is the long run whose
counts the README reports.
"""
import io
import json
import math
import os
import tempfile
import zipfile

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import neurec  # noqa: E402
from neurec import optimizers  # noqa: E402
from neurec.data import InteractionLog, read_ncf  # noqa: E402
from neurec.models import GMF, NeuMF, load_model  # noqa: E402

SCALE = max(1, int(os.environ.get("NEUREC_FUZZ_EXAMPLES", "1")))
# a NumPy RuntimeWarning (invalid cast, overflow) inside neurec is a silent wrong result
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")
OK_ERRORS = (ValueError, TypeError)


def fuzz_settings(n: int):
    return settings(max_examples=n * SCALE, deadline=None, database=None, derandomize=SCALE == 1,
                    suppress_health_check=list(HealthCheck), print_blob=True)


def _saved_model_bytes(kind: str) -> bytes:
    neurec.utils.set_random_seed(0)
    if kind == "neumf":
        m = NeuMF(12, 9, factors=3, layers=(8, 4))
        m.compile(optimizer=optimizers.Adam(catch_up=False), loss="binary_crossentropy",
                  metrics=["accuracy"])
    else:
        m = GMF(12, 9, factors=3)
        m.compile(optimizer="rmsprop", loss="binary_crossentropy")
    rng = np.random.default_rng(0)
    x = [rng.integers(0, 12, 64), rng.integers(0, 9, 64)]
    m.fit(x, (rng.random(64) < 0.5).astype(np.float32), epochs=1, batch_size=16, verbose=0, seed=0)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "m.neurec")
        m.save(path)
        with open(path, "rb") as f:
            return f.read()


SAVED = {k: _saved_model_bytes(k) for k in ("neumf", "gmf")}


def _members(data: bytes):
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return [(n, z.read(n)) for n in z.namelist()]


def _zip(items, compression=zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as z:
        for name, data in items:
            z.writestr(name, data)
    return buf.getvalue()


def _try_load(data: bytes):
    """Load data as a model file: success (then use the model) or a clean error."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "f.neurec")
        with open(path, "wb") as f:
            f.write(data)
        try:
            m = load_model(path)
        except ValueError:
            return None
    # a file that loads is a usable model: predict and one more training step work
    n_in = len(m.inputs)
    x = [np.zeros((4,) + tuple(t.shape[1:]), np.int64) for t in m.inputs]
    try:
        m.predict(x if n_in > 1 else x[0])
        if m._compiled:
            m.fit(x if n_in > 1 else x[0], np.ones(4, np.float32), epochs=1, verbose=0)
    except OK_ERRORS:
        pass
    return m


# ------------------------------------------------------------------------ load_model
@fuzz_settings(150)
@given(kind=st.sampled_from(sorted(SAVED)),
       edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)),
                      min_size=1, max_size=8),
       cut=st.one_of(st.none(), st.floats(0, 1)))
def test_fuzz_load_model_mutated_file_bytes(kind, edits, cut):
    data = bytearray(SAVED[kind])
    for pos, byte in edits:
        data[int(pos * len(data))] = byte
    if cut is not None:
        data = data[:int(cut * len(data))]
    _try_load(bytes(data))


JSON_LEAF = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                      st.sampled_from([0, -1, 1, 2**31, 2**63, 10**8, 10**12]),
                      st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12))
JSON_ANY = st.recursive(JSON_LEAF, lambda kids: st.one_of(
    st.lists(kids, max_size=4), st.dictionaries(st.text(max_size=8), kids, max_size=4)),
    max_leaves=12)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (i,))


def _replace(node, path, value):
    if not path:
        return value
    node[path[0]] = _replace(node[path[0]], path[1:], value)
    return node


@fuzz_settings(150)
@given(kind=st.sampled_from(sorted(SAVED)), data=st.data())
def test_fuzz_load_model_mutated_config(kind, data):
    members = dict(_members(SAVED[kind]))
    cfg = json.loads(members["config.json"])
    for _ in range(data.draw(st.integers(1, 3))):
        paths = list(_paths(cfg))
        path = data.draw(st.sampled_from(paths[1:]))
        cfg = _replace(cfg, path, data.draw(JSON_ANY))
    members["config.json"] = json.dumps(cfg).encode()
    _try_load(_zip(members.items()))


@fuzz_settings(150)
@given(kind=st.sampled_from(sorted(SAVED)), data=st.data())
def test_fuzz_load_model_mutated_arrays(kind, data):
    members = dict(_members(SAVED[kind]))
    arrays = sorted(n for n in members if n.endswith(".npy"))
    for _ in range(data.draw(st.integers(1, 3))):
        name = data.draw(st.sampled_from(arrays))
        choice = data.draw(st.integers(0, 3))
        raw = bytearray(members[name])
        if not raw:
            continue
        if choice == 0:  # header bytes (shape, dtype, sizes)
            for _ in range(data.draw(st.integers(1, 4))):
                raw[data.draw(st.integers(0, min(127, len(raw) - 1)))] = data.draw(st.integers(0, 255))
            members[name] = bytes(raw)
        elif choice == 1:  # same array, hostile values
            try:
                a = np.load(io.BytesIO(members[name]))
            except Exception:  # an earlier edit broke it (numpy raises many kinds)
                continue
            if a.size == 0 or a.dtype.kind not in "fi":
                continue
            vals = st.sampled_from([np.nan, np.inf, -1.0, -1e30, 1e30, 0.5]) if a.dtype.kind == "f" \
                else st.sampled_from([-1, -2**31, 2**31 - 1])
            a.flat[data.draw(st.integers(0, a.size - 1))] = data.draw(vals)
            if a.dtype == np.int64:
                a.flat[data.draw(st.integers(0, a.size - 1))] = data.draw(
                    st.sampled_from([-2**40, 2**62, 2**63 - 1, -2**63]))
            buf = io.BytesIO()
            np.save(buf, a)
            members[name] = buf.getvalue()
        elif choice == 2:  # another shape or dtype
            shape = tuple(data.draw(st.lists(st.integers(0, 20), max_size=3)))
            dtype = data.draw(st.sampled_from(["<f4", "<f8", "<i8", "<i4", "|u1", "<c8"]))
            buf = io.BytesIO()
            np.save(buf, np.zeros(shape, dtype))
            members[name] = buf.getvalue()
        else:  # truncated
            members[name] = bytes(raw[:data.draw(st.integers(0, len(raw)))])
    _try_load(_zip(members.items()))


NAMES = st.one_of(st.sampled_from(["config.json", "weights/00000.npy", "weights/00001.npy",
                                   "weights/00002.npy", "optimizer/00000.npy",
                                   "optimizer/00001.npy", "weights/", "../x", "/abs",
                                   "weights/0.npy", "w00000.npy"]),
                  st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126),
                          min_size=1, max_size=20))


@fuzz_settings(100)
@given(kind=st.sampled_from(sorted(SAVED)), data=st.data())
def test_fuzz_load_model_crafted_zips(kind, data):
    members = _members(SAVED[kind])
    items = data.draw(st.lists(st.sampled_from(members), max_size=len(members) + 2))
    extra = data.draw(st.lists(st.tuples(NAMES, st.binary(max_size=64)), max_size=3))
    compression = data.draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names
        try:
            blob = _zip(items + extra, compression)
        except (IndexError, ValueError):  # a name zipfile itself cannot write
            hypothesis.assume(False)
    _try_load(blob)


# ------------------------------------------------------------------------ text readers
CSV_TEXT = st.text(alphabet=st.sampled_from(list("0123456789,;-.e+\n\r\" \tabT:Z")), max_size=300)


@fuzz_settings(200)
@given(body=CSV_TEXT, header=st.booleans(), sep=st.sampled_from([",", ";", "\t"]),
       big=st.sampled_from(["", "9223372036854775807", "9223372036854775808",
                            "-9223372036854775809", "1e400", "nan"]),
       time_col=st.booleans())
def test_fuzz_read_csv(body, header, sep, big, time_col):
    text = ("user,item,t\n" if header else "") + body.replace(",", sep) + big
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "f.csv")
        with open(path, "w", newline="") as f:
            f.write(text)
        kw = {"time_col": ("t" if header else 2)} if time_col else {}
        try:
            log = InteractionLog.read_csv(path, header=header, sep=sep, **kw)
        except ValueError:
            return
    assert len(log) <= text.count("\n") + text.count("\r") + 1
    if log.users.dtype.kind == "i" and len(log):
        # no saturation: every integer id appears in the text
        assert str(int(log.users.max())) in text


NCF_TEXT = st.text(alphabet=st.sampled_from(list("0123456789\t\n(), -.x")), max_size=200)


@fuzz_settings(200)
@given(train=NCF_TEXT, test=NCF_TEXT, neg=NCF_TEXT,
       big=st.sampled_from(["", "99999999999999999999", "9223372036854775807", "1e30"]))
def test_fuzz_read_ncf(train, test, neg, big):
    with tempfile.TemporaryDirectory() as d:
        prefix = os.path.join(d, "x")
        for suffix, text in ((".train.rating", train + big), (".test.rating", test),
                             (".test.negative", neg)):
            with open(prefix + suffix, "w", newline="") as f:
                f.write(text)
        try:
            ds = read_ncf(prefix)
        except ValueError as e:
            assert len(str(e)) < 1000
            return
    assert ds.n_users >= 0 and ds.n_items >= 0
    assert ds.n_users < 2**63 and ds.n_items < 2**63


# ------------------------------------------------------------------------ arguments
ANY_SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.integers(-2**70, 2**70),
                       st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=5))
IDS = st.one_of(st.lists(st.integers(-2, 14), min_size=0, max_size=40),
                st.lists(st.one_of(st.floats(-2, 14), st.just(float("nan"))), min_size=1, max_size=40),
                st.lists(st.integers(-2**64, 2**64), min_size=1, max_size=5))

_MODEL = {}


def _model():
    if "m" not in _MODEL:
        neurec.utils.set_random_seed(0)
        m = GMF(12, 9, factors=3)
        m.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
        _MODEL["m"] = m
    return _MODEL["m"]


def _array(ids):
    try:
        return np.asarray(ids)
    except OverflowError:
        return np.asarray(ids, dtype=object)


@fuzz_settings(150)
@given(users=IDS, items=IDS, labels=st.lists(st.floats(allow_nan=True), max_size=40),
       batch_size=st.one_of(ANY_SCALAR, st.sampled_from([1, 2**31, 2**62, 2**63 - 1])),
       epochs=st.one_of(ANY_SCALAR, st.integers(0, 2)), seed=ANY_SCALAR,
       verbose=st.one_of(ANY_SCALAR, st.sampled_from(["auto", 0, 2])),
       validation_split=st.one_of(st.just(0.0), ANY_SCALAR), validation_freq=ANY_SCALAR)
def test_fuzz_fit_arguments(users, items, labels, batch_size, epochs, seed, verbose,
                            validation_split, validation_freq):
    m = _model()
    before = m.optimizer.iterations
    try:
        h = m.fit([_array(users), _array(items)], _array(labels), batch_size=batch_size,
                  epochs=epochs, seed=seed, verbose=verbose, validation_split=validation_split,
                  validation_freq=validation_freq)
    except OK_ERRORS:
        assert m.optimizer.iterations == before  # arguments are checked before training
        return
    for v in h.history.get("loss", []):
        assert math.isfinite(v)
    assert all(np.isfinite(w).all() for w in m.get_weights())


@fuzz_settings(150)
@given(users=IDS, items=st.one_of(st.none(), IDS), k=ANY_SCALAR,
       which=st.sampled_from(["predict", "recommend", "score_items", "evaluate"]))
def test_fuzz_predict_recommend_arguments(users, items, k, which):
    m = _model()
    u = _array(users)
    try:
        if which == "predict":
            out = m.predict([u, _array(items if items is not None else users)])
            assert out.shape[0] == len(users) and np.isfinite(out).all()
        elif which == "evaluate":
            it = _array(items if items is not None else users)
            m.evaluate([u, it], np.ones(len(users), np.float32), verbose=0)
        elif which == "recommend":
            ids, scores = m.recommend(u, k=k, items=None if items is None else _array(items))
            assert ids.shape == scores.shape == (len(users), ids.shape[1])
            assert ((ids >= -1) & (ids < 9)).all()
        else:
            s = m.score_items(u, items=None if items is None else _array(items))
            assert s.shape[0] == len(users)
    except OK_ERRORS:
        pass
