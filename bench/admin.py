#!/usr/bin/env python3
"""Admin control-plane benchmarks (stdlib only; not run in CI).

  bench/admin.py writes     [--database-url URL] [--clients 4] [--seconds 10]
      Rules created per second through `POST /api/v1/rules` (each one a committed, validated,
      audited store revision), with N keep-alive clients, against `tigateway admin` on the given
      database (default: a fresh SQLite file). Give PostgreSQL/MySQL a database of its own
      (e.g. `createdb tigw_bench`): the run leaves its objects there.

  bench/admin.py propagation [--changes 200]
      Standalone mode: time from the admin's answer to a committed change (a new divide selector +
      rule, one batch) until the gateway serves it, polled every ~0.5 ms; p50/p99/max.

The gateway binary is $TIGATEWAY_BIN (default target/release/tigateway; build it with
`cargo build --release -p tigateway`). Everything listens on 127.0.0.1 and is stopped on exit.
"""

import argparse
import http.client
import http.server
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("TIGATEWAY_BIN", os.path.join(ROOT, "target", "release", "tigateway"))
PASSWORD = "bench-password-123"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, what):
    for _ in range(200):
        if proc.poll() is not None:
            sys.exit(f"BENCHMARK FAILED: {what} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"BENCHMARK FAILED: {what} did not listen on {port}")


def call(conn, method, path, token=None, body=None):
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    conn.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
    r = conn.getresponse()
    data = r.read()
    try:
        return r.status, (json.loads(data) if data else None)
    except ValueError:
        return r.status, data


def login(port):
    conn = http.client.HTTPConnection("127.0.0.1", port)
    status, body = call(conn, "POST", "/api/v1/login", body={"username": "admin", "password": PASSWORD})
    if status != 200:
        sys.exit(f"BENCHMARK FAILED: login answered {status} {body}")
    return body["token"]


def selector(sid, prefix, upstream):
    return {
        "id": sid, "pluginName": "divide", "name": sid, "type": 1, "matchMode": 0, "enabled": True,
        "conditionList": [{"paramType": "uri", "operator": "match", "paramValue": f"{prefix}/**"}],
        "handle": json.dumps([{"upstreamUrl": upstream}]),
    }


def rule(rid, sid, prefix):
    return {
        "id": rid, "selectorId": sid, "pluginName": "divide", "name": rid, "enabled": True,
        "conditionDataList": [{"paramType": "uri", "operator": "match", "paramValue": f"{prefix}/**"}],
        "handle": json.dumps({"loadBalance": "roundRobin", "timeout": 3000}),
    }


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def start(args_list, env_extra):
    env = dict(os.environ, TIGATEWAY_ADMIN_PASSWORD=PASSWORD, RUST_LOG="warn", **env_extra)
    return subprocess.Popen([BIN] + args_list, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def bench_writes(a):
    tmp = tempfile.mkdtemp(prefix="tigw-admin-bench-")
    url = a.database_url or f"sqlite://{tmp}/admin.db?mode=rwc"
    port = free_port()
    proc = start(["admin", "--database-url", url, "--listen", f"127.0.0.1:{port}"], {})
    try:
        wait_port(port, proc, "tigateway admin")
        token = login(port)
        conn = http.client.HTTPConnection("127.0.0.1", port)
        run_id = uuid.uuid4().hex[:8]
        sid = f"bench-{run_id}"
        status, body = call(conn, "POST", "/api/v1/selectors", token, selector(sid, f"/{sid}", "127.0.0.1:9"))
        if status != 201:
            sys.exit(f"BENCHMARK FAILED: creating the selector answered {status} {body}")
        stop_at = time.monotonic() + a.seconds
        latencies, errors, lock = [], [], threading.Lock()

        def client(n):
            c = http.client.HTTPConnection("127.0.0.1", port)
            i = 0
            while time.monotonic() < stop_at:
                rid = f"{sid}-{n}-{i}"
                t0 = time.perf_counter()
                st, b = call(c, "POST", "/api/v1/rules", token, rule(rid, sid, f"/{sid}/{n}/{i}"))
                dt = time.perf_counter() - t0
                with lock:
                    (latencies if st == 201 else errors).append(dt if st == 201 else (st, b))
                i += 1

        t0 = time.monotonic()
        threads = [threading.Thread(target=client, args=(n,)) for n in range(a.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - t0
        backend = url.split(":", 1)[0]
        print(f"admin writes ({backend}, {a.clients} clients, {elapsed:.1f} s): {len(latencies) / elapsed:.0f} rules/s, "
              f"{len(latencies)} created, {len(errors)} errors; latency p50 {pct(latencies, 50) * 1e3:.1f} ms, "
              f"p99 {pct(latencies, 99) * 1e3:.1f} ms")
        if errors:
            print("first error:", errors[0])
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)


class Upstream(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Without this, the handler's separate writes of head and body meet the gateway's delayed ACK
    # and every first answer takes ~40 ms: a property of this test upstream, not of propagation.
    disable_nagle_algorithm = True

    def do_GET(self):
        body = b"ok\n"
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def bench_propagation(a):
    tmp = tempfile.mkdtemp(prefix="tigw-standalone-bench-")
    up = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=up.serve_forever, daemon=True).start()
    upstream = f"127.0.0.1:{up.server_address[1]}"
    admin_port, gw_port = free_port(), free_port()
    proc = start(["standalone", "--data-dir", tmp, "--admin-listen", f"127.0.0.1:{admin_port}",
                  "--listen", f"127.0.0.1:{gw_port}", "--workers", "1"], {})
    try:
        wait_port(admin_port, proc, "tigateway standalone (admin)")
        wait_port(gw_port, proc, "tigateway standalone (gateway)")
        token = login(admin_port)
        admin = http.client.HTTPConnection("127.0.0.1", admin_port)
        gw = http.client.HTTPConnection("127.0.0.1", gw_port)
        delays = []
        for i in range(a.changes):
            sid = f"p{i}"
            path = f"/{sid}/x"
            st, _ = call(gw, "GET", path)
            if st != 404:
                sys.exit(f"BENCHMARK FAILED: {path} answered {st} before the change")
            batch = [{"op": "create", "item": {"type": "selector", "value": selector(sid, f"/{sid}", upstream)}},
                     {"op": "create", "item": {"type": "rule", "value": rule(f"{sid}-r", sid, f"/{sid}")}}]
            st, body = call(admin, "POST", "/api/v1/batch", token, batch)
            committed = time.perf_counter()
            if st != 200:
                sys.exit(f"BENCHMARK FAILED: batch answered {st} {body}")
            while True:
                st, _ = call(gw, "GET", path)
                if st == 200:
                    delays.append(time.perf_counter() - committed)
                    break
                if time.perf_counter() - committed > 5:
                    sys.exit(f"BENCHMARK FAILED: change {i} not served after 5 s")
                time.sleep(0.0005)
        ms = [d * 1e3 for d in delays]
        print(f"standalone change-to-served ({a.changes} changes, each a new selector + rule): "
              f"p50 {pct(ms, 50):.2f} ms, p99 {pct(ms, 99):.2f} ms, max {max(ms):.2f} ms, mean {statistics.mean(ms):.2f} ms")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
        up.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("writes")
    w.add_argument("--database-url")
    w.add_argument("--clients", type=int, default=4)
    w.add_argument("--seconds", type=float, default=10)
    pr = sub.add_parser("propagation")
    pr.add_argument("--changes", type=int, default=200)
    a = p.parse_args()
    if not os.path.exists(BIN):
        sys.exit(f"no binary at {BIN}: cargo build --release -p tigateway (or set TIGATEWAY_BIN)")
    bench_writes(a) if a.cmd == "writes" else bench_propagation(a)


if __name__ == "__main__":
    main()
