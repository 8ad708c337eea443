"""The project: its root, ``seeknal_project.yml`` and the paths under ``target/``."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import msgspec

from seeknal_flow.authoring.specs import Isolation, Kind
from seeknal_flow.errors import ProjectError, SpecError

PROJECT_FILE = "seeknal_project.yml"
ENTITY_TABLE = "features.parquet"
ENTITY_CATALOG = "_entity_catalog.json"


class EngineName(str, enum.Enum):
    """Where the heavy nodes run: this process, or Apache Spark (``seeknal run --engine``)."""

    LOCAL = "local"
    SPARK = "spark"


class SparkConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``spark:`` in ``seeknal_project.yml``: the master URL and extra Spark settings."""

    master: str | None = None  # default local[*]; e.g. spark://host:7077, yarn, local-cluster[2,1,1024]
    conf: dict[str, str | int | float | bool] = {}


class OnlineStoreType(str, enum.Enum):
    """Where ``seeknal run`` publishes each entity's latest rows for online lookups."""

    EMBEDDED = "embedded"  # Arrow snapshots under target/online/
    REDIS = "redis"


class OnlineStoreConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``online_store:`` in ``seeknal_project.yml``, e.g. ``{type: redis, url: "${REDIS_URL}"}``.

    ``url`` may name environment variables as ``${VAR}``; they are expanded when the store is
    opened, never written anywhere.
    """

    type: OnlineStoreType = OnlineStoreType.EMBEDDED
    url: str | None = None  # redis://[:password@]host:port/db

    def __post_init__(self) -> None:
        if self.type == OnlineStoreType.REDIS and not self.url:
            raise ValueError("a redis online store needs `url: redis://host:port/db` (may be ${VAR})")


class ProjectConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``seeknal_project.yml``."""

    name: str
    description: str = ""
    memory_limit: str | None = None
    threads: int | None = None
    isolation: Isolation = Isolation.AUTO
    profile: str | None = None
    engine: EngineName = EngineName.LOCAL
    spark: SparkConfig = SparkConfig()
    online_store: OnlineStoreConfig = OnlineStoreConfig()


@dataclass(frozen=True)
class Project:
    """A seeknal-flow project rooted at ``root``.

    >>> Project(Path("/p")).intermediate_path("source_x")
    PosixPath('/p/target/intermediate/source_x.parquet')
    """

    root: Path

    @classmethod
    def find(cls, start: Path | None = None) -> Project:
        """Walk up from ``start`` (default: cwd) to the folder holding ``seeknal_project.yml``."""
        here = (start or Path.cwd()).resolve()
        if start is not None and not (here / PROJECT_FILE).exists():
            raise ProjectError(
                f"{here} is not a seeknal project (no {PROJECT_FILE}); "
                "create one with `seeknal init --name NAME`"
            )
        for folder in (here, *here.parents):
            if (folder / PROJECT_FILE).is_file():
                return cls(folder)
        raise ProjectError(
            f"not inside a seeknal project (no {PROJECT_FILE} in {here} or its parents); "
            "run `seeknal init --name NAME` or pass --project DIR"
        )

    @cached_property
    def config(self) -> ProjectConfig:
        # Here, not at the top: YAML needs PyYAML and the node-file parsers, and a Project is
        # also built in an isolated node's environment, which has neither.
        from seeknal_flow.authoring.field_errors import explain, format_problem
        from seeknal_flow.load.yaml_nodes import parse_yaml

        path = self.root / PROJECT_FILE
        data, lines = parse_yaml(path.read_text(encoding="utf-8"), PROJECT_FILE)
        try:
            return msgspec.convert(data or {}, ProjectConfig)
        except msgspec.ValidationError as e:
            field, problem = explain(e)
            line = lines.get(tuple(field[:1]), 1)
            raise SpecError(f"{PROJECT_FILE}:{line}: {format_problem(field, problem)}") from e

    @property
    def nodes_dir(self) -> Path:
        return self.root / "seeknal"

    @property
    def target(self) -> Path:
        return self.root / "target"

    @property
    def intermediate(self) -> Path:
        return self.target / "intermediate"

    @property
    def tmp(self) -> Path:
        return self.target / "tmp"

    @property
    def state_path(self) -> Path:
        return self.target / "run_state.json"

    @property
    def manifest_path(self) -> Path:
        return self.target / "manifest.json"

    @property
    def logs(self) -> Path:
        return self.target / "logs"

    @property
    def feature_store(self) -> Path:
        return self.target / "feature_store"

    def entity_dir(self, entity: str) -> Path:
        """``target/feature_store/<entity>/``: the consolidated table and its catalog."""
        return self.feature_store / entity

    def entity_table(self, entity: str) -> Path:
        return self.entity_dir(entity) / ENTITY_TABLE

    def entity_catalog(self, entity: str) -> Path:
        return self.entity_dir(entity) / ENTITY_CATALOG

    def online_dir(self, entity: str) -> Path:
        """``target/online/<entity>/``: published snapshots and the CURRENT pointer."""
        return self.target / "online" / entity

    def intermediate_path(self, output_name: str) -> Path:
        return self.intermediate / f"{output_name}.parquet"

    def output_of(self, spec) -> Path:
        """Where a node's output is read from.

        A Parquet source is read in place (its file or Hive directory): copying
        it to ``target/`` would cost a full rewrite and buy nothing, since its
        data fingerprint already tracks every change. Everything else lives
        under ``target/intermediate/``.
        """
        if spec.kind == Kind.SOURCE and spec.format.value == "parquet":
            return self.root / spec.table
        return self.intermediate_path(spec.output_name)

    @staticmethod
    def reads_in_place(spec) -> bool:
        return spec.kind == Kind.SOURCE and spec.format.value == "parquet"

    def kind_folder(self, kind: Kind) -> Path:
        return self.nodes_dir / kind.folder
