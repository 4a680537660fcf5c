"""Ranking metrics: hand-computed cases, C vs the NumPy reference, bad input,
and the standalone C test program under sanitizers."""
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from neurec import _core
from neurec.evaluation import (
    auc,
    hit_rate,
    map_at_k,
    mrr,
    ndcg,
    precision_at_k,
    ranking_metrics,
    ranks_from_scores,
    recall_at_k,
)
from neurec.evaluation.ranking import (
    _reference_metrics,
    _reference_ranks_full,
    _reference_ranks_sampled,
)

ROOT = Path(__file__).resolve().parents[1]
L2 = math.log2


# ---------------------------------------------------------------- hand cases
def test_ranks_ties_rank_positive_above_equal_negatives():
    pos = [0.5, 0.5, 0.9, 0.1]
    neg = [[0.9, 0.5, 0.1],     # one strictly higher, one tie
           [0.5, 0.5, 0.5],     # all ties -> top
           [0.1, 0.2, 0.3],     # top
           [0.2, 0.3, 0.4]]     # bottom
    np.testing.assert_array_equal(ranks_from_scores(pos, neg), [1, 0, 0, 3])


def test_auc_hand_with_ties():
    # user 0: below 1, tie 1, above 1 -> (1 + .5) / 3; user 1: all ties -> .5
    assert auc([0.5, 0.5], [[0.9, 0.5, 0.1], [0.5, 0.5, 0.5]]) == pytest.approx((1.5 / 3 + 0.5) / 2)


def test_nan_positive_ranks_last_and_nan_negative_below():
    ranks = ranks_from_scores([np.nan, 0.5], [[0.0, 1.0, np.nan], [np.nan, np.nan, 0.7]])
    np.testing.assert_array_equal(ranks, [3, 1])
    assert auc([np.nan], [[0.0, 1.0]]) == 0.0


def test_single_positive_metrics_by_hand():
    ranks = [0, 3, 12, 9]
    assert hit_rate(ranks, 10) == pytest.approx(3 / 4)
    assert ndcg(ranks, 10) == pytest.approx((1 + 1 / L2(5) + 1 / L2(11)) / 4)
    assert mrr(ranks) == pytest.approx((1 + 1 / 4 + 1 / 13 + 1 / 10) / 4)
    assert precision_at_k(ranks, 10) == pytest.approx(3 / 40)
    assert recall_at_k(ranks, 10) == pytest.approx(3 / 4)
    assert map_at_k(ranks, 10) == pytest.approx((1 + 1 / 4 + 1 / 10) / 4)
    assert hit_rate(ranks, 1) == 0.25 and hit_rate(ranks, 3) == 0.25 and hit_rate(ranks, 4) == 0.5


def test_multi_positive_metrics_by_hand():
    # User 0: ranks {5, 0, 0} -> positions 0, 1, 7.  User 1: no positive
    # (left out of the means).  User 2: one positive at rank 2.  k = 5.
    indptr = [0, 3, 3, 4]
    ranks = [5, 0, 0, 2]
    idcg0 = 1 + 1 / L2(3) + 1 / L2(4)
    m = ranking_metrics(ranks, k=5, indptr=indptr)
    assert m["hr@5"] == pytest.approx(1.0)
    assert m["precision@5"] == pytest.approx((2 / 5 + 1 / 5) / 2)
    assert m["recall@5"] == pytest.approx((2 / 3 + 1) / 2)
    assert m["ndcg@5"] == pytest.approx(((1 + 1 / L2(3)) / idcg0 + 0.5) / 2)
    assert m["map@5"] == pytest.approx(((1 / 1 + 2 / 2) / 3 + 1 / 3) / 2)
    assert m["mrr"] == pytest.approx((1 + 1 / 3) / 2)
    per = ranking_metrics(ranks, k=5, indptr=indptr, per_user=True)
    assert np.isnan(per["hr@5"][1]) and per["recall@5"][0] == pytest.approx(2 / 3)


def test_ranking_metrics_keys_and_several_cutoffs():
    m = ranking_metrics([0, 7], k=[1, 10], aucs=[1.0, 0.5])
    assert list(m) == ["hr@1", "ndcg@1", "hr@10", "ndcg@10", "mrr", "auc"]
    assert m["hr@1"] == 0.5 and m["hr@10"] == 1.0 and m["auc"] == 0.75


# ------------------------------------------------------- C vs NumPy reference
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_count_sampled_matches_reference(seed):
    rng = np.random.default_rng(seed)
    n, n_neg = 3000, 99
    pos = np.round(rng.random(n), 1).astype(np.float32)   # rounding forces ties
    neg = np.round(rng.random((n, n_neg)), 1).astype(np.float32)
    pos[rng.random(n) < 0.01] = np.nan
    neg[rng.random((n, n_neg)) < 0.01] = np.nan
    ranks, aucs = _core.count_sampled(pos, neg, n_threads=2)
    want_r, want_a = _reference_ranks_sampled(pos, neg)
    np.testing.assert_array_equal(ranks, want_r)
    np.testing.assert_allclose(aucs, want_a, rtol=0, atol=1e-12)


@pytest.mark.parametrize("k", [1, 5, 10, 50])
def test_score_matches_reference_single_and_multi(k):
    rng = np.random.default_rng(k)
    ranks = rng.integers(0, 60, 2000)
    aucs = rng.random(2000)
    got = ranking_metrics(ranks, k, aucs=aucs, per_user=True)
    want = _reference_metrics(ranks, k, aucs=aucs)
    for name in ("hr", "ndcg"):
        np.testing.assert_allclose(got[f"{name}@{k}"], want[name], rtol=1e-12)
    np.testing.assert_allclose(got["mrr"], want["mrr"], rtol=1e-12)
    np.testing.assert_allclose(got["auc"], want["auc"], rtol=1e-12)

    counts = rng.integers(0, 8, 500)  # includes users without positives
    indptr = np.concatenate([[0], np.cumsum(counts)])
    ranks = rng.integers(0, 30, indptr[-1])
    got = ranking_metrics(ranks, k, indptr=indptr, per_user=True)
    want = _reference_metrics(ranks, k, indptr=indptr)
    for name in ("hr", "ndcg", "precision", "recall", "map"):
        np.testing.assert_allclose(got[f"{name}@{k}"], want[name], rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(got["mrr"], want["mrr"], rtol=1e-12, equal_nan=True)
    means = ranking_metrics(ranks, k, indptr=indptr)
    assert means[f"map@{k}"] == pytest.approx(np.nanmean(want["map"]), rel=1e-12)


def test_count_full_matches_reference():
    rng = np.random.default_rng(5)
    n_rows, n_items = 80, 150
    scores = np.round(rng.random((n_rows, n_items)), 1).astype(np.float32)
    scores[rng.random(scores.shape) < 0.02] = np.nan
    positives = [np.sort(rng.choice(n_items, rng.integers(0, 6), replace=False))
                 for _ in range(n_rows)]
    excluded = [np.sort(rng.choice(n_items, rng.integers(0, 40), replace=False))
                for _ in range(n_rows)]
    pos_indptr = np.concatenate([[0], np.cumsum([p.size for p in positives])]).astype(np.int64)
    pos_indices = np.concatenate(positives).astype(np.int32)
    ex_indptr = np.concatenate([[0], np.cumsum([e.size for e in excluded])]).astype(np.int64)
    ex_indices = np.concatenate(excluded).astype(np.int32)
    above = np.empty(pos_indices.size, np.int64)
    aucs = np.empty(pos_indices.size)
    _core.count_full(scores, pos_indptr, pos_indices, above, aucs, indptr=ex_indptr,
                     indices=ex_indices, n_threads=2)
    want_r, want_a = _reference_ranks_full(scores, positives, excluded)
    np.testing.assert_array_equal(above, want_r)
    np.testing.assert_allclose(aucs, want_a, atol=1e-12)


def test_count_full_threads_agree_with_one_thread():
    rng = np.random.default_rng(6)
    scores = np.round(rng.random((300, 500)), 2).astype(np.float32)  # big enough to split
    positives = [np.sort(rng.choice(500, 3, replace=False)) for _ in range(300)]
    pos_indptr = np.arange(0, 901, 3, dtype=np.int64)
    pos_indices = np.concatenate(positives).astype(np.int32)
    results = []
    for nt in (1, 2):
        above = np.empty(900, np.int64)
        aucs = np.empty(900)
        _core.count_full(scores, pos_indptr, pos_indices, above, aucs, n_threads=nt)
        results.append((above, aucs))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])
    want_r, _ = _reference_ranks_full(scores, positives, [[]] * 300)
    np.testing.assert_array_equal(results[0][0], want_r)


def test_ranking_runs_on_the_shared_pools_from_several_threads():
    # Big enough to be split over the pool's threads; two Python threads borrow two pools.
    from concurrent.futures import ThreadPoolExecutor
    rng = np.random.default_rng(8)
    scores = rng.random((400, 300)).astype(np.float32)
    pos, neg = scores[:, 0].copy(), np.ascontiguousarray(scores[:, 1:])
    pos_indptr = np.arange(401, dtype=np.int64)
    pos_indices = np.zeros(400, np.int32)

    def run(n_threads):
        ids, top = _core.topk_rows(scores, 7, n_threads=n_threads)
        ranks, aucs = _core.count_sampled(pos, neg, n_threads=n_threads)
        above, full_aucs = np.empty(400, np.int64), np.empty(400)
        _core.count_full(scores, pos_indptr, pos_indices, above, full_aucs, n_threads=n_threads)
        return ids, top, ranks, aucs, above, full_aucs

    want = run(1)
    with ThreadPoolExecutor(2) as ex:
        for got in ex.map(run, [0, 2, 0, 3]):
            for g, w in zip(got, want):
                np.testing.assert_array_equal(g, w)
    np.testing.assert_array_equal(want[2], want[4])  # the positive is item 0 in both protocols


def test_bindings_keep_reference_counts_on_success_and_error():
    s = np.random.default_rng(0).random((20, 50)).astype(np.float32)
    ip = np.arange(21, dtype=np.int64)
    ix = np.arange(20, dtype=np.int32)
    ab = np.zeros(20, np.int64)
    au = np.zeros(20)
    arrays = (s, ip, ix, ab, au)
    before = [sys.getrefcount(a) for a in arrays]
    for _ in range(50):
        _core.topk_rows(s, 5, indptr=ip, indices=ix, row_users=ip[:20].copy())
        _core.count_full(s, ip, ix, ab, au, indptr=ip, indices=ix)
        _core.score(ab, 5, indptr=ip, auc=au)
        with pytest.raises(IndexError):
            _core.count_full(s, ip, ix + 100, ab, au)  # item ids past n_items
        with pytest.raises(TypeError):
            _core.score(ab, 5, indptr=ip, auc=au.astype(np.float32))
    assert [sys.getrefcount(a) for a in arrays] == before


def test_inputs_are_not_modified():
    rng = np.random.default_rng(0)
    pos = rng.random(50).astype(np.float32)
    neg = rng.random((50, 9)).astype(np.float32)
    pos0, neg0 = pos.copy(), neg.copy()
    ranks = ranks_from_scores(pos, neg)
    ranks0 = ranks.copy()
    ranking_metrics(ranks, 5)
    np.testing.assert_array_equal(pos, pos0)
    np.testing.assert_array_equal(neg, neg0)
    np.testing.assert_array_equal(ranks, ranks0)


# --------------------------------------------------------------- bad input
@pytest.mark.parametrize("k, exc", [(0, ValueError), (-3, ValueError), (2.5, TypeError),
                                    (True, TypeError), ("10", TypeError)])
def test_bad_k_is_named(k, exc):
    with pytest.raises(exc, match="k must be a positive integer"):
        hit_rate([0, 1], k)


def test_bad_ranks_and_lengths():
    with pytest.raises(ValueError, match="negative"):
        ndcg([0, -1], 10)
    with pytest.raises(TypeError, match="ranks"):
        ndcg([0.5, 1.0], 10)
    with pytest.raises(ValueError, match="neg_scores has 2 rows but pos_scores has 3"):
        ranks_from_scores([0.1, 0.2, 0.3], [[0.1], [0.2]])
    with pytest.raises(TypeError, match="pos_scores"):
        ranks_from_scores(["a"], [[0.1]])
    with pytest.raises(ValueError, match="indptr"):
        ranking_metrics([0, 1, 2], 10, indptr=[0, 2])
    with pytest.raises(ValueError, match="aucs"):
        ranking_metrics([0, 1], 10, aucs=[0.5])


def test_binding_rejects_wrong_dtype_layout_and_shape():
    pos = np.zeros(4, np.float32)
    neg = np.zeros((4, 6), np.float32)
    with pytest.raises(TypeError, match="pos_scores must have dtype float32"):
        _core.count_sampled(pos.astype(np.float64), neg)
    with pytest.raises(TypeError, match="neg_scores must be a numpy.ndarray"):
        _core.count_sampled(pos, neg.tolist())
    with pytest.raises(ValueError, match="neg_scores must be C-contiguous"):
        _core.count_sampled(pos, np.zeros((6, 4), np.float32).T)
    with pytest.raises(ValueError, match="pos_scores must be C-contiguous"):
        _core.count_sampled(np.zeros(8, np.float32)[::2], neg)
    with pytest.raises(ValueError, match="neg_scores must be 2-dimensional"):
        _core.count_sampled(pos, np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="k must be a positive integer"):
        _core.score(np.zeros(3, np.int64), 0)
    with pytest.raises(TypeError, match="above must have dtype int64"):
        _core.score(np.zeros(3, np.int32), 5)
    above = np.zeros(2, np.int64)
    above.flags.writeable = False
    with pytest.raises(ValueError, match="out_above must be writeable"):
        _core.count_full(np.zeros((1, 5), np.float32), np.array([0, 2]),
                         np.array([1, 3], np.int32), above)
    with pytest.raises(ValueError, match="pos_indices must hold strictly ascending"):
        _core.count_full(np.zeros((1, 5), np.float32), np.array([0, 2]),
                         np.array([3, 1], np.int32), np.zeros(2, np.int64))
    with pytest.raises(ValueError, match="pos_indptr must have 2 entries"):
        _core.count_full(np.zeros((1, 5), np.float32), np.array([0, 1, 2]),
                         np.array([1, 3], np.int32), np.zeros(2, np.int64))


# ------------------------------------------------------ C program, sanitized
def test_c_program_under_sanitizers(tmp_path):
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc not found")
    exe = tmp_path / "test_rank"
    cmd = [gcc, "-std=c11", "-O1", "-g", "-Wall", "-Wextra", "-Werror",
           "-fsanitize=address,undefined", "-fno-omit-frame-pointer",
           "-fno-sanitize-recover=undefined", f"-I{ROOT / 'csrc/include'}",
           str(ROOT / "csrc/tests/test_rank.c"), str(ROOT / "csrc/src/rank.c"),
           str(ROOT / "csrc/src/topk.c"), "-lm", "-o", str(exe)]
    build = subprocess.run(cmd, capture_output=True, text=True)
    if build.returncode != 0 and "sanitize" in build.stderr and "cannot find" in build.stderr:
        pytest.skip("sanitizer runtime libraries are not installed")
    assert build.returncode == 0, build.stderr
    env = dict(os.environ, UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1")
    run = subprocess.run([str(exe)], capture_output=True, text=True, env=env, timeout=60)
    if run.returncode != 0 and "LeakSanitizer has encountered a fatal error" in run.stderr:
        # LSan cannot run under ptrace (some CI sandboxes); keep ASan/UBSan.
        env["ASAN_OPTIONS"] = "detect_leaks=0"
        run = subprocess.run([str(exe)], capture_output=True, text=True, env=env, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "all" in run.stdout and "checks passed" in run.stdout
