"""The run's memory budget and the DuckDB database shared by a node run's engine queries."""

from __future__ import annotations

import threading

from operators.memory import MemoryConfig, duckdb_connection, shared_duckdb


def test_shared_database_is_one_per_block_and_not_lent_to_other_threads():
    cfg = MemoryConfig(threads=1)
    seen = {}

    def other_thread():
        con = duckdb_connection(cfg, shared=True)  # its own context: a private database
        seen["tables"] = con.sql("SELECT COUNT(*) FROM duckdb_tables()").fetchall()[0][0]
        entered.set()
        leave.wait(5)
        seen["after"] = con.sql("SELECT 42").fetchall()[0][0]  # still open after the block ended
        con.close()

    entered, leave = threading.Event(), threading.Event()
    with shared_duckdb(cfg):
        a = duckdb_connection(cfg, shared=True)
        a.execute("CREATE TABLE t AS SELECT 1 AS x")
        b = duckdb_connection(cfg, shared=True)
        assert b.sql("SELECT COUNT(*) FROM t").fetchall()[0][0] == 1  # same database
        with shared_duckdb(cfg):  # nested: still the outer block's database
            assert duckdb_connection(cfg, shared=True).sql("SELECT COUNT(*) FROM t").fetchall()[0][0] == 1
        worker = threading.Thread(target=other_thread)
        worker.start()
        entered.wait(5)
    leave.set()
    worker.join(5)
    assert seen == {"tables": 0, "after": 42}
    # Outside a block, a shared request gets a database of its own.
    assert duckdb_connection(cfg, shared=True).sql("SELECT COUNT(*) FROM duckdb_tables()").fetchall()[0][0] == 0
