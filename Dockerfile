# syntax=docker/dockerfile:1.7
#
# One Dockerfile, one slim runtime image per service:
#   docker build --target api    -t image-classifier-api .      # binary + model registry
#   docker build --target worker -t image-classifier-worker .   # binary + ONNX Runtime + models
#   docker build --target ui     -t image-classifier-ui .       # binary only (assets are embedded)
#   docker build --target test --build-context shared=../shared .   # fmt, clippy, the tests
# `docker compose build` builds api, worker and ui (UID/GID from .env). No Docker engine runs on
# the CI machine: `make docker-check` lints this file (hadolint) and checks the compose file;
# the images are built where Docker is (README, "Deployment").
#
# Stages: `chef` (cargo-chef, pinned) → `planner` (recipe.json: the dependency graph only) →
# `builder` (dependencies cooked in their own layer, rebuilt only when Cargo.toml/Cargo.lock
# change; then the workspace's release binaries). `ort` installs libonnxruntime.so from the
# PyPI wheel pinned by SHA-256 (scripts/install-ort.sh, scripts/onnxruntime-wheels.txt).
# `models` downloads MODELS with `xtask models fetch`, which checks each file's size and
# SHA-256 against models/registry.toml (URLs pinned to a model zoo commit) and loads it in
# ONNX Runtime; the build fails on any mismatch.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm
# Models baked into the worker image and served by it (comma-separated registry names).
ARG MODELS=resnet50
# The runtime user: compose passes UID/GID from .env, so files in mounted volumes belong to you.
ARG UID=10001
ARG GID=10001

# --- cargo-chef --------------------------------------------------------------------------------
FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS chef
ARG CARGO_CHEF_VERSION=0.1.73
# libturbojpeg: the worker's reduced-scale JPEG decode links Debian's libjpeg-turbo (pkg-config).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libturbojpeg0-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
RUN cargo install --locked "cargo-chef@${CARGO_CHEF_VERSION}"
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

# --- release binaries --------------------------------------------------------------------------
FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
# The dependency layer: cached until the recipe (manifests + lock file) changes.
RUN cargo chef cook --release --locked --recipe-path recipe.json -p api -p worker -p ui -p xtask
COPY . .
RUN cargo build --release --locked -p api -p worker -p ui -p xtask \
    && mkdir -p /out \
    && cp target/release/api target/release/worker target/release/ui target/release/xtask /out/

# --- ONNX Runtime from the hash-pinned PyPI wheel ----------------------------------------------
FROM python:3.11-slim-${DEBIAN_RELEASE} AS ort
WORKDIR /build
COPY scripts/install-ort.sh scripts/onnxruntime-wheels.txt scripts/
RUN ORT_DIR=/opt/onnxruntime scripts/install-ort.sh

# --- models, downloaded and verified at build time ---------------------------------------------
FROM debian:${DEBIAN_RELEASE}-slim AS models
ARG MODELS
# libturbojpeg0: xtask links the worker library (its JPEG decode).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libstdc++6 libturbojpeg0 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /build
COPY --from=ort /opt/onnxruntime /opt/onnxruntime
# The model tool (`xtask models`), used only in this stage: the worker image does not carry it.
COPY --from=builder /out/xtask /usr/local/bin/xtask
COPY models/registry.toml models/imagenet_classes.txt models/
ENV ORT_DYLIB_PATH=/opt/onnxruntime/libonnxruntime.so \
    MODEL_REGISTRY=/build/models/registry.toml \
    MODELS_DIR=/build/models
# `fetch` downloads each of MODELS and fails unless size and SHA-256 match the registry and the
# file loads with the registry's input/output names; `verify` then re-reads what is there.
RUN MODELS="${MODELS}" xtask models fetch \
    && MODELS="${MODELS}" xtask models verify

# --- runtime bases: a non-root user with the host's UID/GID (.env) ---------------------------
FROM debian:${DEBIAN_RELEASE}-slim AS runtime
ARG UID
ARG GID
RUN groupadd --system --gid "${GID}" app \
    && useradd --system --no-log-init --uid "${UID}" --gid app --home-dir /app --no-create-home app \
    && mkdir -p /app/data \
    && chown app:app /app/data
WORKDIR /app
ENV RUST_LOG=info \
    LOG_FORMAT=json \
    APP_ENV=production
STOPSIGNAL SIGTERM

# HTTP services: curl for the health check, nothing else.
FROM runtime AS http-runtime
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*
ARG UID
ARG GID
USER ${UID}:${GID}
# Each service sets HEALTH_PORT to the port it listens on.
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD ["sh", "-c", "curl -fsS -o /dev/null http://127.0.0.1:${HEALTH_PORT}/health"]

# --- api: no ONNX Runtime, no models (only the registry, to validate model names) -------------
FROM http-runtime AS api
COPY models/registry.toml models/imagenet_classes.txt /app/models/
COPY --from=builder /out/api /usr/local/bin/api
ENV API_BIND=0.0.0.0:8000 \
    MODEL_REGISTRY=/app/models/registry.toml \
    MODELS_DIR=/app/models \
    DATABASE_URL=sqlite:///app/data/app.db \
    REDIS_URL=redis://redis:6379 \
    HEALTH_PORT=8000
EXPOSE 8000
ENTRYPOINT ["/usr/local/bin/api"]

# --- ui: its binary (templates and static files are compiled in) -------------------------------
FROM http-runtime AS ui
COPY --from=builder /out/ui /usr/local/bin/ui
ENV UI_BIND=0.0.0.0:8080 \
    API_URL=http://api:8000 \
    HEALTH_PORT=8080
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/ui"]

# --- worker: ONNX Runtime + the verified models; health = its own heartbeat in Redis -----------
FROM runtime AS worker
ARG MODELS
ARG UID
ARG GID
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libstdc++6 libturbojpeg0 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=ort /opt/onnxruntime /opt/onnxruntime
COPY --from=models /build/models /app/models
COPY --from=builder /out/worker /usr/local/bin/worker
# WORKER_CPUS is left unset here: the worker then uses the CPUs its cgroup allows.
ENV ORT_DYLIB_PATH=/opt/onnxruntime/libonnxruntime.so \
    MODEL_REGISTRY=/app/models/registry.toml \
    MODELS_DIR=/app/models \
    MODELS=${MODELS} \
    REDIS_URL=redis://redis:6379
USER ${UID}:${GID}
# `worker health` exits 0 only while this container's worker heartbeat in Redis is fresh.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["/usr/local/bin/worker", "health"]
ENTRYPOINT ["/usr/local/bin/worker"]

# --- test: the checks and tests in a container -------------------------------------------------
# Needs the shared folder (test images, models) as a named build context:
#   docker build --target test --build-context shared=../shared .
FROM chef AS test
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends redis-server postgresql \
    && rm -rf /var/lib/apt/lists/* \
    && rustup component add rustfmt clippy
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --locked --all-targets --recipe-path recipe.json
COPY --from=ort /opt/onnxruntime /src/.ort
# `shared` is the named build context given with --build-context, not a stage.
# hadolint ignore=DL3022
COPY --from=shared . /shared
COPY . .
ENV TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
    ORT_DYLIB_PATH=/src/.ort/libonnxruntime.so
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN cargo fmt --all -- --check \
    && cargo clippy --workspace --all-targets --locked -- -D warnings \
    && pg="$(find /etc/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -n 1)" \
    && sed -i '1i host all all 127.0.0.1/32 trust' "/etc/postgresql/${pg}/main/pg_hba.conf" \
    && pg_ctlcluster "${pg}" main start \
    && su postgres -c "psql -qc 'create database test'" \
    && cargo test --workspace --locked \
    && pg_ctlcluster "${pg}" main stop
