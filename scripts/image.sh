#!/usr/bin/env bash
# One command from a fresh clone to the two images, with no image pulled:
#
#   scripts/image.sh            # builds swarmgate:latest and whoami:latest, prints their sizes
#   TAG=v0.1 scripts/image.sh   # another tag
#
# 1. builds the statically linked release binaries (glibc, crt-static; no libc needed at run time):
#      RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --target x86_64-unknown-linux-gnu
#    (5–15 minutes the first time on 2 cores; seconds when nothing changed),
# 2. strips copies of them into target/image/ (the build keeps its debug info for profiling),
# 3. builds `FROM scratch` images from the Dockerfile, one per binary: `swarmgate` and `whoami`
#    (whoami is the test backend examples/stack.yml and the tutorial route to).
# Needs: a Rust toolchain (cargo), binutils' strip, a Docker engine. A builder that can pull a Rust image can
# use Dockerfile.multistage instead (see there).
set -euo pipefail
cd "$(dirname "$0")/.."

TAG="${TAG:-latest}"
TARGET=x86_64-unknown-linux-gnu
OUT=target/image
GATE_IMAGE="${GATE_IMAGE:-swarmgate}"
WHOAMI_IMAGE="${WHOAMI_IMAGE:-whoami}"

t0=$(date +%s)
echo "== cargo build --release --target $TARGET (crt-static)"
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
  cargo build --release --locked --target "$TARGET" --bin swarmgate --bin whoami
t1=$(date +%s)

mkdir -p "$OUT"
for bin in swarmgate whoami; do
  strip -o "$OUT/$bin" "target/$TARGET/release/$bin"
  # A static binary: `ldd` must not list any shared library, or the scratch image cannot run it.
  if ldd "$OUT/$bin" 2>/dev/null | grep -q '=>'; then
    echo "error: $OUT/$bin is dynamically linked (was RUSTFLAGS overridden?)" >&2
    exit 1
  fi
done

echo "== docker build"
docker build -q --build-arg SRC="$OUT" --build-arg BIN=swarmgate -t "$GATE_IMAGE:$TAG" . >/dev/null
docker build -q --build-arg SRC="$OUT" --build-arg BIN=whoami -t "$WHOAMI_IMAGE:$TAG" . >/dev/null
t2=$(date +%s)

echo "== images (binaries built in $((t1 - t0)) s, images in $((t2 - t1)) s)"
for img in "$GATE_IMAGE:$TAG" "$WHOAMI_IMAGE:$TAG"; do
  bytes=$(docker image inspect -f '{{.Size}}' "$img")
  printf '%-24s %s bytes (%s MB)\n' "$img" "$bytes" "$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1000000 }')"
done
