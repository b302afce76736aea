# phigate: `make run` sets up and runs the gateway on its embedded defaults;
# `make test` installs the test peers (Debian packages) and runs the tests;
# `make dist` builds the sdist and wheel into dist/.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test system-deps dist clean

$(BIN)/phigate: pyproject.toml
	$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); \
	  echo "'$(PYTHON) -m venv' failed: on Debian/Ubuntu install python3-venv" >&2; exit 1; }
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

run: $(BIN)/phigate
	$(BIN)/phigate run

system-deps:
	.ci/system-deps

test: system-deps $(BIN)/phigate
	PHIGATE_REQUIRE_PEERS=1 $(BIN)/python -m pytest

# The sdist and wheel operators install (docs/operations.md), in dist/.
dist: $(BIN)/phigate
	$(BIN)/python -m build --outdir dist

clean:
	rm -rf $(VENV) var test-output dist
