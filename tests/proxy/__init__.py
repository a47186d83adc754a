"""Tests of the kube-proxy modes (npsim.proxy) and the control plane's per-node syncs.

A package (``__init__.py``) so that these module names (``proxy.test_cost``, ...) cannot
clash with same-named test modules elsewhere under tests/.
"""
