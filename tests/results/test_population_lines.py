"""The per-population lines ``npsim run`` prints: a call edge to a dependency outside
the cluster reached no pod, so no pod saw an address ("IP kept n/a", never "nan%"). A
scope's figures that pass 100 columns continue on the lines below its name."""

from __future__ import annotations

import npsim
from npsim.results.summary import format_summary


def scope_text(lines: list[str], name: str) -> str:
    """A scope's line and its continuation lines (indented deeper than a name)."""
    start = next(i for i, line in enumerate(lines) if line.startswith(f"  {name}"))
    end = start + 1
    while end < len(lines) and lines[end].startswith("   ") and not lines[end][3:4].strip():
        end += 1
    return "\n".join(lines[start:end])


def test_an_external_call_edge_keeps_no_ip() -> None:
    payments = {"address": "payments.example.com:443",
                "latency": {"dist": "constant", "value": "5ms"}}
    result = npsim.run(npsim.bundled("three-tier-shop").with_changes(
        {"run.duration": "1s", "run.warmup": "0s",
         "workloads.cart.calls": [{"external": payments}]}))
    lines = format_summary(result.summary, result.pods, result.nodes).splitlines()
    edge = scope_text(lines, "cart>payments")
    assert "IP kept n/a" in edge and "nan" not in edge
    calls = scope_text(lines, "frontend>catalog")
    assert "IP kept 100.0%" in calls  # a pod's call to a ClusterIP: not SNATed
    assert max(len(line) for line in lines) <= 100
    assert "nan" not in "\n".join(lines)
