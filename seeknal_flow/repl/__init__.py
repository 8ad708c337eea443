"""The read-only SQL REPL over ``target/`` (DuckDB) and terminal tables."""
