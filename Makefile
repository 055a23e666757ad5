# The two commands: `make run` (serve the registry with demo content) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTHON ?= python3
HOST ?= 127.0.0.1
PORT ?= 8000
export REGISTRY_INSTANCE_PATH ?= $(CURDIR)/instance

.PHONY: install run test lint format screenshots demo browser clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# The CPU build of torch first, so the project's torch range is already satisfied.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(VENV)/bin/registry-server db upgrade
	$(VENV)/bin/registry-server seed-demo
	@echo ""
	@echo "Registry at http://$(HOST):$(PORT)  (Ctrl-C to stop). In another terminal, in this folder:"
	@echo "  export REGISTRY_URL=http://$(HOST):$(PORT)     # where registry-client looks"
	@echo "  $(VENV)/bin/registry-client info demo/tiny-phantom"
	@echo "  $(VENV)/bin/registry-client pull demo/tiny-phantom"
	@echo "  $(VENV)/bin/registry-client generate demo/tiny-phantom \"small left pleural effusion\" -n 2 --steps 4"
	@echo "An account: http://$(HOST):$(PORT)/register (mail lands in $(REGISTRY_INSTANCE_PATH)/outbox/),"
	@echo "  then $(VENV)/bin/registry-client login --email YOU@EXAMPLE.ORG"
	@echo "An admin (for the review queues): $(VENV)/bin/registry-server create-admin ADMIN@EXAMPLE.ORG"
	@echo "Stock tools: HF_ENDPOINT=http://$(HOST):$(PORT) $(VENV)/bin/hf download demo/tiny-phantom"
	@echo ""
	REGISTRY_SESSION_COOKIE_SECURE=false REGISTRY_PUBLIC_URL=http://$(HOST):$(PORT) \
		$(VENV)/bin/registry-server serve --host $(HOST) --port $(PORT)

browser:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)

test: install browser
	$(VENV)/bin/pytest -q -p no:cacheprovider --durations=30

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

screenshots: install browser
	$(PY) -m tests.web.screenshots

demo: install
	$(PY) -m tests.e2e.story

clean:
	rm -rf $(VENV) instance .pytest_cache .ruff_cache
