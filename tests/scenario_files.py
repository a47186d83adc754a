"""Scenario files as text, for tests that read a scenario as a user writes it (the
loader's and the CLI's problems name ``file:line:column``): a NodePort Service ``web``
in front of a Deployment ``web``, the parts a test varies given as arguments.

Blocks are YAML text written at column 0; :func:`scenario_text` indents them where they
go. A test that checks a line number takes it from the text (:func:`line_of`), not from
a count that a change of this layout would shift.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence

SERVICE_TIME = "serviceTime: {dist: constant, value: 1ms}"
CONTAINER = "containers: [{name: web, ports: [{containerPort: 8080}]}]"
USERS = "{name: users, service: web, arrival: {rate: 50/s}}"


def _indented(text: str, spaces: int) -> str:
    return textwrap.indent(textwrap.dedent(text).strip("\n"), " " * spaces)


def _items(items: Sequence[str], spaces: int) -> str:
    """YAML list items at ``spaces``; an item's later lines under its first."""
    lead = " " * spaces + "- "
    return "\n".join(lead + textwrap.dedent(item).strip("\n").replace(
        "\n", "\n" + " " * len(lead)) for item in items)


def scenario_text(
    *,
    name: str = "web",
    nodes: Sequence[str] = ("{name: n1, zone: a}",),
    cluster: str = "",
    manifests: Sequence[str] = (),
    ports: str = "{port: 80, targetPort: 8080}",
    replicas: int | str = 1,
    pod_spec: str = CONTAINER,
    workloads: Mapping[str, str] | None = None,
    clients: Sequence[str] = (USERS,),
    run: str = "{duration: 1s}",
    tail: str = "",
) -> str:
    """The text of a scenario file.

    ``nodes``: the node list's items (flow mappings); ``cluster``: more keys under
    ``cluster:`` (network, controlPlane, ...); ``manifests``: manifests placed before the
    Service and the Deployment (so theirs are ``manifests[0..]``); ``ports``: the
    Service's ports (one flow list's items); ``pod_spec``: the pod template's spec;
    ``workloads``: name -> the workload's keys (default: ``web`` with a 1 ms constant
    service time); ``clients``: the client list's items; ``run``: the run's value (a
    flow mapping, or block keys when it spans lines); ``tail``: top-level keys after
    ``run`` (events, monitoring, ...).
    """
    workloads = {"web": SERVICE_TIME} if workloads is None else workloads
    extra = "".join(_items([m], 2) + "\n" for m in manifests)
    more_cluster = _indented(cluster, 2) + "\n" if cluster else ""
    run_value = f"\n{_indented(run, 2)}" if "\n" in run.strip("\n") else f" {run}"
    text = f"""\
name: {name}
cluster:
  nodes:
{_items(nodes, 4)}
{more_cluster}manifests:
{extra}  - apiVersion: v1
    kind: Service
    metadata: {{name: web}}
    spec:
      type: NodePort
      selector: {{app: web}}
      ports: [{ports}]
  - apiVersion: apps/v1
    kind: Deployment
    metadata: {{name: web}}
    spec:
      replicas: {replicas}
      selector: {{matchLabels: {{app: web}}}}
      template:
        metadata: {{labels: {{app: web}}}}
        spec:
{_indented(pod_spec, 10)}
workloads:
"""
    for workload, keys in workloads.items():
        text += f"  {workload}:\n{_indented(keys, 4)}\n"
    text += f"clients:\n{_items(clients, 2)}\nrun:{run_value}\n"
    return text + (textwrap.dedent(tail).strip("\n") + "\n" if tail else "")


def line_of(text: str, fragment: str) -> int:
    """The 1-based number of the one line of ``text`` that holds ``fragment``."""
    found = [n for n, line in enumerate(text.splitlines(), 1) if fragment in line]
    assert len(found) == 1, f"{fragment!r} is on lines {found}"
    return found[0]
