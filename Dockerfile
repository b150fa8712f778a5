# swarmgate image: FROM scratch with one statically linked binary (glibc, crt-static). No base image is
# pulled, so this builds anywhere, offline. One command does everything below and prints the sizes:
#
#   scripts/image.sh                 # → swarmgate:latest and whoami:latest
#
# By hand, the same steps:
#
#   RUSTFLAGS="-C target-feature=+crt-static" \
#     cargo build --release --target x86_64-unknown-linux-gnu --bin swarmgate --bin whoami
#   docker build -t swarmgate .
#   docker build --build-arg BIN=whoami -t whoami .      # the test backend, same recipe
#
# (scripts/image.sh also strips the binaries first, into target/image, and passes --build-arg SRC=target/image.)
# A builder that can pull a Rust image can build from source in Docker instead: Dockerfile.multistage.
#
# The same flags as Traefik go after the image name (`docker run swarmgate --providers.swarm ...`);
# `docker run swarmgate socket-guard` is the Docker API guard (docs/socket-guard.md).
# `.dockerignore` keeps the build context to the binaries.
FROM scratch
ARG SRC=target/x86_64-unknown-linux-gnu/release
ARG BIN=swarmgate
COPY ${SRC}/${BIN} /entrypoint
EXPOSE 80 443 8080
ENTRYPOINT ["/entrypoint"]
