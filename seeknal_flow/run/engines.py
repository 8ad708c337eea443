"""Which engine a run uses: ``--engine`` / ``--spark-master``, else ``engine:`` in seeknal_project.yml."""

from __future__ import annotations

from collections.abc import Callable

from operators.memory import MemoryConfig
from operators.spark.available import check_available
from seeknal_flow.errors import RunError
from seeknal_flow.load.project import EngineName
from seeknal_flow.load.workspace import Workspace
from seeknal_flow.run.engine import Engine


def chosen_engine(ws: Workspace, engine: str | None = None, spark_master: str | None = None) -> EngineName:
    """The engine a run uses: ``--engine``, else Spark when ``--spark-master`` is given, else the project's."""
    if spark_master and engine == EngineName.LOCAL:
        raise RunError("--spark-master needs --engine spark (or leave --engine out)")
    return EngineName(engine) if engine else (EngineName.SPARK if spark_master else ws.project.config.engine)


def choose_engine(ws: Workspace, memory: MemoryConfig, *, engine: str | None = None,
                  spark_master: str | None = None) -> Callable[[], Engine]:
    """A factory of the engine for this run.

    Options and availability are checked now (a missing pyspark or Java fails
    before anything runs); the engine itself is imported and built only when
    the run service has work for it, so a run with nothing to do imports no
    engine (not even pyarrow).
    """
    if chosen_engine(ws, engine, spark_master) == EngineName.SPARK:
        check_available()

        def spark() -> Engine:
            from seeknal_flow.run.spark.engine import SparkEngine  # lazy: see the docstring

            return SparkEngine(ws.project, ws.dag, memory, master=spark_master)

        return spark

    def local() -> Engine:
        from seeknal_flow.run.local import LocalEngine  # lazy: see the docstring

        return LocalEngine(ws.project, ws.dag, memory)

    return local
