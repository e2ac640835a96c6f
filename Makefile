# One command each: `make test` installs everything into .venv and runs the tests;
# `make demo` installs and runs the demo on the data shipped in demo/.
PYTHON ?= python3
VENV ?= .venv
# The CPU build of PyTorch (on a GPU machine: make TORCH_SPEC=torch ...)
TORCH_SPEC ?= torch==2.13.0

.PHONY: install test demo bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q "$(TORCH_SPEC)"
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

test: install
	$(VENV)/bin/pytest -q

demo: install
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash demo/run_demo.sh

bench: install
	$(VENV)/bin/python benchmarks/score.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
