"""Room in each node's pod CIDR for the pods faults make: replacements of evicted pods
and the new pods of a rolling update take new addresses too, so ``validate`` refuses a
scenario whose run would run out of them, naming the event's line, and a scenario it
accepts runs to the end."""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner
from scenario_files import SERVICE_TIME, line_of, scenario_text

from npsim.cli import main
from npsim.scenario.loader import load_scenario
from npsim.scenario.problems import ScenarioError
from npsim.sim.engine import Simulation

EVICTION = "{at: 1s, nodeCrash: {node: n2}}"  # never back: its 5 pods move to n1
ROLLOUT = "{at: 1s, rollout: {deployment: web}}"  # 3 surge pods (25% of 10, rounded up)


CONTROL_PLANE = "nodeMonitorGracePeriod: 4s, tolerationSeconds: 2s"
WEB = f"{SERVICE_TIME}\nstartup: 0.5s"


def room_text(events: Sequence[str], prefix: int, names: Sequence[str] = ("n1", "n2"),
              replicas: int = 10, control_plane: str = CONTROL_PLANE, duration: str = "20s",
              workloads: Mapping[str, str] | None = None) -> str:
    """Nodes ``nK`` with the pod CIDR 10.1.K.0/``prefix`` (a /29 holds 5 pods, a /28 13),
    ``replicas`` pods of web at 20 requests/s, and the fault ``events``."""
    return scenario_text(
        name="room", nodes=[f"{{name: {n}, zone: a, podCIDR: 10.1.{n[1:]}.0/{prefix}}}"
                            for n in names],
        cluster=f"controlPlane: {{{control_plane}}}", replicas=replicas,
        workloads={"web": WEB} if workloads is None else workloads,
        clients=["{name: users, service: web, arrival: {rate: 20/s}}"],
        run=f"{{duration: {duration}}}",
        tail="events:\n" + "".join(f"  - {e}\n" for e in events) if events else "")


def write(tmp_path: Path, event: str, prefix: int) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(room_text([event], prefix))
    return path


def simulate(path: Path) -> None:
    """The simulation itself, without the checks before it."""
    Simulation(load_scenario(path)).run()


@pytest.mark.parametrize(("event", "kind"), [(EVICTION, "nodeCrash"), (ROLLOUT, "rollout")])
def test_pods_a_fault_makes_must_fit_the_pod_cidr(tmp_path: Path, event: str,
                                                  kind: str) -> None:
    # a /29 holds 5 pods: 5 + 5 fill both nodes before the fault
    path = write(tmp_path, event, prefix=29)
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    line = line_of(room_text([event], 29), event)
    assert re.search(rf"scenario\.yaml:{line}:\d+: events\[0\]\.{kind}: node 'n1': pod "
                     r"CIDR 10\.1\.1\.0/29 has room for 5 pods but up to \d+ could be placed "
                     r"there over the run \(rollouts and replacements of evicted pods",
                     result.output), result.output
    assert "Traceback" not in result.output
    with pytest.raises(ScenarioError, match="has no address left"):  # what run would meet
        simulate(path)


def test_room_enough_for_the_replacements_validates_and_runs(tmp_path: Path) -> None:
    path = write(tmp_path, EVICTION, prefix=28)  # 13 pods each: n1 takes all 10
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    simulate(path)


def test_hand_placed_addresses_leave_less_room(tmp_path: Path) -> None:
    """New pods skip the addresses of hand-placed ones: three of them in n1's /29 leave
    room for two of the Deployment's five pods there."""
    path = tmp_path / "scenario.yaml"
    path.write_text(room_text([], 29, workloads={
        "cache": f"{SERVICE_TIME}\npods: [{{node: n1, ip: 10.1.1.2}}, {{node: n1, ip: 10.1.1.3}}, "
                 "{node: n1, ip: 10.1.1.4}]", "web": WEB}))
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    assert "node 'n1': pod CIDR 10.1.1.0/29 has room for 2 pods but 5 would be placed" \
        in result.output
    with pytest.raises(ScenarioError, match="did not fit"):
        simulate(path)


def test_an_evicted_bare_pod_is_not_replaced(tmp_path: Path) -> None:
    """A hand-placed pod without a Deployment has no ReplicaSet: evicted, it is gone."""
    from .test_explicit_pods import SCENARIO as EXPLICIT

    text = EXPLICIT.replace("run: {duration: 2s}", "run: {duration: 12s}\nevents:\n"
                            "  - {at: 1s, nodeCrash: {node: n2}}\n").replace(
        "cluster:\n", "cluster:\n  controlPlane: {nodeMonitorGracePeriod: 4s, "
        "tolerationSeconds: 2s}\n")
    path = tmp_path / "scenario.yaml"
    path.write_text(text)
    assert CliRunner().invoke(main, ["validate", str(path)]).exit_code == 0
    sim = Simulation(load_scenario(path))
    sim.run()
    names = [p.name for p in sim.cluster.pods]
    assert names.count("db-b") == 1 and not any(n.startswith("db-backends") for n in names)


def test_every_variant_of_a_sweep_must_fit(tmp_path: Path) -> None:
    """A sweep runs each variant as a scenario: validate checks each one's pod room."""
    path = write(tmp_path, "{at: 1s, scale: {deployment: web, replicas: 4}}", prefix=28)
    path.write_text(path.read_text() + "variants:\n  grid:\n"
                    "    deployments.web.replicas: [4, 27]\n")
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    assert "variants: replicas=27: workloads.web: node 'n1': pod CIDR 10.1.1.0/28 has " \
        "room for 13 pods but 14 would be placed" in result.output
    assert "replicas=4:" not in result.output


def _random_case(rng: random.Random) -> str:
    """Two or three nodes with small pod CIDRs, 1-12 replicas and 1-3 events among
    scale, rollout, node crashes (for good or not) and kubelet stops."""
    nodes = rng.choice([2, 3])
    prefix = rng.choice([28, 29, 29])
    names = [f"n{i}" for i in range(nodes)]
    events = []
    for _ in range(rng.randint(1, 3)):
        at = round(rng.uniform(0.5, 10), 2)
        back = round(at + rng.uniform(1, 15), 2)
        node = rng.choice(names)
        events.append(rng.choice([
            f"{{at: {at}s, scale: {{deployment: web, replicas: {rng.randint(0, 14)}}}}}",
            f"{{at: {at}s, rollout: {{deployment: web}}}}",
            f"{{at: {at}s, nodeCrash: {{node: {node}}}}}",
            f"{{at: {at}s, until: {back}s, nodeCrash: {{node: {node}}}}}",
            f"{{at: {at}s, until: {back}s, kubeletStop: {{node: {node}}}}}"]))
    return room_text(events, prefix, names, replicas=rng.randint(1, 12), duration="25s",
                     control_plane="nodeLeaseRenewInterval: 2s, nodeMonitorPeriod: 1s, "
                     + CONTROL_PLANE)


def test_what_validate_accepts_never_runs_out_of_addresses(tmp_path: Path) -> None:
    """Random fault timelines: every scenario validate accepts simulates to the end."""
    rng = random.Random(11)
    accepted = 0
    for case in range(40):
        path = tmp_path / f"case-{case}.yaml"
        path.write_text(_random_case(rng))
        if CliRunner().invoke(main, ["validate", str(path)]).exit_code != 0:
            continue
        accepted += 1
        simulate(path)  # raises ScenarioError if a pod found no address
    assert accepted >= 10  # the check is not refusing everything
