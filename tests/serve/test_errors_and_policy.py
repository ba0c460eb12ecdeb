"""Every kind of bad request answers an OpenAI error object with the right status; auth; the public-mode policy
and limits of the web app apply to the API; degraded runs still answer."""

from __future__ import annotations

import base64
import threading
import time
from dataclasses import replace

import httpx
import openai
import pytest

from workbench.policy import Limits, Policy
from workbench.shutdown import RUNS
from workbench.storage import RunStore

from .conftest import png_data_url, serving

USER = [{"role": "user", "content": "2+3?"}]


def post(url, body=None, raw=None, headers=None, timeout=30):
    if raw is not None:
        return httpx.post(f"{url}/chat/completions", content=raw, headers=headers or {}, timeout=timeout)
    return httpx.post(f"{url}/chat/completions", json=body, headers=headers or {}, timeout=timeout)


def image(url: str) -> list:
    return [{"role": "user", "content": [{"type": "text", "text": "what is this?"},
                                         {"type": "image_url", "image_url": {"url": url}}]}]


BAD = [  # (body, status, error code, param)
    (None, 400, "invalid_json", None),
    ({"model": "best"}, 400, "invalid_value", "messages"),
    ({"model": "best", "messages": []}, 400, "invalid_value", "messages"),
    ({"messages": USER}, 400, "invalid_value", "model"),
    ({"model": "best", "messages": [{"role": "wizard", "content": "hi"}]}, 400, "invalid_value", "messages.0.role"),
    ({"model": "best", "messages": USER + [{"role": "assistant", "content": "5"}]}, 400, "invalid_value", "messages"),
    ({"model": "best", "messages": [{"role": "user", "content": "  "}]}, 400, "invalid_value", "messages"),
    ({"model": "best", "messages": USER, "n": 2}, 400, "unsupported_parameter", "n"),
    ({"model": "best", "messages": USER, "logprobs": True}, 400, "unsupported_parameter", "logprobs"),
    ({"model": "best", "messages": USER, "tools": [{"type": "function"}]}, 400, "unsupported_parameter", "tools"),
    ({"model": "best", "messages": USER, "temperature": 3}, 400, "invalid_value", "temperature"),
    ({"model": "best", "messages": USER, "max_tokens": 201}, 400, "invalid_value", "max_tokens"),  # its limit: 200
    ({"model": "best", "messages": USER, "max_tokens": 0}, 400, "invalid_value", "max_tokens"),
    ({"model": "best", "messages": USER, "response_format": {"type": "yaml"}}, 400, "invalid_value",
     "response_format"),
    ({"model": "best", "messages": [{"role": "tool", "content": "x"}] + USER}, 400, "unsupported_parameter",
     "messages.0"),
    ({"model": "best", "messages": [{"role": "user", "content": [{"type": "input_audio"}]}]}, 400,
     "unsupported_parameter", "messages.0"),
    ({"model": "best", "messages": image("data:image/png;base64,@@@")}, 400, "invalid_image", "messages.0.content.1"),
    ({"model": "best", "messages": image("ftp://example.com/cat.png")}, 400, "invalid_image", "messages.0.content.1"),
    ({"model": "best", "messages": image("data:image/png;base64," + base64.b64encode(b"not a png").decode())},
     400, "invalid_value", None),
    ({"model": "no-such-model", "messages": USER}, 404, "model_not_found", "model"),
    ({"model": "./some/dir", "messages": USER}, 404, "model_not_found", "model"),
]


@pytest.mark.parametrize("raw", [b"[" * 100_000, b'{"model": "best", "messages": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
                                 b'{"model": "best", "messages": [{"role": "user", "content": "hi"}], "x": '
                                 + b'{"a":' * 20_000 + b"1" + b"}" * 20_000 + b"}"])
def test_deeply_nested_json_is_a_400_not_a_traceback(api, raw):
    url, _ = api
    r = post(url, raw=raw)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "invalid_json" and "Traceback" not in r.text


@pytest.mark.parametrize("body,status,code,param", BAD, ids=[f"{i}-{b[1]}-{b[2]}" for i, b in enumerate(BAD)])
def test_bad_requests_get_openai_error_objects(api, body, status, code, param):
    url, _ = api
    r = post(url, body, raw=b"{not json" if body is None else None)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code and err["param"] == param and err["message"] and err["type"]


def test_the_sdk_raises_its_own_typed_errors(api):
    url, _ = api
    c = openai.OpenAI(base_url=url, api_key="unused", max_retries=0)
    with pytest.raises(openai.NotFoundError) as e:
        c.chat.completions.create(model="nope", messages=USER)
    assert "GET /v1/models" in e.value.message
    with pytest.raises(openai.BadRequestError):
        c.chat.completions.create(model="best", messages=USER, n=3)


def test_a_body_over_the_limit_is_413(api):
    url, _ = api
    big = {"model": "best", "messages": [{"role": "user", "content": "x" * 2_100_000}]}
    r = post(url, big)
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"


def test_all_members_failed_is_503_with_the_reasons_and_a_timeout_is_504(api):
    url, store = api
    r = post(url, {"model": "dead", "messages": USER})
    assert r.status_code == 503 and r.json()["error"]["code"] == "all_members_failed"
    assert "scripted error 500" in r.json()["error"]["message"]
    assert len(r.json()["fusion"]["failure_reasons"]) >= 2
    t0 = time.monotonic()
    r = post(url, {"model": "hung", "messages": USER})
    assert r.status_code == 504 and r.json()["error"]["code"] == "timeout" and time.monotonic() - t0 < 5
    assert r.json()["fusion"]["stopped"] == "timeout"
    run = store.load(r.json()["fusion"]["run_id"])
    assert run.interrupted.startswith("timed out") and run.origin == "api" and run.stopped == "timeout"


def test_an_sdk_that_refuses_its_client_gives_failed_members_and_a_stored_run_not_a_bare_500(api, monkeypatch):
    """openai 3.63 refused an httpx.Timeout: every remote member failed with a bare 500 and no stored run."""
    url, store = api

    def refuses(*args, **kwargs):
        raise TypeError("Invalid timeout: expected a number, None, a tuple or httpx2.Timeout")

    monkeypatch.setattr(openai, "AsyncOpenAI", refuses)
    r = post(url, {"model": "best", "messages": USER})
    assert r.status_code == 503 and r.json()["error"]["code"] == "all_members_failed"
    assert "could not be built" in r.json()["error"]["message"]
    run = store.load(r.json()["fusion"]["run_id"])
    assert run.degraded and all(not o.ok and o.kind == "config" for o in run.rounds[0])
    assert run.environment["packages"]["openai"] == openai.__version__
    assert r.json()["fusion"]["environment"]["packages"]["openai"] == openai.__version__  # the API's fusion object


def test_a_failure_after_the_stream_started_is_an_error_event(api):
    url, _ = api
    c = openai.OpenAI(base_url=url, api_key="unused", max_retries=0)
    stream = c.chat.completions.create(model="dead", messages=USER, stream=True)
    with pytest.raises(openai.APIError) as e:
        for _ in stream:
            pass
    assert "every member failed" in str(e.value)


def test_a_degraded_run_still_answers_and_says_so(api):
    url, _ = api
    r = post(url, {"model": "degraded", "messages": USER})
    assert r.status_code == 200
    body = r.json()
    assert body["choices"][0]["message"]["content"] == "I think it is 5. Final answer: 5"
    assert body["fusion"]["degraded"] and "broken" in body["fusion"]["failure_reasons"][0]
    failed = body["fusion"]["rounds"][0][0]
    assert not failed["ok"] and failed["error"]["kind"] == "server"


def test_response_format_reaches_the_members_and_the_answer_is_checked(api, server):
    url, _ = api
    n0 = len(server.requests)
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    r = post(url, {"model": "best", "messages": USER,
                   "response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": schema}}})
    assert r.status_code == 200
    sent = [b for b in server.requests[n0:] if "judge_pick" not in b["model"]]
    assert all(b["response_format"]["json_schema"]["schema"] == schema for b in sent)
    assert any("not valid JSON" in n for n in r.json()["fusion"]["notes"])  # scripted members ignore it


@pytest.fixture
def keyed(scripted_registry, tmp_path, monkeypatch):
    monkeypatch.setenv("WB_TEST_API_KEY", "s3cret-token-123")
    with serving(Policy(public=False, registry=scripted_registry), RunStore(tmp_path / "r.sqlite"),
                 api_key_env="WB_TEST_API_KEY") as url:
        yield url


def test_bearer_auth(keyed):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret-token-123"}):
        r = post(keyed, {"model": "best", "messages": USER}, headers=headers)
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
        assert r.headers["www-authenticate"] == "Bearer"
        assert httpx.get(f"{keyed}/models", headers=headers).status_code == 401
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=keyed, api_key="nope", max_retries=0).models.list()
    good = openai.OpenAI(base_url=keyed, api_key="s3cret-token-123", max_retries=0)
    assert good.chat.completions.create(model="best", messages=USER).choices[0].message.content


def test_an_unset_key_variable_refuses_to_start(scripted_registry, tmp_path, monkeypatch):
    from workbench.errors import ConfigError
    from workbench.serve import create_api

    monkeypatch.delenv("WB_TEST_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="WB_TEST_API_KEY"):
        create_api(Policy(public=False, registry=scripted_registry), RunStore(tmp_path / "r.sqlite"),
                   "WB_TEST_API_KEY")


@pytest.fixture
def public(scripted_registry, tmp_path):
    limits = replace(Limits(), runs_per_session=1, max_images=1, max_prompt_chars=100, max_new_tokens=64)
    policy = Policy(public=True, registry=scripted_registry, allow_custom_endpoints=False, allow_private_hosts=False,
                    allow_image_urls=False, allowed_hosts=frozenset({"127.0.0.1:*"}), limits=limits)
    store = RunStore(tmp_path / "public.sqlite")
    with serving(policy, store) as url:
        yield url, store


def test_public_mode_applies_the_web_apps_policy(public, tiny_dir):
    url, store = public
    # only the host's models: no path, no Hub id, no endpoint of the caller's
    for name in (str(tiny_dir), "org/some-model", "openrouter:x/y"):
        r = post(url, {"model": name, "messages": USER})
        assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found", name
    # limits: prompt size, images, tokens
    r = post(url, {"model": "best", "messages": [{"role": "user", "content": "x" * 101}]})
    assert r.status_code == 413
    r = post(url, {"model": "best", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": png_data_url()}},
        {"type": "image_url", "image_url": {"url": png_data_url((0, 0, 255))}}]}]})
    assert r.status_code == 413 and "at most 1" in r.json()["error"]["message"]
    r = post(url, {"model": "best", "messages": USER, "max_tokens": 65})
    assert r.status_code == 400 and r.json()["error"]["param"] == "max_tokens"
    # remote image URLs are not fetched unless the host allows it
    r = post(url, {"model": "best", "messages": image("http://169.254.169.254/latest/meta-data")})
    assert r.status_code == 400 and r.json()["error"]["code"] == "image_url_not_allowed"
    # runs belong to the caller, not to the shared History
    r = post(url, {"model": "best", "messages": USER})
    assert r.status_code == 200
    assert store.list(owner=None)[0]["run_id"] == r.json()["fusion"]["run_id"]
    assert store.list(owner="api:127.0.0.1") and not store.list(owner="some-browser-session")


def test_public_mode_limits_runs_in_flight_per_client_with_429(public):
    url, _ = public
    results = {}

    def slow():
        results["slow"] = post(url, {"model": "slowpool", "messages": USER})

    t = threading.Thread(target=slow)
    t.start()
    deadline = time.monotonic() + 5
    while RUNS.in_flight == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    r = post(url, {"model": "best", "messages": USER})
    assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limit_exceeded"
    assert r.headers["retry-after"] == "1"
    t.join(30)
    assert results["slow"].status_code == 200


def one_slot(scripted_registry, tmp_path, wait_s: int):
    limits = replace(Limits(), runs_per_session=1, runs_total=1, runs_waiting=4, run_wait_s=wait_s)
    policy = Policy(public=True, registry=scripted_registry, allow_custom_endpoints=False, allow_private_hosts=False,
                    allow_image_urls=False, allowed_hosts=frozenset({"127.0.0.1:*"}), limits=limits)
    return serving(policy, RunStore(tmp_path / "one-slot.sqlite"))


def post_from(addr: str, url: str, body: dict) -> httpx.Response:
    with httpx.Client(transport=httpx.HTTPTransport(local_address=addr), timeout=60) as c:
        return c.post(f"{url}/chat/completions", json=body)


@pytest.mark.parametrize("wait_s", [30, 1])
def test_a_full_public_server_lets_another_visitor_wait_for_a_slot_then_refuses_with_429(scripted_registry,
                                                                                           tmp_path, wait_s):
    """All runs_total slots taken: another visitor's run waits in the line (it is served when the slot frees),
    and is refused with 429 only when no slot came within the host's run_wait_s."""
    with one_slot(scripted_registry, tmp_path, wait_s) as url:
        results = {}
        t = threading.Thread(target=lambda: results.update(a=post_from("127.0.0.1", url, {
            "model": "slowpool", "messages": USER})))
        t.start()
        deadline = time.monotonic() + 5
        while RUNS.in_flight == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        t0 = time.monotonic()
        r = post_from("127.0.0.2", url, {"model": "best", "messages": USER})
        waited = time.monotonic() - t0
        t.join(30)
        assert results["a"].status_code == 200
        if wait_s == 30:
            assert r.status_code == 200, r.text
            assert waited > 1  # it waited for the slow run to end, it was not refused
        else:
            assert r.status_code == 429 and r.headers["retry-after"] == "1"
            assert r.json()["error"]["code"] == "rate_limit_exceeded"
            assert "no run slot came free in 1 s" in r.json()["error"]["message"]
            assert 0.9 < waited < 10


def test_a_draining_server_answers_503(api):
    url, _ = api
    RUNS.draining = True
    try:
        r = post(url, {"model": "best", "messages": USER})
    finally:
        RUNS.reopen()
    assert r.status_code == 503 and r.json()["error"]["code"] == "shutting_down"


def test_unknown_routes_and_methods_are_openai_errors(api):
    url, _ = api
    r = httpx.get(f"{url}/nothing-here")
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_url"
    r = httpx.get(f"{url}/chat/completions")
    assert r.status_code == 405 and r.json()["error"]["type"]


def test_image_urls_a_public_host_allows_are_fetched_from_public_addresses_only(scripted_registry, tmp_path):
    """An attacker's image URL pointing inside (localhost, metadata) never gets a connection."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    policy = Policy(public=True, registry=scripted_registry, allow_custom_endpoints=False, allow_private_hosts=False,
                    allow_image_urls=True, allowed_hosts=frozenset({"127.0.0.1:*"}), limits=Limits())
    try:
        with serving(policy, RunStore(tmp_path / "r.sqlite")) as url:
            for target in (f"http://localhost:{port}/cat.png", "http://169.254.169.254/latest/meta-data/x.png",
                           f"http://[::1]:{port}/cat.png", f"http://0x7f000001:{port}/cat.png",
                           f"http://[64:ff9b::7f00:1]:{port}/cat.png", f"http://[::ffff:127.0.0.1]:{port}/cat.png"):
                r = post(url, {"model": "best", "messages": image(target)})
                assert r.status_code == 400 and "cannot be fetched from this server" in r.json()["error"]["message"]
            for target in (f"http://0177.0.0.1:{port}/cat.png", f"http://\u24dbocalhost:{port}/cat.png",
                           f"http://[::1:{port}/cat.png", "http://" + "a" * 300 + "/x.png"):
                r = post(url, {"model": "best", "messages": image(target)})  # malformed: a 400, never a 500
                assert r.status_code == 400 and r.json()["error"]["code"], (target, r.text)
        with pytest.raises(socket.timeout):
            listener.accept()  # nothing ever connected
    finally:
        listener.close()


def test_request_bodies_in_memory_have_a_budget(scripted_registry, tmp_path):
    """A slow client holding a large body open takes its share of max_bodies_bytes; another large body past the
    budget is a 429 at once, a small one still goes through, and the share is released when the request ends."""
    import json as _json
    import socket as _socket

    from workbench.serve.bodies import BODIES

    limits = replace(Limits(), max_request_bytes=6000, max_bodies_bytes=8000)
    policy = Policy(public=False, registry=scripted_registry, limits=limits)
    with serving(policy, RunStore(tmp_path / "r.sqlite")) as url:
        host, port = url.split("//")[1].split("/")[0].split(":")
        slow = _socket.create_connection((host, int(port)))
        slow.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 5000\r\n\r\n{")  # then nothing: a slow client
        try:
            for _ in range(100):
                if BODIES.held >= 5000:
                    break
                time.sleep(0.05)
            assert BODIES.held >= 5000
            big = _json.dumps({"model": "best", "messages": [{"role": "user", "content": "x" * 4000}]})
            r = post(url, raw=big.encode(), headers={"content-type": "application/json"})
            assert r.status_code == 429 and "other large requests" in r.json()["error"]["message"]
            assert post(url, {"model": "best", "messages": USER}).status_code == 200
        finally:
            slow.close()
        for _ in range(100):
            if BODIES.held == 0:
                break
            time.sleep(0.05)
        assert BODIES.held == 0


def test_a_body_that_does_not_arrive_in_time_is_a_408_and_its_share_is_released(scripted_registry, tmp_path):
    """A client sending a byte every few seconds: after body_read_s the server answers 408 and closes it."""
    import socket as _socket

    from workbench.serve.bodies import BODIES

    limits = replace(Limits(), body_read_s=1)
    policy = Policy(public=False, registry=scripted_registry, limits=limits)
    with serving(policy, RunStore(tmp_path / "r.sqlite")) as url:
        host, port = url.split("//")[1].split("/")[0].split(":")
        slow = _socket.create_connection((host, int(port)))
        slow.settimeout(10)
        t0 = time.monotonic()
        slow.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 5000\r\n\r\n{")
        answer = b""
        try:
            while True:
                try:
                    slow.sendall(b" ")
                except OSError:
                    pass
                piece = slow.recv(65536)
                if not piece:
                    break
                answer += piece
        except (TimeoutError, ConnectionResetError):  # reset: the server closed it, and our next byte hit that
            pass
        finally:
            slow.close()
        took = time.monotonic() - t0
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b'"code":"request_timeout"' in answer.replace(b" ", b"") and b"within 1 s" in answer
        assert 0.9 < took < 8
        assert post(url, {"model": "best", "messages": USER}).status_code == 200
        for _ in range(100):
            if BODIES.held == 0:
                break
            time.sleep(0.05)
        assert BODIES.held == 0


def test_large_bodies_leave_an_eighth_of_the_budget_to_small_requests():
    """Clients sending huge bodies fill at most 7/8 of max_bodies_bytes; an ordinary request still fits."""
    from workbench.serve.bodies import BodyBudget as _BodyBudget
    from workbench.serve.protocol import APIError

    b = _BodyBudget()
    budget = 16_000_000
    b.charge(7_000_000, budget, 7_000_000)
    b.charge(7_000_000, budget, 7_000_000)  # 14 MB = 7/8 of the budget
    with pytest.raises(APIError) as e:
        b.charge(1_500_000, budget, 1_500_000)
    assert e.value.status == 429
    with pytest.raises(APIError):  # a chunked body growing past 1 MB counts as large
        b.charge(200_000, budget, 1_100_000)
    for _ in range(10):  # small bodies still go in, up to the whole budget
        b.charge(150_000, budget, 150_000)
    assert b.held == 15_500_000
    with pytest.raises(APIError):
        b.charge(600_000, budget, 600_000)
