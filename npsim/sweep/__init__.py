"""What-ifs: variants x replications on a process pool or a Dask cluster
(:mod:`npsim.parallel`), and a planner."""
