"""npsim: a discrete-event simulator of Kubernetes NodePort traffic.

>>> import npsim
>>> scenario = npsim.load_scenario("scenarios/quickstart.yaml")
>>> scenario.run.duration = 30          # seconds; files write units ("30s")
>>> result = npsim.run(scenario)
>>> result.requests.groupby("pod", observed=True)["latency"].mean()
"""

__version__ = "0.1.0"

from npsim.api import Result, load_result, run  # noqa: E402
from npsim.scenario.bundled import bundled, bundled_names, bundled_path  # noqa: E402
from npsim.scenario.loader import Scenario, load_scenario, scenario_from_dict  # noqa: E402
from npsim.scenario.problems import ScenarioError  # noqa: E402

__all__ = ["Result", "Scenario", "ScenarioError", "load_scenario", "run", "scenario_from_dict",
           "__version__"]
__all__ += ["bundled", "bundled_names", "bundled_path", "load_result"]


def __getattr__(name: str) -> object:
    """``npsim.plots`` and ``npsim.report`` load on first use (matplotlib is not needed
    to run a simulation)."""
    if name in ("plots", "report"):
        import importlib

        return importlib.import_module(f"npsim.{name}")
    raise AttributeError(f"module 'npsim' has no attribute {name!r}")
