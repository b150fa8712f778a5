#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs the system tools the tests use (as root, with apt),
# checks that a Docker engine answers (SWARMGATE_SKIP_DOCKER_TESTS=1 skips the Docker tests instead), then runs
# every unit and integration test with cargo-nextest (or cargo test when nextest is missing).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for tool in curl pebble chromium nginx; do command -v "$tool" >/dev/null 2>&1 || need+=("$tool"); done
for pair in named:bind9 nsupdate:bind9-utils dig:bind9-dnsutils; do command -v "${pair%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/${pair%%:*}" ] || need+=("${pair#*:}"); done
# UDP tests: dnsmasq (package dnsmasq-base, in /usr/sbin) and dig (package dnsutils).
PATH="$PATH:/usr/sbin"
command -v dnsmasq >/dev/null 2>&1 || need+=(dnsmasq-base)
command -v dig >/dev/null 2>&1 || need+=(dnsutils)
if [ "${#need[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "missing tools: ${need[*]} (install them, or run as root with apt)" >&2
  fi
fi

# The Docker tests fail without an engine; say so now rather than after the build.
./scripts/docker-check.sh

# The build takes ~3 GB under target/ and the test images ~100 MB each in Docker's storage: warn when the disk is
# short, so that a later "no space left on device" from the engine is not a mystery.
for dir in . "$(docker info --format '{{.DockerRootDir}}' 2>/dev/null || echo /var/lib/docker)"; do
  free_kb=$(df -Pk "$dir" 2>/dev/null | awk 'NR==2 {print $4}')
  if [ -n "$free_kb" ] && [ "$free_kb" -lt 5000000 ]; then
    echo "warning: only $((free_kb / 1024)) MiB free under $dir; the build and the test images need ~4 GB" >&2
  fi
done

if cargo nextest --version >/dev/null 2>&1; then
  # Benches are built by `cargo clippy --all-targets` in CI; they are measurements, not tests.
  cargo nextest run --lib --bins --tests --no-fail-fast "$@"
else
  cargo test --lib --bins --tests --no-fail-fast "$@"
fi
