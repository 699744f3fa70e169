# Entry points of the project. `make help` lists them.
SHELL := /bin/bash
ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help run test provision model ort bench soak locust fmt lint docker docker-check k8s-check deny openapi config-docs

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

run: ## build api, worker, ui (the dev profile make test builds), fetch models, start them with redis; Ctrl-C stops them
	scripts/run-stack.sh

test: ## install what the tests need (scripts/provision.sh), then every check and test: cargo xtask ci (what .ci/run runs)
	scripts/provision.sh
	@echo "==> compiling xtask (Unix time $$(date +%s); quietly: most of the workspace's dependencies), then cargo xtask ci"
	cargo xtask ci

provision: ## only install what the checks and tests need (apt packages, PostgreSQL auth, cargo-nextest, ONNX Runtime, node modules)
	scripts/provision.sh

model: ## download and verify the registry's models into MODELS_DIR (default models/): cargo xtask models fetch
	cargo xtask models fetch

ort: ## install the ONNX Runtime library into .ort/ from the PyPI wheel
	scripts/install-ort.sh

bench: ## one run: preprocessing, fp32 + int8 end to end at 1/4/16/64 clients, 1 and 2 workers; stress/reports/bench-<date>.md + .png (BENCH_SECONDS=3: quick)
	scripts/bench.sh $(ARGS)

soak: ## private stack (redis, api, 2 workers) under stress/soak.py for SOAK_MINUTES (10) (make soak ARGS="...")
	scripts/soak.sh $(ARGS)

locust: ## Locust users 1/10/50 x workers 1/2 on private stacks for LOCUST_SECONDS (60) each; report in stress/reports/locust.md (not in CI)
	scripts/locust.sh

fmt: ## format the Rust code
	cargo fmt --all

lint: ## rustfmt check and clippy with warnings as errors
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

docker: ## build the container images (docker compose build; needs a Docker engine, none runs in CI)
	docker compose build

docker-check: ## without Docker: docker-compose config, the compose-spec schema, .env.original coverage, hadolint
	scripts/docker-check.sh

k8s-check: ## validate deploy/kubernetes offline (Kubernetes + KEDA schemas, cross-references)
	.venv/bin/python deploy/kubernetes/validate.py

deny: ## cargo deny check: licenses, bans, sources, advisories (vendored RustSec snapshot, offline)
	scripts/deny-check.sh

config-docs: ## rewrite the settings tables of docs/configuration.md from the clap definitions
	UPDATE_CONFIG_DOCS=1 cargo test -p api --lib config::tests::the_settings_table
	UPDATE_CONFIG_DOCS=1 cargo test -p worker --lib cli::tests::the_settings_table
	UPDATE_CONFIG_DOCS=1 cargo test -p ui --lib config::tests::the_settings_table

openapi: ## rewrite docs/openapi.json from the code (after an intended API change)
	UPDATE_OPENAPI=1 cargo test -p api --lib openapi::tests
