"""A real `workbench serve` app on uvicorn, on 127.0.0.1, whose fused models call the scripted HTTP server."""

from __future__ import annotations

import base64
import io
from contextlib import contextmanager
from dataclasses import replace

import pytest
from PIL import Image

from workbench.policy import Limits, Policy
from workbench.specs import Registry, load_registry
from workbench.storage import RunStore
from workbench.testing import free_port


def png_data_url(color=(255, 0, 0), size=(24, 20)) -> str:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def models_file(base_url: str) -> str:
    """Scripted members and judges (see workbench.testing.scripted_server) and fused models over them."""
    def model(name: str, script: str) -> str:
        return f'[models.{name}]\nbackend = "openai"\nmodel = "{script}"\nbase_url = "{base_url}"\nvision = true\n'

    return "\n".join([
        model("five", "reply=I think it is 5. Final answer: 5;delay=0.05"),
        model("six", "reply=Maybe 6. Final answer: 6;delay=0.05"),
        model("echo", "delay=0.05"),
        model("slow", "reply=one two three four five six seven eight nine ten;chunk_delay=0.3"),
        model("broken", "status=500;name=broken"),
        model("hangs", "hang=1;hang_s=30"),
        model("pick5", "judge_pick=5"),
        model("pick5slow", "judge_pick=5;chunk_delay=0.15"),
        model("pick5costly", "judge_pick=5;cost=0.002"),
        model("paid", "reply=Final answer: 7;cost=0.001"),
        model("pickecho", "judge_pick=Q"),
        model("flat", "judge_flat=10"),
        model("textonly", "reply=I cannot see the image.;blind=1").replace("vision = true", "vision = false"),
        """
[fusions.flat]
pool = ["five", "six", "paid"]
judge = "flat"

[fusions.halfblind]
pool = ["five", "textonly"]
judge = "pick5"

[fusions.best]
pool = ["five", "six", "paid"]
judge = "pick5costly"
mode = "best-of"
max_tokens = 200
description = "scripted best-of"

[fusions.merge]
pool = ["five", "six"]
judge = "pick5slow"
mode = "merge"

[fusions.debate]
pool = ["five", "six"]
judge = "pick5"
mode = "debate"
rounds = 2

[fusions.echoes]
pool = ["echo", "echo:concise"]
judge = "pickecho"

[fusions.slowpool]
pool = ["slow", "slow:concise"]
judge = "pick5"

[fusions.dead]
pool = ["broken", "broken:concise"]
judge = "pick5"

[fusions.degraded]
pool = ["broken", "five"]
judge = "pick5"

[fusions.hung]
pool = ["hangs", "hangs:concise"]
judge = "pick5"
member_timeout_s = 20
timeout_s = 0.8
"""])


@contextmanager
def serving(policy: Policy, store: RunStore, api_key_env: str | None = None):
    from workbench.serve import create_server_app
    from workbench.serve.cli import UvicornThread

    port = free_port()
    server = UvicornThread(create_server_app(policy, store, api_key_env), "127.0.0.1", port)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.close()


@pytest.fixture(scope="session")
def scripted_registry(server, tmp_path_factory) -> Registry:
    path = tmp_path_factory.mktemp("serve") / "models.toml"
    path.write_text(models_file(server.base_url))
    return load_registry(path)


@pytest.fixture(scope="session")
def api(scripted_registry, tmp_path_factory):
    """(base URL of /v1, the RunStore it writes) for a local-mode server without auth."""
    store = RunStore(tmp_path_factory.mktemp("serve-store") / "runs.sqlite")
    policy = Policy(public=False, registry=scripted_registry, limits=replace(Limits(), max_request_bytes=2_000_000))
    with serving(policy, store) as url:
        yield url, store
