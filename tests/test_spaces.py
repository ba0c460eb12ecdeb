"""Hugging Face Spaces files: README front matter, ZeroGPU decorator, the entry point (requirements.txt: test_lock)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def front_matter() -> dict:
    text = (ROOT / "README.md").read_text()
    assert text.startswith("---\n")
    block = text[4:text.index("\n---\n", 4)]
    out = {}
    for line in block.splitlines():
        key, _, value = line.partition(":")
        out[key.strip()] = value.strip().strip('"')
    return out


def test_front_matter_names_files_that_exist():
    fm = front_matter()
    assert fm["sdk"] == "gradio"
    assert (ROOT / fm["app_file"]).is_file()
    assert fm["python_version"].startswith("3.")
    import gradio

    assert fm["sdk_version"].split(".")[0] == gradio.__version__.split(".")[0]


def test_zerogpu_decorator_is_inert_off_spaces(monkeypatch):
    from workbench.backends.zerogpu import gpu

    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)

    def f():
        return 1

    assert gpu(f) is f


def test_spaces_entry_point_builds_the_app(monkeypatch, tmp_path):
    monkeypatch.setenv("WORKBENCH_PRESET", "tiny-offline")
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path))
    import runpy

    ns = runpy.run_path(str(ROOT / "apps/gradio_app.py"), run_name="not_main")
    import gradio as gr

    assert isinstance(ns["demo"], gr.Blocks)
    assert (tmp_path / "runs.sqlite").exists()
    # the app preloads its preset in the background: let it finish, so the interpreter never exits mid-load
    assert ns["demo"].preloader.done.wait(120) and ns["demo"].preloader.error is None
