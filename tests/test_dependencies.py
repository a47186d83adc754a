"""The installed SimPy is one the project declares it works with: the engine is tested
against this version, and the next major may change the API it uses."""

from __future__ import annotations

import tomllib
from importlib.metadata import PackageNotFoundError, requires, version
from pathlib import Path

from packaging.requirements import Requirement

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def declared(name: str) -> Requirement:
    """The project's requirement on ``name``: from pyproject.toml in a checkout (the code
    under test), else from the installed npsim's metadata."""
    if PYPROJECT.is_file():
        lines = tomllib.loads(PYPROJECT.read_text("utf-8"))["project"]["dependencies"]
    else:  # pragma: no cover - tests run from an installed wheel
        lines = requires("npsim") or []
    found = [r for r in map(Requirement, lines) if r.name == name and r.marker is None]
    assert len(found) == 1, f"the project declares {name} {len(found)} times: {lines}"
    return found[0]


def test_simpy_has_an_upper_bound() -> None:
    simpy = declared("simpy")
    assert any(s.operator in ("<", "<=", "~=", "==") for s in simpy.specifier), simpy


def test_installed_simpy_is_within_the_declared_bound() -> None:
    simpy = declared("simpy")
    try:
        installed = version("simpy")
    except PackageNotFoundError:  # pragma: no cover - npsim cannot run without it
        raise AssertionError("simpy is not installed") from None
    assert simpy.specifier.contains(installed, prereleases=True), (
        f"simpy {installed} is installed; the project declares {simpy}")
