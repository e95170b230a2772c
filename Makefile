# The two commands of the README: `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck imports unit venv newman bench clean

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

test: lint typecheck imports unit

# Not part of `make test`: micro, HTTP and memory figures against the floor, a Litestar
# hello-world and the seed's approach, as one table (docs/PERFORMANCE.md). Load from wrk when it
# is installed (Debian: apt-get install wrk), else a bounded Python generator. Exits 1 when a
# target is missed.
bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .import_linter_cache \
		$(NEWMAN_DIR)/node_modules
