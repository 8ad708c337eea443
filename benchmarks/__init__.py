"""Benchmarks: data generator and comparisons against DuckDB / Polars."""
