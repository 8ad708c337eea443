"""`seeknal serve` as a user runs it: a real server process (uvicorn) on a free loopback port,
real HTTP clients (http.client, raw sockets) and real Arrow Flight clients."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.flight as fl
import pyarrow.ipc as ipc
import pytest

pytestmark = pytest.mark.serve
pytest.importorskip("uvicorn", reason="seeknal serve needs the `serve` extra: pip install -e '.[serve]'")

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "ml-path"
CF_FEATURES = ["total_orders", "total_revenue", "avg_order_value", "first_order_date", "last_order_date"]
PP_FEATURES = ["top_category", "category_count", "electronics_ratio"]
REVENUE = {"CUST-100": 184.98, "CUST-101": 499.49, "CUST-102": 75.25, "CUST-103": 45.99, "CUST-104": 199.95,
           "CUST-105": 250.0}
TOKEN = "t0ken-for-tests"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_cli(*args: str, project: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "seeknal_flow.cli.main", *args, "--project", str(project)],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
                          timeout=300)


class Server:
    """A `seeknal serve` process; ``log`` is its stdout+stderr file."""

    def __init__(self, project: Path, *args: str, env: dict | None = None, flight: bool = False) -> None:
        self.port = free_port()
        self.flight_port = free_port() if flight else None
        self.log = project.parent / f"serve-{self.port}.log"
        cmd = [sys.executable, "-m", "seeknal_flow.cli.main", "serve", "--project", str(project),
               "--port", str(self.port), *args]
        if flight:
            cmd += ["--flight-port", str(self.flight_port)]
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                         env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"seeknal serve exited {self.proc.returncode}: {self.log.read_text()}")
            try:
                if self.request("GET", "/health")[0] == 200:
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise AssertionError(f"seeknal serve did not answer /health within 30 s: {self.log.read_text()}")

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
                timeout: float = 10):
        con = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            con.request(method, path, body, {"Content-Type": "application/json", **(headers or {})})
            resp = con.getresponse()
            return resp.status, resp.getheader("Content-Type"), resp.read()
        finally:
            con.close()

    def json(self, method: str, path: str, payload=None, headers: dict | None = None):
        body = None if payload is None else (payload if isinstance(payload, bytes) else json.dumps(payload).encode())
        status, ctype, raw = self.request(method, path, body, headers)
        return status, json.loads(raw) if ctype == "application/json" else raw.decode()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def server(ran_project):
    srv = Server(ran_project)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def strict(ran_project):
    """Token, a 1 s timeout, Arrow Flight, no access log."""
    srv = Server(ran_project, "--token", TOKEN, "--timeout", "1", "--quiet", flight=True)
    yield srv
    srv.stop()


AUTH = {"Authorization": f"Bearer {TOKEN}"}
REQUEST = {"entity": "customer", "keys": [{"customer_id": "CUST-101"}, {"customer_id": "x' OR '1'='1"},
                                          {"customer_id": "CUST-100"}],
           "features": ["customer_features.total_revenue", "customer_features.last_order_date",
                        "product_preferences.category_count"]}


# ------------------------------------------------------------------ routes


def test_features_and_health(server):
    assert server.request("GET", "/health") == (200, "application/json", b'{"status":"ok"}')
    status, body = server.json("POST", "/features", REQUEST)
    assert status == 200, body
    assert body == {
        "features": ["customer_id", "customer_features.total_revenue", "customer_features.last_order_date",
                     "product_preferences.category_count"],
        "rows": [["CUST-101", 499.49, "2026-01-20", 2], ["x' OR '1'='1", None, None, None],
                 ["CUST-100", 184.98, "2026-01-19", 3]],
    }
    status, body = server.json("POST", "/features", {"entity": "customer", "keys": [{"customer_id": "CUST-105"}]})
    assert status == 200
    assert len(body["features"]) == 1 + len(CF_FEATURES) + len(PP_FEATURES)  # all features by default


def test_arrow_ipc_response_is_the_same_table(server):
    status, ctype, raw = server.request("POST", "/features", json.dumps(REQUEST).encode(),
                                        {"Accept": "application/vnd.apache.arrow.stream"})
    assert (status, ctype) == (200, "application/vnd.apache.arrow.stream")
    table = ipc.open_stream(pa.py_buffer(raw)).read_all()
    assert table.column_names == ["customer_id", *REQUEST["features"]]
    assert table["customer_id"].to_pylist() == ["CUST-101", "x' OR '1'='1", "CUST-100"]
    assert table["customer_features.total_revenue"].to_pylist() == [499.49, None, 184.98]
    assert pa.types.is_date(table.schema.field("customer_features.last_order_date").type)
    assert table["product_preferences.category_count"].to_pylist() == [2, None, 3]


def test_keep_alive_connection(server):
    con = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        for cid, revenue in REVENUE.items():
            con.request("POST", "/features", json.dumps({"entity": "customer", "keys": [{"customer_id": cid}],
                                                          "features": ["customer_features.total_revenue"]}))
            assert json.loads(con.getresponse().read())["rows"] == [[cid, revenue]]
        con.request("POST", "/features", b"{broken")  # an error keeps the connection usable
        resp = con.getresponse()
        assert resp.status == 400
        resp.read()
        con.request("GET", "/health")
        assert con.getresponse().status == 200
    finally:
        con.close()


def test_ready_entities_and_metrics(server):
    assert server.json("GET", "/ready") == (200, {"status": "ready", "entities": ["churn_scoring", "customer"]})
    status, body = server.json("GET", "/entities")
    assert status == 200
    customer = next(e for e in body["entities"] if e["entity"] == "customer")
    assert customer["join_keys"] == ["customer_id"] and customer["rows"] == 6
    assert customer["groups"]["customer_features"]["features"]["total_revenue"] == "double"
    assert customer["groups"]["customer_features"]["features"]["last_order_date"] == "date32[day]"
    assert customer["groups"]["customer_features"]["latest_event_time"].startswith("2026-01-20")
    assert customer["published_at"] and customer["version"].isdigit()
    server.json("POST", "/features", {"entity": "customer", "keys": [{"customer_id": "CUST-100"}, {"customer_id": "?"}]})
    status, text = server.json("GET", "/metrics")
    assert status == 200
    metrics = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line and not line.startswith("#")}
    pid = next(k for k in metrics if k.startswith("seeknal_requests_total")).split('pid="')[1].split('"')[0]
    assert metrics[f'seeknal_requests_total{{route="/features",status="200",pid="{pid}"}}'] >= 1
    assert metrics[f'seeknal_request_duration_seconds_bucket{{route="/features",le="+Inf",pid="{pid}"}}'] >= 1
    assert metrics[f'seeknal_keys_served_total{{entity="customer",pid="{pid}"}}'] >= 2
    assert metrics[f'seeknal_unknown_keys_total{{entity="customer",pid="{pid}"}}'] >= 1
    assert metrics[f'seeknal_store_version{{entity="customer",pid="{pid}"}}'] > 0
    assert f'seeknal_store_age_seconds{{entity="customer",pid="{pid}"}}' in metrics


def test_access_log_line_per_request(server, strict):
    server.request("GET", "/health")
    time.sleep(0.2)
    assert any('"GET /health" 200' in line for line in server.log.read_text().splitlines())
    strict.request("GET", "/health")
    time.sleep(0.2)
    assert '"GET /health"' not in strict.log.read_text()  # --quiet


# ------------------------------------------------------------------ bad input: 4xx, one line, never 500


@pytest.mark.parametrize(
    "body,message",
    [
        (b"{not json", "malformed JSON"),
        (b"[1, 2]", "body must be a JSON object"),
        (b"", "body must be a JSON object"),
        (json.dumps({"entity": "shopper", "keys": []}).encode(), "entity 'shopper' has no published features"),
        (json.dumps({"entity": 7, "keys": []}).encode(), "'entity' must be a string"),
        (json.dumps({"entity": "../customer", "keys": []}).encode(), "unknown entity '../customer'"),
        (json.dumps({"entity": "customer", "keys": "CUST-100"}).encode(), "'keys' must be a list"),
        (json.dumps({"entity": "customer", "keys": {"customer_id": "CUST-100"}}).encode(), "'keys' must be a list"),
        (json.dumps({"entity": "customer", "keys": ["CUST-100"]}).encode(), "key #0 must be a mapping"),
        (json.dumps({"entity": "customer", "keys": [{"id": "CUST-100"}]}).encode(), "lacks join key(s) ['customer_id']"),
        (json.dumps({"entity": "customer", "keys": [], "features": ["customer_features.ltv"]}).encode(),
         "group 'customer_features' has no feature 'ltv'"),
        (json.dumps({"entity": "customer", "keys": [], "features": ["loyalty.points"]}).encode(), "unknown group 'loyalty'"),
        (json.dumps({"entity": "customer", "keys": [], "features": "customer_features.total_revenue"}).encode(),
         "'features' must be a list"),
        (json.dumps({"entity": "customer", "keys": [{"customer_id": [1, 2]}]}).encode(), None),  # unhashable key: a miss
    ],
)
def test_bad_requests_are_400_with_one_line(server, body, message):
    status, payload = server.json("POST", "/features", body)
    if message is None:
        assert status == 200 and payload["rows"][0][1:] == [None] * (len(CF_FEATURES) + len(PP_FEATURES))
        return
    assert status == 400, payload
    assert list(payload) == ["error"] and "\n" not in payload["error"]
    assert message in payload["error"]


def test_unknown_route_and_method(server):
    status, payload = server.json("GET", "/nope")
    assert status == 404 and "\n" not in payload["error"] and "POST /features" in payload["error"]
    assert server.json("GET", "/features")[0] == 405


def test_body_over_1_mib_is_413(server):
    status, payload = server.json("POST", "/features", b'{"entity": "customer", "keys": []' + b" " * (2 << 20) + b"}")
    assert status == 413 and "limit of 1048576 bytes" in payload["error"]


def test_chunked_body_over_1_mib_is_413(server):
    con = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        con.request("POST", "/features", (b" " * 65536 for _ in range(20)), encode_chunked=True,
                    headers={"Transfer-Encoding": "chunked"})
        resp = con.getresponse()
        assert resp.status == 413 and "over the limit" in json.loads(resp.read())["error"]
    finally:
        con.close()


def test_more_than_10000_keys_is_413(server):
    keys = [{"customer_id": f"C{i}"} for i in range(10_001)]
    status, payload = server.json("POST", "/features", {"entity": "customer", "keys": keys})
    assert status == 413 and payload["error"] == "10001 keys in one request; at most 10000: split the request"
    status, payload = server.json("POST", "/features", {"entity": "customer", "keys": keys[:10_000],
                                                        "features": ["customer_features.total_orders"]})
    assert status == 200 and len(payload["rows"]) == 10_000


def test_chunked_request_body_is_read(server):
    body = json.dumps(REQUEST).encode()
    con = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        con.request("POST", "/features", iter([body[:10], body[10:30], body[30:]]), encode_chunked=True,
                    headers={"Transfer-Encoding": "chunked", "Content-Type": "application/json"})
        resp = con.getresponse()
        assert resp.status == 200
        assert json.loads(resp.read())["rows"][0] == ["CUST-101", 499.49, "2026-01-20", 2]
    finally:
        con.close()


@pytest.mark.parametrize("length", [b"-1", b"many"])
def test_bad_content_length_is_400(server, length):
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"POST /features HTTP/1.1\r\nHost: localhost\r\nContent-Length: " + length + b"\r\n\r\n{}")
        reply = sock.recv(4096)
    assert reply.startswith(b"HTTP/1.1 400"), reply


def test_slow_client_times_out_without_blocking_others(strict):
    slow = socket.create_connection(("127.0.0.1", strict.port), timeout=10)
    idle = socket.create_connection(("127.0.0.1", strict.port), timeout=10)
    try:
        slow.sendall(b"POST /features HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + TOKEN.encode()
                     + b"\r\nContent-Length: 100\r\n\r\n{\"entity\"")
        started = time.monotonic()
        status, _ = strict.json("POST", "/features", REQUEST, AUTH)  # served while the slow one waits
        assert status == 200 and time.monotonic() - started < 0.5
        reply = slow.recv(4096)  # --timeout 1: the body did not arrive in time
        while b"within" not in reply and (more := slow.recv(4096)):
            reply += more
        assert reply.startswith(b"HTTP/1.1 408"), reply
        assert b"not received within 1 s" in reply
        assert idle.recv(4096) == b""  # a connection that never sends a request is closed after --timeout
        trickle = socket.create_connection(("127.0.0.1", strict.port), timeout=10)
        closed = False
        for byte in b"GET /health HTTP/1.1\r\n":  # headers a byte at a time do not keep it open
            try:
                trickle.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            time.sleep(0.2)
        assert closed or trickle.recv(4096) == b""
        trickle.close()
        assert time.monotonic() - started < 5
    finally:
        slow.close()
        idle.close()


# ------------------------------------------------------------------ auth


def test_token_is_required_except_on_health(strict):
    assert strict.request("GET", "/health")[0] == 200
    for path in ("/ready", "/entities", "/metrics"):
        status, payload = strict.json("GET", path)
        assert status == 401 and "Authorization: Bearer" in payload["error"], path
        assert strict.json("GET", path, headers=AUTH)[0] == 200, path
    assert strict.json("POST", "/features", REQUEST)[0] == 401
    assert strict.json("POST", "/features", REQUEST, {"Authorization": "Bearer wrong"})[0] == 401
    assert strict.json("POST", "/features", REQUEST, {"Authorization": TOKEN})[0] == 401
    assert strict.json("POST", "/features", REQUEST, AUTH)[0] == 200


def test_non_loopback_without_token_refuses_to_start(ran_project):
    result = run_cli("serve", "--host", "0.0.0.0", "--port", str(free_port()), project=ran_project,
                     env={"SEEKNAL_SERVE_TOKEN": ""})
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--token" in lines[0] and "SEEKNAL_SERVE_TOKEN" in lines[0], result.stderr


def test_token_from_environment(ran_project):
    srv = Server(ran_project, "--quiet", env={"SEEKNAL_SERVE_TOKEN": "from-env"})
    try:
        assert srv.json("GET", "/ready")[0] == 401
        assert srv.json("GET", "/ready", headers={"Authorization": "Bearer from-env"})[0] == 200
        assert "from-env" not in srv.log.read_text()
    finally:
        srv.stop()


# ------------------------------------------------------------------ Arrow Flight


def _exchange(port: int, command: dict, batches: list[pa.Table], token: str | None = TOKEN) -> pa.Table:
    client = fl.connect(f"grpc://127.0.0.1:{port}")
    options = fl.FlightCallOptions(headers=[(b"authorization", f"Bearer {token}".encode())] if token else [])
    writer, reader = client.do_exchange(fl.FlightDescriptor.for_command(json.dumps(command).encode()), options)
    try:
        writer.begin(batches[0].schema)
        for t in batches:
            writer.write_table(t)
        writer.done_writing()
        return reader.read_all()
    finally:
        writer.close()
        client.close()


def test_flight_exchange_keeps_order_and_nulls(strict):
    command = {"entity": "customer", "features": ["customer_features.total_revenue", "product_preferences.category_count"]}
    out = _exchange(strict.flight_port, command, [pa.table({"customer_id": ["CUST-101", "nope"]}),
                                                   pa.table({"customer_id": ["CUST-100", "CUST-105", "CUST-101"]})])
    assert out.column_names == ["customer_id", *command["features"]]
    assert out["customer_id"].to_pylist() == ["CUST-101", "nope", "CUST-100", "CUST-105", "CUST-101"]
    assert out["customer_features.total_revenue"].to_pylist() == [499.49, None, 184.98, 250.0, 499.49]
    assert out["product_preferences.category_count"].to_pylist() == [2, None, 3, 1, 2]
    everything = _exchange(strict.flight_port, {"entity": "customer"}, [pa.table({"customer_id": ["CUST-102"]})])
    assert everything.num_columns == 1 + len(CF_FEATURES) + len(PP_FEATURES)


def test_flight_needs_the_token_and_reports_bad_commands(strict):
    keys = [pa.table({"customer_id": ["CUST-101"]})]
    with pytest.raises(fl.FlightUnauthenticatedError):
        _exchange(strict.flight_port, {"entity": "customer"}, keys, token=None)
    with pytest.raises(fl.FlightUnauthenticatedError):
        _exchange(strict.flight_port, {"entity": "customer"}, keys, token="wrong")
    with pytest.raises(fl.FlightServerError, match="entity 'shopper' has no published features"):
        _exchange(strict.flight_port, {"entity": "shopper"}, keys)
    with pytest.raises(fl.FlightServerError, match="unknown group 'loyalty'"):
        _exchange(strict.flight_port, {"entity": "customer", "features": ["loyalty.points"]}, keys)
    with pytest.raises(fl.FlightServerError, match="lacks join key column"):
        _exchange(strict.flight_port, {"entity": "customer"}, [pa.table({"id": ["CUST-101"]})])


def test_two_workers_serve_and_stop(ran_project):
    srv = Server(ran_project, "--workers", "2", "--quiet")
    try:
        for _ in range(4):
            status, body = srv.json("POST", "/features", REQUEST)
            assert status == 200 and body["rows"][0] == ["CUST-101", 499.49, "2026-01-20", 2]
    finally:
        srv.stop()
    assert srv.proc.returncode is not None and "stopped" in srv.log.read_text()
