"""The Redis online store: each entity's latest rows, published as versioned Arrow batches.

Layout under the prefix ``seeknal:<project name>:``::

    entities                       a set of the published entity names
    <entity>:current               the version readers use (a time in ns)
    <entity>:<version>:meta        the pointer (join keys, groups, ttl, published_at) and the batch count
    <entity>:<version>:rows:<i>    Arrow IPC stream of rows [i*BATCH, (i+1)*BATCH)

A publication writes a whole new version (pipelined), then switches ``current`` with one SET, then
deletes the old version: a reader sees either the old or the new entity, never half of one (a
reader that loses the race with the delete re-reads ``current``). The URL's password is never
printed: errors and messages name the store by :func:`redact`.
"""

from __future__ import annotations

import json
import os
import re
import time

import pyarrow as pa
import pyarrow.ipc as ipc
import redis

from seeknal_flow.errors import StoreError, StoreUnavailableError
from seeknal_flow.load.project import Project
from seeknal_flow.store.online import OnlineStore

BATCH_ROWS = 16_384
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_clients: dict[str, redis.Redis] = {}


def resolve_url(project: Project) -> str:
    """``online_store.url`` with its ``${VAR}`` expanded (kept in memory only)."""
    raw = project.config.online_store.url or ""

    def var(m: re.Match) -> str:
        if m.group(1) not in os.environ:
            raise StoreError(f"seeknal_project.yml: online_store.url names ${{{m.group(1)}}}, which is not set; "
                             f"export {m.group(1)}=redis://host:6379/0")
        return os.environ[m.group(1)]

    return _VAR.sub(var, raw)


def redact(url: str) -> str:
    """The URL without its password: ``redis://:***@host:6379/0``.

    >>> redact("redis://user:s3cret@db:6379/0")
    'redis://user:***@db:6379/0'
    """
    return re.sub(r"^([a-z+]+://[^:@/]*):[^@/]*@", r"\1:***@", url)


def client(project: Project) -> tuple[redis.Redis, str]:
    """A (cached) client of the project's Redis and its redacted URL."""
    url = resolve_url(project)
    shown = redact(url)
    conn = _clients.get(url)
    if conn is None:
        try:
            conn = redis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=2.0)
        except ValueError as e:  # a malformed URL; its text may hold the password, so it is not shown
            raise StoreError(f"seeknal_project.yml: online_store.url {shown!r} is not a redis:// URL "
                             "(write redis://host:6379/0)") from e
        _clients[url] = conn
    return conn, shown


def _prefix(project: Project) -> str:
    return f"seeknal:{project.config.name}:"


def _unavailable(shown: str, e: Exception) -> StoreUnavailableError:
    return StoreUnavailableError(f"redis online store {shown} is unavailable: {type(e).__name__}: "
                                 f"{str(e).splitlines()[0] if str(e) else 'no reply'}")


def publish_redis(project: Project, entity: str, snapshot: pa.Table, pointer: dict) -> str:
    """Write ``snapshot`` as a new version of ``entity``, switch readers to it, drop the old one."""
    conn, shown = client(project)
    base = f"{_prefix(project)}{entity}:"
    version = str(time.time_ns())
    batches = [snapshot.slice(i, BATCH_ROWS) for i in range(0, max(snapshot.num_rows, 1), BATCH_ROWS)]
    try:
        pipe = conn.pipeline(transaction=False)
        for i, part in enumerate(batches):
            sink = pa.BufferOutputStream()
            with ipc.new_stream(sink, snapshot.schema) as writer:
                writer.write_table(part)
            pipe.set(f"{base}{version}:rows:{i}", sink.getvalue().to_pybytes())
        pipe.set(f"{base}{version}:meta", json.dumps({**pointer, "batches": len(batches), "version": version}))
        pipe.execute()
        old = conn.getset(f"{base}current", version)  # the switch: one atomic command
        conn.sadd(f"{_prefix(project)}entities", entity)
        if old is not None and old.decode() != version:
            _delete_version(conn, base, old.decode())
    except redis.RedisError as e:
        raise StoreError(f"publishing entity '{entity}' to {str(_unavailable(shown, e))[len('redis online store '):]}"
                         "; the offline outputs under target/ are kept, run `seeknal consolidate` once Redis is back"
                         ) from e
    return shown


def _delete_version(conn: redis.Redis, base: str, version: str) -> None:
    keys = list(conn.scan_iter(match=f"{base}{version}:*", count=1000))
    if keys:
        conn.delete(*keys)


def remove_redis(project: Project, entity: str) -> None:
    """Unpublish ``entity`` (its entity table is gone)."""
    conn, shown = client(project)
    base = f"{_prefix(project)}{entity}:"
    try:
        old = conn.getdel(f"{base}current")
        conn.srem(f"{_prefix(project)}entities", entity)
        if old is not None:
            _delete_version(conn, base, old.decode())
    except redis.RedisError as e:
        raise _unavailable(shown, e) from e


def redis_entities(project: Project) -> list[str]:
    conn, shown = client(project)
    try:
        return sorted(m.decode() for m in conn.smembers(f"{_prefix(project)}entities"))
    except redis.RedisError as e:
        raise _unavailable(shown, e) from e


class RedisOnlineStore(OnlineStore):
    """An entity's snapshot read from Redis and indexed in memory (same interface as :class:`OnlineStore`).

    ``check_interval`` (seconds) bounds how often a lookup asks Redis for a newer version: 0 asks
    every time (the library); the server asks at most a few times a second. A failed check raises
    :class:`StoreUnavailableError` (the server answers 503) and is retried on a later lookup.

    >>> RedisOnlineStore(Project.find("examples/ml-path"), "customer")  # doctest: +SKIP
    """

    def __init__(self, project: Project, entity: str, check_interval: float = 0.0) -> None:
        self._conn, self._shown = client(project)
        self._base = f"{_prefix(project)}{entity}:"
        self.check_interval = check_interval
        self._checked = 0.0
        self._failure: StoreUnavailableError | None = None
        super().__init__(project, entity)

    def _fetch(self) -> tuple[dict, pa.Table, object]:
        for _ in range(3):  # a publication may delete the version between reading `current` and its rows
            try:
                version = self._conn.get(f"{self._base}current")
                if version is None:
                    raise StoreError(self._missing())
                version = version.decode()
                meta = self._conn.get(f"{self._base}{version}:meta")
                parts = self._conn.mget([f"{self._base}{version}:rows:{i}" for i in
                                         range(json.loads(meta)["batches"])]) if meta else [None]
            except redis.RedisError as e:
                raise _unavailable(self._shown, e) from e
            if meta is None or any(p is None for p in parts):
                continue
            tables = [ipc.open_stream(pa.py_buffer(p)).read_all() for p in parts]
            return json.loads(meta), pa.concat_tables(tables), version
        raise StoreError(f"entity '{self.entity}' is being republished too often to read; retry")

    def _changed(self) -> bool:
        now = time.monotonic()
        if now - self._checked < self.check_interval:
            if self._failure is not None:
                raise self._failure
            return False
        self._checked = now
        try:
            version = self._conn.get(f"{self._base}current")
        except redis.RedisError as e:
            self._failure = _unavailable(self._shown, e)
            raise self._failure from e
        self._failure = None
        if version is None:
            raise StoreError(self._missing())
        return version.decode() != self._stamp
