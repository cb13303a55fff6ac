#!/usr/bin/env python3
"""A 10,000-rule full refresh pushed over websocket sync while wrk loads a gateway.

Starts, all on 127.0.0.1 and all stopped on exit:
  - an upstream: nginx, 1 worker, `return 200` with a fixed body (as bench/run.sh does);
  - `tigateway admin` on SQLite in a temp dir, `--sync-token`;
  - N gateways (`--gateways`, default 1) following it: `tigateway gateway --sync websocket
    --admin ws://…/websocket --sync-token … --cache-dir … --workers 1 --metrics 127.0.0.1:PORT`.
The admin's config gets one divide selector + rule routing `/bench/**` to the upstream. Then
`wrk --latency` runs against `/bench/ping` on the first gateway, and during the run:
  1. at `--change-at` s: ONE import of a whole config = the base + S selectors x R rules
     (10,000 rules: 10 x 1000 with --via api, 1000 x 10 with --via cli), `/bench/**` kept;
  2. at `--revert-at` s: ONE import of the base config again (the 10,000 rules deleted).
For each change it reports how long the admin took to answer, the time from that answer until every
gateway serves the new config (a path only the new config routes: 200 after step 1, 404 after
step 2; each gateway polled by its own thread), each gateway's build+swap time from its
`tigateway_routes_update_time_seconds` histogram, the gateways' "config applied" log lines, RSS
before/after, and wrk's full output. Exit status 1 when wrk saw any non-2xx response or socket error.

`--via api` (default) sends `POST /api/v1/import`, one store transaction. The admin refuses bodies
over 1 MiB, so with `--via api` the rules are written in their shortest accepted JSON (~100 bytes a
rule, 10 selectors x 1000 rules: ~1.03 MB; the gateway still receives and compiles complete
selectors and rules over the websocket). A ShenYu-shaped rule is ~300 bytes: 10,000 of them do not
fit one API request.
`--via cli` runs `tigateway admin --database-url … import FILE` against the same SQLite file (also
one transaction, no size limit) with fuller ShenYu-shaped objects; the running admin sees that
commit through its store poll (`--sync-poll-ms`, default 250), so the clock starts at the CLI's exit.

    python3 bench/sync_refresh.py --bin $CARGO_TARGET_DIR/release/tigateway
    python3 bench/sync_refresh.py --bin … --gateways 3
    python3 bench/sync_refresh.py --bin … --via cli
"""
import argparse
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone

PASSWORD = "bench-password-10k"
SYNC_TOKEN = "bench-sync-token"
BODY = "ok 0123456789abcdef0123456789abcdef"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def die(msg):
    print("\n!!! BENCHMARK FAILED: " + msg, file=sys.stderr)
    sys.exit(1)


def wait_port(port, proc, what, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        if proc is not None and proc.poll() is not None:
            die(f"{what} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    die(f"{what} did not listen on {port} within {timeout} s")


def request(port, method, path, token=None, body=None, timeout=120):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    conn.request(method, path, body=body, headers=headers)
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, data


def rss_kb(pid, field="VmRSS"):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def mib(kb):
    return f"{kb / 1024:.1f} MiB"


def update_hist(metrics_port):
    """(sum seconds, count) of tigateway_routes_update_time_seconds."""
    try:
        _, data = request(metrics_port, "GET", "/metrics", timeout=5)
    except OSError:
        return (0.0, 0)
    s = c = 0.0
    for line in data.decode().splitlines():
        if line.startswith("tigateway_routes_update_time_seconds_sum"):
            s = float(line.split()[-1])
        elif line.startswith("tigateway_routes_update_time_seconds_count"):
            c = float(line.split()[-1])
    return (s, int(c))


def start_upstream(tmp, port):
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(nginx):
        die("nginx not found (apt-get install nginx-light)")
    d = os.path.join(tmp, "upstream")
    os.makedirs(os.path.join(d, "logs"))
    os.makedirs(os.path.join(d, "tmp"))
    conf = f"""{"user root;" if os.getuid() == 0 else ""}
worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/logs/error.log warn;
events {{ worker_connections 4096; multi_accept on; }}
http {{
    access_log off;
    client_body_temp_path {d}/tmp/body; proxy_temp_path {d}/tmp/proxy; fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi; scgi_temp_path {d}/tmp/scgi;
    keepalive_timeout 75s;
    keepalive_requests 100000000;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{ default_type text/plain; return 200 "{BODY}\\n"; }}
    }}
}}
"""
    with open(os.path.join(d, "nginx.conf"), "w") as f:
        f.write(conf)
    p = subprocess.Popen([nginx, "-p", d, "-c", f"{d}/nginx.conf", "-e", f"{d}/logs/error.log"],
                         stdout=subprocess.DEVNULL, stderr=open(f"{d}/stderr.log", "w"))
    wait_port(port, p, "upstream nginx")
    return p


def bench_objects(upstream):
    handle = json.dumps([{"upstreamUrl": upstream, "weight": 50}])
    sel = {"id": "bench", "pluginName": "divide", "name": "bench", "type": 1, "matchMode": 0, "sort": 1,
           "conditionList": [{"paramType": "uri", "operator": "match", "paramValue": "/bench/**"}], "handle": handle}
    rule = {"id": "bench-all", "selectorId": "bench", "pluginName": "divide", "name": "all", "sort": 1,
            "conditionDataList": [{"paramType": "uri", "operator": "match", "paramValue": "/bench/**"}]}
    return sel, rule


def many(n_sel, n_rule, upstream, shape):
    """S selectors (uri prefix `/{sel}/`) x R rules (uri `= /{sel}/{r}`); the probe is the last rule's path.

    `compact` is the shortest JSON the admin accepts (numeric ids, no rule pluginName/name/handle,
    the `conditions` alias), so that 10,000 rules fit the admin's 1 MiB request limit; `full` is
    shaped like a ShenYu admin's objects."""
    handle = json.dumps([{"upstreamUrl": upstream, "weight": 50}])
    sels, rules, k = [], [], 0
    for s in range(n_sel):
        sid = str(s) if shape == "compact" else f"svc{s}"
        sel = {"id": sid, "pluginName": "divide", "type": 1, "handle": handle,
               "conditionList": [{"paramType": "uri", "operator": "startsWith", "paramValue": f"/{sid}/"}]}
        if shape == "full":
            sel.update({"name": sid, "matchMode": 0, "sort": 2, "enabled": True, "logged": False, "continued": True})
        sels.append(sel)
        for r in range(n_rule):
            cond = [{"paramType": "uri", "operator": "=", "paramValue": f"/{sid}/{r}"}]
            if shape == "compact":
                rules.append({"id": str(k), "selectorId": sid, "conditions": cond})
            else:
                rules.append({"id": f"{sid}-op{r}", "selectorId": sid, "pluginName": "divide",
                              "name": f"{sid}-op{r}", "matchMode": 0, "sort": r + 1, "enabled": True,
                              "loged": False, "conditionDataList": cond,
                              "handle": json.dumps({"loadBalance": "roundRobin", "retry": 0, "timeout": 3000})})
            k += 1
    return sels, rules, f"/{sels[-1]['id']}/{n_rule - 1}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.environ.get("TIGATEWAY_BIN", "target/release/tigateway"))
    ap.add_argument("--gateways", type=int, default=1)
    ap.add_argument("--selectors", type=int, help="default 10 with --via api, 1000 with --via cli")
    ap.add_argument("--rules-per-selector", type=int, help="default 1000 with --via api, 10 with --via cli")
    ap.add_argument("--via", choices=["api", "cli"], default="api")
    ap.add_argument("--shape", choices=["compact", "full"], help="rule JSON (default: compact for api, full for cli)")
    ap.add_argument("--duration", type=int, default=20, help="wrk -d, seconds")
    ap.add_argument("--threads", type=int, default=1, help="wrk -t")
    ap.add_argument("--connections", type=int, default=50, help="wrk -c")
    ap.add_argument("--change-at", type=float, default=5.0, help="seconds into the wrk run: apply the big config")
    ap.add_argument("--revert-at", type=float, default=12.0, help="seconds into the wrk run: import the base again")
    ap.add_argument("--no-wrk", action="store_true", help="no load: the same two changes on an idle gateway (baseline)")
    ap.add_argument("--no-change", action="store_true", help="control run: wrk only, no imports during it")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs, configs)")
    a = ap.parse_args()
    shape = a.shape or ("compact" if a.via == "api" else "full")
    a.selectors = a.selectors or (10 if a.via == "api" else 1000)
    a.rules_per_selector = a.rules_per_selector or (1000 if a.via == "api" else 10)
    if not os.path.exists(a.bin):
        die(f"no binary at {a.bin}: cargo build --release -p tigateway (or --bin / $TIGATEWAY_BIN)")
    if not shutil.which("wrk"):
        die("wrk not found (apt-get install wrk)")

    tmp = tempfile.mkdtemp(prefix="tigw-refresh-bench-")
    env = dict(os.environ, TIGATEWAY_ADMIN_PASSWORD=PASSWORD, TIGATEWAY_METRICS="off",
               TIGATEWAY_ADMIN_METRICS="off", NO_COLOR="1")
    procs = []
    try:
        run(a, shape, tmp, env, procs)
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in reversed(procs):
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if a.keep:
            print(f"(temp dir kept: {tmp})")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def run(a, shape, tmp, env, procs):
    print(f"load before: {open('/proc/loadavg').read().split()[:3]} (1/5/15 min), {os.cpu_count()} CPUs")
    up_port = free_port()
    procs.append(start_upstream(tmp, up_port))
    upstream = f"127.0.0.1:{up_port}"

    admin_port = free_port()
    db = f"sqlite://{tmp}/admin.db?mode=rwc"
    procs.append(subprocess.Popen(
        [a.bin, "admin", "--database-url", db, "--listen", f"127.0.0.1:{admin_port}", "--sync-token", SYNC_TOKEN],
        env=dict(env, RUST_LOG="info"), stdout=subprocess.DEVNULL, stderr=open(f"{tmp}/admin.log", "w")))
    wait_port(admin_port, procs[-1], "tigateway admin")
    st, data = request(admin_port, "POST", "/api/v1/login", body=json.dumps({"username": "admin", "password": PASSWORD}))
    if st != 200:
        die(f"login answered {st} {data[:300]!r}")
    token = json.loads(data)["token"]

    st, data = request(admin_port, "GET", "/api/v1/export", token)
    if st != 200:
        die(f"export answered {st} {data[:300]!r}")
    base = json.loads(data)
    bsel, brule = bench_objects(upstream)
    base["selectors"] = [bsel]
    base["rules"] = [brule]
    sels, rules, probe_path = many(a.selectors, a.rules_per_selector, upstream, shape)
    big = dict(base, selectors=[bsel] + sels, rules=[brule] + rules)
    base_body = json.dumps(base, separators=(",", ":")).encode()
    big_body = json.dumps(big, separators=(",", ":")).encode()
    n_rules = len(rules)
    print(f"config: base = 1 selector + 1 rule (/bench/**); big = base + {len(sels)} selectors x "
          f"{a.rules_per_selector} rules = {n_rules} rules ({len(big['rules'])} rules, {len(big['selectors'])} "
          f"selectors in all), {shape} JSON, {len(big_body):,} bytes; probe path {probe_path}")
    for name, body in (("base", base_body), ("big", big_body)):
        with open(f"{tmp}/{name}.json", "wb") as f:
            f.write(body)

    st, data = request(admin_port, "POST", "/api/v1/import", token, base_body)
    if st != 200:
        die(f"importing the base config answered {st} {data[:500]!r}")

    gws = []  # (proc, port, metrics_port, log path)
    for i in range(a.gateways):
        port, mport = free_port(), free_port()
        logf = f"{tmp}/gw{i}.log"
        p = subprocess.Popen(
            [a.bin, "gateway", "--sync", "websocket", "--admin", f"ws://127.0.0.1:{admin_port}/websocket",
             "--sync-token", SYNC_TOKEN, "--cache-dir", f"{tmp}/cache{i}", "--listen", f"127.0.0.1:{port}",
             "--workers", "1", "--metrics", f"127.0.0.1:{mport}"],
            env=dict(env, RUST_LOG="info"), stdout=subprocess.DEVNULL, stderr=open(logf, "w"))
        procs.append(p)
        gws.append((p, port, mport, logf))
    for p, port, _, logf in gws:
        wait_port(port, p, f"gateway :{port} (log {logf})")
        end = time.time() + 30
        while True:
            try:
                st, data = request(port, "GET", "/bench/ping", timeout=2)
                if st == 200 and data.decode().strip() == BODY:
                    break
            except OSError:
                pass
            if time.time() > end or p.poll() is not None:
                die(f"gateway :{port} never served /bench/ping (log {logf})")
            time.sleep(0.05)
        st, _ = request(port, "GET", probe_path, timeout=2)
        if st != 404:
            die(f"gateway :{port} answered {st} for {probe_path} before the change (expected 404)")
    time.sleep(1)
    rss0 = [rss_kb(g[0].pid) for g in gws]
    print("gateway RSS before: " + ", ".join(mib(r) for r in rss0))

    wrk_cmd = ["wrk", f"-t{a.threads}", f"-c{a.connections}", f"-d{a.duration}s", "--latency",
               f"http://127.0.0.1:{gws[0][1]}/bench/ping"]
    if a.no_wrk:
        wrk_cmd = ["sleep", str(a.duration)]
    print("load: " + " ".join(wrk_cmd))
    wrk = subprocess.Popen(wrk_cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    procs.append(wrk)
    wrk_t0 = time.perf_counter()

    def apply(label, body, file, want_status, at):
        time.sleep(max(0.0, wrk_t0 + at - time.perf_counter()))
        hist0 = [update_hist(g[2]) for g in gws]
        wall = datetime.now(timezone.utc)
        t_send = time.perf_counter()
        if a.via == "api":
            st, data = request(admin_port, "POST", "/api/v1/import", token, body)
            t_ans = time.perf_counter()
            if st != 200:
                die(f"{label}: import answered {st} {data[:500]!r}")
            revision = json.loads(data).get("revision")
        else:
            out = subprocess.run([a.bin, "admin", "--database-url", db, "import", file], env=dict(env, RUST_LOG="warn"),
                                 capture_output=True, text=True)
            t_ans = time.perf_counter()
            if out.returncode != 0:
                die(f"{label}: CLI import failed: {out.stderr[-1000:]}")
            m = re.search(r"imported as revision (\d+)", out.stdout)
            revision = int(m.group(1)) if m else None
        answered_wall = datetime.now(timezone.utc)
        seen = [None] * len(gws)

        def watch(k, port):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            while time.perf_counter() - t_ans < 30:
                try:
                    conn.request("GET", probe_path)
                    r = conn.getresponse()
                    r.read()
                    if r.status == want_status:
                        seen[k] = time.perf_counter()
                        return
                except (OSError, http.client.HTTPException):
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                time.sleep(0.001)

        ts = [threading.Thread(target=watch, args=(k, g[1])) for k, g in enumerate(gws)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        time.sleep(0.5)
        hist1 = [update_hist(g[2]) for g in gws]
        rss = [rss_kb(g[0].pid) for g in gws]
        served = [None if s is None else (s - t_ans) * 1000 for s in seen]
        builds = []
        for (s0, c0), (s1, c1) in zip(hist0, hist1):
            builds.append(f"{(s1 - s0) * 1000 / (c1 - c0):.0f} ms x{c1 - c0}" if c1 > c0 else "no update recorded")
        return {"label": label, "revision": revision, "sent": wall, "answered": answered_wall,
                "admin_ms": (t_ans - t_send) * 1000, "served_ms": served, "builds": builds, "rss": rss,
                "at": t_send - wrk_t0}

    results = []
    if not a.no_change:
        results = [apply(f"apply {n_rules} rules", big_body, f"{tmp}/big.json", 200, a.change_at),
                   apply(f"remove {n_rules} rules", base_body, f"{tmp}/base.json", 404, a.revert_at)]
    wrk_out, _ = wrk.communicate(timeout=a.duration + 60)
    alive = [g[0].poll() is None for g in gws]
    rss_end = [rss_kb(g[0].pid) for g in gws]
    hwm = [rss_kb(g[0].pid, "VmHWM") for g in gws]

    print("\n---- wrk output (verbatim) ----")
    print(wrk_out.rstrip())
    print("---- end of wrk output ----\n")
    non2xx = sum(int(x) for x in re.findall(r"Non-2xx or 3xx responses:\s*(\d+)", wrk_out))
    sock = re.search(r"Socket errors:\s*connect (\d+), read (\d+), write (\d+), timeout (\d+)", wrk_out)
    sock_total = sum(int(x) for x in sock.groups()) if sock else 0
    total = re.search(r"(\d+) requests in", wrk_out)

    target_ok = True
    for r in results:
        served = ", ".join("NOT SERVED within 30 s" if s is None else f"{s:.0f} ms" for s in r["served_ms"])
        worst = None if None in r["served_ms"] else max(r["served_ms"])
        ok = worst is not None and worst < 1000
        target_ok &= ok
        print(f"{r['label']} (revision {r['revision']}, sent at wrk+{r['at']:.1f} s, {r['sent']:%H:%M:%S.%f} UTC, "
              f"answered {r['answered']:%H:%M:%S.%f} UTC):")
        print(f"  admin answer ({a.via}): {r['admin_ms']:.0f} ms")
        print(f"  answer -> served, per gateway: {served}  [{'within' if ok else 'OVER'} the 1 s target]")
        total_ms = "n/a" if worst is None else f"{worst + r['admin_ms']:.0f} ms"
        print(f"  request sent -> served on every gateway: {total_ms}")
        print(f"  gateway build+swap (tigateway_routes_update_time_seconds): {', '.join(r['builds'])}")
        print(f"  gateway RSS 0.5 s after: {', '.join(mib(x) for x in r['rss'])}")
    print(f"gateway RSS: before {', '.join(mib(x) for x in rss0)}; end {', '.join(mib(x) for x in rss_end)}; "
          f"peak (VmHWM) {', '.join(mib(x) for x in hwm)}; alive at end: {alive}")
    print("\nadmin log lines (publishing):")
    with open(f"{tmp}/admin.log") as f:
        for line in f:
            line = ANSI.sub("", line.rstrip())
            if "publishing" in line or "WARN" in line or "ERROR" in line:
                print(f"  admin: {line}")
    print("gateway log lines (config applied / websocket):")
    for i, g in enumerate(gws):
        with open(g[3]) as f:
            for line in f:
                line = ANSI.sub("", line.rstrip())
                if "config applied" in line or "websocket" in line or "WARN" in line or "ERROR" in line:
                    print(f"  gw{i}: {line}")
    print(f"\nload after: {open('/proc/loadavg').read().split()[:3]} (1/5/15 min)")
    print(f"wrk: {total.group(1) if total else '?'} requests, non-2xx {non2xx}, socket errors {sock_total}"
          f"{' (' + sock.group(0) + ')' if sock else ''}")
    if a.no_wrk:
        print("(--no-wrk: no load ran, so no request failures were measured)")
    failed = non2xx + sock_total > 0 or not all(alive) or wrk.returncode != 0
    target = "no change made (--no-change)" if a.no_change else ("met" if target_ok else "MISSED")
    print(f"RESULT: requests failed during the run: {'YES' if failed else 'none'}; 1 s target: {target}")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
