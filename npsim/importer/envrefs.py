"""Service addresses in a container's environment: where a pod says whom it calls.

Applications of many Services are usually wired through environment variables that name
the callee by its cluster DNS name (``PRODUCT_CATALOG_SERVICE_ADDR=productcatalogservice:3550``,
``CART_URL=http://cart.shop.svc.cluster.local:7070/api``). Kubernetes DNS answers
``<service>``, ``<service>.<namespace>`` and ``<service>.<namespace>.svc[.<cluster
domain>]`` with the Service's ClusterIP (the pod's resolv.conf search path adds the
rest; see the Kubernetes documentation "DNS for Services and Pods"), so each form names a
Service and, maybe, its port. This module only reads the text; which Service and port
it is, if any, is decided against the dump in :mod:`npsim.importer.calls`.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

_LABEL = r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?"
_HOST = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?")
_PORT_NAME = re.compile(r"[a-z](?:[-a-z0-9]{0,13}[a-z0-9])?")  # an IANA_SVC_NAME
_URL = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*)://(?:[^@/?#]*@)?(?P<rest>[^/?#]*)")
# variable names that say their value is an address (a bare name is a Service only then)
_ADDRESS_VAR = re.compile(r"(?:^|_)(?:ADDR|ADDRESS|HOST|HOSTNAME|URL|URI|ENDPOINT|"
                          r"ENDPOINTS|SERVER)$")
_SERVICE_VAR = re.compile(r"_SERVICE")
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_WORDS = {"true", "false", "yes", "no", "on", "off", "none", "null", "nil", "disabled",
          "enabled"}
_TOKEN_SPLIT = re.compile(r"[\s,;]+")


@dataclass(frozen=True)
class EnvRef:
    """One address read from an environment value: a name, maybe a namespace, a port
    (a number, a name, or None when the text gives none) and how it was written."""

    name: str
    namespace: str | None
    port: int | str | None
    scheme: str | None  # a URL's scheme (its default port applies when none is given)
    qualified: bool  # written with ``.svc`` (a cluster DNS name, whatever resolves it)
    text: str  # the token as written
    ip: bool = False  # ``name`` is an IPv4 address (a Service's clusterIP, maybe)


def address_var(var: str) -> bool:
    """Whether a variable's name says it holds an address (``*_ADDR``, ``*_HOST``,
    ``*_URL``, ``*_ENDPOINT``, ``*_SERVICE*``): only then is a bare name a Service."""
    upper = var.upper()
    return bool(_ADDRESS_VAR.search(upper) or _SERVICE_VAR.search(upper))


def strong_address_var(var: str) -> bool:
    """An address variable that is no name of the pod's own (``OTEL_SERVICE_NAME`` holds
    the pod's own Service name, not a callee's): a bare name in it that is no Service of
    the dump is reported as missing."""
    return bool(_ADDRESS_VAR.search(var.upper()))


def env_refs(var: str, value: str) -> list[EnvRef]:
    """The addresses a variable holds: a URL, ``host:port``, or (for an address variable,
    or when the host is written with its namespace) a bare host. A list such as
    ``a:1,b:2`` gives each. ``localhost`` is never a Service; an IPv4 address is one
    only if it is a Service's clusterIP (``ip`` set: the caller checks)."""
    out = []
    bare_ok = address_var(var)
    for token in _TOKEN_SPLIT.split(value.strip()):
        ref = _token(token, bare_ok)
        if ref is not None:
            out.append(ref)
    return out


def _token(token: str, bare_ok: bool) -> EnvRef | None:
    scheme = None
    rest = token
    url = _URL.match(token.lower())
    if url is not None:
        scheme, rest = url["scheme"], url["rest"]
        if not rest and scheme == "dns":  # gRPC's dns:///host:port
            rest = re.split(r"[/?#]", token[len("dns:///"):])[0] if token.lower().startswith(
                "dns:///") else ""
    host, sep, port_text = rest.rpartition(":") if ":" in rest else (rest, "", "")
    host = host.lower()
    port: int | str | None = None
    if sep:
        if port_text.isdigit() and 0 < int(port_text) < 65536:
            port = int(port_text)
        elif _PORT_NAME.fullmatch(port_text):
            port = port_text
        else:
            return None
    if _is_ip(host):
        if "." not in host or (scheme is None and port is None and not bare_ok):
            return None  # IPv6 (npsim simulates IPv4 Services), or a bare number
        return EnvRef(host, None, port, scheme, False, token, ip=True)
    if not _HOST.fullmatch(host) or host in ("localhost", "localhost."):
        return None
    labels = host.rstrip(".").split(".")
    if not any(c.isalpha() for c in labels[0]) or labels[0] in _WORDS:
        return None
    qualified = len(labels) >= 3 and labels[2] == "svc"
    if len(labels) > 2 and not qualified:
        return None  # an outside name (api.example.com): no Service
    namespace = labels[1] if len(labels) > 1 else None
    if scheme is None and port is None and len(labels) == 1 and not bare_ok:
        return None
    return EnvRef(labels[0], namespace, port, scheme, qualified, token)


def _is_ip(host: str) -> bool:
    if not all(c in "0123456789abcdef.:" for c in host):
        return False  # the common case, without a parse
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
