"""``seeknal ui``: a real server process on a free loopback port over a copy of examples/ml-path after a run,
its JSON API, bad input, the token, and the page rendered in headless Chromium."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.browser


class UiProcess:
    """``seeknal ui --port 0`` in a subprocess; the port is read from the line it prints."""

    def __init__(self, project: Path, *args: str, env: dict | None = None) -> None:
        full_env = {k: v for k, v in os.environ.items() if k != "SEEKNAL_UI_TOKEN"}
        full_env.update({"PYTHONPATH": str(REPO), **(env or {})})
        self.stderr = ""
        self.proc = subprocess.Popen([sys.executable, "-u", "-m", "seeknal_flow.cli.main", "ui", "--port", "0",
                                      "--project", str(project), *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=full_env)
        self.banner = self.proc.stdout.readline()
        if "http://" not in self.banner:
            self.stop()
            raise AssertionError(f"seeknal ui did not start: {self.banner!r} {self.stderr}")
        self.port = int(self.banner.split("http://127.0.0.1:", 1)[1].split("/", 1)[0])

    def request(self, path: str, method: str = "GET", headers: dict | None = None) -> tuple[int, dict | str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request(method, path, headers=headers or {})
            res = conn.getresponse()
            body = res.read().decode()
            is_json = res.getheader("Content-Type", "").startswith("application/json")
            return res.status, json.loads(body) if is_json else body
        finally:
            conn.close()

    def get(self, path: str, **kw) -> dict:
        status, body = self.request(path, **kw)
        assert status == 200, (path, status, body)
        return body

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            _, self.stderr = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, self.stderr = self.proc.communicate()


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "seeknal_flow.cli.main", *args], cwd=cwd, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(REPO)})


@pytest.fixture(scope="module")
def ui(ran_project):
    server = UiProcess(ran_project)
    yield server
    server.stop()


# ------------------------------------------------------------------ the API
def test_graph_lists_every_node_with_its_last_run_and_the_edges(ui, ran_project):
    graph = ui.get("/api/graph")
    nodes = {n["id"]: n for n in graph["nodes"]}
    assert len(nodes) == 11
    fg = nodes["feature_group.customer_features"]
    assert fg["kind"] == "feature_group" and fg["status"] == "ok" and fg["rows"] == 6
    assert fg["file"] == "seeknal/feature_groups/customer_features.py"
    assert fg["last_run"] and fg["duration_s"] > 0
    assert {n["status"] for n in nodes.values()} == {"ok"}
    assert ["source.transactions", "feature_group.customer_features"] in graph["edges"]
    assert graph["plan_error"] is None
    assert ["feature_group.customer_daily_agg", "second_order_aggregation.region_metrics"] in graph["edges"]


def test_node_detail_has_code_schema_statistics_and_history(ui, ran_project):
    d = ui.get("/api/nodes/feature_group.customer_features")
    assert d["kind"] == "feature_group" and d["upstream"] == ["source.transactions"] and d["downstream"] == []
    assert "total_revenue" in d["code"] and "@feature_group" in d["code"]
    assert {"name": "total_revenue", "type": "DOUBLE"} in d["schema"]
    assert d["rows"] == 6 and d["partitions"] == []
    cols = {c["name"]: c for c in d["columns"]}
    revenue = cols["total_revenue"]
    assert revenue["null_count"] == 0 and revenue["count"] == 6 and revenue["approx_distinct"] >= 5
    assert float(revenue["min"]) == 45.99 and float(revenue["max"]) == 499.49
    hist = revenue["histogram"]
    assert len(hist["counts"]) <= 20 and sum(hist["counts"]) == 6 and hist["lo"] == 45.99
    assert cols["first_order_date"]["histogram"]["temporal"] is True
    assert sum(cols["first_order_date"]["histogram"]["counts"]) == 6
    top = cols["customer_id"]["top_values"]
    assert len(top) == 6 and all(t["count"] == 1 for t in top)
    assert [h["status"] for h in d["history"]] == ["ran"] and d["history"][0]["rows"] == 6
    assert d["history"][0]["run_id"] == ui.get("/api/runs")["runs"][0]["run_id"]


def test_statistics_are_cached_per_materialization(ui, ran_project):
    ui.get("/api/nodes/source.transactions")
    cache = sorted((ran_project / "target/ui_cache").glob("stats-*.json"))
    assert cache
    before = {p: p.stat().st_mtime_ns for p in cache}
    ui.get("/api/nodes/source.transactions")
    assert {p: p.stat().st_mtime_ns for p in (ran_project / "target/ui_cache").glob("stats-*.json")} == before


def test_preview_reads_the_first_rows_and_caps_the_limit(ui):
    p = ui.get("/api/nodes/source.transactions/preview?limit=3")
    assert p["limit"] == 3 and len(p["rows"]) == 3
    assert p["columns"][:2] == ["customer_id", "order_id"] and p["rows"][0][:2] == ["CUST-100", "ORD-1001"]
    assert ui.get("/api/nodes/source.transactions/preview")["limit"] == 50
    big = ui.get("/api/nodes/source.transactions/preview?limit=100000")
    assert big["limit"] == 500 and len(big["rows"]) == 10


def test_entities_have_keys_groups_features_and_freshness(ui):
    entities = {e["name"]: e for e in ui.get("/api/entities")["entities"]}
    customer = entities["customer"]
    assert customer["join_keys"] == ["customer_id"] and customer["consolidated_at"] and customer["status"] == "ready"
    groups = {g["name"]: g for g in customer["groups"]}
    features = {f["name"]: f for f in groups["customer_features"]["features"]}
    assert features["total_revenue"]["dtype"] == "double"
    assert features["total_revenue"]["description"] == "Per-customer order totals"
    assert groups["customer_features"]["last_updated"]


def test_runs_are_the_recorded_run_results(ui, ran_project):
    runs = ui.get("/api/runs")["runs"]
    assert [r["run_id"] + ".json" for r in runs] == [p.name for p in (ran_project / "target/runs").glob("*.json")]
    assert runs[0]["status"] == "ok" and len(runs[0]["nodes"]) == 11
    assert {n["status"] for n in runs[0]["nodes"]} == {"ran"}


def test_page_and_assets_are_served_from_the_package(ui):
    status, page = ui.request("/")
    assert status == 200 and '<script type="module" src="/static/app.js">' in page
    for asset in ("/static/app.js", "/static/style.css"):
        status, body = ui.request(asset)
        assert status == 200 and body
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")  # no CDN


def test_status_is_never_run_then_ok_then_stale_after_an_edit(example_project, seeknal):
    server = UiProcess(example_project)
    try:
        statuses = {n["id"]: n["status"] for n in server.get("/api/graph")["nodes"]}
        assert set(statuses.values()) == {"never_run"}
        assert server.get("/api/nodes/source.transactions")["columns"] == []
        status, body = server.request("/api/nodes/source.transactions/preview")
        assert status == 404 and "seeknal run" in body["error"]
        assert seeknal("run", cwd=example_project).code == 0
        path = example_project / "seeknal/feature_groups/customer_features.py"
        path.write_text(path.read_text().replace("AS total_revenue", "AS total_revenue -- edited"))
        statuses = {n["id"]: n["status"] for n in server.get("/api/graph")["nodes"]}
        assert statuses["feature_group.customer_features"] == "stale"
        assert statuses["source.transactions"] == "ok"
    finally:
        server.stop()


# ------------------------------------------------------------------ bad input
def test_unknown_node_is_a_404_with_a_json_error(ui):
    status, body = ui.request("/api/nodes/feature_group.nope")
    assert status == 404 and "unknown node 'feature_group.nope'" in body["error"]
    status, body = ui.request("/api/nope")
    assert status == 404 and body["error"].startswith("no route /api/nope")


@pytest.mark.parametrize("path", [
    "/api/nodes/..%2f..%2fseeknal_project.yml",
    "/api/nodes/%2e%2e/preview",
    "/api/nodes/%2E%2E%2fetc%2fpasswd",
    "/static/../seeknal_project.yml",
    "/api/nodes/%2Fetc%2Fpasswd",
    "/api/nodes/source.transactions/preview?limit=../../etc/passwd",
    "/api/nodes/source.transactions/preview?limit=/etc/passwd",
    "/api/nodes/%252e%252e/preview",
])
def test_path_traversal_is_a_400(ui, path):
    status, body = ui.request(path)
    assert status == 400 and "traversal" in body["error"]


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_the_api_is_read_only(ui, method):
    status, body = ui.request("/api/graph", method=method)
    assert status == 405 and "read-only" in body["error"]


def test_a_non_number_limit_is_a_400(ui):
    status, body = ui.request("/api/nodes/source.transactions/preview?limit=lots")
    assert status == 400 and "limit" in body["error"]


def test_off_loopback_without_a_token_refuses_to_start(ran_project):
    r = _cli("ui", "--host", "0.0.0.0", "--port", "0", cwd=ran_project)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "--token" in lines[0] and "SEEKNAL_UI_TOKEN" in lines[0], r.stderr


def test_a_token_when_given_is_required_and_never_printed(ran_project):
    secret = "s3cret-token-for-the-test"
    server = UiProcess(ran_project, env={"SEEKNAL_UI_TOKEN": secret})
    try:
        assert secret not in server.banner
        status, body = server.request("/api/graph")
        assert status == 401 and "token" in body["error"]
        assert server.request("/api/graph", headers={"Authorization": "Bearer wrong"})[0] == 401
        assert server.request("/?token=wrong")[0] == 401
        assert server.request("/")[0] == 401
        server.get("/api/graph", headers={"Authorization": f"Bearer {secret}"})
        assert server.request(f"/?token={secret}")[0] == 200
        assert server.request(f"/api/entities?token={secret}")[0] == 200
        assert server.request("/static/app.js")[0] == 200  # the wheel's own script: the browser cannot add the token
    finally:
        server.stop()
    assert secret not in server.stderr


# ------------------------------------------------------------------ the page in a real browser
def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        if found := shutil.which(name):
            return found
    return None


def test_page_renders_the_dag_an_entity_and_a_histogram(ui, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("no Chromium found (apt-get install chromium); the browser test is skipped")
    url = f"http://127.0.0.1:{ui.port}/#node=feature_group.customer_features"
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000"]
    dom = subprocess.run([*flags, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
    for node in ("customer_daily_agg", "customer_features", "region_metrics", "churn_model"):
        assert f'data-id="feature_group.{node}"' in dom or node in dom, node
    assert 'data-id="second_order_aggregation.region_metrics"' in dom
    assert 'data-entity="customer"' in dom and 'data-entity="churn_scoring"' in dom
    assert '<svg class="hist"' in dom  # a histogram in the opened node's statistics
    assert 'id="node-title">feature_group.customer_features<' in dom
    assert '<svg class="spark"' in dom
    assert "CUST-105" in dom.split('id="preview"', 1)[1]  # the preview table, fetched after the panel opened
    shot = tmp_path / "ui.png"
    subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1400,900", url], capture_output=True, timeout=120)
    assert shot.is_file() and shot.stat().st_size > 20_000


class Chromium:
    """Headless Chromium driven over ``--remote-debugging-pipe`` (DevTools protocol on fds 3 and 4,
    NUL-separated JSON): stdlib only, so the page can be watched while a run happens."""

    def __init__(self, browser: str, profile: Path) -> None:
        to_child, self._from_child = os.pipe(), os.pipe()
        ours_w, theirs_r = to_child[1], to_child[0]
        theirs_w = self._from_child[1]

        def as_fds_3_and_4() -> None:  # in the child, before exec: the protocol's fixed descriptors
            r, w = os.dup(theirs_r), os.dup(theirs_w)
            os.dup2(r, 3)
            os.dup2(w, 4)

        self.proc = subprocess.Popen([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                                      "--no-first-run", "--disable-background-networking", "--disable-component-update",
                                      "--disable-sync", f"--user-data-dir={profile}", "--remote-debugging-pipe",
                                      "--window-size=1400,900", "about:blank"],
                                     pass_fds=(3, 4), preexec_fn=as_fds_3_and_4,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(theirs_r)
        os.close(theirs_w)
        self._w, self._r = ours_w, self._from_child[0]
        self._buf, self._id, self.session = b"", 0, None

    def call(self, method: str, **params):
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params}
        if self.session:
            msg["sessionId"] = self.session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        while True:
            while b"\0" not in self._buf:
                chunk = os.read(self._r, 1 << 16)
                if not chunk:
                    raise AssertionError(f"Chromium closed the DevTools pipe (exit {self.proc.poll()})")
                self._buf += chunk
            raw, self._buf = self._buf.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._id:
                assert "error" not in reply, reply
                return reply["result"]

    def open(self, url: str) -> None:
        target = self.call("Target.createTarget", url=url)["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]

    def text(self, selector: str) -> str:
        expr = f"(document.querySelector({json.dumps(selector)}) || {{}}).textContent || ''"
        return self.call("Runtime.evaluate", expression=expr, returnByValue=True)["result"].get("value", "")

    def wait_for(self, selector: str, needle: str, timeout: float = 15) -> str:
        deadline = time.monotonic() + timeout
        while True:
            text = self.text(selector)
            if needle in text or time.monotonic() > deadline:
                return text
            time.sleep(0.2)

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._w)
        os.close(self._r)


def test_page_reloads_when_a_new_run_finishes_and_shows_the_failure(example_project, seeknal, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("no Chromium found (apt-get install chromium); the browser test is skipped")
    assert seeknal("run", cwd=example_project).code == 0
    first = sorted((example_project / "target/runs").glob("*.json"))[-1].stem
    server = UiProcess(example_project)
    chrome = Chromium(browser, tmp_path / "profile")
    try:
        chrome.open(f"http://127.0.0.1:{server.port}/")
        assert first in chrome.wait_for("#last-run", first)
        assert "stale (0)" in chrome.text("#legend")
        path = example_project / "seeknal/feature_groups/customer_features.py"
        path.write_text(path.read_text().replace("SUM(revenue)", "SUM(no_such_column)"))
        assert "failed (0)" in chrome.text("#legend")
        assert seeknal("run", cwd=example_project).code == 1  # a failed run is recorded too
        second = sorted((example_project / "target/runs").glob("*.json"))[-1].stem
        assert second != first
        assert second in chrome.wait_for("#last-run", second), "the page did not pick up the new run"
        assert "failed (1)" in chrome.wait_for("#legend", "failed (1)")
        assert second in chrome.text("#runs") and "no_such_column" in chrome.text("#runs")
    finally:
        chrome.close()
        server.stop()


def test_a_chunked_request_body_is_read_not_taken_for_the_next_request(ui):
    conn = http.client.HTTPConnection("127.0.0.1", ui.port, timeout=60)
    try:
        # The body's bytes look like a request: left unread they would be answered as one.
        smuggled = b"GET /api/nodes/../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n"
        conn.request("GET", "/api/graph", body=iter([smuggled[:20], smuggled[20:]]), encode_chunked=True,
                     headers={"Transfer-Encoding": "chunked"})
        first = conn.getresponse()
        assert first.status == 200 and "nodes" in json.loads(first.read())
        conn.request("GET", "/api/runs")  # the same kept-alive connection: the next response is this one's
        second = conn.getresponse()
        assert second.status == 200 and "runs" in json.loads(second.read())
    finally:
        conn.close()


def test_an_oversized_chunked_body_is_a_413(ui):
    with socket.create_connection(("127.0.0.1", ui.port), timeout=60) as sock:
        # One chunk announced at 2 MiB: refused from its size line, before any of it is read.
        sock.sendall(b"GET /api/graph HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n200000\r\n")
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 413") and b"body" in reply
