"""kube-proxy modes. Each mode is a :class:`~npsim.proxy.base.KubeProxy` subclass."""

from npsim.proxy.base import EndpointTable, KubeProxy
from npsim.proxy.iptables import IptablesProxy

MODES: dict[str, type[KubeProxy]] = {"iptables": IptablesProxy}

__all__ = ["MODES", "EndpointTable", "KubeProxy", "IptablesProxy"]
