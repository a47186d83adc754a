"""timeseries.parquet: per-bucket traffic, failures and latency; pod_timeseries.parquet
and node_timeseries.parquet: each pod's load and each node's views per bucket."""

from __future__ import annotations

import numpy as np
import pandas as pd
from conftest import build, client, constant

import npsim
from npsim.results.summary import incident_metrics


def test_buckets_account_for_every_request_and_follow_a_scale_down():
    scenario = build(nodes=2, replicas=4, service_time=constant(1e-3), workers=4,
                     clients=[client(rate=200.0)], duration=6.0, replications=2)
    scenario.spec.events = [{"at": 3.0, "scale": {"deployment": "web", "replicas": 2}}]
    scenario.spec.run.timeseries_bucket = 0.5
    result = npsim.run(scenario)
    ts = result.timeseries
    assert list(ts.columns[:6]) == ["replication", "time", "sent", "completed", "failed",
                                    "throughput"]
    assert len(ts) == 2 * 12 and ts["time"].iloc[:12].tolist() == [i * 0.5 for i in range(12)]
    for rep, part in ts.groupby("replication"):
        req = result.requests[result.requests["replication"] == rep]
        assert part["sent"].sum() == len(req)
        assert part["completed"].sum() == (req["outcome"] == "completed").sum()
        assert part["failed"].sum() == (req["outcome"] == "failed").sum()
        reasons = part.filter(like="failed_").sum(axis=1)
        assert (reasons == part["failed"]).all()
        assert np.allclose(part["throughput"], part["completed"] / 0.5)
        # constant 1 ms service, no network: every latency is 1 ms (or queueing above it)
        assert (part["latency_p50"].dropna() >= 1e-3 - 1e-12).all()
        # each node's kube-proxy drops two endpoints some time after t = 3 s, not before
        views = result.node_timeseries[result.node_timeseries["replication"] == rep]
        assert views["node"].astype(str).tolist() == ["node-1"] * 12 + ["node-2"] * 12
        assert views["time"].tolist() == part["time"].tolist() * 2
        assert "lb_up" not in views  # no external balancer
        for node in ("node-1", "node-2"):
            seen = views.loc[views["node"] == node, "ready_endpoints"].to_numpy()
            assert (seen[:6] == 4).all() and (seen[-4:] == 2).all()
        pods = result.pods[result.pods["replication"] == rep]
        loads = result.pod_timeseries[result.pod_timeseries["replication"] == rep]
        assert loads["load"].sum() * 0.5 == pods["requests"].sum()
        web3 = loads[loads["pod"] == "web-3"]
        # deleted at 3 s: its rows go on, at 0
        assert web3["time"].tolist() == part["time"].tolist()
        assert (web3["load"].iloc[:6] > 0).all() and (web3["load"].iloc[-4:] == 0).all()
    # per pod and per node: frames of their own, not a column each
    assert not ts.filter(regex="^(pod_load|ready_endpoints|lb_up):").columns.size


def test_saved_with_the_result(tmp_path):
    result = npsim.run(build(clients=[client(rate=50.0)], duration=2.0))
    folder = result.save(tmp_path / "out")

    back = pd.read_parquet(folder / "timeseries.parquet")
    assert back.columns.tolist() == result.timeseries.columns.tolist()
    # no timeseriesBucket and a run under a minute: the 1-2-5 step giving >= 60 rows
    assert len(back) == 40 and back["time"].iloc[1] == 0.05
    loaded = npsim.load_result(folder)
    pd.testing.assert_frame_equal(loaded.pod_timeseries, result.pod_timeseries)
    pd.testing.assert_frame_equal(loaded.node_timeseries, result.node_timeseries)
    assert loaded.pod_timeseries["load"].sum() > 0
    # a folder saved before these files existed still loads, with no rows
    (folder / "pod_timeseries.parquet").unlink()
    (folder / "node_timeseries.parquet").unlink()
    old = npsim.load_result(folder)
    for frame, columns in ((old.pod_timeseries, ["pod", "load"]),
                           (old.node_timeseries, ["node", "ready_endpoints"])):
        assert frame.empty and frame.columns.tolist() == ["replication", "time", *columns]
        assert [str(d) for d in frame.dtypes] == ["int32", "float64", "category", "float64"]


def test_an_explicit_bucket_is_kept_even_for_a_short_run():
    scenario = build(clients=[client(rate=50.0)], duration=2.0)
    scenario.spec.run.timeseries_bucket = 1.0
    assert len(npsim.run(scenario).timeseries) == 2


def test_one_balancer_view_per_balanced_population():
    from conftest import scenario_dict

    hc = {"algorithm": "roundRobin", "healthCheck": {"interval": "1s", "timeout": "500ms",
                                                     "fall": 2}}
    a, b = client("a", rate=50.0), client("b", rate=50.0)
    a["balancer"], b["balancer"] = hc, dict(hc, algorithm="random")
    d = scenario_dict(nodes=2, replicas=2, clients=[a, b], duration=8.0,
                      placement={"node-1": 2})
    d["events"] = [{"at": "3s", "nodeCrash": {"node": "node-2"}}]
    d["run"]["timeseriesBucket"] = "1s"
    views = npsim.run(npsim.scenario_from_dict(d)).node_timeseries
    assert views.columns.tolist() == ["replication", "time", "node", "ready_endpoints",
                                      "lb_up:a", "lb_up:b"]
    for pop in "ab":
        by_node = views.groupby("node", observed=True)[f"lb_up:{pop}"]
        # checks at 3 s and 4 s fail, known at 4.5 s: down from the bucket [4, 5) on
        assert by_node.get_group("node-2").tolist() == [1, 1, 1, 1, 0, 0, 0, 0]
        assert (by_node.get_group("node-1") == 1).all()


def test_tls_totals_at_the_end_are_not_an_incident():
    # tls-termination records its handshake totals as events at the end of the run;
    # a run with no fault must not report "detected never; recovered after 0s".
    series = {"time": np.arange(3.0), "completed": np.full(3, 10), "failed": np.zeros(3)}
    figures = incident_metrics([3.0, 3.0], ["tls_handshakes", "tls_handshakes"],
                               pd.DataFrame(series), slo=None, end_time=3.0, warmup=0.0)
    assert "fault_start" not in figures and "time_to_recover" not in figures


def test_pod_load_is_each_pod_s_reached_requests_per_second_by_send_bucket():
    scenario = build(nodes=2, replicas=3, service_time=constant(1e-3), workers=4,
                     clients=[client(rate=300.0)], duration=3.0)
    scenario.spec.run.timeseries_bucket = 0.5
    result = npsim.run(scenario)
    loads = result.pod_timeseries
    assert loads.columns.tolist() == ["replication", "time", "pod", "load"]
    assert loads.dtypes.tolist() == [np.int32, np.float64, "category", np.float64]
    pods = result.pods["pod"].tolist()
    assert loads["pod"].cat.categories.tolist() == pods
    # every pod has every bucket of the time series, pod after pod
    times = result.timeseries["time"].tolist()
    assert loads["pod"].astype(str).tolist() == [p for p in pods for _ in times]
    assert loads["time"].tolist() == times * len(pods)
    req = result.requests
    reached = req[req["pod"].notna() & ~req["reason"].isin(["connect_timeout", "reply_lost",
                                                              "endpoint_gone", "dial_failed"])]
    bucket = (reached["t_start"] // 0.5).astype(int)
    expected = reached.groupby([bucket, reached["pod"].astype(str)]).size().to_dict()
    got = {(int(t // 0.5), str(p)): v * 0.5
           for t, p, v in zip(loads["time"], loads["pod"], loads["load"], strict=True)}
    assert {cell: n for cell, n in got.items() if n} == expected
    assert sum(got.values()) == len(reached)  # the rest of the grid is 0


def test_latency_quantiles_are_each_end_bucket_s_own():
    """The quantiles are gathered a few buckets at a time: each bucket still gets exactly
    the quantiles of the completed requests that ended in it."""
    scenario = build(nodes=2, replicas=2, workers=1, clients=[client(rate=400.0)],
                     duration=3.0)
    scenario.spec.run.timeseries_bucket = 0.25
    result = npsim.run(scenario)
    ts, req = result.timeseries, result.requests
    done = req[req["outcome"] == "completed"]
    bucket = (done["t_end"] // 0.25).astype(int)
    for b, part in done.groupby(bucket):
        p50, p99 = np.quantile((part["t_end"] - part["t_start"]).to_numpy(), [0.5, 0.99])
        row = ts.iloc[b]
        assert (row["latency_p50"], row["latency_p99"]) == (p50, p99)
    assert ts["latency_p50"].notna().sum() == bucket.nunique() == 12
