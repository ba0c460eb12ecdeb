"""Public mode: a failing host model is named to the visitor, never the host's URL, key variable or paths; the
detail goes to the host's log (and stays in local mode's messages)."""

from __future__ import annotations

import json
import logging

import httpx

from workbench.policy import Limits, Policy
from workbench.specs import load_registry
from workbench.storage import RunStore

from .conftest import free_port, serving

USER = [{"role": "user", "content": "2+3?"}]
VAR = "HOST_PRIVATE_KEY_VARNAME"


def registry(tmp_path, server_url):
    dead = f"http://localhost:{free_port()}/internal-gpu/v1"  # nothing listens: "cannot reach ..."
    path = tmp_path / "models.toml"
    path.write_text(f'''
[models.gone]
backend = "openai"
model = "m"
base_url = "{dead}"

[models.badkey]
backend = "openai"
model = "status=401"
base_url = "{server_url}"
api_key_env = "{VAR}"

[models.ok]
backend = "openai"
model = "reply=Final answer: 5"
base_url = "{server_url}"

[models.pick5]
backend = "openai"
model = "judge_pick=5"
base_url = "{server_url}"

[fusions.fails]
pool = ["gone", "badkey"]
judge = "pick5"

[fusions.half]
pool = ["gone", "badkey", "ok"]
judge = "pick5"
''')
    return load_registry(path), dead


def test_failures_name_the_member_not_the_hosts_url_or_variable(server, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv(VAR, "host-secret-value")
    reg, dead = registry(tmp_path, server.base_url)
    store = RunStore(tmp_path / "runs.sqlite")
    policy = Policy(public=True, registry=reg, allow_custom_endpoints=False, allow_private_hosts=False,
                    allow_image_urls=False, allowed_hosts=frozenset({"localhost:*", "127.0.0.1:*"}), limits=Limits())
    caplog.set_level(logging.WARNING, logger="workbench.backends")
    secrets = [dead, dead.split("//")[1].split("/")[0], "internal-gpu", VAR, server.base_url,
               server.base_url.split("//")[1].split("/")[0], "host-secret-value"]
    with serving(policy, store) as url:
        r = httpx.post(f"{url}/chat/completions", json={"model": "fails", "messages": USER}, timeout=60)
        assert r.status_code == 503, r.text
        body = r.text
        assert "gone" in body and "badkey" in body  # the members are named
        assert "could not be reached" in body and "host's setup" in body
        r2 = httpx.post(f"{url}/chat/completions", json={"model": "half", "messages": USER, "stream": True},
                        timeout=60)
        assert r2.status_code == 200 and "Final answer: 5" in r2.text
        stored = json.dumps([store.load(x["run_id"]).to_dict() for x in store.list(owner=None)])
        for said in (body, r2.text, stored):
            for s in secrets:
                assert s not in said, (s, said[:2000])
    logged = caplog.text
    assert dead in logged and VAR in logged  # the host's log has the detail


def test_local_mode_keeps_the_detail(server, tmp_path, monkeypatch):
    monkeypatch.setenv(VAR, "host-secret-value")
    reg, dead = registry(tmp_path, server.base_url)
    with serving(Policy(public=False, registry=reg), RunStore(tmp_path / "runs.sqlite")) as url:
        r = httpx.post(f"{url}/chat/completions", json={"model": "fails", "messages": USER}, timeout=60)
    assert r.status_code == 503 and dead in r.text and VAR in r.text
    assert "host-secret-value" not in r.text
