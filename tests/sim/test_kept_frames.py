"""A frame kept after its function returned keeps that function's locals: a Dask worker
samples its running tasks' frames (``Worker.trigger_profile``, every 10 ms) and one it
holds while ``settle`` returns kept a numpy view of a log column, so the run's end
(``RequestLog.trim``) found the column exporting its buffer (BufferError, once in CI).
Nothing the run leaves in a returned frame may view the log."""

from __future__ import annotations

import sys
from types import FrameType

import pytest
from conftest import build

import npsim.sim.records as records
from npsim.outcomes import COMPLETED
from npsim.sim.engine import Simulation


def _kept_frames(run):  # noqa: ANN001, ANN202 - a callable, its frames
    """Call ``run()`` keeping every npsim frame past its return, as a sampler may."""
    kept: list[FrameType] = []

    def keep(frame: FrameType, event: str, _arg: object) -> None:
        if event == "return" and "npsim" in frame.f_code.co_filename:
            kept.append(frame)

    sys.setprofile(keep)
    try:
        out = run()
    finally:
        sys.setprofile(None)
    return out, kept


@pytest.mark.parametrize("length", [{"duration": 1.0}, {"requests": 200}])
def test_frames_kept_past_their_return_do_not_pin_the_log(
        monkeypatch: pytest.MonkeyPatch, length: dict) -> None:
    # the log's own fallback (copy a column something views) off: no copy is needed
    monkeypatch.setattr(records, "_resizable", lambda col, rows: col)
    sim = Simulation(build(nodes=2, replicas=2, **length))
    out, kept = _kept_frames(sim.run)
    # the run ended (settle served the quiet pods, then trim cut the room) with no copy
    assert len(out.log) > 50 and len(out.log.pod) == len(out.log)
    assert out.log.outcome.count(COMPLETED) == len(out.log)
    assert {"settle", "_settle_rows", "columns"} <= {f.f_code.co_name for f in kept}
