"""Who served whom: per-population pod shares and the entry-node x pod traffic matrix.

Both count the measured requests (sent after the warm-up) that reached a pod, pooled over
replications -- the same requests the ``pods`` frame's ``share`` counts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from npsim.results.frames import BLOCK, category_code, codes, count_codes, reached_pod


def served_rows(requests: pd.DataFrame) -> np.ndarray:
    """Mask of the measured requests that reached a pod (served, queued, or turned away
    by its queue)."""
    served = reached_pod(requests)
    served &= ~requests["warmup"].to_numpy(dtype=bool)
    return served


def served_requests(requests: pd.DataFrame) -> pd.DataFrame:
    """Measured requests that reached a pod, as a frame (a copy of those rows)."""
    return requests[served_rows(requests)]


def pod_shares(requests: pd.DataFrame, pods: pd.DataFrame) -> pd.DataFrame:
    """Share of each population's requests per pod: index pod (in the pods frame's order),
    one column per population. A pod of a Deployment that never served a population is
    NaN there (it could not have been chosen); an idle pod of one that did is 0."""
    served = served_rows(requests)
    order = list(dict.fromkeys(pods["pod"]))
    deployment = pods.drop_duplicates("pod").set_index("pod")["deployment"]
    pod = requests["pod"]
    pod_codes = codes(pod)
    population = requests["population"]
    population_codes = codes(population)
    columns = {}
    for code, name in enumerate(population.cat.categories):
        rows = served & (population_codes == code)
        counts = pd.Series(count_codes(pod_codes, rows, len(pod.cat.categories)),
                           index=pod.cat.categories).reindex(order, fill_value=0)
        used = set(deployment[counts[counts > 0].index])
        share = counts / max(int(counts.sum()), 1)
        columns[str(name)] = share.where(deployment[order].isin(used).to_numpy())
    return pd.DataFrame(columns, index=pd.Index(order, name="pod"))


def traffic_matrix(requests: pd.DataFrame) -> pd.DataFrame:
    """Requests per entry node (rows) and serving pod (columns), zeros included."""
    served = served_rows(requests)
    entry, pod = requests["entry_node"], requests["pod"]
    nodes, pods = entry.cat.categories, pod.cat.categories
    entry_codes = codes(entry)
    pod_codes = codes(pod)
    counts = np.zeros(len(nodes) * len(pods), dtype=np.int64)
    for lo in range(0, len(served), BLOCK):
        rows = served[lo:lo + BLOCK]
        rows &= entry_codes[lo:lo + BLOCK] >= 0
        cell = entry_codes[lo:lo + BLOCK][rows].astype(np.int64) * len(pods)
        cell += pod_codes[lo:lo + BLOCK][rows]
        counts += np.bincount(cell, minlength=len(counts))
    return pd.DataFrame(counts.reshape(len(nodes), len(pods)),
                        index=pd.Index(list(nodes), name="entry_node"),
                        columns=pd.Index(list(pods), name="pod"))


def failed_rows(requests: pd.DataFrame) -> np.ndarray:
    """Mask of the measured requests that failed."""
    outcome = requests["outcome"]
    failed = codes(outcome) == category_code(outcome, "failed")
    failed &= ~requests["warmup"].to_numpy(dtype=bool)
    return failed


def failure_matrix(requests: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """Measured requests that failed, per entry node (rows) and the pod their connection
    was sent to (columns, zeros included), and per entry node those that failed before
    any pod was chosen (a dead entry node, no endpoints, a firewall): the connections
    :func:`traffic_matrix` leaves out, as the figures draw them beside the served ones."""
    failed = failed_rows(requests)
    entry, pod = requests["entry_node"], requests["pod"]
    nodes, pods = entry.cat.categories, pod.cat.categories
    entry_codes, pod_codes = codes(entry)[failed], codes(pod)[failed]
    known = entry_codes >= 0
    entry_codes, pod_codes = entry_codes[known].astype(np.int64), pod_codes[known]
    placed = pod_codes >= 0
    cells = np.bincount(entry_codes[placed] * len(pods) + pod_codes[placed],
                        minlength=len(nodes) * len(pods))
    unplaced = np.bincount(entry_codes[~placed], minlength=len(nodes))
    return (pd.DataFrame(cells.reshape(len(nodes), len(pods)),
                         index=pd.Index(list(nodes), name="entry_node"),
                         columns=pd.Index(list(pods), name="pod")),
            pd.Series(unplaced, index=pd.Index(list(nodes), name="entry_node"),
                      name="failed_before_a_pod"))
