"""The comparison figure of a sweep: each variant's mean and 95% CI per metric.

Reads only the sweep's summary table; drawn outside pyplot (no global state), like the
figures of a run.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from npsim.sweep.tables import metric_unit, unit_label


def _scale(metric: str) -> tuple[float, str]:
    """The unit of the metric's column in the sweep's tables, so figure and tables agree."""
    return metric_unit(metric)[0], unit_label(metric)


def comparison_figure(summary: pd.DataFrame, baseline: str, metrics: Sequence[str]) -> Figure:
    """One panel per metric (at most six); a row per variant, the baseline in colour and
    marked by a vertical line, so differences read against it."""
    metrics = [m for m in metrics if m in set(summary["metric"])][:6]
    variants = list(dict.fromkeys(summary["variant"]))
    cols = min(3, max(1, len(metrics)))
    rows = -(-max(1, len(metrics)) // cols)
    fig = Figure(figsize=(3.6 * cols + 1.5, 0.28 * len(variants) * rows + 1.4 * rows),
                 layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, sharey=True, squeeze=False)).ravel()
    by = summary.set_index(["variant", "metric"])
    y = np.arange(len(variants))[::-1]
    for ax, metric in zip(axes, metrics, strict=False):
        factor, label = _scale(metric)
        mean = np.array([by.loc[(v, metric), "mean"] for v in variants]) * factor
        low = np.array([by.loc[(v, metric), "ci_low"] for v in variants]) * factor
        high = np.array([by.loc[(v, metric), "ci_high"] for v in variants]) * factor
        err = np.vstack([np.nan_to_num(mean - low), np.nan_to_num(high - mean)])
        colours = ["tab:red" if v == baseline else "tab:blue" for v in variants]
        ax.errorbar(mean, y, xerr=err, fmt="none", ecolor="0.5", capsize=2)
        ax.scatter(mean, y, c=colours, s=14, zorder=3)
        ax.axvline(mean[variants.index(baseline)], color="tab:red", lw=0.8, ls="--")
        positive = mean[mean > 0]
        if len(positive) and positive.max() > 20 * positive.min():  # one outlier would
            ax.set_xscale("log")  # squash every other variant against the axis
        ax.set_xlabel(label)
        ax.grid(axis="x", alpha=0.3)
    for ax in axes[len(metrics):]:
        ax.set_visible(False)
    axes[0].set_yticks(y, variants)
    fig.suptitle(f"mean and 95% CI per variant (baseline {baseline} in red)")
    return fig
