# Aiguillage — one entry point for building, testing and running locally.
# `make test` and `make dev` install everything they need from nothing.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
K8S_BIN_FILE := $(VENV)/.k8s-bin

.PHONY: help
help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $@

.PHONY: venv
venv: $(STAMP) ## create .venv with the project and its dev tools

.PHONY: k8s
k8s: ## build kube-apiserver, etcd, kubectl and helm into ~/.cache/aiguillage (once)
	hack/build-k8s.sh > $(K8S_BIN_FILE).tmp && mv $(K8S_BIN_FILE).tmp $(K8S_BIN_FILE)

.PHONY: crds
crds: $(STAMP) ## regenerate crds/ and the chart's CRDs from the pydantic models
	$(BIN)/aiguillage crds --out crds/
	$(BIN)/aiguillage crds --out charts/aiguillage/templates/crds/ --helm

.PHONY: lint
lint: $(STAMP) ## ruff, ruff format, mypy --strict, import-linter, CRD drift
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python -m aiguillage.devtools.crd_drift

.PHONY: test-unit
test-unit: $(STAMP) ## unit and sidecar integration tests (no cluster)
	$(BIN)/pytest -m 'not e2e' -q

.PHONY: test-e2e
test-e2e: $(STAMP) k8s ## end-to-end tests on a real kube-apiserver
	AIGUILLAGE_K8S_BIN="$$(cat $(K8S_BIN_FILE))" $(BIN)/pytest -m e2e -q

.PHONY: test
test: lint test-unit test-e2e ## everything CI runs

.PHONY: dev
dev: $(STAMP) k8s ## run the product locally until Ctrl-C
	AIGUILLAGE_K8S_BIN="$$(cat $(K8S_BIN_FILE))" $(BIN)/python -m aiguillage.devtools.dev

.PHONY: bench
bench: $(STAMP) k8s ## side-by-side benchmarks -> docs/benchmarks.md, docs/bench/*.png, bench/results.jsonl
	AIGUILLAGE_K8S_BIN="$$(cat $(K8S_BIN_FILE))" $(BIN)/python -m aiguillage.devtools.bench

.PHONY: bench-quick
bench-quick: $(STAMP) k8s ## the same benchmarks with few requests (< 3 min) -> bench/out/quick/
	AIGUILLAGE_K8S_BIN="$$(cat $(K8S_BIN_FILE))" $(BIN)/python -m aiguillage.devtools.bench --quick

.PHONY: clean
clean: ## remove the venv and caches inside the repo (not the Go-built binaries)
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
