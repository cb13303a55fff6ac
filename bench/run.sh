#!/usr/bin/env bash
# TiGateway vs nginx as a reverse proxy, on loopback, one worker each.
#
#   bench/run.sh                  # Spring-style route  Path=/**            -> lb://backend
#   bench/run.sh --shenyu         # ShenYu divide selector + rule  uri match /**
#   bench/run.sh --routes 10000   # 10,000 routes (or selectors with --shenyu), only the last matches
#
# Processes (all on 127.0.0.1, all stopped on exit):
#   upstream  nginx, 1 worker, `return 200` with a fixed small body          :$UPSTREAM_PORT
#   nginx     nginx, 1 worker, proxy_pass to the upstream, keepalive 64     :$NGINX_PORT
#   tigateway tigateway gateway --workers 1                                  :$TIGW_PORT
# Each proxy gets a warm-up wrk run, then a measured one with the same settings.
# See bench/README.md. Output and temp files go to bench/out/ (gitignored).
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH_DIR/.." && pwd)"
OUT="${OUT:-$BENCH_DIR/out}"

UPSTREAM_PORT="${UPSTREAM_PORT:-18080}"
NGINX_PORT="${NGINX_PORT:-18081}"
TIGW_PORT="${TIGW_PORT:-18082}"
THREADS="${THREADS:-1}"          # wrk -t
CONNECTIONS="${CONNECTIONS:-50}" # wrk -c
DURATION="${DURATION:-10s}"      # wrk -d, measured run
WARMUP="${WARMUP:-3s}"           # wrk -d, warm-up run (discarded)
RUNS="${RUNS:-1}"                # measured runs per proxy (alternating nginx, tigateway)
IDLE_WAIT="${IDLE_WAIT:-2}"      # seconds between "ready" and reading the idle RSS
NGINX_XFF="${NGINX_XFF:-0}"      # 1: nginx also sets X-Forwarded-For/-Proto/-Host, as TiGateway does
PIN="${PIN:-1}"                  # 1: proxies on CPU 0, upstream and wrk on CPU 1 (when nproc >= 2)
REQ_PATH="${REQ_PATH:-/bench/ping}"
BODY="ok 0123456789abcdef0123456789abcdef"   # upstream response body (fixed, 35 bytes + LF)

MODE=spring
ROUTES=1
BUILD=1

usage() {
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
    cat <<EOF
Options:
  --shenyu        ShenYu divide selector/rule config instead of a Spring route
  --routes N      generate N routes/selectors, only one (the last) matching (default 1)
  --no-build      do not run cargo; use \$TIGATEWAY_BIN or the existing perf binary
  -h, --help      this text
Environment (defaults): UPSTREAM_PORT=18080 NGINX_PORT=18081 TIGW_PORT=18082 THREADS=1
  CONNECTIONS=50 DURATION=10s WARMUP=3s RUNS=1 PIN=1 IDLE_WAIT=2 NGINX_XFF=0 REQ_PATH=/bench/ping
  TIGW_ARGS (extra gateway arguments, e.g. "--access-log /tmp/access.log")
  CARGO_TARGET_DIR (default \$ROOT/target) TIGATEWAY_BIN (default \$CARGO_TARGET_DIR/perf/tigateway)
EOF
}

while [ $# -gt 0 ]; do
    case "$1" in
        --shenyu) MODE=shenyu ;;
        --routes) ROUTES="${2:?--routes needs a number}"; shift ;;
        --routes=*) ROUTES="${1#--routes=}" ;;
        --no-build) BUILD=0 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
case "$ROUTES" in ''|*[!0-9]*|0) echo "--routes must be a positive integer" >&2; exit 2 ;; esac

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
    for _ in $(seq 300); do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "---- $logf ----" >&2; tail -n 40 "$logf" >&2 || true
            die "$name exited during start-up (log above, full log: $logf)"
        fi
        code=$(curl -s -o "$OUT/probe.body" -w '%{http_code}' "http://127.0.0.1:$port$REQ_PATH" 2>/dev/null || true)
        if [ "$code" = 200 ]; then
            body=$(cat "$OUT/probe.body")
            [ "$body" = "$BODY" ] || die "$name answered 200 but with body '$body' (expected the upstream's '$BODY')"
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

# Runs wrk against $2, saving output to $3; prints "rps p50_ms p99_ms errors".
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

# ---------------------------------------------------------------- configs
write_nginx_common() {
    # Everything an nginx instance writes stays in its own prefix dir.
    local dir="$1"
    mkdir -p "$dir/logs" "$dir/tmp"
    if [ "$(id -u)" -eq 0 ]; then echo "user root;"; fi
    cat <<EOF
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 4096; multi_accept on; }
EOF
}

http_common() {
    local dir="$1"
    cat <<EOF
    access_log off;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    keepalive_timeout 75s;
    keepalive_requests 100000000;
EOF
}

write_upstream_conf() {
    local dir="$OUT/upstream"
    {
        write_nginx_common "$dir"
        echo "http {"
        http_common "$dir"
        cat <<EOF
    server {
        listen 127.0.0.1:$UPSTREAM_PORT backlog=4096;
        location / {
            default_type text/plain;
            return 200 "$BODY\n";
        }
    }
}
EOF
    } >"$dir/nginx.conf"
}

write_proxy_conf() {
    local dir="$OUT/nginx-proxy"
    {
        write_nginx_common "$dir"
        echo "http {"
        http_common "$dir"
        cat <<EOF
    upstream backend {
        server 127.0.0.1:$UPSTREAM_PORT;
        keepalive 64;
        keepalive_requests 100000000;
    }
    server {
        listen 127.0.0.1:$NGINX_PORT backlog=4096;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
$(if [ "$NGINX_XFF" = 1 ]; then cat <<'XFF'
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $host;
XFF
fi)
        }
    }
}
EOF
    } >"$dir/nginx.conf"
}

# TiGateway config: one matching route, preceded by ROUTES-1 that do not match the request.
write_tigateway_conf() {
    local f="$OUT/tigateway.yaml"
    local n_other=$((ROUTES - 1))
    if [ "$MODE" = spring ]; then
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
        local handle="'[{\"upstreamUrl\":\"127.0.0.1:$UPSTREAM_PORT\",\"protocol\":\"http://\",\"weight\":50}]'"
        local rule_handle='{loadBalance: roundRobin, retry: 0, timeout: 3000}'
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
rm -rf "$OUT/upstream" "$OUT/nginx-proxy"
mkdir -p "$OUT/upstream" "$OUT/nginx-proxy"

ensure_tools
find_nginx

NPROC=$(nproc)
PROXY_PIN=()
WRK_PIN=()
if [ "$PIN" = 1 ] && [ "$NPROC" -ge 2 ] && command -v taskset >/dev/null; then
    PROXY_PIN=(taskset -c 0)
    WRK_PIN=(taskset -c 1)
    PIN_NOTE="proxies on CPU 0; upstream nginx and wrk on CPU 1"
    CLIENT_CPU=1
else
    PIN_NOTE="not pinned"
    CLIENT_CPU=""
fi
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)

if [ -n "${TIGATEWAY_BIN:-}" ]; then
    TIGW="$TIGATEWAY_BIN"
else
    TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
    TIGW="$TARGET/perf/tigateway"
fi
if [ "$BUILD" = 1 ] && [ -z "${TIGATEWAY_BIN:-}" ]; then
    log "building tigateway (cargo build --profile perf -p tigateway; fat LTO, takes a while)"
    (cd "$ROOT" && cargo build --profile perf -p tigateway) || die "cargo build --profile perf -p tigateway failed"
fi
[ -x "$TIGW" ] || die "no tigateway binary at $TIGW (build it, or set TIGATEWAY_BIN)"

for p in "$UPSTREAM_PORT" "$NGINX_PORT" "$TIGW_PORT"; do
    port_busy "$p" && die "port $p is already in use (set UPSTREAM_PORT / NGINX_PORT / TIGW_PORT)"
done

write_upstream_conf
write_proxy_conf
write_tigateway_conf
"$NGINX_BIN" -t -q -p "$OUT/upstream" -c "$OUT/upstream/nginx.conf" -e "$OUT/upstream/logs/error.log" \
    || die "upstream nginx config invalid"
"$NGINX_BIN" -t -q -p "$OUT/nginx-proxy" -c "$OUT/nginx-proxy/nginx.conf" -e "$OUT/nginx-proxy/logs/error.log" \
    || die "proxy nginx config invalid"

log "starting upstream nginx on :$UPSTREAM_PORT"
"${WRK_PIN[@]}" "$NGINX_BIN" -p "$OUT/upstream" -c "$OUT/upstream/nginx.conf" -e "$OUT/upstream/logs/error.log" \
    >"$OUT/upstream.log" 2>&1 &
UP_PID=$!
PIDS+=("$UP_PID")
for _ in $(seq 100); do port_busy "$UPSTREAM_PORT" && break; sleep 0.05; done
code=$(curl -s -o "$OUT/probe.body" -w '%{http_code}' "http://127.0.0.1:$UPSTREAM_PORT$REQ_PATH" || true)
[ "$code" = 200 ] || { cat "$OUT/upstream.log" "$OUT/upstream/logs/error.log" >&2 || true; die "upstream nginx did not start"; }

log "starting nginx proxy on :$NGINX_PORT"
"${PROXY_PIN[@]}" "$NGINX_BIN" -p "$OUT/nginx-proxy" -c "$OUT/nginx-proxy/nginx.conf" -e "$OUT/nginx-proxy/logs/error.log" \
    >"$OUT/nginx-proxy.log" 2>&1 &
NGX_PID=$!
PIDS+=("$NGX_PID")
wait_ready "nginx proxy" "$NGINX_PORT" "$NGX_PID" "$OUT/nginx-proxy/logs/error.log"

log "starting tigateway on :$TIGW_PORT ($MODE, $ROUTES route(s)): $TIGW"
if ! "$TIGW" validate "$OUT/tigateway.yaml" >"$OUT/tigateway-validate.log" 2>&1; then
    tail -n 40 "$OUT/tigateway-validate.log" >&2
    die "tigateway validate rejected the generated config $OUT/tigateway.yaml (errors above)"
fi
# TIGW_ARGS: extra gateway arguments, e.g. "--access-log $OUT/access.log" or "--metrics off".
# shellcheck disable=SC2086
"${PROXY_PIN[@]}" "$TIGW" gateway -c "$OUT/tigateway.yaml" --listen "127.0.0.1:$TIGW_PORT" --workers 1 ${TIGW_ARGS:-} \
    >"$OUT/tigateway.log" 2>&1 &
TIGW_PID=$!
PIDS+=("$TIGW_PID")
t0=$(date +%s.%N)
wait_ready "tigateway" "$TIGW_PORT" "$TIGW_PID" "$OUT/tigateway.log"
t_ready=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
sleep "$IDLE_WAIT"   # let start-up garbage be returned before reading the idle RSS
TIGW_RSS_IDLE=$(rss_kb "$TIGW_PID")
NGX_RSS_IDLE=$(tree_rss_kb "$NGX_PID")

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULT="$OUT/result-$MODE-$ROUTES-$STAMP.txt"
WRK_SETTINGS="wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency http://127.0.0.1:PORT$REQ_PATH"

declare -a R_NGX=() R_TIGW=()
for run in $(seq "$RUNS"); do
    for who in nginx tigateway; do
        if [ "$who" = nginx ]; then port=$NGINX_PORT; pid=$NGX_PID; else port=$TIGW_PORT; pid=$TIGW_PID; fi
        log "$who: warm-up $WARMUP"
        run_wrk "$port" "$OUT/wrk-$who-warmup.txt" "$WARMUP" >/dev/null
        kill -0 "$pid" 2>/dev/null || die "$who died during the warm-up (see $OUT/$who*.log)"
        log "$who: measured run $run/$RUNS ($DURATION)"
        c0=$(tree_cpu_ticks "$pid"); read -r cb0 ct0 <<<"$(cpu_stat "$CLIENT_CPU")"; w0=$(date +%s.%N)
        line=$(run_wrk "$port" "$OUT/wrk-$who-$run.txt" "$DURATION")
        c1=$(tree_cpu_ticks "$pid"); read -r cb1 ct1 <<<"$(cpu_stat "$CLIENT_CPU")"; w1=$(date +%s.%N)
        kill -0 "$pid" 2>/dev/null || die "$who died under load (see $OUT/$who*.log)"
        # proxy CPU as % of one core; client side (wrk + upstream) as % busy of its CPU(s)
        proxy_cpu=$(awk -v t=$((c1 - c0)) -v hz="$CLK_TCK" -v a="$w0" -v b="$w1" 'BEGIN { printf "%.0f", 100 * t / hz / (b - a) }')
        client_cpu=$(awk -v a=$((cb1 - cb0)) -v b=$((ct1 - ct0)) 'BEGIN { printf "%.0f", (b > 0 ? 100 * a / b : 0) }')
        line="$line $proxy_cpu $client_cpu"
        echo "   $line  (rps p50_ms p99_ms errors proxy_cpu% client_cpu_busy%)" >&2
        if [ "$who" = nginx ]; then R_NGX+=("$line"); else R_TIGW+=("$line"); fi
    done
done
TIGW_RSS_LOADED=$(rss_kb "$TIGW_PID")
TIGW_HWM=$(hwm_kb "$TIGW_PID")
NGX_RSS_LOADED=$(tree_rss_kb "$NGX_PID")

# Mean over runs of each column.
mean_of() { printf '%s\n' "$@" | awk '{ r += $1; p50 += $2; p99 += $3; e += $4; pc += $5; cc += $6; n++ }
    END { printf "%.0f %.3f %.3f %d %.0f%% %.0f%%", r / n, p50 / n, p99 / n, e, pc / n, cc / n }'; }
read -r N_RPS N_P50 N_P99 N_ERR N_CPU N_CLIENT <<<"$(mean_of "${R_NGX[@]}")"
read -r T_RPS T_P50 T_P99 T_ERR T_CPU T_CLIENT <<<"$(mean_of "${R_TIGW[@]}")"
per_cpu() { awk -v r="$1" -v c="${2%\%}" 'BEGIN { if (c > 0) printf "%.0f", r * 100 / c; else print "n/a" }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

{
    echo "TiGateway vs nginx — $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "machine:   $NPROC cores, $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), $(uname -r)"
    echo "nginx:     $("$NGINX_BIN" -v 2>&1 | sed 's/^nginx version: //')   wrk: $(wrk -v 2>&1 | head -n1 | awk '{print $2}')"
    echo "tigateway: $TIGW ($("$TIGW" --version 2>/dev/null || echo '?'))"
    echo "config:    $MODE, $ROUTES route(s)/selector(s); request GET $REQ_PATH; ready in ${t_ready}s"
    echo "load:      $WRK_SETTINGS  (warm-up $WARMUP first; $RUNS measured run(s), mean shown)"
    echo "cpu:       $PIN_NOTE"
    echo "headers:   nginx X-Forwarded-* headers $([ "$NGINX_XFF" = 1 ] && echo set || echo 'not set (TiGateway sets X-Forwarded-For/-Proto/-Host)')"
    echo
    printf '%-12s %12s %10s %10s %8s %10s %11s %10s\n' proxy "requests/s" "p50 ms" "p99 ms" errors "proxy CPU" "client CPU" "req/CPU-s"
    printf '%-12s %12s %10s %10s %8s %10s %11s %10s\n' nginx "$N_RPS" "$N_P50" "$N_P99" "$N_ERR" "$N_CPU" "$N_CLIENT" "$(per_cpu "$N_RPS" "$N_CPU")"
    printf '%-12s %12s %10s %10s %8s %10s %11s %10s\n' tigateway "$T_RPS" "$T_P50" "$T_P99" "$T_ERR" "$T_CPU" "$T_CLIENT" "$(per_cpu "$T_RPS" "$T_CPU")"
    printf '%-12s %12s %10s %10s %8s %10s %11s %10s\n' "tigw/nginx" "$(ratio "$T_RPS" "$N_RPS")" "$(ratio "$T_P50" "$N_P50")" "$(ratio "$T_P99" "$N_P99")" \
        "" "" "" "$(ratio "$(per_cpu "$T_RPS" "$T_CPU")" "$(per_cpu "$N_RPS" "$N_CPU")")"
    echo "(proxy CPU: the proxy's CPU time / wall time, % of one core; client CPU: how busy the CPU"
    echo " running wrk + the upstream was (all CPUs when not pinned); near 100% means the client side"
    echo " may be the limit. req/CPU-s: requests per second of proxy CPU time, i.e. cost per request.)"
    if [ "$RUNS" -gt 1 ]; then
        echo
        echo "per run (rps p50_ms p99_ms errors proxy_cpu% client_cpu%):"
        for i in $(seq 0 $((RUNS - 1))); do echo "  run $((i + 1)): nginx ${R_NGX[$i]} | tigateway ${R_TIGW[$i]}"; done
    fi
    echo
    echo "tigateway RSS: idle $(mb "$TIGW_RSS_IDLE"), after load $(mb "$TIGW_RSS_LOADED"), peak $(mb "$TIGW_HWM")"
    echo "nginx proxy RSS (master+worker): idle $(mb "$NGX_RSS_IDLE"), after load $(mb "$NGX_RSS_LOADED")"
} | tee "$RESULT"

if [ "$T_ERR" -gt 0 ] || [ "$N_ERR" -gt 0 ]; then
    echo "WARNING: non-2xx responses or socket errors during the runs (see $OUT/wrk-*.txt)" >&2
fi
echo "(saved to $RESULT)" >&2
