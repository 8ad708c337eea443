"""The project: its root, ``seeknal_project.yml`` and the paths under ``target/``."""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import msgspec

from operators.errors import EngineError
from operators.memory import parse_memory_limit
from seeknal_flow.authoring.specs import NAME_RE, Isolation, Kind
from seeknal_flow.errors import ProjectError, SpecError, os_error_text

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


class ProfileConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One entry of ``profiles:``: settings that replace the top-level ones when the profile is chosen."""

    memory_limit: str | None = None
    threads: int | None = None
    isolation: Isolation | None = None
    engine: EngineName | None = None
    spark: SparkConfig | None = None


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
    """``seeknal_project.yml``.

    Precedence, highest first: command-line flag > environment (``SEEKNAL_PROFILE``,
    ``SEEKNAL_THREADS``, ``SEEKNAL_MEMORY_LIMIT``) > the chosen profile > the top-level
    setting > the default (docs/configuration.md).
    """

    name: str
    description: str = ""
    memory_limit: str | None = None
    threads: int | None = None
    isolation: Isolation = Isolation.AUTO
    profile: str | None = None  # which entry of `profiles` applies (SEEKNAL_PROFILE overrides)
    profiles: dict[str, ProfileConfig] = {}
    engine: EngineName = EngineName.LOCAL
    spark: SparkConfig = SparkConfig()
    online_store: OnlineStoreConfig = OnlineStoreConfig()


# Environment variables that override seeknal_project.yml (SEEKNAL_PROJECT is --project, read by the CLI).
ENV_PROFILE = "SEEKNAL_PROFILE"
ENV_THREADS = "SEEKNAL_THREADS"
ENV_MEMORY_LIMIT = "SEEKNAL_MEMORY_LIMIT"


def effective_config(config: ProjectConfig, environ: Mapping[str, str]) -> ProjectConfig:
    """``config`` with the chosen profile and the ``SEEKNAL_*`` environment applied.

    >>> base = ProjectConfig(name="p", threads=2, profiles={"big": ProfileConfig(threads=8)})
    >>> effective_config(base, {"SEEKNAL_PROFILE": "big"}).threads
    8
    >>> effective_config(base, {"SEEKNAL_PROFILE": "big", "SEEKNAL_THREADS": "4"}).threads
    4
    """
    name = environ.get(ENV_PROFILE) or config.profile
    if name:
        chosen = config.profiles.get(name)
        if chosen is None:
            where = f"{ENV_PROFILE}={name}" if environ.get(ENV_PROFILE) else f"{PROJECT_FILE}: profile: {name}"
            known = ", ".join(sorted(config.profiles)) or "none (add a `profiles:` mapping)"
            raise ProjectError(f"{where}: unknown profile {name!r}; profiles in {PROJECT_FILE}: {known}")
        changes = {f: getattr(chosen, f) for f in chosen.__struct_fields__ if getattr(chosen, f) is not None}
        config = msgspec.structs.replace(config, profile=name, **changes)
    if threads := environ.get(ENV_THREADS):
        if not threads.isascii() or not threads.isdigit() or int(threads) < 1:
            raise ProjectError(f"{ENV_THREADS}={threads!r}: write a whole number of threads >= 1, e.g. 4")
        config = msgspec.structs.replace(config, threads=int(threads))
    if limit := environ.get(ENV_MEMORY_LIMIT):
        config = msgspec.structs.replace(config, memory_limit=limit)
    if config.memory_limit:
        try:  # checked here so `seeknal plan` reports it too, not only `seeknal run`
            parse_memory_limit(config.memory_limit)
        except EngineError as e:
            where = ENV_MEMORY_LIMIT if environ.get(ENV_MEMORY_LIMIT) else f"{PROJECT_FILE}: memory_limit"
            raise ProjectError(f"{where}: {e}") from e
    return config


def output_node_id(path: str | Path) -> str | None:
    """The node whose output ``.../target/intermediate/<kind>_<name>.parquet`` is, or None.

    >>> output_node_id("target/intermediate/feature_group_customer_features.parquet")
    'feature_group.customer_features'
    >>> output_node_id("data/x.parquet") is None
    True
    """
    p = Path(path)
    if p.parent.name != "intermediate" or p.parent.parent.name != "target" or p.suffix != ".parquet":
        return None
    for kind in sorted(Kind, key=lambda k: -len(k.value)):
        prefix = kind.value + "_"
        if p.stem.startswith(prefix) and len(p.stem) > len(prefix):
            return f"{kind.value}.{p.stem[len(prefix):]}"
    return None


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
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise SpecError(f"{PROJECT_FILE}: not UTF-8 text ({e.reason} at offset {e.start}); "
                            "save the file as UTF-8") from e
        except OSError as e:
            raise ProjectError(f"{PROJECT_FILE}: cannot read: {os_error_text(e)}") from e
        data, lines = parse_yaml(text, PROJECT_FILE)
        try:
            config = msgspec.convert(data or {}, ProjectConfig)
        except msgspec.ValidationError as e:
            field, problem = explain(e)
            line = lines.get(tuple(field[:1]), 1)
            raise SpecError(f"{PROJECT_FILE}:{line}: {format_problem(field, problem)}") from e
        return effective_config(config, os.environ)

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
    def tmp_root(self) -> Path:
        """``target/tmp/``: one folder per run (see :attr:`tmp`)."""
        return self.target / "tmp"

    @property
    def tmp(self) -> Path:
        """This process's temp/spill folder, ``target/tmp/run-<pid>/``.

        Per process, so a run never deletes another's spill files; a folder whose
        process is gone is removed by the next run or ``seeknal clean``.
        """
        return self.tmp_root / f"run-{os.getpid()}"

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
        return _child(self.feature_store, entity, "entity")

    def entity_table(self, entity: str) -> Path:
        return self.entity_dir(entity) / ENTITY_TABLE

    def entity_catalog(self, entity: str) -> Path:
        return self.entity_dir(entity) / ENTITY_CATALOG

    def online_dir(self, entity: str) -> Path:
        """``target/online/<entity>/``: published snapshots and the CURRENT pointer."""
        return _child(self.target / "online", entity, "entity")

    @property
    def soa_states(self) -> Path:
        """``target/state/soa/``: per SOA node over partitioned input, its partial aggregates."""
        return self.target / "state" / "soa"

    def intermediate_path(self, output_name: str) -> Path:
        return _child(self.intermediate, output_name, "output", ".parquet")

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


def _child(base: Path, name: str, what: str, suffix: str = "") -> Path:
    """``base/<name><suffix>`` for a plain name only: every path the engine writes or deletes stays inside
    the project whatever a catalog or manifest on disk says (names are checked at load time too).

    >>> _child(Path("t"), "../x", "entity")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    seeknal_flow.errors.ProjectError: entity name '../x' is not a plain name ...
    """
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ProjectError(f"{what} name {name!r} is not a plain name (letters, digits, _); "
                           f"refusing a path outside {base}")
    return base / f"{name}{suffix}"
