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

# Debian packages, installed only when missing (root, or sudo): apt-get runs only then.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
define apt_install
	@missing=""; for pkg in $(1); do \
	  dpkg-query -W -f='$${Status}' "$$pkg" 2>/dev/null | grep -q "ok installed" || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi
endef

# What the tests need: redis-server (limits and spend), chromium (the audit report is opened in
# a real browser), prometheus (the dashboard's queries and the alerts run against a real one).
SYSTEM_PACKAGES := redis-server chromium prometheus
# What the local node and the image build need (root: the node runs containerd, the kubelet
# and kube-proxy, which mount filesystems, create network namespaces, links and iptables rules,
# and manage cgroups).
NODE_PACKAGES := containerd runc containernetworking-plugins iptables conntrack nfacct buildah mmdebstrap

.PHONY: system-deps
system-deps: ## install the Debian packages tests need (redis-server, chromium, prometheus), once
	$(call apt_install,$(SYSTEM_PACKAGES))

.PHONY: node-deps
node-deps: ## install the Debian packages of the local node and the image build, once
	$(call apt_install,$(NODE_PACKAGES))

.PHONY: images
images: $(STAMP) node-deps ## build the node's images (Containerfile, demo, pause) into ~/.cache/aiguillage/images
	$(BIN)/python -m aiguillage.devtools.images

# What the local node needs, prepared only where one can run (Linux, root); elsewhere the node
# tests skip and `make dev` says why and uses its process mode.
.PHONY: node-prereqs
node-prereqs:
	@if [ "$$(uname -s)" = Linux ] && [ "$$(id -u)" = 0 ]; then \
	  $(MAKE) --no-print-directory node-deps images; \
	else echo "no local node here (it needs Linux and root): its tests skip, make dev uses processes"; fi

.PHONY: k8s
k8s: ## build etcd, the control plane, kubelet, kube-proxy, CoreDNS, kubectl and helm into ~/.cache/aiguillage (once)
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
test-e2e: $(STAMP) k8s system-deps node-prereqs ## end-to-end tests on a real kube-apiserver and the local node
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
dev: $(STAMP) k8s ## run the product locally until Ctrl-C (on the local node where one can run)
	@$(MAKE) --no-print-directory node-prereqs || echo "[dev] preparing the local node failed (see above)"
	AIGUILLAGE_K8S_BIN="$$(cat $(K8S_BIN_FILE))" $(BIN)/python -m aiguillage.devtools.dev

# The benchmark's peers and feature services come from Debian: Node.js + npm (the Portkey
# gateway) and redis-server (the budget check). Installed only when missing; if apt cannot,
# the benchmark still runs and says which rows it could not measure.
BENCH_DEBS := nodejs:node npm:npm redis-server:redis-server

.PHONY: bench-deps
bench-deps: ## Node.js, npm and redis-server from Debian, if missing (for the benchmark's peers)
	@missing=""; for pair in $(BENCH_DEBS); do \
	  command -v "$${pair#*:}" >/dev/null 2>&1 || missing="$$missing $${pair%%:*}"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing from Debian:$$missing"; \
	  { apt-get update -q && apt-get install -y -q --no-install-recommends $$missing; } \
	    || echo "warning: could not install$$missing; the benchmark will skip what needs them"; \
	fi

.PHONY: bench
bench: $(STAMP) k8s bench-deps ## side-by-side benchmarks (~12 min) -> docs/benchmarks.md, docs/bench/*.png, bench/results.jsonl
	AIGUILLAGE_K8S_BIN="$$(cat $(K8S_BIN_FILE))" $(BIN)/python -m aiguillage.devtools.bench

.PHONY: bench-long
bench-long: $(STAMP) k8s bench-deps ## make bench with a long round of 1 M requests (~25 min)
	AIGUILLAGE_K8S_BIN="$$(cat $(K8S_BIN_FILE))" $(BIN)/python -m aiguillage.devtools.bench --long

.PHONY: bench-quick
bench-quick: $(STAMP) k8s bench-deps ## the same benchmarks with few requests (< 5 min) -> bench/out/quick/
	AIGUILLAGE_K8S_BIN="$$(cat $(K8S_BIN_FILE))" $(BIN)/python -m aiguillage.devtools.bench --quick

.PHONY: bench-ab
bench-ab: $(STAMP) ## BEFORE=<rev> [AFTER=<rev>]: interleaved A/B of the sidecar, CPU/request, py-spy profiles
	@test -n "$(BEFORE)" || { echo "usage: make bench-ab BEFORE=<git revision> [AFTER=<git revision>]"; exit 2; }
	$(BIN)/python -m aiguillage.devtools.bench.ab --before "$(BEFORE)" $(if $(AFTER),--after "$(AFTER)")

.PHONY: bench-imports
bench-imports: $(STAMP) ## the sidecar's idle memory, import by import
	$(BIN)/python -m aiguillage.devtools.bench.imports

REQUESTS ?= 1000000
.PHONY: soak
soak: $(STAMP) ## a million mixed requests with faults through one sidecar -> docs/soak.md (REQUESTS=N)
	$(BIN)/python -m aiguillage.devtools.bench.soak --requests $(REQUESTS) --report docs/soak.md

.PHONY: clean
clean: ## remove the venv and caches inside the repo (not the Go-built binaries)
	rm -rf $(VENV) $(COMPAT_VENV) .compat .mypy_cache .ruff_cache .pytest_cache
