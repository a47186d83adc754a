"""``npsim import``: a cluster's own state (``kubectl get -o yaml`` dumps, plain manifests)
turned into an ordinary, editable scenario file.

Layers, one job each: :mod:`~npsim.importer.dump` reads files into located objects,
:mod:`~npsim.importer.inventory` sorts and checks them (Nodes, Services, EndpointSlices,
workloads, the kube-proxy configuration), :mod:`~npsim.importer.load` reads the optional
rate, service-time and calls CSVs, :mod:`~npsim.importer.envrefs` reads Service addresses
out of the pods' env and :mod:`~npsim.importer.calls` turns them into proposed ``calls:``
(or sets the CSV's; :mod:`~npsim.importer.callgraph` keeps them free of cycles),
:mod:`~npsim.importer.scenario_text` writes the scenario.
"""

from npsim.importer.dump import DumpError
from npsim.importer.run import ImportSummary, OutputExistsError, import_cluster

__all__ = ["DumpError", "ImportSummary", "OutputExistsError", "import_cluster"]
