"""npsim.bundled finds the shipped scenarios from any working directory."""

from __future__ import annotations

from pathlib import Path

import pytest

import npsim

ROOT = Path(__file__).resolve().parents[2]


def test_every_scenario_file_is_bundled_and_loads_from_elsewhere(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # as a notebook kernel started in notebooks/ would be
    names = npsim.bundled_names()
    assert names == sorted(p.stem for p in (ROOT / "scenarios").glob("*.yaml"))
    for name in names:
        assert npsim.bundled(name).spec.name == name


def test_unknown_name_lists_the_bundled_ones() -> None:
    with pytest.raises(ValueError, match="no bundled scenario 'nope'; bundled: .*quickstart"):
        npsim.bundled("nope")
