"""A Service's addresses outside the cluster: ``spec.externalIPs``, the LoadBalancer
ingress IPs of ``status.loadBalancer.ingress`` and ``spec.loadBalancerSourceRanges``.

Checked as the API server checks them (``pkg/apis/core/validation/validation.go``:
``ValidateService`` on externalIPs with ``ValidateNonSpecialIP``, the source ranges with
``IsValidCIDR`` after trimming spaces, a historical allowance) and read as kube-proxy reads
them (``pkg/proxy/serviceport.go`` ``newBaseServiceInfo``): the ingress IPs count only on a
LoadBalancer Service and only with ``ipMode: VIP`` (the default; ``Proxy`` means the
balancer does not deliver packets to the VIP, KEP-1860), and the source ranges only when
the Service has ingress IPs to guard.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from npsim.scenario.problems import Problems
from npsim.scenario.yamlio import MarkedDict

IP_EXAMPLE = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
CIDR_EXAMPLE = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"


@dataclass(frozen=True)
class ExternalAddresses:
    external_ips: tuple[str, ...] = ()
    load_balancer_ips: tuple[str, ...] = ()
    source_ranges: tuple[str, ...] = ()


def _special(ip: ipaddress.IPv4Address) -> str | None:
    """ValidateNonSpecialIP's refusals, in its words."""
    if ip.is_unspecified:
        return "may not be unspecified (0.0.0.0)"
    if ip.is_loopback:
        return "may not be in the loopback range (127.0.0.0/8, ::1/128)"
    if ip.is_link_local:
        return "may not be in the link-local range (169.254.0.0/16, fe80::/10)"
    if ip.is_multicast:
        return "may not be in the multicast range (224.0.0.0/4, ff00::/8)"
    return None


def parse_external_addresses(doc: MarkedDict, spec: dict, svc_type: str, p: Problems,
                             pre: str) -> ExternalAddresses:
    """The three lists, each address checked; problems are placed at the entry."""
    external: list[str] = []
    raw = spec.get("externalIPs")
    if raw is not None and not isinstance(raw, list):
        p.at(doc, ["spec", "externalIPs"], "expected a list of IP addresses", pre)
        raw = []
    for i, value in enumerate(raw or []):
        try:
            ip = ipaddress.IPv4Address(str(value).strip() if isinstance(value, str) else "")
        except ValueError:
            p.at(doc, ["spec", "externalIPs", i], f'Invalid value: "{value}": {IP_EXAMPLE}',
                 pre)
            continue
        problem = _special(ip)
        if problem:
            p.at(doc, ["spec", "externalIPs", i], f'Invalid value: "{value}": {problem}', pre)
        else:
            external.append(str(ip))
    ranges: list[str] = []
    raw = spec.get("loadBalancerSourceRanges")
    if raw:
        if svc_type != "LoadBalancer":
            p.at(doc, ["spec", "loadBalancerSourceRanges"],
                 "Forbidden: may only be used when `type` is 'LoadBalancer'", pre)
        if not isinstance(raw, list):
            p.at(doc, ["spec", "loadBalancerSourceRanges"], "expected a list of CIDRs", pre)
            raw = []
        for i, value in enumerate(raw):
            text = value.strip() if isinstance(value, str) else ""
            try:
                ranges.append(str(ipaddress.IPv4Network(text, strict=False)))
            except ValueError:
                p.at(doc, ["spec", "loadBalancerSourceRanges", i],
                     f'Invalid value: "{value}": {CIDR_EXAMPLE}', pre)
    vips: list[str] = []
    ingress = (((doc.get("status") or {}).get("loadBalancer") or {}).get("ingress")
               if isinstance(doc.get("status"), dict) else None)
    if ingress is not None and not isinstance(ingress, list):
        p.at(doc, ["status", "loadBalancer", "ingress"], "expected a list of ingress points",
             pre)
        ingress = []
    for i, entry in enumerate(ingress or []):
        if not isinstance(entry, dict) or entry.get("ip") in (None, ""):
            continue  # a hostname-only ingress: kube-proxy writes nothing for it
        at = ["status", "loadBalancer", "ingress", i]
        try:
            ip = ipaddress.IPv4Address(str(entry["ip"]))
        except ValueError:
            p.at(doc, [*at, "ip"], f'Invalid value: "{entry["ip"]}": {IP_EXAMPLE}', pre)
            continue
        mode = entry.get("ipMode", "VIP")
        if mode not in ("VIP", "Proxy"):
            p.at(doc, [*at, "ipMode"],
                 f'Unsupported value: "{mode}": supported values: "Proxy", "VIP"', pre)
        elif svc_type != "LoadBalancer":
            p.warn(doc, [*at, "ip"], f"kube-proxy ignores ingress IPs of a {svc_type} Service",
                   pre)
        elif mode == "VIP":
            vips.append(str(ip))
    return ExternalAddresses(tuple(external), tuple(vips), tuple(ranges) if vips else ())
