"""The Redis online store with a real `redis-server` (password-protected) on a free loopback port:
`seeknal run` publishes, `OnlineFeaturesDuckDB`, `seeknal serve` and Arrow Flight read; Redis down
and back; the password never shows."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pyarrow as pa
import pytest
from test_serve import EXAMPLE, Server, _exchange, free_port, run_cli  # noqa: I001

pytestmark = [pytest.mark.redis, pytest.mark.serve]
redis = pytest.importorskip("redis", reason="the Redis online store needs the `serve` extra: pip install -e '.[serve]'")
PASSWORD = "pw-Z9x-never-shown"


class RedisServer:
    def __init__(self, folder: Path, port: int | None = None) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            pytest.skip("redis-server is not installed (apt-get install redis-server); .ci/run installs it")
        self.port = port or free_port()
        self.folder = folder
        self.proc = subprocess.Popen([exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--requirepass", PASSWORD, "--dir", str(folder)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.client = redis.Redis(port=self.port, password=PASSWORD)
        deadline = time.monotonic() + 10
        while True:
            try:
                self.client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"redis://:{PASSWORD}@127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    srv = RedisServer(tmp_path_factory.mktemp("redis"))
    yield srv
    srv.stop()


def _redis_project(dest: Path, url_var: str = "SEEKNAL_TEST_REDIS_URL") -> Path:
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("target", "__pycache__"))
    cfg = dest / "seeknal_project.yml"
    cfg.write_text(cfg.read_text() + f'online_store:\n  type: redis\n  url: "${{{url_var}}}"\n')
    return dest


def _no_password_anywhere(project: Path, *texts: str) -> None:
    for text in texts:
        assert PASSWORD not in text
    for path in project.rglob("*"):
        if path.is_file() and path.stat().st_size < 50_000_000:
            assert PASSWORD.encode() not in path.read_bytes(), path


@pytest.fixture(scope="module")
def published(redis_server, tmp_path_factory):
    project = _redis_project(tmp_path_factory.mktemp("redis-proj") / "ml-path")
    env = {"SEEKNAL_TEST_REDIS_URL": redis_server.url}
    result = run_cli("run", project=project, env=env)
    assert result.returncode == 0, result.stderr
    _no_password_anywhere(project, result.stdout, result.stderr)
    return project, env


def test_run_publishes_versioned_entities_to_redis(published, redis_server):
    project, env = published
    assert not (project / "target" / "online").exists()  # nothing in the embedded store
    r = redis_server.client
    assert r.smembers("seeknal:ml_path:entities") == {b"churn_scoring", b"customer"}
    version = r.get("seeknal:ml_path:customer:current").decode()
    meta = json.loads(r.get(f"seeknal:ml_path:customer:{version}:meta"))
    assert meta["join_keys"] == ["customer_id"] and meta["batches"] == 1
    # a second publication switches `current` and removes the old version's keys
    result = run_cli("consolidate", "--force", project=project, env=env)
    assert result.returncode == 0, result.stderr
    new = r.get("seeknal:ml_path:customer:current").decode()
    assert new != version
    assert not list(r.scan_iter(match=f"seeknal:ml_path:customer:{version}:*"))
    assert r.exists(f"seeknal:ml_path:customer:{new}:meta", f"seeknal:ml_path:customer:{new}:rows:0") == 2


def test_online_features_read_from_redis(published, monkeypatch):
    project, env = published
    from seeknal_flow import OnlineFeaturesDuckDB

    monkeypatch.setenv("SEEKNAL_TEST_REDIS_URL", env["SEEKNAL_TEST_REDIS_URL"])
    online = OnlineFeaturesDuckDB(entity="customer", features=["customer_features.total_revenue"], project=project)
    df = online.get_features(keys=[{"customer_id": "CUST-101"}, {"customer_id": "nope"}])
    assert df["customer_id"].tolist() == ["CUST-101", "nope"]
    assert df["total_revenue"].tolist()[0] == pytest.approx(499.49)


def test_serve_and_flight_read_from_redis_and_pick_up_new_groups(published):
    project, env = published
    srv = Server(project, "--flight-port", str(free_port()), env=env)
    try:
        status, body = srv.json("POST", "/features", {"entity": "customer", "keys": [{"customer_id": "CUST-101"}],
                                                      "features": ["customer_features.total_revenue"]})
        assert (status, body["rows"]) == (200, [["CUST-101", 499.49]])
        flight_port = int(next(line for line in srv.log.read_text().splitlines() if "grpc://" in line).rsplit(":", 1)[1])
        out = _exchange(flight_port, {"entity": "customer", "features": ["customer_features.total_orders"]},
                        [pa.table({"customer_id": ["CUST-100", "zz"]})], token=None)
        assert out["customer_features.total_orders"].to_pylist() == [3, None]
        # a group added by a later run becomes servable without a restart
        (project / "seeknal" / "feature_groups" / "loyalty.yml").write_text(
            "kind: feature_group\nname: loyalty\nentity: customer\nsql: |\n"
            "  SELECT customer_id, COUNT(*) * 10 AS points, MAX(order_date) AS event_time\n"
            "  FROM ref('source.transactions') GROUP BY customer_id\n")
        result = run_cli("run", project=project, env=env)
        assert result.returncode == 0, result.stderr
        time.sleep(0.5)  # the server asks Redis for a newer version at most every 0.2 s
        status, body = srv.json("POST", "/features", {"entity": "customer", "keys": [{"customer_id": "CUST-100"}],
                                                      "features": ["loyalty.points"]})
        assert (status, body["rows"]) == (200, [["CUST-100", 30]])
        _no_password_anywhere(project, srv.log.read_text(), srv.json("GET", "/entities")[1].__repr__(),
                              srv.json("GET", "/metrics")[1])
    finally:
        srv.stop()


def test_redis_down_gives_503_then_recovers_and_run_keeps_offline_outputs(tmp_path):
    own = RedisServer(tmp_path)
    project = _redis_project(tmp_path / "ml-path")
    env = {"SEEKNAL_TEST_REDIS_URL": own.url}
    assert run_cli("run", project=project, env=env).returncode == 0
    srv = Server(project, "--quiet", env=env)
    request = {"entity": "customer", "keys": [{"customer_id": "CUST-101"}], "features": ["customer_features.total_orders"]}
    try:
        assert srv.json("POST", "/features", request)[0] == 200
        own.stop()
        time.sleep(0.3)
        status, body = srv.json("POST", "/features", request)
        assert status == 503 and "unavailable" in body["error"] and "\n" not in body["error"]
        assert srv.json("GET", "/ready")[0] == 503
        assert PASSWORD not in body["error"]
        # `seeknal run` with Redis down: the publish step fails clearly, the offline outputs stay
        (project / "seeknal" / "feature_groups" / "product_preferences.yml").write_text(
            (project / "seeknal" / "feature_groups" / "product_preferences.yml").read_text().replace("AS category_count",
                                                                                                     "AS category_count "))
        result = run_cli("run", project=project, env=env)
        assert result.returncode != 0
        assert "publishing entity 'customer'" in result.stderr and "unavailable" in result.stderr, result.stderr
        assert PASSWORD not in result.stdout + result.stderr
        assert (project / "target" / "feature_store" / "customer" / "features.parquet").exists()
        own = RedisServer(tmp_path, port=own.port)  # back (empty): the server recovers by itself
        assert run_cli("consolidate", "--force", project=project, env=env).returncode == 0
        deadline = time.monotonic() + 5
        while (status := srv.json("POST", "/features", request)[0]) != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert status == 200
    finally:
        srv.stop()
        own.stop()


def test_missing_url_variable_is_one_line(tmp_path):
    project = _redis_project(tmp_path / "ml-path", url_var="SEEKNAL_UNSET_VAR_FOR_TEST")
    result = run_cli("run", project=project)
    assert result.returncode != 0
    assert "online_store.url names ${SEEKNAL_UNSET_VAR_FOR_TEST}, which is not set" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_redact():
    from seeknal_flow.store.redis_online import redact

    assert redact(f"redis://:{PASSWORD}@h:1/0") == "redis://:***@h:1/0"
    assert redact("redis://h:6379/0") == "redis://h:6379/0"
