#!/usr/bin/env bash
# Every proxy benchmark scenario, one after the other, then one table (Markdown) with ratios.
#
#   bench/all.sh                     # build the perf binary, run everything (about 6 minutes)
#   bench/all.sh --no-build          # use $TIGATEWAY_BIN or the existing perf binary
#   bench/all.sh --quick             # DURATION=3s WARMUP=1s: proves every scenario runs
#   ONLY="http1 ws" bench/all.sh     # a subset (names below)
#
# Scenarios (each is one bench/run.sh call; same upstream, ports, pinning and load settings):
#   http1       HTTP/1.1, Spring route Path=/**            nginx, HAProxy, TiGateway   (wrk)
#   h2          HTTP/2 cleartext (prior knowledge)          nginx, HAProxy, TiGateway   (h2load)
#   shenyu      ShenYu divide selector + rule               TiGateway                   (wrk)
#   routes10k   10,000 Spring routes / nginx locations / HAProxy map prefixes, last matches (wrk)
#   shenyu10k   10,000 divide selectors + rules             TiGateway                   (wrk)
#   chain       contextPath + rewrite + request header + divide; nginx/HAProxy rewrite + set header
#   ws          websocket echo round trips, plus the client straight to the echo server ("direct")
#   obs         TiGateway with metrics and access log off / metrics on / access log on / both,
#               all four under load at the same time (bench/cost.sh; OBS_ROUNDS, default 8)
#   nginxlog    nginx with a JSON access log of the same fields (buffer=64k), to compare with
#               http1's nginx row: what logging every request to a file costs nginx here
# Environment: anything bench/run.sh reads (DURATION, WARMUP, RUNS, PIN, ports, TIGATEWAY_BIN, ...).
set -euo pipefail

# BENCH_DIR, ROOT, OUT, PERF_BIN (shared with run.sh and profile.sh).
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
export OUT
ALL_SCENARIOS="http1 h2 shenyu routes10k shenyu10k chain ws obs nginxlog"
ONLY="${ONLY:-$ALL_SCENARIOS}"
BUILD=1

while [ $# -gt 0 ]; do
    case "$1" in
        --no-build) BUILD=0 ;;
        --quick) export DURATION="${DURATION_QUICK:-3s}" WARMUP="${WARMUP_QUICK:-1s}" IDLE_WAIT=0 OBS_ROUNDS="${OBS_ROUNDS:-2}" ;;
        -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
for s in $ONLY; do
    case " $ALL_SCENARIOS " in *" $s "*) ;; *) echo "ONLY: unknown scenario '$s' ($ALL_SCENARIOS)" >&2; exit 2 ;; esac
done

if [ -z "${TIGATEWAY_BIN:-}" ]; then
    export TIGATEWAY_BIN="$PERF_BIN"
    if [ "$BUILD" = 1 ]; then
        echo "==> building tigateway (cargo build --profile perf -p tigateway)" >&2
        (cd "$ROOT" && cargo build --profile perf -p tigateway)
    fi
fi
[ -x "$TIGATEWAY_BIN" ] || { echo "no tigateway binary at $TIGATEWAY_BIN (build it or set TIGATEWAY_BIN)" >&2; exit 1; }

mkdir -p "$OUT"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
SUMMARY="$OUT/all-$STAMP.tsv"
: >"$SUMMARY"
export SUMMARY
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
START=$(date -u '+%Y-%m-%d %H:%M UTC')
FAILED=()

scenario() {
    local name="$1"; shift
    case " $ONLY " in *" $name "*) ;; *) return 0 ;; esac
    echo >&2
    echo "######## scenario $name: $* bench/run.sh --no-build ${RUN_ARGS[*]}" >&2
    # run.sh's own tables go to stderr with its progress; stdout is left for the final table.
    if ! env SCENARIO="$name" "$@" "$BENCH_DIR/run.sh" --no-build "${RUN_ARGS[@]}" >&2; then
        FAILED+=("$name")
    fi
}


RUN_ARGS=();                          scenario http1     PROXIES="nginx haproxy tigateway"
RUN_ARGS=(--h2);                      scenario h2        PROXIES="nginx haproxy tigateway"
RUN_ARGS=(--shenyu);                  scenario shenyu    PROXIES="tigateway"
RUN_ARGS=(--routes 10000);            scenario routes10k PROXIES="nginx haproxy tigateway"
RUN_ARGS=(--shenyu --routes 10000);   scenario shenyu10k PROXIES="tigateway"
RUN_ARGS=(--chain);                   scenario chain     PROXIES="nginx haproxy tigateway"
RUN_ARGS=(--websocket);               scenario ws        PROXIES="direct nginx haproxy tigateway"
# What metrics and the access log cost: a few per cent, which variants run one after the other
# cannot show on a shared VM (requests/s moves 10-30 % between runs), so cost.sh runs the four at
# the same time and compares CPU per request within each round.
OBS_OUT="$OUT/obs-$STAMP"
case " $ONLY " in *" obs "*)
    echo >&2
    echo "######## scenario obs: bench/cost.sh (off, metrics, access log, both: at the same time)" >&2
    if ! env COST_OUT="$OBS_OUT" ROUNDS="${OBS_ROUNDS:-8}" DURATION="${DURATION:-5s}" WARMUP="${WARMUP:-2s}" \
        TIGATEWAY_BIN="$TIGATEWAY_BIN" "$BENCH_DIR/cost.sh" >&2; then
        FAILED+=(obs)
    fi ;;
esac
# nginx with and without its access log (TiGateway's fields, buffered), alternately in one run:
# the cost of logging every request to a file on this machine, for comparison with `obs`.
NGINX_LOG="$OUT/nginx-access.log"
RUN_ARGS=();                          scenario nginxlog  PROXIES="nginx" NGINX_ACCESS_LOG="$NGINX_LOG"
LOG_LINES=$(cat "$OBS_OUT"/access-*.log* 2>/dev/null | wc -l || echo 0)
rm -f "$OBS_OUT"/access-*.log* "$NGINX_LOG"   # can be hundreds of MB

LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
REPORT="$OUT/all-$STAMP.md"
{
    echo "## bench/all.sh — $START"
    echo
    echo "- machine: $(nproc) cores, $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), $(uname -r)"
    echo "- load average before: $LOAD_BEFORE, after: $LOAD_AFTER"
    echo "- tigateway: $TIGATEWAY_BIN ($("$TIGATEWAY_BIN" --version 2>/dev/null || echo '?'));" \
        "$(nginx -v 2>&1 | sed 's/^nginx version: //'); haproxy $(haproxy -v 2>/dev/null | head -n1 | awk '{print $3}')"
    echo "- settings: DURATION=${DURATION:-10s} WARMUP=${WARMUP:-3s} RUNS=${RUNS:-1} PIN=${PIN:-1} CONNECTIONS=${CONNECTIONS:-50}" \
        "H2_CONNECTIONS=${H2_CONNECTIONS:-10} H2_STREAMS=${H2_STREAMS:-10} WS_CONNECTIONS=${WS_CONNECTIONS:-50}"
    echo
    awk -F'\t' '
        $1 == "cost" { next }
        { key = $1 SUBSEP $2; rps[key] = $3; p50[key] = $4; p99[key] = $5; err[key] = $6; cpu[key] = $7; pcs[key] = $9
          if (!($1 in seen)) { seen[$1] = 1; order[++n] = $1 }
          procs[$1] = procs[$1] " " $2 }
        function ratio(a, b) { return (b + 0 > 0 && a + 0 > 0) ? sprintf("%.2f", a / b) : "—" }
        END {
            print "| scenario | proxy | req/s (ws: msgs/s) | p50 ms | p99 ms | errors | proxy CPU | req per CPU-s | TiGateway/nginx req/s (per CPU-s) | TiGateway/HAProxy req/s (per CPU-s) |"
            print "|---|---|---:|---:|---:|---:|---:|---:|---|---|"
            for (i = 1; i <= n; i++) {
                s = order[i]; m = split(substr(procs[s], 2), ps, " ")
                t = s SUBSEP "tigateway"
                for (j = 1; j <= m; j++) {
                    k = s SUBSEP ps[j]; rn = ""; rh = ""
                    if (ps[j] == "tigateway") {
                        nk = s SUBSEP "nginx"; hk = s SUBSEP "haproxy"
                        if (nk in rps) rn = sprintf("**%s** (%s)", ratio(rps[t], rps[nk]), ratio(pcs[t], pcs[nk]))
                        if (hk in rps) rh = sprintf("**%s** (%s)", ratio(rps[t], rps[hk]), ratio(pcs[t], pcs[hk]))
                    }
                    c = (ps[j] == "direct") ? "(echo server) " cpu[k] "%" : cpu[k] "%"
                    printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", s, ps[j], rps[k], p50[k], p99[k], err[k], c, (ps[j] == "direct" ? "—" : pcs[k]), rn, rh
                }
            }
            # 10,000 routes vs 1, per proxy
            rows = ""
            split("nginx haproxy tigateway", pp, " ")
            what["nginx"] = "nginx (prefix locations)"; what["haproxy"] = "haproxy (map_beg prefixes)"; what["tigateway"] = "tigateway (Spring routes)"
            for (j = 1; j <= 3; j++) {
                a = "http1" SUBSEP pp[j]; b = "routes10k" SUBSEP pp[j]
                if ((a in rps) && (b in rps)) rows = rows sprintf("| %s | %s → %s | %s | %s |\n", what[pp[j]], rps[a], rps[b], ratio(rps[b], rps[a]), ratio(pcs[b], pcs[a]))
            }
            a = "shenyu" SUBSEP "tigateway"; b = "shenyu10k" SUBSEP "tigateway"
            if ((a in rps) && (b in rps)) rows = rows sprintf("| tigateway (divide selectors + rules) | %s → %s | %s | %s |\n", rps[a], rps[b], ratio(rps[b], rps[a]), ratio(pcs[b], pcs[a]))
            if (rows != "") {
                print ""
                print "| 10,000 routes vs 1 | req/s 1 → 10k | ratio | req per CPU-s ratio |"
                print "|---|---|---:|---:|"
                printf "%s", rows
            }
        }' "$SUMMARY"
    if [ -f "$OBS_OUT/summary.md" ]; then
        echo
        echo "TiGateway observability (\`obs\`, bench/cost.sh: the four variants under load at the same time;"
        echo "target: metrics + access log ≤ 5 % CPU per request):"
        echo
        sed -n '/^| variant |/,/^$/p' "$OBS_OUT/summary.md"
        echo "(access-log lines written during the obs scenario: $LOG_LINES; rounds: $OBS_OUT/rounds.txt)"
    fi
    if [ ${#FAILED[@]} -gt 0 ]; then
        echo
        echo "**FAILED scenarios: ${FAILED[*]}** (see the output above and bench/out/)"
    fi
} | tee "$REPORT"
echo "(table saved to $REPORT; per-scenario details in $OUT/result-*.txt)" >&2
[ ${#FAILED[@]} -eq 0 ]
