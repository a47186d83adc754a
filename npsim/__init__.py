"""npsim: a discrete-event simulator of Kubernetes NodePort traffic.

>>> import npsim
>>> scenario = npsim.load_scenario("scenarios/quickstart.yaml")
>>> scenario.run.duration = 30          # seconds; files write units ("30s")
>>> result = npsim.run(scenario)
>>> result.requests.groupby("pod", observed=True)["latency"].mean()
"""

__version__ = "0.1.0"

from npsim.api import Result, run  # noqa: E402
from npsim.scenario.loader import Scenario, load_scenario, scenario_from_dict  # noqa: E402
from npsim.scenario.problems import ScenarioError  # noqa: E402
from npsim.sweep.planner import plan_search as plan  # noqa: E402
from npsim.sweep.runner import SweepResult  # noqa: E402
from npsim.sweep.runner import sweep as run_sweep  # noqa: E402

__all__ = ["Result", "Scenario", "ScenarioError", "load_scenario", "run", "scenario_from_dict",
           "__version__", "SweepResult", "plan", "run_sweep"]
