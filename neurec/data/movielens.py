"""MovieLens ratings: read local copies, or download and cache the GroupLens archives.

    log = load_movielens("ml-100k")               # cached in ~/.cache/neurec
    log = load_movielens("/data/ml-1m")           # a local copy, never downloads
    log, users, items = log.to_implicit().encode()

Three file layouts are recognised: ``u.data`` (ml-100k, tab-separated
``user item rating timestamp``), ``ratings.dat`` (ml-1m, ml-10m,
``::``-separated) and ``ratings.csv`` (ml-latest, ml-20m and later, with a
header ``userId,movieId,rating,timestamp``). Ids are returned raw (MovieLens
ids), not encoded.
"""
from __future__ import annotations

import glob
import os
import re
import shutil
import urllib.error
import urllib.request
import zipfile
from typing import Optional, Union

import numpy as np

from neurec._atomic import atomic_directory, atomic_write
from neurec.data.interactions import InteractionLog
from neurec.data.io import _int_column, _parse_numeric_table, _read_bytes

__all__ = ["read_movielens", "load_movielens"]

PathLike = Union[str, os.PathLike]
_BASE_URL = "https://files.grouplens.org/datasets/movielens/"
_KNOWN_DATASETS = ("ml-100k", "ml-1m", "ml-latest-small")
_RATING_FILES = ("u.data", "ratings.dat", "ratings.csv")
_USER_NAMES = ("userid", "user_id", "user")
_ITEM_NAMES = ("movieid", "movie_id", "movie", "itemid", "item_id", "item")
_DOWNLOAD_TIMEOUT = 60.0


# ------------------------------------------------------------------ reading
def _find_ratings_file(directory: str) -> Optional[str]:
    """The first of u.data / ratings.dat / ratings.csv in ``directory`` or below (depth 2)."""
    for depth in range(3):
        pattern = os.path.join(directory, *(["*"] * depth))
        for name in _RATING_FILES:
            hits = sorted(p for p in glob.glob(os.path.join(pattern, name)) if os.path.isfile(p))
            if hits:
                return hits[0]
    return None


def read_movielens(path: PathLike) -> InteractionLog:
    """Read MovieLens ratings from a file or a directory.

    Args:
        path: A ``u.data``, ``ratings.dat`` or ``ratings.csv`` file, or a
            directory containing one (directly or up to two levels down, as in
            an extracted GroupLens zip).

    Returns:
        An InteractionLog of raw MovieLens user and movie ids (int64),
        timestamps (int64 Unix seconds) and ratings as values (float32).

    Raises:
        FileNotFoundError: If ``path`` does not exist or a directory holds no
            ratings file.
        ValueError: On a malformed line (with its line number and text).
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        found = _find_ratings_file(path)
        if found is None:
            raise FileNotFoundError(f"No MovieLens ratings file ({', '.join(_RATING_FILES)}) "
                                    f"found in {path}.")
        path = found
    if not os.path.isfile(path):
        raise FileNotFoundError(f"MovieLens path not found: {path}.")
    data = _read_bytes(path)
    name = os.path.basename(path).lower()
    if name.endswith(".csv"):
        kind = "csv"
    elif name.endswith(".dat"):
        kind = "dat"
    elif name.endswith(".data"):
        kind = "data"
    else:  # sniff the first line
        head = data[:data.find(b"\n")] if b"\n" in data else data
        kind = "dat" if b"::" in head else ("csv" if b"," in head else "data")
    if kind == "csv":
        return _read_ratings_csv(data, path)
    body = data.replace(b"::", b"\t") if kind == "dat" else data
    table = _parse_numeric_table(body, path, ncols=(4,), original=data)
    return _table_to_log(table, path, (0, 1, 2, 3))


def _read_ratings_csv(data: bytes, path: str) -> InteractionLog:
    end = data.find(b"\n")
    header_line = data if end < 0 else data[:end]
    body = b"" if end < 0 else data[end + 1:]
    names = [h.strip().strip('"').lower()
             for h in header_line.decode("utf-8", "replace").strip().split(",")]

    def column(candidates, what):
        for cand in candidates:
            if cand in names:
                return names.index(cand)
        raise ValueError(f"{path}, line 1: no {what} column in the header {names}; expected "
                         f"one of {list(candidates)}.")

    cols = (column(_USER_NAMES, "user"), column(_ITEM_NAMES, "movie"),
            column(("rating",), "rating"), column(("timestamp",), "timestamp"))
    table = _parse_numeric_table(body.replace(b",", b" "), path, first_lineno=2,
                                 ncols=(len(names),), original=body)
    return _table_to_log(table, path, cols)


def _table_to_log(table: np.ndarray, path: str, cols) -> InteractionLog:
    if table.shape[0] == 0:
        empty = np.empty(0, dtype=np.int64)
        return InteractionLog(empty, empty.copy(), empty.copy(), np.empty(0, np.float32))
    u, i, r, t = cols
    return InteractionLog(_int_column(table, u, path, "user ids", nonnegative=False),
                          _int_column(table, i, path, "movie ids", nonnegative=False),
                          _int_column(table, t, path, "timestamps", nonnegative=False),
                          table[:, r].astype(np.float32))


# ------------------------------------------------------------------ loading
def _default_cache_dir() -> str:
    return os.environ.get("NEUREC_HOME") or os.path.join(os.path.expanduser("~"), ".cache",
                                                         "neurec")


def load_movielens(name: PathLike = "ml-100k", cache_dir: Optional[PathLike] = None,
                   download: bool = True, url: Optional[str] = None) -> InteractionLog:
    """Load a MovieLens data set from a local path, the cache, or GroupLens.

    If ``name`` is an existing path, it is read with `read_movielens` and
    nothing is downloaded. Otherwise ``name`` is a GroupLens data set name
    (``'ml-100k'``, ``'ml-1m'``, ``'ml-latest-small'``, or another ``ml-*``
    archive name) looked up in ``cache_dir/movielens/<name>/``. If it is not
    there and ``download`` is true, ``<url>`` (default
    ``https://files.grouplens.org/datasets/movielens/<name>.zip``) is
    downloaded to a temporary file, checked to be a valid zip, renamed into
    the cache and extracted (also through a temporary directory), so an
    interrupted or corrupt download never leaves a partial file behind.

    MovieLens is licensed for research use by GroupLens; see the README in the
    archive. The data is not redistributed with neurec.

    Args:
        name: Data set name or a local path.
        cache_dir: Cache root; default ``$NEUREC_HOME`` or ``~/.cache/neurec``.
        download: Whether to download a data set missing from the cache.
        url: Download URL overriding the GroupLens default.

    Returns:
        An InteractionLog of raw ids, timestamps and ratings.

    Raises:
        ValueError: If ``name`` is neither a path nor a MovieLens name, or the
            download is not a zip archive holding a ratings file.
        FileNotFoundError: If the data set is not cached and ``download`` is False.
        ConnectionError: If the download fails (for example offline).
    """
    if isinstance(name, os.PathLike) or os.path.exists(os.fspath(name)):
        return read_movielens(name)
    name = str(name)
    if not re.fullmatch(r"ml-[A-Za-z0-9][A-Za-z0-9.\-]*", name):
        raise ValueError(f"`name` must be a MovieLens data set name such as "
                         f"{', '.join(repr(n) for n in _KNOWN_DATASETS)}, or an existing local "
                         f"path; got {name!r} (no such file or directory).")
    root = os.path.join(os.fspath(cache_dir) if cache_dir is not None else _default_cache_dir(),
                        "movielens")
    target = os.path.join(root, name)
    archive = os.path.join(root, f"{name}.zip")
    if os.path.isdir(target) and _find_ratings_file(target):
        return read_movielens(target)
    if not os.path.isfile(archive):
        hint = (f"Pass a local copy instead: load_movielens('/path/to/{name}') (a directory "
                f"with u.data, ratings.dat or ratings.csv), or put {name}.zip in {root}.")
        if not download:
            raise FileNotFoundError(f"{name} is not in the cache ({root}) and download=False. "
                                    + hint)
        _download(url or f"{_BASE_URL}{name}.zip", archive, hint)
    _extract(archive, target)
    if not _find_ratings_file(target):
        shutil.rmtree(target, ignore_errors=True)
        os.remove(archive)
        raise ValueError(f"The archive for {name} holds no MovieLens ratings file "
                         f"({', '.join(_RATING_FILES)}); it was removed from the cache. "
                         "Check `url`.")
    return read_movielens(target)


def _download(url: str, archive: str, hint: str) -> None:
    """Download ``url`` to ``archive`` atomically, once it is checked to be a sound zip."""

    def write(f):
        try:
            with urllib.request.urlopen(url, timeout=_DOWNLOAD_TIMEOUT) as response:
                shutil.copyfileobj(response, f, 1 << 20)
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ConnectionError(f"Could not download {url}: {reason}. {hint}") from exc
        f.flush()
        if not zipfile.is_zipfile(f):
            raise ValueError(f"The file downloaded from {url} is not a zip archive; nothing was "
                             f"saved. Check `url`. {hint}")
        with zipfile.ZipFile(f) as zf:
            bad = zf.testzip()
        if bad is not None:
            raise ValueError(f"The zip downloaded from {url} is corrupt (member {bad!r}); "
                             f"nothing was saved. {hint}")

    atomic_write(archive, write)


def _extract(archive: str, target: str) -> None:
    """Extract ``archive`` into the directory ``target`` atomically, replacing it."""

    def fill(tmp):
        try:
            with zipfile.ZipFile(archive) as zf:
                root = os.path.realpath(tmp)
                for member in zf.namelist():
                    dest = os.path.realpath(os.path.join(tmp, member))
                    if dest != root and not dest.startswith(root + os.sep):
                        raise ValueError(f"{archive}: member {member!r} would extract outside "
                                         "the cache; refusing.")
                zf.extractall(tmp)
        except zipfile.BadZipFile as exc:
            raise ValueError(f"{archive} is not a valid zip archive ({exc}); delete it and "
                             "retry.") from exc

    atomic_directory(target, fill)
