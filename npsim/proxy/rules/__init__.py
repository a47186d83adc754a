"""What each kube-proxy mode programs on a node, as kube-proxy itself writes it, and the
steps one new connection takes through it: the text ``npsim explain`` prints.

One module per mode (iptables, nftables, ipvs, userspace), each exposing ``RULES``, a
:class:`~npsim.proxy.base.ModeRules`, which the mode's
:class:`~npsim.proxy.base.KubeProxy` class carries as ``rules``; ``common`` holds what
they share. The text
is rendered from the very :class:`~npsim.proxy.base.EndpointTable` objects the simulator
decides with, so the two cannot disagree. Research notes: docs/kube-proxy-modes.md.
"""
