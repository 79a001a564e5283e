# The image `mc install` deploys (ghcr.io/mc-dev/mc:<version>): the one `mc` binary as the
# entrypoint; the manifests pass `gateway ...` or `mirror ...` as arguments.
#
#   docker build -t mc:dev .
#   kind load docker-image mc:dev --name west
#   mc install ... --set image.repository=mc --set image.tag=dev --set image.pullPolicy=Never
#
# Build stage: the toolchain and the crates, discarded afterwards. The Rust version is the
# crate's rust-version or newer; --locked builds exactly Cargo.lock.
FROM docker.io/library/rust:1.89-bookworm AS build
WORKDIR /src
COPY . .
# Cache mounts keep the crate registry and target/ between local builds; the binary is copied
# out of the cached target/ so that the next stage can see it.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin mc \
    && cp target/release/mc /usr/local/bin/mc

# Runtime stage: glibc and CA certificates, no shell, no package manager. ring needs libc only
# (no OpenSSL). The `nonroot` variant runs as 65532:65532, the uid/gid the manifests pin.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /usr/local/bin/mc /usr/local/bin/mc
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/mc"]
