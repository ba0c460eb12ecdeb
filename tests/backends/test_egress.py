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
    monkeypatch.setenv("WORKBENCH_ALLOWED_HOSTS", "127.0.0.1:*")  # let the test reach its own listener
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


# what the second outside review got through: IPv4 carried inside IPv6 (NAT64, 6to4, IPv4-compatible, SIIT) and
# site-local; ``ipaddress`` alone calls them global
INSIDE = ["64:ff9b::a9fe:a9fe", "64:ff9b::7f00:1", "64:ff9b:1::a00:1", "2002:7f00:1::1", "::127.0.0.1",
          "::169.254.169.254", "::ffff:0:7f00:1", "fec0::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "2001::1",
          "2002:a9fe:a9fe::1", "64:ff9b::a00:1", "::", "::1", "fe80::1%eth0", "fc00::1", "0.0.0.0", "100.64.0.1",
          "169.254.169.254", "224.0.0.1", "240.0.0.1", "ff02::1"]
OUTSIDE = ["1.1.1.1", "2606:4700:4700::1111", "64:ff9b::808:808", "2002:808:808::1", "2a00:1450:4001:81c::200e"]


@pytest.mark.parametrize("addr", INSIDE)
def test_addresses_are_judged_by_what_they_reach(addr):
    from workbench.backends.egress import is_public_address

    assert not is_public_address(addr)


@pytest.mark.parametrize("addr", OUTSIDE)
def test_public_addresses_and_their_nat64_and_6to4_forms_pass(addr):
    from workbench.backends.egress import is_public_address

    assert is_public_address(addr)


@pytest.mark.parametrize("addr", ["64:ff9b::a9fe:a9fe", "::127.0.0.1", "fec0::1", "2002:7f00:1::1"])
def test_a_policy_refuses_them_in_a_base_url(addr, monkeypatch):
    from workbench.errors import PolicyError
    from workbench.policy import Policy

    monkeypatch.delenv("WORKBENCH_ALLOWED_HOSTS", raising=False)
    with pytest.raises(PolicyError, match="private address"):
        Policy.for_host(public=True).check_url(f"http://[{addr}]:8000/v1")


async def test_a_name_that_resolves_to_nat64_of_loopback_is_refused_at_connect_time(recorder, monkeypatch):
    """DNS64 answers a name with 64:ff9b::7f00:1 (loopback behind NAT64): nothing is sent, anywhere."""
    import socket

    port = int(recorder.rsplit(":", 1)[1].split("/")[0])
    real = socket.getaddrinfo

    def fake(host, *args, **kw):
        if host == "nat64.example":
            return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("64:ff9b::7f00:1", port, 0, 0))]
        return real(host, *args, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    monkeypatch.delenv("WORKBENCH_ALLOWED_HOSTS", raising=False)
    with wb.load_model(untrusted(f"http://nat64.example:{port}/v1")) as m:
        r = await m.generate("hi", max_new_tokens=4)
    assert not r.ok and r.kind == "policy" and "private address" in r.reason
    assert Recorder.seen == []


def test_an_allowed_host_is_allowed_on_the_ports_it_names_only(recorder):
    from workbench.backends.egress import allowed_hosts, host_allowed
    from workbench.errors import PolicyError
    from workbench.policy import Policy

    assert host_allowed("gpu.lab", 443, allowed_hosts("gpu.lab")) and host_allowed("gpu.lab", 80, allowed_hosts("gpu.lab"))
    assert not host_allowed("gpu.lab", 8000, allowed_hosts("gpu.lab"))
    assert host_allowed("GPU.lab.", 8000, allowed_hosts("gpu.lab:8000")) and not host_allowed("gpu.lab", 8001, allowed_hosts("gpu.lab:8000"))
    assert host_allowed("gpu.lab", 22, allowed_hosts("gpu.lab:*"))
    assert host_allowed("fd00::5", 8000, allowed_hosts("[fd00::5]:8000")) and not host_allowed("fd00::5", 9, allowed_hosts("[fd00::5]:8000"))
    port = int(recorder.rsplit(":", 1)[1].split("/")[0])
    pol = Policy.for_host(public=True)
    for allow, ok in ((f"127.0.0.1:{port}", True), ("127.0.0.1", False), (f"127.0.0.1:{port + 1}", False)):
        p = __import__("dataclasses").replace(pol, allowed_hosts=allowed_hosts(allow))
        if ok:
            p.check_url(recorder)
        else:
            with pytest.raises(PolicyError, match=f"WORKBENCH_ALLOWED_HOSTS=127.0.0.1:{port}"):
                p.check_url(recorder)
