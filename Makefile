# endpointgen: every target that needs the virtualenv creates it when missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
ENVS   ?=
ENV_FLAGS := $(foreach e,$(ENVS),--env $(e))
# CRD schemas for the rendered Istio, Flux and CSI objects: ../shared/crd-schemas when present,
# else ENDPOINTGEN_SCHEMA_LOCATION or the repo's schema/crds (see README, "Validating manifests").
CRD_SCHEMAS ?= $(wildcard ../shared/crd-schemas)
SCHEMA_FLAGS := $(foreach s,$(CRD_SCHEMAS),--schema-location $(s))

.PHONY: install validate render check test golden clean help

help:
	@echo "make install   create .venv and install endpointgen with its test extras"
	@echo "make validate  validate every environment and endpoint spec"
	@echo "make render    validate and render rendered/<env> and clusters/<env>"
	@echo "make check     fail when rendered/ or clusters/ are not current"
	@echo "make test      run the test suite"
	@echo "make golden    refresh the golden files of the render tests"
	@echo "make bench     benchmark render, check and validate at 1,000 endpoints (BENCH_ARGS=...)"

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

validate: $(STAMP)
	$(BIN)/endpointgen validate --summary $(SCHEMA_FLAGS) $(ENV_FLAGS)
	$(BIN)/endpointgen validate --rendered --summary $(SCHEMA_FLAGS) $(ENV_FLAGS)

render: $(STAMP)
	$(BIN)/endpointgen render $(ENV_FLAGS)

check: $(STAMP)
	$(BIN)/endpointgen check $(ENV_FLAGS)

golden: $(STAMP)
	ENDPOINTGEN_UPDATE_GOLDEN=1 $(BIN)/pytest -q tests/test_golden.py

test: $(STAMP)
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis *.egg-info

# Benchmark (issue 6): synthetic repo, timed CLI steps and anchors; writes bench/results.json.
# e.g. make bench BENCH_ARGS="--quick" or BENCH_ARGS="--endpoints 1000 --runs 1".
.PHONY: bench
bench: $(STAMP)
	$(BIN)/python bench/run.py $(BENCH_ARGS)
