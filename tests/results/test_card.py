"""A Result shows itself in a line (REPL) and a card (Jupyter), not as 130 lines of
frames (issue 18)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import npsim
from npsim.scenario.changes import with_changes

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


@pytest.fixture(scope="module")
def overloaded() -> npsim.Result:
    base = npsim.load_scenario(SCENARIOS / "quickstart.yaml")
    return npsim.run(with_changes(base, {
        "run.duration": "3s", "run.warmup": "1s", "run.replications": 2,
        "workloads.nginx.queueLimit": 2, "clients[0].arrival.rate": "3000/s"}))


def test_repr_is_one_short_line_with_the_key_figures(overloaded) -> None:
    text = repr(overloaded)
    assert "\n" not in text and len(text) < 250
    assert text.startswith("<Result quickstart, seed 1, 2 replications: ")
    measured = int(overloaded.metric("requests_measured"))
    assert f"{measured:,} requests measured" in text
    ratio = overloaded.metric("error_ratio")
    assert ratio > 0 and f"error_ratio {ratio:.1%}" in text
    for name in ("throughput", "latency_p50", "latency_p99", "user_latency_p99"):
        assert f"{name} " in text
    assert str(overloaded) == text


def test_the_jupyter_card_has_the_figures_and_their_intervals(overloaded) -> None:
    card = overloaded._repr_html_()
    assert card.startswith('<div class="npsim-result"')
    assert "quickstart, seed 1, 2 replications" in card
    assert re.search(r"failed [\d,]+ of [\d,]+ measured \(\d+\.\d%\): queue_full 100%", card)
    rows = re.findall(r"<tr><td>([^<]+)</td><td>([^<]*)</td><td>([^<]*)</td></tr>", card)
    assert [r[0] for r in rows] == [
        "requests measured", "throughput (completed)", "error_ratio (failed / ended)",
        "latency_p50 (completed)", "latency_p99 (completed)",
        "user_latency_p99 (every request)"]
    ratio_row = dict((r[0], r) for r in rows)["error_ratio (failed / ended)"]
    assert ratio_row[2].count("%") == 2  # an interval over the two replications
    assert "requests (" in card and "rows)" in card
