"""`make student-labs` (scripts/student_labs.py): the labs a teacher hands out, without
their answers, written only into a folder it owns."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("student_labs", ROOT / "scripts" / "student_labs.py")
student_labs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(student_labs)  # type: ignore[union-attr]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _tags(cell: nbformat.NotebookNode) -> list[str]:
    return cell.metadata.get("tags", [])


@pytest.fixture(scope="module")
def editions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("build") / "student-labs"
    assert student_labs.main(["--out", str(out)]) == 0
    return out


def test_every_lab_has_a_student_edition_without_answers(editions: Path) -> None:
    assert sorted(p.name for p in editions.glob("*.ipynb")) == [p.name for p in NOTEBOOKS]
    for lab in NOTEBOOKS:
        teacher = nbformat.read(lab, as_version=4)
        student = nbformat.read(editions / lab.name, as_version=4)
        assert not [c for c in student.cells if "answer" in _tags(c)], lab.name
        assert not [c for c in student.cells if c.cell_type == "code" and "assert" in c.source]
        assert "answer cell below" not in "".join(c.source for c in student.cells)
        # everything else is the teacher's lab, cell for cell
        kept = [c for c in teacher.cells if "answer" not in _tags(c)]
        assert [c.get("id") for c in student.cells] == [c.get("id") for c in kept]
        assert all(c.outputs == [] for c in student.cells if c.cell_type == "code")


def test_a_rerun_replaces_its_own_folder(editions: Path) -> None:
    (editions / "01-nodeport-path.ipynb").unlink()
    assert student_labs.main(["--out", str(editions)]) == 0
    assert (editions / "01-nodeport-path.ipynb").is_file()
    assert not [p for p in editions.parent.iterdir() if p.name.startswith(".")]


def test_a_folder_it_did_not_write_is_left_alone(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    mine = tmp_path / "student-labs"
    mine.mkdir()
    (mine / "my-notes.ipynb").write_text("{}")
    assert student_labs.main(["--out", str(mine)]) == 2
    assert "not written by `make student-labs`" in capsys.readouterr().err
    assert [p.name for p in mine.iterdir()] == ["my-notes.ipynb"]
    (tmp_path / "a-file").write_text("x")
    assert student_labs.main(["--out", str(tmp_path / "a-file")]) == 2
    assert (tmp_path / "a-file").read_text() == "x"


def test_a_lab_that_asserts_outside_its_answers_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    labs = tmp_path / "notebooks"
    labs.mkdir()
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("share = 0.25"),
        nbformat.v4.new_code_cell("assert share == 0.25  # the answer, untagged")])
    nbformat.write(notebook, labs / "01-lab.ipynb")
    out = tmp_path / "out"
    assert student_labs.main(["--notebooks", str(labs), "--out", str(out)]) == 2
    assert "01-lab.ipynb: cell 1" in capsys.readouterr().err and not out.exists()
    notebook.cells[1].metadata["tags"] = ["answer"]
    nbformat.write(notebook, labs / "01-lab.ipynb")
    assert student_labs.main(["--notebooks", str(labs), "--out", str(out)]) == 0
    assert [c.source for c in nbformat.read(out / "01-lab.ipynb", as_version=4).cells] == [
        "share = 0.25"]


@pytest.mark.slow
def test_a_student_edition_runs_top_to_bottom(editions: Path) -> None:
    """Every edition's cells run in test_notebooks (answers sandboxed); this runs one
    written file as handed out, from its own folder, as a student's kernel would."""
    path = editions / "07-nodeport-range.ipynb"
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(editions)}}).execute()
    assert any("image/png" in o.get("data", {}) for c in notebook.cells
               if c.cell_type == "code" for o in c.outputs)
