# The two commands: `make run` (whole system on the embedded default) and `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin

# Exact versions: requirements-dev.lock (this venv: runtime + extras embedded, dev) and
# requirements.lock (runtime only: the Docker image). Both come from pyproject.toml via `make lock`.
DEV_LOCK     := requirements-dev.lock
RUNTIME_LOCK := requirements.lock
PIP_TOOLS    ?= pip-tools==7.6.2
LOCK_TOOLS   := $(VENV)/.lock-tools
LOCK_ARGS    ?=
PIP_COMPILE   = CUSTOM_COMPILE_COMMAND="make lock" $(LOCK_TOOLS)/bin/pip-compile --quiet \
	--generate-hashes --strip-extras --no-emit-index-url --no-emit-find-links

.PHONY: run test acceptance install browser lock schemas bench clean

run: install ## create the venv, install, start broker + api + streams, feed the simulator
	$(BIN)/millrace up

# Three pytest-xdist workers (each with its own session broker and PostgreSQL): most integration
# tests wait on processes, so three overlap well even on two cores with one of them busy.
TEST_WORKERS ?= 3

test: install browser ## the whole test suite (real broker, real PostgreSQL, real HTTP, a real browser)
	$(BIN)/pytest -n $(TEST_WORKERS) --dist worksteal

# The long runs on whole real data sets (the Norway file's 1.35 M events), left out of `make test`.
acceptance: install ## acceptance runs: whole-file replays (minutes; needs ../shared/data)
	$(BIN)/pytest -m acceptance --timeout=3600 -s

install: $(VENV)/.installed

# Headless Chromium and its driver from Debian's packages, for the dashboard's browser test
# (tests/test_dashboard_browser.py). Nothing to do when both are there; where they cannot be
# installed (not root, no apt-get) it says so and the test skips naming the packages.
BROWSER_PACKAGES := chromium chromium-driver
browser: ## headless Chromium + chromedriver (Debian) for the dashboard's browser test
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			$(BROWSER_PACKAGES) >/dev/null || echo "could not install $(BROWSER_PACKAGES)"; \
	else echo "the dashboard's browser test needs: apt-get install $(BROWSER_PACKAGES)"; fi

# The locked versions first (hash-checked), then the project itself without dependencies.
$(VENV)/.installed: pyproject.toml $(DEV_LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --require-hashes -r $(DEV_LOCK)
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

# Regenerate both locks from pyproject.toml. Pins already in the locks are kept while they still
# satisfy pyproject.toml; `make lock LOCK_ARGS=--upgrade` (or `--upgrade-package NAME`) moves them.
# The runtime lock starts from the dev lock, so the image and the venv share every version. A first
# run fetches every file's hash from PyPI (minutes); pip-tools caches them.
lock: ## regenerate requirements-dev.lock and requirements.lock (pip-compile, hashes)
	test -x $(LOCK_TOOLS)/bin/pip-compile || \
		{ $(PYTHON) -m venv $(LOCK_TOOLS) && $(LOCK_TOOLS)/bin/pip install --quiet $(PIP_TOOLS); }
	cp $(DEV_LOCK) $(DEV_LOCK).tmp
	$(PIP_COMPILE) $(LOCK_ARGS) --extra embedded --extra dev -o $(DEV_LOCK).tmp pyproject.toml
	cp $(DEV_LOCK).tmp $(RUNTIME_LOCK).tmp
	$(PIP_COMPILE) -o $(RUNTIME_LOCK).tmp pyproject.toml
	@# replace a lock only when it changed, so that an unchanged lock reinstalls no venv
	for f in $(DEV_LOCK) $(RUNTIME_LOCK); do \
		if cmp -s $$f.tmp $$f; then rm $$f.tmp; else mv $$f.tmp $$f && echo "$$f updated"; fi; \
	done

schemas: install ## regenerate schemas/*.schema.json from the pydantic models
	$(BIN)/millrace schemas

clean:
	rm -rf $(VENV) var .pytest_cache
