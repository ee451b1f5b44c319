# berth sidecar image: multi-stage, distroless, non-root.
#   docker build -t berth .
# Checked with hadolint (see examples/README.md); the Docker engine is not on the test
# machines, so the image itself is built by hand.

# The toolchain is pinned: sidecar/berth.order (the code layout that keeps idle RSS low,
# see sidecar/build.rs) names symbols whose hashes depend on the compiler version.
FROM rust:1.95-bookworm AS build
# protoc and the well-known protos: the etcd client's gRPC code is generated at build time.
RUN apt-get update \
 && apt-get install -y --no-install-recommends protobuf-compiler libprotobuf-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release -p berth --locked \
 && install -D -m 0755 target/release/berth /out/berth

# glibc + libgcc only; no shell, no package manager. Runs as uid 65532 ("nonroot").
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/berth /usr/local/bin/berth
# Non-root cannot bind ports below 1024: berth listens on 8080/8443 in the image and the
# orchestrator maps 80->8080 and 443->8443 (compose `ports`, a Kubernetes Service).
ENV BERTH_HTTP_ADDR=0.0.0.0:8080 \
    BERTH_TLS_ADDR=0.0.0.0:8443 \
    BERTH_HTTPS_PORT=443 \
    BERTH_ADMIN_ADDR=127.0.0.1:8081 \
    BERTH_STORE=/data/acme.json
VOLUME ["/data"]
EXPOSE 8080 8443
USER 65532:65532
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["berth", "healthcheck"]
ENTRYPOINT ["berth"]
CMD ["run"]
