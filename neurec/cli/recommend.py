"""``neurec recommend``: the top-K products of given customers, or of all, from a model file.

The model file (``neurec train --save``) carries its id encoders, so customers are
given and products returned as raw ids, and its seen-matrix, so that nothing a customer
ever bought is recommended (``--allow-repeats`` turns that off, for consumables).
``--all`` streams the customers in blocks to the output file: memory holds one block
of recommendations, whatever the number of customers.
"""
import argparse
import csv
import time
from typing import Iterator, List, Tuple

import numpy as np

from neurec.cli._common import (
    CliError,
    Parser,
    add_threads,
    check_column,
    encode_known,
    load_served_model,
    note,
    positive_int,
    read_header,
    run,
    set_threads,
    summary,
)
from neurec.cli._distributed import add_distributed, run_distributed
from neurec.cli._output import check_output, write_recommendations

PROG = "neurec recommend"
UNKNOWN = ("error", "popular")
MAX_BLOCK = 8192
PAIRS_PER_BLOCK = 1 << 27  # NeuMF: ~10 s of scoring on 2 cores; a few MB of output


def parser() -> argparse.ArgumentParser:
    p = Parser(
        prog=PROG,
        description="Write the top-K products of customers to a file, from a model saved by "
        "neurec train. Ids are raw ids in and out; rows are user_id,rank,item_id,score, best "
        "first. Everything a customer ever bought is left out unless --allow-repeats.")
    p.add_argument("--model", required=True, metavar="PATH",
                   help="The model file (.neurec) written by neurec train; it carries the id "
                   "encoders and the seen-matrix.")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--users", metavar="CSV",
                     help="CSV file with a header, one customer per row in column --user-col, "
                     "raw ids as in the training data; duplicates are written once.")
    who.add_argument("--all", action="store_true",
                     help="Recommend to every customer the model knows, streamed in blocks "
                     "to --output.")
    p.add_argument("--k", type=positive_int, default=10,
                   help="Products per customer (default %(default)s).")
    p.add_argument("--output", required=True, metavar="PATH",
                   help="Where to write the recommendations: a .csv file, or .parquet "
                   "(needs pyarrow); written atomically, so a failed run leaves no file.")
    p.add_argument("--allow-repeats", action="store_true",
                   help="Also recommend products the customer already bought (repeat purchases "
                   "of consumables); by default everything they ever bought is left out.")
    p.add_argument("--unknown", choices=UNKNOWN, default="error",
                   help="What to do with --users ids the model does not know: 'error' stops "
                   "and lists them, 'popular' gives them the most bought products, scored by "
                   "the model for an average customer (default %(default)s).")
    p.add_argument("--user-col", default="user_id", metavar="NAME",
                   help="Column of --users holding the ids (default %(default)s).")
    p.add_argument("--sep", default=",", metavar="CHAR",
                   help="Field separator of --users (default '%(default)s').")
    p.add_argument("--block-users", type=positive_int, default=None, metavar="N",
                   help="Customers scored per block between two writes and progress updates; "
                   "memory grows with it (default: 2**27 (customer, product) pairs per block, "
                   f"at most {MAX_BLOCK:,} customers).")
    add_threads(p)
    add_distributed(p)
    p.add_argument("--verbose", type=int, default=1, choices=[0, 1],
                   help="Output: 1 a progress bar over the customers, 0 only the summary "
                   "(default %(default)s).")
    return p


def main(argv: List[str]) -> int:
    """``neurec recommend ARGS``; errors are one line on stderr and exit status 2."""
    return run(PROG, parser(), argv,
               lambda args: run_distributed(PROG, args, _run, data_parallel=False))


def read_user_ids(path: str, column: str, sep: str) -> np.ndarray:
    """The ids of ``column`` of a CSV file, as text, duplicates dropped (first kept)."""
    header = read_header(path, sep, "--users")
    check_column(column, header, "--users", path, "--user-col")
    c = header.index(column)
    out = []
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = csv.reader(f, delimiter=sep)
        next(rows)
        for line, row in enumerate(rows, start=2):
            if not row:
                continue
            if len(row) != len(header):
                raise CliError(f"--users {path}, line {line}: expected {len(header)} fields "
                               f"separated by {sep!r}, got {len(row)}")
            if not row[c].strip():
                raise CliError(f"--users {path}, line {line}: empty id in column {column!r}")
            out.append(row[c])
    if not out:
        raise CliError(f"--users {path} lists no customers (only a header)")
    ids = np.array(out, dtype=str)
    _, first = np.unique(ids, return_index=True)
    if first.size < ids.size:
        note(f"{ids.size - first.size:,} duplicate ids in --users {path} are written once")
        ids = ids[np.sort(first)]
    return ids


def _popular(model, k: int) -> Tuple[np.ndarray, np.ndarray]:
    """What ``Model.recommend(unknown='popular')`` gives a customer the model does not know:
    ``(codes, scores)`` of the ``k`` most bought products (by the seen-matrix), scored on the
    model's scale for an average customer; retired products left out."""
    seen = model.seen_matrix
    if seen is None:
        raise CliError("--unknown popular ranks products by their buyers, which needs the "
                       "model's seen-matrix; this model file has none")
    new_user = np.array([len(model.user_encoder)], np.int64)  # outside the model: unknown
    ids, scores = model.recommend(new_user, k=k, exclude=seen, unknown="popular",
                                  user_encoder=False, item_encoder=False, verbose=0)
    keep = ids[0] >= 0
    return ids[0][keep], scores[0][keep]


def _users(args, model) -> Tuple[np.ndarray, np.ndarray]:
    """``(ids written, codes)``: codes -1 for customers the model does not know."""
    enc = model.user_encoder
    if args.all:
        if len(enc) == 0:
            raise CliError(f"--model {args.model} knows no customers")
        return enc.classes_, np.arange(len(enc), dtype=np.int64)
    texts = read_user_ids(args.users, args.user_col, args.sep)
    codes = encode_known(texts, enc)
    known = codes >= 0
    ids = texts.astype(object)
    ids[known] = enc.classes_[codes[known]]  # the model's own id type
    ids = ids.astype(enc.classes_.dtype) if known.all() else texts
    unknown = texts[~known]
    if unknown.size:
        shown = ", ".join(repr(str(u)) for u in unknown[:5])
        more = f" and {unknown.size - 5:,} more" if unknown.size > 5 else ""
        if args.unknown == "error":
            raise CliError(f"{unknown.size:,} of the {texts.size:,} customers of --users "
                           f"{args.users} are unknown to the model: {shown}{more}; pass "
                           "--unknown popular to give them the most bought products, or add "
                           "them to the model first (neurec update)")
        note(f"{unknown.size:,} customers of --users are unknown to the model ({shown}{more}): "
             "they get the most bought products, scored by the model for an average customer")
    return ids, codes


def _blocks(model, ids: np.ndarray, codes: np.ndarray, k: int, exclude, block: int,
            popular) -> Iterator[Tuple[np.ndarray, np.ndarray, np.ndarray]]:
    for s in range(0, codes.size, block):
        c = codes[s:s + block]
        items = np.full((c.size, k), -1, np.int64)
        scores = np.full((c.size, k), np.nan, np.float32)
        known = c >= 0
        if known.any():
            i, v = model.recommend(c[known], k=k, exclude=exclude, user_encoder=False,
                                   item_encoder=False)
            items[known, :i.shape[1]] = i
            scores[known, :i.shape[1]] = v
        if not known.all():
            pi, ps = popular
            items[~known, :pi.size] = pi
            scores[~known, :pi.size] = ps
        yield ids[s:s + block], items, scores


def _run(args) -> int:
    fmt = check_output(args.output)
    set_threads(args.threads)
    t0 = time.perf_counter()
    model = load_served_model(args.model, need_seen=not args.allow_repeats)
    print(summary(model, args.model))
    ids, codes = _users(args, model)
    output = args.output
    if args.distributed:  # each rank its contiguous share of the customers, its own file
        from neurec import distribution
        r, size = distribution.rank(), distribution.size()
        if size > 1 and "{rank}" not in output:
            raise CliError(f"--output {output} under --distributed with {size} processes: put "
                           "{rank} in the name (e.g. recs-{rank}.csv), one file per rank")
        output = output.replace("{rank}", str(r))
        lo, hi = ids.size * r // size, ids.size * (r + 1) // size
        ids, codes = ids[lo:hi], codes[lo:hi]
    n_items = len(model.item_encoder)
    popular = _popular(model, args.k) if (codes < 0).any() else None
    exclude = False if args.allow_repeats else None  # None: the model's seen-matrix
    what = ("repeat purchases allowed" if args.allow_repeats
            else "everything each customer bought left out")
    print(f"recommending {args.k} products to each of {ids.size:,} customers ({what})")
    bar = None
    if args.verbose:
        from neurec.utils.progbar import Progbar
        bar = Progbar(int(ids.size), unit_name="user")
    block = args.block_users or max(256, min(MAX_BLOCK, PAIRS_PER_BLOCK // max(1, n_items)))
    rows = write_recommendations(
        output, fmt, _blocks(model, ids, codes, args.k, exclude, block, popular),
        ids, model.item_encoder.classes_, after_block=None if bar is None else bar.add)
    print(f"wrote {rows:,} recommendations for {ids.size:,} customers to {output} "
          f"({time.perf_counter() - t0:.1f}s)")
    return 0
