# One entry point for people and CI. `make demo` and `make check` do all set-up themselves.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo check lint typecheck test test-unit test-integration format schemas broker-start broker-stop clean tools promtool kustomize kubeconform podsecurity image-venv jaeger vegeta docs-metrics

## promtool for the alert-rule and dashboard tests: Debian's `prometheus` package (apt-get, seconds;
## as root), else built once with `go install` (~10 min cold) and cached in ~/.cache/scorestream/bin
promtool:
	@.ci/promtool.sh >/dev/null

## kustomize for the k8s/ overlay tests: `kubectl kustomize` where kubectl is installed, else
## built once with `go install` and cached the same way
kustomize:
	@.ci/kustomize.sh >/dev/null

## kubeconform (strict schema validation of the overlays): `go install`, ~15 s cold, cached
kubeconform:
	@.ci/kubeconform.sh >/dev/null

## the Pod Security checker (tests/podsecurity, k8s.io/pod-security-admission): `go build`,
## about a minute cold, cached
podsecurity:
	@.ci/podsecurity.sh >/dev/null

## the Dockerfile's build stage replayed into a venv (tests/image_venv.py: the lock, its hashes,
## no pip) for the Kubeflow launcher tests; about a minute cold (PyPI downloads), cached
image-venv: $(STAMP)
	@$(BIN)/python -c "from tests.image_venv import image_venv; image_venv()"

## Jaeger v2 for the tracing end-to-end test: built once with Go (about 4 min on 2 cores, without
## the compiler's optimisations), cached the same way
jaeger:
	@.ci/jaeger.sh >/dev/null

## vegeta (open-loop HTTP load) for the gateway overload test, cached the same way
vegeta:
	@.ci/vegeta.sh >/dev/null

## everything `make test` needs, prepared concurrently (.ci/setup.sh: the Go builds on the CPU
## while the downloads of the venvs, the jars and the CRDs wait on the network; progress on the
## way, each failing step named with its log)
tools:
	@.ci/setup.sh

## the venv: uv (from PyPI, into the venv) installs the package, its dev extra and an up-to-date
## pip (pip-audit audits it too), with the image's versions (requirements.lock, without its hashes, as constraints):
## about 8 CPU seconds cold against about 60 with pip, most of which went on compiling every
## installed module's bytecode (Python compiles what is imported instead). pip installs it all
## where uv cannot be installed.
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

## the suite on 2 processes, whole files per process (module fixtures start their stacks once),
## the 15 slowest tests listed at the end;
## PYTEST_WORKERS=0 runs it in one process
PYTEST_WORKERS ?= 2
XDIST := $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS) --dist loadfile)

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
