"""``npsim compare`` labels each column by the folder as the user typed it: relative to
the working folder (``results/quickstart/seed-1``, not the absolute path's tail), less
the leading folders every column shares (issue 24)."""

from __future__ import annotations

from pathlib import Path

import pytest

from npsim.cli.runs import _compare_labels


def test_labels_are_relative_to_the_working_folder(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    outside = tmp_path.parent / "elsewhere" / "seed-1"
    assert _compare_labels(("results/quickstart/seed-1", str(outside))) == [
        "results/quickstart/seed-1", outside.resolve().as_posix()]
    assert _compare_labels(("results/a/seed-1", "./results/b/seed-1")) == [
        "a/seed-1", "b/seed-1"]
    assert _compare_labels((str(tmp_path / "results" / "a"),)) == ["a"]
    assert _compare_labels(("runs/x", "runs/x")) == ["x #1", "x #2"]
