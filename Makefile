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

# The tested versions of every dependency (see constraints.txt); `make install CONSTRAINTS=` takes the newest
# versions that pyproject.toml allows instead.
CONSTRAINTS ?= constraints.txt

.PHONY: reproduce test install versions constraints benchmarks clean

$(BIN)/.installed: pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "perceptiongap needs Python >= 3.11"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]' $(if $(CONSTRAINTS),-c $(CONSTRAINTS))
	touch $@

install: $(BIN)/.installed

reproduce: $(BIN)/.installed
	$(BIN)/perceptiongap reproduce $(ARGS)

# Test files are spread over TEST_WORKERS processes (pytest-xdist; a file's tests stay on one process so its
# fixtures are built once); TEST_WORKERS=0 runs everything in this process.
TEST_WORKERS ?= 2
test: $(BIN)/.installed
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile $(ARGS)

# What the environment resolved to: Python and every installed distribution with its version.
versions: $(BIN)/.installed
	@$(BIN)/python --version
	@$(BIN)/python -m pip list --disable-pip-version-check --exclude-editable

# Rewrite constraints.txt from a fresh environment with the newest versions pyproject.toml allows; run `make test`
# on it before committing the file.
constraints:
	rm -rf $(VENV)
	$(MAKE) install CONSTRAINTS=
	{ sed -n '/^#/p' constraints.txt; $(BIN)/python -m pip freeze --exclude-editable | grep -v '^-e'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

benchmarks: $(BIN)/.installed
# advi_convergence.py in full is about an hour of fits under load (every fit of the release, twice as long,
# and the old rule): --quick here (radiologists and GMIC); run it without --quick for the verdicts.
	for script in benchmarks/*.py; do \
		case $$script in benchmarks/advi_convergence.py) quick=--quick;; *) quick=;; esac; \
		$(BIN)/python $$script $$quick || exit 1; \
	done

clean:
	rm -rf $(VENV) perceptiongap-results
