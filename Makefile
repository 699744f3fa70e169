# Entry points of the project. `make help` lists them.
SHELL := /bin/bash
ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help run test model ort bench soak fmt lint docker openapi

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-7s %s\n", $$1, $$2}'

run: ## start redis (if needed), api, worker and ui locally; Ctrl-C stops them
	scripts/run-stack.sh

test: ## every check and test (what .ci/run runs)
	scripts/test.sh

model: ## fetch and verify the registry's models into MODELS_DIR (default models/)
	scripts/fetch-models.sh

ort: ## install the ONNX Runtime library into .ort/ from the PyPI wheel
	scripts/install-ort.sh

bench: ## raw ort throughput vs end-to-end throughput (make bench ARGS="...")
	scripts/bench.sh $(ARGS)

soak: ## private stack (redis, api, 2 workers) under stress/soak.py for SOAK_MINUTES (10) (make soak ARGS="...")
	scripts/soak.sh $(ARGS)

fmt: ## format the Rust code
	cargo fmt --all

lint: ## rustfmt check and clippy with warnings as errors
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

docker: ## build the container images (docker compose build)
	docker compose build

openapi: ## rewrite docs/openapi.json from the code (after an intended API change)
	UPDATE_OPENAPI=1 cargo test -p api --lib openapi::tests
