"""``neurec train``: train on a CSV log, report held-out metrics, refit on everything, save.

1. The log is read (raw ids), repeated (customer, product) pairs are collapsed and ids
   encoded.
2. Each customer's latest purchase is held out (leave-one-out by time; a random purchase
   when the CSV has no time column, with a note) and a model is trained on the rest.
3. It is evaluated on the held-out purchases, full ranking and sampled (NCF protocol),
   beside a popularity baseline, each row labelled with its protocol.
4. Unless ``--no-refit``, a fresh model is trained the same way on all the data (the
   latest purchase is the strongest signal: a shop should not serve a model blind to it).
5. The model is saved with its id encoders and a seen-matrix of every pair, ready for
   ``neurec recommend``, ``neurec evaluate`` and ``neurec update``.
"""
import argparse
import os
import time
from typing import List

from neurec.cli._common import (
    DEFAULT_TIME_COL,
    MODEL_SUFFIXES,
    CliError,
    Parser,
    add_csv_options,
    add_threads,
    add_training_options,
    build_model,
    check_column,
    check_suffix,
    nonneg_int,
    note,
    read_header,
    read_log,
    run,
    set_threads,
)
from neurec.cli._distributed import add_distributed, run_distributed
from neurec.cli._evaluation import add_protocol_options, evaluate_and_print, pairs_description

PROG = "neurec train"


def parser() -> argparse.ArgumentParser:
    p = Parser(
        prog=PROG,
        description="Train a recommender on a CSV log of interactions, report its metrics on "
        "each customer's held-out latest purchase (full ranking and sampled), refit it on all "
        "the data and save it with its id encoders and seen-matrix.",
        epilog="Then: neurec recommend --model M.neurec --all --output recs.csv")
    p.add_argument("--data", required=True, metavar="CSV",
                   help="CSV of interactions with a header naming its columns (one row per "
                   "purchase, click or rating).")
    p.add_argument("--save", required=True, metavar="PATH",
                   help="Where to save the model (.neurec), with its id encoders and a "
                   "seen-matrix of every pair of --data; the write is atomic.")
    add_csv_options(p)
    add_training_options(p)
    add_protocol_options(p)
    p.add_argument("--no-refit", action="store_true",
                   help="Save the model trained without the held-out purchases instead of "
                   "refitting a fresh one on all the data (halves the training time).")
    p.add_argument("--seed", type=nonneg_int, default=0,
                   help="Seed of the split, the initial weights, the negatives and the "
                   "shuffling (default %(default)s).")
    add_threads(p)
    p.add_argument("--verbose", type=int, default=1, choices=[0, 1, 2],
                   help="Output while training: 0 silent, 1 progress bar, 2 one line per epoch "
                   "(default %(default)s).")
    add_distributed(p)
    return p


def main(argv: List[str]) -> int:
    """``neurec train ARGS``; errors are one line on stderr and exit status 2."""
    return run(PROG, parser(), argv, lambda args: run_distributed(PROG, args, _run))


def time_column(args) -> str:
    """The time column to read, or '' for none (with a note saying what that means)."""
    header = read_header(args.data, args.sep, "--data")
    if args.time_col:
        check_column(args.time_col, header, "--data", args.data, "--time-col")
        return args.time_col
    if args.time_col is None and DEFAULT_TIME_COL in header:
        return DEFAULT_TIME_COL
    why = ("--time-col ''" if args.time_col == "" else
           f"{args.data} has no {DEFAULT_TIME_COL!r} column")
    note(f"{why}: no timestamps, so each customer's held-out purchase is drawn at random "
         "(random holdout) instead of being their latest"
         + ("" if args.time_col == "" else "; pass --time-col NAME if the time is in another "
            "column"))
    return ""


def _fit(args, matrix, n_users: int, n_items: int):
    import neurec
    from neurec.data import NegativeSampler
    neurec.utils.set_random_seed(args.seed)
    model = build_model(args.model, n_users, n_items, args.factors, args.layers, args.lr)
    sampler = NegativeSampler(matrix, num_negatives=args.negatives, seed=args.seed)
    t = time.perf_counter()
    model.fit(sampler, epochs=args.epochs, batch_size=args.batch_size, verbose=args.verbose,
              seed=args.seed)
    return model, time.perf_counter() - t


def _run(args) -> int:
    import neurec
    from neurec.data import leave_one_out
    check_suffix(args.save, MODEL_SUFFIXES, "--save")
    if os.path.isdir(args.save):
        raise CliError(f"--save {args.save} is a directory; give a file name ending in .neurec")
    set_threads(args.threads)
    t0 = time.perf_counter()
    time_col = time_column(args)
    log = read_log(args.data, args.user_col, args.item_col, args.sep, time_col or None)
    n_rows = len(log)
    log, uenc, ienc = log.to_implicit(dedupe="latest").encode()
    n_users, n_items = len(uenc), len(ienc)
    if n_items < 2:
        raise CliError(f"--data {args.data} holds a single item; a recommender needs at least "
                       "two")
    full = log.to_matrix(shape=(n_users, n_items), dedupe="max")
    print(f"data: {args.data}: {n_users:,} users, {n_items:,} items, {full.nnz:,} distinct "
          f"pairs ({n_rows:,} rows, {time.perf_counter() - t0:.1f}s)")
    print(f"model: {args.model}, {args.epochs} epochs, batch {args.batch_size}, "
          f"{args.negatives} negatives per positive, {neurec.get_num_threads()} threads")
    model = None
    evaluate = args.protocol != "none"
    if evaluate:
        train, test = leave_one_out(log, seed=args.seed)
        if len(test) == 0:
            note("no customer has two purchases, so none can be held out: no evaluation")
            evaluate = False
    if evaluate:
        matrix = train.to_matrix(shape=(n_users, n_items), dedupe="max")
        print(f"split: {pairs_description(len(test), bool(time_col))}, "
              f"{matrix.nnz:,} pairs to train on")
        model, secs = _fit(args, matrix, n_users, n_items)
        print(f"trained in {secs:.1f}s")
        evaluate_and_print(model, args.model, test.users, test.items, matrix, n_items, args.k,
                           args.protocol, args.eval_negatives, args.seed,
                           pairs_description(len(test), bool(time_col)), popularity_from=matrix)
    if model is None or not args.no_refit:
        if model is not None:
            print(f"\nrefitting on all {full.nnz:,} pairs (the held-out purchases too; "
                  "--no-refit skips this)")
        model, secs = _fit(args, full, n_users, n_items)
        print(f"trained on all the data in {secs:.1f}s")
    model.attach_encoders(user=uenc, item=ienc)
    model.attach_seen_matrix(full)  # every pair: recommend never offers what was bought
    model.save(args.save)
    print(f"saved {model.name} ({model.count_params():,} parameters) with its id encoders and "
          f"seen-matrix ({full.nnz:,} pairs) to {args.save} "
          f"(total {time.perf_counter() - t0:.1f}s)")
    return 0
