"""report.html and figures/ in a result folder, the text summary, and npsim compare."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import client, run_bundled, scenario_dict

import npsim
from npsim.cli import main
from npsim.report import write_run_report

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def two_populations() -> npsim.Result:
    return run_bundled("local-vs-cluster", 6.0, 1.0)


def test_report_is_self_contained_with_tables_figures_and_scenario(
        two_populations: npsim.Result, tmp_path: Path) -> None:
    page = write_run_report(two_populations, tmp_path).read_text()
    pngs = sorted((tmp_path / "figures").glob("*.png"))
    assert {p.stem for p in pngs} == {"latency_cdf", "latency_percentiles",
                                      "latency_breakdown", "pod_load", "lorenz",
                                      "traffic_matrix", "cluster", "timeseries"}
    embedded = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert sorted(base64.b64decode(e) for e in embedded) == sorted(p.read_bytes() for p in pngs)
    assert all(p.read_bytes().startswith(PNG) for p in pngs)
    # nothing fetched from elsewhere, no scripts
    assert "<script" not in page and not re.search(r'(src|href)="(?!data:)', page)
    summary, pods, nodes = html_tables(page)[:3]
    assert summary[0][1:] == ["all", "to-local", "to-cluster"]
    assert [row[0] for row in pods[1:]] == ["web-0", "web-1", "web-2"]
    assert {"share to-local", "share to-cluster"} <= set(pods[0])
    assert [row[0] for row in nodes[1:]] == ["node-1", "node-2"]
    assert "npsim run scenario.resolved.yaml" in page and "web-local" in page


def html_tables(page: str) -> list[list[list[str]]]:
    """Every table of the page as rows of cell texts."""

    class Tables(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.tables: list[list[list[str]]] = []
            self.cell: list[str] | None = None

        def handle_starttag(self, tag: str, attrs: object) -> None:
            if tag == "table":
                self.tables.append([])
            elif tag == "tr":
                self.tables[-1].append([])
            elif tag in ("td", "th"):
                self.cell = []

        def handle_endtag(self, tag: str) -> None:
            if tag in ("td", "th") and self.cell is not None:
                self.tables[-1][-1].append("".join(self.cell).strip())
                self.cell = None

        def handle_data(self, data: str) -> None:
            if self.cell is not None:
                self.cell.append(data)

    parser = Tables()
    parser.feed(page)
    return parser.tables


def test_report_lists_the_warnings_and_the_events(tmp_path: Path) -> None:
    data = scenario_dict(nodes=2, replicas=2, clients=[client(rate=50.0)], duration=3.0)
    data["manifests"].append({"apiVersion": "v1", "kind": "ConfigMap",
                              "metadata": {"name": "settings"}})
    data["events"] = [{"at": "1s", "scale": {"deployment": "web", "replicas": 3}}]
    result = npsim.run(npsim.scenario_from_dict(data))
    assert result.scenario.warnings and len(result.events)
    page = write_run_report(result, tmp_path).read_text()
    assert page.count('class="warning"') == len(result.scenario.warnings)
    assert "ConfigMap" in page
    events = next(t for t in html_tables(page) if t[0] == ["time", "kind", "subject", "detail"])
    assert [row[1] for row in events[1:]] == list(result.events["kind"])
    assert ["1.000 s", "scale", "web", "replicas=3"] in events


def run_cli(*args: str) -> object:
    result = CliRunner().invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def test_no_report_skips_figures_and_page(tmp_path: Path) -> None:
    out = tmp_path / "plain"
    assert run_cli("run", str(npsim.bundled_path("local-vs-cluster")), "--out", str(out),
                   "--no-report").exit_code == 0
    assert not (out / "report.html").exists() and not (out / "figures").exists()
    assert (out / "summary.csv").is_file()


def test_summary_shows_each_population_s_pod_shares_under_its_header(
        two_populations: npsim.Result) -> None:
    text = two_populations.report()
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("pods "))
    header, rows = lines[start], lines[start + 1:start + 4]
    for column in ("share", "util", "to-local", "to-cluster"):
        end = header.index(column) + len(column)
        for row in rows:  # right-aligned values end where their header ends
            assert row[end - 1] == "%", (column, header, row)
    local = [float(row.split()[3].rstrip("%")) for row in rows]
    assert local == pytest.approx([25, 25, 50], abs=4)
    nodes = lines[lines.index(next(x for x in lines if x.startswith("nodes ")))]
    assert nodes.index("served") + len("served") == lines[-1].index("%") + 1


def test_compare_prints_metrics_and_writes_a_report(tmp_path: Path) -> None:
    for seed in (1, 2):
        scenario = npsim.bundled("quickstart")
        scenario.run.warmup, scenario.run.duration, scenario.run.seed = 1, 3, seed
        npsim.run(scenario).save(tmp_path / f"seed-{seed}")
    out = tmp_path / "cmp"
    result = run_cli("compare", str(tmp_path / "seed-1"), str(tmp_path / "seed-2"),
                     "--out", str(out))
    assert result.exit_code == 0, result.output
    header = result.output.splitlines()[0].split()
    assert header == ["metric", "seed-1", "seed-2"]
    assert re.search(r"latency p99 \(ms\)\s+\d+\.\d+\s+\d+\.\d+", result.output)
    assert re.search(r"throughput \(req/s\)\s+\d", result.output)
    page = (out / "compare.html").read_text()
    assert page.count("data:image/png;base64,") == 3
    captions = re.findall(r"<figcaption>([^<]*)</figcaption>", page)
    assert captions[0].startswith("Latency CDF of completed requests after the warm-up")
    assert all(len(c) > 40 for c in captions)  # sentences, not "latency cdf"
    assert {p.name for p in (out / "figures").iterdir()} == {
        "latency_cdf.png", "latency_percentiles.png", "latency_breakdown.png"}
    again = run_cli("compare", str(tmp_path / "seed-1"), "--out", str(out))
    assert again.exit_code == 2 and "already exists" in again.output
    assert "latency p99" not in again.output  # refused before printing the table
    assert run_cli("compare", str(tmp_path), "--out", str(tmp_path / "x")).exit_code == 2


def test_a_saved_result_reads_back_the_same(two_populations: npsim.Result,
                                            tmp_path: Path) -> None:
    two_populations.save(tmp_path / "r")
    back = npsim.load_result(tmp_path / "r")
    pd.testing.assert_frame_equal(back.requests, two_populations.requests)
    pd.testing.assert_frame_equal(back.pods, two_populations.pods)
    assert back.metric("latency_p99") == two_populations.metric("latency_p99")
    assert back.end_time == two_populations.end_time
    pd.testing.assert_frame_equal(back.timeseries, two_populations.timeseries)
    pd.testing.assert_frame_equal(back.pod_timeseries, two_populations.pod_timeseries)
    assert back.events.empty and two_populations.events.empty  # columns kept, no rows


def test_a_run_where_nothing_completes_still_gets_its_report(tmp_path: Path) -> None:
    # one worker, a one-place queue and 10 s requests: after the first, all are rejected
    data = scenario_dict(clients=[client(rate=200.0)], duration=2.0, warmup=0.5,
                         queue_limit=1, service_time={"dist": "constant", "value": "10s"})
    result = npsim.run(npsim.scenario_from_dict(data))
    assert result.metric("requests_completed") == 0
    page = write_run_report(result, tmp_path).read_text()
    assert "Not drawn: Latency CDF" in page and "no completed measured requests" in page
    assert (tmp_path / "figures" / "pod_load.png").is_file()

