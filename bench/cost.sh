#!/usr/bin/env bash
# What a feature costs per request, measured with every variant running AT THE SAME TIME, so the
# machine's noise falls on all of them alike.
#
#   bench/cost.sh                                  # off / metrics / access log / both
#   VARIANTS="old=@/tmp/tigw-old|new=@/tmp/tigw-new" bench/cost.sh     # two builds
#   ROUNDS=20 DURATION=5s bench/cost.sh
#   VARIANTS="nginx=nginx|haproxy=haproxy|tigateway=" bench/cost.sh   # side by side with nginx and HAProxy
#
# Why: on a shared VM, throughput moves by ±10–30 % from one 5 s run to the next (other guests,
# steal, cache), so runs taken one after the other (bench/run.sh's TIGW_VARIANTS) need a large
# effect to show anything. Here all variants are gateway processes pinned together on CPU 0, each
# under its own wrk (pinned with the upstream on CPU 1), all started together for each round.
# For every variant the round records the requests it completed and the CPU time its threads got
# (/proc/PID/task/*/schedstat, nanoseconds, kernel work done in the process's context included);
# requests per CPU-second is its efficiency, and dividing by the first variant's in the same
# round cancels what the machine did meanwhile. Reported: each round's ratios and their median;
# how each variant's CPU splits into user and kernel time (/proc/PID/stat ticks summed over the
# rounds: a sampled split, good to ±2 % or so) and how each compares per request with the
# baseline's; and the share of the variant's CPU its access-log writer thread took.
#
# VARIANTS: "name=args|name=args|…" (gateway arguments; "@PATH" first runs another binary; the
# args "nginx", "nginx+log" (with TiGateway's access-log fields as JSON, bench/lib.sh) or "haproxy" run that proxy instead, one worker/thread, keep-alive to the upstream as
# bench/run.sh configures them); the first is the baseline. Needs wrk, nginx, taskset (haproxy for
# that variant); uses TIGATEWAY_BIN or the perf-profile binary.
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
OUT="${COST_OUT:-$OUT/cost-$(date +%Y%m%d-%H%M%S)}"   # COST_OUT: where this run writes (bench/all.sh sets it)
BIN="${TIGATEWAY_BIN:-$PERF_BIN}"
UPSTREAM_PORT="${UPSTREAM_PORT:-18280}"
BASE_PORT="${BASE_PORT:-18282}"      # variant i listens on BASE_PORT + 10*i, metrics on +1 when asked
ROUNDS="${ROUNDS:-10}"
DURATION="${DURATION:-5s}"
WARMUP="${WARMUP:-2s}"
CONNECTIONS="${CONNECTIONS:-25}"     # per variant
VARIANTS="${VARIANTS:-off=--metrics off --access-log off|metrics=--metrics METRICS --access-log off|log=--metrics off --access-log LOG|metrics+log=--metrics METRICS --access-log LOG}"

for tool in wrk nginx taskset; do
    command -v "$tool" >/dev/null || { echo "cost.sh: $tool is missing (apt-get install wrk nginx util-linux)" >&2; exit 1; }
done
[ "$(nproc)" -ge 2 ] || { echo "cost.sh: needs 2 CPUs (gateways on one, load on the other)" >&2; exit 1; }
mkdir -p "$OUT"

write_upstream_and_route "$OUT" "$UPSTREAM_PORT"

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

# CPU time of all of a process's threads, in nanoseconds.
cpu_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ s += $1 } END { printf "%.0f", s }'; }
# CPU time of the process's access-log writer thread, in nanoseconds (0 when there is none).
writer_ns() {
    local t s=0
    for t in /proc/"$1"/task/*; do
        [ "$(cat "$t/comm" 2>/dev/null)" = tigw-access-log ] && s=$((s + $(cut -d' ' -f1 "$t/schedstat")))
    done
    echo "$s"
}
# User and kernel CPU of the whole process (all threads), in clock ticks: how cpu_ns splits.
user_sys() { awk '{ print $14, $15 }' /proc/"$1"/stat; }

ports=("$UPSTREAM_PORT")
IFS='|' read -r -a variants <<< "$VARIANTS"
for i in "${!variants[@]}"; do ports+=($((BASE_PORT + 10 * i)) $((BASE_PORT + 10 * i + 1))); done
ports_free cost.sh "${ports[@]}"
taskset -c 1 nginx -c "$OUT/upstream.conf" -p "$OUT" > "$OUT/upstream.log" 2>&1 & PIDS+=($!)
wait_port cost.sh "$UPSTREAM_PORT"

NAMES=(); PORTS=(); GW=()
IFS='|' read -r -a variants <<< "$VARIANTS"
for i in "${!variants[@]}"; do
    split_variant "${variants[$i]}" "$BIN"
    name="$VARIANT_NAME"; bin="$VARIANT_BINARY"; args="$VARIANT_REST"
    port=$((BASE_PORT + 10 * i))
    if [ "$args" = nginx ] || [ "$args" = nginx+log ]; then
        log_path=off
        [ "$args" = nginx ] || log_path="$OUT/access-$name.log"
        write_nginx_proxy "$OUT/nginx-$name.conf" "$port" "$UPSTREAM_PORT" "$log_path"
        taskset -c 0 nginx -c "$OUT/nginx-$name.conf" -p "$OUT" > "$OUT/gateway-$name.log" 2>&1 &
        echo "$name: nginx $(nginx -v 2>&1 | sed 's/^nginx version: //'), 1 process, proxy_pass keepalive 64, access log: $log_path" >> "$OUT/variants.txt"
    elif [ "$args" = haproxy ]; then
        command -v haproxy >/dev/null || { echo "cost.sh: haproxy is missing (apt-get install haproxy)" >&2; exit 1; }
        printf '%s\n' "global" "    nbthread 1" "    maxconn 8000" "defaults" "    mode http" "    timeout connect 5s" \
            "    timeout client 60s" "    timeout server 60s" "    option http-keep-alive" "    http-reuse always" \
            "frontend fe" "    bind 127.0.0.1:$port" "    default_backend be" "backend be" \
            "    server up 127.0.0.1:$UPSTREAM_PORT" > "$OUT/haproxy-$name.cfg"
        taskset -c 0 haproxy -db -f "$OUT/haproxy-$name.cfg" > "$OUT/gateway-$name.log" 2>&1 &
        echo "$name: haproxy $(haproxy -v 2>/dev/null | head -n1 | awk '{print $3}'), nbthread 1, http-reuse always" >> "$OUT/variants.txt"
    else
        [ -x "$bin" ] || { echo "cost.sh: no binary at $bin (cargo build --profile perf -p tigateway)" >&2; exit 1; }
        args="${args//METRICS/127.0.0.1:$((port + 1))}"
        args="${args//LOG/$OUT/access-$name.log}"
        case " $args " in *" --metrics "*) ;; *) args="$args --metrics off" ;; esac
        # shellcheck disable=SC2086
        taskset -c 0 "$bin" gateway -c "$OUT/gateway.yaml" --listen "127.0.0.1:$port" --workers 1 $args \
            > "$OUT/gateway-$name.log" 2>&1 &
        echo "$name: $bin gateway --workers 1 $args" >> "$OUT/variants.txt"
    fi
    GW+=($!); PIDS+=($!); NAMES+=("$name"); PORTS+=("$port")
done
for p in "${PORTS[@]}"; do wait_port cost.sh "$p"; done

# One round: every variant under load at once. Prints "requests cpu_ns" per variant, one line each.
round() {
    local d="$1" i c0=() u0=() s0=() w0=() wrk_pids=()
    for i in "${!NAMES[@]}"; do
        c0[i]=$(cpu_ns "${GW[$i]}"); w0[i]=$(writer_ns "${GW[$i]}")
        read -r u0[i] s0[i] < <(user_sys "${GW[$i]}")
    done
    for i in "${!NAMES[@]}"; do
        taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"$d" "http://127.0.0.1:${PORTS[$i]}/bench/ping" > "$OUT/wrk-$i.txt" &
        wrk_pids+=($!)
    done
    wait "${wrk_pids[@]}"
    for i in "${!NAMES[@]}"; do
        kill -0 "${GW[$i]}" 2>/dev/null || { echo "cost.sh: ${NAMES[$i]} died (see $OUT/gateway-${NAMES[$i]}.log)" >&2; exit 1; }
        local req errors
        req=$(awk '/requests in/ { print $1 }' "$OUT/wrk-$i.txt")
        errors=$(awk '/Non-2xx|Socket errors/ { n++ } END { print n + 0 }' "$OUT/wrk-$i.txt")
        [ "$errors" = 0 ] || { echo "cost.sh: ${NAMES[$i]} had errors:" >&2; cat "$OUT/wrk-$i.txt" >&2; exit 1; }
        local u s
        read -r u s < <(user_sys "${GW[$i]}")
        echo "$req $(( $(cpu_ns "${GW[$i]}") - c0[i] )) $((u - u0[i])) $((s - s0[i])) $(( $(writer_ns "${GW[$i]}") - w0[i] ))"
    done
}

round "$WARMUP" > /dev/null
: > "$OUT/rounds.txt"
for r in $(seq "$ROUNDS"); do
    mapfile -t res < <(round "$DURATION")
    line="$r"
    for i in "${!NAMES[@]}"; do line="$line ${res[$i]}"; done
    echo "$line" >> "$OUT/rounds.txt"
    echo "round $r/$ROUNDS: $(awk -v names="${NAMES[*]}" 'BEGIN { split(names, n, " ") }
        { for (i = 1; i <= length(n); i++) printf "%s %.0f req/CPU-s  ", n[i], $(5 * i - 3) / ($(5 * i - 2) / 1e9) }' <<< "$line")" >&2
done

{
    echo "Cost per request, variants measured at the same time ($(date -u '+%Y-%m-%d %H:%M UTC'))"
    echo "machine: $(nproc) cores, $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), $(uname -r); load average $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "settings: ROUNDS=$ROUNDS DURATION=$DURATION CONNECTIONS=$CONNECTIONS per variant; gateways on CPU 0, wrk + upstream on CPU 1"
    sed 's/^/  /' "$OUT/variants.txt"
    echo
    echo "| variant | requests/s (mean) | req per CPU-s (mean) | CPU per request vs ${NAMES[0]}: median of rounds | min | max | user / kernel share | user, kernel per request vs ${NAMES[0]} | log writer thread |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    secs=$(awk -v d="$DURATION" 'BEGIN { n = d + 0; if (d ~ /ms$/) n /= 1000; else if (d ~ /m$/) n *= 60; print n }')
    # rounds.txt: round, then per variant: requests, CPU ns, user ticks, kernel ticks, writer ns.
    for i in "${!NAMES[@]}"; do
        means=$(awk -v i="$i" -v secs="$secs" '{ rps += $(5 * i + 2) / secs; eff += $(5 * i + 2) / ($(5 * i + 3) / 1e9) }
            END { printf "%.0f | %.0f", rps / NR, eff / NR }' "$OUT/rounds.txt")
        spread=$(awk -v i="$i" '{ printf "%.6f\n", ($2 / $3) / ($(5 * i + 2) / $(5 * i + 3)) - 1 }' "$OUT/rounds.txt" | sort -g |
            awk '{ c[NR] = $1 } END { med = (NR % 2) ? c[(NR + 1) / 2] : (c[NR / 2] + c[NR / 2 + 1]) / 2
                printf "%+.1f %% | %+.1f %% | %+.1f %%", 100 * med, 100 * c[1], 100 * c[NR] }')
        # Summed over all rounds (ticks are 10 ms): the split of the variant's CPU, and how its user
        # and kernel time per request compare with the baseline's.
        split=$(awk -v i="$i" '{ r0 += $2; u0 += $4; k0 += $5; r += $(5 * i + 2); c += $(5 * i + 3); u += $(5 * i + 4); k += $(5 * i + 5); w += $(5 * i + 6) }
            END { printf "%.0f / %.0f %% | %+.1f %%, %+.1f %% | %.1f %% of its CPU", 100 * u / (u + k), 100 * k / (u + k),
                  100 * ((u / r) / (u0 / r0) - 1), 100 * ((k / r) / (k0 / r0) - 1), 100 * w / c }' "$OUT/rounds.txt")
        echo "| ${NAMES[$i]} | $means | $spread | $split |"
    done
    echo
    echo "(CPU per request: + means the variant spends more CPU per request than ${NAMES[0]} did in the same"
    echo " round. Raw rounds: $OUT/rounds.txt — round, then requests, CPU ns, user and kernel ticks, log writer ns per variant.)"
} | tee "$OUT/summary.md"
