#!/usr/bin/env python3
"""Propagation time of a config change: admin commit -> all three gateways serving it.

Starts one `tigateway admin` (SQLite in a temp dir) and three `tigateway gateway --sync METHOD`
processes, two tiny upstreams that name themselves in `x-upstream`, then flips a divide selector's
upstream N times through the admin REST API. For each flip the clock starts when the PUT returns
(the transaction is committed) and stops when every gateway answers with the new upstream (each
gateway is polled by its own thread). Prints p50/p90/p99/max per method.

    python3 bench/sync_propagation.py --bin target/release/tigateway --method websocket --n 200
"""
import argparse
import http.server
import json
import os
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request

PASSWORD = "bench-password-1"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def upstream(name):
    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            self.send_response(200)
            self.send_header("x-upstream", name)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv.server_address[1]


def wait_port(port, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"port {port} never opened")


def call(method, url, token=None, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read() or b"null")


def probe(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/bench/x", timeout=2) as r:
            return r.headers.get("x-upstream", "")
    except Exception:
        return ""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/tigateway")
    ap.add_argument("--method", choices=["websocket", "http"], default="websocket")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--gap-ms", type=int, default=0, help="pause between changes (0: back to back, so each "
                    "change lands inside the previous one's 50 ms coalescing window)")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp()
    env = dict(os.environ, TIGATEWAY_ADMIN_PASSWORD=PASSWORD, RUST_LOG="warn", TIGATEWAY_METRICS="off", TIGATEWAY_ADMIN_METRICS="off")
    procs = []
    admin_port = free_port()
    procs.append(subprocess.Popen([a.bin, "admin", "--database-url", f"sqlite://{tmp}/a.db?mode=rwc",
                                   "--listen", f"127.0.0.1:{admin_port}"], env=env,
                                  stderr=open(f"{tmp}/admin.log", "w")))
    wait_port(admin_port)
    gws = []
    for i in range(3):
        p = free_port()
        if a.method == "websocket":
            sync = ["--sync", "websocket", "--admin", f"ws://127.0.0.1:{admin_port}/websocket",
                    "--sync-username", "admin", "--sync-password", PASSWORD]
        else:
            sync = ["--sync", "http", "--admin", f"http://127.0.0.1:{admin_port}",
                    "--sync-username", "admin", "--sync-password", PASSWORD]
        procs.append(subprocess.Popen([a.bin, "gateway", *sync, "--listen", f"127.0.0.1:{p}", "--workers", "1",
                                       "--cache-dir", f"{tmp}/g{i}"], env=env, stderr=open(f"{tmp}/g{i}.log", "w")))
        gws.append(p)
    for p in gws:
        wait_port(p)
    try:
        base = f"http://127.0.0.1:{admin_port}/api/v1"
        token = call("POST", f"{base}/login", body={"username": "admin", "password": PASSWORD})["token"]
        ups = {"u0": upstream("u0"), "u1": upstream("u1")}
        handle = lambda n: json.dumps([{"upstreamUrl": f"127.0.0.1:{ups[n]}"}])
        call("POST", f"{base}/selectors", token, {"id": "b", "pluginName": "divide", "type": 1, "handle": handle("u0"),
             "conditionList": [{"paramType": "uri", "operator": "match", "paramValue": "/bench/**"}]})
        call("POST", f"{base}/rules", token, {"id": "br", "selectorId": "b", "pluginName": "divide",
             "conditionDataList": [{"paramType": "uri", "operator": "match", "paramValue": "/bench/**"}]})
        while any(probe(p) != "u0" for p in gws):
            time.sleep(0.01)
        samples = []
        for i in range(a.n):
            time.sleep(a.gap_ms / 1000)
            want = "u1" if i % 2 == 0 else "u0"
            cur = call("GET", f"{base}/selectors/b", token)
            cur["handle"] = handle(want)
            seen = [None] * len(gws)

            def watch(k, port):
                while probe(port) != want:
                    pass
                seen[k] = time.perf_counter()

            call("PUT", f"{base}/selectors/b", token, cur)
            t0 = time.perf_counter()
            ts = [threading.Thread(target=watch, args=(k, p)) for k, p in enumerate(gws)]
            for t in ts:
                t.start()
            for t in ts:
                t.join(10)
            samples.append((max(seen) - t0) * 1000)
        samples.sort()
        pct = lambda q: samples[min(len(samples) - 1, int(q * len(samples)))]
        print(f"{a.method} gap={a.gap_ms}ms: n={len(samples)} p50={pct(0.5):.1f} ms p90={pct(0.9):.1f} ms "
              f"p99={pct(0.99):.1f} ms max={samples[-1]:.1f} ms")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()


if __name__ == "__main__":
    main()
