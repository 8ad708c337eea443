"""Node spec -> operator chain. The one place that knows which operator runs which kind."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from operators.base import to_reader
from operators.memory import MemoryConfig, duckdb_connection
from operators.python_call import PythonCallOperator, load_function
from operators.scan import ScanOperator
from operators.soa.execute import SOAOperator
from operators.sql import SqlOperator
from seeknal_flow.authoring.specs import Isolation, Kind
from seeknal_flow.errors import RunError
from seeknal_flow.frames.frame import FeatureFrame
from seeknal_flow.run.context import Context
from seeknal_flow.run.db_sources import database_scan
from seeknal_flow.run.isolation import IsolatedCallOperator, should_isolate
from seeknal_flow.run.ordering import SortedOperator, ordered_sql


class Chain:
    """The operator at the end of a node's chain, plus what to clean up after it.

    ``sorted_by``: the columns the rows come sorted by first (those the schema has), when the
    chain sorts them (``run/ordering.py``); () when their order is the query's own.
    """

    def __init__(self, operator, context: Context | None = None, sorted_by: tuple[str, ...] = ()) -> None:
        self.operator = operator
        self.context = context
        self.sorted_by = sorted_by

    @property
    def output(self) -> str:
        return getattr(self.operator, "output", "")

    def close(self) -> None:
        if hasattr(self.operator, "close"):
            self.operator.close()  # e.g. a SQL operator asked for its schema but never run
        if self.context is not None:
            self.context.close()


def build_chain(
    spec,
    inputs: dict[str, FeatureFrame],
    *,
    root: Path,
    params: dict[str, Any],
    memory: MemoryConfig,
    isolation: Isolation = Isolation.AUTO,
    source_path: Path | None = None,
    target: Path | None = None,
) -> Chain:
    """Build the operator chain that computes ``spec`` from its upstream frames.

    ``target`` replaces ``root/target`` as the folder a node may write to (``ctx.save_model``,
    isolated environments): ``seeknal dry-run`` passes a temp folder, so it writes nothing
    under the project.
    """
    target = target if target is not None else root / "target"
    if spec.kind == Kind.SOURCE and spec.is_database:
        return Chain(database_scan(spec, root))
    if spec.kind == Kind.SOURCE:
        return Chain(
            ScanOperator(
                spec.format.value,
                source_path or root / spec.table,
                params=params,
                partition_by=spec.partition_by,
                memory=memory,
                display_path=spec.table,
            )
        )
    if spec.kind == Kind.SECOND_ORDER_AGGREGATION:
        return _soa_chain(spec, inputs, root=root, params=params, memory=memory, isolation=isolation, target=target)
    if getattr(spec, "sql", None) is not None:
        views = {
            ref: (ref.replace(".", "_"), _frame_data(frame)) for ref, frame in inputs.items()
        }
        op = SqlOperator(spec.sql, views, memory=memory)
        return Chain(op, sorted_by=_define_order(spec, op))
    if getattr(spec, "python", None) is not None:
        call, ctx = _python_call(spec, inputs, params=params, memory=memory, isolation=isolation, target=target)
        if spec.kind == Kind.FEATURE_GROUP and getattr(spec, "entity", None) is not None:
            call = SortedOperator(call, leading_columns(spec), memory)  # keys and time, as a SQL group
            return Chain(call, ctx, sorted_by=tuple(leading_columns(spec)))
        return Chain(call, ctx)
    raise RunError(f"{spec.id} ({spec.location}): no operator computes it (neither SQL nor Python)")


def _define_order(spec, op: SqlOperator) -> tuple[str, ...]:
    """Give a SQL node's rows a defined order (``run/ordering.py``): a feature group's join keys and
    event time first, then every column; a query with its own ``ORDER BY`` keeps it.

    Returns the leading columns of the order it gave (() when the query keeps its own).
    """
    first = leading_columns(spec)
    con = duckdb_connection(op.memory, shared=True)  # the node's database (a cursor), parsed there
    try:
        ordered = ordered_sql(spec.sql, op.schema.names, first, op.schema, con=con)
    finally:
        con.close()
    if ordered == op.sql:
        return ()
    op.sql = ordered
    return tuple(c for c in first if c in op.schema.names)


def leading_columns(spec) -> list[str]:
    """The columns a node's rows are ordered by first: keys and time of a feature group or SOA."""
    entity = getattr(spec, "entity", None)
    if spec.kind == Kind.FEATURE_GROUP and entity is not None:
        return [*entity.join_keys, spec.event_time_col]
    if spec.kind == Kind.SECOND_ORDER_AGGREGATION:
        q = spec.query
        return [c for c in (q.spine_id_col, q.id_col, q.application_date_col, q.spine_date_col) if c]
    return []


def _soa_chain(spec, inputs, *, root, params, memory, isolation, target: Path) -> Chain:
    spine = _frame_data(inputs[spec.spine]) if spec.spine else None
    if spec.python is None:
        if spine is None:  # one row per id: DataFusion sorts by id in the plan (no second pass)
            return Chain(SOAOperator(spec.query, _frame_data(inputs[spec.source]), memory=memory, by_id=True))
        soa = SOAOperator(spec.query, _frame_data(inputs[spec.source]), spine=spine, memory=memory)
        return Chain(SortedOperator(soa, leading_columns(spec), memory))
    # Decorator form: the function returns the input table (it may join or filter first).
    call, ctx = _python_call(spec, inputs, params=params, memory=memory, isolation=isolation, target=target)
    soa = SOAOperator(spec.query, to_reader(call), spine=spine, memory=memory)
    return _SOAChain(SortedOperator(soa, leading_columns(spec), memory), ctx, call)


def _python_call(spec, inputs, *, params, memory: MemoryConfig, isolation: Isolation, target: Path):
    """The operator calling a node function: in this process, or isolated by uv (PEP 723)."""
    code = spec.python
    mode = getattr(spec, "isolation", None) or isolation
    if should_isolate(code, mode):
        op = IsolatedCallOperator(code, node_id=spec.id, inputs=inputs, params=params,
                                  cache_dir=target / "isolated", target=target,
                                  memory=memory)
        return op, None
    fn = load_function(Path(code.path), code.function)
    ctx = Context(spec.id, inputs, params, memory, target=target)
    return PythonCallOperator(fn, ctx, label=spec.id, path=Path(code.path)), ctx


class _SOAChain(Chain):
    def __init__(self, operator, context, call) -> None:
        super().__init__(operator, context)
        self._call = call

    @property
    def output(self) -> str:
        return self._call.output


def _frame_data(frame: FeatureFrame):
    paths = frame.paths
    if paths is None:
        return frame.to_arrow()
    return paths[0] if len(paths) == 1 else paths
