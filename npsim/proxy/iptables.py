"""iptables mode: the ``-m statistic --mode random`` cascade of pkg/proxy/iptables.

For n endpoints in kube-proxy's order, rule i (1-based, i < n) matches with probability
1/(n-i+1) of the packets that reach it and rule n is unconditional
(proxier.go ``writeServiceToEndpointRules``, ``computeProbability``;
pkg/proxy/iptables). The product telescopes to exactly 1/n per endpoint, so the
simulator draws the endpoint index uniformly: the same distribution in O(1) instead of
walking n rules. :func:`~npsim.proxy.rules.iptables.cascade_probabilities` gives the rules as
kube-proxy writes them
(``npsim explain`` prints them), and a test checks the walk and the draw agree.
"""

from __future__ import annotations

from npsim.dists import batched
from npsim.proxy.base import EndpointTable, KubeProxy
from npsim.proxy.rules import iptables as text
from npsim.scenario.cluster_spec import KubeProxySpec


def iptables_nat_rules(services: int, endpoints_each: float) -> float:
    """NAT rules kube-proxy writes: 5 + S x (2 + 3E) (TestNumberIptablesRules, 1.26-era)."""
    return 5 + services * (2 + 3 * endpoints_each)


class UniformTable(EndpointTable):
    """Uniform choice per new connection (iptables cascade, nftables numgen)."""

    __slots__ = ("uniform",)

    def pick(self, client_ip: int, src_port: int, now: float) -> int:
        return int(self.uniform() * self.n)

    def retire(self) -> None:
        self.uniform = None


class IptablesProxy(KubeProxy):
    mode = "iptables"
    rules = text.RULES
    forward_accepts_marked = True
    affinity_cap = 100  # xt_recent ip_list_tot

    def __init__(self, node, rng) -> None:  # noqa: ANN001
        super().__init__(node, rng)
        self.uniform = batched(rng.random)

    def retire(self) -> None:
        super().retire()
        self.uniform = None

    def loopback_node_ports(self) -> bool:
        """127.0.0.1 answers only with ``--iptables-localhost-nodeports`` (route_localnet);
        without it KUBE-SERVICES' last rule skips 127.0.0.0/8, and a listed loopback
        address gets no rule (proxier.go). NewProxier turns the flag off when
        --nodeport-addresses holds no loopback address (``ContainsIPv4Loopback``)."""
        return (self.settings.localhost_node_ports
                and self.nodeport_addresses.contains_loopback)

    def sync_seconds(self, spec: KubeProxySpec, services: int, endpoints_each: float) -> float:
        """``syncBase`` plus ``syncPerRule`` for each NAT rule iptables-restore writes."""
        return spec.sync_base + spec.sync_per_rule * iptables_nat_rules(services,
                                                                         endpoints_each)

    def make_table(self, service_port, endpoints, previous, now):  # noqa: ANN001, ANN201
        table = UniformTable(service_port, endpoints, self.columns(endpoints))
        table.uniform = self.uniform
        return table
