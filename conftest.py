"""Test-session environment for tests/ and notebooks/ alike (loaded before anything imports workbench)."""

import os
import tempfile
import tomllib
from pathlib import Path

# Before anything imports workbench: keep built checkpoints out of the user's cache, never touch the Hub.
# Under pytest-xdist the workers share one cache (what they build is written to a temp dir, then renamed).
if os.environ.get("PYTEST_XDIST_TESTRUNUID"):
    _cache = Path(tempfile.gettempdir()) / f"wb-test-cache-{os.environ['PYTEST_XDIST_TESTRUNUID']}"
    _cache.mkdir(exist_ok=True)
    os.environ.setdefault("WORKBENCH_CACHE", str(_cache))
os.environ.setdefault("WORKBENCH_CACHE", tempfile.mkdtemp(prefix="wb-test-cache-"))
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["WORKBENCH_MODELS_FILE"] = str(Path(os.environ["WORKBENCH_CACHE"]) / "no-user-models.toml")
os.environ["WORKBENCH_HOME"] = tempfile.mkdtemp(prefix="wb-test-home-")  # run stores of the app and notebooks
# Under pytest-xdist (`make test` runs 3 workers on a 2-core machine) each worker and what it starts (notebook
# kernels, CLI processes) computes on one thread: single-threaded workers beat ones that fight over both cores.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")
# Notebooks run on the offline preset in tests: SmolLM2-135M (real answers), on few items and short answers
# (notebooks/environment.toml, also what their stored outputs are executed with).
for _name, _value in tomllib.loads((Path(__file__).parent / "notebooks" / "environment.toml").read_text()).items():
    os.environ.setdefault(_name, _value)


CHAINED = ("notebooks/05_", "notebooks/06_")


def pytest_collection_modifyitems(items):
    """Under pytest-xdist (``--dist loadgroup``): notebook 06 reads the member answers 05 cached in the worker's run
    store, so the two run in one worker, one after the other (elsewhere 06 would generate them again). That chain is
    the longest piece of work in the suite: it is handed out first, so the other workers fill the time beside it
    instead of the suite ending on it."""
    import pytest

    for item in items:
        if item.nodeid.startswith(CHAINED):
            item.add_marker(pytest.mark.xdist_group("notebook-answer-cache"))
    items.sort(key=lambda item: not item.nodeid.startswith(CHAINED))  # stable: 05 before 06, the rest in order
