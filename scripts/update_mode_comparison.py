"""Regenerate docs/mode-comparison.md from the sweep in scenarios/mode-comparison.yaml.

Run from anywhere: .venv/bin/python scripts/update_mode_comparison.py
(about a minute on 2 cores; the same as ``npsim sweep scenarios/mode-comparison.yaml``
followed by copying its report.md and comparison.png). The sweep folder is
results/mode-comparison/: a rerun after an interruption resumes there.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import npsim

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    os.chdir(ROOT)  # the report names the scenario by this relative path
    result = npsim.run_sweep(npsim.load_scenario("scenarios/mode-comparison.yaml"),
                             Path("results") / "mode-comparison")
    if not result.failures.empty:
        raise SystemExit(f"{len(result.failures)} runs failed:\n{result.report()}")
    report = (result.folder / "report.md").read_text()
    shutil.copyfile(result.folder / "comparison.png", ROOT / "docs" / "mode-comparison.png")
    (ROOT / "docs" / "mode-comparison.md").write_text(
        report.replace("(comparison.png)", "(mode-comparison.png)"))
    print(f"docs/mode-comparison.md written ({result.computed} runs made)")


if __name__ == "__main__":
    main()
