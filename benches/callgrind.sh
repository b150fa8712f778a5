#!/usr/bin/env bash
# Instructions per proxied request (`rr`), counted by callgrind: a figure that, unlike req/s or CPU time, does not
# move with the load of this shared machine, so builds can be compared one after the other.
#
#   benches/callgrind.sh [SWARMGATE_BIN...]     (default: target/release/swarmgate)
#
# For each binary: two whoami backends, swarmgate on one worker thread (SWARMGATE_WORKERS=1) under
# `valgrind --tool=callgrind` with a round-robin file config; a warm-up (`load -t1 -c8 -d3s`), counters zeroed,
# `load -t1 -c8 -d8s`, counters dumped; prints the instructions of the dump divided by the requests answered.
# User space only. CALLGRIND_KEEP=DIR keeps each dump as DIR/<binary name>.callgrind (for callgrind_annotate).
# Needs valgrind and the `load` bench binary (built here with `cargo bench --bench load --no-run`).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
command -v valgrind >/dev/null || { echo "valgrind is missing (apt-get install valgrind)" >&2; exit 1; }
[ $# -gt 0 ] || set -- target/release/swarmgate
WHOAMI=${WHOAMI_BIN:-target/release/whoami}
[ -x "$WHOAMI" ] || cargo build --release --bin whoami -q
LOAD=${LOAD_BIN:-$(cargo bench --bench load --no-run --message-format=json -q |
    python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "load" and m.get("executable"):
        print(m["executable"])')}
WORK=$(mktemp -d /tmp/sg-callgrind.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

port_up() { for _ in $(seq 1 600); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }

TOKIO_WORKER_THREADS=1 "$WHOAMI" --listen 127.0.0.1:9171 --name A >/dev/null 2>&1 & PIDS+=($!)
TOKIO_WORKER_THREADS=1 "$WHOAMI" --listen 127.0.0.1:9172 --name B >/dev/null 2>&1 & PIDS+=($!)
cat >"$WORK/sg.yml" <<'EOF'
http:
  routers:
    app: { rule: "PathPrefix(`/`)", service: app }
  services:
    app:
      loadBalancer:
        servers:
          - url: http://127.0.0.1:9171
          - url: http://127.0.0.1:9172
EOF
port_up 9171 && port_up 9172

requests() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["requests"])' "$1"; }

for bin in "$@"; do
    out=$WORK/callgrind.out
    SWARMGATE_WORKERS=1 valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" \
        --entrypoints.web.address=127.0.0.1:8171 --providers.file.filename="$WORK/sg.yml" --log.level=ERROR \
        >"$WORK/sg.log" 2>&1 &
    vg=$!
    port_up 8171 || { cat "$WORK/sg.log" >&2; exit 1; }
    "$LOAD" -t1 -c8 -d3s --warmup 0s http://127.0.0.1:8171/bench >/dev/null
    callgrind_control -z "$vg" >/dev/null 2>&1
    "$LOAD" -t1 -c8 -d8s --warmup 0s --json "$WORK/load.json" http://127.0.0.1:8171/bench >/dev/null
    callgrind_control -d "$vg" >/dev/null 2>&1
    kill "$vg"; wait "$vg" 2>/dev/null || true
    dump=$(ls -t "$out".* 2>/dev/null | head -1)
    instr=$(awk '/^summary:|^totals:/ {print $2; exit}' "$dump")
    reqs=$(requests "$WORK/load.json")
    echo "$bin: $((instr / reqs)) instructions/request ($reqs requests, $instr instructions)"
    if [ -n "${CALLGRIND_KEEP:-}" ]; then
        mkdir -p "$CALLGRIND_KEEP"; cp "$dump" "$CALLGRIND_KEEP/$(basename "$bin").callgrind"
    fi
    rm -f "$out" "$out".*
done
