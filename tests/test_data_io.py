"""Tests for the NCF file format: neurec.data.read_ncf / write_ncf."""
import numpy as np
import pytest

from neurec.data import InteractionLog, NCFDataset, read_ncf, write_ncf


def make_split(seed=0, n_users=20, n_items=60, with_time=True, float_ratings=False):
    rng = np.random.default_rng(seed)
    n = 400
    users = rng.integers(0, n_users, n)
    items = rng.integers(0, n_items - 1, n)  # the last item only appears among negatives
    ratings = rng.integers(1, 6, n).astype(np.float32)
    if float_ratings:
        ratings = ratings / 2 + np.float32(0.1)
    times = rng.integers(8 * 10**8, 9 * 10**8, n) if with_time else None
    train = InteractionLog(users, items, times, ratings)
    test_users = np.arange(n_users)
    test_items = rng.integers(0, n_items - 1, n_users)
    test = InteractionLog(test_users, test_items,
                          rng.integers(9 * 10**8, 10**9, n_users) if with_time else None,
                          np.ones(n_users, dtype=np.float32))
    negatives = rng.integers(0, n_items, (n_users, 99))
    negatives[0, 0] = n_items - 1
    return train, test, negatives


@pytest.mark.parametrize("with_time, float_ratings", [(True, False), (False, True)])
def test_round_trip(tmp_path, with_time, float_ratings):
    train, test, negatives = make_split(with_time=with_time, float_ratings=float_ratings)
    prefix = tmp_path / "sub" / "toy"
    write_ncf(prefix, train, test, negatives)
    first = (tmp_path / "sub" / "toy.train.rating").read_text().split("\n")[0]
    assert len(first.split("\t")) == (4 if with_time else 3)
    data = read_ncf(prefix)
    assert isinstance(data, NCFDataset)
    np.testing.assert_array_equal(data.train.users, train.users)
    np.testing.assert_array_equal(data.train.items, train.items)
    np.testing.assert_array_equal(data.train.values, train.values)  # exact float32
    if with_time:
        np.testing.assert_array_equal(data.train.timestamps, train.timestamps)
        np.testing.assert_array_equal(data.test_timestamps, test.timestamps)
    else:
        assert data.train.timestamps is None
    np.testing.assert_array_equal(data.test_users, test.users)
    np.testing.assert_array_equal(data.test_items, test.items)
    np.testing.assert_array_equal(data.test_negatives, negatives)
    assert data.test_negatives.dtype == np.int64 and data.test_negatives.shape == (20, 99)
    assert data.n_users == 20 and data.n_items == 60  # max id over all three files + 1
    assert data.test.users.tolist() == test.users.tolist()
    assert "20 users x 60 items" in repr(data)


def test_train_matrix_is_binary_and_covers_all_ids(tmp_path):
    train, test, negatives = make_split(seed=1)
    write_ncf(tmp_path / "d", train, test, negatives)
    data = read_ncf(tmp_path / "d")
    m = data.train_matrix
    assert m is data.train_matrix  # cached
    assert m.shape == (20, 60)
    assert set(m.data.tolist()) == {1.0}
    assert m.nnz == len(set(zip(train.users.tolist(), train.items.tolist())))
    assert m.contains(train.users, train.items).all()


def test_hand_written_files_and_directory_prefix(tmp_path):
    (tmp_path / "x.train.rating").write_text("0\t1\t5\n0\t2\t3\n1\t0\t4\n")
    (tmp_path / "x.test.rating").write_text("0\t3\t4\t978824351\r\n1\t2\t1\t978824352\r\n")
    (tmp_path / "x.test.negative").write_text("(0,3)\t4\t5\n(1,2)\t6\t1\n")
    data = read_ncf(tmp_path)  # the directory holds a single *.train.rating
    assert data.train.values.tolist() == [5, 3, 4] and data.train.timestamps is None
    assert data.test_timestamps.tolist() == [978824351, 978824352]
    assert data.test_negatives.tolist() == [[4, 5], [6, 1]]
    assert (data.n_users, data.n_items) == (2, 7)


@pytest.mark.parametrize("name, text, line, fragment", [
    ("train.rating", "0\t1\t5\n0\t2\n1\t0\t4\n", 2, "expected 3 fields"),
    ("train.rating", "0\t1\t5\n0\t2\tfive\n", 2, "expected a number"),
    ("train.rating", "0\t1\n0\t2\n", None, None),  # 2 columns are fine
    ("train.rating", "0\t1\t5\t1\t9\n", 1, "expected 2 or 3 or 4 fields"),
    ("test.rating", "0\t3\t4\n\n1\t2\t1\t7\n", 3, "expected 3 fields"),
    ("test.negative", "(0,3)\t4\t5\n(1,2)\t6\n", 2, "expected 4 fields"),
    ("test.negative", "(0,3)\t4\t5\n(1,2)\t6\tx\n", 2, "expected a number"),
])
def test_malformed_lines_report_file_line_and_text(tmp_path, name, text, line, fragment):
    files = {"train.rating": "0\t1\t5\n0\t2\t3\n", "test.rating": "0\t3\t4\n1\t2\t1\n",
             "test.negative": "(0,3)\t4\t5\n(1,2)\t6\t1\n"}
    files[name] = text
    for key, body in files.items():
        (tmp_path / f"d.{key}").write_text(body)
    if line is None:
        assert read_ncf(tmp_path / "d").train.values is None
        return
    with pytest.raises(ValueError) as info:
        read_ncf(tmp_path / "d")
    msg = str(info.value)
    assert f"d.{name}, line {line}:" in msg and fragment in msg
    assert repr(text.split("\n")[line - 1]) in msg


def test_negative_file_must_match_test_file(tmp_path):
    (tmp_path / "d.train.rating").write_text("0\t1\t5\n")
    (tmp_path / "d.test.rating").write_text("0\t3\t4\n1\t2\t1\n")
    (tmp_path / "d.test.negative").write_text("(0,3)\t4\n(1,5)\t6\n")
    with pytest.raises(ValueError, match=r"line 2: pair \(1,5\) does not match"):
        read_ncf(tmp_path / "d")
    (tmp_path / "d.test.negative").write_text("(0,3)\t4\n")
    with pytest.raises(ValueError, match="1 lines but"):
        read_ncf(tmp_path / "d")
    (tmp_path / "e.train.rating").write_text("0\t-1\t5\n")
    (tmp_path / "e.test.rating").write_text("0\t3\t4\n")
    (tmp_path / "e.test.negative").write_text("(0,3)\t4\n")
    with pytest.raises(ValueError, match="non-negative"):
        read_ncf(tmp_path / "e")


def test_missing_files(tmp_path):
    (tmp_path / "d.train.rating").write_text("0\t1\t5\n")
    with pytest.raises(FileNotFoundError, match="d.test.rating"):
        read_ncf(tmp_path / "d")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="0 \\*.train.rating"):
        read_ncf(tmp_path / "empty")


def test_write_ncf_validation(tmp_path):
    train, test, negatives = make_split()
    raw = InteractionLog(["a"], ["b"])
    with pytest.raises(ValueError, match="encode"):
        write_ncf(tmp_path / "d", raw, test, negatives)
    with pytest.raises(ValueError, match="shape"):
        write_ncf(tmp_path / "d", train, test, negatives[:3])
    with pytest.raises(TypeError, match="InteractionLog"):
        write_ncf(tmp_path / "d", (train.users, train.items), test, negatives)
    assert list(tmp_path.iterdir()) == []  # nothing written on error
