#!/usr/bin/env bash
# Side-by-side load comparison: swarmgate vs nginx, HAProxy and Caddy as reverse proxies in front of the same
# two backends, measured with benches/load.rs, interleaved, REPS repetitions, medians → benches/RESULTS.md.
#
#   benches/compare.sh                      # all scenarios
#   benches/compare.sh rr sticky            # some
#   DURATION=5s REPS=3 benches/compare.sh   # shorter runs
#
# Scenarios: rr sticky h2 routers-10k tls-ka tls-resume tls-full connections scale. Every process listens on 127.0.0.1
# only, every command is bounded by `timeout`, and the script stops exactly the processes it started (by
# PID) on exit. Settings are kept equivalent across proxies: 2 workers/threads, upstream keep-alive,
# X-Forwarded-For, no access log. See docs/benchmarks.md for how to read the output.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
REPS=${REPS:-3}
THREADS=${THREADS:-2}
CONNS=${CONNS:-64}
SCALE_DURATION=${SCALE_DURATION:-5s}
# `connections`: this many idle keep-alive connections (one request each), and this request rate beside them.
IDLE_CONNS=${IDLE_CONNS:-10000}
IDLE_RATE=${IDLE_RATE:-2000}
OUT=${OUT:-$ROOT/benches/RESULTS.md}
PROXIES=${PROXIES:-"swarmgate nginx haproxy caddy"}
WORK=$(mktemp -d /tmp/swarmgate-compare.XXXXXX)
RAW=$WORK/results.jsonl
PIDS=()
if [ $# -gt 0 ]; then SCENARIOS="$*"; else SCENARIOS="rr sticky h2 routers-10k tls-ka tls-resume tls-full connections scale"; fi

log() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# --- tools --------------------------------------------------------------------------------------------------
install_tools() {
    local missing=()
    for t in wrk:wrk nginx:nginx haproxy:haproxy caddy:caddy h2load:nghttp2-client openssl:openssl curl:curl python3:python3; do
        # A proxy left out of PROXIES need not be installed.
        case ${t%%:*} in nginx | haproxy | caddy) [[ " $PROXIES " == *" ${t%%:*} "* ]] || continue ;; esac
        command -v "${t%%:*}" >/dev/null 2>&1 || missing+=("${t#*:}")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]} (Debian packages)"
        timeout 600 apt-get update -qq
        DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    # The packages start system services on install; they would compete for the two cores.
    for s in nginx haproxy caddy; do
        if command -v systemctl >/dev/null 2>&1; then systemctl stop "$s" >/dev/null 2>&1 || true; fi
    done
}

build() {
    cd "$ROOT"
    if [ -z "${SWARMGATE_BIN:-}" ] || [ -z "${WHOAMI_BIN:-}" ]; then
        log "cargo build --release --bins"
        timeout 1800 cargo build --release --bins -q
    fi
    if [ -z "${LOAD_BIN:-}" ]; then
        log "cargo bench --bench load --no-run"
        LOAD_BIN=$(timeout 1800 cargo bench --bench load --no-run --message-format=json -q |
            python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "load" and m.get("executable"):
        print(m["executable"])' | tail -1)
    fi
    local dir=${CARGO_TARGET_DIR:-$ROOT/target}
    SWARMGATE_BIN=${SWARMGATE_BIN:-$dir/release/swarmgate}
    WHOAMI_BIN=${WHOAMI_BIN:-$dir/release/whoami}
    # Snapshot the binaries: a parallel build must not swap them mid-run.
    mkdir -p "$WORK/bin"
    cp "$SWARMGATE_BIN" "$WORK/bin/swarmgate"; cp "$WHOAMI_BIN" "$WORK/bin/whoami"; cp "$LOAD_BIN" "$WORK/bin/load"
    SG=$WORK/bin/swarmgate; WHOAMI=$WORK/bin/whoami; LOAD=$WORK/bin/load
}

# --- processes ----------------------------------------------------------------------------------------------
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    sleep 0.3
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

# start NAME CMD...: runs CMD in the background, output to $WORK/NAME.log, PID in PID_<NAME>.
start() {
    local name=$1; shift
    "$@" >"$WORK/$name.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    printf -v "PID_${name//-/_}" '%s' "$pid"
}

stop() {
    local var="PID_${1//-/_}" p
    p=${!var:-}
    [ -n "$p" ] || return 0
    kill "$p" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
    printf -v "$var" '%s' ""
}

# wait_port PORT: until something accepts on 127.0.0.1:PORT (30 s at most).
wait_port() {
    for _ in $(seq 300); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    die "nothing listening on 127.0.0.1:$1 (see $WORK/*.log)"
}

# pid_tree PID: the PID and its children (nginx master + workers).
pid_tree() { echo "$1"; pgrep -P "$1" 2>/dev/null || true; }

# cpu_ticks PID: utime+stime of the process tree, in clock ticks.
cpu_ticks() {
    local t=0 p f
    for p in $(pid_tree "$1"); do
        f=$(cut -d')' -f2- "/proc/$p/stat" 2>/dev/null) || continue
        set -- $f
        t=$((t + ${12} + ${13}))
    done
    echo "$t"
}

# rss_kib PID: resident memory of the process tree.
rss_kib() {
    local t=0 p v
    for p in $(pid_tree "$1"); do
        v=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
        t=$((t + ${v:-0}))
    done
    echo "$t"
}

# --- backends and proxies -----------------------------------------------------------------------------------
BACKENDS="127.0.0.1:9101 127.0.0.1:9102"

start_backends() {
    # One worker thread each, like the `nginx return 200` with one worker the issue allows.
    TOKIO_WORKER_THREADS=1 start whoami-a "$WHOAMI" --listen 127.0.0.1:9101 --name A
    TOKIO_WORKER_THREADS=1 start whoami-b "$WHOAMI" --listen 127.0.0.1:9102 --name B
    wait_port 9101; wait_port 9102
}

make_cert() {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=bench.test \
        -addext "subjectAltName=DNS:bench.test,IP:127.0.0.1" -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
    cat "$WORK/cert.pem" "$WORK/key.pem" >"$WORK/combined.pem"
}

# Ports: swarmgate serves h1, h2c and TLS on one port (it peeks at the first byte); the peers get one port
# per protocol.
declare -A PORT=([direct]=9101 [swarmgate]=8081 [nginx]=8082 [haproxy]=8083 [caddy]=8084)
declare -A H2PORT=([direct]=9101 [swarmgate]=8081 [nginx]=8182 [haproxy]=8183 [caddy]=8084)
declare -A TLSPORT=([swarmgate]=8081 [nginx]=8282 [haproxy]=8283 [caddy]=8284)

# write_configs MODE SERVERS...: MODE is rr, sticky or routers-10k; SERVERS are host:port.
write_configs() {
    local mode=$1; shift
    local servers=("$@") i s
    local d=$WORK/conf; mkdir -p "$d" "$WORK/nginx-tmp"

    # swarmgate (Traefik file provider format).
    {
        echo "tls:"
        echo "  certificates:"
        echo "    - certFile: $WORK/cert.pem"
        echo "      keyFile: $WORK/key.pem"
        echo "http:"
        echo "  routers:"
        if [ "$mode" = routers-10k ]; then
            for i in $(seq 0 9999); do
                echo "    r$i: { rule: \"Host(\`h$i.test\`)\", service: app }"
            done
        else
            echo "    app: { rule: \"PathPrefix(\`/\`)\", service: app }"
            echo "    app-tls: { rule: \"PathPrefix(\`/\`)\", service: app, tls: {} }"
        fi
        echo "  services:"
        echo "    app:"
        echo "      loadBalancer:"
        [ "$mode" = sticky ] && echo "        sticky: { cookie: { name: sg } }"
        echo "        servers:"
        for s in "${servers[@]}"; do echo "          - url: http://$s"; done
    } >"$d/swarmgate.yml"

    # nginx.
    {
        echo "worker_processes 2; pid $WORK/nginx.pid; error_log $WORK/nginx-error.log warn;"
        if [ "$mode" = connections ]; then
            echo "events { worker_connections $((IDLE_CONNS + 4096)); }"
        else
            echo "events { worker_connections 8192; }"
        fi
        echo "http {"
        echo "  access_log off;"
        echo "  client_body_temp_path $WORK/nginx-tmp/body; proxy_temp_path $WORK/nginx-tmp/proxy;"
        echo "  fastcgi_temp_path $WORK/nginx-tmp/fcgi; uwsgi_temp_path $WORK/nginx-tmp/uwsgi; scgi_temp_path $WORK/nginx-tmp/scgi;"
        echo "  keepalive_requests 100000; server_names_hash_max_size 65536; server_names_hash_bucket_size 128;"
        echo "  ssl_protocols TLSv1.3; ssl_session_cache shared:SSL:10m; ssl_session_tickets on;"
        echo "  upstream app {"
        [ "$mode" = sticky ] && echo "    hash \$cookie_srv consistent;"
        for s in "${servers[@]}"; do echo "    server $s;"; done
        echo "    keepalive 64; keepalive_requests 100000;"
        echo "  }"
        local loc="location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_set_header Host \$host; proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for; proxy_set_header X-Forwarded-Proto \$scheme; }"
        if [ "$mode" = routers-10k ]; then
            for i in $(seq 0 9999); do
                echo "  server { listen 127.0.0.1:8082; server_name h$i.test; $loc }"
            done
        else
            echo "  server {"
            echo "    listen 127.0.0.1:8082; listen 127.0.0.1:8182 http2; listen 127.0.0.1:8282 ssl;"
            echo "    ssl_certificate $WORK/cert.pem; ssl_certificate_key $WORK/key.pem;"
            echo "    $loc"
            echo "  }"
        fi
        echo "}"
    } >"$d/nginx.conf"

    # HAProxy.
    {
        echo "global"
        echo "  nbthread 2"
        if [ "$mode" = connections ]; then
            echo "  maxconn $((IDLE_CONNS + 400))"
        else
            echo "  maxconn 8000"
        fi
        echo "  ssl-default-bind-options ssl-min-ver TLSv1.3"
        echo "  tune.ssl.default-dh-param 2048"
        echo "defaults"
        echo "  mode http"
        echo "  timeout connect 5s"
        echo "  timeout client 30s"
        echo "  timeout server 30s"
        echo "  option forwardfor"
        echo "  http-reuse always"
        echo "frontend fe"
        echo "  bind 127.0.0.1:8083"
        if [ "$mode" = routers-10k ]; then
            for i in $(seq 0 9999); do echo "h$i.test app"; done >"$d/hosts.map"
            echo "  use_backend %[req.hdr(host),lower,map($d/hosts.map)]"
        else
            echo "  bind 127.0.0.1:8183 proto h2"
            echo "  bind 127.0.0.1:8283 ssl crt $WORK/combined.pem alpn h2,http/1.1"
            echo "  default_backend app"
        fi
        echo "backend app"
        echo "  balance roundrobin"
        [ "$mode" = sticky ] && echo "  cookie SRV insert indirect nocache"
        i=0
        for s in "${servers[@]}"; do
            i=$((i + 1))
            if [ "$mode" = sticky ]; then echo "  server s$i $s cookie s$i"; else echo "  server s$i $s"; fi
        done
    } >"$d/haproxy.cfg"

    # Caddy (adds X-Forwarded-For itself; no access log unless `log` is set; upstream keep-alive by default).
    local rp="reverse_proxy ${servers[*]} {"$'\n'
    if [ "$mode" = sticky ]; then rp="$rp    lb_policy cookie"; else rp="$rp    lb_policy round_robin"; fi
    rp="$rp"$'\n'"  }"
    {
        echo "{"
        echo "  admin off"
        echo "  auto_https off"
        echo "  servers {"
        echo "    protocols h1 h2 h2c"
        echo "  }"
        echo "}"
        if [ "$mode" = routers-10k ]; then
            for i in $(seq 0 9999); do
                printf 'http://h%s.test:8084 {\n  bind 127.0.0.1\n  %s\n}\n' "$i" "$rp"
            done
        else
            printf 'http://:8084 {\n  bind 127.0.0.1\n  %s\n}\n' "$rp"
            printf 'https://127.0.0.1:8284 {\n  bind 127.0.0.1\n  tls %s %s\n  %s\n}\n' "$WORK/cert.pem" "$WORK/key.pem" "$rp"
        fi
    } >"$d/Caddyfile"
}

start_proxy() {
    local p=$1 d=$WORK/conf
    case $p in
    swarmgate)
        start swarmgate "$SG" --entrypoints.web.address=127.0.0.1:8081 --providers.file.filename="$d/swarmgate.yml" \
            --log.level=ERROR
        wait_port 8081 ;;
    nginx)
        timeout 60 nginx -t -q -c "$d/nginx.conf" -p "$WORK/nginx-tmp" || die "nginx config"
        start nginx nginx -c "$d/nginx.conf" -p "$WORK/nginx-tmp" -g 'daemon off;'
        wait_port 8082 ;;
    haproxy)
        timeout 60 haproxy -c -q -f "$d/haproxy.cfg" || die "haproxy config"
        start haproxy haproxy -db -f "$d/haproxy.cfg"
        wait_port 8083 ;;
    caddy)
        GOMAXPROCS=2 start caddy caddy run --adapter caddyfile --config "$d/Caddyfile"
        wait_port 8084 ;;
    esac
}

stop_proxies() { for p in swarmgate nginx haproxy caddy; do stop "$p"; done; }

# --- checks and measurement ---------------------------------------------------------------------------------
# names PORT [HOST] [CURL ARGS...]: backend names seen in 8 answers to GET / (the whoami body says `Name: X`).
names() {
    local port=$1 host=$2; shift 2
    for _ in $(seq 8); do
        timeout 5 curl -s -H "Host: $host" "$@" "http://127.0.0.1:$port/" | awk '/^Name:/ {print $2}'
    done | sort -u | tr '\n' ' '
}

# check_balance PROXY HOST: both backends answer through the proxy (else the numbers would mean nothing).
check_balance() {
    local got
    got=$(names "${PORT[$1]}" "$2")
    case "$got" in *A*B*) ;; *) die "$1 does not balance: backends seen: '$got'" ;; esac
}

# sticky_vary PROXY: prints two `--vary 'Cookie: …'` values, one pinned to each backend, and checks them.
sticky_vary() {
    local p=$1 port=${PORT[$1]} a="" b="" i hdr name
    if [ "$p" = nginx ]; then
        for i in $(seq 1 40); do
            name=$(names "$port" 127.0.0.1 -H "Cookie: srv=$i")
            case $name in "A ") [ -z "$a" ] && a="srv=$i" ;; "B ") [ -z "$b" ] && b="srv=$i" ;; esac
            [ -n "$a" ] && [ -n "$b" ] && break
        done
    else
        for i in $(seq 1 8); do
            hdr=$(timeout 5 curl -s -i "http://127.0.0.1:$port/")
            local c n
            c=$(printf '%s' "$hdr" | tr -d '\r' | awk 'tolower($1)=="set-cookie:" {split($2, x, ";"); print x[1]; exit}')
            n=$(printf '%s' "$hdr" | awk '/^Name:/ {print $2}')
            [ "$n" = A ] && [ -z "$a" ] && a=$c
            [ "$n" = B ] && [ -z "$b" ] && b=$c
        done
    fi
    [ -n "$a" ] && [ -n "$b" ] || die "$p: could not find sticky cookies for both backends"
    [ "$(names "$port" 127.0.0.1 -H "Cookie: $a")" = "A " ] || die "$p: cookie $a is not sticky to A"
    [ "$(names "$port" 127.0.0.1 -H "Cookie: $b")" = "B " ] || die "$p: cookie $b is not sticky to B"
    printf '%s\n%s\n' "$a" "$b"
}

# measure SCENARIO PROXY PID REP LOAD-ARGS...: one run; appends a JSON line to $RAW.
measure() {
    local scenario=$1 proxy=$2 pid=$3 rep=$4; shift 4
    local json=$WORK/run-$scenario-$proxy-$rep.json
    local dur_s warm_s
    dur_s=$(python3 -c "import re,sys;s='$DURATION_RUN';m=re.fullmatch(r'([\d.]+)(ms|s|m)?',s);v=float(m[1]);print(v/1000 if m[2]=='ms' else v*60 if m[2]=='m' else v)")
    warm_s=$(python3 -c "import re;m=re.fullmatch(r'([\d.]+)(ms|s)?','$WARMUP');print(float(m[1])/(1000 if m[2]=='ms' else 1))")
    { printf '%q ' "$LOAD" "$@"; echo "--warmup $WARMUP -d $DURATION_RUN --json <file>"; } >>"$WORK/commands.txt"
    timeout $((${dur_s%.*} + ${warm_s%.*} + 60)) "$LOAD" "$@" --warmup "$WARMUP" -d "$DURATION_RUN" --json "$json" \
        >"$WORK/run-$scenario-$proxy-$rep.txt" 2>&1 &
    local lp=$! c0="" c1 rss=0 r
    sleep "$warm_s"
    [ -n "$pid" ] && c0=$(cpu_ticks "$pid")
    while kill -0 "$lp" 2>/dev/null; do
        if [ -n "$pid" ]; then r=$(rss_kib "$pid"); [ "$r" -gt "$rss" ] && rss=$r; fi
        sleep 0.5
    done
    local load1
    load1=$(cut -d' ' -f1 /proc/loadavg)
    wait "$lp" || log "load exited non-zero for $scenario/$proxy (see $WORK/run-$scenario-$proxy-$rep.txt)"
    [ -n "$pid" ] && c1=$(cpu_ticks "$pid") || c1=""
    python3 - "$json" "$scenario" "$proxy" "$rep" "${c0:-}" "${c1:-}" "$rss" "$load1" >>"$RAW" <<'EOF'
import json, sys
path, scenario, proxy, rep, c0, c1, rss, load1 = sys.argv[1:]
r = json.load(open(path))
cpu_us = None
if c0 and c1 and r["requests"]:
    cpu_us = (int(c1) - int(c0)) * 1e6 / 100 / r["requests"]   # USER_HZ = 100
e = r["errors"]
print(json.dumps({
    "scenario": scenario, "proxy": proxy, "rep": int(rep), "req_per_s": r["req_per_s"],
    "p50_us": r["latency_us"]["p50"], "p99_us": r["latency_us"]["p99"], "cpu_us_per_req": cpu_us,
    "rss_mib": int(rss) / 1024 if int(rss) else None,
    "errors": e["connect"] + e["read"] + e["write"] + e["timeout"] + e["non_2xx"],
    "harness_cpu_share": r["harness_cpu"]["share_of_one_core"], "requests": r["requests"],
    "loadavg": float(load1), "tls_handshakes": r.get("tls_handshakes"),
}))
EOF
    log "$scenario $proxy rep $rep: $(awk '/Requests\/sec/ {print $2}' "$WORK/run-$scenario-$proxy-$rep.txt") req/s"
}

pid_of() { local v="PID_${1//-/_}"; echo "${!v:-}"; }

# run_interleaved SCENARIO "PROXIES" ARGS-FUNCTION: REPS rounds, each proxy once per round.
run_interleaved() {
    local scenario=$1 list=$2 argsfn=$3 rep p
    for rep in $(seq "$REPS"); do
        for p in $list; do
            # shellcheck disable=SC2046
            measure "$scenario" "$p" "$(pid_of "$p")" "$rep" $($argsfn "$p")
        done
    done
}

VARY_swarmgate=(); VARY_nginx=(); VARY_haproxy=(); VARY_caddy=()

h1_args() { echo "-t$THREADS -c$CONNS --latency http://127.0.0.1:${PORT[$1]}/bench"; }
h2_args() { echo "-t$THREADS -c16 -m10 --h2 --latency http://127.0.0.1:${H2PORT[$1]}/bench"; }
r10k_args() { echo "-t$THREADS -c$CONNS --latency -H Host:h9999.test http://127.0.0.1:${PORT[$1]}/bench"; }
tls_ka_args() { echo "-t$THREADS -c$CONNS --latency https://127.0.0.1:${TLSPORT[$1]}/bench"; }
tls_resume_args() { echo "-t$THREADS -c$CONNS --close --latency https://127.0.0.1:${TLSPORT[$1]}/bench"; }
tls_full_args() { echo "-t$THREADS -c$CONNS --close --no-resume --latency https://127.0.0.1:${TLSPORT[$1]}/bench"; }
scale_args() { echo "-t$THREADS -c$CONNS --latency http://127.0.0.1:${PORT[$1]}/"; }

start_all() {
    local p
    for p in $PROXIES; do start_proxy "$p"; done
}

scenario_rr() {
    write_configs rr $BACKENDS; start_all
    for p in $PROXIES; do check_balance "$p" 127.0.0.1; done
    run_interleaved rr "direct $PROXIES" h1_args
    stop_proxies
}

scenario_sticky() {
    write_configs sticky $BACKENDS; start_all
    local p rep v
    for p in $PROXIES; do
        mapfile -t v < <(sticky_vary "$p")
        eval "VARY_$p=(\"\${v[@]}\")"
        log "sticky $p: cookies ${v[*]}"
    done
    for rep in $(seq "$REPS"); do
        for p in $PROXIES; do
            local -n arr="VARY_$p"
            # shellcheck disable=SC2046
            measure sticky "$p" "$(pid_of "$p")" "$rep" $(h1_args "$p") --vary "Cookie: ${arr[0]}" --vary "Cookie: ${arr[1]}"
            unset -n arr
        done
    done
    stop_proxies
}

scenario_h2() {
    write_configs rr $BACKENDS; start_all
    local p
    for p in direct $PROXIES; do
        timeout 60 h2load -t"$THREADS" -c16 -m10 -D 5 --warm-up-time 1 "http://127.0.0.1:${H2PORT[$p]}/bench" \
            >"$WORK/h2load-$p.txt" 2>&1 || log "h2load failed for $p"
        log "h2 $p h2load: $(grep -E 'finished in' "$WORK/h2load-$p.txt" || true)"
    done
    run_interleaved h2 "direct $PROXIES" h2_args
    stop_proxies
}

scenario_routers_10k() {
    write_configs routers-10k $BACKENDS
    local p t0
    for p in $PROXIES; do
        t0=$(date +%s.%N)
        start_proxy "$p"
        # Ready = the last router answers.
        for _ in $(seq 600); do
            [ "$(timeout 5 curl -s -o /dev/null -w '%{http_code}' -H 'Host: h9999.test' "http://127.0.0.1:${PORT[$p]}/bench")" = 200 ] && break
            sleep 0.1
        done
        log "routers-10k $p ready after $(python3 -c "print(round($(date +%s.%N) - $t0, 2))") s"
        echo "routers-10k $p ready_s $(python3 -c "print(round($(date +%s.%N) - $t0, 2))")" >>"$WORK/notes.txt"
    done
    run_interleaved routers-10k "$PROXIES" r10k_args
    stop_proxies
}

tls_scenario() {
    local name=$1 argsfn=$2
    write_configs rr $BACKENDS; start_all
    local p
    for p in $PROXIES; do
        [ "$(timeout 5 curl -sk -o /dev/null -w '%{http_code}' "https://127.0.0.1:${TLSPORT[$p]}/bench")" = 200 ] ||
            die "$p does not answer over TLS"
    done
    run_interleaved "$name" "$PROXIES" "$argsfn"
    stop_proxies
}

# connections: IDLE_CONNS keep-alive connections that made one request each and stay idle (held by
# benches/idle_conns.py), and beside them a steady IDLE_RATE requests/s (open loop, `-R`, so p99 counts from
# the intended send time) on 16 more connections. Reports the active requests' p99 and the proxy's RSS; the
# notes give its RSS before, with the idle connections and the cost per idle connection.
conn_args() { echo "-t1 -c16 -R $IDLE_RATE --latency http://127.0.0.1:${PORT[$1]}/bench"; }

scenario_connections() {
    write_configs connections $BACKENDS; start_all
    local p rep pid before idle
    for p in $PROXIES; do check_balance "$p" 127.0.0.1; done
    for rep in $(seq "$REPS"); do
        for p in $PROXIES; do
            pid=$(pid_of "$p")
            before=$(rss_kib "$pid")
            rm -f "$WORK/idle-$p.json"
            start idle-hold timeout 600 python3 "$ROOT/benches/idle_conns.py" --pid "$pid" --port "${PORT[$p]}" \
                -n "$IDLE_CONNS" --ready "$WORK/idle-$p.json" --hold 590
            for _ in $(seq 1200); do [ -s "$WORK/idle-$p.json" ] && break; sleep 0.1; done
            [ -s "$WORK/idle-$p.json" ] || die "idle connections to $p not ready (see $WORK/idle-hold.log)"
            sleep 2
            idle=$(rss_kib "$pid")
            # shellcheck disable=SC2046
            measure connections "$p" "$pid" "$rep" $(conn_args "$p")
            # Again once the allocator had the measured window to give back what opening them used.
            settled=$(rss_kib "$pid")
            python3 -c "import json,sys; d=json.load(open(sys.argv[1])); n=max(d['connections'],1); b,i,s=(int(x) for x in sys.argv[4:7]); print(f'connections {sys.argv[2]} rep {sys.argv[3]}: {d[\"connections\"]:,} idle connections ({d[\"failures\"]} failed to open), RSS {b/1024:.1f} MiB before, {i/1024:.1f} MiB 2 s after they opened ({(i-b)/n:.2f} KiB each), {s/1024:.1f} MiB after the measured window ({(s-b)/n:.2f} KiB each)')" \
                "$WORK/idle-$p.json" "$p" "$rep" "$before" "$idle" "$settled" >>"$WORK/notes.txt"
            stop idle-hold
            sleep 2
        done
    done
    stop_proxies
}

scenario_scale() {
    # 8 replicas with 5 ms service time and 4 requests at a time: 800 req/s each at most.
    local i n servers=() rep p
    for i in 1 2 3 4 5 6 7 8; do
        start "slow$i" "$LOAD" --serve "127.0.0.1:920$i" --name "S$i" --service-time 5ms --concurrency 4
        wait_port "920$i"
    done
    local save=$DURATION_RUN; DURATION_RUN=$SCALE_DURATION
    for n in 1 2 4 8; do
        servers=()
        for i in $(seq "$n"); do servers+=("127.0.0.1:920$i"); done
        write_configs rr "${servers[@]}"; start_all
        for rep in $(seq "$REPS"); do
            for p in $PROXIES; do
                # shellcheck disable=SC2046
                measure "scale-$n" "$p" "$(pid_of "$p")" "$rep" $(scale_args "$p")
            done
        done
        stop_proxies
    done
    DURATION_RUN=$save
    for i in 1 2 3 4 5 6 7 8; do stop "slow$i"; done
}

# --- report -------------------------------------------------------------------------------------------------
report() {
    local machine versions
    machine="$(lscpu 2>/dev/null | awk -F: '/Model name/ {gsub(/^ +/, "", $2); print $2; exit}'), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), Linux $(uname -r)"
    versions="swarmgate ${SWARMGATE_REV:-$(cd "$ROOT" && git rev-parse --short HEAD)$(cd "$ROOT" && git diff --quiet HEAD -- src || echo '+dirty')}, $(nginx -v 2>&1 | sed 's/.*: //'), HAProxy $(haproxy -v | awk 'NR==1 {print $3}'), Caddy $(command -v caddy >/dev/null && caddy version | awk '{print $1}' || echo –), $(wrk -v 2>&1 | awk 'NR==1 {print $1, $2}'), h2load $(h2load --version | awk '{print $2}')"
    python3 "$ROOT/benches/report.py" "$RAW" "$OUT" "$machine" "$versions" "$WORK" "$*"
    log "wrote $OUT (raw runs: $RAW)"
}

main() {
    # `connections` holds IDLE_CONNS sockets in the holder and as many in each proxy.
    if [[ " $SCENARIOS " == *" connections "* ]]; then
        ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
        if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((IDLE_CONNS * 2 + 1000)) ]; then
            if ! { ulimit -Hn $((IDLE_CONNS * 2 + 1000)) 2>/dev/null && ulimit -n $((IDLE_CONNS * 2 + 1000)) 2>/dev/null; }; then
                # HAProxy reserves two descriptors per connection (client and server side) and refuses to
                # start below that: fewer idle connections, the same number for every proxy.
                IDLE_CONNS=$((($(ulimit -n) - 100) / 2 - 500))
                log "open-files hard limit $(ulimit -Hn) cannot be raised: $IDLE_CONNS idle connections"
                echo "connections: $IDLE_CONNS idle connections (the open-files hard limit $(ulimit -Hn) could not be raised)" >>"$WORK/notes.txt"
            fi
        fi
    fi
    install_tools
    build
    make_cert
    start_backends
    DURATION_RUN=$DURATION
    log "work dir $WORK; scenarios: $SCENARIOS; $REPS reps of $DURATION (+$WARMUP warm-up)"
    for s in $SCENARIOS; do
        case $s in
        rr) scenario_rr ;;
        sticky) scenario_sticky ;;
        h2) scenario_h2 ;;
        routers-10k) scenario_routers_10k ;;
        tls-ka) tls_scenario tls-ka tls_ka_args ;;
        tls-resume) tls_scenario tls-resume tls_resume_args ;;
        tls-full) tls_scenario tls-full tls_full_args ;;
        connections) scenario_connections ;;
        scale) scenario_scale ;;
        *) die "unknown scenario $s" ;;
        esac
    done
    report "$@"
}

main "$@"
