"""A figure's PNG drawn in one pass is the PNG ``savefig`` writes, byte for byte, and
leaves the figure as it was (its canvas and resolution), so it can be shown or saved
again."""

from __future__ import annotations

import io

import pytest
from conftest import run_bundled

import npsim
from npsim.plots import FIGURES
from npsim.plots._common import DPI, png_bytes


@pytest.fixture(scope="module")
def quick() -> npsim.Result:
    return run_bundled("quickstart", 4.0, 1.0)


@pytest.mark.parametrize("name", list(FIGURES))
def test_one_pass_png_is_savefigs(quick: npsim.Result, name: str) -> None:
    saved = io.BytesIO()
    FIGURES[name](quick).savefig(saved, format="png", dpi=DPI)
    fig = FIGURES[name](quick)  # a fresh figure: a second layout may move things a pixel
    canvas, dpi = fig.canvas, fig.dpi
    assert png_bytes(fig) == saved.getvalue()
    assert fig.canvas is canvas and fig.dpi == dpi
    assert fig._repr_png_()[:8] == b"\x89PNG\r\n\x1a\n"
