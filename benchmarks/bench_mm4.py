"""npsim on M/M/4 beside Ciw, a plain SimPy model and a raw heap loop, and what a long
horizon costs (issue 23).

Run: make bench-env && benchmarks/.venv/bin/python benchmarks/bench_mm4.py [--rounds 5]

**M/M/4.** ``benchmarks/mm4.yaml``: one pod with 4 workers, Poisson arrivals at 3.2/s,
exponential service with a mean of 1 s (utilisation 0.8), no network and no kube-proxy
cost, 220,000 customers (68,750 simulated seconds). The same queue in Ciw 3.2.7
(``Simulation.simulate_until_max_customers`` and its records), in plain SimPy (a process
per customer, ``simpy.Resource(capacity=4)``, ``random.expovariate``) and as a raw
``heapq`` loop (the floor of a Python event loop). npsim is timed twice:
``npsim.run`` (the whole run: frames, time series, summary) and ``Simulation.run`` (the
simulation alone). Each round runs every model once, in this process, in CPU time, so
load from other processes falls on all of them; the report gives the median of the
per-round ratios. The mean sojourn time of each checks that they simulate the same
queue (M/M/4 theory: 1.7455 s).

**Long horizon.** The same M/M/4 with 50,000 customers, once over an hour and once over
a day (arrival and service rates scaled, so the queue is the same in scaled time):
the day must cost no more than the hour (``npsim.run``, median of per-round ratios).

Ciw is not a dependency of npsim: it lives in the benchmarks' own environment
(``benchmarks/requirements.txt``, ``make bench-env``). Writes benchmarks/MM4.md
(``--output`` to change; ``--quick``: 2 rounds of 44,000 customers, no file).
"""

from __future__ import annotations

import argparse
import gc
import heapq
import os
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import simpy
import yaml
from benchcommon import ROOT, header_lines, npsim_source, publish

import npsim
from npsim.sim.engine import Simulation

OUTPUT = ROOT / "benchmarks" / "MM4.md"
SCENARIO = ROOT / "benchmarks" / "mm4.yaml"
LAMBDA, MU, SERVERS = 3.2, 1.0, 4
THEORY_W = 1.7455  # M/M/4 at rho 0.8, mean 1 s service: Erlang C
LONG_CUSTOMERS = 50_000
SEED = 1


def mm4_scenario(customers: int, scale: float = 1.0) -> npsim.Scenario:
    """``benchmarks/mm4.yaml`` with ``customers`` requests, rates times ``scale``."""
    data = yaml.safe_load(SCENARIO.read_text())
    data["run"]["requests"] = customers
    data["clients"][0]["arrival"]["rate"] = f"{LAMBDA * scale!r}/s"
    data["workloads"]["queue"]["serviceTime"]["mean"] = f"{1.0 / (MU * scale)!r}s"
    return npsim.scenario_from_dict(data, base_dir=SCENARIO.parent, source=str(SCENARIO))


def npsim_api(scenario: npsim.Scenario) -> float:
    result = npsim.run(scenario)
    return float(result.requests["latency"].mean())


def npsim_sim(scenario: npsim.Scenario) -> float:
    out = Simulation(scenario).run()
    cols = out.log.columns()
    return float((cols["t_end"] - cols["t_start"]).mean())


def ciw_mm4(customers: int) -> float:
    import ciw  # the benchmarks' environment only (make bench-env)

    network = ciw.create_network(arrival_distributions=[ciw.dists.Exponential(rate=LAMBDA)],
                                 service_distributions=[ciw.dists.Exponential(rate=MU)],
                                 number_of_servers=[SERVERS])
    ciw.seed(SEED)
    q = ciw.Simulation(network)
    q.simulate_until_max_customers(customers, method="Finish")
    records = q.get_all_records()
    return statistics.fmean(r.exit_date - r.arrival_date for r in records)


def simpy_mm4(customers: int) -> float:
    """What a SimPy user writes first: a process per customer, a Resource of 4."""
    rng = random.Random(SEED)
    env = simpy.Environment()
    servers = simpy.Resource(env, capacity=SERVERS)
    sojourn: list[float] = []

    def customer():  # noqa: ANN202 - a SimPy process
        arrived = env.now
        with servers.request() as req:
            yield req
            yield env.timeout(rng.expovariate(MU))
        sojourn.append(env.now - arrived)

    def source():  # noqa: ANN202
        for _ in range(customers):
            yield env.timeout(rng.expovariate(LAMBDA))
            env.process(customer())

    env.process(source())
    env.run()
    return statistics.fmean(sojourn)


def heap_mm4(customers: int) -> float:
    """The floor: arrivals and departures on a heapq, a FIFO of waiting arrival times."""
    rng = random.Random(SEED)
    expo = rng.expovariate
    heap: list[tuple[float, int, float]] = [(expo(LAMBDA), 0, 0.0)]  # (time, kind, arrival)
    waiting: list[float] = []
    head = busy = arrived = 0
    total = 0.0
    done = 0
    while heap:
        now, kind, born = heapq.heappop(heap)
        if kind == 0:  # an arrival
            arrived += 1
            if arrived < customers:
                heapq.heappush(heap, (now + expo(LAMBDA), 0, 0.0))
            if busy < SERVERS:
                busy += 1
                heapq.heappush(heap, (now + expo(MU), 1, now))
            else:
                waiting.append(now)
        else:  # a departure
            total += now - born
            done += 1
            if head < len(waiting):
                heapq.heappush(heap, (now + expo(MU), 1, waiting[head]))
                head += 1
            else:
                busy -= 1
    return total / done


def _cpu(fn: Callable[[], float]) -> tuple[float, float]:
    """CPU seconds of one call (after a collection, so no model pays another's garbage)
    and its mean sojourn."""
    gc.collect()
    start = time.process_time()
    value = fn()
    return time.process_time() - start, value


def _rounds(models: dict[str, Callable[[], float]], rounds: int
            ) -> dict[str, list[tuple[float, float]]]:
    out: dict[str, list[tuple[float, float]]] = {name: [] for name in models}
    for _ in range(rounds):
        for name, fn in models.items():
            out[name].append(_cpu(fn))
    return out


def _ratio(times: dict[str, list[tuple[float, float]]], num: str, den: str) -> float:
    """Median over rounds of den's CPU / num's CPU: how many times faster ``num`` is."""
    return statistics.median(d[0] / n[0] for n, d in zip(times[num], times[den], strict=True))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--customers", type=int, default=220_000)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--output", type=Path, default=None)
    args = ap.parse_args()
    rounds, customers = (2, 44_000) if args.quick else (args.rounds, args.customers)
    long_customers = LONG_CUSTOMERS // 5 if args.quick else LONG_CUSTOMERS
    mm4 = mm4_scenario(customers)
    # the scenario scaled so that long_customers span an hour (3400 s on average: 1 s
    # buckets, not the 2 s of a run that ends after 3600 s), and a day
    hour = mm4_scenario(long_customers, long_customers / (LAMBDA * 3400))
    day = mm4_scenario(long_customers, long_customers / (LAMBDA * 86_400))
    npsim_api(mm4_scenario(1000))  # imports and first-call costs outside the rounds
    load_start = os.getloadavg()[0]
    times = _rounds({
        "npsim.run": lambda: npsim_api(mm4),
        "Simulation.run": lambda: npsim_sim(mm4),
        "Ciw": lambda: ciw_mm4(customers),
        "plain SimPy": lambda: simpy_mm4(customers),
        "raw heapq loop": lambda: heap_mm4(customers),
    }, rounds)
    # a third of a second each: three times the rounds, for a steadier median
    long = _rounds({"1 h": lambda: npsim_api(hour), "24 h": lambda: npsim_api(day)},
                   3 * rounds)
    load_end = os.getloadavg()[0]
    import ciw

    lines = [
        "# npsim on M/M/4 beside Ciw and SimPy; long horizons", "",
        *header_lines(args.quick, npsim_source(), f"ciw {ciw.__version__}"),
        f"- load average (1 min) at start/end: {load_start:.2f} / {load_end:.2f}"
        + (" (other processes shared the 2 CPUs; the ratios come from the same rounds)"
           if max(load_start, load_end) > 1.5 else ""),
        f"- {rounds} interleaved rounds, CPU time of this process; ratios are medians of "
        "the per-round ratios", "",
        f"## M/M/4, {customers:,} customers (rho 0.8, {customers / LAMBDA:,.0f} simulated s)",
        "",
        "| model | CPU s (median) | us per customer | mean sojourn s (theory "
        f"{THEORY_W}) | npsim.run is x faster | Simulation.run is x faster |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, rows in times.items():
        cpu = statistics.median(r[0] for r in rows)
        api = "" if name == "npsim.run" else f"{_ratio(times, 'npsim.run', name):.2f}"
        sim = ("" if name == "Simulation.run"
               else f"{_ratio(times, 'Simulation.run', name):.2f}")
        lines.append(f"| {name} | {cpu:.2f} | {cpu / customers * 1e6:.2f} | "
                     f"{statistics.median(r[1] for r in rows):.4f} | {api} | {sim} |")
    hour_cpu = statistics.median(r[0] for r in long["1 h"])
    day_cpu = statistics.median(r[0] for r in long["24 h"])
    lines += [
        "", f"## Long horizon: npsim.run of {long_customers:,} M/M/4 customers over an hour "
        f"and over a day ({3 * rounds} interleaved rounds)", "",
        "| horizon | CPU s (median) | time-series rows |", "|---|---:|---:|",
        f"| 1 h | {hour_cpu:.2f} | {len(npsim.run(hour).timeseries):,} |",
        f"| 24 h | {day_cpu:.2f} | {len(npsim.run(day).timeseries):,} |",
        "",
        f"- a day costs {_ratio(long, '1 h', '24 h'):.2f}x an hour of the same customers "
        "(median of per-round ratios; target <= 1)",
        f"- theory check: every model's mean sojourn within 5% of {THEORY_W} s (one run "
        "each, a few % apart at rho 0.8): "
        + ("yes" if all(abs(statistics.median(r[1] for r in rows) - THEORY_W) < 0.05 * THEORY_W
                        for rows in times.values()) else "NO")
        + (" (quick runs are short: not expected)" if args.quick else ""),
    ]
    publish("\n".join(lines) + "\n", args.output or (None if args.quick else OUTPUT))


if __name__ == "__main__":
    main()
