"""Training across processes and hosts on MPI, modelled on ``keras.distribution``.

A script that trains on one process trains on N after two added lines::

    from neurec import distribution
    distribution.initialize()                                   # no-op on one process
    distribution.set_distribution(distribution.DataParallel())

launched as ``mpiexec -n N python train.py`` (``pip install "neurec[mpi]"`` brings
``mpi4py`` and the MPICH wheel; on a cluster, ``mpi4py`` built against the site's MPI).
Under :class:`DataParallel`, ``fit``'s ``batch_size`` is the global batch: every process
computes its slice of each batch, the gradients are combined in a fixed rank order, and
every process applies the same update, so all of them hold bit-identical weights. Only
rank 0 prints and writes files.

MPI is reached through ``mpi4py`` alone, imported by :func:`initialize` only when the
process was launched by ``mpiexec`` (or ``mpi4py`` is already imported): ``import neurec``
never imports it, and a script run without ``mpiexec`` needs no MPI at all.
"""
import contextlib
import contextvars
import os
import sys
import time
import traceback
import zlib
from typing import Any, Iterator, Optional

__all__ = ["initialize", "rank", "size", "is_main", "barrier", "communicator",
           "Distribution", "DataParallel", "ModelParallel", "set_distribution", "distribution"]

# Environment variables through which launchers tell a process how many were started:
# MPICH's Hydra and Intel MPI (PMI), Open MPI, MVAPICH, and Slurm's srun (inside a step).
_LAUNCH_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE",
                     "SLURM_STEP_NUM_TASKS")

_ABORT_GRACE_SECONDS = 0.5

_INSTALL_HINT = ('install it with `pip install "neurec[mpi]"` (mpi4py and the MPICH wheel), or '
                 "on a cluster build mpi4py against the site's MPI (`pip install mpi4py`)")


class _State:
    comm: Any = None  # the mpi4py communicator; None: one process, no MPI
    rank = 0
    size = 1
    initialized = False
    distribution: Optional["Distribution"] = None
    previous_excepthook: Any = None


_state = _State()


def _launched_size() -> int:
    """How many processes the launcher started, from its environment (1 if none says)."""
    n = 1
    for var in _LAUNCH_SIZE_VARS:
        try:
            n = max(n, int(os.environ.get(var, "1")))
        except ValueError:
            pass
    return n


def _import_mpi(launched: int):
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise ImportError(
            f"neurec.distribution.initialize: this process is one of {launched} started by an "
            f"MPI launcher, but mpi4py cannot be imported ({e}); {_INSTALL_HINT}") from e
    return MPI


def _abort_on_exception(exc_type, exc, tb) -> None:
    """``sys.excepthook`` under MPI: print the traceback, then end every rank.

    Without it an exception on one rank leaves the others blocked in their next collective
    call forever (mpi4py's documentation, "mpi4py.run"); ``MPI_Abort`` ends the whole job
    with a non-zero exit status.
    """
    hook = _state.previous_excepthook or sys.__excepthook__
    try:
        hook(exc_type, exc, tb)
    except Exception:  # a broken hook must not keep the job alive
        traceback.print_exception(exc_type, exc, tb)
    comm = _state.comm
    if comm is not None and _state.size > 1:
        sys.stderr.write(f"neurec.distribution: rank {_state.rank} of {_state.size} stopped on "
                         f"{exc_type.__name__}; aborting every rank (MPI_Abort)\n")
        sys.stderr.flush()
        # the launcher forwards a rank's output through a pipe; MPI_Abort tears it down, and
        # the message must reach the user first
        time.sleep(_ABORT_GRACE_SECONDS)
        comm.Abort(1)


def _share_cores(comm) -> None:
    """Give each process of a host its share of the cores (unless NEUREC_NUM_THREADS is set):
    N processes of N threads each on one host would oversubscribe it N times."""
    if os.environ.get("NEUREC_NUM_THREADS"):
        return
    from mpi4py import MPI

    from neurec import _core
    local = comm.Split_type(MPI.COMM_TYPE_SHARED)
    try:
        per_host = local.Get_size()
    finally:
        local.Free()
    _core.set_num_threads(max(1, int(_core.build_info()["cpu_count"]) // per_host))


def initialize(comm: Any = None, abort_on_exception: bool = True) -> None:
    """Join the processes started by ``mpiexec`` (or do nothing on one process).

    Call it once, at the top of the script, on every process. Launched by ``mpiexec -n N``
    with N > 1 (the launcher's environment says so: ``PMI_SIZE``,
    ``OMPI_COMM_WORLD_SIZE``, ...), it imports ``mpi4py`` and uses ``MPI.COMM_WORLD``;
    run as a plain ``python`` process it imports nothing and :func:`size` stays 1. When
    ``NEUREC_NUM_THREADS`` is not set, the processes of one host share its cores (each
    gets ``cores // processes_on_the_host`` threads).

    Args:
        comm: An ``mpi4py`` communicator to use instead of ``COMM_WORLD`` (e.g. a
            sub-communicator of a larger job).
        abort_on_exception: With more than one process, install a ``sys.excepthook`` that
            prints the traceback and calls ``MPI_Abort``, so that an exception on one rank
            ends every rank with a non-zero exit instead of leaving them blocked. (Launching
            with ``mpiexec -n N python -m mpi4py train.py`` does the same.)

    Raises:
        ImportError: If the process is one of several started by an MPI launcher and
            ``mpi4py`` cannot be imported; the message names ``pip install "neurec[mpi]"``.
        TypeError: If ``comm`` is not an ``mpi4py`` communicator.

    Example:

    >>> from neurec import distribution
    >>> distribution.initialize()      # under plain `python`: one process, no MPI
    >>> distribution.size(), distribution.rank(), distribution.is_main()
    (1, 0, True)
    """
    if comm is None:
        if _state.initialized:
            return
        mpi = sys.modules.get("mpi4py.MPI")
        launched = _launched_size()
        if mpi is None and launched > 1:
            mpi = _import_mpi(launched)
        comm = mpi.COMM_WORLD if mpi is not None else None
    elif not all(hasattr(comm, a) for a in ("Get_rank", "Get_size", "Allgatherv", "Abort")):
        raise TypeError(f"initialize: comm must be an mpi4py communicator (e.g. "
                        f"MPI.COMM_WORLD), got {type(comm).__name__}")
    _state.comm = comm
    _state.rank = int(comm.Get_rank()) if comm is not None else 0
    _state.size = int(comm.Get_size()) if comm is not None else 1
    _state.initialized = True
    if _state.size > 1:
        _share_cores(comm)
        if abort_on_exception and sys.excepthook is not _abort_on_exception:
            _state.previous_excepthook = sys.excepthook
            sys.excepthook = _abort_on_exception


def rank() -> int:
    """This process's index among the :func:`size` processes (0 before :func:`initialize`)."""
    return _state.rank


def size() -> int:
    """How many processes train together (1 before :func:`initialize` or without MPI)."""
    return _state.size


def is_main() -> bool:
    """True on rank 0, the process that prints and writes files."""
    return _state.rank == 0


def barrier() -> None:
    """Wait until every process gets here (nothing to wait for on one process)."""
    if _state.comm is not None and _state.size > 1:
        _state.comm.Barrier()


def _skips_writes() -> bool:
    """True on a rank other than 0 of a data-parallel job: it holds rank 0's weights, and
    rank 0 alone writes the model files (``Model.save``, ``save_weights``)."""
    return _state.rank != 0 and _state.size > 1 and isinstance(_state.distribution, DataParallel)


def _shares(n: int):
    """How the ranks split ``n`` rows of a computation (users to evaluate) under
    DataParallel with several processes: the P + 1 bounds of their contiguous blocks (rank
    ``r`` computes rows ``bounds[r]:bounds[r + 1]``), or None on one process."""
    if _state.size < 2 or not isinstance(_state.distribution, DataParallel):
        return None
    import numpy as np
    return np.arange(_state.size + 1, dtype=np.int64) * int(n) // _state.size


def _allgather_blocks(arrays, bounds, comm=None) -> None:
    """Each rank of ``comm`` (default: the one in use) filled rows
    ``bounds[rank]:bounds[rank + 1]`` of every 1-D array of ``arrays`` (int64, float64 or
    float32, the same length everywhere): give every rank all rows."""
    import numpy as np
    from mpi4py import MPI
    counts, displs = np.diff(bounds), bounds[:-1]
    kinds = {np.dtype(np.int64): MPI.INT64_T, np.dtype(np.float64): MPI.DOUBLE,
             np.dtype(np.float32): MPI.FLOAT}
    for a in arrays:
        (comm or _state.comm).Allgatherv(MPI.IN_PLACE, [a, (counts, displs), kinds[a.dtype]])


_LOCAL = contextvars.ContextVar("neurec_distribution_local", default=False)


@contextlib.contextmanager
def _local() -> Iterator[None]:
    """Inside the block ``Model.predict`` computes this rank's rows alone (no split across
    the ranks, no collective call): for work the caller already split, such as a rank's
    share of the users of ``recommend`` or of the ranking protocols."""
    token = _LOCAL.set(True)
    try:
        yield
    finally:
        _LOCAL.reset(token)


def _first_differing_rank(comm, arrays) -> Optional[int]:
    """The first rank whose ``arrays`` (each an array or None) differ from rank 0's in shape
    or bytes (CRC-32), or None when every rank passed the same: a collective call."""
    import numpy as np
    mine = [None if a is None else (tuple(np.shape(a)), zlib.crc32(np.ascontiguousarray(a)))
            for a in arrays]
    every = comm.allgather(mine)
    return next((r for r, theirs in enumerate(every) if theirs != every[0]), None)


def _is_local() -> bool:
    """Whether :func:`_local` is in force (in this thread or task)."""
    return _LOCAL.get()


def communicator() -> Any:
    """The ``mpi4py`` communicator in use, or None on one process without MPI."""
    return _state.comm


class Distribution:
    """How ``fit`` spreads its work over the processes (the base class).

    Subclasses: :class:`DataParallel`, :class:`ModelParallel`. Set one with :func:`set_distribution`.
    """

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class DataParallel(Distribution):
    """Data parallelism: every process holds the whole model and trains on a slice of each
    batch.

    Every process passes ``fit`` the same arrays (or the same ``NegativeSampler`` with the
    same positives): ``batch_size`` is the global batch, split among the ranks in every
    batch of the shuffled order (the same order on every rank, from the same seed). After
    each batch the gradients of all ranks are combined, summed in rank order, and every
    rank applies the same update: the model is the same on every rank and equal, within
    float rounding, to that of one process training with the same global batch. ``fit``
    starts from rank 0's weights and optimizer state (sent to the others when they
    differ) and its seed. With sparse updates (``Adam(sparse_updates=True)``, the
    default) the samples of a batch go to the ranks by one id input, the users typically
    (the one whose tables a batch touches most rows of; its ids dealt to the ranks so
    their samples balance): the rows of the tables that input alone reads are then
    trained by one rank each and never cross the network, and the ranks exchange the new
    values of those rows at the end of every chunk of batches (about 0.2 s of training),
    before any callback runs. The other tables' rows are updated by their owner (rank
    ``id % size()``), which sends the new rows to every rank; the others' copies of such
    a row's optimizer state catch up at each epoch's end (and at every chunk under
    ``ModelCheckpoint(save_freq=N)``). So the model and its optimizer state are whole
    wherever callbacks or the caller read them (after a ``fit`` that raised mid-chunk,
    the next data-parallel ``fit`` takes the lagging rows from their owners first).
    Without sparse updates, or when one id holds too many samples to balance, every
    batch is cut into one contiguous slice per rank. With sparse updates and every rank on
    one host, the rows travel through a shared MPI-3 window instead of messages (the same
    bits). A sampler's epoch is drawn in shares by the ranks: the same epoch as one
    process's.

    With ``local_data=True`` each rank passes only its own partition of the data (arrays,
    or a ``NegativeSampler`` over its users' interactions built with the global
    ``n_users=`` and ``n_items=``: it draws negatives from every item). ``batch_size`` is
    still the global batch, apportioned to the ranks in proportion to their partition
    sizes (agreed with one ``Allgather``): equal partitions get equal local batches, the
    slices ``DataParallel()`` would cut. Every rank takes the same number of steps per
    epoch, ``max_r ceil(n_r / b_r)``; a rank whose partition runs out first takes part
    in the last steps without samples. Each rank shuffles its partition with the
    epoch's seed; validation is rank 0's (its ``validation_data`` or split).

    ``model.predict(x)`` and ``model.evaluate(x, y)`` on arrays split the samples too
    (call them on every rank): each rank computes a contiguous share of the same ``x``
    and every rank gets every prediction, and the loss and metrics of one process
    (computed from the gathered predictions; ``gather="main"``: on rank 0 alone). With
    ``local_data=True`` each rank passes its own rows: ``predict`` returns its own
    predictions, ``evaluate`` the result over every rank's rows.

    Args:
        local_data: False: every rank passes the whole data; True: each rank passes its
            own partition.

    Raises:
        TypeError: If ``local_data`` is not a bool.

    Example:

    >>> from neurec import distribution
    >>> distribution.initialize()
    >>> distribution.set_distribution(distribution.DataParallel())
    >>> distribution.distribution()
    DataParallel(local_data=False)
    >>> distribution.set_distribution(None)
    """

    def __init__(self, local_data: bool = False):
        if not isinstance(local_data, bool):
            raise TypeError(f"DataParallel: local_data must be True or False, got {local_data!r}")
        self.local_data = local_data

    def __repr__(self) -> str:
        return f"DataParallel(local_data={self.local_data})"


class ModelParallel(DataParallel):
    """Data parallelism with row-sharded embedding tables, for tables too big for one host.

    As :class:`DataParallel` (every rank passes the same data, ``batch_size`` is the global
    batch, each rank computes its slice, dense layers are replicated and their gradients
    combined in rank order), but each of the N ranks stores only the rows ``i`` with
    ``i % N == rank`` of every Embedding table, and their optimizer state: the tables take
    about 1/N of their memory per rank. For each run of global batches the ranks fetch
    the rows the batches read from their owners into a small working table (one
    ``Allgatherv``), train them with the data-parallel gradient exchange, and each owner
    keeps its updated rows. The trained weights are those of :class:`DataParallel`
    (the same updates in the same order). Needs ``sparse_updates=True`` (the default).

    With ``local_data=True`` each rank passes only its own partition, as with
    ``DataParallel(local_data=True)`` (the global batch apportioned to the ranks by
    partition size); the working rows of a run of batches are then the union of every
    rank's ids.

    After ``fit`` the tables stay sharded; call what follows on every rank, never on one
    alone. ``model.save`` (and ``save_weights``, ``ModelCheckpoint``) gathers them on
    rank 0 alone, which writes one ordinary model file; ``load_model`` it on every rank
    and ``fit`` shards it again. ``recommend`` (``output=`` too), ``evaluate_full``,
    ``evaluate_sampled`` and the ``RankingMetrics`` callback, for a model whose inputs
    are a user id and an item id, score without gathering: each rank scores every user
    against the items whose rows it holds (the users' rows fetched block by block); the
    per-user top-K lists are merged in rank order, the counts of negatives above each
    held-out item summed, each pair scored by the owner of its item: one process's
    results. ``predict``, ``evaluate`` and ``fit``'s ``validation_data`` /
    ``validation_split`` (and a callback that predicts or evaluates during ``fit``) split
    the samples as DataParallel does and each rank fetches only the rows its share reads
    from their owners (one ``Alltoallv`` of ids and one of rows per block of samples):
    the validation logs of DataParallel, the same on every rank (only rank 0 prints);
    under ``local_data=True`` the validation is rank 0's. ``recommend(histories=)``,
    ``weights`` and ``get_weights`` (and ``recommend`` of models with side features, or
    through an index or two stages) first gather the whole tables on every rank, then
    split the work as DataParallel does (not possible during ``fit``, e.g. from
    ``EarlyStopping(restore_best_weights=True)``).

    Args:
        local_data: False: every rank passes the whole data; True: each rank passes its
            own partition.

    Raises:
        TypeError: If ``local_data`` is not a bool.

    Example:

    >>> from neurec import distribution
    >>> distribution.initialize()
    >>> distribution.set_distribution(distribution.ModelParallel())
    >>> distribution.distribution()
    ModelParallel()
    >>> distribution.set_distribution(None)
    """

    def __init__(self, local_data: bool = False):
        if not isinstance(local_data, bool):
            raise TypeError(f"ModelParallel: local_data must be True or False, got "
                            f"{local_data!r}")
        super().__init__(local_data=local_data)

    def __repr__(self) -> str:
        return "ModelParallel(local_data=True)" if self.local_data else "ModelParallel()"


def set_distribution(value: Optional[Distribution]) -> None:
    """Set how ``fit`` uses the processes from now on (None: every process trains alone).

    Calls :func:`initialize` first if the script did not.

    Args:
        value: A :class:`Distribution` such as :class:`DataParallel`, or None.

    Raises:
        TypeError: If ``value`` is neither a Distribution nor None.
    """
    if value is not None and not isinstance(value, Distribution):
        raise TypeError(f"set_distribution: expected a neurec.distribution.Distribution (e.g. "
                        f"DataParallel()) or None, got {type(value).__name__}")
    initialize()
    _state.distribution = value


def distribution() -> Optional[Distribution]:
    """The distribution set by :func:`set_distribution`, or None."""
    return _state.distribution
