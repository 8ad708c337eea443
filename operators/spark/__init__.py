"""Apache Spark as an engine.

``available`` (is Spark usable), ``session`` (the session, types, Parquet in and out), and
SOA (``soa``), PIT (``pit``) and user SQL (``sql``) compiled to Spark SQL.
"""
