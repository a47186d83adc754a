"""report.html and sweep.html render in a real browser: every figure loads, no console
errors.

One headless Chromium (Debian's package, installed by ``.ci/run``) opens the report of
a real ``npsim run`` and then a copy with one image broken, to show the check can fail.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from conftest import client, exponential, scenario_dict

import npsim
from npsim.cli import main

from .browser import Chromium, find_chromium, must_have_browser


@pytest.fixture(scope="module")
def browser():
    binary = find_chromium()
    if binary is None:
        if must_have_browser():
            pytest.fail("chromium is not installed (.ci/run installs Debian's chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    chromium = Chromium(binary)
    yield chromium
    chromium.close()


@pytest.mark.slow
def test_report_renders_with_every_image_and_no_errors(browser: Chromium,
                                                       tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["run", str(npsim.bundled_path("local-vs-cluster")),
                                       "--out", str(out)])
    assert result.exit_code == 0, result.output
    figures = sorted(p.stem for p in (out / "figures").glob("*.png"))
    assert len(figures) >= 7

    page = browser.open(out / "report.html")
    assert page.errors == []
    assert page.title == "npsim: local-vs-cluster"
    assert page.tables >= 3  # summary, pods, nodes
    assert len(page.images) == len(figures)
    for image in page.images:
        assert image["complete"] and image["width"] > 300 and image["height"] > 200, image

    broken = tmp_path / "broken.html"
    html = (out / "report.html").read_text()
    broken.write_text(re.sub(r"base64,[A-Za-z0-9+/]{64}", "base64,bm90IGEgcG5n", html,
                             count=1))
    page = browser.open(broken)
    assert sum(1 for i in page.images if i["width"] == 0) == 1


@pytest.mark.slow
def test_sweep_page_renders_with_its_figure_and_tables(browser: Chromium, tmp_path: Path) -> None:
    data = scenario_dict(nodes=2, replicas=2, workers=2, service_time=exponential(4e-3),
                         clients=[client(rate=300.0, source_ips=40)], duration=0.5,
                         replications=2)
    data["variants"] = {"grid": {"workloads.web.workers": [1, 2, 4]}}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(data))
    out = tmp_path / "sweep"
    result = CliRunner().invoke(main, ["sweep", str(path), "--out", str(out), "--jobs", "1"])
    assert result.exit_code == 0, result.output

    page = browser.open(out / "sweep.html")
    assert page.errors == []
    assert page.title == "npsim sweep: test"
    assert page.tables == 4  # variants, key metrics, differences, every metric
    assert len(page.images) == 1
    image = page.images[0]
    assert image["complete"] and image["width"] > 300 and image["height"] > 150, image
