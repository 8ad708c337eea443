"""The per-worker in-memory index of published snapshots: key -> row, columns as Python lists.

The online store loads an entity's snapshot and its key -> row dict; this module adds what the
JSON hot path needs so a request costs dict look-ups and list indexing, no SQL and no Arrow
call: each asked column converted once per snapshot version to a Python list. A newer
publication (a new file pointer, or a new Redis version) is picked up on the next request and
the lists are rebuilt lazily, so a group added by a later ``seeknal run`` becomes servable
without a restart.
"""

from __future__ import annotations

import decimal
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from seeknal_flow.errors import ServeError, StoreError
from seeknal_flow.load.project import OnlineStoreType, Project
from seeknal_flow.store.online import _EVENT, OnlineStore, _key_array, open_online_store, published_entities

REDIS_CHECK_INTERVAL = 0.2  # seconds between two "is there a newer version?" questions to Redis


class EntityView:
    """One loaded snapshot version of an entity, ready for lookups from Python."""

    def __init__(self, store: OnlineStore) -> None:
        self.store = store
        self.version = store.version
        self.index = store.index
        self.join_keys = store.join_keys
        self._lists: dict[str, list] = {}
        self._resolved: dict[tuple[str, ...] | None, list[str]] = {}
        # TTL: each group's event time as epoch seconds (None when NULL), compared per row.
        self._ttl = {g: (ttl.total_seconds(), self._epochs(f"{g}.{_EVENT}")) for g, ttl in store.ttl.items()}

    def _epochs(self, column: str) -> list[float | None]:
        col = self.store.table[column]
        if pa.types.is_date(col.type):
            col = col.cast(pa.timestamp("s"))
        return pc.divide(col.cast(pa.timestamp("us", getattr(col.type, "tz", None))).cast(pa.int64()),
                         1e6).to_pylist()

    def column(self, name: str) -> list:
        values = self._lists.get(name)
        if values is None:
            col = self.store.table[name]
            values = col.to_pylist()
            if pa.types.is_decimal(col.type):  # JSON numbers, as before
                values = [float(v) if isinstance(v, decimal.Decimal) else v for v in values]
            self._lists[name] = values
        return values

    def resolve(self, features: list[str] | None) -> list[str]:
        key = None if features is None else tuple(features)
        columns = self._resolved.get(key)
        if columns is None:
            columns = self._resolved[key] = self.store.resolve_features(features)
            missing = [c for c in columns if c not in self.store.table.schema.names]
            if missing:
                raise StoreError(f"feature(s) {', '.join(missing)} are no longer published for entity "
                                 f"'{self.store.entity}'; ask for current features")
        return columns

    def rows(self, keys: list, columns: list[str], now: float | None = None) -> tuple[list[list], int]:
        """``[[key..., feature...], ...]`` in request order and the number of unknown keys."""
        join_keys, index = self.join_keys, self.index
        single = join_keys[0] if len(join_keys) == 1 else None
        lists = [self.column(c) for c in columns]
        key_lists = [self.column(k) for k in join_keys]
        ttl_checks = []
        if self._ttl:
            now = now if now is not None else datetime.now(UTC).timestamp()
            for pos, c in enumerate(columns):
                group = c.split(".", 1)[0]
                if group in self._ttl:
                    ttl_checks.append((pos, now - self._ttl[group][0], self._ttl[group][1]))
        out = []
        unknown = []
        for i, key in enumerate(keys):
            if not isinstance(key, dict):
                raise ServeError(f"key #{i} must be a mapping like {{'{join_keys[0]}': ...}}, got {key!r}")
            try:
                value = key[single] if single is not None else tuple(key[k] for k in join_keys)
            except KeyError:
                missing = [k for k in join_keys if k not in key]
                raise ServeError(f"key #{i} {key!r} lacks join key(s) {missing} of entity "
                                 f"'{self.store.entity}'") from None
            try:
                row = index.get(value)
            except TypeError:  # unhashable (a list or dict as a key value)
                row = None
            if row is None:
                unknown.append(i)
                out.append([None] * (len(join_keys) + len(columns)))
                continue
            values = [kl[row] for kl in key_lists]
            values += [col[row] for col in lists]
            for pos, cutoff, epochs in ttl_checks:
                t = epochs[row]
                if t is not None and t < cutoff:
                    values[len(join_keys) + pos] = None
            out.append(values)
        if unknown:  # echo unknown keys in the snapshot's key type (another type becomes NULL), as before
            for n, k in enumerate(join_keys):
                typ = self.store.table.schema.field(k).type
                echoed = _key_array([keys[i][k] for i in unknown], typ).to_pylist()
                for i, v in zip(unknown, echoed, strict=True):
                    out[i][n] = v
        return out, len(unknown)

    def arrow(self, keys: list, columns: list[str]) -> pa.Table:
        """The same rows as an Arrow table (the Arrow IPC response)."""
        try:
            return self.store.lookup(keys, columns)
        except StoreError as e:
            raise ServeError(str(e)) from e


class ServingIndex:
    """The entities a worker serves, each loaded on first use and reloaded on publication.

    >>> ServingIndex(Project.find("examples/ml-path")).view("customer").rows(  # doctest: +SKIP
    ...     [{"customer_id": "CUST-100"}], ["customer_features.total_revenue"])
    """

    def __init__(self, project: Project) -> None:
        self.project = project
        self.redis = project.config.online_store.type == OnlineStoreType.REDIS
        self._views: dict[str, EntityView] = {}

    def view(self, entity: str) -> EntityView:
        view = self._views.get(entity)
        if view is None:
            if not isinstance(entity, str) or not entity.isidentifier():
                raise ServeError(f"unknown entity {entity!r}")
            store = open_online_store(self.project, entity)
            if self.redis:
                store.check_interval = REDIS_CHECK_INTERVAL
            view = self._views[entity] = EntityView(store)
        elif view.store.refresh():
            view = self._views[entity] = EntityView(view.store)
        return view

    def entities(self) -> list[str]:
        return published_entities(self.project)

    def loaded(self) -> dict[str, tuple[Any, str]]:
        return {e: (v.version, v.store.published_at) for e, v in self._views.items()}

    def describe(self) -> list[dict]:
        """``GET /entities``: each published entity, its groups, features with dtypes, and freshness."""
        out = []
        for entity in self.entities():
            try:
                view = self.view(entity)
            except StoreError:
                continue  # unpublished between the listing and the read
            store = view.store
            schema = store.table.schema
            groups = {}
            for group, info in sorted(store.groups.items()):
                event = store.table[f"{group}.{_EVENT}"]
                latest = pc.max(event).as_py() if len(event) else None
                groups[group] = {
                    "features": {f: str(schema.field(f"{group}.{f}").type) for f in info["features"]},
                    "ttl": info.get("ttl"),
                    "latest_event_time": latest.isoformat() if latest is not None else None,
                }
            out.append({"entity": entity, "join_keys": store.join_keys, "rows": store.table.num_rows,
                        "published_at": store.published_at, "version": str(_version(view.version)),
                        "groups": groups})
        return out


def _version(version: object) -> object:
    return version[0] if isinstance(version, tuple) else version
