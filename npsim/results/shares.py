"""Who served whom: per-population pod shares and the entry-node x pod traffic matrix.

Both count the measured requests (sent after the warm-up) that reached a pod, pooled over
replications -- the same requests the ``pods`` frame's ``share`` counts.
"""

from __future__ import annotations

import pandas as pd

from npsim.results.frames import reached_pod


def served_requests(requests: pd.DataFrame) -> pd.DataFrame:
    """Measured requests that reached a pod (served, queued, or turned away by its queue)."""
    measured = requests[~requests["warmup"].to_numpy()]
    return measured[reached_pod(measured)]


def pod_shares(requests: pd.DataFrame, pods: pd.DataFrame) -> pd.DataFrame:
    """Share of each population's requests per pod: index pod (in the pods frame's order),
    one column per population. A pod of a Deployment that never served a population is
    NaN there (it could not have been chosen); an idle pod of one that did is 0."""
    served = served_requests(requests)
    order = list(dict.fromkeys(pods["pod"]))
    deployment = pods.drop_duplicates("pod").set_index("pod")["deployment"]
    columns = {}
    for population in requests["population"].cat.categories:
        part = served[(served["population"] == population).to_numpy()]
        counts = part["pod"].value_counts(sort=False).reindex(order, fill_value=0)
        used = set(deployment[counts[counts > 0].index])
        share = counts / max(int(counts.sum()), 1)
        columns[str(population)] = share.where(deployment[order].isin(used).to_numpy())
    return pd.DataFrame(columns, index=pd.Index(order, name="pod"))


def traffic_matrix(requests: pd.DataFrame) -> pd.DataFrame:
    """Requests per entry node (rows) and serving pod (columns), zeros included."""
    served = served_requests(requests)
    matrix = pd.crosstab(served["entry_node"], served["pod"], dropna=False)
    nodes = list(requests["entry_node"].cat.categories)
    pods = list(requests["pod"].cat.categories)
    return matrix.reindex(index=nodes, columns=pods, fill_value=0).rename_axis(
        index="entry_node", columns="pod")
