"""What the subcommands share: the parser, argument types, one-line errors, CSV and model input.

Every subcommand (``train``, ``recommend``, ``evaluate``, ``update``) runs through
:func:`run`: a bad argument, file, column or model prints one line
``neurec <sub>: error: <what and how to fix it>`` on stderr and returns exit status 2
(no traceback); Ctrl-C prints one line and returns 130.
"""
import argparse
import csv
import os
import sys
from typing import Any, Callable, List, Optional, Sequence, Tuple

import numpy as np

__all__ = ["CliError", "Parser", "run", "positive_int", "nonneg_int", "positive_float",
           "nonneg_float", "add_csv_options", "add_threads", "set_threads", "check_suffix",
           "read_header", "check_column", "read_log", "load_served_model", "encode_known",
           "DEFAULT_TIME_COL", "add_training_options",
           "note", "summary", "ARCHITECTURES", "layer_sizes", "build_model"]

MODEL_SUFFIXES = (".neurec", ".keras")


class CliError(Exception):
    """A user error: printed as one line, exit status 2."""


class _UsageError(Exception):
    pass


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line (no usage block) and status 2."""

    def error(self, message: str):  # argparse's hook; never returns
        raise _UsageError(f"{message} (see {self.prog} --help)")


def run(prog: str, parser: argparse.ArgumentParser, argv: Sequence[str],
        body: Callable[[argparse.Namespace], int]) -> int:
    """Parse ``argv`` and run ``body(args)``, turning every user error into one line.

    Returns:
        ``body``'s status; 2 after an error (printed on stderr), 130 after Ctrl-C, 0 after
        ``--help``.
    """
    try:
        args = parser.parse_args(list(argv))
    except _UsageError as e:
        return _fail(prog, str(e))
    except SystemExit as e:  # --help (0), or argparse's own exit
        return e.code if isinstance(e.code, int) else 0
    import neurec
    threads = neurec.get_num_threads()  # --threads lasts for this command only
    try:
        return body(args)
    except KeyboardInterrupt:
        sys.stdout.flush()
        print(f"\n{prog}: interrupted; nothing was written", file=sys.stderr)
        return 130
    except (CliError, ValueError, TypeError, OSError, RuntimeError, KeyError, ImportError,
            MemoryError) as e:
        return _fail(prog, _message(e))
    finally:
        if neurec.get_num_threads() != threads:
            neurec.set_num_threads(threads)


def _message(e: BaseException) -> str:
    if isinstance(e, KeyError) and e.args:
        text = str(e.args[0])
    elif isinstance(e, FileNotFoundError) and e.filename is not None:
        text = f"No such file: {e.filename}"
    elif isinstance(e, IsADirectoryError) and e.filename is not None:
        text = f"{e.filename} is a directory; give a file"
    elif isinstance(e, MemoryError):
        text = "out of memory; use fewer users per run (--users) or a machine with more memory"
    else:
        text = str(e) or type(e).__name__
    return text


def _fail(prog: str, message: str) -> int:
    sys.stdout.flush()
    line = " ".join(message.split())
    print(f"{prog}: error: {line}", file=sys.stderr)
    return 2


# -- argument types --------------------------------------------------------------------
def _number(kind: type, low: float, strict: bool):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {'an integer' if kind is int else 'a number'}, got {text!r}") from None
        if not np.isfinite(value) or (value <= low if strict else value < low):
            raise argparse.ArgumentTypeError(f"must be {'>' if strict else '>='} {low}, got {text}")
        return value
    parse.__name__ = f"{'positive' if strict else 'non-negative'} {kind.__name__}"
    return parse


positive_int = _number(int, 0, strict=True)
nonneg_int = _number(int, 0, strict=False)
positive_float = _number(float, 0.0, strict=True)
nonneg_float = _number(float, 0.0, strict=False)


def add_threads(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=positive_int, default=None, metavar="N",
                   help="Threads of the C core (default: all cores).")


def set_threads(n: Optional[int]) -> None:
    import neurec
    if n:
        neurec.set_num_threads(n)


def add_csv_options(p: argparse.ArgumentParser, what: str = "--data", item: bool = True) -> None:
    """``--user-col``, ``--item-col`` and ``--sep`` of a CSV option."""
    p.add_argument("--user-col", default="user_id", metavar="NAME",
                   help=f"Column of {what} holding user ids (default %(default)s).")
    if item:
        p.add_argument("--item-col", default="item_id", metavar="NAME",
                       help=f"Column of {what} holding item ids (default %(default)s).")
    p.add_argument("--sep", default=",", metavar="CHAR",
                   help=f"Field separator of {what} (default '%(default)s').")


def check_suffix(path: str, suffixes: Sequence[str], option: str) -> str:
    if not path.lower().endswith(tuple(suffixes)):
        raise CliError(f"{option} must end in {' or '.join(suffixes)}, got {path!r}")
    return path


# -- CSV input -------------------------------------------------------------------------
def _check_file(path: str, option: str) -> None:
    if not os.path.exists(path):
        raise CliError(f"No such file: {option} {path}")
    if os.path.isdir(path):
        raise CliError(f"{option} {path} is a directory; give a CSV file")


def read_header(path: str, sep: str, option: str) -> List[str]:
    """The column names of a CSV file's first line."""
    _check_file(path, option)
    if not isinstance(sep, str) or len(sep) != 1 or sep in "\r\n\"":
        raise CliError(f"--sep must be one character other than a quote or newline, got {sep!r}")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            first = next(csv.reader(f, delimiter=sep), None)
    except UnicodeDecodeError:
        raise CliError(f"{option} {path} is not UTF-8 text (is it a CSV file?)") from None
    except csv.Error as e:
        raise CliError(f"{option} {path}: malformed CSV header ({e})") from None
    if not first:
        raise CliError(f"{option} {path} is empty; expected a header line naming the columns")
    return first


def check_column(name: str, header: List[str], option: str, path: str, flag: str) -> None:
    if name not in header:
        shown = header[:12] + (["..."] if len(header) > 12 else [])
        raise CliError(f"{flag} {name!r} is not a column of {option} {path} (its header has "
                       f"{shown}); pass {flag} with one of those")


def read_log(path: str, user_col: str, item_col: str, sep: str, time_col: Optional[str] = None,
             option: str = "--data", time_flag: str = "--time-col"):
    """Read an interaction CSV; ``time_col=None`` reads no timestamps.

    Returns:
        An :class:`neurec.data.InteractionLog` of raw ids.
    """
    from neurec.data import InteractionLog
    header = read_header(path, sep, option)
    check_column(user_col, header, option, path, "--user-col")
    check_column(item_col, header, option, path, "--item-col")
    if time_col is not None:
        check_column(time_col, header, option, path, time_flag)
    try:
        log = InteractionLog.read_csv(path, user_col=user_col, item_col=item_col,
                                      time_col=time_col, sep=sep)
    except UnicodeDecodeError:
        raise CliError(f"{option} {path} is not UTF-8 text") from None
    if len(log) == 0:
        raise CliError(f"{option} {path} has a header but no interactions")
    return log


# -- the model file --------------------------------------------------------------------
def load_served_model(path: str, need_seen: bool = False, what: str = "recommend"):
    """Load a model file that carries its id encoders (and, if asked, its seen-matrix)."""
    from neurec.models import load_model
    check_suffix(path, MODEL_SUFFIXES, "--model")
    _check_file(path, "--model")
    model = load_model(path)
    if model.user_encoder is None or model.item_encoder is None:
        raise CliError(f"--model {path} holds no id encoders, which {what} needs to read and "
                       "write raw ids; save models with neurec train (or model.attach_encoders "
                       "before model.save)")
    if need_seen and model.seen_matrix is None:
        raise CliError(f"--model {path} holds no seen-matrix, so {what} cannot leave out what "
                       "customers bought; save models with neurec train (or "
                       "model.attach_seen_matrix before model.save), or pass --allow-repeats")
    return model


def _parse_numbers(texts: np.ndarray, dtype: np.dtype) -> Tuple[np.ndarray, np.ndarray]:
    """``texts`` as numbers of ``dtype``; ``(values, bad)`` with ``bad`` where one is not."""
    try:
        return texts.astype(dtype), np.zeros(texts.size, bool)
    except (ValueError, OverflowError):
        pass
    out = np.zeros(texts.size, dtype)
    bad = np.zeros(texts.size, bool)
    cast = int if dtype.kind in "iu" else float
    for k, t in enumerate(texts.tolist()):
        try:
            out[k] = cast(t)
        except (ValueError, OverflowError):
            bad[k] = True
    return out, bad


def encode_known(values: Any, encoder) -> np.ndarray:
    """Codes of raw ``values`` under ``encoder``, -1 for ids it does not know.

    Ids read from a file are matched by the encoder's id type: text that is a number
    matches an integer id, a number read from a file matches a string id by its text.
    """
    vals = np.asarray(values)
    classes = encoder.classes_
    bad = np.zeros(vals.size, bool)
    if classes.dtype.kind == "U":
        vals = vals.astype(str)
    elif classes.dtype.kind in "iuf" and vals.dtype.kind in "UO":
        vals, bad = _parse_numbers(vals.astype(str), classes.dtype)
    elif classes.dtype.kind not in "iufU":
        raise CliError(f"the model's ids are of type {classes.dtype}; the command line reads "
                       "integer and string ids only")
    lookup = encoder.copy()
    lookup.unknown = "ignore"
    codes = lookup.transform(vals) if vals.size else np.empty(0, np.int64)
    codes[bad] = -1
    return codes


# -- output ----------------------------------------------------------------------------
def note(text: str) -> None:
    print("note: " + " ".join(text.split()))


def summary(model, path: str) -> str:
    """One line about a loaded model."""
    seen = model.seen_matrix
    tail = f", seen-matrix of {seen.nnz:,} pairs" if seen is not None else ", no seen-matrix"
    return (f"model: {path} ({model.name}, {len(model.user_encoder):,} users, "
            f"{len(model.item_encoder):,} items{tail})")


# -- models ----------------------------------------------------------------------------
ARCHITECTURES = ("neumf", "gmf", "mlp", "mf")


DEFAULT_TIME_COL = "timestamp"


def add_training_options(p: argparse.ArgumentParser) -> None:
    """``--time-col`` and the architecture and training options the main job and
    ``neurec train`` share (their defaults are the main job's)."""
    p.add_argument("--time-col", default=None, metavar="NAME",
                   help=f"Column of --data holding timestamps (integers or ISO 8601 dates) "
                   f"(default {DEFAULT_TIME_COL!r} if the header has it; without one, or with "
                   "'', each customer's held-out purchase is drawn at random).")
    p.add_argument("--model", default="neumf", choices=ARCHITECTURES,
                   help="The architecture (default %(default)s).")
    p.add_argument("--epochs", type=positive_int, default=10,
                   help="Epochs over the training pairs (default %(default)s).")
    p.add_argument("--batch-size", type=positive_int, default=256,
                   help="Samples per gradient step (default %(default)s).")
    p.add_argument("--factors", type=positive_int, default=8,
                   help="Embedding size of GMF, MF and NeuMF's GMF part (default %(default)s).")
    p.add_argument("--layers", type=layer_sizes, default=(64, 32, 16, 8), metavar="SIZES",
                   help="Sizes of the MLP tower of MLP and NeuMF (default 64,32,16,8).")
    p.add_argument("--negatives", type=nonneg_int, default=4,
                   help="Sampled negatives per positive in training (default %(default)s).")
    p.add_argument("--lr", type=positive_float, default=0.001,
                   help="Learning rate of Adam (default %(default)s).")


def layer_sizes(text: str) -> Tuple[int, ...]:
    """``'64,32,16,8'`` as a tuple of positive ints (an argparse type)."""
    try:
        sizes = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"expected positive layer sizes such as 64,32,16,8, "
                                         f"got {text!r}")
    return sizes


layer_sizes.__name__ = "layer sizes"


def build_model(kind: str, n_users: int, n_items: int, factors: int, layers: Tuple[int, ...],
                lr: float):
    """A compiled zoo model (Adam, binary cross-entropy), as the main job builds it."""
    from neurec import models, optimizers
    if kind == "neumf":
        m = models.NeuMF(n_users, n_items, factors=factors, layers=layers)
    elif kind == "gmf":
        m = models.GMF(n_users, n_items, factors=factors)
    elif kind == "mlp":
        m = models.MLP(n_users, n_items, layers=layers)
    else:
        m = models.MF(n_users, n_items, factors=factors)
    m.compile(optimizer=optimizers.Adam(learning_rate=lr), loss="binary_crossentropy")
    return m
