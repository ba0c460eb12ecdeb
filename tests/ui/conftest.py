import io
import socket

import pytest
from PIL import Image


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def app(tmp_path_factory):
    """The workbench app on a free 127.0.0.1 port, tiny preset, its own run store."""
    from workbench.store import RunStore
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
