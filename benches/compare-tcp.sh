#!/usr/bin/env bash
# TCP (L4) proxying beside HAProxy `mode tcp` and nginx `stream`, same cores, same run (issue 17):
#   tcp-throughput  iperf3 through each proxy to one iperf3 server: Gbit/s (receiver), and the proxy's CPU
#                   seconds per GB moved;
#   tcp-conn        new connections per second: wrk with `Connection: close` through each proxy to one whoami
#                   backend (one TCP connection per request, proxied at L4).
# Usage: benches/compare-tcp.sh [scenario…]   (REPS=3 DURATION=8 by default; runs interleaved, medians
# reported). Settings kept equivalent: 2 workers (SWARMGATE_WORKERS=2, haproxy nbthread 2, nginx 2
# worker_processes), no logging. Prints a Markdown table with the load average; raw results in $WORK.
# Traffic stays on 127.0.0.1; every load is bounded in time.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
REPS=${REPS:-3}
DURATION=${DURATION:-8}
SCENARIOS=${*:-tcp-throughput tcp-conn}
WORK=$(mktemp -d /tmp/sg-tcp-bench.XXXXXX)
PIDS=()
log() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

install_tools() {
    local missing=()
    for t in iperf3:iperf3 haproxy:haproxy nginx:nginx wrk:wrk; do
        command -v "${t%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/${t%%:*}" ] || missing+=("${t#*:}")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        timeout 600 apt-get update -qq
        DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq "${missing[@]}" libnginx-mod-stream >/dev/null
    fi
    # nginx's stream module is a dynamic module on Debian.
    dpkg -s libnginx-mod-stream >/dev/null 2>&1 ||
        DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq libnginx-mod-stream >/dev/null
    for s in nginx haproxy; do systemctl stop "$s" >/dev/null 2>&1 || true; done
}

start() { local name=$1; shift; "$@" >"$WORK/$name.log" 2>&1 & PIDS+=("$!"); printf -v "PID_$name" '%s' "$!"; }
wait_port() {
    for _ in $(seq 300); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
    die "nothing listening on 127.0.0.1:$1"
}
pid_tree() { echo "$1"; pgrep -P "$1" 2>/dev/null || true; }
cpu_ticks() {
    local t=0 p f
    for p in $(pid_tree "$1"); do
        f=$(cut -d')' -f2- "/proc/$p/stat" 2>/dev/null) || continue
        set -- $f
        t=$((t + ${12} + ${13}))
    done
    echo "$t"
}

# Proxies listen on 127.0.0.1:PORT[proxy]+offset: +0 → iperf3 server (5201), +1 → whoami (9201).
declare -A PORT=([swarmgate]=18100 [haproxy]=18200 [nginx]=18300)

configs() {
    cat >"$WORK/dynamic.yml" <<EOF
tcp:
  routers:
    iperf: {entryPoints: [iperf], rule: "HostSNI(\`*\`)", service: iperf}
    web: {entryPoints: [web], rule: "HostSNI(\`*\`)", service: web}
  services:
    iperf: {loadBalancer: {servers: [{address: "127.0.0.1:5201"}]}}
    web: {loadBalancer: {servers: [{address: "127.0.0.1:9201"}]}}
EOF
    cat >"$WORK/haproxy.cfg" <<EOF
global
  nbthread 2
  maxconn 8000
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend iperf
  bind 127.0.0.1:${PORT[haproxy]}
  default_backend iperf
backend iperf
  server s 127.0.0.1:5201
frontend web
  bind 127.0.0.1:$((PORT[haproxy] + 1))
  default_backend web
backend web
  server s 127.0.0.1:9201
EOF
    cat >"$WORK/nginx.conf" <<EOF
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
worker_processes 2;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 8000; }
stream {
  server { listen 127.0.0.1:${PORT[nginx]}; proxy_pass 127.0.0.1:5201; }
  server { listen 127.0.0.1:$((PORT[nginx] + 1)); proxy_pass 127.0.0.1:9201; }
}
EOF
}

start_all() {
    start iperfd iperf3 -s -B 127.0.0.1 -p 5201
    TOKIO_WORKER_THREADS=1 start whoami "$WHOAMI" --listen 127.0.0.1:9201 --name A
    SWARMGATE_WORKERS=2 start swarmgate "$SG" --log.level=ERROR \
        --entrypoints.iperf.address=127.0.0.1:${PORT[swarmgate]} \
        --entrypoints.web.address=127.0.0.1:$((PORT[swarmgate] + 1)) \
        --providers.file.filename="$WORK/dynamic.yml"
    start haproxy haproxy -db -f "$WORK/haproxy.cfg"
    start nginx nginx -c "$WORK/nginx.conf"
    # iperf3 serves one client at a time: probe the proxies' ports only (swarmgate's first, once
    # the file provider has loaded) and give iperf3 a moment.
    sleep 1
    for p in 9201 "${PORT[@]}"; do wait_port "$p"; done
    for p in "${PORT[@]}"; do wait_port $((p + 1)); done
}

measure_throughput() {
    local proxy=$1 rep=$2 pid c0 c1 out
    pid=$(eval echo "\$PID_$proxy")
    out=$WORK/iperf-$proxy-$rep.json
    c0=$(cpu_ticks "$pid")
    timeout $((DURATION + 20)) iperf3 -c 127.0.0.1 -p "${PORT[$proxy]}" -t "$DURATION" -J >"$out" || die "iperf3 $proxy"
    c1=$(cpu_ticks "$pid")
    python3 - "$out" "$proxy" "$rep" "$c0" "$c1" "$(cut -d' ' -f1 /proc/loadavg)" >>"$WORK/raw.jsonl" <<'EOF'
import json, os, sys
path, proxy, rep, c0, c1, load1 = sys.argv[1:]
r = json.load(open(path))["end"]["sum_received"]
gb = r["bytes"] / 1e9
cpu = (int(c1) - int(c0)) / os.sysconf("SC_CLK_TCK")
print(json.dumps({"scenario": "tcp-throughput", "proxy": proxy, "rep": int(rep),
                  "gbit_s": r["bits_per_second"] / 1e9, "cpu_s_per_gb": cpu / gb if gb else None, "load1": float(load1)}))
EOF
}

measure_conn() {
    local proxy=$1 rep=$2 pid c0 c1 out
    pid=$(eval echo "\$PID_$proxy")
    out=$WORK/wrk-$proxy-$rep.txt
    c0=$(cpu_ticks "$pid")
    timeout $((DURATION + 20)) wrk -t1 -c32 -d"${DURATION}s" -H "Connection: close" "http://127.0.0.1:$((PORT[$proxy] + 1))/" >"$out" 2>&1 || die "wrk $proxy"
    c1=$(cpu_ticks "$pid")
    python3 - "$out" "$proxy" "$rep" "$c0" "$c1" "$(cut -d' ' -f1 /proc/loadavg)" >>"$WORK/raw.jsonl" <<'EOF'
import json, os, re, sys
path, proxy, rep, c0, c1, load1 = sys.argv[1:]
text = open(path).read()
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
total = int(re.search(r"(\d+) requests in", text).group(1))
errs = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
cpu = (int(c1) - int(c0)) / os.sysconf("SC_CLK_TCK")
print(json.dumps({"scenario": "tcp-conn", "proxy": proxy, "rep": int(rep), "conn_s": rps,
                  "cpu_us_per_conn": cpu / total * 1e6 if total else None,
                  "errors": sum(map(int, errs.groups())) if errs else 0,
                  "non2xx": int(non2xx.group(1)) if non2xx else 0, "load1": float(load1)}))
EOF
}

report() {
    python3 - "$WORK/raw.jsonl" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def med(scn, proxy, key):
    v = [r[key] for r in rows if r["scenario"] == scn and r["proxy"] == proxy and r.get(key) is not None]
    return statistics.median(v) if v else None
print("| scenario | proxy | median | vs HAProxy | vs nginx | CPU | load1 (median) |")
print("|---|---|---|---|---|---|---|")
for scn, key, unit, cpu_key, cpu_unit in [("tcp-throughput", "gbit_s", "Gbit/s", "cpu_s_per_gb", "CPU s/GB"),
                                          ("tcp-conn", "conn_s", "conn/s", "cpu_us_per_conn", "CPU µs/conn")]:
    base_h, base_n = med(scn, "haproxy", key), med(scn, "nginx", key)
    for p in ["swarmgate", "haproxy", "nginx"]:
        m = med(scn, p, key)
        if m is None:
            continue
        c = med(scn, p, cpu_key)
        load = statistics.median([r["load1"] for r in rows if r["scenario"] == scn and r["proxy"] == p])
        errs = sum(r.get("errors", 0) + r.get("non2xx", 0) for r in rows if r["scenario"] == scn and r["proxy"] == p)
        ratio = lambda b: f"{m / b:.2f}×" if b else "-"
        print(f"| {scn} | {p} | {m:.2f} {unit}{f' ({errs} errors)' if errs else ''} | {ratio(base_h)} | {ratio(base_n)} | {c:.3f} {cpu_unit} | {load:.2f} |")
EOF
}

main() {
    install_tools
    SG=${SWARMGATE_BIN:-$ROOT/target/release/swarmgate}
    WHOAMI=${WHOAMI_BIN:-$ROOT/target/release/whoami}
    if [ ! -x "$SG" ] || [ ! -x "$WHOAMI" ]; then (cd "$ROOT" && timeout 1800 cargo build --release --bins -q); fi
    mkdir -p "$WORK/bin"; cp "$SG" "$WHOAMI" "$WORK/bin/"; SG=$WORK/bin/swarmgate; WHOAMI=$WORK/bin/whoami
    configs
    start_all
    log "work dir $WORK; $REPS reps of ${DURATION}s; load average $(cut -d' ' -f1-3 /proc/loadavg)"
    for s in $SCENARIOS; do
        for rep in $(seq "$REPS"); do
            for p in swarmgate haproxy nginx; do
                case $s in
                tcp-throughput) measure_throughput "$p" "$rep" ;;
                tcp-conn) measure_conn "$p" "$rep" ;;
                *) die "unknown scenario $s" ;;
                esac
            done
        done
    done
    report
}
main
