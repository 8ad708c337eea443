"""Files -> validated specs -> DAG: the project and its config, discovery of Python and YAML node files, the node graph.

Pure: nothing here imports an engine (DataFusion, DuckDB, Spark)."""
