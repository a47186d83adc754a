"""Figures a student reads at a glance (issue 24): sharp PNGs, a traffic matrix coloured
over the data's range with readable cells and a visible same-node frame, a down node's
lane marked down rather than frozen, node lines that never hide each other, an event key
at the figure's font size, titles that fit, and a fair share over pods that coexist."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread
from matplotlib.patches import Rectangle

import npsim
from npsim import plots
from npsim.plots.load import colour_range, most_coexisting
from npsim.plots.timeseries import down_intervals
from npsim.scenario.changes import with_changes

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


@pytest.fixture(scope="module")
def node_failure() -> npsim.Result:
    """node-2 crashes at 60 s and never returns; its pod nginx-1 is evicted at 410 s
    and replaced by nginx-4: five pods, never more than four at a time."""
    scenario = npsim.load_scenario(SCENARIOS / "node-failure.yaml")
    return npsim.run(with_changes(scenario, {"run.duration": "420s"}))


def test_figures_are_drawn_at_150_dpi(node_failure) -> None:
    fig = plots.latency_cdf(node_failure)
    image = imread(io.BytesIO(fig._repr_png_()), format="png")
    width, height = fig.get_size_inches()
    assert image.shape[:2] == (round(height * 150), round(width * 150))


def test_the_matrix_colours_the_data_range_and_frames_same_node_cells(node_failure) -> None:
    fig = plots.traffic_heatmap(node_failure)
    ax = fig.axes[0]
    (image,) = ax.get_images()
    counts = image.get_array()
    assert image.norm.vmax == counts.max()
    assert image.norm.vmin == colour_range(np.asarray(counts))[0]
    frames = [p for p in ax.patches if isinstance(p, Rectangle) and p.get_gid() == "same-node"]
    node_of = node_failure.pods.drop_duplicates("pod").set_index("pod")["node"]
    assert len(frames) == len(node_of)  # each pod's own node, once
    assert all(f.get_linewidth() >= 3 for f in frames)
    cells = [t for t in ax.texts if t.get_gid() != "failed"]
    assert min(t.get_fontsize() for t in cells) >= 10  # at least the axis labels' size


def test_an_even_matrix_is_not_one_flat_colour() -> None:
    low, high = colour_range(np.array([[980, 1000], [1010, 1020]]))
    assert low < 980 and high == 1020 and low > 0  # 980 is light, 1020 dark
    assert colour_range(np.array([[5, 5]])) == (4.0, 6.0)  # all alike: mid-scale


def test_a_down_node_s_ready_line_stops_and_its_lane_says_down(node_failure) -> None:
    fig = plots.timeseries(node_failure)
    ready = [ax for ax in fig.axes if ax.get_ylabel() == "ready endpoints"][0]
    lines = {line.get_label(): line for line in ready.get_lines() if
             line.get_label().startswith("node-")}
    x, y = lines["node-2"].get_xdata(), lines["node-2"].get_ydata()
    assert np.isnan(y[(x > 61) & (x < 400)]).all()  # no frozen "4 ready" while it is down
    assert not np.isnan(y[x < 59]).any()
    assert any(t.get_text() == "node-2 down" for t in ready.texts)
    styles = {line.get_linestyle() for line in lines.values()}
    assert len(styles) == len(lines)  # node-1 and node-3 never drawn alike
    levels = {line.get_label(): line.get_ydata()[0] for line in lines.values()}
    assert len(set(levels.values())) == len(levels)  # nor on top of each other
    ticks = ready.get_yticks()
    assert np.allclose(ticks, np.round(ticks))  # a count has whole-number ticks


def test_down_intervals_pair_crashes_with_recoveries() -> None:
    events = pd.DataFrame({"replication": 0, "time": [5.0, 9.0, 7.0],
                           "kind": ["node_crash", "node_recover", "node_partition"],
                           "subject": ["a", "a", "b"], "detail": ""})
    assert down_intervals(events) == {"a": [(5.0, 9.0)], "b": [(7.0, np.inf)]}


def test_the_event_key_is_as_large_as_the_labels_with_one_precision(node_failure) -> None:
    fig = plots.timeseries(node_failure)
    (key,) = [t for t in fig.texts if t.get_gid() == "event-key"]
    assert key.get_fontsize() == fig.axes[0].yaxis.label.get_fontsize()
    times = [part for line in key.get_text().splitlines()
             for part in line.split(":")[0].split()[1].split("-")]
    assert times and all(t.endswith("s") and len(t[:-1].split(".")[1]) == 1 for t in times)


def test_a_one_run_figure_is_titled_by_the_run_not_by_scenario(node_failure) -> None:
    for plot in (plots.latency_cdf, plots.latency_percentiles, plots.latency_breakdown):
        title = plot(node_failure).axes[0].get_title()
        assert "by scenario" not in title and "node-failure" in title
    two = plots.latency_cdf({"a": node_failure, "b": node_failure}).axes[0].get_title()
    assert two.startswith("Latency CDF by variant")


def test_pod_load_fair_share_counts_pods_that_coexist(node_failure) -> None:
    assert node_failure.pods["pod"].nunique() == 5
    assert most_coexisting(node_failure.pods, list(node_failure.pods["pod"].unique()),
                           node_failure.events) == 4
    ax = plots.pod_load(node_failure).axes[0]
    (fair,) = [line for line in ax.get_lines() if line.get_label().startswith("fair share")]
    assert fair.get_ydata()[0] == pytest.approx(1 / 4)
    assert fair.get_label().startswith("fair share 1/4 = 25.0%")


def test_a_replacement_that_starts_when_its_pod_leaves_is_one_place() -> None:
    pods = pd.DataFrame({"replication": 0, "pod": ["a", "b", "c"],
                         "created_at": [0.0, 0.0, 10.0], "deleted_at": [np.nan, 10.0, np.nan]})
    assert most_coexisting(pods, ["a", "b", "c"], None) == 2
    pods.loc[1, "deleted_at"] = 11.0  # b and its replacement c overlap for a second
    assert most_coexisting(pods, ["a", "b", "c"], None) == 3
