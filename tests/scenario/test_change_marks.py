"""Problems with a variant's changes point at the line of the scenario file where the
variant writes them (they named the variant and the key, not the line); a ``--set``
that breaks another key points at that key's line (issue 22)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import client, scenario_dict

import npsim
from npsim.preflight import preflight_variants
from npsim.scenario.problems import ScenarioError
from npsim.sweep.variants import expand

VARIANTS = """\
variants:
  each:
    - name: fine
      set: {workloads.web.workers: 2}
    - name: broken
      set:
        workloads.web.workers: -3
  grid:
    cluster.proxyMode: [iptables, bogus]
"""


def write(tmp_path: Path, extra: str = "") -> Path:
    data = scenario_dict(nodes=2, replicas=2, clients=[client(rate=20.0)], duration=2.0)
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False) + extra, "utf-8")
    return path


def line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_variant_problems_point_at_the_variants_lines(tmp_path: Path) -> None:
    path = write(tmp_path, VARIANTS)
    with pytest.raises(ScenarioError) as info:
        expand(npsim.load_scenario(path))
    by_path = {(p.path.split(": ")[1], p.path.split(": ")[2].split(" ")[0]): p
               for p in info.value.problems}
    workers = by_path[("broken,proxyMode=iptables", "workloads.web.workers")]
    assert workers.mark.file == str(path)
    assert workers.mark.line == line_of(path, "workloads.web.workers: -3")
    mode = by_path[("fine,proxyMode=bogus", "cluster.proxyMode")]
    assert mode.mark.line == line_of(path, "cluster.proxyMode: [iptables, bogus]")
    text = path.read_text().splitlines()[mode.mark.line - 1]
    assert mode.mark.column == text.index("bogus") + 1  # the grid's second value


def test_a_variant_the_limits_refuse_points_at_its_change(tmp_path: Path) -> None:
    path = write(tmp_path, "variants:\n  each:\n    - name: big\n      set:\n"
                           "        run.duration: 8000h\n")
    variants, _ = expand(npsim.load_scenario(path))
    with pytest.raises(ScenarioError) as info:
        preflight_variants(variants, max_requests=1000)
    (problem,) = [p for p in info.value.problems if p.path.endswith("run.duration")]
    assert problem.path == "variants: big: run.duration"
    assert problem.mark.line == line_of(path, "run.duration: 8000h")


def test_a_set_that_breaks_another_key_points_at_that_keys_line(tmp_path: Path) -> None:
    path = write(tmp_path)
    data = yaml.safe_load(path.read_text())
    data["run"]["warmup"] = "1s"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ScenarioError) as info:
        npsim.load_scenario(path).with_changes({"run.duration": "0.5s"})
    (problem,) = info.value.problems
    assert problem.path == "run.warmup" and "(after the changes)" in problem.message
    assert problem.mark.line == line_of(path, "warmup: 1s")
