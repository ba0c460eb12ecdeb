import io
import os
import shutil

import pytest
from PIL import Image


from workbench.testing import free_port


@pytest.fixture(scope="session")
def app(tmp_path_factory):
    """The workbench app on a free 127.0.0.1 port, tiny preset, its own run store."""
    from workbench.storage import RunStore
    from workbench.ui.gradio_app import CSS, build_demo

    store = RunStore(tmp_path_factory.mktemp("ui") / "runs.sqlite")
    demo = build_demo("tiny-offline", store=store)
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, css=CSS,
                            quiet=True)
    demo.store = store
    yield demo, url
    demo.close()


@pytest.fixture(scope="session")
def red_png(tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "red.png"
    Image.new("RGB", (48, 40), (255, 0, 0)).save(path)
    return path


@pytest.fixture(scope="session")
def corrupt_png(tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "corrupt.png"
    buf = io.BytesIO()
    Image.new("RGB", (48, 40), (0, 255, 0)).save(buf, format="PNG")
    path.write_bytes(buf.getvalue()[:50])
    return path


@pytest.fixture
def port() -> int:
    """A free port on 127.0.0.1."""
    return free_port()


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        pytest.fail("Debian's chromium is missing: run `make test` (it installs it) or apt-get install chromium")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--no-first-run", "--disable-sync"])
        yield b
        b.close()
