"""The lab notebooks run top to bottom in a real Jupyter kernel started in notebooks/,
as a student's would: a failing cell (or a lab's answer that no longer holds) fails."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
# the tutorial's sections, in its order: path, modes, access, affinity, Local, node failure,
# the NodePort range, firewalls, alert rules, HTTPS; then pods that call Services
LABS = ("01-nodeport-path", "02-proxy-modes", "03-external-access", "04-session-affinity",
        "05-local-vs-cluster", "06-node-failure", "07-nodeport-range", "08-firewalls",
        "09-alert-rules", "10-https", "11-calls-between-tiers")


def _answers(notebook: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [c for c in notebook.cells if "answer" in c.metadata.get("tags", [])]


def test_the_eleven_labs_are_there() -> None:
    assert [p.stem for p in NOTEBOOKS] == list(LABS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_committed_without_outputs(path: Path) -> None:
    for cell in json.loads(path.read_text())["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, path.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_every_exercise_has_a_collapsed_answer_cell(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    answers = _answers(notebook)
    # the new labs set at least two predict-then-check exercises each
    assert len(answers) >= (2 if path.stem >= "07" else 1), path.name
    assert all(a.cell_type == "code" and a.metadata["jupyter"]["source_hidden"] for a in answers)
    prompts = sum("answer cell below is collapsed" in c.source for c in notebook.cells)
    assert prompts == len(answers), path.name


def _answers_sandboxed(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The notebook with each answer cell run on a copy of the kernel's names: what an
    answer assigns cannot reach the cells after it, so the other cells run exactly as the
    student edition's (which has no answer cells) would, and the answers are still checked
    where they stand. One kernel run proves both."""
    for cell in _answers(notebook):
        cell.source = (f"exec(compile({cell.source!r}, 'answer cell', 'exec'), "
                       "dict(globals()))")
    return notebook


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_and_its_student_edition_run_in_a_kernel(path: Path) -> None:
    notebook = _answers_sandboxed(nbformat.read(path, as_version=4))
    client = NotebookClient(notebook, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute()  # raises CellExecutionError on the first failing cell
    images = [o for cell in notebook.cells if cell.cell_type == "code"
              for o in cell.outputs if "image/png" in o.get("data", {})]
    assert images, f"{path.name} drew no figure"
    for answer in _answers(notebook):  # an answer checks something and says what
        assert any(o.get("name") == "stdout" for o in answer.outputs), path.name
