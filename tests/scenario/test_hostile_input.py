"""Hostile input: files that are not what they claim, sizes that would exhaust the
machine, and result folders npsim must not touch. Each gets a clean error (exit 2,
placed, nothing written) or a run that finishes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

import npsim
from npsim.cli import main
from npsim.results.skew import share_stats
from npsim.scenario.problems import ScenarioError

NGINX = (Path(__file__).resolve().parents[2] / "scenarios" / "manifests" / "nginx.yaml")

SCENARIO = """\
name: hostile
cluster:
  nodes: [{{name: node-1}}, {{name: node-2}}]
manifests: [{manifest}]
workloads:
  nginx: {{serviceTime: {service}, placement: spread}}
clients:
  - {{name: users, service: nginx-nodeport, arrival: {{rate: {rate}}}}}
run: {{{run}}}
"""


def write(folder: Path, manifest: str = "nginx.yaml", service: str = "1ms",
          rate: str = "200/s", run: str = "duration: 1s") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "nginx.yaml").exists():
        (folder / "nginx.yaml").write_text(NGINX.read_text("utf-8"), "utf-8")
    path = folder / "scenario.yaml"
    path.write_text(SCENARIO.format(manifest=manifest, service=service, rate=rate, run=run),
                    "utf-8")
    return path


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.output


def problems(path: Path, **kwargs: object) -> str:
    with pytest.raises(ScenarioError) as info:
        npsim.load_scenario(path, **kwargs)
    return info.value.report()


# --- files --------------------------------------------------------------------------

@pytest.mark.parametrize("make, words", [
    (lambda d: os.mkfifo(d / "m.yaml"), "is a FIFO"),
    (lambda d: (d / "m.yaml").symlink_to("m.yaml"), "symlink loop"),
    (lambda d: (d / "m.yaml").write_bytes(b"kind: \xff\xfe\n"), "not UTF-8"),
    (lambda d: (d / "m.yaml").mkdir(), "is a directory"),
    (lambda d: (d / "m.yaml").symlink_to("/dev/zero"), "outside the scenario's folder"),
])
def test_a_manifest_that_is_no_regular_file_is_refused(tmp_path: Path, make, words) -> None:  # noqa: ANN001
    make(tmp_path)
    report = problems(write(tmp_path, "m.yaml"))
    assert words in report
    assert "scenario.yaml:4:" in report  # placed at the manifests entry


def test_devices_are_refused_even_when_outside_files_are_allowed(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").symlink_to("/dev/zero")
    report = problems(write(tmp_path, "m.yaml"), allow_outside_files=True)
    assert "is a device; npsim reads only regular files" in report


def test_files_outside_the_folder_need_permission_and_are_never_quoted(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("root:$6$hash:19000:0:99999:7:::\n", "utf-8")
    path = write(tmp_path / "project", "nginx.yaml",
                 service="{dist: empirical, file: ../secret.txt}")
    report = problems(path)
    assert "outside the scenario's folder" in report and "--allow-outside-files" in report
    assert "$6$hash" not in report
    code, output = cli("validate", str(path))
    assert code == 2 and "outside the scenario's folder" in output
    code, output = cli("validate", "--allow-outside-files", str(path))
    assert code == 2 and "not a number" in output and "hash" not in output


def test_yaml_bombs_are_bounded(tmp_path: Path) -> None:
    deep = "a: " + "[" * 500 + "]" * 500 + "\n"
    (tmp_path / "deep.yaml").write_text(deep, "utf-8")
    assert "nested more than 100 levels" in problems(write(tmp_path, "deep.yaml"))
    bomb = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for i in range(1, 9):
        bomb.append(f"{chr(97 + i)}: &{chr(97 + i)} [" + ",".join([f"*{chr(96 + i)}"] * 9) + "]")
    (tmp_path / "bomb.yaml").write_text("\n".join(bomb) + "\n", "utf-8")
    assert "alias bomb" in problems(write(tmp_path, "bomb.yaml"))
    (tmp_path / "big.yaml").write_text("spec: {replicas: " + "9" * 5000 + "}\n", "utf-8")
    assert "more than 40 digits" in problems(write(tmp_path, "big.yaml"))


def test_the_scenario_file_itself_must_be_a_regular_file(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo.yaml")
    report = problems(tmp_path / "fifo.yaml")
    assert "is a FIFO" in report


# --- sizes ----------------------------------------------------------------------------

@pytest.mark.parametrize("rate, run, words", [
    ("1e7/s", "duration: 60s", "--max-requests"),
    ("5/us", "duration: 60s", "more than the limit"),
    ("200/s", "duration: 8000h", "run.limits.maxRequests"),
    ("200/s", "duration: 1000000000h", "at most 365 days of simulated time"),  # npsim's horizon
    ("200/s", "{requests: 1000, replications: 1000000000}", "1,000,000,000,000 requests"),
])
def test_runaway_runs_are_refused_by_validate_and_run(tmp_path: Path, rate: str, run: str,
                                                      words: str) -> None:
    path = write(tmp_path, rate=rate, run=run.strip("{}"))
    for command in ("validate", "run"):
        code, output = cli(command, str(path), "--out", str(tmp_path / "out"))  \
            if command == "run" else cli(command, str(path))
        assert code == 2, output
        assert words in output and "scenario.yaml:" in output
    assert not (tmp_path / "out").exists()


def test_limits_can_be_raised_and_memory_is_estimated(tmp_path: Path) -> None:
    path = write(tmp_path, rate="1000/s", run="duration: 10s")
    code, output = cli("validate", str(path), "--max-requests", "5000")
    assert code == 2 and "10,000 requests" in output
    code, output = cli("validate", str(path), "--max-memory", "1MiB")
    assert code == 2 and "--max-memory" in output and "of memory" in output
    code, output = cli("validate", str(path), "--max-requests", "20000")
    assert code == 0, output


def test_a_closed_loop_that_never_waits_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, service="0s")
    text = path.read_text().replace("arrival: {rate: 200/s}",
                                    "arrival: {users: 5, thinkTime: 0s}")
    path.write_text(text)
    code, output = cli("validate", str(path))
    assert code == 2 and "sends without end" in output


def test_a_rate_too_slow_to_send_after_warmup_still_reports(tmp_path: Path) -> None:
    path = write(tmp_path, rate="5/h", run="duration: 10s, warmup: 5s")
    result = npsim.run(npsim.load_scenario(path))
    assert result.metric("requests_measured") == 0
    assert "requests" in result.report()


def test_pod_cidr_room_is_checked_by_validate_with_a_line(tmp_path: Path) -> None:
    path = write(tmp_path)
    text = path.read_text().replace("{name: node-1}", "{name: node-1, podCIDR: 10.1.0.0/30}")
    path.write_text(text + "events: [{at: 0.5s, scale: {deployment: nginx, replicas: 9}}]\n")
    code, output = cli("validate", str(path))
    assert code == 2, output
    assert "node 'node-1': pod CIDR 10.1.0.0/30 has room for 1 pods" in output
    assert "scenario.yaml:" in output


def test_default_addresses_stay_unique_past_256_nodes() -> None:
    from npsim.cluster.model import default_pod_cidr

    starts = {int(default_pod_cidr(i).network_address) for i in range(1 << 16)}
    assert len(starts) == 1 << 16
    assert str(default_pod_cidr(0)) == "10.244.0.0/24"
    assert str(default_pod_cidr(256)) == "10.245.0.0/24"
    with pytest.raises(ValueError, match="give podCIDR"):
        default_pod_cidr(1 << 16)


def test_gini_is_exact_without_an_n_by_n_array() -> None:
    import numpy as np

    x = np.random.default_rng(3).integers(0, 50, 300).astype(float)
    brute = np.abs(x[:, None] - x[None, :]).sum() / (2 * len(x) ** 2 * x.mean())
    assert share_stats(x)["gini"] == pytest.approx(brute, rel=1e-12)
    assert share_stats(np.ones(200_000))["gini"] == 0.0


# --- result folders -----------------------------------------------------------------

def test_force_replaces_only_what_npsim_wrote(tmp_path: Path) -> None:
    path = write(tmp_path)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("keep me")
    code, output = cli("run", str(path), "--out", str(mine), "--force")
    assert code == 2 and "not a result folder npsim wrote" in output
    assert (mine / "thesis.tex").read_text() == "keep me"
    device_like = tmp_path / "null"
    device_like.write_text("")
    code, output = cli("run", str(path), "--out", str(device_like), "--force")
    assert code == 2 and device_like.is_file()
    out = tmp_path / "res"
    assert cli("run", str(path), "--out", str(out), "--no-report")[0] == 0
    assert cli("run", str(path), "--out", str(out), "--force", "--seed", "2",
               "--no-report")[0] == 0
    assert (out / ".npsim-result").is_file()


def test_empty_and_dot_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path)
    code, output = cli("run", str(path), "--out", "")
    assert code == 2 and "--out needs a folder name" in output
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    code, output = cli("run", str(path), "--out", ".", "--force")
    assert code == 2 and "not a result folder" in output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nginx.yaml", "scenario.yaml", "work"]


def test_stale_temporary_folders_are_cleaned_and_others_kept(tmp_path: Path) -> None:
    path = write(tmp_path)
    stale = tmp_path / ".out.npsim-abc123.tmp"
    stale.mkdir()
    (stale / "requests.parquet").write_text("half")
    other = tmp_path / ".out.keep.tmp"
    other.mkdir()
    assert cli("run", str(path), "--out", str(tmp_path / "out"), "--no-report")[0] == 0
    assert not stale.exists() and other.exists()
    assert not list(tmp_path.glob("*lock"))


def test_a_second_writer_of_the_same_folder_is_refused(tmp_path: Path) -> None:
    from npsim.results.store import ResultLockedError, result_lock, write_atomically

    target = tmp_path / "out"
    with result_lock(target):  # as if another process held it: a re-entrant hold is ours
        write_atomically(target, lambda tmp: (tmp / "a").write_text("1"))
    with pytest.raises(FileExistsError):
        write_atomically(target, lambda tmp: (tmp / "a").write_text("2"))
    assert (target / "a").read_text() == "1"
    import fcntl

    fd = os.open(tmp_path / ".other.npsim-lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with pytest.raises(ResultLockedError), result_lock(tmp_path / "other", wait=0.2):
            pass
    finally:
        os.close(fd)


# --- found by the acceptance test as a new user ---------------------------------------

def test_a_billion_replicas_is_refused_by_the_limits_not_a_memory_error(tmp_path: Path) -> None:
    (tmp_path / "big.yaml").write_text(
        NGINX.read_text("utf-8").replace("replicas: 4", "replicas: 1000000000"), "utf-8")
    path = write(tmp_path, "big.yaml")
    path.write_text(path.read_text() + "events: [{at: 0.5s, podCrash: {pod: nginx-7}}]\n")
    assert npsim.load_scenario(path).deployments["nginx"].replicas == 10**9
    code, output = cli("validate", str(path))
    assert code == 2 and "1,000,000,000 pods" in output and "run.limits.maxPods" in output


def test_an_event_naming_a_missing_pod_lists_the_pods_by_range(tmp_path: Path) -> None:
    path = write(tmp_path)
    path.write_text(path.read_text() + "events: [{at: 0.5s, podCrash: {pod: nginx-4}}]\n")
    assert "no pod named 'nginx-4' at the start of the run (pods: nginx-0..3)" in problems(path)
    path.write_text(path.read_text().replace("nginx-4", "nginx-03"))
    assert "no pod named 'nginx-03'" in problems(path)


def test_samples_files_are_bounded_and_may_start_with_a_byte_order_mark(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import npsim.dists

    (tmp_path / "times.txt").write_bytes(b"\xef\xbb\xbf1\r\n2\r\n")
    path = write(tmp_path, service="{dist: empirical, file: times.txt, unit: ms}")
    assert npsim.load_scenario(path).workloads["nginx"].service_time.mean == pytest.approx(1.5e-3)
    monkeypatch.setattr(npsim.dists, "MAX_SAMPLES", 3)
    (tmp_path / "times.txt").write_text("1\n2\n# note\n3\n4\n")
    assert "times.txt:5: more than the 3 an empirical distribution may hold" in problems(path)
    path = write(tmp_path, service="{dist: empirical, samples: [1ms, 1ms, 1ms, 1ms]}")
    assert "4 samples, more than the 3" in problems(path)


def test_a_lognormal_cv_must_be_finite(tmp_path: Path) -> None:
    for cv in (".inf", "1e300"):
        path = write(tmp_path, service=f"{{dist: lognormal, mean: 1ms, cv: {cv}}}")
        assert "serviceTime.cv" in problems(path)


def test_errors_about_the_file_itself_have_a_line(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("")
    assert "s.yaml:1:1: (top level): a scenario file holds exactly one" in problems(path)
    path.write_text("name: a\n---\nname: b\n")
    assert "s.yaml:3:1: (top level)" in problems(path)
    path.write_text("name: a\x00b\n")
    assert "s.yaml:1:8: YAML error: the character U+0000 is not allowed" in problems(path)
    path.write_bytes(b"name: a\nrun: \xff\n")
    assert "not UTF-8 text (invalid byte at line 2, column 6)" in problems(path)


def test_a_file_that_is_no_scenario_is_not_echoed(tmp_path: Path) -> None:
    path = tmp_path / "shadow"
    path.write_text("root:$6$secrethash:19000:0:99999:7:::\n")
    report = problems(path)
    assert "not an npsim scenario" in report and "secrethash" not in report
    path.write_text("root:$6$secrethash: 1\nbin:*: 2\n")
    report = problems(path)
    assert "not an npsim scenario" in report and "secrethash" not in report


def test_a_report_prints_at_most_a_hundred_problems() -> None:
    from npsim.scenario.problems import Problem

    error = ScenarioError([Problem(None, f"x{i}", "bad") for i in range(250)])
    lines = error.report().splitlines()
    assert lines[0].startswith("250 problems") and len(lines) == 102
    assert "and 150 more" in lines[-1] and len(error.problems) == 250


def test_an_inline_manifest_of_the_wrong_type_is_one_placed_problem(tmp_path: Path) -> None:
    path = write(tmp_path, "5")
    report = problems(path)
    assert "scenario.yaml:4:" in report
    assert "manifests[0]: Input should be a valid string or a valid dictionary" in report
    assert "no Deployment named" not in report and report.startswith("1 problem")


def test_a_sweep_of_too_many_variants_is_refused_before_each_is_validated(
        tmp_path: Path) -> None:
    """400 x 400 grid values: validate ran past a minute making 160,000 variants."""
    path = write(tmp_path)
    values = ", ".join(str(i) for i in range(1, 401))
    path.write_text(path.read_text() + f"variants: {{grid: {{workloads.nginx.workers: [{values}], "
                    f"'clients[0].requestsPerConnection': [{values}]}}}}\n")
    assert "scenario.yaml:10:1: variants: 160,000 variants, more than 1,000" in problems(path)
    path.write_text(path.read_text().split("variants:")[0]
                    + "variants: {baseline: zzz, each: [{name: a, set: {}}]}\n")
    code, output = cli("validate", str(path))
    assert code == 2 and "scenario.yaml:10:12: variants.baseline: no variant named 'zzz'" in output


def test_python_data_that_is_no_scenario_is_a_scenario_error() -> None:
    deep: dict = {}
    node = deep
    for _ in range(2000):
        node["a"] = node = {}
    for data, words in ((None, "got nothing"), ({"name": object()}, "only YAML data"),
                        (deep, "nested more than 100 levels")):
        with pytest.raises(ScenarioError, match=words):
            npsim.scenario_from_dict(data)


def test_names_too_long_for_a_folder_are_refused_before_the_run(tmp_path: Path) -> None:
    path = write(tmp_path)
    path.write_text(path.read_text().replace("name: hostile", "name: " + "n" * 300))
    assert "name: String should have at most 200 characters" in problems(path)
    code, output = cli("run", str(write(tmp_path)), "--out", str(tmp_path / ("x" * 300)))
    assert code == 2 and "a folder name of 300 bytes; at most 235" in output
    assert "simulated" not in output


def test_a_service_whose_deployments_have_no_replicas_is_warned_about(tmp_path: Path) -> None:
    (tmp_path / "none.yaml").write_text(
        NGINX.read_text("utf-8").replace("replicas: 4", "replicas: 0"), "utf-8")
    path = write(tmp_path, "none.yaml")
    warnings = " ".join(str(w) for w in npsim.load_scenario(path).warnings)
    assert "selects only Deployments with replicas: 0" in warnings
    path.write_text(path.read_text()
                    + "events: [{at: 0.5s, scale: {deployment: nginx, replicas: 2}}]\n")
    assert not npsim.load_scenario(path).warnings


def test_node_names_are_dns_subdomains_even_when_other_sections_are_broken(
        tmp_path: Path) -> None:
    path = write(tmp_path)
    path.write_text(path.read_text().replace("{name: node-1}", '{name: "nöde-1\\0"}'))
    assert "cluster.nodes[0].name: Invalid value: 'nöde-1\\x00'" in problems(path)
    path.write_text(path.read_text().replace("run: {", "run: {bogus: 1, "))
    report = problems(path)  # the partial checks run too, without a traceback
    assert "RFC 1123 subdomain" in report and "run.bogus: unknown field" in report


def test_a_sweep_report_metric_no_run_writes_is_placed_before_anything_runs(
        tmp_path: Path) -> None:
    """``variants.report: [latncy_p99]`` was silently left out of the sweep's table."""
    path = write(tmp_path)
    path.write_text(path.read_text() + "variants: {each: [{name: a, set: {}}], "
                    "report: [throughput, latncy_p99]}\n")
    code, output = cli("validate", str(path))
    assert code == 2
    assert ("scenario.yaml:10:61: variants.report[1]: no metric 'latncy_p99'; did you mean "
            "'latency_p99'") in output, output
    assert "report[0]" not in output


def test_a_cluster_cidr_that_misses_a_default_pod_cidr_is_placed(tmp_path: Path) -> None:
    """A node without podCIDR gets 10.244.<i>.0/24; a clusterCIDR that does not hold it
    was accepted, and kube-proxy would have taken that node's pods for outside clients."""
    path = write(tmp_path)
    text = path.read_text().replace("cluster:\n", "cluster:\n  clusterCIDR: 10.244.0.0/24\n")
    path.write_text(text)
    code, report = cli("validate", str(path))
    assert code == 2
    assert "cluster.nodes[1]: node 'node-2' has no podCIDR and its default 10.244.1.0/24 is " \
           "outside clusterCIDR 10.244.0.0/24" in report, report
    assert "'node-1'" not in report  # 10.244.0.0/24 itself is inside
    path.write_text(text.replace("clusterCIDR: 10.244.0.0/24", "clusterCIDR: 10.244.0.0/16"))
    assert cli("validate", str(path))[0] == 0


@pytest.mark.parametrize("section, words", [
    ("monitoring: {slo: {availability: 0.99, window: 0s}}",
     "monitoring.slo.window: Input should be greater than 0"),
    ("monitoring: {alerts: [{name: slow, latencyP99: {above: 0.1, window: 0s}}]}",
     "monitoring.alerts[0].latencyP99.window: Input should be greater than 0"),
    ("events: [{at: 1s, until: 2s, podSlowdown: {pod: nginx-0, factor: .inf}}]",
     "events[0].podSlowdown.factor: Input should be a finite number"),
])
def test_windows_and_factors_a_run_cannot_use_are_placed_problems(
        tmp_path: Path, section: str, words: str) -> None:
    """An SLO window of 0 s divided the error budget by zero after the run; an alert
    window of 0 s and an infinite slowdown ran without a word."""
    path = write(tmp_path)
    path.write_text(path.read_text("utf-8") + section + "\n", "utf-8")
    report = problems(path)
    assert words in report and "scenario.yaml:" in report, report
