"""The OpenAI backend and a whole fusion against a real third-party server: transformers' own `transformers serve`
(FastAPI + uvicorn), started on 127.0.0.1 with the converted SmolLM2 checkpoint. Our scripted server stays for
faults; this is what a real server does with our requests."""

import asyncio
import json
import subprocess
import sys
import time
import urllib.request

import pytest

import workbench as wb
from workbench.backends.openai_compat import OpenAICompatModel
from workbench.specs import Member, ModelSpec
from workbench.testing import free_port


@pytest.fixture(scope="module")
def serve(smol_dir, tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "transformers.cli.transformers", "serve", str(smol_dir),
                                 "--device", "cpu", "--dtype", "float32", "--host", "127.0.0.1", "--port", str(port)],
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    if json.load(r).get("status") == "ok":
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"transformers serve did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield ModelSpec(name="smol-serve", backend="openai", model=str(smol_dir), base_url=f"http://127.0.0.1:{port}/v1",
                        vision=False)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


async def test_streaming_usage_and_finish_reasons(serve):
    m = OpenAICompatModel(serve)
    r = await m.generate("What is the capital of France?", max_new_tokens=24, temperature=0)
    assert r.ok and "Paris" in r.text and r.finish_reason == "stop"
    assert r.usage.prompt_tokens > 10 and 0 < r.usage.completion_tokens <= 24 and r.ttft_s <= r.latency_s
    cut = await m.generate("Write a long story about a fox.", max_new_tokens=6, temperature=0)
    assert cut.ok and cut.finish_reason == "length" and cut.usage.completion_tokens == 6
    pieces = [p async for p in m.stream("Say hello.", max_new_tokens=8, temperature=0)]
    assert len(pieces) >= 2 and "".join(pieces).strip()


async def test_concurrent_requests_each_get_their_own_answer(serve):
    m = OpenAICompatModel(serve)
    asks = ["What is the capital of France?", "What is the capital of Italy?", "What is the capital of Spain?"]
    rs = await asyncio.gather(*(m.generate(q, max_new_tokens=16, temperature=0) for q in asks))
    alone = [await m.generate(q, max_new_tokens=16, temperature=0) for q in asks]
    assert all(r.ok for r in rs) and "Paris" in rs[0].text
    assert [r.text for r in rs] == [r.text for r in alone]  # greedy: concurrency changes no answer


async def test_a_stopped_stream_leaves_the_server_serving(serve):
    m = OpenAICompatModel(serve)
    agen = m.stream("Count from one to one hundred.", max_new_tokens=200, temperature=0)
    first = await agen.__anext__()
    await agen.aclose()  # the client goes away mid-stream
    assert first
    r = await m.generate("What is the capital of France?", max_new_tokens=16, temperature=0)
    assert r.ok and "Paris" in r.text


async def test_a_full_fusion_through_the_server_and_an_ignored_response_format(serve, tmp_path):
    pool = [Member(serve), Member(serve, persona="You are a skeptic. Check the claim, then answer."),
            Member(serve, persona="Answer as briefly as possible.", temperature=0.3)]
    r = await wb.fuse("What is the capital of France?", pool, Member(serve), mode="best-of", max_new_tokens=24,
                      judge_max_new_tokens=96, seed=0, store=wb.RunStore(tmp_path / "runs.sqlite"))
    assert [o.ok for o in r.outputs] == [True, True, True] and all(o.completion_tokens > 0 for o in r.outputs)
    assert r.verdict is not None and r.verdict.attempts and r.final_answer
    # transformers serve ignores response_format (it logs "Ignoring unsupported fields"): the judge's reply is
    # validated as usual, so the verdict is either valid or a recorded failure with the fallback answer
    assert r.verdict.valid or (r.degraded and any("fell back" in x for x in r.failure_reasons))


def test_a_deploy_fusion_served_by_workbench_serve_with_its_members_on_the_real_server(serve, tmp_path):
    """deploy/models.toml's members are vLLM endpoints; here the same OpenAI-compatible path reaches transformers
    serve instead, and `workbench serve` answers an openai SDK client with the fused result."""
    from dataclasses import replace
    from pathlib import Path

    import openai

    from workbench.policy import Policy
    from workbench.serve import create_server_app
    from workbench.serve.cli import UvicornThread
    from workbench.specs import load_registry

    reg = load_registry(Path(__file__).resolve().parents[2] / "deploy" / "models.toml")
    for name in [n for n in reg.models if n.startswith(("vllm-", "sglang-"))]:  # the engines, stood in for
        reg.models[name] = replace(reg.models[name], base_url=serve.base_url, model=serve.model, vision=False)
    fusion = reg.fusions["scout-merge"]
    reg.fusions["scout-merge"] = replace(fusion, settings={**fusion.settings, "judge_max_new_tokens": 96})
    store = wb.RunStore(tmp_path / "runs.sqlite")
    port = free_port()
    server = UvicornThread(create_server_app(Policy(public=False, registry=reg), store), "127.0.0.1", port)
    server.start()
    try:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0)
        r = client.chat.completions.create(model="scout-merge", max_tokens=24, temperature=0, seed=0,
                                           messages=[{"role": "user", "content": "What is the capital of France?"}])
    finally:
        server.close()
    fusion = r.model_extra["fusion"]
    assert [o["ok"] for o in fusion["rounds"][0]] == [True, True, True]
    assert fusion["members"] == ["vllm-scout-int4:analyst", "vllm-scout-int4:skeptic", "vllm-qwen-vl:concise"]
    assert fusion["verdict"]["judge_calls"] and r.choices[0].message.content
    assert r.usage.completion_tokens > sum(o["usage"]["completion_tokens"] for o in fusion["rounds"][0])  # + judge
    assert store.load(fusion["run_id"]).origin == "api"
