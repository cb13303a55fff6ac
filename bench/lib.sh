# Sourced by bench/run.sh, bench/profile.sh, bench/cost.sh and bench/all.sh: what they must agree on, kept in one
# place so a comparison between their results stays like for like. Sets variables and defines
# functions only; each script keeps its own `set` options, ports and load settings.
# shellcheck shell=bash disable=SC2034,SC2016
# (SC2034: the variables are read by the scripts that source this; SC2016: the `$` in the log
# format are nginx's variables, not the shell's.)

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH_DIR/.." && pwd)"
OUT="${OUT:-$BENCH_DIR/out}"

# The binary the benchmarks measure when TIGATEWAY_BIN does not name another: the `perf` profile
# (fat LTO), where `cargo build --profile perf -p tigateway` puts it.
PERF_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/perf/tigateway"

# What the upstream answers (35 bytes + LF), the same for every script, so per-request costs
# measured by one compare with the other's.
UPSTREAM_BODY="ok 0123456789abcdef0123456789abcdef"

# An nginx access log with TiGateway's access-log fields (JSON), so that what logging costs nginx
# is measured on the same lines TiGateway writes. Printed as an `http {}` level directive; the
# continuation lines carry their indentation.
NGINX_TIGW_LOG_FORMAT='log_format tigw escape=json '\''{"time":"$time_iso8601","method":"$request_method","path":"$uri","query":"$args",'\''
        '\''"status":$status,"upstream":"$upstream_addr","duration_ms":$request_time,'\''
        '\''"upstream_duration_ms":"$upstream_response_time","bytes_in":$request_length,"bytes_out":$bytes_sent,'\''
        '\''"client_ip":"$remote_addr","request_id":"$request_id"}'\'';'

# nginx_tigw_access_log PATH: the `access_log` directive for that format, buffered as an operator
# would (TiGateway's writer too takes lines in batches, every 100 ms).
nginx_tigw_access_log() { printf 'access_log %s tigw buffer=64k flush=1s;\n' "$1"; }

# write_nginx_proxy CONF PORT UPSTREAM_PORT LOG_PATH|off: one nginx process (no master) proxying
# 127.0.0.1:PORT to the upstream with keep-alive, its access log off or TiGateway's fields at
# LOG_PATH; pid and error log next to CONF. (bench/run.sh's own generator adds h2, websocket,
# chains and 10,000 routes to the same settings.)
write_nginx_proxy() {
    local conf="$1" port="$2" upstream="$3" log_line="access_log off;"
    [ "$4" = off ] || log_line="$(nginx_tigw_access_log "$4")"
    cat > "$conf" <<NGINX
worker_processes 1;
master_process off;
daemon off;
pid ${conf%.conf}.pid;
error_log ${conf%.conf}-error.log;
events { worker_connections 4096; }
http {
    access_log off;
    $NGINX_TIGW_LOG_FORMAT
    upstream backend { server 127.0.0.1:$upstream; keepalive 64; }
    server {
        listen 127.0.0.1:$port;
        keepalive_requests 1000000;
        $log_line
        location / { proxy_http_version 1.1; proxy_set_header Connection ""; proxy_pass http://backend; }
    }
}
NGINX
}

# ports_free SCRIPT PORT...: stops the script when something already listens on one of the ports
# (a leftover process would answer the load instead of the process under test).
ports_free() {
    local who="$1" p; shift
    for p in "$@"; do
        if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$who: port $p is already taken (ss -ltnp | grep :$p); stop that process or choose other ports" >&2
            exit 1
        fi
    done
}

# write_upstream_and_route DIR PORT: the upstream every single-route benchmark uses (nginx, one
# worker, `return 200` with UPSTREAM_BODY, as DIR/upstream.conf) and a gateway config with one
# Spring route Path=/** to it (DIR/gateway.yaml).
write_upstream_and_route() {
    local dir="$1" port="$2"
    cat > "$dir/upstream.conf" <<NGINX
worker_processes 1;
daemon off;
pid $dir/upstream.pid;
error_log $dir/upstream-error.log;
events { worker_connections 4096; }
http {
    access_log off;
    server {
        listen 127.0.0.1:$port;
        keepalive_requests 1000000;
        location / { return 200 "$UPSTREAM_BODY\n"; }
    }
}
NGINX
    cat > "$dir/gateway.yaml" <<YAML
routes:
  - id: backend
    uri: http://127.0.0.1:$port
    predicates: [Path=/**]
YAML
}

# wait_port SCRIPT PORT: waits up to 60 s (valgrind starts slowly) for something to listen on PORT;
# stops the script when nothing does.
wait_port() {
    local who="$1" port="$2"
    for _ in $(seq 1 600); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "$who: nothing listens on $port (see the logs under $OUT)" >&2
    exit 1
}

# split_variant VARIANT DEFAULT_BIN: a "name=args" variant of run.sh/cost.sh into VARIANT_NAME,
# VARIANT_BINARY (args starting with "@PATH" name another binary; DEFAULT_BIN otherwise) and
# VARIANT_REST (the remaining arguments).
split_variant() {
    local v="$1"
    VARIANT_NAME="${v%%=*}"; VARIANT_REST="${v#*=}"; VARIANT_REST="${VARIANT_REST# }"; VARIANT_BINARY="$2"
    [ "$VARIANT_NAME" != "$v" ] && [ -n "$VARIANT_NAME" ] || { echo "variant '$v' is not name=args" >&2; exit 2; }
    if [ "${VARIANT_REST:0:1}" = @ ]; then
        VARIANT_BINARY="${VARIANT_REST%% *}"; VARIANT_BINARY="${VARIANT_BINARY#@}"
        if [ "$VARIANT_BINARY" = "${VARIANT_REST#@}" ]; then VARIANT_REST=""; else VARIANT_REST="${VARIANT_REST#* }"; fi
    fi
}
