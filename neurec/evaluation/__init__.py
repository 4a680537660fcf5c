"""Ranking evaluation for recommenders: metrics, protocols, callback, baseline.

Metrics and top-K selection run in C (``neurec._core``) with the GIL
released. Tie rule everywhere: only candidates scored *strictly* higher rank
above a held-out item (the README's "Ranking tie rule").

    from neurec.evaluation import evaluate_sampled, evaluate_full, RankingMetrics

    evaluate_sampled(model, test_users, test_items, test_negatives, k=10)
    # {'hr@10': 0.68, 'ndcg@10': 0.41, 'mrr': 0.36, 'auc': 0.91}
    evaluate_full(model, test_users, test_items, train_matrix, k=10)
"""
from neurec.evaluation.baselines import PopularityModel
from neurec.evaluation.callbacks import RankingMetrics
from neurec.evaluation.protocols import evaluate_full, evaluate_sampled
from neurec.evaluation.ranking import (
                                       auc,
                                       hit_rate,
                                       map_at_k,
                                       mrr,
                                       ndcg,
                                       precision_at_k,
                                       ranking_metrics,
                                       ranks_from_scores,
                                       recall_at_k,
                                       top_k,
)

__all__ = [
    "ranks_from_scores", "auc", "hit_rate", "ndcg", "mrr", "precision_at_k", "recall_at_k",
    "map_at_k", "ranking_metrics", "top_k", "evaluate_sampled", "evaluate_full",
    "RankingMetrics", "PopularityModel",
]
