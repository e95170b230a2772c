# The two commands of the README: `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck imports unit venv newman bench scaling clean sysdeps image image-clean

# The venv is (re)built when missing or older than pyproject.toml or the lock. The runtime
# closure is installed exactly as the image ships it (deploy/requirements.lock), so the tests
# run on the image's versions. The bench extra (FastAPI, PyJWT: the seed-style baseline) is for
# `make bench` and its smoke test; it is not in the image.
$(STAMP): pyproject.toml deploy/requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test,bench]' \
		--requirement deploy/requirements.lock
	@touch $(STAMP)

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

# System packages the tests need beyond Python and npm, as command=Debian package: buildah,
# podman, runc and mmdebstrap build and run the image (`make image`, tests/image); chromium and
# chromium-driver drive the browser test. As root with apt, whatever is missing is installed;
# anywhere else one line names it and the target fails, so `make test` fails instead of skipping.
SYSDEPS := buildah=buildah podman=podman runc=runc mmdebstrap=mmdebstrap \
	chromium=chromium chromedriver=chromium-driver

sysdeps:
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

run: $(STAMP)
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
		$(NEWMAN_DIR)/node_modules
