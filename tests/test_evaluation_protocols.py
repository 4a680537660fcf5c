"""Sampled and full-ranking protocols with fake models of known scores, and
the RankingMetrics callback."""
import math

import numpy as np
import pytest

from neurec.callbacks import CallbackList
from neurec.evaluation import (
    PopularityModel,
    RankingMetrics,
    evaluate_full,
    evaluate_sampled,
    protocols,
)
from neurec.evaluation.ranking import (
    _reference_metrics,
    _reference_ranks_full,
    _reference_ranks_sampled,
)


class TableModel:
    """Keras-style predict over a fixed (n_users, n_items) score table."""

    def __init__(self, table):
        self.table = np.asarray(table, np.float32)
        self.calls = 0

    def predict(self, x, batch_size=None, verbose="auto"):
        assert verbose == 0
        users, items = x
        self.calls += 1
        return self.table[users, items].reshape(-1, 1)


class BlockModel(TableModel):
    """Also offers the score_items fast path."""

    def __init__(self, table):
        super().__init__(table)
        self.block_calls = 0

    def score_items(self, user_ids):
        self.block_calls += 1
        return self.table[user_ids]


# ------------------------------------------------------------------ sampled
def test_evaluate_sampled_by_hand():
    table = np.array([[0.9, 0.1, 0.5, 0.5],    # user 0
                      [0.2, 0.8, 0.3, 0.9],    # user 1
                      [0.4, 0.4, 0.4, 0.4]])   # user 2: all ties
    users = [0, 1, 2]
    pos = [2, 0, 3]
    negs = [[0, 1, 3],   # 0.9 above; 0.5 tie -> rank 1, auc (1 + .5)/3
            [1, 2, 3],   # all three above -> rank 3, auc 0
            [0, 1, 2]]   # ties -> rank 0, auc .5
    m = evaluate_sampled(TableModel(table), users, pos, negs, k=1)
    assert m["hr@1"] == pytest.approx(1 / 3)
    assert m["ndcg@1"] == pytest.approx(1 / 3)
    assert m["mrr"] == pytest.approx((1 / 2 + 1 / 4 + 1) / 3)
    assert m["auc"] == pytest.approx((1.5 / 3 + 0 + 0.5) / 3)
    m = evaluate_sampled(TableModel(table), users, pos, negs, k=2)
    assert m["hr@2"] == pytest.approx(2 / 3)
    assert m["ndcg@2"] == pytest.approx((1 / math.log2(3) + 1) / 3)
    assert list(m) == ["hr@2", "ndcg@2", "mrr", "auc"]


def test_evaluate_sampled_matches_reference_and_chunks(monkeypatch):
    rng = np.random.default_rng(0)
    n_users, n_items = 300, 200
    table = np.round(rng.random((n_users, n_items)), 1)
    users = rng.permutation(n_users)
    pos = rng.integers(0, n_items, n_users)
    negs = rng.integers(0, n_items, (n_users, 99))
    model = TableModel(table)
    got = evaluate_sampled(model, users, pos, negs, k=[5, 10], per_user=True)
    t = model.table
    ranks, aucs = _reference_ranks_sampled(t[users, pos], t[users[:, None], negs])
    for k in (5, 10):
        want = _reference_metrics(ranks, k, aucs=aucs)
        np.testing.assert_allclose(got[f"hr@{k}"], want["hr"])
        np.testing.assert_allclose(got[f"ndcg@{k}"], want["ndcg"])
    np.testing.assert_allclose(got["auc"], aucs)
    assert model.calls == 1

    monkeypatch.setattr(protocols, "_MAX_PAIRS", 1000)  # 10 users per predict call
    model = TableModel(table)
    chunked = evaluate_sampled(model, users, pos, negs, k=10)
    assert model.calls == 30
    whole = evaluate_sampled(TableModel(table), users, pos, negs, k=10)
    assert chunked == whole


def test_evaluate_sampled_with_popularity_baseline():
    pop = PopularityModel().fit((np.array([0, 1, 2, 2]), np.array([3, 3, 3, 1])), n_items=5)
    # popularity: item 3 -> 3, item 1 -> 1, others 0
    m = evaluate_sampled(pop, [0, 1], [3, 0], [[0, 1, 2], [1, 2, 4]], k=1)
    assert m["hr@1"] == 0.5           # user 1's item 0 is below item 1
    assert m["auc"] == pytest.approx((1.0 + (0 + 2 * 0.5) / 3) / 2)  # item 0 ties 2 and 4


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(pos_items=[1, 2]), ValueError, "one entry"),
    (dict(negatives=[[1], [2]]), ValueError, "one entry"),
    (dict(negatives=np.zeros((3, 0), int)), ValueError, "at least one negative"),
    (dict(k=0), ValueError, "k must be a positive integer"),
    (dict(users=[0.0, 1.0, 2.0]), TypeError, "users must hold integer ids"),
    (dict(pos_items=[1, -2, 3]), ValueError, "pos_items must not contain negative"),
    (dict(negatives=[1, 2, 3]), ValueError, "negatives must be 2-dimensional"),
    (dict(batch_size=0), ValueError, "batch_size must be a positive integer"),
])
def test_evaluate_sampled_bad_input(kwargs, exc, match):
    args = dict(users=[0, 1, 2], pos_items=[1, 2, 3], negatives=[[0], [0], [0]], k=10)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        evaluate_sampled(TableModel(np.zeros((3, 4))), **args)


def test_model_returning_wrong_shape_is_reported():
    class Bad:
        def predict(self, x, batch_size=None, verbose=0):
            return np.zeros((len(x[0]), 2), np.float32)
    with pytest.raises(ValueError, match=r"model.predict returned shape \(6, 2\)"):
        evaluate_sampled(Bad(), [0, 1, 2], [1, 2, 3], [[0], [0], [0]])


# --------------------------------------------------------------------- full
def _full_reference(table, users, positives, train_rows, k):
    scores = table[users]
    excluded = [train_rows.get(int(u), []) for u in users]
    ranks, aucs = _reference_ranks_full(scores, positives, excluded)
    indptr = np.concatenate([[0], np.cumsum([len(p) for p in positives])])
    return _reference_metrics(ranks, k, indptr=indptr, aucs=aucs)


def _random_full(seed, n_users=120, n_items=90):
    rng = np.random.default_rng(seed)
    table = np.round(rng.random((n_users, n_items)), 1)
    tu = rng.integers(0, n_users, 2000)
    ti = rng.integers(0, n_items, 2000)
    train_rows = {u: np.unique(ti[tu == u]) for u in range(n_users)}
    return rng, table, (tu, ti), train_rows


def test_evaluate_full_single_positive_matches_reference():
    rng, table, train, train_rows = _random_full(1)
    users = rng.permutation(120)[:100]
    pos = rng.integers(0, 90, 100)
    want = _full_reference(table.astype(np.float32), users, [[p] for p in pos], train_rows, 10)
    model = TableModel(table)
    got = evaluate_full(model, users, pos, train, k=10, n_items=90, per_user=True)
    np.testing.assert_allclose(got["hr@10"], want["hr"])
    np.testing.assert_allclose(got["ndcg@10"], want["ndcg"])
    np.testing.assert_allclose(got["mrr"], want["mrr"])
    np.testing.assert_allclose(got["auc"], want["auc"])
    assert "precision@10" not in got

    # Same numbers through score_items, and in small blocks.
    block = BlockModel(table)
    means = evaluate_full(block, users, pos, train, k=10, n_items=90, max_block_bytes=90 * 4 * 7)
    assert block.block_calls == math.ceil(100 / 7) and block.calls == 0
    assert means["ndcg@10"] == pytest.approx(np.mean(want["ndcg"]), rel=1e-12)
    small = TableModel(table)
    assert evaluate_full(small, users, pos, train, n_items=90, max_block_bytes=90 * 16 * 9) == means
    assert small.calls == math.ceil(100 / 9)


def test_evaluate_full_several_positives_matches_reference():
    sp = pytest.importorskip("scipy.sparse")
    rng, table, train, train_rows = _random_full(2)
    hu = rng.integers(0, 120, 400)
    hi = rng.integers(0, 90, 400)
    positives_of = {u: np.unique(hi[hu == u]) for u in range(120)}
    users = np.array([u for u in range(120) if positives_of[u].size])
    want = _full_reference(table.astype(np.float32), users,
                           [positives_of[u] for u in users], train_rows, 5)
    model = BlockModel(table)
    got = evaluate_full(model, None, (hu, hi), train, k=5, n_items=90, per_user=True)
    for name in ("hr", "ndcg", "precision", "recall", "map"):
        np.testing.assert_allclose(got[f"{name}@5"], want[name], rtol=1e-12)
    np.testing.assert_allclose(got["mrr"], want["mrr"], rtol=1e-12)
    np.testing.assert_allclose(got["auc"], want["auc"], rtol=1e-12)

    held = sp.csr_matrix((np.ones(hu.size), (hu, hi)), shape=(120, 90))
    train_m = sp.csr_matrix((np.ones(train[0].size), train), shape=(120, 90))
    means = evaluate_full(model, users, held, train_m, k=5)
    assert means["map@5"] == pytest.approx(np.mean(want["map"]), rel=1e-12)
    data = pytest.importorskip("neurec.data")
    im = data.InteractionMatrix.from_arrays(hu, hi, shape=(120, 90))
    tm = data.InteractionMatrix.from_arrays(*train, shape=(120, 90))
    assert evaluate_full(model, users, im, tm, k=5) == means


def test_evaluate_full_excludes_training_items_by_hand():
    table = np.array([[0.9, 0.8, 0.7, 0.1]])
    # Item 3 held out; items 0 and 1 were trained on, so only item 2 is above.
    m = evaluate_full(TableModel(table), [0], [3], (np.array([0, 0]), np.array([0, 1])), k=1,
                      n_items=4)
    assert m["hr@1"] == 0.0 and m["mrr"] == 0.5 and m["auc"] == 0.0
    m = evaluate_full(TableModel(table), [0], [3], None, k=5, n_items=4)
    assert m["mrr"] == 0.25


def test_evaluate_full_bad_input():
    model = TableModel(np.zeros((3, 4)))
    train = (np.array([0]), np.array([1]))
    with pytest.raises(ValueError, match="same length"):
        evaluate_full(model, [0, 1], [1], train, n_items=4)
    with pytest.raises(ValueError, match="pos_items contains item id 9"):
        evaluate_full(model, [0], [9], train, n_items=4)
    with pytest.raises(ValueError, match="users is required"):
        evaluate_full(model, None, [1], train, n_items=4)
    with pytest.raises(ValueError, match="n_items is required"):
        evaluate_full(model, [0], [1], None)
    with pytest.raises(ValueError, match="n_items is required"):
        evaluate_full(model, [0], [1], train)  # a tuple does not give the catalog size
    with pytest.raises(TypeError, match="train_matrix must be"):
        evaluate_full(model, [0], [1], [[0, 1]])
    with pytest.raises(ValueError, match="score_items returned shape"):
        class BadBlock(TableModel):
            def score_items(self, user_ids):
                return np.zeros((len(user_ids), 3), np.float32)
        evaluate_full(BadBlock(np.zeros((3, 4))), [0], [1], train, n_items=4)


# ----------------------------------------------------------------- callback
def test_ranking_metrics_callback_writes_logs_into_history():
    table = np.array([[0.9, 0.1, 0.5], [0.2, 0.8, 0.3]])
    model = TableModel(table)
    cb = RankingMetrics([0, 1], [0, 2], negatives=[[1, 2], [0, 1]], k=1, prefix="val_")
    cbs = CallbackList([cb], add_history=True, model=model, epochs=3)
    for epoch in range(3):
        logs = {"loss": 0.5}
        cbs.on_epoch_end(epoch, logs)
        assert logs["val_hr@1"] == 0.5 and logs["val_auc"] == 0.75  # (1 + .5) / 2
    hist = model.history.history
    assert hist["val_hr@1"] == [0.5, 0.5, 0.5]
    assert hist["val_ndcg@1"] == [0.5, 0.5, 0.5]
    assert model.calls == 3


def test_ranking_metrics_callback_every_and_full_ranking():
    model = TableModel(np.array([[0.9, 0.8, 0.7, 0.1]]))
    cb = RankingMetrics([0], [2], train_matrix=(np.array([0]), np.array([0])), k=1, every=2,
                        n_items=4)
    cb.set_model(model)
    logs = {}
    cb.on_epoch_end(0, logs)
    assert logs == {} and model.calls == 0
    cb.on_epoch_end(1, logs)
    assert logs == {"hr@1": 0.0, "ndcg@1": 0.0, "mrr": 0.5, "auc": 0.5}


def test_ranking_metrics_callback_bad_arguments():
    with pytest.raises(ValueError, match="not both"):
        RankingMetrics([0], [1], negatives=[[2]], train_matrix=(np.array([0]), np.array([0])))
    with pytest.raises(ValueError, match="pass negatives="):
        RankingMetrics([0], [1])
    with pytest.raises(ValueError, match="every must be a positive integer"):
        RankingMetrics([0], [1], negatives=[[2]], every=0)
    with pytest.raises(ValueError, match="one entry"):
        RankingMetrics([0, 1], [1], negatives=[[2]])
