"""`workbench serve` driven by real clients: the official openai SDK (sync, async, streaming) and raw HTTP with
SSE parsing, against fused models whose members and judges are scripted HTTP servers."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import openai
import pytest

import workbench as wb
from workbench.shutdown import RUNS

from .conftest import png_data_url


def client(url, **kw):
    return openai.OpenAI(base_url=url, api_key="unused", max_retries=0, **kw)


def test_models_lists_the_fused_models_with_their_pools_and_the_plain_models(api):
    url, _ = api
    models = {m.id: m for m in client(url).models.list()}
    assert {"best", "merge", "debate", "five", "pick5"} <= set(models)
    best = models["best"].model_extra["fusion"]
    assert best["pool"] == ["five", "six", "paid"] and best["judge"] == "pick5costly" and best["mode"] == "best-of"
    assert models["five"].model_extra["workbench"]["backend"] == "openai"
    assert client(url).models.retrieve("best").id == "best"
    with pytest.raises(openai.NotFoundError):
        client(url).models.retrieve("nope")


def test_a_fused_answer_sums_usage_over_every_call_and_explains_itself(api):
    url, store = api
    r = client(url).chat.completions.create(model="best", messages=[
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2+3?"}], seed=7)
    assert r.choices[0].message.content == "I think it is 5. Final answer: 5"  # the judge picked "five"
    assert r.choices[0].finish_reason == "stop" and r.object == "chat.completion" and r.model == "best"
    fusion = r.model_extra["fusion"]
    assert fusion["members"] == ["five", "six", "paid"] and fusion["verdict"]["winner"] == "five"
    assert fusion["verdict"]["rationale"] and fusion["verdict"]["valid"] and not fusion["degraded"]
    (round1,) = fusion["rounds"]
    assert [o["content"] for o in round1][1] == "Maybe 6. Final answer: 6" and all(o["ok"] for o in round1)
    calls = [o["usage"] for o in round1] + [c["usage"] for c in fusion["verdict"]["judge_calls"]]
    assert r.usage.prompt_tokens == sum(c["prompt_tokens"] for c in calls) > 0
    assert r.usage.completion_tokens == sum(c["completion_tokens"] for c in calls) > 0
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert r.usage.model_extra["cost"] == pytest.approx(0.001 + 0.002)  # the paid member and the judge
    # stored like any run: origin api, the system prompt kept, and re-judgeable
    run = store.load(fusion["run_id"])
    assert run.origin == "api" and run.prompt["system"] == "Be brief." and run.settings.seed == 7
    again = asyncio.run(wb.rejudge(run, mode="vote"))
    assert again.parent_run_id == run.run_id and again.final_answer == "5"


def test_a_plain_model_answers_as_itself(api):
    url, store = api
    r = client(url).chat.completions.create(model="six", messages=[{"role": "user", "content": "2+3?"}],
                                            max_tokens=2)
    assert r.choices[0].message.content == "Maybe 6. " and r.choices[0].finish_reason == "length"
    assert store.load(r.model_extra["fusion"]["run_id"]).origin == "api"


def test_conversation_history_and_images_reach_the_members(api, server):
    url, _ = api
    n0 = len(server.requests)
    r = client(url).chat.completions.create(model="debate", messages=[
        {"role": "user", "content": "Remember the number 5."},
        {"role": "assistant", "content": "Noted."},
        {"role": "user", "content": [{"type": "text", "text": "Which number, in this picture?"},
                                     {"type": "image_url", "image_url": {"url": png_data_url()}}]}])
    assert r.choices[0].message.content == "I think it is 5. Final answer: 5"
    member_calls = [b for b in server.requests[n0:] if "judge_pick" not in b["model"]]
    first = member_calls[0]["messages"]
    assert [m["role"] for m in first[-3:]] == ["user", "assistant", "user"]
    assert first[-3]["content"] == "Remember the number 5."
    assert any(p["type"] == "image_url" for p in first[-1]["content"])
    assert len(r.model_extra["fusion"]["rounds"]) == 2  # two debate rounds


def test_streaming_with_the_sdk_sends_the_answer_as_deltas_and_progress_that_plain_clients_skip(api):
    url, _ = api
    stream = client(url).chat.completions.create(model="best", messages=[{"role": "user", "content": "2+3?"}],
                                                 stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "I think it is 5. Final answer: 5"
    assert chunks[0].choices[0].delta.role == "assistant"
    events = [c.model_extra["fusion"]["event"] for c in chunks if c.model_extra.get("fusion", {}).get("event")]
    assert events.count("member_done") == 3 and "verdict" in events and "judge_start" in events
    verdict = next(c.model_extra["fusion"] for c in chunks if c.model_extra.get("fusion", {}).get("event") == "verdict")
    assert verdict["winner"] == "five" and verdict["valid"]
    finish = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finish) == 1 and finish[0].choices[0].finish_reason == "stop"
    assert finish[0].model_extra["fusion"]["verdict"]["winner"] == "five"
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens > 0


async def test_async_sdk_streams_merge_answer_live(api):
    url, _ = api
    aclient = openai.AsyncOpenAI(base_url=url, api_key="unused", max_retries=0)
    t0 = time.monotonic()
    stream = await aclient.chat.completions.create(model="merge", messages=[{"role": "user", "content": "2+3?"}],
                                                   stream=True)
    arrivals = []
    async for c in stream:
        if c.choices and c.choices[0].delta.content:
            arrivals.append((time.monotonic() - t0, c.choices[0].delta.content))
        if c.choices and c.choices[0].finish_reason:
            final = c.model_extra["fusion"]
    text = "".join(t for _, t in arrivals)
    assert text == "I think it is 5. Final answer: 5"
    # the judge streams word by word, 0.15 s apart: the answer arrives in pieces, not at once at the end
    assert len(arrivals) >= 4 and arrivals[-1][0] - arrivals[0][0] > 0.3
    assert final["verdict"]["valid"] and final["mode"] == "merge"
    await aclient.close()


def sse_events(response: httpx.Response) -> list:
    """Parse an SSE body by hand: `data:` lines, comments skipped, [DONE] kept as a string."""
    out, data = [], []
    for line in response.iter_lines():
        if line.startswith(":"):
            continue
        if line.startswith("data:"):
            data.append(line[5:].strip())
        elif line == "" and data:
            payload = "\n".join(data)
            out.append(payload if payload == "[DONE]" else json.loads(payload))
            data = []
    return out


def test_raw_http_sse(api):
    url, _ = api
    body = {"model": "echoes", "messages": [{"role": "user", "content": "Q1: say this back"}], "stream": True}
    with httpx.stream("POST", f"{url}/chat/completions", json=body, timeout=30) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = sse_events(r)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == chunks[0]["id"] for c in chunks)
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == "Q1: say this back"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop" and "usage" not in chunks[-1]


async def test_eight_concurrent_clients_each_get_their_own_answer_and_every_run_is_stored(api):
    url, store = api
    aclient = openai.AsyncOpenAI(base_url=url, api_key="unused", max_retries=0)
    before = {r["run_id"] for r in store.list(limit=1000)}

    async def ask(n: int, stream: bool):
        q = f"Q{n}: repeat me exactly"
        if not stream:
            r = await aclient.chat.completions.create(model="echoes", messages=[{"role": "user", "content": q}])
            return q, r.choices[0].message.content, r.model_extra["fusion"]["run_id"]
        s = await aclient.chat.completions.create(model="echoes", messages=[{"role": "user", "content": q}],
                                                  stream=True)
        text, run_id = "", None
        async for c in s:
            if c.choices:
                text += c.choices[0].delta.content or ""
                if c.choices[0].finish_reason:
                    run_id = c.model_extra["fusion"]["run_id"]
        return q, text, run_id

    results = await asyncio.gather(*(ask(n, stream=n % 2 == 0) for n in range(8)))
    assert all(q == text for q, text, _ in results)
    new = {r["run_id"] for r in store.list(limit=1000)} - before
    assert {run_id for _, _, run_id in results} == new and len(new) == 8
    assert RUNS.in_flight == 0
    await aclient.close()


def _wait_stored_interrupted(store, before, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        new = [r for r in store.list(limit=1000) if r["run_id"] not in before]
        if new and RUNS.in_flight == 0:
            return store.load(new[0]["run_id"])
        time.sleep(0.1)
    raise AssertionError("no interrupted run was stored")


def test_an_aborted_stream_cancels_the_members_and_is_stored_as_interrupted(api):
    url, store = api
    before = {r["run_id"] for r in store.list(limit=1000)}
    with httpx.stream("POST", f"{url}/chat/completions", timeout=30,
                      json={"model": "slowpool", "messages": [{"role": "user", "content": "count"}],
                            "stream": True}) as r:
        for line in r.iter_lines():
            if line.startswith("data:"):
                break  # the role chunk: the run is going; the client goes away mid-generation
    t0 = time.monotonic()
    run = _wait_stored_interrupted(store, before)
    assert time.monotonic() - t0 < 3.0  # the members (3 s of words each) were cancelled, not waited for
    assert run.interrupted and run.origin == "api" and run.verdict is None
    assert run.stopped == "client_gone" and run.interrupted == "the client went away before the run finished"
    # cancelled during round 1 (or, on starlette 0.40 which sees the disconnect sooner, before it began)
    assert len(run.rounds) <= 1 and all(o.kind == "interrupted" for o in (run.rounds or [[]])[0])


def test_an_aborted_stream_during_judging_cancels_the_judge(api):
    url, store = api
    before = {r["run_id"] for r in store.list(limit=1000)}
    with httpx.stream("POST", f"{url}/chat/completions", timeout=30,
                      json={"model": "merge", "messages": [{"role": "user", "content": "2+3?"}],
                            "stream": True}) as r:
        for line in r.iter_lines():
            if '"judge_start"' in line:
                break
    run = _wait_stored_interrupted(store, before)
    assert run.interrupted and all(o.ok for o in run.rounds[0]) and run.verdict is None
    assert run.stopped == "client_gone"


def test_a_non_streaming_client_that_goes_away_cancels_its_run(api):
    url, store = api
    before = {r["run_id"] for r in store.list(limit=1000)}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{url}/chat/completions", timeout=0.5,
                   json={"model": "slowpool", "messages": [{"role": "user", "content": "count"}]})
    run = _wait_stored_interrupted(store, before)
    assert run.interrupted and run.verdict is None and run.stopped == "client_gone"


def test_the_demo_serves_the_api_on_its_own_port_and_history_shows_api_runs(scripted_registry, tmp_path):
    """`workbench demo` mounts /v1 in the Gradio app: same port, same policy, same run store as the page."""
    from workbench.policy import Policy
    from workbench.storage import RunStore
    from workbench.ui import gradio_app

    from .conftest import free_port

    store = RunStore(tmp_path / "runs.sqlite")
    policy = Policy(public=False, registry=scripted_registry)
    original = gradio_app.Policy.for_host
    gradio_app.Policy.for_host = classmethod(lambda cls, *a, **k: policy)
    try:
        demo = gradio_app.start("tiny-offline", port=free_port(), store=store, preload=False, quiet=True)
    finally:
        gradio_app.Policy.for_host = original
    try:
        url = demo.local_url.rstrip("/") + "/v1"
        assert httpx.get(demo.local_url).status_code == 200  # the page
        assert "best" in {m.id for m in client(url).models.list()}
        # streamed through Gradio's middleware (compression included): still arrives piece by piece
        t0, arrivals = time.monotonic(), []
        with httpx.stream("POST", f"{url}/chat/completions", timeout=30, headers={"Accept-Encoding": "br, gzip"},
                          json={"model": "merge", "messages": [{"role": "user", "content": "2+3?"}],
                                "stream": True}) as r:
            for line in r.iter_lines():
                if '"content":"' in line and '"role"' not in line:
                    arrivals.append(time.monotonic() - t0)
        assert len(arrivals) >= 4 and arrivals[-1] - arrivals[0] > 0.3
        r = client(url).chat.completions.create(model="best", messages=[{"role": "user", "content": "2+3?"}])
        run_id = r.model_extra["fusion"]["run_id"]
        assert store.list()[0]["run_id"] == run_id  # the History tab lists store.list() (local mode: every run)
    finally:
        demo.close()


def test_progress_chunks_can_be_turned_off(api):
    url, _ = api
    stream = client(url).chat.completions.create(model="best", messages=[{"role": "user", "content": "2+3?"}],
                                                 stream=True, extra_body={"fusion": {"progress": False}})
    chunks = list(stream)
    assert [c for c in chunks if c.model_extra.get("fusion")] == [chunks[-1]]  # only the finishing chunk's
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "I think it is 5. Final answer: 5"


def test_a_local_model_streams_its_tokens_through_the_api(api):
    """A local model's worker thread feeds the API server's event loop (uvicorn runs in its own thread)."""
    url, _ = api
    stream = client(url).chat.completions.create(model="tiny-offline", messages=[{"role": "user", "content": "hi"}],
                                                 stream=True, max_tokens=8, temperature=0)
    chunks = list(stream)
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    finish = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(pieces) >= 2 and finish[0].choices[0].finish_reason == "length"
    rounds = finish[0].model_extra["fusion"]["rounds"]
    assert rounds[0][0]["content"] == "".join(pieces) and rounds[0][0]["usage"]["completion_tokens"] == 8
