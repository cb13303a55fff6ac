#!/usr/bin/env bash
# Instructions per proxied request, under valgrind's callgrind: a count that does not move with
# the machine's load, so variants (metrics, access log, tracing) and commits can be compared
# exactly, and the functions that cost most are listed.
#
#   bench/profile.sh                                   # variants: off, metrics, log, metrics+log
#   VARIANTS="off=--metrics off --access-log off" bench/profile.sh
#   TOP=30 bench/profile.sh
#   PROXY=nginx bench/profile.sh                       # nginx as the proxy: access log off / on
#
# The gateway (1 worker, Spring route Path=/** -> an nginx `return 200` upstream) runs under
# callgrind; after a warm-up the counters are zeroed, wrk sends load for DURATION, the counters are
# dumped, and instructions (user space, all threads, including the access log writer) are divided
# by the requests wrk completed. Kernel time (syscalls) is not in the count: this measures the
# gateway's own code, not throughput. Needs valgrind, wrk and nginx; uses the perf-profile binary
# (TIGATEWAY_BIN to choose another). Output: bench/out/profile-*/.
set -euo pipefail

# BENCH_DIR, ROOT, OUT, PERF_BIN, UPSTREAM_BODY, the nginx access-log format (shared with run.sh).
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
OUT="$OUT/profile-$(date +%Y%m%d-%H%M%S)"
BIN="${TIGATEWAY_BIN:-$PERF_BIN}"
UPSTREAM_PORT="${UPSTREAM_PORT:-18180}"
PORT="${PORT:-18182}"
DURATION="${DURATION:-15s}"
CONNECTIONS="${CONNECTIONS:-10}"
TOP="${TOP:-25}"
CALLGRIND_OPTS="${CALLGRIND_OPTS:-}"   # e.g. "--cache-sim=yes": simulated cache misses per function
PROXY="${PROXY:-tigateway}"        # tigateway | nginx (the same upstream, route and load)
if [ "$PROXY" = nginx ]; then
    VARIANTS="${VARIANTS:-off=off|log=$OUT/nginx-access.log}"
fi
VARIANTS="${VARIANTS:-off=--metrics off --access-log off|metrics=--metrics 127.0.0.1:18196 --access-log off|log=--metrics off --access-log $OUT/access.log|metrics+log=--metrics 127.0.0.1:18196 --access-log $OUT/access.log}"

for tool in valgrind callgrind_control callgrind_annotate wrk nginx; do
    command -v "$tool" >/dev/null || { echo "profile.sh: $tool is missing (apt-get install valgrind wrk nginx)" >&2; exit 1; }
done
[ "$PROXY" = nginx ] || [ -x "$BIN" ] || { echo "profile.sh: no binary at $BIN (cargo build --profile perf -p tigateway)" >&2; exit 1; }
mkdir -p "$OUT"

write_upstream_and_route "$OUT" "$UPSTREAM_PORT"

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
ports_free profile.sh "$UPSTREAM_PORT" "$PORT"
nginx -c "$OUT/upstream.conf" -p "$OUT" & PIDS+=($!)

wait_port profile.sh "$UPSTREAM_PORT"

printf '| variant | requests | instructions/request | vs first |\n|---|---|---|---|\n' > "$OUT/summary.md"
base=""
IFS='|' read -r -a variants <<< "$VARIANTS"
for v in "${variants[@]}"; do
    name="${v%%=*}"
    args="${v#*=}"
    rm -f "$OUT"/access.log*
    if [ "$PROXY" = nginx ]; then
        # One nginx process (no master) proxying with keepalive, as bench/run.sh's nginx does; the
        # variant's value is the access_log path or "off" (TiGateway's fields, buffered).
        write_nginx_proxy "$OUT/nginx-proxy-$name.conf" "$PORT" "$UPSTREAM_PORT" "$args"
        valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.$name" \
            nginx -c "$OUT/nginx-proxy-$name.conf" -p "$OUT" > "$OUT/gateway-$name.log" 2>&1 &
    else
        # shellcheck disable=SC2086
        valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.$name" --separate-threads=no $CALLGRIND_OPTS \
            "$BIN" gateway -c "$OUT/gateway.yaml" --listen "127.0.0.1:$PORT" --workers 1 $args \
            > "$OUT/gateway-$name.log" 2>&1 &
    fi
    vg=$!
    wait_port profile.sh "$PORT"
    wrk -t1 -c"$CONNECTIONS" -d3s "http://127.0.0.1:$PORT/bench/ping" > /dev/null
    callgrind_control -z "$vg" > /dev/null 2>&1
    wrk -t1 -c"$CONNECTIONS" -d"$DURATION" "http://127.0.0.1:$PORT/bench/ping" > "$OUT/wrk-$name.txt"
    sleep 0.5   # the access log writer drains every 20 ms
    callgrind_control -d "$vg" > /dev/null 2>&1
    kill "$vg"; wait "$vg" 2>/dev/null || true
    requests=$(awk '/requests in/ {print $1}' "$OUT/wrk-$name.txt")
    dump="$OUT/callgrind.$name.1"   # the dump taken after the measured run (counters zeroed before it)
    ir=$(callgrind_annotate "$dump" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}')
    per=$((ir / requests))
    [ -n "$base" ] || base=$per
    ratio=$(awk -v a="$per" -v b="$base" 'BEGIN { printf "%+.1f%%", (a - b) * 100 / b }')
    printf '| %s | %s | %s | %s |\n' "$name" "$requests" "$per" "$ratio" >> "$OUT/summary.md"
    callgrind_annotate --threshold=100 --inclusive=no "$dump" 2>/dev/null | grep -v "^ *[0-9,]* *([0-9. ]*%) *.*(.*x)$" | sed -n "1,$((TOP + 25))p" > "$OUT/top-$name.txt"
    echo "$name: $per instructions/request ($requests requests); top functions: $OUT/top-$name.txt" >&2
done
cat "$OUT/summary.md"
