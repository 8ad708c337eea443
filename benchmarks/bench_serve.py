"""``python -m benchmarks serve``: `seeknal serve` under ApacheBench and Arrow Flight.

Builds a project with one entity of N keys (``customer``, two groups), runs it twice (the
embedded store and a Redis store on a private ``redis-server``), starts `seeknal serve --quiet`
on each and, as the ceiling, a minimal raw ASGI app under the same uvicorn returning a constant
body. Then, in alternating rounds:

* ``ab -k -c 8`` against ``POST /features`` with one key, and with 100 keys (req/s, p50, p99);
* Arrow Flight ``DoExchange`` of all N keys (shuffled) against each store, and a constant
  exchange of a table of the same size (a Flight server that answers a precomputed table).

Prints a Markdown table of medians over the rounds and the servers' peak RSS.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.bench_online import build_project, free_port

REPO = Path(__file__).resolve().parent.parent
RAW_APP = '''
BODY = b'{"features":["customer_id"],"rows":[["C0000001"]]}'
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]})
    await send({"type": "http.response.body", "body": BODY})
'''
CONSTANT_FLIGHT = '''
import sys, pyarrow as pa, pyarrow.flight as fl, pyarrow.ipc as ipc
table = ipc.open_file(pa.memory_map(sys.argv[2])).read_all().combine_chunks()
class S(fl.FlightServerBase):
    def do_exchange(self, context, descriptor, reader, writer):
        for chunk in reader:
            pass
        writer.begin(table.schema)
        writer.write_table(table)
S(f"grpc://127.0.0.1:{sys.argv[1]}").serve()
'''


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def _wait_http(port: int, proc: subprocess.Popen) -> None:
    import http.client

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited {proc.returncode}")
        try:
            con = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            con.request("GET", "/health")
            con.getresponse().read()
            con.close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"no server on port {port}")


def _peak_rss_mb(pid: int) -> float:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return float("nan")
    return int(re.search(r"VmHWM:\s+(\d+)", text).group(1)) / 1024


def _ab(port: int, body: Path, n: int) -> tuple[float, float, float]:
    out = subprocess.run(["ab", "-q", "-k", "-c", "8", "-n", str(n), "-p", str(body), "-T", "application/json",
                          f"http://127.0.0.1:{port}/features"], capture_output=True, text=True, check=True).stdout
    if re.search(r"Non-2xx responses:\s+[1-9]", out) or not re.search(r"Failed requests:\s+0\b", out):
        raise SystemExit(f"ab saw failures:\n{out}")
    rps = float(re.search(r"Requests per second:\s+([\d.]+)", out).group(1))
    p50 = float(re.search(r"\n\s+50%\s+(\d+)", out).group(1))
    p99 = float(re.search(r"\n\s+99%\s+(\d+)", out).group(1))
    return rps, p50, p99


def _flight_ms(port: int, command: dict, keys, runs: int) -> float:
    import pyarrow.flight as fl

    client = fl.connect(f"grpc://127.0.0.1:{port}")
    times = []
    for i in range(runs + 1):
        started = time.perf_counter()
        writer, reader = client.do_exchange(fl.FlightDescriptor.for_command(json.dumps(command).encode()))
        writer.begin(keys.schema)
        writer.write_table(keys)
        writer.done_writing()
        out = reader.read_all()
        writer.close()
        if i:  # the first exchange loads the index
            times.append((time.perf_counter() - started) * 1000)
        assert out.num_rows == keys.num_rows
    client.close()
    return statistics.median(times)


def main(args) -> None:
    import pyarrow as pa

    if not shutil.which("ab") or not shutil.which("redis-server"):
        raise SystemExit("needs ab and redis-server: apt-get install -y apache2-utils redis-server")
    n = int(float(args.keys))
    work = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    procs: list[subprocess.Popen] = []
    try:
        redis_port = free_port()
        procs.append(subprocess.Popen(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                                       "--appendonly", "no"], stdout=subprocess.DEVNULL))
        embedded = build_project(work / "embedded", n)
        redis_proj = work / "redis"
        shutil.copytree(embedded, redis_proj)
        cfg = redis_proj / "seeknal_project.yml"
        cfg.write_text(cfg.read_text() + f"online_store:\n  type: redis\n  url: redis://127.0.0.1:{redis_port}/0\n")
        for proj in (embedded, redis_proj):
            subprocess.run([sys.executable, "-m", "seeknal_flow.cli.main", "run", "--project", str(proj)],
                           env=_env(), check=True, capture_output=True)
        ports = {}
        servers = {}
        for name, proj in (("embedded", embedded), ("redis", redis_proj)):
            port, fport = free_port(), free_port()
            servers[name] = subprocess.Popen(
                [sys.executable, "-m", "seeknal_flow.cli.main", "serve", "--project", str(proj), "--port", str(port),
                 "--flight-port", str(fport), "--quiet", "--workers", str(args.workers)],
                env=_env(), stdout=subprocess.DEVNULL)
            ports[name] = (port, fport)
        (work / "raw_app.py").write_text(RAW_APP)
        raw_port = free_port()
        servers["raw ASGI constant"] = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "raw_app:app", "--port", str(raw_port), "--no-access-log",
             "--log-level", "warning", "--workers", str(args.workers)], cwd=work, env=_env())
        ports["raw ASGI constant"] = (raw_port, None)
        procs += servers.values()
        snapshot = next((embedded / "target" / "online" / "customer").glob("snapshot-*.arrow"))
        const_port = free_port()
        (work / "const_flight.py").write_text(CONSTANT_FLIGHT)
        ids = pa.memory_map(str(snapshot))
        import pyarrow.ipc as ipc

        full = ipc.open_file(ids).read_all()
        keys = pa.table({"customer_id": full["customer_id"].take(np.random.default_rng(1).permutation(n))})
        features = [c for c in full.column_names if c != "customer_id" and "__event_time" not in c]
        # the constant answer: the same columns and rows as a real exchange
        const_table = full.select(["customer_id", *features])
        const_path = work / "const.arrow"
        with pa.OSFile(str(const_path), "wb") as sink, ipc.new_file(sink, const_table.schema) as w:
            w.write_table(const_table)
        procs.append(subprocess.Popen([sys.executable, str(work / "const_flight.py"), str(const_port), str(const_path)]))
        for name, (port, _) in ports.items():
            _wait_http(port, servers[name])
        time.sleep(1.0)
        one, hundred = work / "one.json", work / "hundred.json"
        rng = np.random.default_rng(3)
        one.write_text(json.dumps({"entity": "customer", "keys": [{"customer_id": "C0000001"}]}))
        hundred.write_text(json.dumps({"entity": "customer", "keys": [
            {"customer_id": f"C{int(i):07d}"} for i in rng.integers(0, n, 100)]}))
        results: dict[tuple[str, str], list] = {}
        for _ in range(args.rounds):  # alternate the servers within each round
            for name, (port, fport) in ports.items():
                _ab(port, one, 2000)  # warm-up
                results.setdefault((name, "1 key"), []).append(_ab(port, one, args.requests))
                if name != "raw ASGI constant":
                    results.setdefault((name, "100 keys"), []).append(_ab(port, hundred, args.requests // 4))
                    results.setdefault((name, "flight"), []).append(
                        _flight_ms(fport, {"entity": "customer", "features": features}, keys, args.flight_runs))
            results.setdefault(("constant Flight", "flight"), []).append(
                _flight_ms(const_port, {"entity": "customer"}, keys, args.flight_runs))
        load = os.getloadavg()
        print(f"\n{n:,} keys, {args.rounds} alternating rounds, --workers {args.workers}, "
              f"ab -k -c 8 -n {args.requests} (100 keys: -n {args.requests // 4}); load after: {load[0]:.2f}\n")
        print("| server | 1 key req/s | 1 key p50 / p99 ms | 100 keys req/s | 100 keys p99 ms "
              "| Flight DoExchange 100k keys median ms | peak RSS MB |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        rows = [("raw ASGI constant", "raw ASGI constant (ceiling)"), ("embedded", "seeknal serve, embedded store"),
                ("redis", "seeknal serve, Redis store"), ("constant Flight", "constant Flight exchange (ceiling)")]
        for key, label in rows:
            def med(kind: str, i: int, key: str = key) -> str:
                vals = results.get((key, kind))
                return f"{statistics.median(v[i] for v in vals):,.0f}" if vals else "—"
            flight = results.get((key, "flight"))
            proc = servers.get(key)
            rss = f"{_peak_rss_mb(proc.pid):.0f}" if proc else "—"
            print(f"| {label} | {med('1 key', 0)} | {med('1 key', 1)} / {med('1 key', 2)} | {med('100 keys', 0)} "
                  f"| {med('100 keys', 2)} | {f'{statistics.median(flight):.1f}' if flight else '—'} | {rss} |")
        print("\nrounds (req/s, p50, p99 / Flight ms):")
        for k, v in results.items():
            print(f"  {k}: {v}")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)
