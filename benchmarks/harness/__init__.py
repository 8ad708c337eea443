"""The benchmarking harness behind ``python -m benchmarks`` (see ``benchmarks/__main__.py``).

One module per concern: ``tasks`` (what each system runs), ``systems`` (how each runs
it as a separate process), ``projects`` (the pipeline as seeknal projects),
``measure`` (wall time and peak RSS of a child), ``verify`` (do outputs agree),
``report`` (markdown tables, RESULTS.md), ``run`` / ``incremental`` / ``scale`` (the
commands). Nothing here imports an engine at module level.
"""
