# One command each: `make test` installs everything (.venv, and bcftools where apt can) and runs the tests;
# `make demo` installs and runs the demo on the data shipped in demo/.
PYTHON ?= python3
VENV ?= .venv
# The CPU build of PyTorch (on a GPU machine: make TORCH_SPEC=torch ...)
TORCH_SPEC ?= torch==2.13.0

.PHONY: install tools test demo bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q "$(TORCH_SPEC)"
	$(VENV)/bin/pip install -q -e '.[test,docs]'
	touch $@

install: $(VENV)/.installed

# command-line tools some tests compare with (bcftools), from Debian's packages when missing
tools:
	@command -v bcftools >/dev/null || apt-get install -y -q bcftools >/dev/null 2>&1 || \
	  { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q bcftools >/dev/null 2>&1; } || \
	  echo "bcftools could not be installed: the test that compares with it is skipped" >&2

test: tools install
	$(VENV)/bin/pytest -q

demo: install
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash demo/run_demo.sh

bench: install
	$(VENV)/bin/python benchmarks/score.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
