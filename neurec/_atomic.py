"""Atomic file writes: the one place where neurec writes a temporary file and renames it.

Used by model saving, the NCF writer, the MovieLens download cache and the command line's
recommendation file. Every file is written to a temporary file in the target's directory,
flushed to disk, then renamed over the target, so a reader never sees a half-written file. A
group of files is renamed only once every member has been written, so a failure leaves the
old group intact. A directory (an extracted archive) is filled under a temporary name and
renamed the same way by :func:`atomic_directory`.

Temporary files are named ``.<target name>.<pid>.<random>.neurec-tmp``. A process killed
mid-save (``kill -9``, power loss) leaves one behind; the next save of the same target removes
those whose process is gone (and any older than a day), and never touches other files.
Temporary files are created with mode ``0o666`` minus the umask, as ``open()`` would create
the target itself (directories ``0o777`` minus the umask), and are opened for reading too, so
a write function may check what it wrote before the rename.
"""
import os
import secrets
import shutil
import time
from typing import BinaryIO, Callable, List, Optional, Sequence, Tuple

__all__ = ["TEMP_SUFFIX", "temp_name", "clean_stale_temps", "atomic_write", "atomic_write_many",
           "atomic_directory"]

TEMP_SUFFIX = ".neurec-tmp"
# a dead writer's temp file goes once it is this old (a pid from another host sharing the
# directory may look dead here); any temp file goes after STALE_SECONDS
DEAD_PID_GRACE_SECONDS = 60.0
STALE_SECONDS = 24 * 3600.0

Writer = Callable[[BinaryIO], None]


def temp_name(target: str, pid: Optional[int] = None, token: Optional[str] = None) -> str:
    """File name (no directory) of a temporary file for ``target``.

    Args:
        target: Path of the file being written.
        pid: Writer's process id (default: this process).
        token: Random part (default: 8 fresh hex digits).

    Returns:
        ``'.<basename>.<pid>.<token>.neurec-tmp'``.
    """
    pid = os.getpid() if pid is None else int(pid)
    token = secrets.token_hex(4) if token is None else token
    return f".{os.path.basename(target)}.{pid}.{token}{TEMP_SUFFIX}"


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if os.name != "posix":
        return True  # no cheap check: rely on the age rule alone
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def clean_stale_temps(target: str, now: Optional[float] = None) -> List[str]:
    """Remove temporary files left by interrupted writes of ``target``.

    Only files (or directories, see :func:`atomic_directory`) named by :func:`temp_name` for
    this target are considered; one is removed when its writer process no longer exists (and
    it is over a minute old) or when it is over a day old. Errors (a file removed
    concurrently, no permission) are ignored.

    Args:
        target: Path of the file about to be written.
        now: Current time (default ``time.time()``), for tests.

    Returns:
        The paths removed.
    """
    directory = os.path.dirname(os.path.abspath(target))
    prefix = f".{os.path.basename(target)}."
    now = time.time() if now is None else now
    removed = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        if not (name.startswith(prefix) and name.endswith(TEMP_SUFFIX)):
            continue
        middle = name[len(prefix):-len(TEMP_SUFFIX)].split(".")
        if len(middle) != 2 or not middle[0].isdigit():
            continue
        path = os.path.join(directory, name)
        try:
            age = now - os.lstat(path).st_mtime
        except OSError:
            continue
        dead = not _pid_alive(int(middle[0]))
        if (dead and age > DEAD_PID_GRACE_SECONDS) or age > STALE_SECONDS:
            try:
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path)
                else:
                    os.unlink(path)
                removed.append(path)
            except OSError:
                pass
    return removed


def _open_temp(target: str) -> Tuple[str, BinaryIO]:
    directory = os.path.dirname(os.path.abspath(target))
    os.makedirs(directory, exist_ok=True)
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        path = os.path.join(directory, temp_name(target))
        try:
            fd = os.open(path, flags, 0o666)  # the umask applies, as for open(target, "wb")
        except FileExistsError:
            continue
        return path, os.fdopen(fd, "w+b")
    raise FileExistsError(f"could not create a temporary file next to {target}")


def atomic_write_many(files: Sequence[Tuple[str, Writer]], overwrite: bool = True) -> None:
    """Write several files all-or-nothing (as far as the file system allows).

    Each ``write(f)`` gets a binary file object, open for reading too. Every file is written to its temporary
    file and flushed to disk first, and every target is checked to be replaceable (not a
    directory); only then are they renamed over their targets, in order. If any write or
    check fails, every temporary file is removed and no target changes. The renames
    themselves are one system call per file: should the file system fail, or Ctrl-C land,
    between two of them, the files renamed so far are already the new ones.

    Args:
        files: ``(target path, write function)`` pairs.
        overwrite: With ``False``, a target that exists raises ``FileExistsError``, also
            when another process creates it while this one writes (the new file is
            published with a hard link, which never replaces; where the file system has
            no hard links, a check just before the rename).

    Raises:
        Whatever a write function or the file system raises (``OSError`` for a full disk),
        ``IsADirectoryError`` for a target that is a directory, ``FileExistsError``.
    """
    temps: List[str] = []
    try:
        for target, write in files:
            clean_stale_temps(target)
            tmp, f = _open_temp(target)
            temps.append(tmp)
            with f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
        for target, _ in files:
            if os.path.isdir(target):
                raise IsADirectoryError(f"{target} is a directory; choose a file path")
            if not overwrite and os.path.lexists(target):
                raise FileExistsError(f"{target} exists; pass overwrite=True to replace it")
        for tmp, (target, _) in zip(temps, files):
            if overwrite:
                os.replace(tmp, target)
                continue
            try:
                os.link(tmp, target)  # fails if target exists, whoever created it
            except FileExistsError:
                raise FileExistsError(f"{target} exists; pass overwrite=True to replace it") \
                    from None
            except OSError:  # no hard links here (FAT, some network file systems)
                if os.path.lexists(target):
                    raise FileExistsError(f"{target} exists; pass overwrite=True to replace "
                                          "it") from None
                os.replace(tmp, target)
                continue
            os.unlink(tmp)
    except BaseException:
        for tmp in temps:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        raise


def atomic_write(target: str, write: Writer, overwrite: bool = True) -> None:
    """Write one file atomically (see :func:`atomic_write_many`)."""
    atomic_write_many([(target, write)], overwrite=overwrite)


def atomic_directory(target: str, fill: Callable[[str], None]) -> None:
    """Create the directory ``target`` atomically, replacing a directory already there.

    ``fill(path)`` fills an empty temporary directory next to ``target`` (named by
    :func:`temp_name`); once it returns, a directory at ``target`` is removed and the
    temporary one renamed to ``target``. If ``fill`` (or the rename) fails, the temporary
    directory is removed and ``target`` is as it was (unless the failure comes between the
    removal and the rename: then there is no ``target``, never a partial one).

    Args:
        target: Path of the directory to create.
        fill: Function that writes the directory's contents under the path it receives.

    Raises:
        Whatever ``fill`` or the file system raises; ``FileExistsError`` if no temporary
        name is free.
    """
    clean_stale_temps(target)
    directory = os.path.dirname(os.path.abspath(target))
    os.makedirs(directory, exist_ok=True)
    for _ in range(100):
        tmp = os.path.join(directory, temp_name(target))
        try:
            os.mkdir(tmp)  # 0o777 minus the umask, as for os.mkdir(target)
        except FileExistsError:
            continue
        break
    else:
        raise FileExistsError(f"could not create a temporary directory next to {target}")
    try:
        fill(tmp)
        if os.path.isdir(target):
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
