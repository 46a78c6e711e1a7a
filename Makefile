# Two entry points: `make reproduce` and `make test`. Each creates .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PERCEPTIONGAP_SHARED ?= ../shared
export PERCEPTIONGAP_SHARED
# Where a checkout sits beside the project's shared/ folder, use its copy of the release;
# elsewhere `perceptiongap reproduce` finds it in the user cache or downloads it.
PERCEPTIONGAP_DATA ?= $(wildcard $(PERCEPTIONGAP_SHARED)/nyu-release)
ifneq ($(PERCEPTIONGAP_DATA),)
export PERCEPTIONGAP_DATA
endif

.PHONY: reproduce test install benchmarks clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "perceptiongap needs Python >= 3.11"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/.installed

reproduce: $(BIN)/.installed
	$(BIN)/perceptiongap reproduce $(ARGS)

test: $(BIN)/.installed
	$(BIN)/python -m pytest -q $(ARGS)

benchmarks: $(BIN)/.installed
	for script in benchmarks/*.py; do $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) perceptiongap-results
