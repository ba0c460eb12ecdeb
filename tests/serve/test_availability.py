"""``/v1/models`` says what can run here (``availability`` on every entry, a list plain OpenAI clients still read),
and a call for a model that cannot run is refused at once, in one line that says why, with nothing loaded."""

from __future__ import annotations

import time

import openai
import pytest
from fastapi.testclient import TestClient

import workbench.availability as av
from workbench.policy import Policy
from workbench.specs import load_registry
from workbench.storage import RunStore

from .conftest import models_file

USER = [{"role": "user", "content": "2+3?"}]


@pytest.fixture
def cpu_machine(monkeypatch, tmp_path):
    """No GPU, empty caches, no OpenRouter key."""
    import huggingface_hub.constants

    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "wb-cache"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(av, "cuda_available", lambda: False)
    monkeypatch.setattr(av, "gpu_memory_gib", lambda: 0.0)
    av.clear_cache()
    yield
    av.clear_cache()


def api_client(tmp_path, server, public: bool = False) -> TestClient:
    from workbench.serve import create_server_app

    path = tmp_path / "models.toml"
    path.write_text(models_file(server.base_url))  # the scripted models and fused models, on top of the presets
    policy = Policy(public=public, registry=load_registry(path), allow_private_hosts=not public,
                    allowed_hosts=frozenset({"127.0.0.1:*"}))
    return TestClient(create_server_app(policy, RunStore(tmp_path / "runs.sqlite")))


def test_every_model_says_whether_it_can_run_here(cpu_machine, tmp_path, server, monkeypatch):
    import workbench.backends.lifetime as lifetime

    monkeypatch.setattr(lifetime, "loaded", lambda: [{"name": "tiny-offline", "backend": "tiny", "handles": 1,
                                                      "kept": True}])
    with api_client(tmp_path, server) as c:
        body = c.get("/v1/models").json()
    assert body["object"] == "list"
    rows = {r["id"]: r for r in body["data"]}
    for r in rows.values():  # OpenAI's shape, the extension beside it
        assert r["object"] == "model" and isinstance(r["created"], int) and r["owned_by"]
        a = r["availability"]
        assert a["status"] in av.STATUSES and isinstance(a["available"], bool) and a["reason"], r
        assert "\n" not in a["reason"]
    status = {name: r["availability"]["status"] for name, r in rows.items()}
    assert status["tiny-offline"] == "loaded" and status["tiny-offline-int4"] == "on_disk"
    assert status["smol-offline"] == status["smol-hub"] == "needs_download"
    assert status["scout-int4"] == status["scout-bf16"] == "needs_gpu"
    assert status["openrouter-scout"] == "needs_key" and status["vllm-scout"] == status["five"] == "endpoint"
    assert status["scout-merge"] == "needs_gpu" and not rows["scout-merge"]["availability"]["available"]
    assert rows["scout-merge"]["availability"]["reason"].startswith("scout-int4: ")
    assert status["best"] == "endpoint" and rows["best"]["availability"]["available"]
    assert rows["smol-best-of"]["availability"]["available"]  # local mode: the first call downloads
    assert c.get("/v1/models/scout-int4").json()["availability"]["status"] == "needs_gpu"


def test_a_plain_openai_client_reads_the_list(cpu_machine, tmp_path, server):
    with api_client(tmp_path, server) as c:
        client = openai.OpenAI(base_url="http://testserver/v1", api_key="unused", http_client=c, max_retries=0)
        models = {m.id: m for m in client.models.list()}
    assert models["scout-int4"].object == "model"
    assert models["scout-int4"].model_extra["availability"]["status"] == "needs_gpu"


@pytest.mark.parametrize("model, why", [
    ("scout-int4", "about 56 GiB of weights in INT4: needs a CUDA GPU, and this machine has none"),
    ("scout-debate", "scout-int4: about 56 GiB of weights in INT4: needs a CUDA GPU"),
    ("openrouter-scout", "its API key variable OPENROUTER_API_KEY is not set on this machine"),
    ("openrouter:meta-llama/llama-4-scout", "OPENROUTER_API_KEY is not set"),  # a name outside the registry
])
def test_a_model_that_cannot_run_is_refused_at_once_saying_why(cpu_machine, tmp_path, server, monkeypatch, model,
                                                               why):
    import workbench.backends.lifetime as lifetime

    def no_load(*a, **k):
        raise AssertionError("nothing is loaded for a model that cannot run")

    monkeypatch.setattr(lifetime, "construct", no_load)
    with api_client(tmp_path, server) as c:
        t0 = time.monotonic()
        r = c.post("/v1/chat/completions", json={"model": model, "messages": USER})
        took = time.monotonic() - t0
    err = r.json()["error"]
    assert r.status_code == 400 and err["code"] == "model_not_available" and err["param"] == "model", err
    assert err["message"].startswith(f"the model {model!r} cannot run on this server: ") and why in err["message"]
    assert "\n" not in err["message"] and took < 5


def test_models_that_can_run_still_run(cpu_machine, tmp_path, server):
    with api_client(tmp_path, server) as c:
        r = c.post("/v1/chat/completions", json={"model": "best", "messages": USER})
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["message"]["content"] == "I think it is 5. Final answer: 5"
        r = c.post("/v1/chat/completions", json={"model": "five", "messages": USER})
        assert r.status_code == 200, r.text


def test_public_mode_lists_only_what_visitors_may_use_and_tells_no_host_details(cpu_machine, tmp_path, server):
    with api_client(tmp_path, server, public=True) as c:
        rows = {r["id"]: r for r in c.get("/v1/models").json()["data"]}
        assert "smol-hub" not in rows and "smol-best-of" not in rows  # not downloaded: no visitor starts a download
        assert rows["best"]["availability"] == {"status": "endpoint", "available": True,
                                                "reason": "every model can run: endpoint: five, six, paid, pick5costly"}
        assert "scout-merge" not in rows and rows["five"]["availability"]["reason"] == \
            "the host's endpoint; whether it answers is not checked"  # no URL of the host's
        r = c.post("/v1/chat/completions", json={"model": "scout-merge", "messages": USER})
        assert r.status_code == 400 and r.json()["error"]["code"] == "model_not_available"
