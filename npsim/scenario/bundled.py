"""The scenarios that ship with npsim, found wherever Python runs.

``scenarios/`` of the repository is installed as package data (``npsim/bundled_scenarios``
links to it in a checkout), so a notebook whose kernel starts in ``notebooks/``, or a
script run from anywhere, loads ``npsim.bundled("local-vs-cluster")`` without a path.
"""

from __future__ import annotations

from pathlib import Path

from npsim.scenario.loader import load_scenario
from npsim.scenario.scenario import Scenario

BUNDLED_DIR = Path(__file__).resolve().parents[1] / "bundled_scenarios"


def bundled_names() -> list[str]:
    """Names of the bundled scenarios (file names without ``.yaml``)."""
    return sorted(p.stem for p in BUNDLED_DIR.glob("*.yaml"))


def bundled_path(name: str) -> Path:
    """The file of a bundled scenario, e.g. ``bundled_path("quickstart")``."""
    path = BUNDLED_DIR / f"{name.removesuffix('.yaml')}.yaml"
    if not path.is_file():
        raise ValueError(f"no bundled scenario {name!r}; bundled: {', '.join(bundled_names())}")
    return path


def bundled(name: str) -> Scenario:
    """Load a bundled scenario by name: ``npsim.bundled("local-vs-cluster")``."""
    return load_scenario(bundled_path(name))
