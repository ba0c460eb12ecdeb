"""The OpenAI backend hands the SDK only objects of the SDK's own HTTP library (httpx for openai 1-2, httpx2 for 3)."""

import openai

import workbench as wb
from workbench.backends import egress
from workbench.backends.openai_compat import OpenAICompatModel
from workbench.backends.sdk_http import sdk_http, sdk_timeout, transport_errors


def test_the_sdk_http_library_is_the_one_the_sdk_client_is_built_on():
    http = sdk_http()
    assert issubclass(openai.DefaultAsyncHttpxClient, http.AsyncClient)
    major = int(openai.__version__.split(".")[0])
    assert http.__name__ == ("httpx2" if major >= 3 else "httpx")
    assert all(issubclass(e, Exception) and e.__module__.split(".")[0] == http.__name__ for e in transport_errors())


async def test_the_sdk_accepts_our_timeout_and_our_guarded_client():
    timeout = sdk_timeout(30, 5)
    assert timeout.connect == 5 and timeout.read == 30
    client = egress.guarded_http_client(timeout)
    assert isinstance(client, openai.DefaultAsyncHttpxClient)
    sdk = openai.AsyncOpenAI(base_url="http://example.invalid/v1", api_key="x", timeout=timeout, http_client=client)
    assert sdk.timeout == timeout
    await client.aclose()


async def test_a_guarded_member_connects_through_the_sdk_client(remote, monkeypatch):
    """Untrusted endpoint on loopback, allowed by name: the pinned transport really carries the request."""
    monkeypatch.setenv("WORKBENCH_ALLOWED_HOSTS", "127.0.0.1:*")
    spec = remote("reply=guarded ok", name="visitor")
    from dataclasses import replace

    model = OpenAICompatModel(replace(spec, untrusted=True))
    r = await model.generate("hi", max_new_tokens=8)
    assert r.ok and r.text == "guarded ok"


async def test_a_client_that_cannot_be_built_is_a_failed_member_and_the_run_is_stored(remote, monkeypatch, tmp_path):
    """A future SDK that refuses what we hand it: the member fails (data) and the fused run is still stored."""

    def refuses(*args, **kwargs):
        raise TypeError("Invalid timeout: expected a number, None, a tuple or httpx2.Timeout")

    monkeypatch.setattr(openai, "AsyncOpenAI", refuses)
    store = wb.RunStore(tmp_path / "runs.sqlite")
    result = await wb.fuse("2+3?", [wb.Member(remote("reply=5", name="r1"))], None, "vote", store=store)
    out = result.rounds[0][0]
    assert not out.ok and out.kind == "config" and "could not be built" in out.reason and "TypeError" in out.reason
    assert result.degraded and store.load(result.run_id).rounds[0][0].reason == out.reason
