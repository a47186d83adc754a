"""The summary block ``npsim run`` prints (``Result.report()``), in 100 columns.

Every figure keeps its words (``p99 24.32ms  (completed requests)``, ``IP kept 100.0%``);
what does not fit a line continues on an indented one (confidence intervals, a scope's
failures), never cut off. The pods table shows a population's share of a pod only where
a pod serves more than one population (otherwise it is the pod's share of its own
Service, one ``-`` beside the others); names too long for a column are shortened in the
middle (numbered, with a legend, when that leaves two alike).
"""

from __future__ import annotations

import math

import pandas as pd

from npsim.results.headline import failure_line, is_failure_count, percent
from npsim.results.text import WIDTH, fit_width, shorten, text_rows, wrap, wrapped_rows
from npsim.units import format_duration

TABLE_ROWS = 20  # per-pod and per-node lines printed; beyond, the extremes are shown
NAME_WIDTH = 32  # a scope's or population's name beyond this is shortened in the middle
COLUMN_WIDTH = 24  # a population's name as a pods-table header
FIRST = " " * 11  # the indent of a summary line's continuation (under "requests   ")


def extremes(rows: pd.DataFrame, by: str) -> tuple[pd.DataFrame, int]:
    """All rows, or for a long table the ``TABLE_ROWS`` / 2 highest and lowest by
    ``by``; and how many rows are left out (0: none)."""
    if len(rows) <= TABLE_ROWS:
        return rows, 0
    half = TABLE_ROWS // 2
    ranked = rows.sort_values(by, ascending=False, kind="stable")
    return pd.concat([ranked.head(half), ranked.tail(half)]), len(rows) - TABLE_ROWS


def _left_out(count: int, what: str, file: str) -> str:
    return (f"  ... {count:,} more {what} between these (highest and lowest share shown; "
            f"every one in {file})")


def format_summary(summary: pd.DataFrame, pods: pd.DataFrame, nodes: pd.DataFrame,
                   shares: pd.DataFrame | None = None) -> str:
    """The readable block ``npsim run`` prints. ``shares`` (pods x populations, from
    :func:`npsim.results.shares.pod_shares`) adds the share of each population a pod
    serves beside another one."""
    s = summary[summary["scope"] == "all"].set_index("metric")

    def val(metric: str) -> float:
        return float(s["value"].get(metric, math.nan))

    def dur(metric: str) -> str:
        v, lo, hi = (float(s.loc[metric, c]) for c in ("value", "ci_low", "ci_high"))
        text = format_duration(v, 4)
        if not math.isnan(lo):
            text += f" (95% CI {format_duration(lo, 4)}..{format_duration(hi, 4)})"
        return text

    gen = int(val("requests_generated"))
    reps = int(val("replications"))
    over = [f"(all {reps} replications)"] if reps > 1 else []
    lines = wrap("requests   ", [
        f"{gen} generated = {int(val('requests_completed'))} completed"
        f" + {int(val('requests_failed'))} failed + {int(val('requests_in_flight'))} in flight"
        " at the end", *over], sep=" ")
    lines += wrap("measured   ", [
        f"{int(val('requests_measured'))} after warm-up{' ' + over[0] if over else ''};",
        f"throughput {val('throughput'):.1f} req/s"
        + (" (mean of replications)" if reps > 1 else "")], sep=" ")
    for line in failure_line(s["value"]).split("\n"):  # many reasons: continued below
        lines += wrap(line[:len(FIRST)], line[len(FIRST):].split(" "), sep=" ")
    lines += wrap("latency    ", [f"mean {dur('latency_mean')}", f"p50 {dur('latency_p50')}"])
    lines += wrap(FIRST, [f"p95 {dur('latency_p95')}", f"p99 {dur('latency_p99')}",
                          "(completed requests)"])
    if "user_latency_p50" in s.index:  # summaries written before npsim had it: absent
        lines += wrap("users see  ", [f"p50 {dur('user_latency_p50')}",
                                      f"p95 {dur('user_latency_p95')}",
                                      f"p99 {dur('user_latency_p99')}"])
        lines.append(FIRST + "(every measured request that ended; a failed one until its "
                     "error or time-out)")
        if val("requests_unanswered") > 0:  # NaN (absent) is not
            lines.append(FIRST + "(and those with no answer at the end, at their age then)")
    lines += [
        f"cross-node {percent(val('cross_node_fraction'))} of served requests took a node-to-node "
        "hop",
    ]
    lines += wrap(
        "spread     ", [f"pod share max/mean {val('pod_share_max_over_mean'):.2f},",
                        f"CV {val('pod_share_cv'):.3f},", f"Jain {val('pod_share_jain'):.3f},",
                        f"Gini {val('pod_share_gini'):.3f}"], sep=" ")
    lines += wrap("source IP  ", [
        f"{percent(val('source_ip_intact_fraction'))} of served requests reached the pod "
        "with the client's address;",
        f"client stickiness {percent(val('client_stickiness'))}"], sep=" ")
    lines += scope_lines(summary)
    lines += pod_table(pods, shares)
    lines += node_table(nodes)
    return "\n".join(lines)


def scope_lines(summary: pd.DataFrame) -> list[str]:
    """One line per population and Service scope: throughput, p50, p99, cross-node, the
    client's address kept, failed, then the failures by reason. The figures are aligned
    (a name longer than ``NAME_WIDTH`` is printed whole on a line of its own, above
    them); what passes 100 columns continues below, at the same column for every
    scope."""
    rows, tails, labels = [], [], []
    scoped = summary[summary["scope"] != "all"]
    for scope, part in scoped.groupby("scope", sort=False):
        v = part.set_index("metric")["value"]
        label = str(scope).removeprefix("population:")  # service:<name> keeps its prefix
        labels.append(label)
        rate = float(v.get("throughput", math.nan))
        kept = float(v.get("source_ip_intact_fraction", math.nan))  # NaN: no pod reached
        rows.append([
            label if len(label) <= NAME_WIDTH else "",  # a long name: a line of its own
            ("-" if math.isnan(rate) else f"{rate:.1f}") + " req/s",
            f"p50 {format_duration(v.get('latency_p50', math.nan), 4)}",
            f"p99 {format_duration(v.get('latency_p99', math.nan), 4)}",
            f"cross-node {percent(v.get('cross_node_fraction', math.nan))}",
            "IP kept n/a" if math.isnan(kept) else f"IP kept {percent(kept)}",
            f"failed {percent(v['error_ratio'])}" if "error_ratio" in v.index else ""])
        tails.append([f"{m[len('failed_'):]}: {int(x)}" for m, x in v.items()
                      if is_failure_count(str(m))])
    if not rows:
        return []
    out = []
    for label, lines in zip(labels, wrapped_rows(rows, "lrlllll", indent="  ", tails=tails),
                            strict=True):
        out += [f"  {label}"] * (len(label) > NAME_WIDTH) + lines
    return out


def _shared_populations(shares: pd.DataFrame | None) -> list[str]:
    """The populations some pod serves beside another one: only there does a
    population's share of a pod say more than the pod's own share."""
    if shares is None or shares.shape[1] < 2:
        return []
    served = shares.notna()
    several = served[served.sum(axis=1) > 1]
    return [str(p) for p in shares.columns if several[p].any()]


def pod_table(pods: pd.DataFrame, shares: pd.DataFrame | None) -> list[str]:
    """Per pod: share of all measured requests, utilisation, and each population's share
    where a pod serves several ("-": that population's Service does not select it);
    when those columns pass 100 columns they follow as a table of their own."""
    by_pod = pods.groupby(["pod", "node"], sort=False, observed=True)[
        ["share", "utilisation"]].mean()
    by_pod, left_out = extremes(by_pod, "share")
    populations = _shared_populations(shares)
    headers = [shorten(p, COLUMN_WIDTH) for p in populations]
    legend = []
    if len(set(headers)) < len(headers):  # names alike but in the middle: numbered
        headers = [f"{i}:{shorten(p, COLUMN_WIDTH - 3)}" for i, p in enumerate(populations, 1)]
        legend = [shorten(f"  {i}: {p}", WIDTH) for i, p in enumerate(populations, 1)]
    names = [str(pod) for pod, _ in by_pod.index]
    hosts = [str(node) for _, node in by_pod.index]
    columns = {h: [percent(float(shares.at[pod, p])) if pod in shares.index else "-"
                   for pod in names] for p, h in zip(populations, headers, strict=True)}
    figures = [[percent(row["share"]), percent(row["utilisation"])]
               for _, row in by_pod.iterrows()]
    pod_w = max([len("pods")] + [len(n) + 2 for n in names])
    node_w = max([len("node")] + [len(h) for h in hosts])
    inline = bool(headers) and pod_w + _middle(figures, columns) + 2 + node_w <= WIDTH
    shown = columns if inline else {}
    room = WIDTH - _middle(figures, shown) - 2  # for the pod and the node columns
    pod_cap, node_cap = pod_w, node_w
    if pod_w + node_w > room:  # long names: the node gets half, or what the pod leaves
        node_cap = max(min(node_w, max(room // 2, room - pod_w)), 8)
        pod_cap = max(room - node_cap, 10)
    rows = [["pods", "share", "util", *shown, "node"]]
    rows += [["  " + shorten(pod, pod_cap - 2), *cells, *(c[i] for c in shown.values()),
              shorten(node, node_cap)]
             for i, (pod, node, cells) in enumerate(zip(names, hosts, figures, strict=True))]
    lines = text_rows(rows, "lrr" + "r" * len(shown) + "l")
    note = "   (share per population)"
    if shown and len(lines[0]) + len(note) <= WIDTH:
        lines[0] += note
    if left_out:
        lines.insert(1 + TABLE_ROWS // 2, _left_out(left_out, "pods", "pods.parquet"))
    if headers and not inline:  # too wide beside the pods: blocks of their own
        table = pd.DataFrame(columns, index=pd.Index(names, name="share per population"))
        lines += fit_width(table, WIDTH).splitlines()
    return lines + legend


def _middle(figures: list[list[str]], columns: dict[str, list[str]]) -> int:
    """How wide the share, util and population columns are, with a separator each."""
    widths = [max([len("share")] + [len(f[0]) for f in figures]),
              max([len("util")] + [len(f[1]) for f in figures])]
    widths += [max([len(h)] + [len(v) for v in c]) for h, c in columns.items()]
    return sum(w + 2 for w in widths)


def node_table(nodes: pd.DataFrame) -> list[str]:
    """Per node: its share of the served requests and the cross-node share of what it
    received (the extremes of a long table)."""
    by_node = nodes.groupby("node", sort=False, observed=True)[
        ["share", "cross_node_fraction"]].mean()
    by_node, left_out = extremes(by_node, "share")
    note = "   (of what it received)"
    cap = WIDTH - len(f"   {'served':>6}  {'cross-node':>10}{note}")  # name and its indent
    names = [shorten(str(n), cap - 2) for n in by_node.index]
    width = max([len(n) for n in names] + [8]) + 2
    lines = [f"{'nodes':<{width}} {'served':>6}  {'cross-node':>10}{note}"]
    for i, (name, (_, row)) in enumerate(zip(names, by_node.iterrows(), strict=True)):
        if left_out and i == TABLE_ROWS // 2:
            lines.append(_left_out(left_out, "nodes", "nodes.parquet"))
        lines.append(f"  {name:<{width - 2}} {percent(row['share']):>6}  "
                     f"{percent(row['cross_node_fraction']):>10}")
    return lines
