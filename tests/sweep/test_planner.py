"""``npsim plan``: a bisection that finds the Erlang C answer of an M/M/c queue."""

from __future__ import annotations

import math

import pytest
import yaml
from click.testing import CliRunner
from conftest import client, exponential, scenario_dict

import npsim
from npsim.cli import main
from npsim.sweep.planner import PlanError, parse_target, parse_vary, plan_search

RATE, MEAN = 800.0, 5e-3  # offered load a = 4 Erlangs on one pod


def erlang_c_wait(c: int, a: float, mean: float) -> float:
    """Mean time in queue of M/M/c (Erlang C), infinite when c <= a."""
    if c <= a:
        return math.inf
    head = sum(a**k / math.factorial(k) for k in range(c))
    tail = a**c / math.factorial(c) * c / (c - a)
    return tail / (head + tail) * mean / (c - a)


def mmc_dict() -> dict:
    """One pod whose workers are the c servers; no network, no proxy cost."""
    return scenario_dict(workers=1, service_time=exponential(MEAN),
                         clients=[client(rate=RATE, source_ips=50)], duration=3.0, warmup=0.5)


@pytest.mark.slow
def test_the_planner_finds_the_erlang_c_answer() -> None:
    a = RATE * MEAN
    waits = {c: erlang_c_wait(c, a, MEAN) for c in range(1, 17)}
    exact = min(c for c, w in waits.items() if w < 0.4e-3)
    assert exact == 7 and waits[6] > 0.7e-3 and waits[7] < 0.23e-3  # 0.4 ms sits between
    lines: list[str] = []
    outcome = plan_search(npsim.scenario_from_dict(mmc_dict()), "queue_wait_mean < 0.4ms",
                          "workloads.web.workers=1..16", jobs=1, log=lines.append)
    assert outcome.answer == exact
    assert outcome.answer_line() == "answer: workloads.web.workers = 7"
    assert len(outcome.probes) <= 7 < 16  # bisection, not every value
    assert lines[-1].startswith(f"runs: {outcome.runs} over {len(outcome.probes)} of 16 values")


def test_plan_cli_ends_with_one_answer_line_or_none(tmp_path) -> None:
    path = tmp_path / "mmc.yaml"
    path.write_text(yaml.safe_dump(mmc_dict()))
    result = CliRunner().invoke(main, ["plan", str(path), "--target", "queue_wait_mean < 1us",
                                       "--vary", "workloads.web.workers=5..6", "--jobs", "1",
                                       "--replications", "3"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == "answer: none"
    bad = CliRunner().invoke(main, ["plan", str(path), "--target", "p99 about 5ms",
                                    "--vary", "workloads.web.workers=1..4"])
    assert bad.exit_code == 2 and "expected METRIC OP VALUE" in bad.output
    misspelt = CliRunner().invoke(main, ["plan", str(path), "--target", "latency_p99 < 5ms",
                                         "--vary", "workloads.web.wrkers=1..4"])
    assert misspelt.exit_code == 2 and "workloads.web.wrkers" in misspelt.output
    assert "searching" not in misspelt.output  # refused before the search starts


def test_targets_and_ranges_read_units() -> None:
    assert parse_target("latency_p99 < 50ms").threshold == pytest.approx(0.05)
    assert parse_target("throughput >= 900/s").threshold == 900.0
    assert parse_vary("clients[0].arrival.rate=100/s..400/s:100/s") == (
        "clients[0].arrival.rate", ["100/s", "200/s", "300/s", "400/s"])
    assert parse_vary("deployments.nginx.replicas=1..64")[1] == list(range(1, 65))
    with pytest.raises(PlanError, match="LOW..HIGH"):
        parse_vary("deployments.nginx.replicas=64")
    # counted before they are made: 10**12 values ran out of memory building the list
    for huge in ("deployments.nginx.replicas=1..1000000000000",
                 "clients[0].arrival.rate=1/s..1e12/s:1/s", "run.duration=1s..2s:1e-300s"):
        with pytest.raises(PlanError, match="more than 100,000; use a coarser STEP"):
            parse_vary(huge)


@pytest.mark.slow
def test_the_largest_value_search_finds_the_erlang_c_answer_too() -> None:
    """The largest worker count whose queue wait stays above 0.4 ms: 6 (Erlang C)."""
    outcome = plan_search(npsim.scenario_from_dict(mmc_dict()), "queue_wait_mean > 0.4ms",
                          "workloads.web.workers=5..8", largest=True, jobs=1)
    a = RATE * MEAN
    assert outcome.answer == max(c for c in range(5, 9) if erlang_c_wait(c, a, MEAN) > 0.4e-3)


def test_an_unknown_metric_is_refused_before_anything_runs(tmp_path) -> None:
    path = tmp_path / "mmc.yaml"
    path.write_text(yaml.safe_dump(mmc_dict()))
    result = CliRunner().invoke(main, ["plan", str(path), "--target", "latncy_p999 < 5ms",
                                       "--vary", "workloads.web.workers=1..4", "--jobs", "1"])
    assert result.exit_code == 2
    assert result.output.startswith("error: --target 'latncy_p999 < 5ms': no metric "
                                    "'latncy_p999'; did you mean 'latency_p99'")
    assert len(result.output.strip().splitlines()) == 1  # one paragraph
    assert "searching" not in result.output  # no value was probed
    slo = CliRunner().invoke(main, ["plan", str(path), "--target", "error_budget_burn_rate < 1",
                                    "--vary", "workloads.web.workers=1..4", "--jobs", "1"])
    assert slo.exit_code == 2 and "needs an SLO (monitoring.slo" in slo.output
    assert "searching" not in slo.output


def test_the_metric_list_is_what_a_run_writes() -> None:
    """Every metric --target accepts up front is one a run writes (or a count it leaves
    out at 0), and every metric a run writes is accepted."""
    from npsim.results.summary import INCIDENT_METRICS
    from npsim.sweep.planner import ALWAYS_METRICS
    from npsim.sweep.store import tidy_metrics
    from npsim.sweep.targets import _counted_metrics, as_rows, metric_value

    def _value(metrics, metric):  # noqa: ANN001, ANN202
        return metric_value(as_rows(metrics), metric)

    data = scenario_dict(workers=2, queue_limit=1, service_time=exponential(MEAN),
                         clients=[client(rate=RATE, source_ips=50)], duration=1.0,
                         replications=2)  # overloaded: some requests find the queue full
    metrics = tidy_metrics("base", 0, npsim.run(npsim.scenario_from_dict(data)))
    written = set(metrics["metric"])
    assert set(ALWAYS_METRICS) <= written
    assert written <= {*ALWAYS_METRICS, *_counted_metrics(), *INCIDENT_METRICS}
    assert "failed_queue_full" in written and _value(metrics, "failed_queue_full") > 0
    assert _value(metrics, "failed_no_endpoints") == 0.0  # not written: none failed so
    assert _value(metrics, "requests_failed_after_retries") == _value(metrics,
                                                                      "requests_failed")
    assert math.isnan(_value(metrics, "time_to_recover"))  # no fault: never meets


def test_a_range_end_the_run_would_refuse_is_refused_before_probing(tmp_path) -> None:
    data = mmc_dict()
    data["cluster"]["nodes"][0]["podCIDR"] = "10.1.1.0/29"  # room for 5 pods
    path = tmp_path / "mmc.yaml"
    path.write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(main, ["plan", str(path), "--target", "latency_p99 < 5ms",
                                       "--vary", "deployments.web.replicas=1..8", "--jobs", "1"])
    assert result.exit_code == 2
    assert "--vary deployments.web.replicas=8: workloads.web: node 'node-1': pod CIDR " \
        "10.1.1.0/29 has room for 5 pods but 8 would be placed" in result.output
    assert "searching" not in result.output


def test_a_key_npsim_ignores_is_refused_not_answered(tmp_path) -> None:
    """A misspelt manifest key (``replica`` for ``replicas``) is only a warning for
    ``--set``; varied, it would run the same scenario at every value and answer the
    range's first value as if it met the targets."""
    path = tmp_path / "mmc.yaml"
    path.write_text(yaml.safe_dump(mmc_dict()))
    result = CliRunner().invoke(main, ["plan", str(path), "--target", "latency_p99 < 5ms",
                                       "--vary", "deployments.web.replica=1..4", "--jobs", "1"])
    assert result.exit_code == 2, result.output
    assert "error: --vary deployments.web.replica=1: deployments.web.replica" in result.output
    assert "not modelled by npsim" in result.output and "did you mean replicas" in \
        result.output
    assert "searching" not in result.output and "answer:" not in result.output
    with pytest.raises(PlanError, match="deployments.web.replica"):
        plan_search(npsim.scenario_from_dict(mmc_dict()), "latency_p99 < 5ms",
                    "deployments.web.replica=1..4", jobs=1)


def test_the_table_shows_the_case_that_decides_each_target() -> None:
    """With a node down in turn, the table showed the case of the worst mean with its
    own verdict ("meets", 99.6%) while another case left the target uncertain: the row
    said met and the value did not meet. The row is the least sure case's."""
    from npsim.sweep.planner import PlanOutcome, Probe
    from npsim.sweep.targets import judge, parse_targets

    (target,) = parse_targets(["latency_p99 < 50ms"])
    probe = Probe(12)
    probe.samples = {("node-1", 0): [0.0450, 0.0451, 0.0449],  # worst mean, surely met
                     ("node-2", 0): [0.010, 0.080, 0.030]}  # better mean, uncertain
    probe.judged = {key: judge(s, target) for key, s in probe.samples.items()}
    assert probe.judged[("node-1", 0)][0] == "meets"
    assert probe.judged[("node-2", 0)][0] == "uncertain"
    outcome = PlanOutcome("deployments.web.replicas", None, [probe], targets=[target],
                          each="node")
    (row,) = outcome.table().splitlines()[1:2]
    assert "node-2" in row and row.endswith("uncertain") and "40ms" in row
    assert "least sure case" in outcome.table().splitlines()[0]


def test_a_range_of_the_wrong_kind_says_which_kinds_there_are(tmp_path) -> None:
    """``workers=1.5..3`` was told "expected a duration"; a bare rate (``100..200`` for
    ``arrival.rate``) was refused as "a problem in the scenario", not naming --vary."""
    with pytest.raises(PlanError, match=r"whole numbers \(1\.\.8\), rates \(100/s\.\.400/s\) "
                                        r"or durations \(1ms\.\.5ms\)"):
        parse_vary("workloads.web.workers=1.5..3")
    path = tmp_path / "mmc.yaml"
    path.write_text(yaml.safe_dump(mmc_dict()))
    result = CliRunner().invoke(main, ["plan", str(path), "--target", "latency_p99 < 5ms",
                                       "--vary", "clients[0].arrival.rate=100..200"])
    assert result.exit_code == 2
    assert "--vary clients[0].arrival.rate=100: clients[0].arrival.rate" in result.output
    assert "in the --vary range" in result.output and "searching" not in result.output
