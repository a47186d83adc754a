"""``npsim explain``: what kube-proxy programs on a node, one connection's walk through
it, and (``--at``) what the run's parts say at that time.

* :mod:`npsim.explain.walk`: each mode's rule text, the walk of one new connection, the
  node's firewalls;
* :mod:`npsim.explain.state`: nodes, kube-proxies and pods at time t, read off the run's
  parts (node network, control plane, pod registry, event log, fault plan);
* :mod:`npsim.explain.connections`: the split of N new connections over the endpoints,
  beside the rules' own probabilities.
"""

from npsim.explain.walk import firewall_rules, render, trace

__all__ = ["firewall_rules", "render", "trace"]
