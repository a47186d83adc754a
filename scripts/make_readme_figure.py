"""Regenerate docs/figures/local-vs-cluster-pod-load.png, the figure the README shows.

Run: .venv/bin/python scripts/make_readme_figure.py   (a few seconds)
"""

from __future__ import annotations

from pathlib import Path

import npsim

OUT = Path(__file__).resolve().parents[1] / "docs" / "figures" / "local-vs-cluster-pod-load.png"


def main() -> None:
    result = npsim.run(npsim.bundled("local-vs-cluster"))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    result.plot.pod_load().savefig(OUT, dpi=100, metadata={"Software": None})
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
