# amiguard: `make help` lists the targets. Every target sets up what it needs on a fresh clone:
#   .venv      the project (pip install -e '.[dev]'), rebuilt when pyproject.toml changes
#   .venv-sam  aws-sam-cli + cfn-lint (requirements-sam.txt); they pin boto3 and pydantic exactly,
#              so they never share the project's environment
#   .venv-checkov  checkov (requirements-checkov.txt), which conflicts with aws-sam-cli: a venv of its own
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:
MAKEFLAGS += --no-builtin-rules --no-print-directory

# Python 3.13 (the Lambda runtime): python3.13 on PATH if it runs, else pyenv's 3.13.0, else any pyenv 3.13.
# A pyenv shim for a version that is not selected exists but fails to run, hence the `-c` probe.
ifndef PY313
PY313 := $(shell \
	python3.13 -c 'import sys; print(sys.executable)' 2>/dev/null \
	|| PYENV_VERSION=3.13.0 pyenv which python3.13 2>/dev/null \
	|| PYENV_VERSION="$$(pyenv versions --bare 2>/dev/null | grep -E '^3\.13(\.[0-9]+)?$$' | tail -n 1)" pyenv which python3.13 2>/dev/null \
	|| true)
endif
export PY313
PY313_DIR := $(patsubst %/,%,$(dir $(PY313)))

VENV := .venv
SAM_VENV := .venv-sam
CHECKOV_VENV := .venv-checkov
BUILD_DIR := .aws-sam/build
PYTEST_ARGS ?= -n auto

# SAM runs offline here: dummy credentials and a region keep it from looking for real ones; the python
# builder looks up `python3.13` on PATH, so the interpreter found above goes first.
SAM_ENV := env AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x \
	SAM_CLI_TELEMETRY=0 PATH="$(PY313_DIR):$$PATH"
PIP_ENV := env PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

# What `sam build` reads: a change to any of these rebuilds, nothing else does.
BUILD_INPUTS := template.yaml $(shell find layers functions -type f \
	-not -path '*/__pycache__/*' -not -name '*.pyc' -not -path '*.egg-info*' 2>/dev/null)

# Exits non-zero unless every ELF binary under argv[1] is arm64 (e_machine 183); prints what it checked.
define ARM64_ONLY_CHECK
import pathlib, sys
root = pathlib.Path(sys.argv[1])
binaries = [p for p in root.rglob("*.so*") if p.is_file() and p.read_bytes()[:4] == b"\x7fELF"]
foreign = [str(p.relative_to(root)) for p in binaries if int.from_bytes(p.read_bytes()[18:20], "little") != 183]
if foreign:
    sys.exit(f"error: layer binaries not built for arm64: {foreign}")
print(f"layer: {len(binaries)} native binaries, all aarch64:", *sorted(p.name for p in binaries))
endef
export ARM64_ONLY_CHECK

.PHONY: help
help: ## Show this help
	@echo "usage: make <target>"
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-14s %s\n", $$1, $$2}'

.PHONY: python
python:
	@if [ -z "$(PY313)" ] || ! "$(PY313)" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))'; then \
		echo "error: no Python 3.13 (PY313='$(PY313)'; tried python3.13 on PATH and pyenv's 3.13.x)." >&2; \
		echo "       Install it (e.g. 'pyenv install 3.13') or run make PY313=/path/to/python3.13." >&2; \
		exit 1; \
	fi

$(VENV)/.stamp: pyproject.toml | python
	"$(PY313)" -m venv $(VENV)
	$(PIP_ENV) $(VENV)/bin/python -m pip install --quiet -e '.[dev]'
	touch $@

$(SAM_VENV)/.stamp: requirements-sam.txt | python
	"$(PY313)" -m venv $(SAM_VENV)
	$(PIP_ENV) $(SAM_VENV)/bin/python -m pip install --quiet -r requirements-sam.txt
	touch $@

$(CHECKOV_VENV)/.stamp: requirements-checkov.txt | python
	"$(PY313)" -m venv $(CHECKOV_VENV)
	$(PIP_ENV) $(CHECKOV_VENV)/bin/python -m pip install --quiet -r requirements-checkov.txt
	touch $@

# The templates as written and as built (what `sam deploy` uploads); offline: no download of external checks.
CHECKOV_TEMPLATES := template.yaml region-forwarder.yaml
CHECKOV := $(CHECKOV_VENV)/bin/checkov --framework cloudformation --skip-download --compact --quiet

.PHONY: checkov
checkov: $(CHECKOV_VENV)/.stamp ## checkov on the templates (and the build, when there is one); skips are inline
	$(CHECKOV) $(addprefix -f ,$(CHECKOV_TEMPLATES) $(wildcard $(BUILD_DIR)/template.yaml))

.PHONY: venv
venv: $(VENV)/.stamp $(SAM_VENV)/.stamp ## Create or update both virtual environments

$(BUILD_DIR)/template.yaml: $(BUILD_INPUTS) $(SAM_VENV)/.stamp | python
	$(SAM_ENV) $(SAM_VENV)/bin/sam build --template-file template.yaml --build-dir $(BUILD_DIR) --parallel
	@# The runtime cannot write __pycache__ in /opt: ship the layer's bytecode, valid without source checks.
	"$(PY313)" -m compileall -q -j 0 --invalidation-mode unchecked-hash $(BUILD_DIR)/AmiguardLayer/python
	@# A dependency without an arm64 wheel would be compiled from source for this host: refuse that layer.
	@"$(PY313)" -c "$$ARM64_ONLY_CHECK" $(BUILD_DIR)/AmiguardLayer/python

.PHONY: build
build: $(BUILD_DIR)/template.yaml ## sam build: the layer (arm64 wheels, cp313) and the functions

.PHONY: requirements
requirements: | python ## Regenerate layers/amiguard/requirements.txt from pyproject.toml
	"$(PY313)" scripts/gen_layer_requirements.py --write

.PHONY: docs
docs: $(VENV)/.stamp ## Regenerate docs/parameters.md (template.yaml) and docs/findings.md (the finding catalogue)
	$(VENV)/bin/python scripts/gen_docs.py

.PHONY: env-json
env-json: $(VENV)/.stamp ## Regenerate env.json (every function's environment, for sam local invoke --env-vars)
	$(VENV)/bin/python scripts/gen_env_json.py

.PHONY: service-models
service-models: $(VENV)/.stamp ## Regenerate the trimmed botocore models in amiguard/aws/service_models
	$(VENV)/bin/python scripts/gen_service_models.py --write

# The HTML report's test opens the report in headless Chromium (Debian's package; installed when missing).
.PHONY: chromium
chromium:
	@command -v chromium >/dev/null || { \
		echo "installing chromium (Debian package) for the HTML report test"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; }

.PHONY: test
test: $(VENV)/.stamp $(SAM_VENV)/.stamp $(CHECKOV_VENV)/.stamp chromium ## ruff, mypy, sam build, checkov, then every test (unit, integration, infra)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(MAKE) build
	$(MAKE) checkov
	$(VENV)/bin/pytest $(PYTEST_ARGS) tests/

# The fuzz suite's depth in `make test` is the `ci` profile (tests/fuzz/conftest.py); nightly it is >= 10,000
# mutated events per function.
.PHONY: fuzz-nightly
fuzz-nightly: $(VENV)/.stamp ## Fuzz every function with >= 10,000 mutated events each (hours; not part of test)
	HYPOTHESIS_PROFILE=nightly $(VENV)/bin/pytest -p no:cacheprovider -n 2 tests/fuzz/

.PHONY: lint
lint: $(VENV)/.stamp ## ruff and mypy (strict, library only)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

.PHONY: demo
demo: $(VENV)/.stamp ## Run the whole system locally on an embedded AWS (moto); VERBOSE=1: the full timeline
	$(VENV)/bin/amiguard demo $(if $(VERBOSE),--full)

.PHONY: bench
bench: $(VENV)/.stamp ## Cold-start and handler benchmarks
	$(VENV)/bin/python scripts/bench.py

.PHONY: bench-backtest
bench-backtest: $(VENV)/.stamp ## amiguard backtest: records/s from trail files, LookupEvents time vs its 2 req/s floor
	$(VENV)/bin/python scripts/bench_backtest.py

.PHONY: bench-org
bench-org: $(VENV)/.stamp ## amiguard scan --org (20 accounts x 2 regions x 300 AMIs) vs its bucket floor and c7n-org's model
	$(VENV)/bin/python scripts/bench_org.py

C7N_VENV := .venv-c7n

$(C7N_VENV)/.stamp: | python
	"$(PY313)" -m venv $(C7N_VENV)
	$(PIP_ENV) $(C7N_VENV)/bin/python -m pip install --quiet c7n==0.9.53
	touch $@

# Five throttled amiguard runs: the spread is printed, the median run is set beside custodian's.
BENCH_SCAN_ARGS ?= --repeat 5

.PHONY: bench-scan
bench-scan: $(VENV)/.stamp $(C7N_VENV)/.stamp ## amiguard scan vs Cloud Custodian on a loopback moto server (not part of test)
	$(VENV)/bin/python scripts/bench_scan.py --c7n-venv $(C7N_VENV) $(BENCH_SCAN_ARGS)

.PHONY: validate
validate: $(SAM_VENV)/.stamp $(CHECKOV_VENV)/.stamp ## sam validate --lint, cfn-lint and checkov on template.yaml
	$(SAM_ENV) $(SAM_VENV)/bin/sam validate --lint --template-file template.yaml
	$(SAM_ENV) $(SAM_VENV)/bin/cfn-lint template.yaml
	$(MAKE) checkov

.PHONY: clean
clean: ## Remove build output and caches (keeps the virtual environments)
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache
	find . -path ./$(VENV) -prune -o -path ./$(SAM_VENV) -prune -o -path ./$(CHECKOV_VENV) -prune -o -name __pycache__ -type d -print0 | xargs -0 rm -rf

.PHONY: distclean
distclean: clean ## Also remove the virtual environments
	rm -rf $(VENV) $(SAM_VENV) $(CHECKOV_VENV)
