"""Student editions of the labs: every notebook in notebooks/ without its answer cells.

The labs keep each exercise's answer in a code cell tagged ``answer`` (collapsed in
JupyterLab, but plain to read in VS Code, classic Notebook or an HTML export). A teacher
hands out the student editions instead: ``make student-labs`` (this script) writes every
lab to ``build/student-labs/`` with those cells removed, outputs cleared, and the
"answer cell below" notes turned into a pointer to the teacher. A code cell left in a
student edition must not check an answer (no ``assert``): the script refuses a lab that
has one outside its answer cells, naming the notebook and the cell.

The folder is written whole into a temporary folder beside it and renamed into place, and
it is replaced only if it holds the marker this script writes (``.npsim-student-labs``):
never a folder a teacher made or edited by hand. Exit 2 with one paragraph on any refusal.
"""

from __future__ import annotations

import argparse
import ast
import shutil
import sys
import tempfile
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
MARKER = ".npsim-student-labs"
ANSWER_TAG = "answer"
NOTE = "*The answer cell below is collapsed: try first, then click it open (or run it) to check.*"
STUDENT_NOTE = "*Write your prediction down first; your teacher has the worked answer.*"
README = """Student editions of the npsim labs (answers removed).

Open them with Jupyter wherever npsim is installed (`pip install -e '.[notebook]'` in the
npsim repository, or `make notebook` there); each lab loads its bundled scenarios by name,
so it runs from any folder. Written by `make student-labs`; rerunning it replaces this
folder.
"""


class StudentLabError(Exception):
    """A lab that cannot become a student edition, or an output folder npsim may not replace."""


def _asserts(source: str) -> bool:
    """Whether a code cell's source holds an ``assert`` statement (IPython magics aside)."""
    lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
    try:
        tree = ast.parse("\n".join(lines))
    except SyntaxError:
        return "assert" in source
    return any(isinstance(node, ast.Assert) for node in ast.walk(tree))


def student_edition(path: Path) -> nbformat.NotebookNode:
    """The lab at ``path`` without its answer cells, outputs cleared."""
    notebook = nbformat.read(path, as_version=4)
    kept = []
    for number, cell in enumerate(notebook.cells):
        if ANSWER_TAG in cell.metadata.get("tags", []):
            continue
        if cell.cell_type == "code":
            if _asserts(cell.source):
                raise StudentLabError(
                    f"{path.name}: cell {number} (id {cell.get('id', '?')}) checks an answer "
                    f"with assert outside a cell tagged '{ANSWER_TAG}': tag it '{ANSWER_TAG}' "
                    "or move the check into the answer cell; nothing was written")
            cell.outputs, cell.execution_count = [], None
        elif cell.cell_type == "markdown":
            cell.source = cell.source.replace(NOTE, STUDENT_NOTE)
        kept.append(cell)
    notebook.cells = kept
    return notebook


def _check_replaceable(out: Path) -> None:
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise StudentLabError(f"{out}: exists and is not a folder; npsim replaces only a "
                              "folder it wrote itself; nothing was written")
    if out.is_dir() and not (out / MARKER).is_file():
        raise StudentLabError(f"{out}: the folder exists and was not written by `make "
                              f"student-labs` (no {MARKER} marker); move it away or choose "
                              "another --out; nothing was written")


def write_student_labs(notebooks: Path, out: Path) -> list[Path]:
    """Write the student edition of every ``*.ipynb`` in ``notebooks`` to ``out``
    (atomically, replacing only a folder this function wrote); the paths written."""
    labs = sorted(notebooks.glob("*.ipynb"))
    if not labs:
        raise StudentLabError(f"{notebooks}: no lab notebooks (*.ipynb) found; nothing was written")
    _check_replaceable(out)
    editions = {lab.name: student_edition(lab) for lab in labs}  # every refusal before writing
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        for name, notebook in editions.items():
            nbformat.write(notebook, staging / name)
        (staging / "README.txt").write_text(README)
        (staging / MARKER).write_text("written by scripts/student_labs.py\n")
        staging.chmod(0o755)  # mkdtemp's 0700 would hide the folder from a shared account
        _check_replaceable(out)  # again: the folder may have appeared meanwhile
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
            out.rename(old / out.name)
            staging.rename(out)
            shutil.rmtree(old)
        else:
            staging.rename(out)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return [out / name for name in editions]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--notebooks", type=Path, default=ROOT / "notebooks",
                        help="folder of the labs (default: notebooks/)")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "student-labs",
                        help="folder to write (default: build/student-labs/)")
    args = parser.parse_args(argv)
    try:
        written = write_student_labs(args.notebooks, args.out)
    except StudentLabError as exc:
        print(f"student-labs: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {len(written)} student editions (answer cells removed) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
