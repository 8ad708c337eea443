"""The engine: operators that pull Arrow RecordBatches from their inputs.

Nothing here knows about projects, specs on disk or the CLI; ``seeknal_flow``
builds operator chains from node specs and drives them.
"""
