"""Small scenarios for ``npsim explain --at`` tests, written as files (explain reads a
file), and a runner that returns exit code, stdout and stderr."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner

from npsim.cli import main

BUNDLED = Path(__file__).resolve().parents[2] / "scenarios"


def web_scenario(folder: Path, events: list[dict[str, Any]], replicas: int = 4,
                 pre_stop: int = 0, on_sigterm: str = "exit", mode: str = "iptables",
                 extra_cluster: dict[str, Any] | None = None, **client: Any) -> str:
    """2 nodes, a NodePort Service ``web`` over ``replicas`` pods spread on them, one
    population ``users`` (connect timeout 3 s unless ``client`` says otherwise)."""
    container: dict[str, Any] = {"name": "web", "ports": [{"containerPort": 8080}]}
    if pre_stop:
        container["lifecycle"] = {"preStop": {"exec": {
            "command": ["sh", "-c", f"sleep {pre_stop}"]}}}
    manifests = [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
         "spec": {"type": "NodePort", "selector": {"app": "web"},
                  "ports": [{"port": 80, "targetPort": 8080, "nodePort": 30090}]}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
         "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                  "template": {"metadata": {"labels": {"app": "web"}},
                               "spec": {"terminationGracePeriodSeconds": 60,
                                        "containers": [container]}}}},
    ]
    data = {
        "name": "explain-at",
        "cluster": {"proxyMode": mode, "nodes": [{"name": "node-1"}, {"name": "node-2"}],
                    **(extra_cluster or {})},
        "manifests": manifests,
        "workloads": {"web": {"workers": 2, "onSigterm": on_sigterm,
                              "serviceTime": {"dist": "exponential", "mean": "5ms"}}},
        "clients": [{"name": "users", "service": "web", "arrival": {"rate": "50/s"},
                     "entry": "random", "connectTimeout": "3s", **client}],
        "events": events,
        "run": {"duration": "60s", "seed": 1},
    }
    path = folder / "scenario.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def npsim(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def comments(text: str) -> list[str]:
    """The state lines explain --at prints above the rules."""
    return [line for line in text.splitlines() if line.startswith("# ")]


def trace_end(text: str) -> str:
    """The last line of the trace: what the client sees."""
    section = text.split("# trace of one new connection\n", 1)[1].split("\n\n", 1)[0]
    return section.splitlines()[-1]
