# The two commands: `make run` (whole system on the embedded default) and `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: run test install schemas bench clean

run: install ## create the venv, install, start broker + api + streams, feed the simulator
	$(BIN)/millrace up

test: install ## the whole test suite (real broker, real PostgreSQL, real HTTP)
	$(BIN)/pytest

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[embedded,dev]'
	touch $@

schemas: install ## regenerate schemas/*.schema.json from the pydantic models
	$(BIN)/millrace schemas

clean:
	rm -rf $(VENV) var .pytest_cache
