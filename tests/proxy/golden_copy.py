"""The golden overall scenario (kube-proxy's own TestOverall*Rules Services) copied with
an edit, and ``npsim explain`` of it as lines: for the tests that hold one mode's text
against kube-proxy's proxier.go beyond the golden comparison."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner

from npsim.cli import main

GOLDEN = Path(__file__).parent / "golden" / "overall.yaml"


def service(data: dict[str, Any], name: str) -> dict[str, Any]:
    """The manifest of the golden Service ``name``."""
    return next(m for m in data["manifests"] if m["metadata"]["name"] == name)


def golden_copy(tmp_path: Path, mode: str,
                edit: Callable[[dict[str, Any]], None] | None = None) -> Path:
    """The golden scenario in ``mode``, changed by ``edit``, written under ``tmp_path``."""
    data = yaml.safe_load(GOLDEN.read_text())
    data["cluster"]["proxyMode"] = mode
    if edit is not None:
        edit(data)
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def with_spec(tmp_path: Path, mode: str, name: str, **spec: object) -> Path:
    """The golden scenario in ``mode`` with Service ``name``'s spec fields changed."""
    return golden_copy(tmp_path, mode, lambda data: service(data, name)["spec"].update(spec))


def explain_lines(path: Path, *args: str) -> list[str]:
    """``npsim explain PATH --node node-1 ARGS`` (which must succeed), as lines."""
    result = CliRunner().invoke(main, ["explain", str(path), "--node", "node-1", *args])
    assert result.exit_code == 0, result.output
    return result.stdout.splitlines()
