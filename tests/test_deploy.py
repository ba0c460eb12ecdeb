"""deploy/: the models file parses, every fused model in it resolves, and its members are endpoints."""

from pathlib import Path

from workbench.serve.targets import check_fusions
from workbench.specs import load_registry

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


def test_the_deploy_models_file_parses_and_its_fused_models_resolve():
    reg = load_registry(DEPLOY / "models.toml")
    check_fusions(reg)
    deployed = {n for n in reg.models if n.startswith(("vllm-", "sglang-"))}
    assert {"vllm-scout-int4", "vllm-scout-fp8", "vllm-qwen-vl"} <= deployed
    ours = ("scout-quant-panel", "scout-merge", "scout-debate")
    assert all(reg.fusions[n].pool[0].startswith("vllm-") for n in ours)  # the file's, on top of the presets
    for f in (reg.fusions[n] for n in ours):
        names = [m.rpartition(":")[0] or m for m in f.pool] + [f.judge]
        assert all(n in deployed for n in names), f.name
        assert all(reg.models[n].backend == "openai" and reg.models[n].base_url.endswith("/v1") for n in names)


def test_the_serve_scripts_name_the_models_of_the_models_file():
    reg = load_registry(DEPLOY / "models.toml")
    scripts = (DEPLOY / "serve-members.sh").read_text() + (DEPLOY / "multi-node.sh").read_text()
    for name in ("vllm-scout-int4", "vllm-scout-fp8", "vllm-qwen-vl", "sglang-scout-bf16"):
        assert reg.models[name].model in scripts, name
