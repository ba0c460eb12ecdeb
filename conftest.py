"""Test-session environment for tests/ and notebooks/ alike (loaded before anything imports workbench)."""

import os
import tempfile
from pathlib import Path

# Before anything imports workbench: keep built checkpoints out of the user's cache, never touch the Hub.
os.environ.setdefault("WORKBENCH_CACHE", tempfile.mkdtemp(prefix="wb-test-cache-"))
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["WORKBENCH_MODELS_FILE"] = str(Path(os.environ["WORKBENCH_CACHE"]) / "no-user-models.toml")
os.environ["WORKBENCH_HOME"] = tempfile.mkdtemp(prefix="wb-test-home-")  # run stores of the app and notebooks
# Notebooks run on the offline preset in tests: SmolLM2-135M (real answers), on few items and short answers.
os.environ.setdefault("WORKBENCH_PRESET", "smol-offline")
os.environ.setdefault("WORKBENCH_NB_ITEMS", "6")
os.environ.setdefault("WORKBENCH_NB_TOKENS", "40")
os.environ.setdefault("WORKBENCH_NB_JUDGE_TOKENS", "128")
os.environ.setdefault("WORKBENCH_NB_SWEEP_ITEMS", "1")
os.environ.setdefault("WORKBENCH_NB_GROUNDING_ITEMS", "1")
os.environ.setdefault("WORKBENCH_NB_ABLATION_ITEMS", "3")
os.environ.setdefault("WORKBENCH_NB_QUANT_ITEMS", "4")

