# endpointgen: every target that needs the virtualenv creates it when missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
ENVS   ?=
ENV_FLAGS := $(foreach e,$(ENVS),--env $(e))
# CRD schemas for the rendered custom resources: the repo's vendored schema/crds unless CRD_SCHEMAS
# (or ENDPOINTGEN_SCHEMA_LOCATION) names other locations (see README, "Validating manifests").
CRD_SCHEMAS ?=
SCHEMA_FLAGS := $(foreach s,$(CRD_SCHEMAS),--schema-location $(s))

.PHONY: install validate render check test e2e tools system-packages golden checkov crds clean help

help:
	@echo "make install   create .venv and install endpointgen with its test extras"
	@echo "make validate  validate every environment and endpoint spec"
	@echo "make render    validate and render rendered/<env> and clusters/<env>"
	@echo "make check     fail when rendered/ or clusters/ are not current"
	@echo "make test      run the test suite (builds the pinned Go tools first: make tools)"
	@echo "make e2e       run only the data-plane tests (istiod, Envoy, OPA-Envoy, the inference server)"
	@echo "make tools     build the pinned Go tools (tools/) into ~/.cache/endpointgen/tools, once per version"
	@echo "make golden    refresh the golden files of the render tests"
	@echo "make checkov   run checkov (its own venv) on rendered/ and on tests/fixtures/every-field, rendered"
	@echo "make crds      refresh schema/crds from a CRD schema catalog (CATALOG=folder or template)"
	@echo "make bench     benchmark render, check and validate at 1,000 endpoints (BENCH_ARGS=...)"

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

validate: $(STAMP)
	$(BIN)/endpointgen tools --build kubeconform
	$(BIN)/endpointgen validate --summary $(SCHEMA_FLAGS) $(ENV_FLAGS)
	$(BIN)/endpointgen validate --rendered --engine both --summary $(SCHEMA_FLAGS) $(ENV_FLAGS)

render: $(STAMP)
	$(BIN)/endpointgen render $(ENV_FLAGS)

check: $(STAMP)
	$(BIN)/endpointgen check $(ENV_FLAGS)

golden: $(STAMP)
	ENDPOINTGEN_UPDATE_GOLDEN=1 $(BIN)/pytest -q tests/test_golden.py

test: $(STAMP) tools
	$(BIN)/pytest -q

# The data-plane tests alone (tests/dataplane); their last line reads "data-plane: N passed, M failed".
e2e: $(STAMP) tools
	$(BIN)/pytest -q tests/dataplane

# The pinned Go tools (tools/: kubeconform, Istio's pilot-discovery, pilot-agent and meshlab, OPA-Envoy and opa),
# built from the Go module proxy once per version (endpointgen tools lists them), and what the tests run
# besides Python packages.
tools: $(STAMP) system-packages
	$(BIN)/endpointgen tools --build

# promtool (Debian prometheus) evaluates the autoscaling PromQL; iptables and iproute2 build the data-plane
# tests' pods (istio-init's rules, network namespaces); Go builds the tools. Installed with apt when missing
# and root, else named.
SYSTEM_COMMANDS := promtool:prometheus iptables:iptables ip:iproute2 nsenter:util-linux
system-packages:
	@missing=""; for pair in $(SYSTEM_COMMANDS); do command -v $${pair%%:*} >/dev/null || missing="$$missing $${pair#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	  else echo "make test needs the Debian packages:$$missing" >&2; exit 2; fi; fi
	@command -v go >/dev/null || { echo "make tools needs the Go toolchain (Go 1.26 or newer)" >&2; exit 2; }

# checkov, the Kubernetes policy suite, in a venv of its own (its pins are not ours), on the committed output
# and on a temporary render of tests/fixtures/every-field (one run each: checkov 3.3 given two --directory
# options scans the first twice). Skips and their reasons: .checkov.yaml.
CHECKOV_VENV  := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed
CHECKOV_VERSION ?= 3.3.30

$(CHECKOV_STAMP):
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/pip install --quiet 'checkov==$(CHECKOV_VERSION)'
	touch $@

checkov: $(STAMP) $(CHECKOV_STAMP)
	@set -e; work=$$(mktemp -d); trap 'rm -rf "$$work"' EXIT; \
	cp -R tests/fixtures/every-field/. "$$work"; \
	$(BIN)/endpointgen --root "$$work" render --quiet; \
	$(CHECKOV_VENV)/bin/checkov --config-file .checkov.yaml --directory rendered; \
	$(CHECKOV_VENV)/bin/checkov --config-file .checkov.yaml --directory "$$work/rendered"

# Refresh the vendored CRD schemas, e.g. make crds CATALOG=../CRDs-catalog (a folder or kubeconform template).
crds: $(STAMP)
	@test -n "$(CATALOG)" || { echo "make crds needs CATALOG=<folder or template of a CRD schema catalog>" >&2; exit 2; }
	$(BIN)/endpointgen vendor-schemas --from '$(CATALOG)'

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) .pytest_cache .hypothesis *.egg-info

# Benchmark (issue 6): synthetic repo, timed CLI steps and anchors; writes bench/results.json.
# e.g. make bench BENCH_ARGS="--quick" or BENCH_ARGS="--endpoints 1000 --runs 1".
.PHONY: bench
bench: $(STAMP)
	$(BIN)/python bench/run.py $(BENCH_ARGS)
