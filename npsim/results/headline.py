"""The failure line every summary leads with (CLI, ``report.html``, the Jupyter card):
``failed 13,790 of 45,097 measured (30.6%): connect_timeout 96%, reset 4%``, warm-up
failures said apart; and how a share is printed."""

from __future__ import annotations

import math

import pandas as pd

SHARE = "failed_share_"  # failed_share_<reason>: that reason's share of the failures


def percent(value: float) -> str:
    """A percentage with a digit more where one decimal would show 0.0% (the share of
    one of 10,000 pods is 0.01%); "-" for a missing value."""
    if pd.isna(value):
        return "-"
    return f"{value:.1%}" if value == 0 or abs(value) >= 0.001 else f"{value:.3%}"


def is_failure_count(metric: str) -> bool:
    """``failed_<reason>`` (a count of measured failures), not ``failed_share_<reason>``."""
    return metric.startswith("failed_") and not metric.startswith(SHARE)


def _whole_percent(share: float) -> str:
    return f"{share:.0%}" if share >= 0.005 else "<1%"


def failure_line(values: pd.Series) -> str:
    """``failed 13,790 of 45,097 measured (30.6%): connect_timeout 96%, reset 4%``, with
    the failures of the warm-up said apart (they are not measured). ``values``: the
    scope-``all`` summary values by metric."""
    counts = {str(m)[len("failed_"):]: int(v) for m, v in values.items()
              if is_failure_count(str(m))}
    failed = sum(counts.values())
    measured = int(values.get("requests_measured", 0))
    warmup = int(values.get("requests_failed", failed)) - failed
    # in flight at the end for longer than any request that ended: failed, for users
    stuck = int(values.get("requests_unanswered", 0))
    if stuck:
        counts["no answer"] = stuck
    if failed + stuck:
        ratio = float(values.get("error_ratio", math.nan))
        text = (f"failed     {failed + stuck:,} of {measured:,} measured ({percent(ratio)}): "
                + ", ".join(f"{reason} {_whole_percent(n / (failed + stuck))}"
                            for reason, n in sorted(counts.items(), key=lambda item: -item[1])))
    else:
        text = f"failed     none of {measured:,} measured"
    more = []
    unfinished = int(values.get("requests_measured_in_flight", 0))
    if unfinished:
        more.append(f"{unfinished:,} still in flight at the end" + (
            f", {stuck:,} of them with no answer after twice as long as any request that "
            "ended took (counted as failed)" if stuck else ""))
    if warmup > 0:
        more.append(f"{warmup:,} failed during the warm-up, not measured")
    if more and len(text) + sum(len(m) + 2 for m in more) <= 100:
        return "; ".join([text, *more])
    return "\n           ".join([text, *more])  # what does not fit: lines of its own
