"""Figures of a big cluster stay readable and cheap: pods as a distribution, the traffic
matrix by zone, the cluster drawing declined with a reason, the summary's tables cut to
their extremes."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import client, scenario_dict

import npsim
from npsim import plots
from npsim.plots.load import MAX_BARS
from npsim.results.shares import pod_shares
from npsim.results.summary import TABLE_ROWS

NODES, PODS = 45, 90


@pytest.fixture(scope="module")
def big() -> npsim.Result:
    data = scenario_dict(nodes=NODES, replicas=PODS, workers=4, requests=6000,
                         clients=[client(rate=20000.0, entry="random")])
    for i, node in enumerate(data["cluster"]["nodes"]):
        node["zone"] = ("zone-a", "zone-b", "zone-c")[i % 3]
    return npsim.run(npsim.scenario_from_dict(data))


def test_many_pods_are_drawn_as_a_distribution_of_load_over_fair_share(big) -> None:
    assert PODS > MAX_BARS
    fig = plots.pod_load(big)
    ax = fig.axes[0]
    bars = [p for p in ax.patches if p.get_height() > 0]
    assert sum(p.get_height() for p in bars) == PODS  # every pod counted once
    shares = pod_shares(big.requests, big.pods).iloc[:, 0]
    relative = shares * len(shares)
    low, high = min(p.get_x() for p in bars), max(p.get_x() + p.get_width() for p in bars)
    assert low == pytest.approx(relative.min()) and high == pytest.approx(relative.max())
    assert [line.get_xdata()[0] for line in ax.get_lines()] == [1.0]  # the fair share
    assert f"{relative.idxmax()} {relative.max():.2f}x" in ax.get_title()
    assert fig.get_size_inches()[0] < 10  # not a bar per pod


def test_the_traffic_matrix_of_many_nodes_is_summed_by_zone(big) -> None:
    fig = plots.traffic_heatmap(big)
    image = fig.axes[0].get_images()[0].get_array()
    assert image.shape == (3, 3)
    served = big.requests[(big.requests["outcome"] == "completed") & ~big.requests["warmup"]]
    assert image.sum() == len(served)
    zone = {f"node-{i + 1}": ("zone-a", "zone-b", "zone-c")[i % 3] for i in range(NODES)}
    pod_node = big.pods.set_index("pod")["node"]
    same = sum(zone[e] == zone[pod_node[p]]
               for e, p in zip(served["entry_node"], served["pod"], strict=True))
    assert np.trace(image) == same  # the outlined diagonal: served in the entry's zone


def test_a_cluster_too_big_to_draw_is_declined_with_the_reason(big) -> None:
    with pytest.raises(ValueError, match=f"{NODES} nodes and {PODS} pods are too many"):
        plots.cluster(big)
    figures, skipped = plots.figures_for(big)
    assert "cluster" in skipped and "traffic_matrix" in figures


def test_the_summary_prints_the_extremes_of_long_tables(big) -> None:
    text = big.report()
    pod_lines = [line for line in text.splitlines() if line.strip().startswith("web-")]
    assert len(pod_lines) == TABLE_ROWS
    assert f"... {PODS - TABLE_ROWS} more pods between these" in text
    shares = big.pods.set_index("pod")["share"]
    shown = [line.split()[0] for line in pod_lines]
    top = shares.sort_values(ascending=False, kind="stable")
    assert shown[: TABLE_ROWS // 2] == list(top.index[: TABLE_ROWS // 2])
    assert f"... {NODES - TABLE_ROWS} more nodes between these" in text
