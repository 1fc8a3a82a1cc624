# syntax=docker/dockerfile:1
# Build: docker build -t lockout .
# Run:   docker run -p 8080:8080 -v lockout-data:/data -v $PWD/lockout.yaml:/etc/lockout/lockout.yaml:ro lockout

FROM rust:1.95-slim-bookworm AS builder
WORKDIR /src
# Cache dependencies: build a stub crate with the real manifest first.
COPY Cargo.toml Cargo.lock rust-toolchain.toml ./
# Patched dependencies ([patch.crates-io] in Cargo.toml; see vendor/README.md).
COPY vendor ./vendor
RUN mkdir -p src benches && echo 'fn main() {}' > src/main.rs && echo '' > src/lib.rs \
    && echo 'fn main() {}' > benches/eval.rs \
    && cargo build --release --locked \
    && rm -rf src
COPY src ./src
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin lockout

FROM debian:bookworm-slim AS runtime
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /data lockout \
    && mkdir -p /data /etc/lockout && chown lockout /data
COPY --from=builder /src/target/release/lockout /usr/local/bin/lockout
COPY playbooks /etc/lockout/playbooks
USER lockout
WORKDIR /data
VOLUME ["/data"]
ENV LOCKOUT__SERVER__LISTEN=0.0.0.0:8080 \
    LOCKOUT__STORE__URL=sqlite:///data/lockout.db \
    LOCKOUT__PLAYBOOKS__DIR=/etc/lockout/playbooks \
    LOCKOUT_LOG_FORMAT=json
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["lockout"]
CMD ["--config", "/etc/lockout/lockout.yaml", "serve"]
