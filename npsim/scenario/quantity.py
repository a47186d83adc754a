"""Kubernetes resource quantities (``500m``, ``1.5``, ``128Mi``, ``1G``, ``2e3``) as numbers.

The suffixes of apimachinery's ``resource.Quantity`` (pkg/api/resource/quantity.go,
``ParseQuantity``): binary ``Ki Mi Gi Ti Pi Ei`` (powers of 1024), decimal ``n u m k M G
T P E`` (powers of 1000) and an exponent (``e3``). CPU is kept in millicores and memory
in bytes, as the scheduler counts them (``MilliCPU``, ``Memory`` in its NodeInfo).
"""

from __future__ import annotations

import math
import re

_QUANTITY = re.compile(r"([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(?:([eE][+-]?[0-9]+)|"
                       r"(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E))?")
_SCALE = {"Ki": 2.0 ** 10, "Mi": 2.0 ** 20, "Gi": 2.0 ** 30, "Ti": 2.0 ** 40, "Pi": 2.0 ** 50,
          "Ei": 2.0 ** 60, "n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9,
          "T": 1e12, "P": 1e15, "E": 1e18}


def quantity(value: object) -> float:
    """The number a quantity stands for; ValueError with the expected shape if it is not
    one (a bool, a negative or an unknown suffix)."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"expected a quantity such as 500m, 2, 128Mi or 1Gi, got {value!r}")
    if isinstance(value, int | float):
        number = float(value)
    else:
        match = _QUANTITY.fullmatch(str(value).strip())
        if match is None:
            raise ValueError(f"expected a quantity such as 500m, 2, 128Mi or 1Gi, "
                             f"got {value!r}")
        number = float(match.group(1))
        if match.group(2):
            number *= 10.0 ** int(match.group(2)[1:])
        elif match.group(3):
            number *= _SCALE[match.group(3)]
    if not math.isfinite(number) or number < 0 or number > 2.0 ** 62:
        raise ValueError(f"{value!r}: a quantity must be a finite number >= 0")
    return number


def cpu_millis(value: object) -> int:
    """Millicores in a CPU quantity (``250m`` -> 250, ``2`` -> 2000), rounded up as the
    API server rounds a CPU request below 1m up to 1m."""
    return math.ceil(quantity(value) * 1000 - 1e-9)


def memory_bytes(value: object) -> int:
    """Bytes in a memory quantity (``128Mi`` -> 134217728), rounded up."""
    return math.ceil(quantity(value) - 1e-9)
