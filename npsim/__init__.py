"""npsim: a discrete-event simulator of Kubernetes NodePort traffic.

>>> import npsim
>>> scenario = npsim.load_scenario("scenarios/quickstart.yaml")
>>> scenario.run.duration = 30          # seconds; files write units ("30s")
>>> result = npsim.run(scenario)
>>> result.requests.groupby("pod", observed=True)["latency"].mean()
"""

from typing import TYPE_CHECKING, Any

from npsim.version import __version__

if TYPE_CHECKING:
    from npsim.api import run
    from npsim.results.result import Result, load_result
    from npsim.scenario.bundled import bundled, bundled_names, bundled_path
    from npsim.scenario.loader import load_scenario, scenario_from_dict
    from npsim.scenario.problems import ScenarioError
    from npsim.scenario.scenario import Scenario
    from npsim.sweep.down import run_each_down
    from npsim.sweep.planner import plan_search as plan
    from npsim.sweep.runner import SweepResult
    from npsim.sweep.runner import sweep as run_sweep

# imported on first use, so ``npsim --help`` and ``--version`` start fast
_LAZY: dict[str, str | tuple[str, str]] = {
    "run": "npsim.api",
    "Result": "npsim.results.result", "load_result": "npsim.results.result",
    "Scenario": "npsim.scenario.scenario", "load_scenario": "npsim.scenario.loader",
    "scenario_from_dict": "npsim.scenario.loader",
    "ScenarioError": "npsim.scenario.problems",
    "bundled": "npsim.scenario.bundled", "bundled_names": "npsim.scenario.bundled",
    "bundled_path": "npsim.scenario.bundled",
    "plan": ("npsim.sweep.planner", "plan_search"), "SweepResult": "npsim.sweep.runner",
    "run_sweep": ("npsim.sweep.runner", "sweep"), "run_each_down": "npsim.sweep.down"}
# modules loaded on first use: ``npsim.plots.latency_cdf(...)`` after ``import npsim``
_LAZY_MODULES = ("plots", "report")


def __getattr__(name: str) -> Any:
    if name in _LAZY_MODULES:
        import importlib

        return importlib.import_module(f"npsim.{name}")
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'npsim' has no attribute {name!r}")
    import importlib

    module, attr = module if isinstance(module, tuple) else (module, name)
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


__all__ = ["Result", "Scenario", "ScenarioError", "load_scenario", "run", "scenario_from_dict",
           "__version__", "SweepResult", "plan", "run_sweep"]
__all__ += ["bundled", "bundled_names", "bundled_path", "load_result", "run_each_down"]
