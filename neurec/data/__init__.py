"""Data handling for recommenders: ids, interaction logs and matrices, splits, file formats.

From a raw log to the NCF protocol::

    from neurec.data import InteractionLog, leave_one_out, sample_negatives

    log = InteractionLog.read_csv("events.csv", user_col="user_id", item_col="sku",
                                  time_col="ts")
    log, users, items = log.to_implicit().encode()
    train, test = leave_one_out(log)
    matrix = train.to_matrix(shape=(len(users), len(items)))
    negatives = sample_negatives(matrix, test.users, 99, exclude_items=test.items)
"""
from neurec.data.encoders import IdEncoder
from neurec.data.interactions import InteractionLog, InteractionMatrix
from neurec.data.io import NCFDataset, read_ncf, write_ncf
from neurec.data.movielens import load_movielens, read_movielens
from neurec.data.sampling import NegativeSampler
from neurec.data.splits import leave_one_out, random_holdout, sample_negatives, time_split

__all__ = [
    "IdEncoder",
    "InteractionLog",
    "InteractionMatrix",
    "NCFDataset",
    "read_ncf",
    "write_ncf",
    "read_movielens",
    "load_movielens",
    "leave_one_out",
    "random_holdout",
    "time_split",
    "sample_negatives",
    "NegativeSampler",
]
