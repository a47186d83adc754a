"""Reading the files a scenario names, safely: regular files only, bounded, UTF-8.

A scenario may name manifest files and empirical sample files. Whatever those names
point at, reading them must end quickly and in a clean error: a FIFO or ``/dev/zero``
would block or never end, a symlink loop raises, a huge file exhausts memory, and a
file outside the scenario's folder (``../``, an absolute path, a symlink) may hold
something the user never meant to show. So npsim reads only regular files, at most
``max_bytes`` of them, decoded as UTF-8, and only inside the scenario's folder unless the
user allows more (``npsim run --allow-outside-files``, ``load_scenario(...,
allow_outside_files=True)``). Error messages never quote what such a file holds.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path

MiB = 1 << 20
MAX_SCENARIO_BYTES = 16 * MiB
MAX_MANIFEST_BYTES = 64 * MiB
MAX_SAMPLES_BYTES = 32 * MiB  # and at most 1,000,000 values (npsim.dists.MAX_SAMPLES)


class FileRefused(ValueError):
    """A named file that npsim will not read; the message says why, not what it holds."""


@dataclass(frozen=True)
class FileAccess:
    """Where a scenario may read from: its own folder, or anywhere when allowed."""

    base_dir: Path
    allow_outside: bool = False

    def path(self, name: str) -> Path:
        return self.base_dir / name

    def read(self, name: str, what: str, max_bytes: int) -> str:
        """The text of ``name`` (relative to the scenario's folder)."""
        path = self.path(name)
        if not self.allow_outside:
            inside(path, self.base_dir, what)
        return read_text(path, what, max_bytes)


def inside(path: Path, base_dir: Path, what: str) -> None:
    """Refuse a path that leads (also through symlinks) outside ``base_dir``."""
    try:
        real = Path(os.path.realpath(path))
        base = Path(os.path.realpath(base_dir))
    except (OSError, RuntimeError, ValueError) as exc:
        raise FileRefused(f"{what} {path}: cannot resolve the path ({exc.__class__.__name__})"
                          ) from None
    if real != base and base not in real.parents:
        raise FileRefused(
            f"{what} {path} is outside the scenario's folder {base}; npsim reads only files "
            "inside it unless you allow more (npsim run/validate --allow-outside-files, or "
            "load_scenario(..., allow_outside_files=True))")


def read_text(path: Path, what: str, max_bytes: int) -> str:
    """Read a regular UTF-8 file of at most ``max_bytes``; FileNotFoundError if missing,
    :class:`FileRefused` for anything else that is wrong with it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise FileRefused(f"{what} {path}: too many levels of symbolic links (a symlink "
                              "loop?)") from None
        raise FileRefused(f"{what} {path}: cannot open ({exc.strerror or exc})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = ("a directory" if stat.S_ISDIR(info.st_mode) else
                    "a FIFO" if stat.S_ISFIFO(info.st_mode) else
                    "a device" if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode)
                    else "a socket" if stat.S_ISSOCK(info.st_mode) else "not a file")
            raise FileRefused(f"{what} {path} is {kind}; npsim reads only regular files")
        if info.st_size > max_bytes:
            raise FileRefused(f"{what} {path} is {info.st_size} bytes; the limit is "
                              f"{max_bytes} bytes")
        chunks: list[bytes] = []
        size = 0
        while True:  # a file may grow while read (or lie about its size): stop at the cap
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > max_bytes:
                raise FileRefused(f"{what} {path} is larger than the limit of {max_bytes} "
                                  "bytes")
    except OSError as exc:
        raise FileRefused(f"{what} {path}: cannot read ({exc.strerror or exc})") from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    try:
        return data.decode("utf-8-sig")  # a leading byte-order mark (Windows editors) dropped
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise FileRefused(f"{what} {path} is not UTF-8 text (invalid byte at line {line}, "
                          f"column {column})") from None
