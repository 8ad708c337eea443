"""``ctx``: what a Python node function receives (ref, duckdb, params)."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from operators.memory import MemoryConfig, duckdb_connection
from operators.sql import register_input, rewrite_refs
from operators.sql_text import quote_ident
from seeknal_flow.errors import RunError
from seeknal_flow.frames import reads
from seeknal_flow.frames.frame import FeatureFrame
from seeknal_flow.store.models import save_model

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class Context:
    """The context of one node run.

    >>> import pyarrow as pa
    >>> ctx = Context("transform.t", {"source.s": FeatureFrame(pa.table({"a": [1, 2]}))}, {"k": 1})
    >>> s = ctx.ref("source.s")
    >>> ctx.duckdb.sql("SELECT SUM(a) AS total FROM s").fetchall()
    [(3,)]
    >>> ctx.params["k"]
    1
    """

    def __init__(
        self,
        node_id: str,
        inputs: dict[str, FeatureFrame],
        params: dict[str, Any] | None = None,
        memory: MemoryConfig | None = None,
        target: Any = None,
    ) -> None:
        self.node_id = node_id
        self._target = target  # the project's target/ folder (None in a bare Context)
        self._inputs = inputs
        self.params: dict[str, Any] = dict(params or {})
        self._memory = memory or MemoryConfig()
        self._duckdb: DuckDBSession | None = None
        if target is not None:  # a node run (not a bare Context): its reads must be edges
            reads.enter(node_id, set(inputs), Path(target))

    def ref(self, node_id: str) -> FeatureFrame:
        """The output of an upstream node as a lazy FeatureFrame."""
        try:
            return self._inputs[node_id]
        except KeyError as e:
            known = ", ".join(sorted(self._inputs)) or "none"
            raise RunError(
                f"{self.node_id}: ctx.ref('{node_id}') is not an input of this node "
                f"(inputs: {known}); write the id as a string literal so discovery sees it"
            ) from e

    def features(
        self,
        entity: str,
        features: list[str],
        keys: list[dict] | None = None,
        as_of: Any = None,
        spine: Any = None,
        date_col: str | None = None,
    ) -> FeatureFrame:
        """An entity's features (``["group.feature", ...]``): latest, as of a time, or PIT over a spine.

        The groups must be literal in the call so discovery makes them inputs.
        """
        # Imported on use: PIT needs numpy, which an isolated node's environment may lack.
        from seeknal_flow.frames.entity_features import entity_features

        table = entity_features(self._inputs, entity, features, keys=keys, as_of=as_of, spine=spine,
                                date_col=date_col, memory=self._memory)
        return FeatureFrame(table)

    def save_model(self, model: Any, name: str | None = None):
        """Save a fitted model as ``target/models/<name>.joblib`` (name defaults to the node's).

        Reload it with ``seeknal_flow.load_model(name)``.
        """
        if self._target is None:
            raise RunError(f"{self.node_id}: ctx.save_model needs a project (run the node with `seeknal run`)")
        return save_model(model, Path(self._target), name or self.node_id.split(".", 1)[1])

    @property
    def duckdb(self) -> DuckDBSession:
        """A DuckDB connection for this node; SQL may name FeatureFrames by variable."""
        if self._duckdb is None:
            self._duckdb = DuckDBSession(duckdb_connection(self._memory), self._inputs)
        return self._duckdb

    def close(self) -> None:
        reads.leave(self.node_id)
        if self._duckdb is not None:
            self._duckdb.close()
            self._duckdb = None


class DuckDBSession:
    """A DuckDB connection that sees the caller's table-like variables.

    DuckDB finds a pandas/Arrow variable named in SQL only in its *direct*
    caller's frame; through this wrapper the user's frame is one level up, so
    the wrapper registers the variables the query names itself. FeatureFrames
    backed by Parquet become views over ``read_parquet`` (scanned in place,
    never materialized); ``ref('kind.name')`` works here as in YAML SQL.
    """

    def __init__(self, con, inputs: dict[str, FeatureFrame]) -> None:
        self._con = con
        self._inputs = inputs
        self._views = {ref: "__ref_" + ref.replace(".", "_") for ref in inputs}
        self._registered: set[str] = set()

    def sql(self, query: str, *args: Any, **kwargs: Any):
        """Run DuckDB SQL; returns a lazy DuckDB relation."""
        query = self._prepare(query, sys._getframe(1))
        return self._con.sql(query, *args, **kwargs)

    def execute(self, query: str, *args: Any, **kwargs: Any):
        query = self._prepare(query, sys._getframe(1))
        return self._con.execute(query, *args, **kwargs)

    query = sql

    def __getattr__(self, name: str):
        return getattr(self._con, name)

    def close(self) -> None:
        self._con.close()

    def _prepare(self, query: str, frame) -> str:
        if "ref(" in query:
            for ref in self._inputs:
                if ref in query:
                    self._register(self._views[ref], self._inputs[ref])
            query = rewrite_refs(query, self._views)
        names = set(_IDENT.findall(query))
        for name in names:
            value = frame.f_locals.get(name, frame.f_globals.get(name))
            if value is not None and _is_table_like(value):
                self._register(name, value)
        return query

    def _register(self, name: str, value: Any) -> None:
        if isinstance(value, FeatureFrame):
            if value.paths is not None:
                register_input(self._con, name, value.paths if len(value.paths) > 1 else value.paths[0])
            else:
                self._con.register(name, value.to_arrow())
        elif type(value).__module__.startswith("duckdb"):
            self._con.execute(f"CREATE OR REPLACE TEMP VIEW {quote_ident(name)} AS {value.sql_query()}")
        else:
            self._con.register(name, value)
        self._registered.add(name)


def _is_table_like(value: Any) -> bool:
    if isinstance(value, FeatureFrame):
        return True
    module = type(value).__module__ or ""
    if module.startswith(("pandas", "polars")) and hasattr(value, "columns"):
        return True
    if module.startswith("pyarrow") and hasattr(value, "schema"):
        return True
    return module.startswith("duckdb") and hasattr(value, "sql_query")
