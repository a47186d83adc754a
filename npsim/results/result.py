"""The Result of a run and its folder: the frames and scenario, written atomically and
read back.

Saving writes only what this layer owns (parquet frames, ``summary.csv`` and the resolved
scenario); a caller that wants more in the folder before it appears, such as the CLI's
``report.html``, passes it as ``extra``, so the report stays above the result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import yaml

from npsim.cluster.model import build_cluster, ip_str
from npsim.results.card import html_card, short_repr
from npsim.results.events import stack_events, with_event_dtypes
from npsim.results.lookup import summary_value
from npsim.results.resolved import fill_derived_defaults, in_human_units
from npsim.results.shares import pod_shares
from npsim.results.store import write_atomically, write_parquet
from npsim.results.summary import format_incidents, format_summary
from npsim.results.timeseries import empty_node_timeseries, empty_pod_timeseries
from npsim.scenario.loader import load_scenario
from npsim.scenario.scenario import Scenario
from npsim.scenario.series import bucket_before_run
from npsim.version import __version__

if TYPE_CHECKING:
    import networkx as nx

    from npsim.plots import PlotAccessor


@dataclass(repr=False)
class Result:
    """Frames of one scenario run (all replications stacked, column ``replication``)."""

    scenario: Scenario
    requests: pd.DataFrame
    pods: pd.DataFrame
    nodes: pd.DataFrame
    summary: pd.DataFrame
    wall_seconds: float
    end_time: float
    meta: dict[str, object] = field(default_factory=dict)
    # every transition (faults, control plane, kube-proxy syncs): see npsim/results/events.py
    events: pd.DataFrame = field(default_factory=lambda: stack_events([]))
    # one row per replication x time bucket (run.timeseriesBucket): see README "Frames"
    timeseries: pd.DataFrame = field(default_factory=pd.DataFrame)
    # one row per replication x pod x time bucket: each pod's load (see README "Frames")
    pod_timeseries: pd.DataFrame = field(default_factory=empty_pod_timeseries)
    # one row per replication x node x time bucket: each node's views (see README "Frames")
    node_timeseries: pd.DataFrame = field(default_factory=empty_node_timeseries)
    # one row per call a pod made (workloads' calls:), None without any: see callframe.py
    calls: pd.DataFrame | None = None

    def __repr__(self) -> str:
        return short_repr(self)

    def _repr_html_(self) -> str:
        return html_card(self)

    def report(self) -> str:
        """The readable summary block (what ``npsim run`` prints)."""
        text = format_summary(self.summary, self.pods, self.nodes,
                              pod_shares(self.requests, self.pods))
        if len(self.events):  # faults, balancer marks, alerts: the incidents block
            monitoring = self.scenario.spec.monitoring
            text += "\n" + format_incidents(self.events, self.summary, alerting=bool(
                monitoring is not None and monitoring.alerts))
        return text

    @property
    def plot(self) -> PlotAccessor:
        """Figures of this run: ``result.plot.latency_cdf()``, ``.pod_load()``, ... (see
        :mod:`npsim.plots`)."""
        # plots/ reads frames and never this module: the one edge up, taken on use
        from npsim.plots import PlotAccessor

        return PlotAccessor(self)

    def call_graph(self) -> nx.DiGraph:
        """The application's call graph: Services (and client populations) as vertices,
        calls per second, mean, p99 and error ratio on the edges
        (:func:`npsim.results.callframe.call_graph`)."""
        from npsim.results.callframe import call_graph

        entry = {c.name: c.service for c in self.scenario.spec.clients}
        return call_graph(self.requests, self.calls, entry)

    def metric(self, name: str, population: str | None = None, *,
               service: str | None = None) -> float:
        """One summary value, e.g. ``result.metric("latency_p99")``; with ``population``,
        that population's own value (scenarios with several populations); with
        ``service``, what that Service received from every caller (pods that call
        Services: ``result.metric("latency_p99", service="cart")``). A count of
        something that did not happen (``failed_queue_full`` with no full queue) is 0;
        a name no run writes raises ``KeyError`` with the closest names."""
        if population is not None and service is not None:
            raise ValueError("give population or service, not both")
        scope = ("all" if population is None and service is None
                 else f"service:{service}" if service is not None
                 else f"population:{population}")
        return summary_value(self.summary, name, scope)

    def save(self, folder: str | Path, overwrite: bool = False,
             extra: Callable[[Path], object] | None = None) -> Path:
        """Write the result folder atomically (parquet frames, summary.csv, resolved YAML).
        ``extra(tmp)`` adds files before the folder appears, e.g. the report:
        ``result.save(out, extra=functools.partial(npsim.report.write_run_report, result))``."""

        def write(tmp: Path) -> None:
            self.write_files(tmp)
            if extra is not None:
                extra(tmp)

        return write_atomically(Path(folder), write, overwrite=overwrite)

    def write_files(self, folder: Path) -> None:
        """The result files, into an existing folder (``save`` does it atomically)."""
        for name in ("requests", "pods", "nodes", "timeseries", "pod_timeseries",
                     "node_timeseries", "events"):
            write_parquet(getattr(self, name), folder / f"{name}.parquet")
        if self.calls is not None:  # pods called Services (workloads' calls:)
            write_parquet(self.calls, folder / "calls.parquet")
        self.summary.to_csv(folder / "summary.csv", index=False)
        (folder / "scenario.resolved.yaml").write_text(self.resolved_yaml())

    def resolved_yaml(self) -> str:
        """``scenario.resolved.yaml`` of this run, with the time-series bucket it used."""
        bucket = self.meta.get("timeseries_bucket")
        return resolved_yaml(self.scenario, bucket if isinstance(bucket, float) else None)


def load_result(folder: str | Path) -> Result:
    """A result folder written by ``npsim run`` or :meth:`Result.save`, read back (its
    scenario from ``scenario.resolved.yaml``): to compare, plot or report again."""
    folder = Path(folder)
    missing = [name for name in RESULT_FILES if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder}: not an npsim result folder (missing "
                                f"{', '.join(missing)})")
    scenario = load_scenario(folder / "scenario.resolved.yaml")
    requests = pd.read_parquet(folder / "requests.parquet")
    duration = scenario.spec.run.duration
    end_time = float(duration) if duration else float(requests["t_end"].max())
    meta = {"npsim_version": scenario.spec.npsim_version or "", "seed": scenario.spec.run.seed,
            "folder": str(folder)}
    optional = {name: pd.read_parquet(folder / f"{name}.parquet")
                for name in ("events", "timeseries", "pod_timeseries", "node_timeseries",
                             "calls")
                if (folder / f"{name}.parquet").is_file()}
    if "events" in optional:
        optional["events"] = with_event_dtypes(optional["events"])
    # the wall time of the original run is not kept in the folder
    return Result(scenario, requests, pd.read_parquet(folder / "pods.parquet"),
                  pd.read_parquet(folder / "nodes.parquet"),
                  pd.read_csv(folder / "summary.csv"), float("nan"), end_time, meta,
                  **optional)


RESULT_FILES = ("requests.parquet", "pods.parquet", "nodes.parquet", "summary.csv",
                "scenario.resolved.yaml")


def resolved_yaml(scenario: Scenario, bucket: float | None = None) -> str:
    """The fully defaulted scenario, with the npsim version: enough to repeat the run.

    Addresses, pod CIDRs and NodePorts that npsim chose are written in, so the file
    does not depend on the defaults of a later version. So is the time-series bucket:
    ``bucket``, the one the run used, or the one a timed run will use; a request-count
    run whose replications derived different buckets (each from its own length) leaves
    the key out, and a rerun derives the same ones.
    """
    cluster = build_cluster(scenario)
    data = scenario.to_dict()
    data["npsimVersion"] = __version__
    used = bucket if bucket is not None else bucket_before_run(scenario.spec.run)
    if used is None:
        data["run"].pop("timeseriesBucket", None)
    else:  # written as units.Seconds writes it: repr round-trips exactly
        data["run"]["timeseriesBucket"] = f"{float(used)!r}s"
    for node_data, node in zip(data["cluster"]["nodes"], cluster.nodes, strict=True):
        node_data["address"] = ip_str(node.ip)
        node_data["podCIDR"] = str(node.pod_cidr)
    node_ports = {(sp.service.name, sp.port.name, sp.port.port): sp.node_port
                  for sp in cluster.service_ports}
    health = {sp.service.name: sp.health_check_node_port for sp in cluster.service_ports
              if sp.health_check_node_port}
    for manifest in data["manifests"]:
        if manifest["kind"] != "Service":
            continue
        if manifest["metadata"]["name"] in health:
            manifest["spec"]["healthCheckNodePort"] = health[manifest["metadata"]["name"]]
        for port in manifest["spec"]["ports"]:
            key = (manifest["metadata"]["name"], port.get("name", ""), port["port"])
            if key in node_ports:
                port["nodePort"] = node_ports[key]
    fill_derived_defaults(data, scenario, cluster)
    data = in_human_units({"npsimVersion": data.pop("npsimVersion"), **data})
    header = (f"# Resolved by npsim {__version__}: every default filled in, manifests inlined.\n"
              f"# Repeat this run with: npsim run scenario.resolved.yaml\n")
    if used is None:
        header += ("# run.timeseriesBucket is left out: each replication derives it from its "
                   "own length.\n")
    return header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
