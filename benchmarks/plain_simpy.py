"""The plain-SimPy model of the quick-start traffic that npsim is compared with.

What a SimPy user writes first: one process per request, one ``simpy.Resource`` per pod,
the outbound half of the network delay as a ``timeout``, latencies into a list. It
imports only SimPy and the standard library, so that run as a script
(``python benchmarks/plain_simpy.py PARAMS_JSON REQUESTS``, as ``bench_whole.py`` does)
its process pays for nothing npsim loads.
"""

from __future__ import annotations

import json
import random
import statistics
import sys
from dataclasses import asdict, dataclass

import simpy

SEED = 1


@dataclass(frozen=True)
class PlainParams:
    """The quick-start traffic as numbers, read off the npsim scenario so both agree."""

    rate: float  # arrivals per second
    n_nodes: int
    pod_nodes: tuple[int, ...]  # node index of each pod
    workers: int
    service_mean: float
    rtt_mu: float  # lognormal parameters of the client round trip
    rtt_sigma: float
    hops: tuple[tuple[tuple[float, float] | None, ...], ...]  # [entry][pod node] -> (mu, sigma)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> PlainParams:
        d = json.loads(text)
        hops = tuple(tuple(None if h is None else (h[0], h[1]) for h in row)
                     for row in d.pop("hops"))
        return cls(**{**d, "pod_nodes": tuple(d["pod_nodes"]), "hops": hops})


def plain_model(p: PlainParams, requests: int, seed: int = SEED
                ) -> tuple[simpy.Environment, list[float]]:
    """A process per request, a Resource per pod, latencies into a list."""
    env = simpy.Environment()
    rng = random.Random(seed)
    expovariate, lognormvariate, choice = rng.expovariate, rng.lognormvariate, rng.choice
    pods = [(simpy.Resource(env, capacity=p.workers), node) for node in p.pod_nodes]
    service_rate = 1.0 / p.service_mean
    latencies: list[float] = []

    def request(entry: int, pod: simpy.Resource, pod_node: int):  # noqa: ANN202
        start = env.now
        network = lognormvariate(p.rtt_mu, p.rtt_sigma)
        hop = p.hops[entry][pod_node]
        if hop is not None:  # the receiving node forwards to another node
            network += lognormvariate(*hop)
        yield env.timeout(network * 0.5)  # there; the way back is only added to the end
        with pod.request() as req:
            yield req
            yield env.timeout(expovariate(service_rate))
        latencies.append(env.now - start + network * 0.5)

    def source():  # noqa: ANN202
        for _ in range(requests):
            yield env.timeout(expovariate(p.rate))
            pod, node = choice(pods)
            env.process(request(rng.randrange(p.n_nodes), pod, node))

    env.process(source())
    env.run()
    return env, latencies


if __name__ == "__main__":  # a whole process: the model, its imports, a mean latency
    _, lat = plain_model(PlainParams.from_json(sys.argv[1]), int(sys.argv[2]))
    print(json.dumps({"requests": len(lat), "mean_latency": statistics.fmean(lat)}))
