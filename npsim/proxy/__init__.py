"""kube-proxy modes. Each mode is a :class:`~npsim.proxy.base.KubeProxy` subclass."""

from npsim.proxy.base import EndpointTable, KubeProxy
from npsim.proxy.iptables import IptablesProxy
from npsim.proxy.ipvs import SCHEDULERS, IpvsProxy
from npsim.proxy.nftables import NftablesProxy
from npsim.proxy.userspace import UserspaceProxy

MODES: dict[str, type[KubeProxy]] = {
    "iptables": IptablesProxy,
    "nftables": NftablesProxy,
    "ipvs": IpvsProxy,
    "userspace": UserspaceProxy,
}

__all__ = ["MODES", "SCHEDULERS", "EndpointTable", "KubeProxy", "IptablesProxy",
           "NftablesProxy", "IpvsProxy", "UserspaceProxy"]
