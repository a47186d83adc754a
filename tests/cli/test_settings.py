"""``--set`` on validate, explain and run: one option and one reader for all three, and
the folder a changed run writes to when no ``--out`` is given (issue 18)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from npsim.cli import main
from npsim.cli.common import MAX_OUT_NAME, settings_folder

QUICKSTART = Path(__file__).resolve().parents[2] / "scenarios" / "quickstart.yaml"
SHORT = ("--set", "run.duration=1s", "--set", "run.warmup=0")


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("command", ["validate", "explain", "run"])
@pytest.mark.parametrize(("setting", "message"), [
    ("workloads.nginx.workers=x",
     "workloads.nginx.workers (set to 'x'): Input should be a valid integer"),
    ("nope", "--set 'nope': expected PATH=VALUE"),
    ("cluster.proxyMod=ipvs", "cluster.proxyMod (set to 'ipvs'): unknown field"),
])
def test_bad_settings_exit_2_with_the_same_placed_message(command: str, setting: str,
                                                          message: str) -> None:
    extra = ("--no-save",) if command == "run" else ()
    code, out, err = invoke(command, str(QUICKSTART), *extra, "--set", setting)
    assert code == 2
    assert message in err
    assert "Traceback" not in out + err
    assert out == ""  # nothing printed before the refusal
    # the same words as run --set (one reader for all three)
    assert err == invoke("run", str(QUICKSTART), "--no-save", "--set", setting)[2]


def test_validate_checks_the_changed_scenario() -> None:
    code, out, _ = invoke("validate", str(QUICKSTART), "--set", "cluster.nodes=5")
    assert code == 0 and ": ok - 5 nodes" in out
    code, _, err = invoke("validate", str(QUICKSTART), "--set", "cluster.nodes=0")
    assert code == 2 and "cluster.nodes" in err


def test_explain_shows_the_changed_scenario() -> None:
    code, out, _ = invoke("explain", str(QUICKSTART), "--set", "cluster.proxyMode=ipvs")
    assert code == 0
    assert out.startswith("# node node-1, kube-proxy mode ipvs\n")
    assert "IP Virtual Server" in out


def test_settings_folder_names_the_change() -> None:
    assert settings_folder("quickstart", ("workloads.nginx.workers=8",)) == \
        "quickstart--set-workloads.nginx.workers=8"
    # sorted by path; the same change set in any order is the same folder
    two = settings_folder("q", ("run.seed=3", "cluster.proxyMode=ipvs"))
    assert two == "q--set-cluster.proxyMode=ipvs--set-run.seed=3"
    assert settings_folder("q", ("cluster.proxyMode=ipvs", "run.seed=3")) == two


def test_settings_folder_is_safe_and_distinct() -> None:
    a = settings_folder("q", ("clients[users].arrival.rate=300/s",))
    b = settings_folder("q", ("clients[users].arrival.rate=300_s",))
    assert "/" not in a and "[" not in a
    assert a != b  # '/' and '_' would read the same: a digest of the exact text tells them
    long = settings_folder("q", tuple(f"workloads.w{i}.workers={i}" for i in range(40)))
    assert len(long.encode()) <= MAX_OUT_NAME
    assert long != settings_folder("q", tuple(f"workloads.w{i}.workers={i + 1}"
                                              for i in range(40)))


def test_run_with_set_writes_beside_the_baseline_never_over_it(tmp_path: Path) -> None:
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        code, out, err = invoke("run", str(QUICKSTART), "--no-report", *SHORT)
        assert code == 0, err
        baseline = tmp_path / "results" / "quickstart" / "seed-1"
        # a changed run never made the baseline's folder
        assert not baseline.exists()
        changed = tmp_path / "results" / (
            "quickstart--set-run.duration=1s--set-run.warmup=0") / "seed-1"
        assert (changed / "summary.csv").is_file()
        assert f"results    {Path('results') / changed.parent.name / 'seed-1'}/" in out
        baseline.mkdir(parents=True)
        (baseline / "keep.txt").write_text("mine")
        code, _, err = invoke("run", str(QUICKSTART), "--no-report", "--force", *SHORT,
                              "--set", "clients[0].arrival.rate=50/s")
        assert code == 0, err
        assert (baseline / "keep.txt").read_text() == "mine"
        assert sorted(p.name for p in baseline.iterdir()) == ["keep.txt"]
        # a --set that renames the scenario still names the folder after the original
        code, _, err = invoke("run", str(QUICKSTART), "--no-report", *SHORT,
                              "--set", "name=other")
        assert code == 0, err
        assert not (tmp_path / "results" / "other").exists()
        assert (tmp_path / "results" / "quickstart--set-name=other--set-run.duration=1s"
                "--set-run.warmup=0" / "seed-1").is_dir()
    finally:
        os.chdir(cwd)
