"""Every result carries the environment that made it (workbench.provenance): runs, exports, the API, evaluations."""

import importlib.metadata as md
import subprocess
import sys
from pathlib import Path

import workbench as wb
from workbench import provenance
from workbench.cli import main as cli
from workbench.specs import Member, load_registry

ROOT = Path(__file__).resolve().parent.parent


def test_the_record_names_code_python_packages_and_device():
    env = provenance.environment(seed=3)
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert env["commit"] == head and isinstance(env["dirty"], bool)
    assert env["workbench"] == md.version("fusion-workbench")
    assert env["python"].endswith(".".join(map(str, sys.version_info[:3])))
    for name in ("torch", "transformers", "openai", "gradio", "bitsandbytes", "xgrammar"):
        assert env["packages"][name] == md.version(name)
    assert env["device"]["cpu"] and env["device"]["cores"] >= 1 and env["seed"] == 3
    assert provenance.env_id(env) == provenance.env_id(dict(env, seed=4))  # the seed is no part of the environment
    assert provenance.differences(env, env) == []


async def test_a_stored_run_records_each_models_identity_and_the_export_shows_it(tiny_dir, remote, tmp_path,
                                                                                 monkeypatch, capsys):
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path))
    store = wb.RunStore(tmp_path / "runs.sqlite")
    # "far" shares its endpoint and script with another spec, loaded first under that one's name: one backend,
    # and the run still records the name it used
    await wb.fuse("2+3?", [Member(remote("reply=Final answer: 5", name="first"))], None, "vote", max_new_tokens=4)
    pool = [Member(load_registry().resolve("tiny-offline")), Member(remote("reply=Final answer: 5", name="far"))]
    r = await wb.fuse("2+3?", pool, None, "vote", seed=7, max_new_tokens=4, store=store)
    env = store.load(r.run_id).environment
    models = {m["name"]: m for m in env["models"]}
    tiny = models["tiny-offline"]
    digest = provenance._sha256_files(sorted((p for p in Path(tiny_dir).rglob("*") if p.is_file()
                                              and not p.name.startswith(".")),
                                             key=lambda p: p.relative_to(tiny_dir).as_posix()))
    assert tiny["sha256"] == digest and tiny["built"]["seed"] == 0 and tiny["checkpoint"] == str(tiny_dir)
    assert models["far"]["host"].startswith("127.0.0.1:") and models["far"]["backend"] == "openai"
    assert env["seed"] == 7 and env["device"]["gpus"] == [] and env["packages"]["torch"] == md.version("torch")
    assert cli(["runs", "show", r.run_id, "--store", str(tmp_path / "runs.sqlite")]) == 0
    shown = capsys.readouterr().out
    assert f"at {env['commit'][:12]}" in shown and f"transformers {md.version('transformers')}" in shown
    assert f"model tiny-offline: tiny tiny-llama4 (sha256 {digest[:12]})" in shown
    assert "model far: openai reply=Final answer: 5 @ 127.0.0.1:" in shown and "seed: 7" in shown


def test_public_records_keep_hosts_and_host_paths_to_themselves(remote):
    spec = remote("reply=x", name="far")
    from workbench.backends.openai_compat import OpenAICompatModel

    model = OpenAICompatModel(spec)
    assert provenance.model_identity(model)["host"].startswith("127.0.0.1:")
    assert "host" not in provenance.model_identity(model, public=True)
    local = wb.ModelSpec(name="mine", backend="local", model="/srv/models/secret-run-3")
    assert provenance.model_identity(local, public=True)["model"] == "secret-run-3"


def test_a_run_from_before_records_has_an_empty_one_and_says_so():
    assert provenance.summary_lines({}) == ["environment: not recorded (a run from before records were kept)"]
    assert provenance.differences({}, {"python": "x"}) == [
        "an environment record is missing (a run from before records were kept)"]
