"""``scenario.resolved.yaml`` repeats the run: a rerun from it writes every file of the
result folder byte for byte, on every bundled scenario, with the time-series bucket the
run derived (a short run's 0.1-0.5 s, a request-count run's, a long run's) written in."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import npsim
from npsim.scenario.bundled import BUNDLED_DIR
from npsim.scenario.loader import scenario_from_dict

FILES = ("requests.parquet", "pods.parquet", "nodes.parquet", "events.parquet",
         "timeseries.parquet", "pod_timeseries.parquet", "node_timeseries.parquet",
         "summary.csv", "scenario.resolved.yaml")
# a few in the quick suite; every bundled scenario in the slow one
QUICK = {"quickstart", "node-failure", "mode-comparison"}


def _shortened(name: str, run: dict) -> npsim.Scenario:
    """The bundled scenario as its file says, with a shorter ``run`` (events after the
    end do not happen); ``timeseriesBucket`` stays unset, so the run derives it."""
    path = BUNDLED_DIR / f"{name}.yaml"
    data = yaml.safe_load(path.read_text())
    data["run"] = {**{k: v for k, v in data["run"].items()
                      if k not in ("duration", "warmup")}, **run}
    return scenario_from_dict(data, base_dir=path.parent, source=str(path))


def _rerun_is_identical(scenario: npsim.Scenario, tmp_path: Path) -> dict:
    first = npsim.run(scenario).save(tmp_path / "first")
    resolved = npsim.load_scenario(first / "scenario.resolved.yaml")
    again = npsim.run(resolved).save(tmp_path / "again")
    for name in FILES:
        assert (first / name).read_bytes() == (again / name).read_bytes(), name
    return yaml.safe_load((first / "scenario.resolved.yaml").read_text())["run"]


def _params() -> list:
    return [pytest.param(name, marks=() if name in QUICK else pytest.mark.slow)
            for name in npsim.bundled_names()]


@pytest.mark.parametrize("name", _params())
def test_a_short_run_repeats_from_its_resolved_scenario(name, tmp_path):
    # 3.5 s (as 7 s did; the bundled scenarios' events come later): the 1-2-5 step
    # giving <= 60 buckets, 100 ms (50 ms would give 70)
    run = _rerun_is_identical(_shortened(name, {"duration": "3.5s", "warmup": "1s"}), tmp_path)
    assert run["timeseriesBucket"] == "100ms"


def test_the_derived_bucket_is_what_the_run_used(tmp_path):
    result = npsim.run(_shortened("quickstart", {"duration": "3s"}))
    assert result.timeseries["time"].iloc[1] == 0.05
    assert "timeseriesBucket: 50ms" in result.resolved_yaml()


def test_a_request_count_run_repeats_with_the_bucket_of_its_replications(tmp_path):
    """Each replication of a request-count run derives its bucket from its own length:
    written in when they agree, left out (and derived again) when they do not."""
    agree = _shortened("quickstart", {"requests": 3000, "replications": 2})
    run = _rerun_is_identical(agree, tmp_path / "agree")
    assert run["timeseriesBucket"] == "50ms"  # about 1.5 s each
    # 1000 requests at 2000/s: about 0.5 s, where the step is 0.01 s or 0.005 s
    differ = _shortened("quickstart", {"requests": 1030, "replications": 3, "seed": 4})
    result = npsim.run(differ)
    steps = result.timeseries.groupby("replication")["time"].apply(
        lambda t: t.iloc[1] - t.iloc[0])
    if steps.nunique() > 1:
        assert "timeseriesBucket" not in yaml.safe_load(result.resolved_yaml())["run"]
    _rerun_is_identical(differ, tmp_path / "differ")


def test_a_long_run_has_at_most_3600_buckets_and_records_its_bucket(tmp_path):
    """Two hours of light traffic: 2 s buckets (a day: 50 s), not 7200 of 1 s."""
    long = _shortened("quickstart", {"duration": "7200s"})
    long.spec.clients[0].arrival.rate = 0.5
    result = npsim.run(long)
    assert len(result.timeseries) == 3600 and result.timeseries["time"].iloc[1] == 2.0
    assert yaml.safe_load(result.resolved_yaml())["run"]["timeseriesBucket"] == "2s"


def test_the_resolved_scenario_is_in_human_units_with_every_default(tmp_path):
    """``1.5us`` not ``1.5e-06s``; the control plane's timings (the version's table) and
    the cluster CIDR (the nodes' podCIDRs' network) written in, not null; and every
    value reads back to the same float (the rerun tests above check the frames)."""
    result = npsim.run(_shortened("node-failure", {"duration": "3s"}))
    text = result.resolved_yaml()
    data = yaml.safe_load(text)
    cluster = data["cluster"]
    assert cluster["kubeProxy"]["syncPerRule"] == "1.5us"
    assert cluster["ipvs"]["tcpFinTimeout"] == "2m"
    assert cluster["controlPlane"] == {"nodeLeaseRenewInterval": "10s",
                                       "nodeMonitorPeriod": "5s",
                                       "nodeMonitorGracePeriod": "50s",  # 1.32's default
                                       "tolerationSeconds": "5m",
                                       "nodeEvictionRate": 0.1,
                                       "secondaryNodeEvictionRate": 0.01,
                                       "unhealthyZoneThreshold": 0.55,
                                       "largeClusterSizeThreshold": 50}
    # the other per-version defaults (cluster/lifecycle.py VERSION_DEFAULTS)
    assert cluster["kubeProxy"]["terminatingFallback"] is True
    assert {c["kernel"] for c in data["clients"]} == {"5.15"}
    assert cluster["clusterCIDR"] == "10.244.0.0/22"
    assert "e-0" not in text and ".0s" not in text and ".0/s" not in text
    (tmp_path / "r.yaml").write_text(text)
    again = npsim.load_scenario(tmp_path / "r.yaml")
    assert again.spec.cluster.kube_proxy.sync_per_rule == \
        result.scenario.spec.cluster.kube_proxy.sync_per_rule


@pytest.mark.parametrize("seconds, text", [(1.5e-06, "1.5us"), (300.0, "5m"), (0.1, "100ms"),
                                           (0.0025, "2.5ms"), (0.0, "0s"), (9e-05, "90000ns")])
def test_a_duration_is_written_in_a_unit_that_reads_back_exactly(seconds, text):
    from npsim.results.resolved import human_seconds
    from npsim.units import parse_duration

    assert human_seconds(seconds) == text
    assert parse_duration(text) == seconds
