"""Where a sweep is written, guarded as a run's result folder is.

A sweep is built in a hidden folder beside its target, ``.OUT.npsim-sweep.partial``,
and renamed to ``OUT`` when its tables and reports are written: ``OUT`` is either absent
or complete, whatever moment the sweep was killed at. The hidden folder is the resumable
state: a rerun of the same command continues there (runs that finished are kept).

* ``OUT`` absent or an empty folder: a new sweep (or the interrupted one, resumed).
* ``OUT`` a sweep folder (its marker says ``"kind": "sweep"``, or a sweep written before
  markers): resumed or extended. Its files are hard-linked into the hidden folder (no
  copy, nothing recomputed; npsim replaces files by rename, never writes into them), so
  ``OUT`` stays whole until the new one takes its place. Files a user added are kept.
* ``OUT`` another of npsim's folders (a run's): refused unless ``--force``.
* anything else (a user's folder, a file, a symlink): always refused.
* ``--force`` starts over: an interrupted attempt is discarded and ``OUT``, when it is
  npsim's own, is replaced at the end.

The target's lock (``results/store.py``) is held for the whole sweep, so two sweeps into
one folder cannot interleave.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path

import pandas as pd

from npsim.results.store import (
    NotAResultError,
    ResultExistsError,
    folder_kind,
    is_result_folder,
    move_into_place,
    write_marker,
)
from npsim.sweep.targets import split_key

STAGING = "npsim-sweep.partial"


def staging_folder(out: Path) -> Path:
    """The hidden folder a sweep into ``out`` is built in."""
    return out.parent / f".{out.name}.{STAGING}"


def _real_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def is_sweep_folder(path: Path) -> bool:
    """A folder ``npsim sweep`` wrote: by its marker, or (sweeps written before markers
    were) by its layout, ``sweep.parquet`` beside ``runs/``."""
    kind = folder_kind(path)
    if kind is not None:
        return kind == "sweep"
    return _real_dir(path) and (path / "sweep.parquet").is_file() and _real_dir(path / "runs")


def _ours(path: Path) -> bool:
    return is_sweep_folder(path) or folder_kind(path) is not None


def _empty_dir(path: Path) -> bool:
    """A real, empty directory: nothing in it a user could lose."""
    try:
        return _real_dir(path) and not any(os.scandir(path))
    except OSError:
        return False


def check_sweep_target(out: Path, overwrite: bool) -> None:
    """Refuse, before anything runs, an ``OUT`` a sweep may not write to."""
    if os.path.lexists(out) and not _empty_dir(out):
        if not _ours(out):
            raise NotAResultError(
                f"{out} exists and is not a folder npsim wrote (no .npsim-result marker "
                "inside); a sweep writes only into a new folder or one of its own, and "
                "--force replaces only npsim's own folders. Choose another --out.")
        if not overwrite and not is_sweep_folder(out):
            raise ResultExistsError(
                f"{out} holds an npsim {folder_kind(out)} result, not a sweep; pass --out "
                "DIR for a new folder, or --force to replace it.")
    staging = staging_folder(out)
    if os.path.lexists(staging) and not _real_dir(staging):
        raise NotAResultError(f"{staging} is in the way of the sweep's working folder and "
                              "is not a folder; move it, or choose another --out.")


def open_staging(out: Path, overwrite: bool) -> Path:
    """The hidden folder this sweep writes into (call with ``out``'s lock held)."""
    check_sweep_target(out, overwrite)
    staging = staging_folder(out)
    if overwrite:
        shutil.rmtree(staging, ignore_errors=True)
    elif not os.path.lexists(staging) and is_sweep_folder(out):
        _link_copy(out, staging)
    staging.mkdir(exist_ok=True)
    return staging


def _link_copy(source: Path, staging: Path) -> None:
    """``source``'s tree as hard links, made under a temporary name (cleaned by the next
    lock holder if this is killed) and renamed, so a half-made copy is never resumed."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{source.name}.npsim-", suffix=".tmp",
                                dir=source.parent))
    try:
        def link(src: str, dst: str) -> None:
            try:
                os.link(src, dst)
            except OSError:  # a filesystem without hard links: copy
                shutil.copy2(src, dst)

        shutil.copytree(source, tmp / "copy", symlinks=True, copy_function=link)
        os.replace(tmp / "copy", staging)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def publish(staging: Path, out: Path) -> None:
    """Mark the finished sweep and rename it to ``out`` (with ``out``'s lock held)."""
    write_marker(staging, "sweep")
    if os.path.lexists(out) and not (_ours(out) or _empty_dir(out)):  # made meanwhile
        raise NotAResultError(f"{out} appeared during the sweep and is not npsim's; the "
                              f"finished sweep is kept in {staging}.")
    move_into_place(staging, out)


def read_sweep(folder: Path) -> dict[str, tuple[pd.DataFrame, Path | None]]:
    """A finished sweep's variants, in order, for ``npsim compare``: each one's summary
    as a run's reads (``scope, metric, value, ci_low, ci_high``: the figures recorded as
    ``latency_p99{service=cart}`` in their scope again; the value is the mean
    over replications, the CI across them; ``replications`` counts its runs) and the
    folder of its first finished run (None if none finished)."""
    summary = pd.read_csv(folder / "summary.csv")
    listed = folder / "variants.csv"
    order = (list(pd.read_csv(listed)["variant"].astype(str)) if listed.is_file()
             else list(dict.fromkeys(summary["variant"].astype(str))))
    out: dict[str, tuple[pd.DataFrame, Path | None]] = {}
    for variant in order:
        part = summary[summary["variant"].astype(str) == variant]
        scopes, metrics = zip(*map(split_key, part["metric"].astype(str)), strict=True) \
            if len(part) else ((), ())
        frame = pd.DataFrame({"scope": list(scopes), "metric": list(metrics),
                              "value": part["mean"].to_numpy(),
                              "ci_low": part["ci_low"].to_numpy(),
                              "ci_high": part["ci_high"].to_numpy()})
        runs = int(part["runs"].max()) if len(part) else 0
        frame.loc[frame["metric"] == "replications", ["value", "ci_low", "ci_high"]] = \
            [runs, float("nan"), float("nan")]
        reps = sorted((p for p in (folder / "runs" / variant).glob("rep-*")
                       if p.name[4:].isdigit() and is_result_folder(p)),
                      key=lambda p: int(p.name[4:]))
        out[variant] = (frame.reset_index(drop=True), reps[0] if reps else None)
    return out
