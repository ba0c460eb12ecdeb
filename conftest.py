"""Test-session environment for tests/ and notebooks/ alike (loaded before anything imports workbench)."""

import os
import tempfile
from pathlib import Path

# Before anything imports workbench: keep built checkpoints out of the user's cache, never touch the Hub.
os.environ.setdefault("WORKBENCH_CACHE", tempfile.mkdtemp(prefix="wb-test-cache-"))
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["WORKBENCH_MODELS_FILE"] = str(Path(os.environ["WORKBENCH_CACHE"]) / "no-user-models.toml")
os.environ["WORKBENCH_HOME"] = tempfile.mkdtemp(prefix="wb-test-home-")  # run stores of the app and notebooks
os.environ.setdefault("WORKBENCH_PRESET", "tiny-offline")  # notebooks run on the offline preset in tests

