"""One summary value by name, as ``Result.metric`` reads it.

A run writes a count only when it counts something (``failed_<reason>`` for a reason that
occurred, ``retries`` with retries): an absent count of a known kind is 0, not an error,
which is what the planner has always assumed. A name no run writes is an error that
says which names come close.
"""

from __future__ import annotations

import difflib
import math

import pandas as pd

from npsim.outcomes import REASONS
from npsim.results.summary import INCIDENT_METRICS

_REASONS = [name for code, name in sorted(REASONS.items()) if code]
# written only when non-zero: absent means 0
ZERO_WHEN_ABSENT = (*(f"failed_{r}" for r in _REASONS),
                    *(f"failed_share_{r}" for r in _REASONS),
                    "retries", "requests_measured_in_flight", "requests_unanswered")
# written only when they can be measured; absent is an error that says when they are
_WRITTEN_WHEN = {
    **dict.fromkeys(INCIDENT_METRICS, "runs with an event (events:) in the scenario"),
    "error_budget_burn_rate": "runs with an SLO (monitoring.slo)",
    "error_budget_consumed": "runs with an SLO (monitoring.slo)",
}


def summary_value(summary: pd.DataFrame, name: str, scope: str = "all") -> float:
    """``summary``'s value of ``name`` in ``scope``; 0 for a count of something that did
    not happen; ``KeyError`` (with the closest names) for anything else missing."""
    in_scope = summary[summary["scope"] == scope]
    if in_scope.empty:
        kind, _, name = scope.partition(":")  # population:<name> or service:<name>
        scopes = [s.removeprefix(f"{kind}:") for s in summary["scope"].unique()
                  if s.startswith(f"{kind}:")]
        raise KeyError(f"no {kind} {name!r} in this result; {kind}s: "
                       f"{', '.join(scopes) or 'none apart'}")
    row = in_scope.loc[in_scope["metric"] == name, "value"]
    if not row.empty:
        return float(row.iloc[0])
    if name in ZERO_WHEN_ABSENT:
        return 0.0
    if name == "requests_failed_after_retries":  # without retries every failure is final
        return summary_value(summary, "requests_failed", scope)
    if name in _WRITTEN_WHEN:
        raise KeyError(f"{name!r} is not in this result: it is written for "
                       f"{_WRITTEN_WHEN[name]}")
    known = sorted({*summary["metric"].astype(str), *ZERO_WHEN_ABSENT, *_WRITTEN_WHEN,
                    "requests_failed_after_retries"})
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
    raise KeyError(f"no summary metric {name!r}; {hint}"
                   "see result.summary[['scope', 'metric']]")


def headline_values(summary: pd.DataFrame) -> dict[str, float]:
    """The scope-``all`` values a short view shows (NaN where a summary lacks one)."""
    values = summary[summary["scope"] == "all"].set_index("metric")["value"]
    return {name: float(values.get(name, math.nan)) for name in HEADLINE}


HEADLINE = ("requests_measured", "throughput", "error_ratio", "latency_p50", "latency_p99",
            "user_latency_p99")
