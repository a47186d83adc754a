"""``sweep.html``: a sweep's comparison on one self-contained page (the comparison figure,
the tables with their confidence intervals and units, each variant's change-set).

The sweep layer sits above this one, so the sweep's result is read by the attributes
below (:class:`SweepLike`), never imported. ``npsim sweep`` passes
:func:`write_sweep_report` to the sweep as ``extra``: the page is written into the
sweep's folder before that folder appears.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from npsim.report.html import esc, page, table

FILES = [
    ("sweep.parquet", "every run's metrics, tidy: variant, replication, metric, value"),
    ("summary.csv", "mean and 95% CI per variant and metric"),
    ("paired.csv", "differences from the baseline, paired and unpaired CIs"),
    ("variants.csv", "each variant's change-set"),
    ("failures.csv", "runs that raised (their error.txt is under runs/)"),
    ("report.md", "these tables in Markdown"),
    ("comparison.png", "the figure above"),
    ("runs/", "one result folder per run: runs/VARIANT/rep-R/"),
]


class SweepLike(Protocol):
    """What the page reads of a sweep's result (``npsim.SweepResult``)."""

    baseline: str
    variants: list[str]
    changes: dict[str, str]
    summary: pd.DataFrame
    paired: pd.DataFrame
    failures: pd.DataFrame
    runs: pd.DataFrame
    scenario: Any

    def mean_table(self, metrics: list[str] | None = None) -> pd.DataFrame: ...

    def difference_table(self, metrics: list[str] | None = None) -> pd.DataFrame: ...


def _variants_table(sweep: SweepLike) -> pd.DataFrame:
    """Each variant's change-set, and how many of its runs finished or failed."""
    finished = sweep.runs.groupby("variant")["replication"].nunique() if len(sweep.runs) else {}
    failed = sweep.failures.groupby("variant").size() if len(sweep.failures) else {}
    rows = [{"variant": v, "baseline": "yes" if v == sweep.baseline else "",
             "changes": sweep.changes.get(v, ""), "runs": int(dict(finished).get(v, 0)),
             "failed": int(dict(failed).get(v, 0))} for v in sweep.variants]
    return pd.DataFrame(rows, columns=["variant", "baseline", "changes", "runs", "failed"])


def write_sweep_report(sweep: SweepLike, folder: Path) -> Path:
    """Write ``sweep.html`` into ``folder`` (which holds the sweep's ``comparison.png``
    if one was drawn); returns the page."""
    spec = sweep.scenario.spec
    reps = spec.run.replications
    from npsim.version import __version__

    body = ["<style>.wide { overflow-x: auto; } .wide td { white-space: nowrap; }</style>",
            f"<h1>npsim sweep: {esc(spec.name)}</h1>",
            f"<p>{esc((spec.description or '').strip())}</p>",
            f"<p>npsim {esc(__version__)}, seed {spec.run.seed}, {len(sweep.variants)} "
            f"variants x {reps} replication{'s' * (reps != 1)}, baseline "
            f"<b>{esc(sweep.baseline)}</b>. Replication r of every variant draws the same "
            "random numbers (common random numbers), so differences are computed "
            "replication by replication. Intervals are 95% confidence intervals over "
            "replications; each column's unit is in its header.</p>"]
    png = folder / "comparison.png"
    if png.is_file():
        data = base64.b64encode(png.read_bytes()).decode("ascii")
        caption = "Mean and 95% CI per variant; the baseline in red"
        body.append(f'<figure id="fig-comparison"><img alt="{esc(caption)}" '
                    f'src="data:image/png;base64,{data}"><figcaption>{esc(caption)}'
                    "</figcaption></figure>")
    body += ["<h2>Variants</h2>", table(_variants_table(sweep), index=False)]
    if not sweep.summary.empty:
        body += ["<h2>Key metrics</h2>",
                 "<p>Mean [95% CI] per variant; * marks the baseline.</p>",
                 _wide(table(sweep.mean_table()))]
    if not sweep.paired.empty:
        body += [f"<h2>Differences from {esc(sweep.baseline)}</h2>",
                 "<p>Mean of (variant - baseline) over shared replications +- the paired "
                 "95% CI half-width; in parentheses the unpaired half-width, what the "
                 "comparison would cost without common random numbers.</p>",
                 _wide(table(sweep.difference_table()))]
    if not sweep.summary.empty:
        every = list(dict.fromkeys(sweep.summary["metric"]))
        body += ["<details><summary>Every metric, mean [95% CI]</summary>",
                 _wide(table(sweep.mean_table(every).T.rename_axis("metric"))),
                 "</details>"]
    if len(sweep.failures):
        body += ["<h2>Failed runs</h2>", table(sweep.failures, index=False)]
    body += ["<h2>Files</h2>", "<ul>" + "".join(
        f"<li><code>{esc(name)}</code>: {esc(what)}</li>" for name, what in FILES) + "</ul>"]
    out = folder / "sweep.html"
    tmp = folder / ".sweep.html.tmp"
    tmp.write_text(page(f"npsim sweep: {spec.name}", body), encoding="utf-8")
    tmp.replace(out)  # by rename: the folder may hold a hard link to an earlier page
    return out


def _wide(html_table: str) -> str:
    """A table wider than the page scrolls on its own, not the page."""
    return f'<div class="wide">{html_table}</div>'
