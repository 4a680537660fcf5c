"""``--distributed``: a command run by every process of ``mpiexec -n N``.

Every rank reads the same data and trains data-parallel
(:class:`neurec.distribution.DataParallel`); rank 0 alone prints and writes the model
and recommendation files (``neurec recommend --all --distributed --output
recs-{rank}.csv`` has every rank write its own file). A user error on one rank (a
missing file, a bad column) would leave the others waiting in a collective call: it is
printed as one line and ends every rank (``MPI_Abort``) with exit status 2.
"""
import argparse
import contextlib
import io
import sys
import time
from typing import Callable


def add_distributed(p: argparse.ArgumentParser) -> None:
    p.add_argument("--distributed", action="store_true",
                   help="Run data-parallel on every process of `mpiexec -n N neurec ...` "
                   "(pip install 'neurec[mpi]'): rank 0 prints and writes the files. "
                   "Without mpiexec, one process.")


def run_distributed(prog: str, args, body: Callable[[argparse.Namespace], int],
                    data_parallel: bool = True) -> int:
    """``body(args)`` under ``DataParallel`` (or plainly without ``--distributed``): the
    other ranks' output is discarded, and an error on any rank ends every rank. With
    ``data_parallel=False`` the ranks only join the job (each works alone)."""
    if not getattr(args, "distributed", False):
        return body(args)
    from neurec import distribution
    distribution.initialize()
    distribution.set_distribution(distribution.DataParallel() if data_parallel else None)
    try:
        if distribution.is_main():
            return body(args)
        with contextlib.redirect_stdout(io.StringIO()):
            return body(args)
    except BaseException as e:
        if distribution.size() > 1:
            sys.stdout.flush()
            text = str(e).strip() or type(e).__name__
            print(f"{prog}: error on rank {distribution.rank()} of {distribution.size()}: "
                  f"{text}", file=sys.stderr, flush=True)
            time.sleep(0.5)  # let the launcher forward the message before the abort
            distribution.communicator().Abort(2)
        raise
    finally:
        distribution.set_distribution(None)
