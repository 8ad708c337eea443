"""DataFusion for SOA: imported without pandas, and sessions over empty tables for planning."""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import sys

import pyarrow as pa

from operators.soa.compile import SPINE_ROW_COL

# Modules of the datafusion package imported lazily by _import_datafusion: their code
# runs on first attribute access instead of at `import datafusion`.
# datafusion.functions.spark (Python wrappers of Spark functions, unused here) builds
# pyarrow scalars at import time, and pyarrow's scalar/array constructors import
# pandas (~50 MB RSS, ~0.2 s) to check for pandas objects. SQL needs none of it.
_LAZY_MODULES = frozenset({"datafusion.functions.spark"})


class _LazySubmodules(importlib.abc.MetaPathFinder):
    """Finds the modules of _LAZY_MODULES through the other finders, with a LazyLoader."""

    def find_spec(self, name, path, target=None):
        if name not in _LAZY_MODULES:
            return None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            if finder is self or find is None:
                continue
            spec = find(name, path, target)
            if spec is None:
                continue
            if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                spec.loader = importlib.util.LazyLoader(spec.loader)
            return spec
        return None


def import_datafusion():
    """``import datafusion`` without pulling in pandas; a no-op once datafusion is imported.

    Two process-wide effects, both only when this is the first import of datafusion:

    * ``datafusion.functions.spark`` is loaded lazily (standard ``importlib.util.LazyLoader``):
      it runs, importing pandas, the first time one of its attributes is used;
      everything else of datafusion is imported as usual;
    * ``MIMALLOC_ALLOW_THP=0`` is set unless the environment sets it: DataFusion's
      allocator (mimalloc, read at load) then does not ask for transparent huge pages,
      whose 2 MB granularity added ~30 MB peak RSS to the by-customer benchmark.

    pandas stays importable and works as before (``to_pandas`` etc. import it on use).
    """
    if "datafusion" not in sys.modules:
        os.environ.setdefault("MIMALLOC_ALLOW_THP", "0")
        finder = _LazySubmodules()
        sys.meta_path.insert(0, finder)
        try:
            import datafusion  # noqa: F401
        finally:
            sys.meta_path.remove(finder)
    return sys.modules["datafusion"]


def empty_batch(schema: pa.Schema) -> pa.RecordBatch:
    """A zero-row batch of ``schema`` (``from_pylist`` would import pandas via pyarrow)."""
    try:
        return pa.RecordBatch.from_arrays([pa.nulls(0, f.type) for f in schema], schema=schema)
    except (pa.ArrowException, TypeError, ValueError):
        return pa.RecordBatch.from_pylist([], schema=schema)


def empty_context(input_schema: pa.Schema, spine_schema: pa.Schema | None):
    """A DataFusion context over zero-row tables: planning checks types, reads no data."""
    ctx = import_datafusion().SessionContext()
    ctx.register_record_batches("soa_input", [[empty_batch(input_schema)]])
    if spine_schema is not None:
        spine_schema = with_spine_row(spine_schema)
        ctx.register_record_batches("soa_spine", [[empty_batch(spine_schema)]])
    return ctx


def with_spine_row(schema: pa.Schema) -> pa.Schema:
    if SPINE_ROW_COL in schema.names:
        return schema
    return schema.append(pa.field(SPINE_ROW_COL, pa.int64(), nullable=False))


def error_line(exc: BaseException) -> str:
    """The first line of an engine's error message (its type's name when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
