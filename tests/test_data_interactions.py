"""Tests for neurec.data.InteractionMatrix and InteractionLog (incl. read_csv)."""
import numpy as np
import pytest

from neurec.data import IdEncoder, InteractionLog, InteractionMatrix


def random_pairs(seed=0, n=3000, n_users=50, n_items=80):
    rng = np.random.default_rng(seed)
    users = rng.integers(0, n_users, n)
    items = rng.integers(0, n_items, n)
    values = rng.integers(1, 6, n).astype(np.float32)
    return users, items, values


def assert_csr_invariants(m):
    assert m.indptr.dtype == np.int64 and m.indptr.flags.c_contiguous
    assert m.indices.dtype == np.int32 and m.indices.flags.c_contiguous
    assert m.data.dtype == np.float32 and m.data.flags.c_contiguous
    assert m.indptr.shape == (m.shape[0] + 1,) and m.indptr[0] == 0 and m.indptr[-1] == m.nnz
    for u in range(m.shape[0]):
        row = m.indices[m.indptr[u]:m.indptr[u + 1]]
        assert np.all(np.diff(row) > 0), f"row {u} not strictly increasing"


# ------------------------------------------------------------------ matrix
@pytest.mark.parametrize("dedupe", ["sum", "max", "first", "last"])
def test_from_arrays_matches_dict_reference(dedupe):
    users, items, values = random_pairs()
    m = InteractionMatrix.from_arrays(users, items, values, shape=(50, 80), dedupe=dedupe)
    assert_csr_invariants(m)
    ref = {}
    for u, i, v in zip(users.tolist(), items.tolist(), values.tolist()):
        if (u, i) not in ref:
            ref[(u, i)] = v
        elif dedupe == "sum":
            ref[(u, i)] += v
        elif dedupe == "max":
            ref[(u, i)] = max(ref[(u, i)], v)
        elif dedupe == "last":
            ref[(u, i)] = v
    cu, ci, cv = m.to_coo()
    got = dict(zip(zip(cu.tolist(), ci.tolist()), cv.tolist()))
    assert got == ref
    assert m.nnz == len(ref)


def test_sorted_input_without_duplicates_takes_fast_path_correctly():
    users = np.array([0, 0, 1, 3, 3])
    items = np.array([1, 4, 0, 2, 3])
    m = InteractionMatrix.from_arrays(users, items, shape=(4, 5))
    assert m.indptr.tolist() == [0, 2, 3, 3, 5]
    assert m.indices.tolist() == [1, 4, 0, 2, 3]
    assert m.data.tolist() == [1.0] * 5
    assert m.user_items(2).tolist() == []
    assert m.user_items(0).tolist() == [1, 4]


@pytest.mark.parametrize("force_keys", [False, True])
def test_contains_matches_python_set(force_keys):
    users, items, _ = random_pairs(seed=1)
    m = InteractionMatrix.from_arrays(users, items, shape=(50, 80))
    if force_keys:
        m._bitmap = False  # the sparse-catalogue path: binary search over keys
    truth = set(zip(users.tolist(), items.tolist()))
    rng = np.random.default_rng(2)
    qu = rng.integers(0, 50, 4000)
    qi = rng.integers(0, 80, 4000)
    got = m.contains(qu, qi)
    assert got.dtype == bool
    assert got.tolist() == [(u, i) in truth for u, i in zip(qu.tolist(), qi.tolist())]
    assert got.any() and not got.all()
    block = m.contains(qu[:7, None], np.arange(80)[None, :])  # broadcasting
    assert block.shape == (7, 80)
    assert block.tolist() == [[(u, i) in truth for i in range(80)] for u in qu[:7].tolist()]


def test_contains_on_large_sparse_catalogue_uses_keys():
    m = InteractionMatrix.from_arrays([0, 5, 5], [3, 9_999_999, 0], shape=(10, 10_000_000))
    assert m.contains([0, 5, 5, 5, 9], [3, 9_999_999, 0, 1, 3]).tolist() == [
        True, True, True, False, False]
    assert m._bitmap is False


def test_counts_and_views():
    users, items, _ = random_pairs(seed=3)
    m = InteractionMatrix.from_arrays(users, items, shape=(50, 80))
    pairs = set(zip(users.tolist(), items.tolist()))
    item_ref = np.zeros(80, dtype=np.int64)
    user_ref = np.zeros(50, dtype=np.int64)
    for u, i in pairs:
        item_ref[i] += 1
        user_ref[u] += 1
    np.testing.assert_array_equal(m.item_counts(), item_ref)
    np.testing.assert_array_equal(m.user_counts(), user_ref)
    assert m.user_items(7).tolist() == sorted(i for u, i in pairs if u == 7)
    assert "50 users x 80 items" in repr(m)


def test_empty_and_default_shape():
    m = InteractionMatrix.from_arrays([], [], shape=(3, 4))
    assert m.nnz == 0 and m.shape == (3, 4) and m.indptr.tolist() == [0, 0, 0, 0]
    assert m.contains([0, 2], [1, 3]).tolist() == [False, False]
    m = InteractionMatrix.from_arrays([2], [5])
    assert m.shape == (3, 6)


@pytest.mark.parametrize("kwargs, match", [
    (dict(users=[0, -1], items=[0, 1]), "non-negative"),
    (dict(users=[0, 1], items=[0, 9], shape=(2, 5)), "out of range"),
    (dict(users=[0, 1, 1], items=[0, 1]), "same length"),
    (dict(users=[0, 1], items=[0, 1], values=[1.0, np.nan]), "finite"),
    (dict(users=[0, 1], items=[0, 1], values=[1.0]), "one value per"),
    (dict(users=[0, 1], items=[0, 1], dedupe="mean"), "dedupe"),
    (dict(users=[0, 1], items=[0, 1], shape=(2,)), "shape"),
    (dict(users=[0, 1], items=[0, 1], shape=(-1, 2)), "shape"),
])
def test_from_arrays_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        InteractionMatrix.from_arrays(**kwargs)


def test_from_arrays_rejects_raw_ids():
    with pytest.raises(TypeError, match="IdEncoder"):
        InteractionMatrix.from_arrays(["a", "b"], [0, 1])
    with pytest.raises(TypeError, match="IdEncoder"):
        InteractionMatrix.from_arrays([0.0, 1.0], [0, 1])


def test_constructor_checks_csr_invariants():
    good = InteractionMatrix([0, 2, 3], [1, 3, 0], [1, 1, 1], (2, 4))
    assert good.contains([0, 1], [3, 0]).tolist() == [True, True]
    with pytest.raises(ValueError, match="sorted and distinct"):
        InteractionMatrix([0, 2, 3], [3, 1, 0], [1, 1, 1], (2, 4))
    with pytest.raises(ValueError, match="sorted and distinct"):
        InteractionMatrix([0, 2, 3], [1, 1, 0], [1, 1, 1], (2, 4))
    with pytest.raises(ValueError, match="indptr"):
        InteractionMatrix([0, 2], [1, 3, 0], [1, 1, 1], (2, 4))
    with pytest.raises(ValueError, match="out of range"):
        InteractionMatrix([0, 2, 3], [1, 4, 0], [1, 1, 1], (2, 4))


def test_contains_validation():
    m = InteractionMatrix.from_arrays([0], [0], shape=(2, 2))
    with pytest.raises(ValueError, match="out of range"):
        m.contains([2], [0])
    with pytest.raises(ValueError, match="broadcast"):
        m.contains([0, 1], [0, 1, 1])
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        m.user_items(2)


def test_scipy_round_trip():
    sp = pytest.importorskip("scipy.sparse")
    users, items, values = random_pairs(seed=4)
    m = InteractionMatrix.from_arrays(users, items, values, shape=(50, 80))
    s = m.to_scipy()
    assert s.shape == (50, 80) and s.nnz == m.nnz
    dense = np.zeros((50, 80), dtype=np.float64)
    np.add.at(dense, (users, items), values)
    np.testing.assert_allclose(s.toarray(), dense)
    back = InteractionMatrix.from_scipy(sp.coo_matrix((values, (users, items)), shape=(50, 80)))
    np.testing.assert_array_equal(back.indptr, m.indptr)
    np.testing.assert_array_equal(back.indices, m.indices)
    np.testing.assert_allclose(back.data, m.data)
    with pytest.raises(TypeError, match="scipy"):
        InteractionMatrix.from_scipy(np.eye(2))


def test_from_pandas():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"u": [0, 1, 1], "i": [2, 0, 2], "q": [3.0, 1.0, 2.0]})
    m = InteractionMatrix.from_pandas(df, "u", "i", "q")
    assert m.to_coo()[2].tolist() == [3.0, 1.0, 2.0]
    with pytest.raises(ValueError, match="not a column"):
        InteractionMatrix.from_pandas(df, "user", "i")


# --------------------------------------------------------------------- log
def test_log_normalises_and_validates():
    log = InteractionLog.from_arrays([1, 2], ["a", "b"], np.array([5.0, 6.0]), [4, 5])
    assert log.users.dtype == np.int64 and log.timestamps.dtype == np.int64
    assert log.values.dtype == np.float32 and len(log) == 2
    times = np.array(["1970-01-01T00:00:10", "1970-01-02"], dtype="datetime64[s]")
    assert InteractionLog([0, 1], [0, 1], times).timestamps.tolist() == [10, 86400]
    with pytest.raises(ValueError, match="same length"):
        InteractionLog([1, 2], [1])
    with pytest.raises(ValueError, match="timestamp"):
        InteractionLog([1, 2], [1, 2], timestamps=[1])
    with pytest.raises(ValueError, match="whole numbers"):
        InteractionLog([1, 2], [1, 2], timestamps=[1.5, 2.0])
    with pytest.raises(ValueError, match="finite"):
        InteractionLog([1, 2], [1, 2], values=[1.0, np.inf])


def make_log():
    #          row:  0    1    2    3    4    5    6
    users = ["a", "a", "b", "a", "b", "a", "c"]
    items = ["x", "y", "x", "x", "x", "y", "z"]
    times = [10, 20, 5, 30, 5, 20, 1]
    values = [5, 2, 4, 3, 1, 4, 5]
    return InteractionLog(users, items, times, values)


def test_to_implicit_latest_first_sum():
    log = make_log()
    latest = log.to_implicit(dedupe="latest")
    # (a,x): rows 0,3 -> 3 (t=30); (a,y): rows 1,5 tie at 20 -> later row 5; (b,x): rows 2,4
    # tie -> 4; (c,z): row 6. Kept rows stay in log order.
    assert latest.values.tolist() == [3, 1, 4, 5]
    assert list(zip(latest.users, latest.items)) == [("a", "x"), ("b", "x"), ("a", "y"),
                                                      ("c", "z")]
    first = log.to_implicit(dedupe="first")
    assert first.values.tolist() == [5, 2, 4, 5]  # rows 0, 1, 2, 6
    summed = log.to_implicit(dedupe="sum")
    assert summed.values.tolist() == [8, 6, 5, 5]  # at first rows 0, 1, 2, 6
    assert summed.timestamps.tolist() == [30, 20, 5, 1]
    counts = InteractionLog(log.users, log.items).to_implicit(dedupe="sum")
    assert counts.values.tolist() == [2, 2, 2, 1]
    assert len(log.to_implicit(dedupe=None)) == 7


def test_to_implicit_threshold():
    log = make_log()
    kept = log.to_implicit(threshold=4, dedupe=None)
    assert kept.values.tolist() == [5, 4, 4, 5]
    kept = log.to_implicit(threshold=4)
    assert sorted(zip(kept.users, kept.items)) == [("a", "x"), ("a", "y"), ("b", "x"),
                                                   ("c", "z")]
    with pytest.raises(ValueError, match="values"):
        InteractionLog([1], [2]).to_implicit(threshold=3)
    with pytest.raises(ValueError, match="dedupe"):
        log.to_implicit(dedupe="last")


def test_encode_round_trip_and_reuse():
    log = make_log()
    enc, users, items = log.encode()
    assert enc.users.tolist() == [0, 0, 1, 0, 1, 0, 2]
    np.testing.assert_array_equal(users.inverse_transform(enc.users), log.users)
    np.testing.assert_array_equal(items.inverse_transform(enc.items), log.items)
    np.testing.assert_array_equal(enc.timestamps, log.timestamps)
    m = enc.to_matrix(shape=(len(users), len(items)), dedupe="max")
    assert m.shape == (3, 3) and m.nnz == 4
    assert m.contains([0], [items.transform(["y"])[0]]).tolist() == [True]
    # reuse the encoders on new data: unknown ids raise, or drop the rows with 'ignore'
    new = InteractionLog(["a", "d", "c"], ["z", "x", "q"])
    with pytest.raises(ValueError, match="not seen"):
        new.encode(users, items)
    ignoring_items = IdEncoder(unknown="ignore").fit(log.items)
    ignoring_users = IdEncoder(unknown="ignore").fit(log.users)
    out, _, _ = new.encode(ignoring_users, ignoring_items)
    assert out.users.tolist() == [0] and out.items.tolist() == [2]


def test_from_pandas_log():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"uid": ["u1", "u2"], "sku": [10, 11], "when": pd.to_datetime(
        ["2020-01-01", "2020-01-02"]), "qty": [1, 3]})
    log = InteractionLog.from_pandas(df, "uid", "sku", "when", "qty")
    assert log.timestamps.tolist() == [1577836800, 1577923200]
    assert log.values.tolist() == [1.0, 3.0] and log.items.dtype == np.int64
    with pytest.raises(ValueError, match="not a column"):
        InteractionLog.from_pandas(df, "user", "sku")


# ---------------------------------------------------------------- read_csv
def write(tmp_path, text, name="log.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("quote", ["", '"'])  # no quotes: fast path; quotes: csv module
def test_read_csv_basic(tmp_path, quote):
    q = quote
    path = write(tmp_path, f"user,item,ts,rating\n{q}u1{q},10,100,4.5\nu2,{q}11{q},200,3\n\n"
                           "u1,12,300,1\n")
    log = InteractionLog.read_csv(path, time_col="ts", value_col="rating")
    assert log.users.tolist() == ["u1", "u2", "u1"]
    assert log.items.dtype == np.int64 and log.items.tolist() == [10, 11, 12]
    assert log.timestamps.tolist() == [100, 200, 300]
    assert log.values.tolist() == [4.5, 3.0, 1.0]


def test_read_csv_without_header_iso_dates_and_crlf(tmp_path):
    path = write(tmp_path, "7;a;2020-01-01\r\n8;b;2020-01-02T00:00:01\r\n")
    log = InteractionLog.read_csv(path, time_col=2, sep=";", header=False)
    assert log.users.tolist() == [7, 8] and log.items.tolist() == ["a", "b"]
    assert log.timestamps.tolist() == [1577836800, 1577923201]
    with pytest.raises(ValueError, match="position"):
        InteractionLog.read_csv(path, user_col="user", header=False, sep=";")


@pytest.mark.parametrize("quote", ["", '"'])
@pytest.mark.parametrize("body, line, fragment", [
    ("u1,1,10,4\nu2,2,20\n", 3, "expected 4 fields"),
    ("u1,1,10,4\n\nu2,2,20,3,9\n", 4, "expected 4 fields"),
    ("u1,1,10,4\nu2,2,yesterday,3\n", 3, "timestamp"),
    ("u1,1,10,4\nu2,2,20,3\nu3,3,30,abc\n", 4, "finite number"),
    ("u1,1,10,4\nu2,2,20,nan\n", 3, "finite number"),
    ("u1,1,10,4\n,2,20,3\n", 3, "expected an id"),
])
def test_read_csv_malformed_rows_report_line_and_text(tmp_path, quote, body, line, fragment):
    if quote:
        body = body.replace("u1", '"u1"')
    path = write(tmp_path, "user,item,ts,rating\n" + body)
    bad_text = body.split("\n")[line - 2]
    with pytest.raises(ValueError) as info:
        InteractionLog.read_csv(path, time_col="ts", value_col="rating")
    msg = str(info.value)
    assert f"line {line}:" in msg
    assert fragment in msg
    assert repr(bad_text) in msg
    assert str(path) in msg


def test_read_csv_column_errors(tmp_path):
    path = write(tmp_path, "user,item\n1,2\n")
    with pytest.raises(ValueError, match="not a column"):
        InteractionLog.read_csv(path, time_col="ts")
    with pytest.raises(ValueError, match="one character"):
        InteractionLog.read_csv(path, sep="::")
    empty = write(tmp_path, "", name="empty.csv")
    with pytest.raises(ValueError, match="empty"):
        InteractionLog.read_csv(empty)
    with pytest.raises(FileNotFoundError):
        InteractionLog.read_csv(tmp_path / "missing.csv")


def test_read_csv_matches_pandas_on_random_file(tmp_path):
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(5)
    n = 2000
    df = pd.DataFrame({"user": rng.integers(0, 100, n), "item": [f"i{k}" for k in
                       rng.integers(0, 300, n)], "t": rng.integers(0, 10**9, n),
                       "r": rng.random(n).round(3)})
    path = tmp_path / "rand.csv"
    df.to_csv(path, index=False)
    log = InteractionLog.read_csv(path, time_col="t", value_col="r")
    np.testing.assert_array_equal(log.users, df["user"].to_numpy())
    np.testing.assert_array_equal(log.items, df["item"].to_numpy().astype(str))
    np.testing.assert_array_equal(log.timestamps, df["t"].to_numpy())
    np.testing.assert_allclose(log.values, df["r"].to_numpy(), rtol=1e-6)
