"""Writing a result folder atomically, never over something a user kept.

Everything is written into a hidden temporary folder beside the target and renamed into
place at the end: a crash or a bad input leaves no half-written result. Around that:

* a lock (``fcntl.flock`` on a hidden ``.<name>.npsim-lock`` file beside the target,
  removed again by its holder) around the check and the rename, so two runs into the
  same folder cannot both succeed: the second waits for the first and is then told the
  folder exists (unless both asked to replace it);
* a marker file, ``.npsim-result``, inside every folder npsim writes: ``overwrite=True``
  (``--force``) replaces only a directory holding it, never a user's folder, a file, a
  symlink or a device (:class:`NotAResultError`). Other files in a result folder
  (frames, figures, reports) are just more files: the marker names the folder, not them;
* the marker says what wrote the folder (``{"npsim": VERSION}`` for a run, with
  ``"kind": "sweep"`` or ``"compare"`` for the others), so a sweep resumes only into a
  sweep and ``compare`` tells a sweep's folder from a run's;
* temporary folders of killed runs (``.<name>.npsim-*.tmp`` / ``.old``, recognised by
  that name and only while holding the lock) are removed by the next run into the same
  place.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

MARKER = ".npsim-result"
ROWS_PER_GROUP = 1 << 16  # rows converted and written at a time (one parquet row group)


class ResultExistsError(FileExistsError):
    pass


class NotAResultError(FileExistsError):
    """``--force`` met something npsim did not write."""


class ResultLockedError(BlockingIOError):
    """Another npsim process is writing the same result folder."""


def _read_umask() -> int:
    """The process umask, read once at import (setting it to read it is not thread-safe
    later, when a notebook may run threads)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()
_held: dict[Path, int] = {}  # locks this process holds: target -> depth (re-entrant)


def resolve_target(target: str | Path) -> Path:
    """The absolute folder a result goes to (``.`` becomes the current folder's own
    name in its parent, so temporary names and the lock are beside it)."""
    text = str(target)
    if not text.strip():
        raise ValueError("the result folder name is empty")
    return Path(os.path.abspath(text))


def _prefix(target: Path) -> str:
    return f".{target.name}.npsim-"


def is_result_folder(path: Path) -> bool:
    """A real directory (not a symlink) holding npsim's marker file."""
    try:
        info = os.lstat(path)
        marker = os.lstat(path / MARKER)
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and stat.S_ISREG(marker.st_mode)


@contextmanager
def result_lock(target: str | Path, wait: float = 60.0) -> Iterator[Path]:
    """Hold the lock of a result folder (re-entrant within this process); another
    process waits up to ``wait`` seconds, then gets :class:`ResultLockedError`."""
    import fcntl
    import time

    target = resolve_target(target)
    if target in _held:
        _held[target] += 1
        try:
            yield target
        finally:
            _held[target] -= 1
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    lock_path = target.parent / f"{_prefix(target)}lock"
    deadline = time.monotonic() + wait
    while True:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
                     | getattr(os, "O_NOFOLLOW", 0), 0o666 & ~_UMASK)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if time.monotonic() > deadline:
                raise ResultLockedError(
                    f"{target} is being written by another npsim run; wait for it or choose "
                    "another --out") from None
            time.sleep(0.05)
            continue
        try:  # the holder before us may have removed the file: lock the current one
            if os.stat(lock_path).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    _held[target] = 1
    try:
        _clean_stale(target)
        yield target
    finally:
        del _held[target]
        try:
            os.unlink(lock_path)  # while still holding it: nobody is left on a stale file
        finally:
            os.close(fd)


def _clean_stale(target: Path) -> None:
    """Remove what killed runs into ``target`` left: npsim's own temporary folders only
    (called with the lock held, so no live run owns them)."""
    prefix = _prefix(target)
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return
    for entry in entries:
        name = entry.name
        if name.startswith(prefix) and name.endswith((".tmp", ".old")) \
                and entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)


def folder_kind(path: Path) -> str | None:
    """What npsim wrote ``path`` as (``run``, ``sweep``, ``compare``); None when npsim did
    not write it."""
    if not is_result_folder(path):
        return None
    try:
        data = json.loads((path / MARKER).read_text())
    except (OSError, ValueError):
        return "run"
    kind = data.get("kind", "run") if isinstance(data, dict) else "run"
    return kind if isinstance(kind, str) else "run"


def write_marker(folder: Path, kind: str = "run") -> None:
    """npsim's marker, put in place by rename: a folder made of hard links to another's
    files (a sweep being extended) must not write through into the other's marker."""
    from npsim.version import __version__

    data = {"npsim": __version__} if kind == "run" else {"npsim": __version__, "kind": kind}
    tmp = folder / f"{MARKER}.tmp"
    tmp.write_text(json.dumps(data) + "\n")
    os.replace(tmp, folder / MARKER)


def move_into_place(tmp: Path, target: Path) -> None:
    """Rename the finished folder ``tmp`` to ``target``, moving what is there aside first
    (the caller holds the lock and has checked that it may be replaced)."""
    if not os.path.lexists(target):
        os.replace(tmp, target)
        return
    trash = Path(tempfile.mkdtemp(prefix=_prefix(target), suffix=".old", dir=target.parent))
    os.replace(target, trash / "old")
    os.replace(tmp, target)
    shutil.rmtree(trash, ignore_errors=True)


def check_target(target: str | Path, overwrite: bool) -> Path:
    """Refuse early (before a long run) what the final write would refuse."""
    target = resolve_target(target)
    if os.path.lexists(target):
        if not overwrite:
            raise ResultExistsError(
                f"{target} already exists; npsim does not overwrite results. Pass --out DIR "
                "for a new folder, or --force to replace it.")
        if not is_result_folder(target):
            raise NotAResultError(
                f"{target} exists and is not a result folder npsim wrote (no {MARKER} "
                "marker inside); --force replaces only npsim's own results. Choose another "
                "--out.")
    return target


def write_atomically(target: str | Path, write: Callable[[Path], None],
                     overwrite: bool = False, kind: str = "run") -> Path:
    """Call ``write(tmpdir)`` and move the folder to ``target`` (under the lock); returns
    ``target`` as given. ``kind`` goes into the marker."""
    given = Path(target)
    with result_lock(target) as target:
        check_target(target, overwrite)
        tmp = Path(tempfile.mkdtemp(prefix=_prefix(target), suffix=".tmp", dir=target.parent))
        os.chmod(tmp, 0o777 & ~_UMASK)  # mkdtemp makes it private; a result folder is not
        try:
            write(tmp)
            write_marker(tmp, kind)
            if os.path.lexists(target):
                check_target(target, overwrite)
            move_into_place(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return given


def write_parquet(frame: pd.DataFrame, path: Path, rows_per_group: int = ROWS_PER_GROUP) -> None:
    """``frame.to_parquet(path, index=False)``, converted and written one row group at a
    time: the Arrow copy of a group is freed before the next is made, so writing a frame
    costs a few MB beyond the frame instead of a second copy of it. Read back with
    ``pandas.read_parquet`` it is the same frame (dtypes, categories, values)."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    # Dictionary encoding only where values repeat (categoricals, strings): on float
    # columns of distinct values it built hash tables of ~40 MB per row group, fell back
    # to plain pages anyway, and made the file bigger.
    repeated = [str(c) for c in frame.columns
                if isinstance(frame[c].dtype, pd.CategoricalDtype) or frame[c].dtype == object
                or pd.api.types.is_string_dtype(frame[c].dtype)]
    # Arrow's allocator (mimalloc) keeps the pages a written group freed: handed back
    # after each group, the save's peak at 1M requests is 5 MB lower
    pool = pa.default_memory_pool()
    first = pa.Table.from_pandas(frame.iloc[:rows_per_group], preserve_index=False)
    with pq.ParquetWriter(path, first.schema, compression="snappy",
                          use_dictionary=repeated) as writer:
        writer.write_table(first)
        del first
        pool.release_unused()
        for lo in range(rows_per_group, len(frame), rows_per_group):
            part = pa.Table.from_pandas(frame.iloc[lo:lo + rows_per_group],
                                        preserve_index=False)
            writer.write_table(part)
            del part
            pool.release_unused()
