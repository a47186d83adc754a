"""Integer scenario keys refuse YAML booleans: pydantic's lax mode would read
``requests: true`` as 1 request and run something the user did not mean."""

from __future__ import annotations

from pathlib import Path

from conftest import load_text, problems_of
from scenario_files import SERVICE_TIME, line_of, scenario_text


def _text(workers: str, placed: str, requests: str) -> str:
    return scenario_text(name="booleans", workloads={"web": f"""\
        workers: {workers}
        placement: {{n1: {placed}}}
        {SERVICE_TIME}"""}, run=f"{{requests: {requests}}}")


def _report(tmp_path: Path, workers: str, placed: str, requests: str) -> str:
    return problems_of(tmp_path, _text(workers, placed, requests))


def test_booleans_in_integer_fields_are_refused_with_their_paths(tmp_path: Path) -> None:
    report = _report(tmp_path, "true", "false", "true")
    line = line_of(_text("true", "false", "true"), "run: {requests: true}")
    assert f"scenario.yaml:{line}:7: run.requests: expected a whole number, got the boolean " \
        "true" in report
    assert "workloads.web.workers: expected a whole number, got the boolean true" in report
    assert "workloads.web.placement.n1: expected a whole number, got the boolean false" \
        in report


def test_whole_numbers_still_load(tmp_path: Path) -> None:
    scenario = load_text(tmp_path, _text("2", "1", "5"))
    assert scenario.spec.run.requests == 5
    assert scenario.spec.workloads["web"].workers == 2
