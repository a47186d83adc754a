"""``npsim import``: a cluster's own state (``kubectl get -o yaml`` dumps, plain manifests)
turned into an ordinary, editable scenario file.

Layers, one job each: :mod:`~npsim.importer.dump` reads files into located objects,
:mod:`~npsim.importer.inventory` sorts and checks them (Nodes, Services, EndpointSlices,
workloads, the kube-proxy configuration), :mod:`~npsim.importer.load` reads the optional
rate and service-time CSVs, :mod:`~npsim.importer.scenario_text` writes the scenario.
"""

from npsim.importer.dump import DumpError
from npsim.importer.run import ImportSummary, OutputExistsError, import_cluster

__all__ = ["DumpError", "ImportSummary", "OutputExistsError", "import_cluster"]
