"""The OpenAI-compatible backend against a real HTTP server on 127.0.0.1 (workbench.testing.scripted_server)."""

import io
import socket

import pytest
from PIL import Image

import workbench as wb
from workbench.backends.openai_compat import OpenAICompatModel
from workbench.specs import ModelSpec


def png():
    buf = io.BytesIO()
    Image.new("RGB", (20, 20), (0, 0, 255)).save(buf, format="PNG")
    return buf.getvalue()


async def test_streams_text_usage_and_cost(remote):
    model = OpenAICompatModel(remote("reply=The answer is 5;cost=0.0021;chunk_delay=0.01"))
    pieces = []
    r = await model.complete(wb.Prompt("2+3?").messages(), wb.GenerateConfig(), on_text=pieces.append)
    assert r.ok and r.text == "The answer is 5" and len(pieces) == 4
    assert r.usage.completion_tokens == 4 and r.usage.cost_usd == pytest.approx(0.0021)
    assert r.finish_reason == "stop" and r.ttft_s is not None


async def test_images_travel_as_data_url_parts(remote, server):
    model = OpenAICompatModel(remote("reply=blue;name=img-check"))
    r = await model.generate(wb.Prompt("What colour?", images=[png()]), persona="You are terse.")
    assert r.ok
    body = next(b for b in reversed(server.requests) if b["model"] == "reply=blue;name=img-check")
    assert body["messages"][0] == {"role": "system", "content": "You are terse."}
    parts = body["messages"][1]["content"]
    assert parts[0]["type"] == "image_url" and parts[0]["image_url"]["url"].startswith("data:image/png;base64,")
    assert parts[1] == {"type": "text", "text": "What colour?"}


async def test_429_is_retried_then_succeeds(remote, server):
    script = "reply=ok;status=429;fail_first=2"
    r = await OpenAICompatModel(remote(script)).generate("hi")
    assert r.ok and r.text == "ok" and server.calls[script] == 3


async def test_500_retried_then_failure_not_exception(remote, server):
    script = "status=500;tag=always"
    r = await OpenAICompatModel(remote(script)).generate("hi")
    assert not r.ok and r.kind == "server" and r.retryable and server.calls[script] == 3


async def test_slow_endpoint_times_out(remote):
    r = await OpenAICompatModel(remote("reply=late;delay=5")).generate("hi", timeout_s=0.5)
    assert not r.ok and r.kind == "timeout"


async def test_dead_endpoint_is_a_connection_failure():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once we leave: nothing listens there
    spec = ModelSpec(name="dead", backend="openai", model="m", base_url=f"http://127.0.0.1:{port}/v1")
    r = await OpenAICompatModel(spec, max_retries=1).generate("hi")
    assert not r.ok and r.kind == "connection" and "is the server running" in r.reason


async def test_missing_key_names_the_variable(remote, monkeypatch):
    monkeypatch.delenv("WB_TEST_KEY", raising=False)
    r = await OpenAICompatModel(remote("reply=x", api_key_env="WB_TEST_KEY")).generate("hi")
    assert not r.ok and r.kind == "config" and "WB_TEST_KEY" in r.reason


async def test_key_is_sent_but_never_reported(remote, monkeypatch):
    monkeypatch.setenv("WB_TEST_KEY", "sk-secret-123456")
    r = await OpenAICompatModel(remote("status=401", api_key_env="WB_TEST_KEY")).generate("hi")
    assert not r.ok and r.kind == "config" and "WB_TEST_KEY" in r.reason
    assert "sk-secret" not in repr(r)


async def test_load_model_by_scheme_and_stream(server):
    model = wb.load_model(wb.ModelSpec(name="s", backend="openai", model="reply=a b c", base_url=server.base_url))
    assert [p async for p in model.stream("x")] == ["a ", "b ", "c"]


async def test_server_that_refuses_stream_options(remote, server):
    model = OpenAICompatModel(remote("reply=fine thanks;strict=1"))
    r = await model.generate("hi")
    assert r.ok and r.text == "fine thanks"
    assert "stream_options" not in requests_of(server, "reply=fine thanks;strict=1")[-1]
    assert (await model.generate("again")).ok


def requests_of(server, script):
    return [b for b in server.requests if b["model"] == script]


@pytest.mark.parametrize("script, kind, words", [("reply=a b c d;error_after=2", "server", "broke off"),
                                                 ("reply=a b c d;malformed_after=2", "server", "malformed")])
async def test_a_stream_that_breaks_midway_is_a_failure_with_its_partial_text(server, script, kind, words):
    model = wb.load_model(wb.ModelSpec(name="s", backend="openai", model=script, base_url=server.base_url))
    r = await model.generate("hi")
    assert not r.ok and r.kind == kind and words in r.reason and r.partial_text == "a b "


async def test_one_broken_member_does_not_sink_the_run(server):
    ok = wb.ModelSpec(name="ok", backend="openai", model="reply=4", base_url=server.base_url)
    bad = wb.ModelSpec(name="bad", backend="openai", model="reply=x y;error_after=1", base_url=server.base_url)
    r = await wb.fuse("2+2?", [wb.Member(ok), wb.Member(bad)], mode="vote")
    assert r.final_answer == "4" and r.degraded and not r.outputs[1].ok and r.outputs[1].text == "x "
