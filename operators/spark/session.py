"""Apache Spark as a second engine: the session, Arrow <-> Spark types, Parquet in and out.

Plans are not built here: the SOA statement comes from :func:`operators.soa.compile.soa_sql`
(``dialect="spark"``) and the PIT statement from :mod:`operators.spark.pit`, both
from the same specs as the local engine. This module starts Spark with the
settings that make its SQL agree with DuckDB/DataFusion and moves data:

* Every session runs with :data:`REQUIRED_CONF` (UTC session time zone, ANSI SQL,
  ``"x"`` as an identifier, ``TIMESTAMP`` meaning a naive timestamp, literal
  backslashes, microsecond Parquet timestamps). They override user settings.
* Inputs are read with the Arrow schema the local engine sees for the same
  files (:func:`spark_ddl`), so both engines start from identical types.
* Row order is part of the contract (PIT spine order, "last row wins" ties):
  :func:`read_parquet` can add :data:`ORDER_COL`, a bigint that sorts rows in the
  order the local engine reads them (file by file in path order, then row index
  inside the file), from Spark's ``_metadata`` columns.
* :func:`write_parquet` writes to a hidden temp directory and renames it into
  place; Spark always writes a directory of part files.

pyspark is optional: :func:`check_available` reports a missing pyspark or Java
in one line.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np
import pyarrow as pa

from operators.atomic import replace_path
from operators.datasets import parquet_dataset, parquet_files
from operators.errors import EngineError
from operators.scan import first_line
from operators.spark.available import check_available
from operators.sql_text import quote_spark_ident

ORDER_COL = "_seeknal_row"
_ROW_BITS = 40  # row index inside one file; the file's position takes the bits above

# Settings without which Spark SQL would not agree with the local engine.
REQUIRED_CONF = {
    "spark.sql.session.timeZone": "UTC",  # dates and naive timestamps are UTC, as in asof_join
    "spark.sql.ansi.enabled": "true",  # errors on bad casts / overflow instead of NULLs
    "spark.sql.ansi.doubleQuotedIdentifiers": "true",  # "col" is a column, as in DuckDB
    "spark.sql.timestampType": "TIMESTAMP_NTZ",  # TIMESTAMP is naive, as in DuckDB
    "spark.sql.parser.escapedStringLiterals": "true",  # '\d' keeps its backslash, as in DuckDB
    # The default INT96 comes back from pyarrow as naive nanoseconds.
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.parquet.compression.codec": "zstd",  # what the local sink writes
}
# Defaults a user may override in seeknal_project.yml (`spark: conf:`).
DEFAULT_CONF = {
    "spark.ui.showConsoleProgress": "false",
    "spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs": "false",
    "spark.sql.shuffle.partitions": "8",
}
# Failures reach the user as one line per node; Spark's own ERROR logs would repeat them with a
# JVM stack, and its start-up banner would precede every run. Override with spark.log.level.
_LOG4J2 = """rootLogger.level = fatal
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n%ex
"""


# ----------------------------------------------------------------------------- session


@dataclass
class SparkSession:
    """A pyspark session and whether this process started it (only then is it stopped)."""

    session: Any
    owned: bool

    def stop(self) -> None:
        if self.owned:
            self.session.stop()
            self.owned = False


def start_session(master: str | None = None, conf: dict[str, Any] | None = None,
                  app_name: str = "seeknal-flow") -> SparkSession:
    """Start (or join the already active) Spark session with :data:`REQUIRED_CONF`.

    ``master`` defaults to ``local[*]``. For ``local-cluster[...]`` (separate
    executor JVMs, used by the tests) ``spark.test.home`` is pointed at the pip
    installed pyspark, which has the layout that mode expects.
    """
    check_available()
    import warnings

    # pyspark 4.3 warns about pandas 3 on every start; seeknal-flow hands Spark Arrow, never pandas.
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)
    from pyspark.sql import SparkSession as PySparkSession

    active = PySparkSession.getActiveSession()
    if active is not None:
        for key, value in REQUIRED_CONF.items():
            active.conf.set(key, value)
        return SparkSession(active, owned=False)
    master = master or "local[*]"
    settings = {**DEFAULT_CONF, **{k: str(v) for k, v in (conf or {}).items()}, **REQUIRED_CONF}
    if "spark.sql.warehouse.dir" not in settings:  # Spark would create ./spark-warehouse in the project
        settings["spark.sql.warehouse.dir"] = str(Path(tempfile.gettempdir()) / "seeknal-flow-spark-warehouse")
    if "spark.driver.extraJavaOptions" not in settings:
        settings["spark.driver.extraJavaOptions"] = f"-Dlog4j2.configurationFile={_log4j2_file()}"
    if master.startswith("local-cluster") and "spark.test.home" not in settings:
        import pyspark

        settings["spark.test.home"] = os.path.dirname(pyspark.__file__)
    builder = PySparkSession.builder.appName(app_name).master(master)
    for key, value in settings.items():
        builder = builder.config(key, value)
    try:
        session = builder.getOrCreate()
    except (*spark_errors(), OSError) as e:  # OSError: spark-submit itself cannot be started
        raise EngineError(f"Spark did not start (master {master}): {_spark_message(e)}") from e
    session.sparkContext.setLogLevel(settings.get("spark.log.level", "FATAL"))
    return SparkSession(session, owned=True)


def _log4j2_file() -> Path:
    path = Path(tempfile.gettempdir()) / "seeknal-flow-spark-log4j2.properties"
    if not path.exists() or path.read_text() != _LOG4J2:
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
        tmp.write_text(_LOG4J2)
        os.replace(tmp, path)
    return path


def _spark_message(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return first_line(text.split("\n\tat ", 1)[0])


# ------------------------------------------------------------------------------- types


def spark_type(t: pa.DataType, column: str = "?") -> str:
    """The Spark SQL type (DDL) holding Arrow type ``t`` without loss.

    >>> spark_type(pa.timestamp("us")), spark_type(pa.timestamp("ms", "UTC")), spark_type(pa.uint32())
    ('TIMESTAMP_NTZ', 'TIMESTAMP_LTZ', 'BIGINT')
    >>> spark_type(pa.struct([("a b", pa.list_(pa.string()))]))
    'STRUCT<`a b`: ARRAY<STRING>>'
    """
    if pa.types.is_dictionary(t):
        return spark_type(t.value_type, column)
    simple = {
        pa.bool_(): "BOOLEAN", pa.int8(): "TINYINT", pa.int16(): "SMALLINT", pa.int32(): "INT",
        pa.int64(): "BIGINT", pa.uint8(): "SMALLINT", pa.uint16(): "INT", pa.uint32(): "BIGINT",
        pa.uint64(): "DECIMAL(20,0)", pa.float16(): "FLOAT", pa.float32(): "FLOAT", pa.float64(): "DOUBLE",
        pa.date32(): "DATE", pa.date64(): "DATE", pa.null(): "STRING",
    }
    if t in simple:
        return simple[t]
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "STRING"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return "BINARY"
    if pa.types.is_binary_view(t):
        return "BINARY"
    if pa.types.is_timestamp(t):
        return "TIMESTAMP_NTZ" if t.tz is None else "TIMESTAMP_LTZ"
    if pa.types.is_decimal(t) and t.precision <= 38:
        return f"DECIMAL({t.precision},{t.scale})"
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return f"ARRAY<{spark_type(t.value_type, column)}>"
    if pa.types.is_map(t):
        return f"MAP<{spark_type(t.key_type, column)}, {spark_type(t.item_type, column)}>"
    if pa.types.is_struct(t):
        fields = ", ".join(f"{quote_spark_ident(f.name)}: {spark_type(f.type, column)}" for f in t)
        return f"STRUCT<{fields}>"
    raise EngineError(f"column '{column}' has type {t}, which Spark cannot hold; cast it first")


def spark_ddl(schema: pa.Schema) -> str:
    """A Spark schema string for ``schema`` (what ``DataFrameReader.schema`` takes).

    >>> spark_ddl(pa.schema([("id", pa.string()), ("n", pa.int64())]))
    '`id` STRING, `n` BIGINT'
    """
    return ", ".join(f"{quote_spark_ident(f.name)} {spark_type(f.type, f.name)}" for f in schema)


def conform(df, schema: pa.Schema):
    """Select ``schema``'s columns from ``df`` (by name), cast to its types: the output contract."""
    from pyspark.sql import functions as F

    missing = [f.name for f in schema if f.name not in df.columns]
    if missing:
        raise EngineError(f"Spark result lacks column(s) {missing}; it has {df.columns}")
    return df.select([F.col(quote_spark_ident(f.name)).cast(spark_type(f.type, f.name)).alias(f.name) for f in schema])


# -------------------------------------------------------------------------------- read


def read_parquet(spark, paths: Sequence[Path], *, ordered: bool = False, schema: pa.Schema | None = None):
    """Read Parquet file(s)/directories with the Arrow schema the local engine sees.

    With ``ordered``, adds :data:`ORDER_COL`: rows sort by it exactly as the local
    engine reads them (files in path order, then row index).
    """
    paths = [Path(p) for p in paths]
    try:
        local = parquet_dataset(paths[0] if len(paths) == 1 else paths).schema if schema is None else schema
    except (FileNotFoundError, OSError, pa.ArrowInvalid) as e:
        raise EngineError(f"cannot read Parquet {', '.join(map(str, paths))}: {first_line(str(e))}") from e
    _check_readable(local, paths)
    reader = spark.read.schema(spark_ddl(local))
    base = _hive_base(paths)
    if base is not None:
        reader = reader.option("basePath", str(base))
    df = reader.parquet(*[str(p) for p in paths])
    if ordered:
        df = _with_order(spark, df, paths)
    return df


def _check_readable(schema: pa.Schema, paths: Sequence[Path]) -> None:
    for f in schema:
        if pa.types.is_timestamp(f.type) and f.type.unit == "ns":
            raise EngineError(
                f"column '{f.name}' of {', '.join(map(str, paths))} holds nanosecond timestamps, which "
                "Spark cannot read; write it as timestamp[us] (e.g. pandas: df[col].astype('datetime64[us]'))"
            )


def _hive_base(paths: Sequence[Path]) -> Path | None:
    # A partition folder (k=v) read on its own keeps its key only with basePath, as in parquet_dataset.
    bases = set()
    for p in paths:
        base = p if p.is_dir() else p.parent
        moved = False
        while re.match(r"^[^=/]+=[^/]*$", base.name):
            base, moved = base.parent, True
        if moved:
            bases.add(base)
    return bases.pop() if len(bases) == 1 else None


def _with_order(spark, df, paths: Sequence[Path]):
    from pyspark.sql import functions as F

    files: list[Path] = []
    for p in paths:
        files += parquet_files(p)
    index = {str(f.resolve()): i for i, f in enumerate(files)}
    rows = []
    for uri in df.inputFiles():
        local = str(Path(unquote(urlparse(uri).path)).resolve())
        if local not in index:
            raise EngineError(f"Spark reads '{local}', which the local engine does not see as data; remove it")
        # inputFiles() spells local paths file:///x, _metadata.file_path file:/x.
        rows.append((re.sub(r"^file:///", "file:/", uri), index[local]))
    names = pa.table({"__file": [r[0] for r in rows], "__file_index": pa.array([r[1] for r in rows], pa.int64())})
    mapping = F.broadcast(spark.createDataFrame(names))
    with_file = df.select("*", F.col("_metadata.file_path").alias("__file"),
                          F.col("_metadata.row_index").alias("__row_index"))
    joined = with_file.join(mapping, "__file", "left")
    # A path spelled differently would silently break the order: fail instead.
    order = F.when(F.col("__file_index").isNull(),
                   F.raise_error(F.concat(F.lit("no row order for file "), F.col("__file"))).cast("bigint"))
    order = order.otherwise(F.shiftleft(F.col("__file_index"), _ROW_BITS) + F.col("__row_index"))
    return joined.select(*[F.col(quote_spark_ident(c)) for c in df.columns], order.alias(ORDER_COL))


def from_arrow(spark, table: pa.Table, *, ordered: bool = False):
    """Upload an in-memory Arrow table (driver -> executors); ``ordered`` adds :data:`ORDER_COL`.

    Nanosecond timestamps (pandas' default) become microseconds, Spark's precision.
    """
    if ordered:
        table = table.append_column(ORDER_COL, pa.array(np.arange(table.num_rows, dtype=np.int64)))
    table = table.cast(pa.schema([f.with_type(_plain(f.type)) for f in table.schema]), safe=False)
    return spark.createDataFrame(table, schema=spark_ddl(table.schema))


def _plain(t: pa.DataType) -> pa.DataType:
    if pa.types.is_dictionary(t):
        return _plain(t.value_type)
    if pa.types.is_string_view(t) or pa.types.is_large_string(t):
        return pa.string()
    if pa.types.is_timestamp(t) and t.unit == "ns":
        return pa.timestamp("us", t.tz)
    return t


def read_source(spark, fmt: str, path: Path, schema: pa.Schema, params: dict[str, Any] | None = None):
    """Read a CSV/JSON/JSONL source file or Hive folder into the local engine's ``schema``.

    CSV is read as text and cast in Spark, so NULL markers and conversions
    follow the local reader (``params``: delimiter, quote_char, escape_char,
    header, null_values, encoding; ``column_types`` is already in ``schema``).
    """
    from pyspark.sql import functions as F

    params = dict(params or {})
    if fmt == "csv":
        if int(params.get("skip_rows", 0)):
            raise EngineError("CSV param skip_rows is not supported by --engine spark; remove the leading rows")
        text = pa.schema([pa.field(f.name, pa.string()) for f in schema])
        reader = (spark.read.schema(spark_ddl(text)).option("header", str(bool(params.get("header", True))).lower())
                  .option("sep", params.get("delimiter", ",")).option("quote", params.get("quote_char", '"'))
                  .option("encoding", _charset(params.get("encoding", "utf8"))).option("mode", "FAILFAST")
                  .option("pathGlobFilter", "{*.csv,*.tsv,*.txt}" if path.is_dir() else "*"))
        escape = params.get("escape_char", False)
        reader = reader.option("escape", escape) if escape else reader.option("escape", "\u0000")
        df = reader.csv(str(path))
        nulls = params.get("null_values", ["", "NULL", "null", "NA", "N/A"])
        cols = []
        for f in schema:
            c = F.col(quote_spark_ident(f.name))
            c = F.when(c.isin(list(nulls)), F.lit(None)).otherwise(c) if nulls else c
            cols.append(c.cast(spark_type(f.type, f.name)).alias(f.name))
        return df.select(cols)
    if fmt in ("json", "jsonl"):
        multiline = fmt == "json" and _starts_with_array(path)
        df = (spark.read.schema(spark_ddl(schema)).option("multiLine", str(multiline).lower())
              .option("mode", "FAILFAST")
              .option("pathGlobFilter", "{*.json,*.jsonl,*.ndjson}" if path.is_dir() else "*")
              .json(str(path)))
        return conform(df, schema)
    raise EngineError(f"unsupported source format '{fmt}' for --engine spark; use csv, parquet, json or jsonl")


def _charset(name: str) -> str:
    """pyarrow takes Python codec names (``utf8``); Java wants canonical ones (``utf-8``)."""
    import codecs

    try:
        return codecs.lookup(name).name
    except LookupError as e:
        raise EngineError(f"unknown CSV encoding {name!r}; use e.g. utf-8 or latin-1") from e


def _starts_with_array(path: Path) -> bool:
    files = sorted(p for p in path.rglob("*.json")) if path.is_dir() else [path]
    for f in files[:1]:
        with open(f, "rb") as fh:
            head = fh.read(4096).lstrip()
            return head.startswith(b"[")
    return False


# ------------------------------------------------------------------------------- write


@dataclass(frozen=True)
class Written:
    """What :func:`write_parquet` left at ``path``."""

    path: Path
    rows: int
    bytes: int
    schema: pa.Schema


def write_parquet(df, path: Path, *, partition_by: Iterable[str] = (),
                  before_commit: Callable[[Path], None] | None = None) -> Written:
    """Write ``df`` as a Parquet directory at ``path``, replacing what was there only on success.

    With ``partition_by`` the layout is the local engine's: ``key=value``
    folders whose files still hold the key column (so its type survives).
    ``before_commit(tmp_dir)`` may inspect the result and raise to reject it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    keys = list(partition_by)
    try:
        if keys:
            _write_partitioned(df, tmp, keys)
        else:
            df.write.mode("overwrite").parquet(str(tmp))
        if before_commit is not None:
            before_commit(tmp)
        replace_path(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return describe_output(path)


def _write_partitioned(df, tmp: Path, keys: list[str]) -> None:
    from pyspark.sql import functions as F

    missing = [k for k in keys if k not in df.columns]
    if missing:
        raise EngineError(f"partition column(s) {missing} are not in the result (columns: {df.columns})")
    # Spark moves a partition column out of the files; partition by copies and rename the folders.
    copies = {k: f"__seeknal_part_{i}" for i, k in enumerate(keys)}
    out = df.select("*", *[F.col(quote_spark_ident(k)).alias(c) for k, c in copies.items()])
    out.write.mode("overwrite").partitionBy(*copies.values()).parquet(str(tmp))
    for depth, (key, copy) in enumerate(copies.items()):
        for folder in sorted(tmp.glob("/".join(["*"] * depth + [f"{copy}=*"]))):
            folder.rename(folder.with_name(key + folder.name[len(copy):]))


def describe_output(path: Path) -> Written:
    """Rows (from Parquet footers), bytes and Arrow schema of a written output."""
    dataset = parquet_dataset(path)
    size = sum(f.stat().st_size for f in parquet_files(path))
    return Written(path, dataset.count_rows(), size, dataset.schema)


def spark_error(error: BaseException) -> str:
    """One line from a Spark (py4j) exception, without the JVM stack."""
    return _spark_message(error)


def spark_errors() -> tuple[type[BaseException], ...]:
    """The exception classes of a failing Spark call: pyspark's own and the py4j bridge's.

    SQL and job failures, and a JVM that does not start (``PySparkRuntimeError``), raise
    ``PySparkException`` subclasses; a broken bridge raises ``Py4JError``.
    """
    from py4j.protocol import Py4JError
    from pyspark.errors import PySparkException

    return (PySparkException, Py4JError)
