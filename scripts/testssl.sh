#!/usr/bin/env bash
# testssl.sh (Debian package `testssl.sh`, command `testssl`) against a swarmgate TLS entrypoint.
#
# Starts the swarmgate binary on 127.0.0.1:<free port> with one TLS router (default TLS options, the
# generated default certificate), runs testssl's protocol, server-defaults, forward-secrecy and
# vulnerability checks, prints a summary and exits non-zero when a vulnerability is reported or a
# protocol below TLS 1.2 is offered.
#
#   scripts/testssl.sh                 # builds target/debug/swarmgate if needed
#   SWARMGATE_BIN=target/release/swarmgate scripts/testssl.sh
#
# The full report is kept in target/testssl/report.txt (and report.json).
set -euo pipefail
cd "$(dirname "$0")/.."

command -v testssl >/dev/null 2>&1 || {
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq testssl.sh >/dev/null
  else
    echo "testssl is missing: apt-get install testssl.sh" >&2; exit 2
  fi
}
bin=${SWARMGATE_BIN:-target/debug/swarmgate}
[ -x "$bin" ] || cargo build --bin swarmgate

out=target/testssl
mkdir -p "$out"
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$work/dynamic.yml" <<'EOF'
http:
  routers:
    app:
      rule: Host(`testssl.local`)
      service: app
      tls: {}
  services:
    app:
      loadBalancer:
        servers:
          - url: http://127.0.0.1:9
EOF
"$bin" --entrypoints.websecure.address=127.0.0.1:"$port" \
  --providers.file.filename="$work/dynamic.yml" >"$work/swarmgate.log" 2>&1 &
pid=$!
cleanup() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
for _ in $(seq 100); do
  grep -q "listening on" "$work/swarmgate.log" && break
  sleep 0.1
done

rm -f "$out/report.json"
testssl --quiet --color 0 --warnings batch --sneaky \
  --protocols --server-defaults --fs --vulnerable \
  --jsonfile "$out/report.json" "127.0.0.1:$port" | tee "$out/report.txt" >/dev/null || true

echo "== testssl summary (swarmgate $(git rev-parse --short HEAD 2>/dev/null || echo '?'), 127.0.0.1:$port)"
grep -E '^ (SSLv2|SSLv3|TLS 1(\.[0-3])?) ' "$out/report.txt" | sed 's/  */ /g'
sed -n '/Testing vulnerabilities/,/Done/p' "$out/report.txt" | grep -E '^ [A-Z]' | sed 's/  */ /g'
# testssl writes VULNERABLE (upper case) only for a finding; certificate remarks ("NOT ok") concern the
# generated self-signed default certificate and are listed for information.
vulnerable=$(grep -c 'VULNERABLE' "$out/report.txt" || true)
low=$(grep -E '^ (SSLv2|SSLv3|TLS 1 |TLS 1\.1 )' "$out/report.txt" | grep -vc 'not offered' || true)
echo "certificate remarks (self-signed default certificate):"
grep 'NOT ok' "$out/report.txt" | sed 's/  */ /g' || true
echo "vulnerabilities reported: $vulnerable"
echo "protocols below TLS 1.2 offered: $low"
[ "$vulnerable" = 0 ] && [ "$low" = 0 ]
