"""The ASGI app of ``seeknal serve``, written against the ASGI spec (no framework).

Routes: ``POST /features`` (JSON, or an Arrow IPC stream with ``Accept:
application/vnd.apache.arrow.stream``), ``GET /health``, ``GET /ready``, ``GET /entities``,
``GET /metrics``. Every route but ``/health`` needs ``Authorization: Bearer <token>`` when a
token is set. A bad request is a 4xx with a one-line ``{"error": ...}``; the online store's
server being down is a 503; nothing a client sends yields a 500.

>>> app = FeatureApp(Project.find("examples/ml-path"))  # doctest: +SKIP
>>> # uvicorn.run(app, port=8765)
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

import msgspec
import pyarrow as pa
import pyarrow.ipc as ipc

from seeknal_flow.errors import SeeknalError, StoreUnavailableError
from seeknal_flow.load.project import Project
from seeknal_flow.serve.auth import TOKEN_ENV, authorized
from seeknal_flow.serve.index import ServingIndex
from seeknal_flow.serve.limits import BODY_TIMEOUT, MAX_KEYS, HTTPError, read_body
from seeknal_flow.serve.metrics import Metrics

ARROW_STREAM = b"application/vnd.apache.arrow.stream"
PROJECT_ENV = "SEEKNAL_SERVE_PROJECT"
QUIET_ENV = "SEEKNAL_SERVE_QUIET"
TIMEOUT_ENV = "SEEKNAL_SERVE_TIMEOUT"
_JSON = [(b"content-type", b"application/json")]
_ROUTES = {("POST", "/features"), ("GET", "/health"), ("GET", "/ready"), ("GET", "/entities"), ("GET", "/metrics")}
_encode = msgspec.json.Encoder(decimal_format="number").encode
_decode = msgspec.json.Decoder().decode
_access = logging.getLogger("seeknal.serve.access")
_log = logging.getLogger("seeknal.serve")


class FeatureApp:
    """The feature server as an ASGI application (one per worker process)."""

    def __init__(self, project: Project, token: str | None = None, quiet: bool = False,
                 body_timeout: float = BODY_TIMEOUT) -> None:
        self.project = project
        self.body_timeout = body_timeout
        self.token = token or None
        self.quiet = quiet
        self.index = ServingIndex(project)
        self.metrics = Metrics()

    async def __call__(self, scope, receive, send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return

    async def _http(self, scope, receive, send) -> None:
        started = time.perf_counter()
        method, path = scope["method"], scope["path"]
        headers = dict(scope["headers"])  # names arrive lower-cased (ASGI)
        route = path if (method, path) in _ROUTES else "other"
        content_type = _JSON
        try:
            if path != "/health" and not authorized(headers.get(b"authorization"), self.token):
                raise HTTPError(401, "missing or wrong token: send 'Authorization: Bearer <token>'")
            if route == "/features":
                status, body, content_type = await self._features(receive, headers)
            elif route == "/health":
                status, body = 200, b'{"status":"ok"}'
            elif route == "/ready":
                status, body = self._ready()
            elif route == "/entities":
                status, body = 200, _encode({"entities": self.index.describe()})
            elif route == "/metrics":
                status, body = 200, self.metrics.render(self.index.loaded())
                content_type = [(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")]
            elif any(p == path for _, p in _ROUTES):
                raise HTTPError(405, f"{method} {path} is not allowed; routes: {_route_list()}")
            else:
                raise HTTPError(404, f"no route {path}; routes: {_route_list()}")
        except HTTPError as e:
            status, body = e.status, _encode({"error": str(e)})
        except StoreUnavailableError as e:
            status, body = 503, _encode({"error": str(e).splitlines()[0]})
        except SeeknalError as e:
            status, body = 400, _encode({"error": str(e).splitlines()[0]})
        except Exception as e:  # the server boundary: never a 500 for user input; log and report the cause
            _log.warning("%s %s: %s: %s", method, path, type(e).__name__, e)
            status, body = 400, _encode({"error": f"bad request: {type(e).__name__}: {str(e).splitlines()[0]}"})
        await send({"type": "http.response.start", "status": status,
                    "headers": [*content_type, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
        elapsed = time.perf_counter() - started
        self.metrics.observe(route, status, elapsed)
        if not self.quiet:
            client = scope.get("client") or ("-", 0)
            _access.info('%s "%s %s" %d %d %.2fms', client[0], method, path, status, len(body), elapsed * 1000)

    def _ready(self) -> tuple[int, bytes]:
        entities = self.index.entities()
        if not entities:
            return 503, _encode({"error": "no entity is published yet; run `seeknal run`"})
        for entity in entities:
            self.index.view(entity)
        return 200, _encode({"status": "ready", "entities": entities})

    async def _features(self, receive, headers) -> tuple[int, bytes, list]:
        raw = await read_body(receive, headers, self.body_timeout)
        try:
            request = _decode(raw) if raw.strip() else None
        except msgspec.DecodeError as e:
            raise HTTPError(400, f"malformed JSON: {e}") from e
        if not isinstance(request, dict):
            raise HTTPError(400, 'body must be a JSON object like {"entity": ..., "keys": [...]}')
        entity, keys, features = request.get("entity"), request.get("keys"), request.get("features")
        if not isinstance(entity, str):
            raise HTTPError(400, "'entity' must be a string, e.g. \"customer\"")
        if not isinstance(keys, list):
            raise HTTPError(400, "'keys' must be a list of objects")
        if len(keys) > MAX_KEYS:
            raise HTTPError(413, f"{len(keys)} keys in one request; at most {MAX_KEYS}: split the request")
        if features is not None and not (isinstance(features, list) and all(isinstance(f, str) for f in features)):
            raise HTTPError(400, "'features' must be a list of 'group.feature' strings")
        view = self.index.view(entity)
        columns = view.resolve(features)
        if ARROW_STREAM in headers.get(b"accept", b""):
            table = view.arrow(keys, columns)
            unknown = sum(not _known(view, k) for k in keys)
            self.metrics.keys(entity, len(keys), unknown)
            return 200, _ipc_stream(table), [(b"content-type", ARROW_STREAM)]
        rows, unknown = view.rows(keys, columns)
        self.metrics.keys(entity, len(keys), unknown)
        return 200, _encode({"features": [*view.join_keys, *columns], "rows": rows}), _JSON


def _known(view, key: dict) -> bool:
    jk = view.join_keys
    value = key[jk[0]] if len(jk) == 1 else tuple(key[k] for k in jk)
    try:
        return value in view.index
    except TypeError:
        return False


def _ipc_stream(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _route_list() -> str:
    return ", ".join(f"{m} {p}" for m, p in sorted(_ROUTES, key=lambda r: r[1]))


def app_from_env() -> FeatureApp:
    """The app of one uvicorn worker, configured by ``seeknal serve`` through the environment."""
    if not os.environ.get(QUIET_ENV):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        _access.addHandler(handler)
        _access.setLevel(logging.INFO)
        _access.propagate = False
    return FeatureApp(Project.find(Path(os.environ[PROJECT_ENV])), os.environ.get(TOKEN_ENV),
                      quiet=bool(os.environ.get(QUIET_ENV)),
                      body_timeout=float(os.environ.get(TIMEOUT_ENV) or BODY_TIMEOUT))
