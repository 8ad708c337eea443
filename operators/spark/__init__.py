"""Apache Spark as an engine: the session and data movement (``session``), SOA, PIT and user SQL compiled to Spark SQL."""
