"""``seeknal serve``: the online store over HTTP JSON (loopback by default).

``POST /features`` with ``{"entity": "customer", "keys": [{"customer_id": "CUST-100"}],
"features": ["customer_features.total_revenue"]}`` answers
``{"features": [...], "rows": [[...], ...]}``; ``GET /health`` answers ``{"status": "ok"}``.
Any problem with the request is a 400 with a one-line ``{"error": ...}``.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from seeknal_flow.errors import SeeknalError, ServeError
from seeknal_flow.load.project import Project
from seeknal_flow.store.online import OnlineStore

MAX_BODY = 1 << 20
_log = logging.getLogger(__name__)


class FeatureServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, project: Project, host: str = "127.0.0.1", port: int = 8765) -> None:
        self.project = project
        self._stores: dict[str, OnlineStore] = {}
        self._lock = threading.Lock()
        super().__init__((host, port), _Handler)

    def store(self, entity: str) -> OnlineStore:
        with self._lock:
            store = self._stores.get(entity)
            if store is None:
                if not isinstance(entity, str) or not entity.isidentifier():
                    raise ServeError(f"unknown entity {entity!r}")
                store = OnlineStore(self.project, entity)
                self._stores[entity] = store
            return store


class _Handler(BaseHTTPRequestHandler):
    server: FeatureServer
    protocol_version = "HTTP/1.1"
    # Headers and body are two small writes; with Nagle on, each keep-alive reply waits ~40 ms.
    disable_nagle_algorithm = True

    def log_message(self, fmt: str, *args) -> None:  # keep the terminal quiet
        pass

    def _send(self, code: int, payload: dict) -> None:
        body = json.dumps(payload, default=_json_default).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/health":
            self._send(200, {"status": "ok"})
        else:
            self._send(404, {"error": f"no route {self.path}; use POST /features or GET /health"})

    def do_POST(self) -> None:
        if self.path != "/features":
            self._send(404, {"error": f"no route {self.path}; use POST /features"})
            return
        try:
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if length < 0 or length > MAX_BODY:
                self.close_connection = True  # the body is not read: do not reuse the connection
                raise ServeError(f"Content-Length must be between 0 and {MAX_BODY} bytes")
            try:
                request = json.loads(self.rfile.read(length) or b"null")
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise ServeError(f"malformed JSON: {e}") from e
            if not isinstance(request, dict):
                raise ServeError('body must be a JSON object like {"entity": ..., "keys": [...]}')
            entity, keys = request.get("entity"), request.get("keys")
            if not isinstance(entity, str):
                raise ServeError("'entity' must be a string, e.g. \"customer\"")
            if not isinstance(keys, list):
                raise ServeError("'keys' must be a list of objects")
            features = request.get("features")
            if features is not None and not (isinstance(features, list) and all(isinstance(f, str) for f in features)):
                raise ServeError("'features' must be a list of 'group.feature' strings")
            store = self.server.store(entity)
            columns = store.resolve_features(features)
            table = store.lookup(keys, columns)
            names = table.column_names
            rows = [list(r) for r in zip(*(table[c].to_pylist() for c in names), strict=True)]
            self._send(200, {"features": names, "rows": rows})
        except SeeknalError as e:
            self._send(400, {"error": str(e).splitlines()[0]})
        except Exception as e:  # the server boundary: never a 500 for user input; log and report the cause
            _log.warning("POST /features: %s: %s", type(e).__name__, e)
            _log.debug("POST /features failed", exc_info=True)
            self._send(400, {"error": f"bad request: {type(e).__name__}: {e}"})


def _json_default(value: object):
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    return str(value)
