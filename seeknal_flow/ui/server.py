"""``seeknal ui``: the page and its read-only JSON API over a small stdlib HTTP server.

Loopback by default. Binding any other address needs a token (``--token`` or
``SEEKNAL_UI_TOKEN``); when a token is set, every request must carry it, as
``Authorization: Bearer <token>`` or ``?token=<token>`` (the page passes it on to the API).

Example::

    server = UiServer(Project.find(), "127.0.0.1", 8766)
    server.serve_forever()
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import parse_qs, unquote, urlsplit

from seeknal_flow.errors import SeeknalError, UiError
from seeknal_flow.load.project import Project
from seeknal_flow.serve.auth import authorized, is_loopback  # the same bind and bearer rules as `seeknal serve`
from seeknal_flow.ui.api import PREVIEW_DEFAULT, UiApi

ENV_TOKEN = "SEEKNAL_UI_TOKEN"
_log = logging.getLogger(__name__)
# The only files served: fixed names, so no request path ever reaches the file system.
STATIC = {"/": ("index.html", "text/html; charset=utf-8"),
          "/index.html": ("index.html", "text/html; charset=utf-8"),
          "/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
          "/static/style.css": ("style.css", "text/css; charset=utf-8")}
_NODE = re.compile(r"^/api/nodes/([^/]+)(/preview)?$")
MAX_BODY = 1 << 20  # a GET has no use for a body: read and dropped up to this size, refused past it
BODY_TIMEOUT = 10.0  # seconds a client may take to send its headers' body


def check_binding(host: str, token: str | None) -> None:
    """Refuse a non-loopback address without a token (one line saying how to set one)."""
    if not token and not is_loopback(host):
        raise UiError(f"refusing to serve on {host} (not loopback) without a token; pass --token TOKEN "
                      f"or set {ENV_TOKEN}, or bind 127.0.0.1")


def _bad_path(text: str) -> bool:
    """A parameter that tries to leave its place: ``..``, an absolute path, a backslash, a NUL."""
    lowered = text.lower()
    return (".." in text or "%2e%2e" in lowered or "%2f" in lowered or "%5c" in lowered or "\\" in text
            or "\x00" in text or text.startswith("/") or re.match(r"^[a-zA-Z]:", text) is not None)


class UiServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, project: Project, host: str = "127.0.0.1", port: int = 8766, token: str | None = None) -> None:
        check_binding(host, token)
        self.api = UiApi(project)
        self.token = token or None
        super().__init__((host, port), _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: UiServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes; avoid the 40 ms keep-alive stall

    def log_message(self, fmt: str, *args) -> None:  # keep the terminal quiet
        pass

    def _reply(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, code: int, payload) -> None:
        body = payload if isinstance(payload, bytes) else json.dumps(payload, default=str).encode()
        self._reply(code, body, "application/json")

    def _authorized(self, query: dict) -> bool:
        token = self.server.token
        if token is None:
            return True
        header = self.headers.get("Authorization")
        if header is None and query.get("token"):
            # The page's own first load cannot send a header: it may carry the token in the URL.
            return hmac.compare_digest(query["token"][0].encode(), token.encode())
        return authorized(header, token)

    def _drain_body(self) -> None:
        """Read (and drop) a request body, chunked or with a Content-Length, so that its bytes are never
        taken for the next request on this kept-alive connection. The API reads no body; it is capped."""
        chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        length = self.headers.get("Content-Length")
        if not chunked and not length:
            return
        self.connection.settimeout(BODY_TIMEOUT)  # a client that stops sending frees its thread
        try:
            self._read_body(chunked, length)
        except TimeoutError as e:
            self.close_connection = True
            raise UiError(f"request body not received within {BODY_TIMEOUT:g} s", status=408) from e
        finally:
            self.connection.settimeout(None)

    def _read_body(self, chunked: bool, length: str | None) -> None:
        if chunked:
            size = 0
            while True:
                line = self.rfile.readline(1024)
                try:
                    chunk = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError as e:
                    self.close_connection = True
                    raise UiError("malformed chunked request body", status=400) from e
                if chunk == 0:
                    while self.rfile.readline(1024).strip():  # trailers, up to the blank line
                        pass
                    return
                size += chunk
                if size > MAX_BODY:
                    self.close_connection = True
                    raise UiError(f"request body over {MAX_BODY} bytes (the UI API takes no body)", status=413)
                if len(self.rfile.read(chunk + 2)) != chunk + 2:  # the data and its CRLF
                    self.close_connection = True
                    raise UiError("client disconnected inside a chunked body", status=400)
        if length:
            if not length.strip().isdigit() or int(length) > MAX_BODY:
                self.close_connection = True
                raise UiError(f"Content-Length must be a number up to {MAX_BODY} (the UI API takes no body)",
                              status=413 if length.strip().isdigit() else 400)
            self.rfile.read(int(length))

    def do_GET(self) -> None:
        try:
            self._drain_body()
            self._get()
        except UiError as e:
            self._json(e.status, {"error": str(e).splitlines()[0]})
        except SeeknalError as e:  # the project itself is broken (a bad node file): say so, one line
            self._json(500, {"error": str(e).splitlines()[0]})
        except Exception as e:  # the server boundary: log it and answer one line, never a traceback
            _log.warning("GET %s: %s: %s", self.path, type(e).__name__, e)
            self._json(500, {"error": f"internal error: {type(e).__name__}: {e}"})

    def _get(self) -> None:
        raw = urlsplit(self.path)
        query = parse_qs(raw.query)
        path = unquote(raw.path)
        if _bad_path(raw.path[1:]) or _bad_path(path[1:]) or any(_bad_path(v) for vs in query.values() for v in vs):
            raise UiError("path traversal is not allowed in a request", status=400)
        # The stylesheet and script are the wheel's own public files (the browser cannot attach the
        # token to them); the page and every API route need the token.
        if not path.startswith("/static/") and not self._authorized(query):
            raise UiError("missing or wrong token: send 'Authorization: Bearer TOKEN' or open the page with "
                          "?token=TOKEN", status=401)
        if path in STATIC:
            name, content_type = STATIC[path]
            body = resources.files("seeknal_flow.ui").joinpath("static", name).read_bytes()
            self._reply(200, body, content_type)
            return
        api = self.server.api
        if path == "/api/graph":
            self._json(200, api.graph())
        elif path == "/api/entities":
            self._json(200, api.entities())
        elif path == "/api/runs":
            self._json(200, api.runs())
        elif m := _NODE.match(path):
            if m.group(2):
                limit_text = query.get("limit", [str(PREVIEW_DEFAULT)])[0]
                if not limit_text.isdigit():
                    raise UiError(f"limit must be a whole number, got {limit_text!r}", status=400)
                self._json(200, api.preview(m.group(1), int(limit_text)))
            else:
                self._json(200, api.node(m.group(1)))
        else:
            raise UiError(f"no route {path}; the API is GET /api/graph, /api/nodes/<id>, /api/nodes/<id>/preview, "
                          "/api/entities, /api/runs", status=404)

    def _not_allowed(self) -> None:
        self.close_connection = True  # any request body is left unread
        self.send_response(405)
        body = json.dumps({"error": f"{self.command} is not allowed: the UI API is read-only (GET)"}).encode()
        self.send_header("Allow", "GET")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":  # a HEAD reply has no body
            self.wfile.write(body)

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = _not_allowed
