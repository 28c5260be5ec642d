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

COMPAT_VENV := .venv-compat
COMPAT_STAMP := $(COMPAT_VENV)/.installed
# Fresh results of the compat suite; docs/compatibility.{json,md} are rendered from them.
COMPAT_RESULTS := .compat/results.json

$(COMPAT_STAMP): pyproject.toml constraints-compat.txt
	$(PYTHON) -m venv $(COMPAT_VENV)
	$(COMPAT_VENV)/bin/pip install -q --upgrade pip
	$(COMPAT_VENV)/bin/pip install -q -c constraints-compat.txt -e '.[compat]'
	touch $@

# Debian packages the tests need, installed only when missing (root, or sudo).
SYSTEM_PACKAGES := redis-server
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: system-deps
system-deps: ## install the Debian packages tests need (redis-server), once
	@missing=""; for pkg in $(SYSTEM_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' "$$pkg" 2>/dev/null | grep -q "ok installed" || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

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
test-unit: $(STAMP) system-deps ## unit and sidecar integration tests (no cluster)
	$(BIN)/pytest -m 'not e2e and not fuzz' -q

.PHONY: test-fuzz
test-fuzz: $(STAMP) ## hypothesis fuzz tier: hostile requests (and upstreams) against a running sidecar
	$(BIN)/pytest -m fuzz -q

.PHONY: test-e2e
test-e2e: $(STAMP) k8s system-deps ## end-to-end tests on a real kube-apiserver
	AIGUILLAGE_K8S_BIN="$$(cat $(K8S_BIN_FILE))" $(BIN)/pytest -m e2e -q

.PHONY: test-compat
test-compat: $(COMPAT_STAMP) $(STAMP) ## agent frameworks x provider formats through a sidecar (own venv), matrix drift check
	rm -f $(COMPAT_RESULTS)
	AIGUILLAGE_COMPAT_RESULTS=$(COMPAT_RESULTS) $(COMPAT_VENV)/bin/pytest tests/compat -q -p no:cacheprovider
	$(BIN)/python -m aiguillage.devtools.compatdoc --check $(COMPAT_RESULTS)

.PHONY: compat-doc
compat-doc: $(STAMP) ## rewrite docs/compatibility.{json,md} from the last test-compat run
	$(BIN)/python -m aiguillage.devtools.compatdoc --write $(COMPAT_RESULTS)

.PHONY: test
test: lint test-unit test-fuzz test-compat test-e2e ## everything CI runs

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
	rm -rf $(VENV) $(COMPAT_VENV) .compat .mypy_cache .ruff_cache .pytest_cache
