"""Typed node specifications: what a node *is*, validated once at load time.

Every node file (Python or YAML) becomes one of these frozen msgspec Structs.
Past discovery, the rest of the code trusts them.
"""

from __future__ import annotations

import enum
import re
from typing import Any

import msgspec

from operators.soa.spec import SOAQuery

NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Kind(str, enum.Enum):
    """Node kinds; ``value`` is the prefix of the node id (``kind.name``)."""

    SOURCE = "source"
    TRANSFORM = "transform"
    FEATURE_GROUP = "feature_group"
    SECOND_ORDER_AGGREGATION = "second_order_aggregation"

    @property
    def folder(self) -> str:
        """Folder under ``seeknal/`` where ``seeknal apply`` puts this kind."""
        return _FOLDERS[self]

    @classmethod
    def parse(cls, text: str) -> Kind:
        """``"feature-group"`` or ``"feature_group"`` -> ``Kind.FEATURE_GROUP``.

        >>> Kind.parse("feature-group").value
        'feature_group'
        """
        norm = text.strip().lower().replace("-", "_")
        aliases = {"soa": cls.SECOND_ORDER_AGGREGATION}
        if norm in aliases:
            return aliases[norm]
        try:
            return cls(norm)
        except ValueError as e:
            valid = ", ".join(k.value.replace("_", "-") for k in cls)
            raise ValueError(f"unknown kind {text!r}; valid kinds: {valid}") from e


_FOLDERS = {
    Kind.SOURCE: "sources",
    Kind.TRANSFORM: "transforms",
    Kind.FEATURE_GROUP: "feature_groups",
    Kind.SECOND_ORDER_AGGREGATION: "second_order_aggregations",
}


class SourceFormat(str, enum.Enum):
    CSV = "csv"
    PARQUET = "parquet"
    JSON = "json"
    JSONL = "jsonl"
    POSTGRES = "postgres"
    SQLITE = "sqlite"

    @property
    def is_database(self) -> bool:
        """Read from a database (``connection`` + ``table``/``query``), not from a file."""
        return self in (SourceFormat.POSTGRES, SourceFormat.SQLITE)


class Isolation(str, enum.Enum):
    INPROCESS = "inprocess"
    UV = "uv"
    AUTO = "auto"


class Location(msgspec.Struct, frozen=True):
    """Where a node (or a ref) is written: a project-relative file and a 1-based line."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


# A Ref target ``entity:<name>`` stands for every feature group of that entity (a read of
# its published features, e.g. ``OnlineFeaturesDuckDB(entity="customer")``); the DAG expands it.
ENTITY_REF = "entity:"


class Ref(msgspec.Struct, frozen=True):
    """A literal reference to another node, found in code or SQL (or ``entity:<name>``)."""

    target: str
    location: Location


class Entity(msgspec.Struct, frozen=True):
    """The entity a feature group describes. ``entity="customer"`` -> key ``customer_id``."""

    name: str
    join_keys: tuple[str, ...]

    @classmethod
    def from_value(cls, value: str | dict | None) -> Entity | None:
        """Build from the decorator / YAML value.

        >>> Entity.from_value("customer").join_keys
        ('customer_id',)
        """
        if value is None:
            return None
        if isinstance(value, str):
            return cls(name=value, join_keys=(f"{value}_id",))
        keys = value.get("join_keys") or [f"{value['name']}_id"]
        return cls(name=value["name"], join_keys=tuple(keys))


class PythonCode(msgspec.Struct, frozen=True, kw_only=True):
    """A Python node's function: where it lives and its normalized source text.

    ``source`` is the function re-printed from its syntax tree without its
    docstring (comments never survive parsing), plus the module's non-node
    top-level code (imports, helpers, constants) that it may use: so a comment
    edit does not re-run a node, and a helper edit does.
    """

    path: str  # absolute path of the module file
    function: str
    source: str
    dependencies: tuple[str, ...] = ()  # PEP 723 `dependencies`
    requires_python: str | None = None


class NodeSpec(msgspec.Struct, frozen=True, kw_only=True):
    """Fields every node has."""

    name: str
    location: Location
    description: str = ""
    tags: tuple[str, ...] = ()
    params: dict[str, Any] = {}
    refs: tuple[Ref, ...] = ()

    kind = Kind.SOURCE  # overridden per subclass (class attribute, not a field)

    @property
    def id(self) -> str:
        return f"{self.kind.value}.{self.name}"

    @property
    def output_name(self) -> str:
        """File stem under ``target/intermediate/`` and REPL view name."""
        return f"{self.kind.value}_{self.name}"


class Incremental(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``incremental: {column: updated_at}``: fetch only rows above the highest value materialized."""

    column: str


class PartitionOn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``partition_on: {column: id, partitions: 4}``: N range queries on N connections."""

    column: str
    partitions: int = 4


class SourceSpec(NodeSpec, frozen=True, kw_only=True, tag="source"):
    """A raw source: a file/folder (``table`` is its path) or a database table or query.

    Database sources (``postgres``, ``sqlite``) carry ``connection`` as written
    (``${SHOP_PG_URL}``: expanded from the environment only when the source is
    fingerprinted or read, never stored expanded).
    """

    kind = Kind.SOURCE
    format: SourceFormat
    table: str = ""  # file sources: path relative to the project root; databases: [schema.]table
    columns: dict[str, str] = {}
    partition_by: tuple[str, ...] = ()
    python: PythonCode | None = None
    connection: str = ""
    query: str | None = None
    incremental: Incremental | None = None
    partition_on: PartitionOn | None = None

    @property
    def is_database(self) -> bool:
        return self.format.is_database


class TransformSpec(NodeSpec, frozen=True, kw_only=True, tag="transform"):
    kind = Kind.TRANSFORM
    sql: str | None = None
    python: PythonCode | None = None
    partitioned: bool = False
    isolation: Isolation | None = None


class OnRun(str, enum.Enum):
    WARN = "warn"
    FAIL = "fail"


class _Check(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag_field="type"):
    on_run: OnRun | None = None  # also apply during `seeknal run`


class NullCheck(_Check, frozen=True, kw_only=True, tag="null"):
    """At most ``max_fraction`` of rows NULL in each column."""

    columns: tuple[str, ...]
    max_fraction: float = 0.0


class RangeCheck(_Check, frozen=True, kw_only=True, tag="range"):
    """Every non-NULL value within ``[min, max]`` (either bound optional)."""

    column: str
    min: float | None = None
    max: float | None = None


class UniqueCheck(_Check, frozen=True, kw_only=True, tag="unique"):
    """No two rows share the same values in ``columns``."""

    columns: tuple[str, ...]


class FreshnessCheck(_Check, frozen=True, kw_only=True, tag="freshness"):
    """The newest event time is at most ``max_age`` old (``"2d"``)."""

    max_age: str


class SchemaCheck(_Check, frozen=True, kw_only=True, tag="schema"):
    """No column dropped or retyped since the last successful run."""


Check = NullCheck | RangeCheck | UniqueCheck | FreshnessCheck | SchemaCheck


class NullPolicy(str, enum.Enum):
    """What a feature group does with rows whose join key or event time is NULL (``nulls:``)."""

    DROP = "drop"  # keep them out of the entity and say how many under the node
    FAIL = "fail"  # fail the node; its previous output stays


class FeatureGroupSpec(TransformSpec, frozen=True, kw_only=True, tag="feature_group"):
    kind = Kind.FEATURE_GROUP
    entity: Entity | None = None
    event_time_col: str = "event_time"
    features: tuple[str, ...] | None = None
    validation: tuple[Check, ...] = ()
    ttl: str | None = None
    nulls: NullPolicy = NullPolicy.DROP


class SOASpec(NodeSpec, frozen=True, kw_only=True, tag="second_order_aggregation"):
    """A second-order aggregation: ``query`` over the output of ``source`` (YAML) or
    over what the decorated function returns; ``spine`` makes it temporal."""

    kind = Kind.SECOND_ORDER_AGGREGATION
    query: SOAQuery
    source: str | None = None
    spine: str | None = None
    python: PythonCode | None = None


AnySpec = SourceSpec | TransformSpec | FeatureGroupSpec | SOASpec


def check_name(name: object) -> str | None:
    """Return a problem with a node name, or None.

    >>> check_name("bad-name")
    "name 'bad-name' must match ^[A-Za-z_][A-Za-z0-9_]*$"
    """
    if not isinstance(name, str) or not NAME_RE.match(name):
        return f"name {name!r} must match {NAME_RE.pattern}"
    return None


def split_id(node_id: str) -> tuple[Kind, str]:
    """``"source.transactions"`` -> ``(Kind.SOURCE, "transactions")``; ValueError if malformed.

    >>> split_id("feature_group.customer_features")
    (<Kind.FEATURE_GROUP: 'feature_group'>, 'customer_features')
    """
    kind, sep, name = node_id.partition(".")
    if not sep or not NAME_RE.match(name):
        raise ValueError(f"{node_id!r} is not of the form kind.name")
    try:
        return Kind(kind), name
    except ValueError as e:
        valid = ", ".join(k.value for k in Kind)
        raise ValueError(f"{node_id!r} has unknown kind {kind!r}; valid kinds: {valid}") from e
