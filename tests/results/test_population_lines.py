"""The per-population lines ``npsim run`` prints: a call edge to a dependency outside
the cluster reached no pod, so no pod saw an address ("IP kept n/a", never "nan%")."""

from __future__ import annotations

import npsim
from npsim.results.summary import format_summary


def test_an_external_call_edge_keeps_no_ip() -> None:
    payments = {"address": "payments.example.com:443",
                "latency": {"dist": "constant", "value": "5ms"}}
    result = npsim.run(npsim.bundled("three-tier-shop").with_changes(
        {"run.duration": "1s", "run.warmup": "0s",
         "workloads.cart.calls": [{"external": payments}]}))
    lines = format_summary(result.summary, result.pods, result.nodes).splitlines()
    edge = next(line for line in lines if line.startswith("  cart>payments"))
    assert "IP kept n/a" in edge and "nan" not in edge
    calls = next(line for line in lines if line.startswith("  frontend>catalog"))
    assert "IP kept 100.0%" in calls  # a pod's call to a ClusterIP: not SNATed
    assert "nan" not in "\n".join(lines)
