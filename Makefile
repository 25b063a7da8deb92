# Two commands matter: `make run` and `make test`. Everything else is for developers.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV := $(BIN)/uv
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: run test lint typecheck pytest bench bench-tenants bench-ledger bench-rules bench-mall bench-webhooks migrate clean

$(UV):
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check uv

# Re-sync whenever the lock or a member's pyproject changes.
$(VENV)/.synced: $(UV) uv.lock pyproject.toml platform/pyproject.toml tenants/pyproject.toml webhooks/pyproject.toml
	$(UV) sync --frozen --all-packages --python $(BIN)/python
	@touch $@

run: $(VENV)/.synced
	$(BIN)/pointsmall dev

test: $(VENV)/.synced lint typecheck pytest

lint: $(VENV)/.synced
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.synced
	$(BIN)/mypy

pytest: $(VENV)/.synced
	$(BIN)/pytest $(PYTEST_ARGS)

migrate: $(VENV)/.synced
	$(BIN)/pointsmall migrate

bench: bench-tenants bench-ledger bench-rules bench-mall bench-webhooks

bench-tenants: $(VENV)/.synced
	$(BIN)/python -m bench.tenants

clean:
	rm -rf $(VENV) .pointsmall .mypy_cache .pytest_cache .ruff_cache

bench-ledger: $(VENV)/.synced
	$(BIN)/python -m bench.ledger

bench-rules: $(VENV)/.synced
	$(BIN)/python -m bench.rules

bench-mall: $(VENV)/.synced
	$(BIN)/python -m bench.mall

bench-webhooks: $(VENV)/.synced
	$(BIN)/python -m bench.webhooks
