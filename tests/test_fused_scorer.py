"""The fused NeuMF / MLP scorer of ``recommend`` (``neurec/models/_fused.py``,
``csrc/src/score_ncf.c``) against the generic path.

The oracle is the generic path itself (the compiled plan over (user, item) pair blocks,
then ``topk_rows``), reached by turning the fused scorer off. On random NeuMF / MLP models
of several shapes (odd widths hit every vector tail), with sigmoid, linear, tanh and relu
outputs, exclusions, retired items, candidate subsets, ``k`` beyond the candidates and
exact ties, at every SIMD level this CPU runs: the top-K ids are the generic path's, ties
included, and the fused scores equal the generic scores (to 1e-5; in fact bit for bit).
Graphs of any other shape fall back to the generic path.
"""
import re
from pathlib import Path

import numpy as np
import pytest

import neurec
from neurec import _core
from neurec.data import InteractionMatrix
from neurec.layers import Concatenate, Dense, Dropout, Embedding, Flatten, Input, Multiply
from neurec.models import MLP, Model, NeuMF, _fused
from neurec.models.recommend import _Roles, hoisted_pair_model, score_items

ROOT = Path(__file__).resolve().parents[1]
LEVEL_ORDER = {"sse2": 0, "neon": 0, "generic": 0, "avx2": 1, "avx512": 2}


def _levels():
    info = _core.build_info()
    best = LEVEL_ORDER[info["simd_supported"]]
    return [lv for lv in info["simd_compiled"] if LEVEL_ORDER[lv] <= best]


@pytest.fixture(params=_levels())
def level(request):
    before = _core.build_info()["simd_level"]
    assert _core._set_simd_level(request.param) == request.param
    yield request.param
    _core._set_simd_level(before)


@pytest.fixture
def generic(monkeypatch):
    """Call ``run()`` with the fused scorer off."""
    def run(fn):
        monkeypatch.setattr(_fused, "ENABLED", False)
        try:
            return fn()
        finally:
            monkeypatch.setattr(_fused, "ENABLED", True)
    return run


def _ncf(nu, ni, factors, layers, out="sigmoid", hidden="relu", gmf_first=True, dropout=False):
    """NeuMF (factors > 0) or MLP (factors 0), as the zoo builds them, with the output
    and hidden activations given (and optionally Dropout layers, the identity here)."""
    u, i = Input(shape=(1,), dtype="int64"), Input(shape=(1,), dtype="int64")
    half = layers[0] // 2
    mu = Flatten()(Embedding(nu, half)(u))
    mi = Flatten()(Embedding(ni, half)(i))
    h = Concatenate()([mu, mi])
    for units in layers[1:]:
        h = Dense(units, activation=hidden)(h)
        if dropout:
            h = Dropout(0.3)(h)
    if factors:
        g = Multiply()([Flatten()(Embedding(nu, factors)(u)), Flatten()(Embedding(ni, factors)(i))])
        h = Concatenate()([g, h] if gmf_first else [h, g])
    return Model([u, i], Dense(1, activation=out)(h))


def _randomise(model, scale=0.6, seed=0):
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0, scale, w.shape).astype(np.float32)
                       for w in model.get_weights()])
    return model


def _parts(model):
    """The fused form of the model's hoisted scoring model (None: the generic path runs)."""
    roles = _Roles(model, None, None, None, None)
    fast = hoisted_pair_model(model, roles, Model) or model
    sr = _Roles(fast, None, None, None, None)
    return fast, _fused.ncf_parts(fast, sr.u_in, sr.i_in)


SHAPES = [  # (factors, layers, out, hidden)
    (8, (64, 32, 16, 8), "sigmoid", "relu"),
    (4, (32, 16, 8), "sigmoid", "relu"),
    (7, (8,), "sigmoid", "relu"),
    (13, (26, 13, 7), "linear", "relu"),
    (16, (32, 16, 8), "linear", "tanh"),
    (0, (64, 32, 16, 8), "sigmoid", "relu"),
    (0, (8,), "sigmoid", "relu"),
    (0, (30, 9), "tanh", "sigmoid"),
    (5, (12, 6), "relu", "relu"),
]
NU, NI = 31, 203


def _case(factors, layers, out, hidden, seed=0, **kw):
    return _randomise(_ncf(NU, NI, factors, layers, out, hidden, **kw), seed=seed)


def _exclude(seed=3, density=0.25):
    rng = np.random.default_rng(seed)
    mask = rng.random((NU, NI)) < density
    mask[2] = True          # has seen every item: all -1 / -inf
    mask[5, :-3] = True     # three candidates left
    u, i = np.nonzero(mask)
    return InteractionMatrix.from_arrays(u, i, shape=(NU, NI))


@pytest.mark.parametrize("factors, layers, out, hidden", SHAPES)
def test_fused_scores_and_ranking_equal_the_generic_path(factors, layers, out, hidden, level):
    model = _case(factors, layers, out, hidden, seed=len(layers) + factors)
    fast, parts = _parts(model)
    assert parts is not None, "this shape must take the fused path"
    users = np.arange(NU)
    ids, scores = parts.topk(users, NI)  # every item, ranked
    P = score_items(fast, users)         # the generic path's scores (the plan)
    order = np.lexsort((np.broadcast_to(np.arange(NI), P.shape), -P), axis=1)
    np.testing.assert_array_equal(ids, order)
    got = np.take_along_axis(P, ids, axis=1)
    np.testing.assert_allclose(scores, got, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(scores, got)  # the same sums in the same order


@pytest.mark.parametrize("factors, layers, out, hidden", SHAPES)
@pytest.mark.parametrize("k", [1, 10, 1000])
def test_recommend_equals_the_generic_path(factors, layers, out, hidden, k, level, generic):
    model = _case(factors, layers, out, hidden, seed=k)
    users = np.array([3, 0, 2, 5, 30, 7, 7])
    ex = _exclude()
    got = model.recommend(users, k=k, exclude=ex)
    want = generic(lambda: model.recommend(users, k=k, exclude=ex))
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    assert got[0].shape == (users.size, min(k, NI))
    assert (got[0][2] == -1).all() and (got[0][3][3:] == -1).all()  # users 2 and 5


def test_candidates_retired_items_and_exclusions(level, generic):
    model = _case(8, (32, 16, 8), "sigmoid", "relu", seed=7)
    model.retire_items([0, 5, 6, 150, 202])
    users = np.arange(NU)
    ex = _exclude(seed=9)
    cand = np.array([202, 1, 5, 7, 8, 40, 41, 42, 99, 100, 150, 151, 180, 181, 190])
    for kw in ({}, {"items": cand}, {"exclude": ex}, {"items": cand, "exclude": ex}):
        got = model.recommend(users, k=12, **kw)
        want = generic(lambda: model.recommend(users, k=12, **kw))  # noqa: B023
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
        assert not np.isin(got[0], [0, 5, 6, 150, 202]).any()


def test_equal_items_tie_by_the_lower_id(level, generic):
    """Duplicate item rows score exactly alike: the lower id comes first, as in the generic
    path and nr_topk."""
    model = _case(8, (32, 16, 8), "sigmoid", "relu", seed=11)
    for layer in model.layers:
        if isinstance(layer, Embedding) and layer.input_dim == NI:
            layer.embeddings[100:] = layer.embeddings[17]  # items 17 and 100.. are one item
    users = np.arange(NU)
    got = model.recommend(users, k=40)
    np.testing.assert_array_equal(got[0], generic(lambda: model.recommend(users, k=40))[0])
    for row, sc in zip(*got):
        tied = row[sc == sc[np.flatnonzero(row == 17)]] if 17 in row else row[:0]
        assert np.all(np.diff(tied) > 0)


def test_saturated_sigmoid_ties_by_id_like_the_generic_path(level, generic):
    """Large logits make many float32 sigmoid outputs exactly 1.0: those tie and go by id
    (the fused scorer ranks on the output, evaluating the sigmoid only where a logit can
    still reach a user's top-K)."""
    model = _case(8, (32, 16, 8), "sigmoid", "relu", seed=13)
    pred = model.layers[-1]
    pred.kernel[...] *= 40.0
    pred.bias[...] = 30.0
    users = np.arange(NU)
    P = score_items(model, users)
    assert np.median((P == 1.0).sum(axis=1)) > 25  # more exact ties than k, for most users
    got = model.recommend(users, k=25)
    want = generic(lambda: model.recommend(users, k=25))
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


def test_nan_item_is_never_recommended(generic):
    model = _case(4, (16, 8), "sigmoid", "relu", seed=2)
    for layer in model.layers:
        if isinstance(layer, Embedding) and layer.input_dim == NI:
            layer.embeddings[9] = np.nan
            break
    got = model.recommend(np.arange(NU), k=NI)
    np.testing.assert_array_equal(got[0], generic(lambda: model.recommend(np.arange(NU), k=NI))[0])
    assert not (got[0] == 9).any() and (got[0][:, -1] == -1).all()


def test_zoo_models_and_dropout_take_the_fused_path():
    for m in (NeuMF(9, 20, factors=8), MLP(9, 20), MLP(9, 20, layers=(8,)),
              NeuMF(9, 20, factors=3, layers=(8,)), _ncf(9, 20, 4, (16, 8), dropout=True),
              _ncf(9, 20, 4, (16, 8), gmf_first=False)):
        assert _parts(m)[1] is not None


def _other_graphs():
    u, i = Input(shape=(1,), dtype="int64"), Input(shape=(1,), dtype="int64")
    pu, qi = Flatten()(Embedding(9, 4)(u)), Flatten()(Embedding(20, 4)(i))
    h = Dense(6, activation="relu")(Concatenate()([pu, qi]))
    yield "softmax output", Model([u, i], Dense(1, activation="softmax")(h))
    yield "1-unit tower layer", Model([u, i], Dense(1)(Dense(1, activation="relu")(h)))
    yield "subtract", Model([u, i], Dense(1)(Concatenate()([h, neurec.layers.Subtract()([pu, qi])])))
    yield "two outputs", Model([u, i], Dense(2)(h))
    yield "activation on activation", Model(
        [u, i], neurec.layers.Activation("sigmoid")(Dense(1, activation="tanh")(h)))
    side = Input(shape=(3,))
    yield "side features", Model([u, i, side], Dense(1)(Concatenate()([h, side])))


@pytest.mark.parametrize("name, model", list(_other_graphs()), ids=lambda x: x
                         if isinstance(x, str) else "")
def test_other_graphs_fall_back_to_the_generic_path(name, model):
    if len(model.inputs) > 2:
        assert _fused.ncf_parts(model, *model.inputs[:2]) is None
    else:
        assert _parts(model)[1] is None
    if name not in ("two outputs", "side features"):
        _randomise(model)
        ids, _ = model.recommend(np.arange(9), k=4)
        P = score_items(model, np.arange(9))
        np.testing.assert_array_equal(
            ids, np.lexsort((np.broadcast_to(np.arange(20), P.shape), -P), axis=1)[:, :4])


def test_threads_give_the_same_result():
    model = _case(8, (32, 16, 8), "sigmoid", "relu", seed=5)
    _, parts = _parts(model)
    users = np.arange(NU)
    old = neurec.get_num_threads()
    try:
        neurec.set_num_threads(1)
        one = parts.topk(users, 15)
        neurec.set_num_threads(3)
        three = parts.topk(users, 15)
    finally:
        neurec.set_num_threads(old)
    np.testing.assert_array_equal(one[0], three[0])
    np.testing.assert_array_equal(one[1], three[1])


def test_long_calls_are_cut_into_chunks(monkeypatch):
    """Python lets Ctrl-C through between C calls: many users take several calls, each
    writing its own rows."""
    model = _case(8, (64, 32, 16, 8), "sigmoid", "relu", seed=6)
    _, parts = _parts(model)
    calls = []
    real = _core.ncf_topk

    def counting(*args, **kw):
        calls.append(args[1].size)
        return real(*args, **kw)

    monkeypatch.setattr(_core, "ncf_topk", counting)
    users = np.tile(np.arange(NU), 200)
    ids, _ = parts.topk(users, 3)
    assert len(calls) > 1 and sum(calls) == users.size
    np.testing.assert_array_equal(ids, np.tile(ids[:NU], (200, 1)))


def test_part_names_match_the_c_enum():
    text = re.sub(r"/\*.*?\*/", "", (ROOT / "csrc/include/neurec/nr_score_ncf.h").read_text(),
                  flags=re.S)
    body = re.search(r"enum nr_ncf_part_kind\s*\{(.*?)\};", text, re.S).group(1)
    c_enum = {m.group(1): int(m.group(2)) for m in re.finditer(r"NR_NCF_(\w+)\s*=\s*(\d+)", body)}
    assert {k.upper(): v for k, v in _core.NCF_PARTS.items()} == c_enum


def _desc(parts):
    return parts._desc


def test_bad_arguments_raise_naming_them():
    _, parts = _parts(_case(4, (16, 8), "sigmoid", "relu"))
    d = _desc(parts)
    users = np.arange(3, dtype=np.int64)
    ids, sc = np.empty((3, 2), np.int64), np.empty((3, 2), np.float32)

    def call(desc=d, **kw):
        args = {"users": users, "k": 2, "out_ids": ids, "out_scores": sc, **kw}
        _core.ncf_topk(desc, **args)

    call()
    with pytest.raises(TypeError, match="users must have dtype int64"):
        call(users=users.astype(np.int32))
    with pytest.raises(IndexError, match="users"):
        call(users=np.array([0, 1, NU], np.int64))
    with pytest.raises(ValueError, match="strictly ascending"):
        call(items=np.array([3, 1], np.int64))
    with pytest.raises(IndexError, match="items"):
        call(items=np.array([1, NI], np.int64))
    with pytest.raises(ValueError, match="out_ids, out_scores"):
        call(out_ids=np.empty((3, 3), np.int64))
    with pytest.raises(ValueError, match="indptr, indices and rows go together"):
        call(indptr=np.array([0, 0], np.int64))
    with pytest.raises(ValueError, match="indptr, indices and rows go together"):
        call(indptr=np.array([0, 3], np.int64), indices=np.zeros(2, np.int32),
             rows=np.zeros(3, np.int64))
    with pytest.raises(IndexError, match="rows"):
        call(indptr=np.array([0, 1], np.int64), indices=np.zeros(1, np.int32),
             rows=np.array([0, 1, -1], np.int64))
    # a CSR whose indices run past its last offset (a view of a larger matrix) is fine
    best = np.empty((3, 2), np.int64)
    call(out_ids=best)
    call(indptr=np.array([0, 1, 1], np.int64), indices=np.array([best[0, 0], 7], np.int32),
         rows=np.array([0, 1, -1], np.int64))
    assert ids[0, 0] == best[0, 1] and (ids[1:] == best[1:]).all()
    with pytest.raises(ValueError, match="zu and zi"):
        call(d._replace(zi=None))
    with pytest.raises(ValueError, match="pred_w"):
        call(d._replace(pred_w=d.pred_w[:-1].copy()))
    with pytest.raises(ValueError, match="not a model the fused scorer runs"):
        call(d._replace(out_act=_core.ACTIVATIONS["softmax"]))
    with pytest.raises(ValueError, match="rows"):
        call(d._replace(zu=np.zeros((NU + 1, d.zu.shape[1]), np.float32),
                        parts=d.parts[:1]), )
    with pytest.raises(TypeError, match="field 'layers'"):
        call(d._replace(layers=5))
    with pytest.raises(TypeError, match="has no field 'kernel'"):
        call(d._replace(layers=(object(),)))
