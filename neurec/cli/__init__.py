"""The ``neurec`` command line.

``neurec`` without a subcommand runs the one-shot main job (train, evaluate, print and
optionally write recommendations; :mod:`neurec.cli.main_job`). The subcommands are the
production tools:

* ``neurec train --data log.csv --save model.neurec``: held-out metrics (full ranking and
  sampled), then a refit on all the data, saved with id encoders and seen-matrix;
* ``neurec recommend --model model.neurec --users users.csv|--all --k 10 --output
  recs.csv|recs.parquet``: raw ids in and out, nothing already bought unless
  ``--allow-repeats``; ``--all`` streams customers in blocks;
* ``neurec evaluate --model model.neurec --data test.csv``: metrics on held-out rows;
* ``neurec update --model model.neurec --data day.csv --output model.neurec``.

A subcommand's errors are one line on stderr and exit status 2; ``--help`` shows every
option with its default.

Example:
    >>> from neurec.cli import main
    >>> main(["recommend", "--model", "shop.neurec", "--all", "--output", "recs.csv"])
    0
"""
import sys
from typing import List, Optional

__all__ = ["main", "SUBCOMMANDS"]

SUBCOMMANDS = ("train", "recommend", "evaluate", "update")


def main(argv: Optional[List[str]] = None) -> int:
    """Run ``neurec ARGS`` (default ``sys.argv[1:]``) and return the exit status.

    Args:
        argv: The arguments after ``neurec``; a first argument naming a subcommand runs it.

    Returns:
        0 on success, 2 after a subcommand's error (printed as one line on stderr), 130
        after Ctrl-C in a subcommand.

    Raises:
        SystemExit: On a bad option of the main job (argparse's usage error, status 2).
        Exception: The main job's errors propagate (subcommands print them instead).
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    sub = argv[0] if argv else None
    if sub == "train":
        from neurec.cli import train as mod
    elif sub == "recommend":
        from neurec.cli import recommend as mod
    elif sub == "evaluate":
        from neurec.cli import evaluate as mod
    elif sub == "update":
        from neurec.cli import update as mod
    else:
        from neurec.cli import main_job
        return main_job.main(argv)
    return mod.main(argv[1:])
