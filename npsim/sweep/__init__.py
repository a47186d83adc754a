"""What-ifs: variants x replications on a process pool or a Dask cluster, and a planner."""
