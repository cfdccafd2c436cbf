# One entry point for people and CI. `make demo` and `make check` do all set-up themselves.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo check lint typecheck test test-unit test-integration format schemas broker-start broker-stop clean tools promtool kustomize kubeconform podsecurity image-venv jaeger vegeta docs-metrics

## The test tools one at a time, each a step of .ci/setup.sh (below; cached after the first run):
##   promtool     Debian's `prometheus` package (apt-get, as root), else built with `go install`
##   kustomize    `kubectl kustomize` where kubectl is installed, else built with `go install`
##   kubeconform  strict schema validation of the overlays, built with Go
##   podsecurity  the Pod Security checker (tests/podsecurity, k8s.io/pod-security-admission)
##   image-venv   the Dockerfile's build stage replayed into a venv (tests/image_venv.py: the lock,
##                its hashes, no pip) for the Kubeflow launcher tests
##   jaeger       Jaeger v2 for the tracing end-to-end test (about 4 min of Go on 2 cores)
##   vegeta       open-loop HTTP load for the gateway overload test
promtool kustomize kubeconform podsecurity image-venv jaeger vegeta:
	@.ci/setup.sh $@

## everything `make test` needs, prepared concurrently (.ci/setup.sh: the Go builds on the CPU
## while the downloads of the venvs, the jars and the CRDs wait on the network; progress on the
## way, each failing step named with its log)
tools:
	@.ci/setup.sh

## the venv: uv (from PyPI, into the venv) installs the package, its dev extra and an up-to-date
## pip (pip-audit audits it too), with the image's versions (requirements.lock, without its
## hashes, as constraints): about 8 CPU seconds cold against about 60 with pip, most of which
## went on compiling every installed module's bytecode (Python compiles what is imported
## instead). pip installs it all where uv cannot be installed.
$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@sed -e '/--hash=/d' -e 's/ *\\$$//' requirements.lock >$(VENV)/constraints.txt
	@if $(BIN)/python -m pip install --quiet --disable-pip-version-check 'uv>=0.5'; then \
	  echo "$(BIN)/uv pip install -e '.[dev]'"; \
	  $(BIN)/uv pip install --quiet --python $(BIN)/python -c $(VENV)/constraints.txt \
	    --upgrade-package pip pip -e '.[dev]'; \
	else \
	  echo "uv could not be installed: installing with pip"; \
	  $(BIN)/python -m pip install --quiet --upgrade pip \
	    && $(BIN)/python -m pip install --quiet -c $(VENV)/constraints.txt -e '.[dev]'; \
	fi
	@touch $(STAMP)

install: $(STAMP)

## the demo: broker, topics, traffic, a summary
demo: $(STAMP)
	$(BIN)/scorestream demo

## every check: lint, format, types, schemas, tests (starts the broker if needed). The tools come
## first: .ci/setup.sh makes the venv in one of its lanes while Jaeger compiles in another, so a
## cold run does not install the venv alone before it
check: tools lint typecheck test

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

## the suite on two processes per core, whole files per process (module fixtures start their
## stacks once), the longest files first (tests/conftest.py), the 15 slowest tests listed at the
## end. Two per core because the tests spend much of their time waiting on the broker and on the
## processes they start: on 2 cores, 2 workers took 875 s, 4 took 564-600 s, 6 took 584 s with
## the CPU saturated (docs/development.md). PYTEST_WORKERS=0 runs it in one process
PYTEST_WORKERS ?= $(shell echo $$(( $$(nproc 2>/dev/null || echo 1) * 2 )))
XDIST := $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder)

test: $(STAMP) tools
	@$(BIN)/pytest $(XDIST) --durations=15 $(PYTEST_ARGS) || { rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests" >&2; fi; exit $$rc; }

test-unit: $(STAMP)
	@.ci/setup.sh promtool kustomize kubeconform podsecurity image-venv
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

## known vulnerabilities in the installed dependencies: pip-audit + the dated allow-list
## .pip-audit-allowlist (docs/security.md). Needs PyPI's JSON API: exit 3 = incomplete (offline)
.PHONY: audit
audit: $(STAMP)
	$(BIN)/python -m scorestream.dev.dependency_audit

docs-metrics: $(STAMP)
	$(BIN)/python -m scorestream.dev.metrics_catalog

## docs/configuration.md from the settings classes (tests/unit/test_config_reference.py)
.PHONY: docs-config
docs-config: $(STAMP)
	$(BIN)/python -m scorestream.dev.config_reference

test-integration: $(STAMP)
	$(BIN)/pytest tests/integration tests/e2e $(PYTEST_ARGS)

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

schemas: $(STAMP)
	$(BIN)/scorestream schemas generate

broker-start: $(STAMP)
	$(BIN)/scorestream broker start

broker-stop: $(STAMP)
	$(BIN)/scorestream broker stop

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build *.egg-info
