# syntax=docker/dockerfile:1.7
#
# One runtime image holding api, worker and ui, with a target per service:
#   docker build --target api    -t image-classifier-api .
#   docker build --target worker -t image-classifier-worker .
#   docker build --target ui     -t image-classifier-ui .
# (docker compose build does this for all three.)
#
# Stages: `builder` compiles the release binaries (dependencies cached in BuildKit cache
# mounts), `ort` takes libonnxruntime.so from the PyPI onnxruntime wheel,
# `models` fetches and verifies the registry's models with `worker models fetch`
# (it needs internet; efficientnet-lite0 has no public URL: copy it into models/
# before building to include it).

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

# --- build the binaries --------------------------------------------------------------------
FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS builder
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p api -p worker -p ui \
    && mkdir -p /out \
    && cp target/release/api target/release/worker target/release/ui /out/

# --- ONNX Runtime from the PyPI wheel ------------------------------------------------------
FROM python:3.11-slim-${DEBIAN_RELEASE} AS ort
ARG ORT_VERSION=1.31.1
WORKDIR /build
COPY scripts/install-ort.sh scripts/install-ort.sh
RUN ORT_VERSION="${ORT_VERSION}" ORT_DIR=/opt/onnxruntime scripts/install-ort.sh

# --- models ------------------------------------------------------------------------------
# `worker models fetch` downloads the registry's models that have a URL and verifies every
# file (size, SHA-256, a load in ONNX Runtime); `verify` then insists on REQUIRED_MODELS.
FROM debian:${DEBIAN_RELEASE}-slim AS models
# Models that must be in the image (the build fails without them), comma-separated.
ARG REQUIRED_MODELS=resnet50
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libstdc++6 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /build
COPY --from=ort /opt/onnxruntime /opt/onnxruntime
COPY --from=builder /out/worker /usr/local/bin/worker
COPY models/ models/
ENV ORT_DYLIB_PATH=/opt/onnxruntime/libonnxruntime.so \
    MODEL_REGISTRY=/build/models/registry.toml \
    MODELS_DIR=/build/models
RUN worker models fetch \
    && MODELS="${REQUIRED_MODELS}" worker models verify >/dev/null

# --- runtime (all three binaries) ------------------------------------------------------------
FROM debian:${DEBIAN_RELEASE}-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl libstdc++6 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --create-home --home-dir /app --uid 10001 app \
    && mkdir -p /app/data && chown app:app /app/data
COPY --from=ort /opt/onnxruntime /opt/onnxruntime
COPY --from=models /build/models /app/models
COPY --from=builder /out/api /out/worker /out/ui /usr/local/bin/
COPY --from=builder /src/migrations /app/migrations
WORKDIR /app
ENV ORT_DYLIB_PATH=/opt/onnxruntime/libonnxruntime.so \
    MODELS_DIR=/app/models \
    MODEL_REGISTRY=/app/models/registry.toml \
    DATABASE_URL=sqlite:///app/data/app.db \
    REDIS_URL=redis://redis:6379 \
    API_URL=http://api:8000 \
    APP_ENV=production \
    RUST_LOG=info \
    LOG_FORMAT=json
USER app
STOPSIGNAL SIGTERM

FROM runtime AS worker
ENTRYPOINT ["/usr/local/bin/worker"]

FROM runtime AS ui
ENV UI_BIND=0.0.0.0:8080
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8080/health || exit 1
ENTRYPOINT ["/usr/local/bin/ui"]

FROM runtime AS api
ENV API_BIND=0.0.0.0:8000
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8000/health || exit 1
ENTRYPOINT ["/usr/local/bin/api"]
