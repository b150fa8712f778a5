# swarmgate image: FROM scratch with one statically linked binary (glibc, crt-static). No base image is
# pulled, so this builds anywhere, offline. Build the binaries first, outside Docker:
#
#   RUSTFLAGS="-C target-feature=+crt-static" \
#     cargo build --release --target x86_64-unknown-linux-gnu --bin swarmgate --bin whoami
#   strip target/x86_64-unknown-linux-gnu/release/swarmgate target/x86_64-unknown-linux-gnu/release/whoami
#   docker build -t swarmgate .
#   docker build --build-arg BIN=whoami -t swarmgate-whoami .      # the test backend, same recipe
#
# The same flags as Traefik go after the image name (`docker run swarmgate --providers.swarm ...`).
# `.dockerignore` keeps the build context to the two binaries.
FROM scratch
ARG BIN=swarmgate
COPY target/x86_64-unknown-linux-gnu/release/${BIN} /entrypoint
EXPOSE 80 443 8080
ENTRYPOINT ["/entrypoint"]
