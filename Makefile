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
	@echo "Registry at http://$(HOST):$(PORT)  (Ctrl-C to stop). Try:"
	@echo "  curl -s http://$(HOST):$(PORT)/api/models/demo/tiny-phantom | python3 -m json.tool"
	@echo "  $(PY) -c \"from huggingface_hub import snapshot_download; print(snapshot_download('demo/tiny-phantom', endpoint='http://$(HOST):$(PORT)'))\""
	@echo "  open http://$(HOST):$(PORT)/ in a browser"
	@echo ""
	REGISTRY_SESSION_COOKIE_SECURE=false REGISTRY_PUBLIC_URL=http://$(HOST):$(PORT) \
		$(VENV)/bin/registry-server serve --host $(HOST) --port $(PORT)

browser:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)

test: install browser
	$(VENV)/bin/pytest -q -p no:cacheprovider

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
