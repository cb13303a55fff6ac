#!/usr/bin/env bash
# TiGateway vs nginx vs HAProxy as a reverse proxy, on loopback, one worker each.
#
#   bench/run.sh                  # Spring-style route  Path=/**            -> lb://backend
#   bench/run.sh --shenyu         # ShenYu divide selector + rule  uri match /**
#   bench/run.sh --routes 10000   # 10,000 routes (or selectors with --shenyu), only the last matches
#   bench/run.sh --chain          # ShenYu plugin chain: contextPath + rewrite + request header + divide
#   bench/run.sh --h2             # HTTP/2 (h2c, prior knowledge) to the proxies, load from h2load
#   bench/run.sh --websocket      # websocket echo round trips through each proxy (bench/ws.py)
#
# Processes (all on 127.0.0.1, all stopped on exit):
#   upstream  nginx, 1 worker, `return 200` with a fixed small body          :$UPSTREAM_PORT
#             (--websocket: bench/ws.py echo server                          :$WS_PORT)
#   nginx     nginx, 1 worker, proxy_pass to the upstream, keepalive 64     :$NGINX_PORT
#   haproxy   haproxy, nbthread 1, http-reuse always                        :$HAPROXY_PORT
#   tigateway tigateway gateway --workers 1                                  :$TIGW_PORT
# Each proxy gets a warm-up run, then a measured one with the same settings.
# See bench/README.md (bench/all.sh runs every scenario). Output goes to bench/out/ (gitignored).
set -euo pipefail

# BENCH_DIR, ROOT, OUT, PERF_BIN, UPSTREAM_BODY, the nginx access-log format (shared with profile.sh).
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

UPSTREAM_PORT="${UPSTREAM_PORT:-18080}"
NGINX_PORT="${NGINX_PORT:-18081}"
TIGW_PORT="${TIGW_PORT:-18082}"
HAPROXY_PORT="${HAPROXY_PORT:-18083}"
WS_PORT="${WS_PORT:-18089}"                  # websocket echo upstream (--websocket)
TIGW_METRICS_PORT="${TIGW_METRICS_PORT:-18096}" # used when TIGW_ARGS has no --metrics
PROXIES="${PROXIES:-nginx haproxy tigateway}"  # which to measure, in this order; "direct" = the upstream itself
THREADS="${THREADS:-1}"          # wrk -t / h2load -t
CONNECTIONS="${CONNECTIONS:-50}" # wrk -c
H2_CONNECTIONS="${H2_CONNECTIONS:-10}" # h2load -c
H2_STREAMS="${H2_STREAMS:-10}"   # h2load -m (concurrent streams per connection)
WS_CONNECTIONS="${WS_CONNECTIONS:-50}" # websocket client connections
WS_SIZE="${WS_SIZE:-32}"         # websocket message size, bytes
DURATION="${DURATION:-10s}"      # measured run
WARMUP="${WARMUP:-3s}"           # warm-up run (discarded)
RUNS="${RUNS:-1}"                # measured runs per proxy (alternating)
IDLE_WAIT="${IDLE_WAIT:-2}"      # seconds between "ready" and reading the idle RSS
NGINX_ACCESS_LOG="${NGINX_ACCESS_LOG:-}" # a path: the nginx proxy writes a JSON access log there (TiGateway's fields)
NGINX_XFF="${NGINX_XFF:-0}"      # 1: nginx/HAProxy also set X-Forwarded-For/-Proto/-Host, as TiGateway does
PIN="${PIN:-1}"                  # 1: proxies on CPU 0, upstream and client on CPU 1 (when nproc >= 2)
SUMMARY="${SUMMARY:-}"           # if set: append one tab-separated line per proxy to this file (bench/all.sh)
SCENARIO="${SCENARIO:-}"         # label written to SUMMARY lines
# TIGW_VARIANTS: several TiGateway processes with different arguments, measured alternately in the
# same run (e.g. metrics/access log on vs off): "name=args|name=args|...". The first is the baseline;
# variant i listens on TIGW_PORT + 10*i and appears as "tigw-name" in place of "tigateway".
# Args starting with "@PATH" run another binary, to compare two builds in the same run:
#   TIGW_VARIANTS="old=@/tmp/tigw-old --metrics off|new=@/tmp/tigw-new --metrics off"
TIGW_VARIANTS="${TIGW_VARIANTS:-}"

MODE=spring
ROUTES=1
BUILD=1
LOAD=wrk

usage() {
    sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'
    cat <<USAGE
Options:
  --shenyu        ShenYu divide selector/rule config instead of a Spring route
  --chain         ShenYu plugin chain (contextPath, rewrite, request, divide); nginx and HAProxy do
                  the same rewrite + header; the upstream checks both (404/400 otherwise)
  --routes N      generate N routes/selectors, only one (the last) matching (default 1); nginx gets
                  N prefix locations, HAProxy a map_beg map with N prefixes
  --h2            HTTP/2 cleartext (prior knowledge) client side, load from h2load
  --websocket     websocket echo; load from bench/ws.py (Python); add "direct" to PROXIES for the
                  client's own ceiling
  --no-build      do not run cargo; use \$TIGATEWAY_BIN or the existing perf binary
  -h, --help      this text
Environment (defaults): UPSTREAM_PORT=18080 NGINX_PORT=18081 TIGW_PORT=18082 HAPROXY_PORT=18083
  WS_PORT=18089 TIGW_METRICS_PORT=18096 PROXIES="nginx haproxy tigateway" THREADS=1 CONNECTIONS=50
  H2_CONNECTIONS=10 H2_STREAMS=10 WS_CONNECTIONS=50 WS_SIZE=32 DURATION=10s WARMUP=3s RUNS=1 PIN=1
  IDLE_WAIT=2 NGINX_XFF=0 REQ_PATH=/bench/ping (/ws/echo with --websocket) SUMMARY= SCENARIO=
  TIGW_ARGS (extra gateway arguments, e.g. "--access-log /tmp/access.log"; without --metrics the
    gateway gets --metrics 127.0.0.1:\$TIGW_METRICS_PORT)
  CARGO_TARGET_DIR (default \$ROOT/target) TIGATEWAY_BIN (default \$CARGO_TARGET_DIR/perf/tigateway)
USAGE
}

while [ $# -gt 0 ]; do
    case "$1" in
        --shenyu) MODE=shenyu ;;
        --chain) MODE=chain ;;
        --h2) LOAD=h2 ;;
        --websocket) LOAD=ws; MODE=ws ;;
        --routes) ROUTES="${2:?--routes needs a number}"; shift ;;
        --routes=*) ROUTES="${1#--routes=}" ;;
        --no-build) BUILD=0 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
case "$ROUTES" in ''|*[!0-9]*|0) echo "--routes must be a positive integer" >&2; exit 2 ;; esac
if [ "$LOAD" = ws ]; then REQ_PATH="${REQ_PATH:-/ws/echo}"; else REQ_PATH="${REQ_PATH:-/bench/ping}"; fi
if [ "$ROUTES" -gt 1 ] && [ "$MODE" != spring ] && [ "$MODE" != shenyu ]; then
    echo "--routes N > 1 works with the Spring (default) or --shenyu config only" >&2; exit 2
fi
for p in $PROXIES; do
    case "$p" in nginx|haproxy|tigateway|direct|tigw-*) ;; *) echo "PROXIES: unknown '$p' (nginx haproxy tigateway direct)" >&2; exit 2 ;; esac
done
VARIANT_NAMES=()
declare -A VARIANT_ARGS VARIANT_BIN
if [ -n "$TIGW_VARIANTS" ]; then
    IFS='|' read -r -a _variants <<<"$TIGW_VARIANTS"
    for v in "${_variants[@]}"; do
        split_variant "$v" ""
        name="$VARIANT_NAME"
        case "$name" in *[!A-Za-z0-9_+-]*) echo "TIGW_VARIANTS: bad name '$name'" >&2; exit 2 ;; esac
        VARIANT_NAMES+=("tigw-$name")
        if [ -n "$VARIANT_BINARY" ]; then
            [ -x "$VARIANT_BINARY" ] || { echo "TIGW_VARIANTS: '$name' names $VARIANT_BINARY, which is not an executable" >&2; exit 2; }
            VARIANT_BIN["tigw-$name"]="$VARIANT_BINARY"
        fi
        VARIANT_ARGS["tigw-$name"]="$VARIANT_REST"
    done
    expanded=""
    for p in $PROXIES; do
        if [ "$p" = tigateway ]; then expanded="$expanded ${VARIANT_NAMES[*]}"; else expanded="$expanded $p"; fi
    done
    case " $PROXIES " in *" tigateway "*) ;; *) expanded="$expanded ${VARIANT_NAMES[*]}" ;; esac
    PROXIES="${expanded# }"
fi
secs() { awk -v d="$1" 'BEGIN { n = d + 0; if (d ~ /ms$/) n /= 1000; else if (d ~ /m$/) n *= 60; printf "%g", n }'; }
want() { case " $PROXIES " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
log() { printf '\n==> %s\n' "$*" >&2; }

die() {
    {
        echo
        echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
        echo "!!! BENCHMARK FAILED: $*"
        echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
    } >&2
    exit 1
}

# ---------------------------------------------------------------- cleanup
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    PIDS=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- tools
as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        die "need root (or sudo) to install packages: $*"
    fi
}

ensure_tools() {
    local missing=()
    command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
    command -v wrk >/dev/null 2>&1 || missing+=(wrk)
    command -v curl >/dev/null 2>&1 || missing+=(curl)
    command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || ! want haproxy || missing+=(haproxy)
    command -v h2load >/dev/null 2>&1 || [ "$LOAD" != h2 ] || missing+=(nghttp2-client)
    if [ "$LOAD" = ws ] && ! python3 -c 'import websockets' 2>/dev/null; then
        log "installing the Python websockets package (pip) for bench/ws.py"
        python3 -m pip install -q websockets || die "bench/ws.py needs the Python websockets package: pip install websockets"
    fi
    [ ${#missing[@]} -eq 0 ] && return 0
    command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get: install them yourself"
    log "installing ${missing[*]} (apt-get)"
    local pkgs=()
    for m in "${missing[@]}"; do
        if [ "$m" = nginx ]; then pkgs+=(nginx-light); else pkgs+=("$m"); fi
    done
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -qq
    if ! as_root apt-get install -y -qq "${pkgs[@]}"; then
        # nginx-light is gone from newer Debian/Ubuntu releases; plain nginx is the same binary family.
        pkgs=("${pkgs[@]/nginx-light/nginx}")
        as_root apt-get install -y -qq "${pkgs[@]}" || die "apt-get install ${pkgs[*]} failed"
    fi
}

NGINX_BIN=""
find_nginx() {
    NGINX_BIN="$(command -v nginx 2>/dev/null || true)"
    [ -n "$NGINX_BIN" ] || NGINX_BIN=/usr/sbin/nginx
    [ -x "$NGINX_BIN" ] || die "nginx not found"
}

# ---------------------------------------------------------------- helpers
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

children_of() {
    if command -v pgrep >/dev/null; then pgrep -P "$1" || true; else
        awk -v p="$1" '{ if ($4 == p) print $1 }' /proc/[0-9]*/stat 2>/dev/null || true
    fi
}

# RSS of a process and its children (nginx master + worker), kB.
tree_rss_kb() {
    local total pid
    total=$(rss_kb "$1")
    for pid in $(children_of "$1"); do total=$((total + $(rss_kb "$pid"))); done
    echo "$total"
}

# CPU time (utime + stime, clock ticks) of a process, all threads; of a process and its children.
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk '{ print $12 + $13 }' || echo 0; }
tree_cpu_ticks() {
    local total pid
    total=$(cpu_ticks "$1")
    for pid in $(children_of "$1"); do total=$((total + $(cpu_ticks "$pid"))); done
    echo "$total"
}
# "busy total" jiffies of CPU $1 (or all CPUs when empty) from /proc/stat.
cpu_stat() { awk -v c="cpu$1" '$1 == c { t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t }' /proc/stat; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.0f%%", 100 * a / b; else print "n/a" }'; }

mb() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }

# Waits until GET $REQ_PATH on $2 answers 200 with the upstream body, or the process $3 dies.
wait_ready() {
    local name="$1" port="$2" pid="$3" logf="$4" code body
    local curl_opts=()
    [ "$LOAD" = h2 ] && [ "$port" != "$UPSTREAM_PORT" ] && curl_opts=(--http2-prior-knowledge)
    for _ in $(seq 300); do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "---- $logf ----" >&2; tail -n 40 "$logf" >&2 || true
            die "$name exited during start-up (log above, full log: $logf)"
        fi
        if [ "$LOAD" = ws ]; then
            if python3 -B "$BENCH_DIR/ws.py" probe --url "ws://127.0.0.1:$port$REQ_PATH" >"$OUT/probe.body" 2>&1; then
                return 0
            fi
            code="ws probe: $(tail -n 1 "$OUT/probe.body")"
            sleep 0.2
            continue
        fi
        code=$(curl -s "${curl_opts[@]}" -o "$OUT/probe.body" -w '%{http_code}' "http://127.0.0.1:$port$REQ_PATH" 2>/dev/null || true)
        if [ "$code" = 200 ]; then
            body=$(cat "$OUT/probe.body")
            [ "$body" = "$UPSTREAM_BODY" ] || die "$name answered 200 but with body '$body' (expected the upstream's '$UPSTREAM_BODY')"
            return 0
        fi
        sleep 0.1
    done
    echo "---- $logf ----" >&2; tail -n 40 "$logf" >&2 || true
    die "$name on :$port did not answer GET $REQ_PATH with 200 within 30 s (last status: ${code:-none})"
}

# wrk latency text (e.g. 812.00us, 1.23ms, 2.01s) -> milliseconds
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /us$/) n = n / 1000; else if (v ~ /ms$/) n = n; else if (v ~ /m$/) n = n * 60000; else if (v ~ /s$/) n = n * 1000
        printf "%.3f", n }'
}

# Runs wrk against $1, saving output to $2; prints "rps p50_ms p99_ms errors".
run_wrk() {
    local port="$1" out="$2" duration="$3"
    "${WRK_PIN[@]}" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$duration" --latency \
        "http://127.0.0.1:$port$REQ_PATH" >"$out" 2>&1 || die "wrk failed against :$port (see $out)"
    local rps p50 p99 non2xx sockerr
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
    p50=$(awk '$1 == "50%" {print $2}' "$out")
    p99=$(awk '$1 == "99%" {print $2}' "$out")
    non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' "$out")
    sockerr=$(awk '/Socket errors:/ { n = 0; for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) n += $i; print n }' "$out")
    [ -n "$rps" ] && [ -n "$p50" ] && [ -n "$p99" ] || die "could not parse wrk output $out"
    echo "$rps $(to_ms "$p50") $(to_ms "$p99") $(( ${non2xx:-0} + ${sockerr:-0} ))"
}

# Runs h2load (h2c prior knowledge) against $1; percentiles come from its per-request log file
# (h2load itself prints only min/max/mean). Prints "rps p50_ms p99_ms errors".
run_h2load() {
    local port="$1" out="$2" duration="$3"
    "${WRK_PIN[@]}" h2load -t"$THREADS" -c"$H2_CONNECTIONS" -m"$H2_STREAMS" -D "$(secs "$duration")" \
        --log-file="$out.log" "http://127.0.0.1:$port$REQ_PATH" >"$out" 2>&1 || die "h2load failed against :$port (see $out)"
    local rps failed errored timeout non2xx p50 p99
    rps=$(awk '/^finished in/ { for (i = 1; i <= NF; i++) if ($(i + 1) ~ /^req\/s/) { gsub(",", "", $i); print $i } }' "$out")
    read -r failed errored timeout <<<"$(awk '/^requests:/ { print $10, $12, $14 }' "$out")"
    non2xx=$(awk '/^status codes:/ { gsub(",", ""); print $5 + $7 + $9 }' "$out")
    read -r p50 p99 <<<"$(awk '{ print $3 }' "$out.log" | sort -n | awk '{ v[NR] = $1 } END {
        if (NR == 0) { print "nan nan"; exit }
        i50 = int(NR * 0.50); if (i50 < 1) i50 = 1; i99 = int(NR * 0.99); if (i99 < 1) i99 = 1
        printf "%.3f %.3f", v[i50] / 1000, v[i99] / 1000 }')"
    rm -f "$out.log"
    [ -n "$rps" ] && [ "$p50" != nan ] || die "could not parse h2load output $out"
    echo "$rps $p50 $p99 $(( ${failed:-0} + ${errored:-0} + ${timeout:-0} + ${non2xx:-0} ))"
}

# Runs the websocket echo client against $1. Prints "msgs/s p50_ms p99_ms errors".
run_ws() {
    local port="$1" out="$2" duration="$3" line
    "${WRK_PIN[@]}" python3 -B "$BENCH_DIR/ws.py" client --url "ws://127.0.0.1:$port$REQ_PATH" \
        --connections "$WS_CONNECTIONS" --duration "$(secs "$duration")" --size "$WS_SIZE" >"$out" 2>&1 \
        || die "ws.py client failed against :$port (see $out)"
    line=$(tail -n 1 "$out")
    [ "$(echo "$line" | wc -w)" = 4 ] || die "could not parse ws.py output $out"
    echo "$line"
}

run_load() {
    case "$LOAD" in
        wrk) run_wrk "$@" ;;
        h2) run_h2load "$@" ;;
        ws) run_ws "$@" ;;
    esac
}

# ---------------------------------------------------------------- configs
write_nginx_common() {
    # Everything an nginx instance writes stays in its own prefix dir.
    local dir="$1"
    mkdir -p "$dir/logs" "$dir/tmp"
    if [ "$(id -u)" -eq 0 ]; then echo "user root;"; fi
    cat <<NGX
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 4096; multi_accept on; }
NGX
}

http_common() {
    local dir="$1"
    cat <<NGX
    access_log off;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    keepalive_timeout 75s;
    keepalive_requests 100000000;
NGX
}

write_upstream_conf() {
    local dir="$OUT/upstream"
    {
        write_nginx_common "$dir"
        echo "http {"
        http_common "$dir"
        echo "    server {"
        echo "        listen 127.0.0.1:$UPSTREAM_PORT backlog=4096;"
        echo "        default_type text/plain;"
        if [ "$MODE" = chain ]; then
            # The chain must have rewritten /bench/x to /v2/x and added X-Bench: 1, else no 200.
            cat <<NGX
        location / { return 404 "not rewritten\n"; }
        location /v2/ {
            if (\$http_x_bench != "1") { return 400 "X-Bench header missing\n"; }
            return 200 "$UPSTREAM_BODY\n";
        }
NGX
        else
            echo "        location / { return 200 \"$UPSTREAM_BODY\n\"; }"
        fi
        echo "    }"
        echo "}"
    } >"$dir/nginx.conf"
}

# The port the proxies forward to.
backend_port() { if [ "$LOAD" = ws ]; then echo "$WS_PORT"; else echo "$UPSTREAM_PORT"; fi; }

write_proxy_conf() {
    local dir="$OUT/nginx-proxy" listen_opts="backlog=4096"
    [ "$LOAD" = h2 ] && listen_opts="http2 $listen_opts"   # nginx 1.22: cleartext http2 = h2c prior knowledge
    {
        write_nginx_common "$dir"
        echo "http {"
        http_common "$dir"
        cat <<NGX
    $NGINX_TIGW_LOG_FORMAT
    upstream backend {
        server 127.0.0.1:$(backend_port);
        keepalive 64;
        keepalive_requests 100000000;
    }
    server {
        listen 127.0.0.1:$NGINX_PORT $listen_opts;
        proxy_http_version 1.1;
NGX
        if [ -n "$NGINX_ACCESS_LOG" ]; then
            echo "        $(nginx_tigw_access_log "$NGINX_ACCESS_LOG")"
        fi
        if [ "$LOAD" = ws ]; then
            echo '        proxy_set_header Upgrade $http_upgrade;'
            echo '        proxy_set_header Connection "upgrade";'
            echo '        proxy_read_timeout 1h;'
        else
            echo '        proxy_set_header Connection "";'
        fi
        if [ "$NGINX_XFF" = 1 ]; then
            echo '        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;'
            echo '        proxy_set_header X-Forwarded-Proto $scheme;'
            echo '        proxy_set_header X-Forwarded-Host $host;'
        fi
        if [ "$MODE" = chain ]; then
            # What the TiGateway chain does: strip the context path, rewrite, add a header.
            # (proxy_set_header here replaces the server-level ones, so repeat Connection.)
            cat <<'NGX'
        location /bench/ {
            rewrite ^/bench/(.*)$ /v2/$1 break;
            proxy_set_header Connection "";
            proxy_set_header X-Bench 1;
            proxy_pass http://backend;
        }
NGX
        elif [ "$ROUTES" -gt 1 ]; then
            awk -v n=$((ROUTES - 1)) 'BEGIN { for (i = 0; i < n; i++) printf "        location /svc%d/api/ { proxy_pass http://backend; }\n", i }'
            echo "        location /bench/ { proxy_pass http://backend; }"
        else
            echo "        location / { proxy_pass http://backend; }"
        fi
        echo "    }"
        echo "}"
    } >"$dir/nginx.conf"
}

write_haproxy_conf() {
    local dir="$OUT/haproxy" bind_opts=""
    mkdir -p "$dir"
    [ "$LOAD" = h2 ] && bind_opts="proto h2"   # cleartext HTTP/2 with prior knowledge
    {
        cat <<HAP
global
    nbthread 1
    maxconn 8000
    pidfile $dir/haproxy.pid
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout tunnel 1h
    option http-keep-alive
    http-reuse always
frontend fe
    bind 127.0.0.1:$HAPROXY_PORT $bind_opts
HAP
        [ "$NGINX_XFF" = 1 ] && echo "    option forwardfor"
        if [ "$MODE" = chain ]; then
            echo '    http-request replace-path ^/bench/(.*) /v2/\1'
            echo '    http-request set-header X-Bench 1'
            echo "    default_backend be"
        elif [ "$ROUTES" -gt 1 ]; then
            # N prefixes in a map (the idiomatic HAProxy way for many routes); unmatched -> 503.
            awk -v n=$((ROUTES - 1)) 'BEGIN { for (i = 0; i < n; i++) printf "/svc%d/api/ be\n", i; print "/bench/ be" }' >"$dir/routes.map"
            echo "    use_backend %[path,map_beg($dir/routes.map)]"
        else
            echo "    default_backend be"
        fi
        cat <<HAP
backend be
    server up 127.0.0.1:$(backend_port)
HAP
    } >"$dir/haproxy.cfg"
}

# TiGateway config: one matching route, preceded by ROUTES-1 that do not match the request.
write_tigateway_conf() {
    local f="$OUT/tigateway.yaml"
    local n_other=$((ROUTES - 1))
    local handle="'[{\"upstreamUrl\":\"127.0.0.1:$UPSTREAM_PORT\",\"protocol\":\"http://\",\"weight\":50}]'"
    local rule_handle='{loadBalance: roundRobin, retry: 0, timeout: 3000}'
    if [ "$MODE" = ws ]; then
        {
            echo "# generated by bench/run.sh: websocket Spring route to the echo server"
            echo "routes:"
            echo "  - {id: ws, uri: \"ws://127.0.0.1:$WS_PORT\", predicates: [\"Path=/ws/**\"]}"
        } >"$f"
    elif [ "$MODE" = chain ]; then
        cat >"$f" <<TIGW
# generated by bench/run.sh: ShenYu plugin chain, GET /bench/x -> upstream GET /v2/x with X-Bench: 1
selectors:
  - {id: cp, pluginName: contextPath, type: 1, conditionList: [{paramType: uri, operator: match, paramValue: "/bench/**"}]}
  - {id: rw, pluginName: rewrite, type: 1, conditionList: [{paramType: uri, operator: match, paramValue: "/bench/**"}]}
  - {id: rq, pluginName: request, type: 0}
  - {id: bench, pluginName: divide, type: 1, conditionList: [{paramType: uri, operator: match, paramValue: "/bench/**"}], handle: $handle}
rules:
  - {id: cp1, selectorId: cp, conditionDataList: [{paramType: uri, operator: match, paramValue: "/bench/**"}], handle: {contextPath: /bench, addPrefix: /internal}}
  - {id: rw1, selectorId: rw, conditionDataList: [{paramType: uri, operator: match, paramValue: "/bench/**"}], handle: {regex: "^/internal/(.*)", replace: "/v2/\$1"}}
  - {id: rq1, selectorId: rq, handle: {header: {addHeaders: {X-Bench: "1"}}}}
  - {id: bench-all, selectorId: bench, conditionDataList: [{paramType: uri, operator: match, paramValue: "/bench/**"}], handle: $rule_handle}
TIGW
    elif [ "$MODE" = spring ]; then
        {
            echo "# generated by bench/run.sh: $ROUTES Spring route(s), only the last matches $REQ_PATH"
            echo "services:"
            echo "  backend: [{url: \"http://127.0.0.1:$UPSTREAM_PORT\"}]"
            echo "routes:"
            awk -v n="$n_other" 'BEGIN {
                for (i = 0; i < n; i++)
                    printf "  - {id: svc%d, uri: \"lb://backend\", predicates: [\"Path=/svc%d/api/**\"]}\n", i, i }'
            if [ "$ROUTES" -eq 1 ]; then
                echo "  - {id: bench, uri: \"lb://backend\", predicates: [\"Path=/**\"]}"
            else
                echo "  - {id: bench, uri: \"lb://backend\", predicates: [\"Path=/bench/**\"]}"
            fi
        } >"$f"
    else
        {
            echo "# generated by bench/run.sh: $ROUTES ShenYu divide selector(s), only the last matches $REQ_PATH"
            echo "selectors:"
            awk -v n="$n_other" -v h="$handle" 'BEGIN {
                for (i = 0; i < n; i++)
                    printf "  - {id: \"s%d\", pluginName: divide, name: svc%d, type: 1, matchMode: 0, sort: %d, conditionList: [{paramType: uri, operator: match, paramValue: \"/svc%d/api/**\"}], handle: %s}\n", i, i, i, i, h }'
            local pattern="/**"
            [ "$ROUTES" -eq 1 ] || pattern="/bench/**"
            echo "  - {id: \"bench\", pluginName: divide, name: bench, type: 1, matchMode: 0, sort: $ROUTES, conditionList: [{paramType: uri, operator: match, paramValue: \"$pattern\"}], handle: $handle}"
            echo "rules:"
            awk -v n="$n_other" -v h="$rule_handle" 'BEGIN {
                for (i = 0; i < n; i++)
                    printf "  - {id: \"r%d\", selectorId: \"s%d\", name: svc%d, matchMode: 0, sort: 1, conditionDataList: [{paramType: uri, operator: match, paramValue: \"/svc%d/api/**\"}], handle: %s}\n", i, i, i, i, h }'
            echo "  - {id: \"bench-all\", selectorId: \"bench\", name: all, matchMode: 0, sort: 1, conditionDataList: [{paramType: uri, operator: match, paramValue: \"$pattern\"}], handle: $rule_handle}"
        } >"$f"
    fi
}

# ---------------------------------------------------------------- main
mkdir -p "$OUT"
rm -rf "$OUT/upstream" "$OUT/nginx-proxy" "$OUT/haproxy"
mkdir -p "$OUT/upstream" "$OUT/nginx-proxy" "$OUT/haproxy"

ensure_tools
find_nginx

NPROC=$(nproc)
PROXY_PIN=()
WRK_PIN=()
if [ "$PIN" = 1 ] && [ "$NPROC" -ge 2 ] && command -v taskset >/dev/null; then
    PROXY_PIN=(taskset -c 0)
    WRK_PIN=(taskset -c 1)
    PIN_NOTE="proxies on CPU 0; upstream and load client on CPU 1"
    CLIENT_CPU=1
else
    PIN_NOTE="not pinned"
    CLIENT_CPU=""
fi
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)


any_tigw() { want tigateway || [ ${#VARIANT_NAMES[@]} -gt 0 ]; }
if any_tigw; then
    TIGW="${TIGATEWAY_BIN:-$PERF_BIN}"
    if [ "$BUILD" = 1 ] && [ -z "${TIGATEWAY_BIN:-}" ]; then
        log "building tigateway (cargo build --profile perf -p tigateway; fat LTO, takes a while)"
        (cd "$ROOT" && cargo build --profile perf -p tigateway) || die "cargo build --profile perf -p tigateway failed"
    fi
    [ -x "$TIGW" ] || die "no tigateway binary at $TIGW (build it, or set TIGATEWAY_BIN)"
fi

ports=("$UPSTREAM_PORT")
[ "$LOAD" = ws ] && ports+=("$WS_PORT")
want nginx && ports+=("$NGINX_PORT")
want haproxy && ports+=("$HAPROXY_PORT")
want tigateway && ports+=("$TIGW_PORT")
for i in "${!VARIANT_NAMES[@]}"; do ports+=($((TIGW_PORT + 10 * i))); done
for p in "${ports[@]}"; do
    port_busy "$p" && die "port $p is already in use (set UPSTREAM_PORT / NGINX_PORT / HAPROXY_PORT / TIGW_PORT / WS_PORT)"
done

write_upstream_conf
"$NGINX_BIN" -t -q -p "$OUT/upstream" -c "$OUT/upstream/nginx.conf" -e "$OUT/upstream/logs/error.log" \
    || die "upstream nginx config invalid"

log "starting upstream nginx on :$UPSTREAM_PORT"
"${WRK_PIN[@]}" "$NGINX_BIN" -p "$OUT/upstream" -c "$OUT/upstream/nginx.conf" -e "$OUT/upstream/logs/error.log" \
    >"$OUT/upstream.log" 2>&1 &
UP_PID=$!
PIDS+=("$UP_PID")
for _ in $(seq 100); do port_busy "$UPSTREAM_PORT" && break; sleep 0.05; done
port_busy "$UPSTREAM_PORT" || { cat "$OUT/upstream.log" "$OUT/upstream/logs/error.log" >&2 || true; die "upstream nginx did not start"; }

DIRECT_PORT=$UPSTREAM_PORT
DIRECT_PID=$UP_PID
if [ "$LOAD" = ws ]; then
    log "starting websocket echo server (bench/ws.py) on :$WS_PORT"
    "${WRK_PIN[@]}" python3 -B "$BENCH_DIR/ws.py" server --port "$WS_PORT" >"$OUT/ws-server.log" 2>&1 &
    WS_PID=$!
    PIDS+=("$WS_PID")
    DIRECT_PORT=$WS_PORT
    DIRECT_PID=$WS_PID
    wait_ready "websocket echo server" "$WS_PORT" "$WS_PID" "$OUT/ws-server.log"
fi

declare -A PORT_OF PID_OF RSS_IDLE RSS_LOADED
PORT_OF[direct]=$DIRECT_PORT; PID_OF[direct]=$DIRECT_PID

if want nginx; then
    write_proxy_conf
    "$NGINX_BIN" -t -q -p "$OUT/nginx-proxy" -c "$OUT/nginx-proxy/nginx.conf" -e "$OUT/nginx-proxy/logs/error.log" \
        || die "proxy nginx config invalid"
    log "starting nginx proxy on :$NGINX_PORT"
    "${PROXY_PIN[@]}" "$NGINX_BIN" -p "$OUT/nginx-proxy" -c "$OUT/nginx-proxy/nginx.conf" -e "$OUT/nginx-proxy/logs/error.log" \
        >"$OUT/nginx-proxy.log" 2>&1 &
    PID_OF[nginx]=$!; PORT_OF[nginx]=$NGINX_PORT
    PIDS+=("${PID_OF[nginx]}")
    wait_ready "nginx proxy" "$NGINX_PORT" "${PID_OF[nginx]}" "$OUT/nginx-proxy/logs/error.log"
fi

if want haproxy; then
    write_haproxy_conf
    haproxy -c -q -f "$OUT/haproxy/haproxy.cfg" >"$OUT/haproxy-check.log" 2>&1 \
        || { cat "$OUT/haproxy-check.log" >&2; die "haproxy config invalid ($OUT/haproxy/haproxy.cfg)"; }
    log "starting haproxy on :$HAPROXY_PORT"
    # -db: foreground, no daemon; -Ws would add a master process, not wanted here.
    "${PROXY_PIN[@]}" haproxy -db -f "$OUT/haproxy/haproxy.cfg" >"$OUT/haproxy.log" 2>&1 &
    PID_OF[haproxy]=$!; PORT_OF[haproxy]=$HAPROXY_PORT
    PIDS+=("${PID_OF[haproxy]}")
    wait_ready "haproxy" "$HAPROXY_PORT" "${PID_OF[haproxy]}" "$OUT/haproxy.log"
fi

# start_tigw NAME PORT ARGS: one gateway process on the generated config.
start_tigw() {
    local name="$1" port="$2" extra="$3" t0 bin="${VARIANT_BIN[$1]:-$TIGW}"
    log "starting $name on :$port ($MODE, $ROUTES route(s)): $bin --workers 1 $extra"
    # shellcheck disable=SC2086
    "${PROXY_PIN[@]}" "$bin" gateway -c "$OUT/tigateway.yaml" --listen "127.0.0.1:$port" --workers 1 $extra \
        >"$OUT/$name.log" 2>&1 &
    PID_OF[$name]=$!; PORT_OF[$name]=$port
    PIDS+=("${PID_OF[$name]}")
    t0=$(date +%s.%N)
    wait_ready "$name" "$port" "${PID_OF[$name]}" "$OUT/$name.log"
    READY_IN[$name]=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2fs", b - a }')
}
declare -A READY_IN TIGW_ARGS_OF
if any_tigw; then
    write_tigateway_conf
    if ! "$TIGW" validate "$OUT/tigateway.yaml" >"$OUT/tigateway-validate.log" 2>&1; then
        tail -n 40 "$OUT/tigateway-validate.log" >&2
        die "tigateway validate rejected the generated config $OUT/tigateway.yaml (errors above)"
    fi
fi
if want tigateway; then
    # TIGW_ARGS: extra gateway arguments, e.g. "--access-log $OUT/access.log" or "--metrics off".
    # Without --metrics the default 127.0.0.1:9196 may be taken by another gateway; use our own port.
    TIGW_EXTRA="${TIGW_ARGS:-}"
    case " $TIGW_EXTRA " in *" --metrics"*) ;; *) TIGW_EXTRA="$TIGW_EXTRA --metrics 127.0.0.1:$TIGW_METRICS_PORT" ;; esac
    TIGW_ARGS_OF[tigateway]="$TIGW_EXTRA"
    start_tigw tigateway "$TIGW_PORT" "$TIGW_EXTRA"
fi
for i in "${!VARIANT_NAMES[@]}"; do
    name="${VARIANT_NAMES[$i]}"
    TIGW_ARGS_OF[$name]="${VARIANT_BIN[$name]:+[$(basename "${VARIANT_BIN[$name]}")] }${VARIANT_ARGS[$name]}"
    start_tigw "$name" $((TIGW_PORT + 10 * i)) "${VARIANT_ARGS[$name]}"
done
sleep "$IDLE_WAIT"   # let start-up garbage be returned before reading the idle RSS
for who in $PROXIES; do RSS_IDLE[$who]=$(tree_rss_kb "${PID_OF[$who]}"); done

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULT="$OUT/result-$LOAD-$MODE-$ROUTES-$STAMP.txt"
case "$LOAD" in
    wrk) LOAD_SETTINGS="wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency http://127.0.0.1:PORT$REQ_PATH" ;;
    h2) LOAD_SETTINGS="h2load -t$THREADS -c$H2_CONNECTIONS -m$H2_STREAMS -D $(secs "$DURATION") http://127.0.0.1:PORT$REQ_PATH (h2c prior knowledge)" ;;
    ws) LOAD_SETTINGS="bench/ws.py client --connections $WS_CONNECTIONS --size $WS_SIZE --duration $(secs "$DURATION") ws://127.0.0.1:PORT$REQ_PATH (echo round trips)" ;;
esac

declare -A RES
for run in $(seq "$RUNS"); do
    for who in $PROXIES; do
        port=${PORT_OF[$who]}; pid=${PID_OF[$who]}
        log "$who: warm-up $WARMUP"
        run_load "$port" "$OUT/load-$LOAD-$MODE-$ROUTES-$who-warmup.txt" "$WARMUP" >/dev/null
        kill -0 "$pid" 2>/dev/null || die "$who died during the warm-up (see $OUT/$who*.log)"
        log "$who: measured run $run/$RUNS ($DURATION)"
        c0=$(tree_cpu_ticks "$pid"); read -r cb0 ct0 <<<"$(cpu_stat "$CLIENT_CPU")"; w0=$(date +%s.%N)
        line=$(run_load "$port" "$OUT/load-$LOAD-$MODE-$ROUTES-$who-$run.txt" "$DURATION")
        c1=$(tree_cpu_ticks "$pid"); read -r cb1 ct1 <<<"$(cpu_stat "$CLIENT_CPU")"; w1=$(date +%s.%N)
        kill -0 "$pid" 2>/dev/null || die "$who died under load (see $OUT/$who*.log)"
        # proxy CPU as % of one core; client side (load client + upstream) as % busy of its CPU(s)
        proxy_cpu=$(awk -v t=$((c1 - c0)) -v hz="$CLK_TCK" -v a="$w0" -v b="$w1" 'BEGIN { printf "%.0f", 100 * t / hz / (b - a) }')
        client_cpu=$(awk -v a=$((cb1 - cb0)) -v b=$((ct1 - ct0)) 'BEGIN { printf "%.0f", (b > 0 ? 100 * a / b : 0) }')
        line="$line $proxy_cpu $client_cpu"
        echo "   $line  (rps p50_ms p99_ms errors proxy_cpu% client_cpu_busy%)" >&2
        RES[$who]="${RES[$who]:-}${RES[$who]:+;}$line"
    done
done
for who in $PROXIES; do RSS_LOADED[$who]=$(tree_rss_kb "${PID_OF[$who]}"); done

# Mean over runs of each column: "rps p50 p99 errors proxy_cpu client_cpu".
mean_of() { tr ';' '\n' <<<"$1" | awk '{ r += $1; p50 += $2; p99 += $3; e += $4; pc += $5; cc += $6; n++ }
    END { printf "%.0f %.3f %.3f %d %.0f %.0f", r / n, p50 / n, p99 / n, e, pc / n, cc / n }'; }
per_cpu() { awk -v r="$1" -v c="$2" 'BEGIN { if (c > 0) printf "%.0f", r * 100 / c; else print "n/a" }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 > 0 && a + 0 > 0) printf "%.2f", a / b; else print "n/a" }'; }
declare -A M
for who in $PROXIES; do M[$who]=$(mean_of "${RES[$who]}"); done
unit="requests/s"; [ "$LOAD" = ws ] && unit="msgs/s"

{
    echo "Proxies ($LOAD, $MODE) — $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "machine:   $NPROC cores, $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), $(uname -r); load average $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "nginx:     $("$NGINX_BIN" -v 2>&1 | sed 's/^nginx version: //')   haproxy: $(haproxy -v 2>/dev/null | head -n1 | awk '{print $3}')"
    if any_tigw; then
        echo "tigateway: $TIGW ($("$TIGW" --version 2>/dev/null || echo '?'))"
        for who in $PROXIES; do
            case "$who" in tigateway|tigw-*) echo "  $who: gateway --workers 1 ${TIGW_ARGS_OF[$who]}  (ready in ${READY_IN[$who]})" ;; esac
        done
    fi
    echo "config:    $MODE, $ROUTES route(s)/selector(s); request GET $REQ_PATH"
    echo "load:      $LOAD_SETTINGS  (warm-up $WARMUP first; $RUNS measured run(s), mean shown)"
    echo "cpu:       $PIN_NOTE"
    echo
    printf '%-18s %12s %10s %10s %8s %10s %11s %10s %10s\n' proxy "$unit" "p50 ms" "p99 ms" errors "proxy CPU" "client CPU" "req/CPU-s" "RSS MiB"
    for who in $PROXIES; do
        read -r rps p50 p99 err pc cc <<<"${M[$who]}"
        printf '%-18s %12s %10s %10s %8s %9s%% %10s%% %10s %10s\n' "$who" "$rps" "$p50" "$p99" "$err" "$pc" "$cc" \
            "$(per_cpu "$rps" "$pc")" "$(awk -v k="${RSS_LOADED[$who]}" 'BEGIN { printf "%.1f", k / 1024 }')"
        if [ -n "$SUMMARY" ]; then
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "${SCENARIO:-$LOAD-$MODE-$ROUTES}" "$who" "$rps" "$p50" "$p99" "$err" "$pc" "$cc" "$(per_cpu "$rps" "$pc")" >>"$SUMMARY"
        fi
    done
    if want tigateway; then
        read -r t_rps t_p50 t_p99 _ t_pc _ <<<"${M[tigateway]}"
        for other in nginx haproxy direct; do
            want "$other" || continue
            read -r o_rps o_p50 o_p99 _ o_pc _ <<<"${M[$other]}"
            [ "$other" = direct ] && o_pc=0   # the upstream's own CPU: no per-request cost ratio
            printf '%-18s %12s %10s %10s %8s %10s %11s %10s\n' "tigw/$other" "$(ratio "$t_rps" "$o_rps")" "$(ratio "$t_p50" "$o_p50")" \
                "$(ratio "$t_p99" "$o_p99")" "" "" "" "$(ratio "$(per_cpu "$t_rps" "$t_pc")" "$(per_cpu "$o_rps" "$o_pc")")"
        done
    fi
    echo "(proxy CPU: the proxy's CPU time / wall time, % of one core; client CPU: how busy the CPU"
    echo " running the load client + the upstream was (all CPUs when not pinned); near 100% means the"
    echo " client side may be the limit. req/CPU-s: requests per second of proxy CPU time. RSS after load.)"
    if [ "$RUNS" -gt 1 ]; then
        echo
        echo "per run (rps p50_ms p99_ms errors proxy_cpu% client_cpu%):"
        for who in $PROXIES; do echo "  $who: ${RES[$who]//;/ | }"; done
    fi
    if [ ${#VARIANT_NAMES[@]} -gt 1 ]; then
        base="${VARIANT_NAMES[0]}"
        read -r b_rps _ _ _ b_pc _ <<<"${M[$base]}"
        echo
        echo "cost vs $base (positive = slower / more CPU per request):"
        for name in "${VARIANT_NAMES[@]:1}"; do
            read -r v_rps _ _ _ v_pc _ <<<"${M[$name]}"
            awk -v n="$name" -v br="$b_rps" -v vr="$v_rps" -v bc="$(per_cpu "$b_rps" "$b_pc")" -v vc="$(per_cpu "$v_rps" "$v_pc")" 'BEGIN {
                printf "  %-22s requests/s %+6.1f%%   requests per CPU-s %+6.1f%%\n", n, (br > 0 ? 100 * (1 - vr / br) : 0), (bc > 0 ? 100 * (1 - vc / bc) : 0) }'
        done
    fi
    echo
    for who in $PROXIES; do
        case "$who" in tigateway|tigw-*)
            echo "$who RSS: idle $(mb "${RSS_IDLE[$who]}"), after load $(mb "${RSS_LOADED[$who]}"), peak $(mb "$(hwm_kb "${PID_OF[$who]}")")" ;;
        esac
    done
} | tee "$RESULT"

total_err=0
for who in $PROXIES; do read -r _ _ _ err _ _ <<<"${M[$who]}"; total_err=$((total_err + err)); done
if [ "$total_err" -gt 0 ]; then
    echo "WARNING: errors (non-2xx, socket errors, failed/mismatched messages) during the runs (see $OUT/load-$LOAD-$MODE-$ROUTES-*.txt)" >&2
fi
echo "(saved to $RESULT)" >&2
