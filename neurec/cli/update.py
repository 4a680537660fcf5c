"""``neurec update``: train a saved model on a new day's log (:meth:`Model.update`).

New customers and products get rows in the model, every pair of the day joins its
seen-matrix, and the model trains a few epochs on the day with fresh negatives; the
result is saved (atomically) to ``--output``, which may be ``--model``.
"""
import argparse
import time
from typing import List

from neurec.cli._common import (
    MODEL_SUFFIXES,
    CliError,
    Parser,
    add_csv_options,
    add_threads,
    check_suffix,
    nonneg_float,
    nonneg_int,
    positive_int,
    read_log,
    run,
    set_threads,
)

PROG = "neurec update"


def parser() -> argparse.ArgumentParser:
    p = Parser(
        prog=PROG,
        description="Train a saved model on a new day's log of interactions: new customers and "
        "products get rows in the model, every pair joins its seen-matrix, and the model trains "
        "a few epochs on the day with fresh negatives (Model.update). The model file must hold "
        "id encoders and a seen-matrix (neurec train and neurec --save-model write both).")
    p.add_argument("--model", required=True, metavar="PATH",
                   help="The saved model to update (.neurec).")
    p.add_argument("--data", required=True, metavar="CSV",
                   help="CSV of the new interactions, with a header naming its columns.")
    p.add_argument("--output", required=True, metavar="PATH",
                   help="Where to save the updated model (.neurec; may equal --model; the "
                   "write is atomic).")
    add_csv_options(p)
    p.add_argument("--epochs", type=positive_int, default=1,
                   help="Epochs over the day's log (default %(default)s).")
    p.add_argument("--replay", type=nonneg_float, default=0.0,
                   help="Old pairs replayed per new pair, so that old customers do not drift "
                   "(default %(default)s).")
    p.add_argument("--negatives", type=nonneg_int, default=4,
                   help="Negatives per positive (default %(default)s).")
    p.add_argument("--batch-size", type=positive_int, default=256,
                   help="Samples per gradient step (default %(default)s).")
    p.add_argument("--seed", type=nonneg_int, default=0,
                   help="Seed of the replay draw, the negatives and the shuffling "
                   "(default %(default)s).")
    add_threads(p)
    p.add_argument("--verbose", type=int, default=1, choices=[0, 1, 2],
                   help="Output while training: 0 silent, 1 progress bar, 2 one line per epoch "
                   "(default %(default)s).")
    return p


def main(argv: List[str]) -> int:
    """``neurec update ARGS``; errors are one line on stderr and exit status 2."""
    return run(PROG, parser(), argv, _run)


def _run(args) -> int:
    from neurec.models import load_model
    check_suffix(args.output, MODEL_SUFFIXES, "--output")
    check_suffix(args.model, MODEL_SUFFIXES, "--model")
    set_threads(args.threads)
    t0 = time.perf_counter()
    model = load_model(args.model)
    log = read_log(args.data, args.user_col, args.item_col, args.sep)
    uenc, ienc, seen = model.user_encoder, model.item_encoder, model.seen_matrix
    if uenc is None or ienc is None or seen is None:
        raise CliError(f"{args.model} holds no id encoders or seen-matrix, which update needs; "
                       "save models with neurec train or neurec --save-model (or "
                       "model.attach_encoders and model.attach_seen_matrix before model.save)")
    before = (len(uenc), len(ienc), seen.nnz)
    t1 = time.perf_counter()
    hist = model.update(log, epochs=args.epochs, replay=args.replay,
                        num_negatives=args.negatives, batch_size=args.batch_size,
                        seed=args.seed, verbose=args.verbose)
    train_s = time.perf_counter() - t1
    after = (len(model.user_encoder), len(model.item_encoder), model.seen_matrix.nnz)
    loss = hist.history.get("loss", [float("nan")])[-1]
    print(f"data: {args.data}: {len(log):,} interactions, {after[0] - before[0]:,} new users, "
          f"{after[1] - before[1]:,} new items")
    print(f"model: {before[0]:,} -> {after[0]:,} users, {before[1]:,} -> {after[1]:,} items, "
          f"seen-matrix {before[2]:,} -> {after[2]:,} pairs")
    print(f"trained {args.epochs} epoch(s) in {train_s:.1f}s, loss {loss:.4f}")
    model.save(args.output)
    print(f"saved the updated model to {args.output} (total {time.perf_counter() - t0:.1f}s)")
    return 0
