"""The evaluation table of ``neurec train`` and ``neurec evaluate``: full ranking and sampled.

Each row names its protocol:

* ``full-ranking``: each held-out item is ranked among every item of the catalogue the
  customer has not bought before (the model's exclusions): the number a shop sees.
* ``sampled-N``: each held-out item is ranked among N items drawn at random from those the
  customer never bought (the NCF paper's protocol, N = 99): easier, so higher; comparable
  with published NCF numbers only.
"""
from typing import Dict, List, Optional, Tuple

import numpy as np

from neurec.cli._common import positive_int

__all__ = ["PROTOCOLS", "add_protocol_options", "evaluate_and_print", "pairs_description"]

PROTOCOLS = ("both", "full", "sampled", "none")


def add_protocol_options(p, default: str = "both") -> None:
    p.add_argument("--k", type=positive_int, default=10,
                   help="Cut-off of HR@K and NDCG@K (default %(default)s).")
    p.add_argument("--protocol", choices=PROTOCOLS, default=default,
                   help="Which evaluation to run: full ranking over the whole catalogue, the "
                   "sampled NCF protocol, both, or none (default %(default)s).")
    p.add_argument("--eval-negatives", type=positive_int, default=99, metavar="N",
                   help="Random items each held-out item is ranked among in the sampled "
                   "protocol (default %(default)s, as in the NCF paper).")


def _rows(model, name: str, pop, users, items, exclude, union, n_items: int, k: int,
          protocol: str, n_neg: int, seed: int) -> Tuple[List[tuple], List[str]]:
    from neurec.data import InteractionMatrix, sample_negatives
    from neurec.evaluation import evaluate_full, evaluate_sampled
    rows, notes = [], []
    contenders = [(name, model)] + ([("popularity", pop)] if pop is not None else [])
    if protocol in ("both", "full"):
        held = InteractionMatrix.from_arrays(users, items, shape=(union.shape[0], n_items),
                                             dedupe="max")
        for label, m in contenders:
            res = evaluate_full(m, None, held, exclude, k=k, n_items=n_items)
            rows.append(("full-ranking", label, res))
        notes.append(f"full-ranking: each held-out item ranked among all {n_items:,} items "
                     "except those the customer bought before (what the shop will see)")
    if protocol in ("both", "sampled"):
        allowed = n_items - union.user_counts()[users]
        keep = allowed >= n_neg
        n = n_neg
        if not keep.any():  # a small catalogue: every row with fewer random items
            n = int(allowed.min())
            keep[:] = True
        if n < 1:
            notes.append("sampled: skipped, a customer has bought every item of the catalogue")
        else:
            su, si = users[keep], items[keep]
            negatives = sample_negatives(union, su, n, seed=seed)
            tag = f"sampled-{n}"
            for label, m in contenders:
                rows.append((tag, label, evaluate_sampled(m, su, si, negatives, k=k)))
            notes.append(f"{tag}: each held-out item ranked among {n} random items the "
                         "customer never bought; the NCF paper's protocol, easier than full "
                         "ranking, so higher")
            if n < n_neg:
                notes.append(f"{tag}: the catalogue is too small for {n_neg} random items")
            elif not keep.all():
                notes.append(f"{tag}: {int((~keep).sum()):,} of the {keep.size:,} held-out "
                             f"items left out: their customer bought all but fewer than "
                             f"{n_neg} items")
    return rows, notes


def evaluate_and_print(model, name: str, users: np.ndarray, items: np.ndarray,
                       exclude, n_items: int, k: int, protocol: str, n_neg: int, seed: int,
                       what: str, popularity_from=None) -> Dict[str, dict]:
    """Evaluate ``model`` on held-out ``(users, items)`` code pairs and print the table.

    Args:
        exclude: The pairs not ranked in the full protocol (the training pairs), an
            InteractionMatrix, or None.
        what: Describes the held-out pairs ("1,234 held-out purchases (...)").
        popularity_from: Interactions of a popularity baseline row (or None: no baseline).

    Returns:
        ``{"<protocol> <model>": metrics}``.
    """
    from neurec.data import InteractionMatrix
    from neurec.evaluation import PopularityModel
    if protocol == "none":
        return {}
    n_users = max(int(users.max()) + 1, exclude.shape[0] if exclude is not None else 0)
    if exclude is not None:
        eu, ei, _ = exclude.to_coo()
        union = InteractionMatrix.from_arrays(np.concatenate([eu, users]),
                                              np.concatenate([ei, items]),
                                              shape=(n_users, n_items), dedupe="max")
    else:
        union = InteractionMatrix.from_arrays(users, items, shape=(n_users, n_items),
                                              dedupe="max")
    pop = None if popularity_from is None else PopularityModel().fit(popularity_from,
                                                                     n_items=n_items)
    rows, notes = _rows(model, name, pop, users, items, exclude, union, n_items, k, protocol,
                        n_neg, seed)
    print(f"\nmetrics at k={k} on {what}:")
    width = max([len("protocol")] + [len(r[0]) for r in rows]) + 2
    mw = max([len("model")] + [len(r[1]) for r in rows]) + 2
    heads = (f"HR@{k}", f"NDCG@{k}", "MRR", "AUC")
    print("  " + "protocol".ljust(width) + "model".ljust(mw) + "".join(f"{h:>9s}" for h in heads))
    out = {}
    for tag, label, res in rows:
        vals = (res[f"hr@{k}"], res[f"ndcg@{k}"], res["mrr"], res.get("auc", float("nan")))
        print("  " + tag.ljust(width) + label.ljust(mw) + "".join(f"{v:9.4f}" for v in vals))
        out[f"{tag} {label}"] = res
    for text in notes:
        print("  " + text)
    return out


def pairs_description(n: int, timestamps: Optional[bool]) -> str:
    if timestamps is None:
        return f"{n:,} held-out pairs"
    how = "each customer's latest" if timestamps else "one random purchase per customer"
    return f"{n:,} held-out purchases ({how})"
