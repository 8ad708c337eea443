"""The Spark engine: runs plan nodes on Apache Spark from the same specs (``seeknal run --engine spark``)."""
