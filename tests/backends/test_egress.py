"""A visitor's endpoint is called without redirects, without the host's headers, and never on a private address."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import workbench as wb
from workbench.specs import ModelSpec


class Recorder(BaseHTTPRequestHandler):
    seen: list = []

    def log_message(self, *args):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        Recorder.seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
        self.send_response(307)  # to the cloud metadata address
        self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def recorder():
    Recorder.seen = []
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/v1"
    srv.shutdown()


def untrusted(url: str) -> ModelSpec:
    return ModelSpec(name="visitor", backend="openai", model="m", base_url=url, untrusted=True)


async def test_no_host_header_no_key_and_no_redirect(recorder, monkeypatch):
    monkeypatch.setenv("WORKBENCH_ALLOWED_HOSTS", "127.0.0.1")  # let the test reach its own listener
    monkeypatch.setenv("OPENAI_CUSTOM_HEADERS", "X-Secret: s3cr3t\nAuthorization: Bearer HOSTKEY")
    monkeypatch.setenv("OPENAI_ORG_ID", "org-host")
    with wb.load_model(untrusted(recorder)) as m:
        r = await m.generate("hi", max_new_tokens=4)
    assert not r.ok  # the 307 was not followed
    assert len(Recorder.seen) >= 1 and all(p == "/v1/chat/completions" for p, _ in Recorder.seen)
    for _, headers in Recorder.seen:
        assert "x-secret" not in headers and "openai-organization" not in headers
        assert headers["authorization"] == "Bearer not-needed"


async def test_a_private_address_is_refused_at_connect_time(recorder, monkeypatch):
    monkeypatch.delenv("WORKBENCH_ALLOWED_HOSTS", raising=False)
    with wb.load_model(untrusted(recorder)) as m:  # as if DNS had changed since the policy's check
        r = await m.generate("hi", max_new_tokens=4)
    assert not r.ok and Recorder.seen == []
