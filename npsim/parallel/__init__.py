"""Independent tasks in parallel: a local process pool, or a Dask cluster. Knows nothing
of npsim's runs, so both ``npsim.run(jobs=N)`` and the sweeps above it use it."""
