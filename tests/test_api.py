"""``npsim.run`` and its Result: saved and read back the same, progress, arguments."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

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


def test_progress_rises_through_the_frames_to_the_end() -> None:
    """``progress`` covers a replication's simulation and then what follows it (serving
    quiet pods, the frames, the statistics): never backwards, 1.0 only at the end."""
    data = {**QUIET, "run": {"duration": "20s", "replications": 2}}
    seen: list[float] = []
    npsim.run(scenario_from_dict(data), progress=seen.append)
    assert seen == sorted(seen) and seen[-1] == 1.0
    halves = [f for f in seen if f < 0.5]
    # the first simulation's last report, then its frames
    assert halves[-2:] == pytest.approx([0.5 * npsim.api.SIMULATING,
                                         0.5 * (1 + npsim.api.SIMULATING) / 2])


@pytest.mark.parametrize("arguments", [
    {"replications": []}, {"replications": [10**20]}, {"replications": [-1]},
    {"replications": [0, 0]}, {"replications": [0.5]}, {"jobs": 0}, {"jobs": -1},
    {"jobs": 1.5},
])
def test_bad_run_arguments_are_refused_before_anything_runs(arguments: dict) -> None:
    """Checked up front with a message naming the argument (an empty list was an
    IndexError after the run, a huge index an OverflowError from numpy's seeding)."""
    with pytest.raises(ValueError, match="replications|jobs"):
        npsim.run(scenario_from_dict(QUIET), **arguments)


def test_chosen_replications_run_as_asked() -> None:
    result = npsim.run(scenario_from_dict(QUIET), replications=[3, 1])
    assert sorted(result.requests["replication"].unique()) == [1, 3]


def test_extra_files_are_written_into_the_folder_before_it_appears(tmp_path: Path) -> None:
    """``Result.save(extra=...)`` is how the CLI adds its report: inside the atomic write,
    so a failure there leaves no folder at all."""
    result = npsim.run(scenario_from_dict(QUIET))
    folder = result.save(tmp_path / "out",
                         extra=lambda tmp: (tmp / "notes.txt").write_text("by hand"))
    assert (folder / "notes.txt").read_text() == "by hand"
    assert (folder / "summary.csv").is_file()

    def broken(tmp: Path) -> None:
        raise RuntimeError("the report could not be drawn")

    with pytest.raises(RuntimeError, match="could not be drawn"):
        result.save(tmp_path / "failed", extra=broken)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


FROZEN_CHILD = """
import gc, json, weakref
import npsim.api  # freezes what its imports made (gc.freeze): not what comes after


class Node:
    pass


a, b = Node(), Node()
a.other, b.other = b, a  # a cycle only the cyclic collector frees
alive = weakref.ref(a)
result = npsim.run(npsim.scenario_from_dict(json.loads(__import__("sys").argv[1])))
del a, b  # garbage only now, after the imports and a run
gc.collect()
print(json.dumps({"cycle_freed": alive() is None, "frozen": gc.get_freeze_count(),
                  "requests": len(result.requests)}))
"""


def test_objects_made_after_the_import_are_still_collected() -> None:
    # npsim.api and the scenario loader freeze the modules they import, so no full
    # collection (nor the interpreter's exit) walks them; a user's own garbage cycles
    # made afterwards (a notebook's data, say) are freed as before, run or not
    import json
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", FROZEN_CHILD, json.dumps(QUIET)],
                         capture_output=True, text=True, check=True)
    row = json.loads(out.stdout.strip().splitlines()[-1])
    assert row["cycle_freed"] and row["frozen"] > 10_000 and row["requests"] > 0


def test_frames_are_built_with_the_larger_mmap_threshold_and_the_next_run_gets_its_own(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Each replication's frames are built with glibc's mmap threshold raised (block
    temporaries reused from the heap, not mapped each time) and the simulation's is put
    back before the next replication's request log grows, also when the frames fail."""
    import npsim.api as api
    from npsim.sim.records import MMAP_THRESHOLD

    calls: list[int] = []
    monkeypatch.setattr(api, "set_mmap_threshold", calls.append)
    npsim.run(scenario_from_dict(QUIET), replications=[0, 1])
    assert calls == [api.POST_RUN_MMAP_THRESHOLD, MMAP_THRESHOLD] * 2
    assert api.POST_RUN_MMAP_THRESHOLD > MMAP_THRESHOLD

    def broken(*args: object) -> None:
        raise RuntimeError("frames failed")

    calls.clear()
    monkeypatch.setattr(api, "_frames", broken)
    with pytest.raises(RuntimeError, match="frames failed"):
        npsim.run(scenario_from_dict(QUIET))
    assert calls == [api.POST_RUN_MMAP_THRESHOLD, MMAP_THRESHOLD]
