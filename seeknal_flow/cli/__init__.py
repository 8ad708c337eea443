"""The ``seeknal`` command line: one module per command group; parse, call, print."""
