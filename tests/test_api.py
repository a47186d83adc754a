"""npsim.load_result gives back the frames a fresh run gave, dtypes included."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

import npsim
from npsim.scenario.loader import scenario_from_dict

QUIET = {  # no fault and no rollout: the run's events frame is empty
    "name": "quiet",
    "cluster": {"nodes": [{"name": "node-1"}]},
    "manifests": [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
         "spec": {"type": "NodePort", "selector": {"app": "web"},
                  "ports": [{"port": 80, "targetPort": 80}]}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
         "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                  "template": {"metadata": {"labels": {"app": "web"}},
                               "spec": {"containers": [{"name": "web"}]}}}}],
    "workloads": {"web": {"serviceTime": {"dist": "constant", "value": "1ms"}}},
    "clients": [{"name": "users", "service": "web", "arrival": {"rate": "5/s"}}],
    "run": {"duration": "1s"},
}


def test_an_empty_events_frame_loads_back_categorical(tmp_path: Path) -> None:
    fresh = npsim.run(scenario_from_dict(QUIET))
    assert fresh.events is not None and fresh.events.empty
    fresh.save(tmp_path / "out")
    loaded = npsim.load_result(tmp_path / "out")
    assert isinstance(loaded.events["kind"].dtype, pd.CategoricalDtype)
    assert loaded.events.dtypes.to_dict() == fresh.events.dtypes.to_dict()
