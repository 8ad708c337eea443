"""Plans into work: the run service, the Engine protocol and its local and Spark engines, node contexts, isolation, dry runs."""
