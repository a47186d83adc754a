"""Writing a result folder atomically, never over something a user kept.

Everything is written into a hidden temporary folder beside the target and renamed into
place at the end: a crash or a bad input leaves no half-written result. An existing
folder is replaced only when asked (``overwrite=True``), and then also by rename.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


class ResultExistsError(FileExistsError):
    pass


def _read_umask() -> int:
    """The process umask, read once at import (setting it to read it is not thread-safe
    later, when a notebook may run threads)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def write_atomically(target: Path, write: Callable[[Path], None], overwrite: bool = False) -> Path:
    """Call ``write(tmpdir)`` and move the folder to ``target``."""
    target = Path(target)
    if target.exists() and not overwrite:
        raise ResultExistsError(
            f"{target} already exists; npsim does not overwrite results. Pass --out DIR for a "
            "new folder, or --force to replace it."
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    os.chmod(tmp, 0o777 & ~_UMASK)  # mkdtemp makes it private; a result folder is not
    try:
        write(tmp)
        if target.exists():
            trash = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old",
                                          dir=target.parent))
            os.replace(target, trash / "old")
            os.replace(tmp, target)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target
