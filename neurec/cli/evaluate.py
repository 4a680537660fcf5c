"""``neurec evaluate``: a saved model's metrics on a CSV of held-out interactions.

The model file carries its id encoders (raw ids in the CSV) and its seen-matrix: what
each customer bought before is left out of the full ranking, as ``recommend`` leaves it
out. Rows of customers or products the model does not know are skipped, with a note.
"""
import argparse
import time
from typing import List

import numpy as np

from neurec.cli._common import (
    CliError,
    Parser,
    add_csv_options,
    add_threads,
    encode_known,
    load_served_model,
    nonneg_int,
    note,
    read_log,
    run,
    set_threads,
    summary,
)
from neurec.cli._evaluation import add_protocol_options, evaluate_and_print

PROG = "neurec evaluate"


def parser() -> argparse.ArgumentParser:
    p = Parser(
        prog=PROG,
        description="Evaluate a model saved by neurec train on a CSV of held-out interactions "
        "(raw ids): full ranking over the catalogue and the sampled NCF protocol, beside a "
        "popularity baseline, each row labelled with its protocol.")
    p.add_argument("--model", required=True, metavar="PATH",
                   help="The model file (.neurec) written by neurec train.")
    p.add_argument("--data", required=True, metavar="CSV",
                   help="CSV of held-out interactions with a header, e.g. the purchases made "
                   "after the model was trained; one or more per customer.")
    add_csv_options(p)
    add_protocol_options(p)
    p.add_argument("--seed", type=nonneg_int, default=0,
                   help="Seed of the sampled protocol's random items (default %(default)s).")
    add_threads(p)
    return p


def main(argv: List[str]) -> int:
    """``neurec evaluate ARGS``; errors are one line on stderr and exit status 2."""
    return run(PROG, parser(), argv, _run)


def _run(args) -> int:
    set_threads(args.threads)
    t0 = time.perf_counter()
    model = load_served_model(args.model, what="evaluate")
    print(summary(model, args.model))
    log = read_log(args.data, args.user_col, args.item_col, args.sep).to_implicit(dedupe="latest")
    users = encode_known(log.users, model.user_encoder)
    items = encode_known(log.items, model.item_encoder)
    known = (users >= 0) & (items >= 0)
    n_unknown_users = np.unique(log.users[users < 0]).size
    n_unknown_items = np.unique(log.items[items < 0]).size
    print(f"data: {args.data}: {len(log):,} distinct pairs")
    if not known.all():
        note(f"{(~known).sum():,} pairs skipped: {n_unknown_users:,} customers and "
             f"{n_unknown_items:,} products of --data are unknown to the model (they came "
             "after it was trained; neurec update adds them)")
    if not known.any():
        raise CliError(f"no pair of --data {args.data} has a customer and a product the model "
                       "knows; is it the right model, and are --user-col/--item-col right?")
    users, items = users[known], items[known]
    seen = model.seen_matrix
    n_items = len(model.item_encoder)
    if seen is None:
        note("the model file has no seen-matrix: items customers bought before are not left "
             "out of the ranking")
    else:
        inside = (users < seen.shape[0]) & (items < seen.shape[1])
        overlap = int(seen.contains(users[inside], items[inside]).sum())
        if overlap:
            note(f"{overlap:,} of the {users.size:,} pairs are already in the model's "
                 "seen-matrix (repeat purchases, or pairs the model was trained on, as after "
                 "neurec train's refit on all the data): they are still ranked, so the metrics "
                 "may be optimistic; neurec recommend leaves such pairs out unless "
                 "--allow-repeats")
    per_user = np.bincount(users)
    what = (f"{users.size:,} held-out pairs of {np.count_nonzero(per_user):,} customers")
    evaluate_and_print(model, model.name, users, items, seen, n_items, args.k, args.protocol,
                       args.eval_negatives, args.seed, what, popularity_from=seen)
    print(f"\ntotal {time.perf_counter() - t0:.1f}s")
    return 0
