"""Tests for neurec.data.IdEncoder."""
import json

import numpy as np
import pytest

from neurec.data import IdEncoder


def brute_force_codes(ids):
    """Reference: codes in order of first appearance, with a Python dict."""
    table = {}
    return [table.setdefault(v, len(table)) for v in ids], list(table)


def test_codes_follow_first_appearance_for_strings():
    enc = IdEncoder()
    codes = enc.fit_transform(["b", "a", "b", "c", "a"])
    assert codes.dtype == np.int64
    assert codes.tolist() == [0, 1, 0, 2, 1]
    assert enc.classes_.tolist() == ["b", "a", "c"]
    assert len(enc) == 3


def test_random_ints_match_dict_reference_and_round_trip():
    rng = np.random.default_rng(0)
    ids = rng.choice(rng.integers(-10**12, 10**12, size=500), size=5000)
    enc = IdEncoder()
    codes = enc.fit_transform(ids)
    want, classes = brute_force_codes(ids.tolist())
    assert codes.tolist() == want
    assert enc.classes_.tolist() == classes
    # fit + transform agrees with fit_transform, and decoding restores the ids
    assert IdEncoder().fit(ids).transform(ids).tolist() == want
    np.testing.assert_array_equal(enc.inverse_transform(codes), ids)


def test_inverse_transform_keeps_shape():
    enc = IdEncoder().fit(["x", "y", "z"])
    out = enc.inverse_transform(np.array([[2, 0], [1, 1]]))
    assert out.shape == (2, 2)
    assert out.tolist() == [["z", "x"], ["y", "y"]]


def test_partial_fit_appends_without_changing_existing_codes():
    enc = IdEncoder().fit([30, 10, 20])
    before = enc.transform([30, 10, 20]).tolist()
    enc.partial_fit([40, 10, 5, 40])
    assert enc.transform([30, 10, 20]).tolist() == before == [0, 1, 2]
    assert enc.transform([40, 5]).tolist() == [3, 4]
    assert enc.add is not None and len(enc.add([5, 99])) == 6


def test_fit_forgets_previous_ids():
    enc = IdEncoder().fit(["a", "b"])
    enc.fit(["c"])
    assert enc.classes_.tolist() == ["c"]
    with pytest.raises(ValueError, match="not seen during fit"):
        enc.transform(["a"])


def test_unknown_error_lists_at_most_five_ids():
    enc = IdEncoder().fit(["a"])
    with pytest.raises(ValueError) as info:
        enc.transform(["a", "u1", "u2", "u3", "u1", "u4", "u5", "u6", "u7"])
    msg = str(info.value)
    assert "7 id(s)" in msg
    for shown in ("'u1'", "'u2'", "'u3'", "'u4'", "'u5'"):
        assert shown in msg
    assert "'u6'" not in msg and "2 more" in msg
    assert "partial_fit" in msg and "unknown='ignore'" in msg


def test_unknown_ignore_maps_to_minus_one():
    enc = IdEncoder(unknown="ignore").fit([10, 20])
    assert enc.transform([20, 30, 10, -1]).tolist() == [1, -1, 0, -1]
    with pytest.raises(ValueError, match="cannot be decoded"):
        enc.inverse_transform([-1])


def test_empty_encoder_treats_everything_as_unknown():
    enc = IdEncoder(unknown="ignore")
    assert len(enc) == 0
    assert enc.transform(["a", "b"]).tolist() == [-1, -1]
    assert enc.fit_transform([]).tolist() == []


def test_mixed_type_object_ids_use_the_dict_fallback():
    ids = np.array([1, "1", 2, "a", 1], dtype=object)
    enc = IdEncoder()
    assert enc.fit_transform(ids).tolist() == [0, 1, 2, 3, 0]
    assert enc.transform(np.array(["a", 2], dtype=object)).tolist() == [3, 2]
    assert enc.inverse_transform([1]).tolist() == ["1"]
    enc.partial_fit(np.array([("t",), 7], dtype=object))  # any hashable value
    assert len(enc) == 6


def test_integral_float_ids_become_ints_and_nan_is_rejected():
    enc = IdEncoder()
    assert enc.fit_transform(np.array([3.0, 5.0, 3.0])).tolist() == [0, 1, 0]
    assert enc.classes_.dtype == np.int64
    assert enc.transform([5]).tolist() == [1]
    with pytest.raises(ValueError, match="missing id"):
        IdEncoder().fit(np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="missing id"):
        IdEncoder().fit(np.array(["a", None], dtype=object))


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="`unknown`"):
        IdEncoder(unknown="drop")
    with pytest.raises(ValueError, match="1-D"):
        IdEncoder().fit(np.zeros((2, 2)))
    enc = IdEncoder().fit(["a", "b"])
    with pytest.raises(TypeError, match="dtype"):
        enc.transform([1, 2])
    with pytest.raises(TypeError, match="dtype"):
        enc.partial_fit([1, 2])
    with pytest.raises(TypeError, match="integers"):
        enc.inverse_transform([0.5])
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        enc.inverse_transform([2])


def test_classes_are_read_only():
    enc = IdEncoder().fit([1, 2])
    with pytest.raises(ValueError):
        enc.classes_[0] = 5
    assert enc.transform([1]).tolist() == [0]


@pytest.mark.parametrize("ids", [
    ["b", "a", "c"],
    [7, -3, 2**40],
    np.array([2**64 - 1, 1], dtype=np.uint64),
    [0.5, 1.5],
    np.array([1, "x"], dtype=object),
    np.array(["2020-01-02", "2020-01-01"], dtype="datetime64[D]"),
    [],
])
def test_config_round_trips_through_json(ids):
    enc = IdEncoder(unknown="ignore").fit(ids)
    config = json.loads(json.dumps(enc.get_config()))
    back = IdEncoder.from_config(config)
    assert back.unknown == "ignore"
    assert len(back) == len(enc)
    np.testing.assert_array_equal(back.classes_, enc.classes_)
    if len(enc):
        np.testing.assert_array_equal(back.transform(enc.classes_), np.arange(len(enc)))


def test_from_config_rejects_bad_configs():
    with pytest.raises(ValueError, match="missing key"):
        IdEncoder.from_config({"classes": []})
    with pytest.raises(ValueError, match="more than once"):
        IdEncoder.from_config({"unknown": "error", "dtype": "int64", "classes": [1, 1]})


def test_get_config_rejects_non_json_ids():
    enc = IdEncoder().fit(np.array([("a", 1), 2], dtype=object))
    with pytest.raises(TypeError, match="JSON"):
        enc.get_config()


def test_pandas_inputs():
    pd = pytest.importorskip("pandas")
    enc = IdEncoder()
    assert enc.fit_transform(pd.Series(["x", "y", "x"])).tolist() == [0, 1, 0]
    assert enc.transform(pd.Categorical(["y"])).tolist() == [1]
    assert IdEncoder().fit_transform(pd.array([5, 6, 5], dtype="Int64")).tolist() == [0, 1, 0]
    with pytest.raises(ValueError, match="missing id"):
        IdEncoder().fit(pd.Series(["x", None]))
