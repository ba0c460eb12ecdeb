"""Requests to an endpoint a visitor typed: no redirects, no private addresses at connect time, no host headers.

A visitor's endpoint (``ModelSpec.untrusted``) is called through ``guarded_http_client``:

- the host name is resolved once per request, every address must be public (unless the host allows the
  name in ``WORKBENCH_ALLOWED_HOSTS``), and the connection goes to that address (TLS still checks the
  name): a DNS answer that changes between the check and the connection (rebinding) cannot reach inside;
- redirects are not followed (a 30x to a metadata address stays a failed request);
- headers are an allowlist and ``Authorization`` is a dummy: whatever the host's environment adds to
  OpenAI SDK requests (``OPENAI_CUSTOM_HEADERS``, organisation, project) never leaves for that URL.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from typing import Any

from ..errors import PolicyError

SAFE_HEADERS = {"host", "content-type", "content-length", "accept", "accept-encoding", "user-agent", "connection"}


def allowed_hosts() -> frozenset[str]:
    """Hosts the host lets visitors' endpoints reach even when private (``WORKBENCH_ALLOWED_HOSTS``)."""
    return frozenset(h.strip().lower() for h in os.environ.get("WORKBENCH_ALLOWED_HOSTS", "").split(",") if h.strip())


def public_addresses(host: str, port: int, allow: frozenset[str] = frozenset()) -> list[str]:
    """The addresses ``host`` resolves to; PolicyError unless every one is public (or the host is allowed)."""
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError, ValueError):
        raise PolicyError(f"the endpoint host {host!r} cannot be reached") from None
    addrs = list(dict.fromkeys(info[4][0] for info in infos))
    if host.lower().rstrip(".") in allow:
        return addrs
    for addr in addrs:
        ip = ipaddress.ip_address(addr.split("%")[0])
        if not ip.is_global or ip.is_multicast:  # loopback, private, link-local (metadata), reserved
            raise PolicyError(f"the endpoint host {host!r} cannot be reached from this server (a local or "
                              f"private address; the host can allow it with WORKBENCH_ALLOWED_HOSTS)")
    return addrs


def guarded_http_client(timeout: Any):
    """The openai SDK's own async HTTP client (httpx or httpx2, whichever the SDK is built on) for untrusted
    endpoints (see the module docstring); ``timeout`` is of the SDK's type (``sdk_http.sdk_timeout``)."""
    import openai

    from .sdk_http import sdk_http

    http = sdk_http()

    class PinnedTransport(http.AsyncHTTPTransport):
        async def handle_async_request(self, request):
            import asyncio

            host = request.url.host
            port = request.url.port or (443 if request.url.scheme == "https" else 80)
            addrs = await asyncio.to_thread(public_addresses, host, port, allowed_hosts())
            ip = addrs[0]
            request.extensions = {**request.extensions, "sni_hostname": host}
            request.url = request.url.copy_with(host=ip)  # connect to the address that was checked
            request.headers["host"] = host if request.url.port in (None, 80, 443) else f"{host}:{port}"
            return await super().handle_async_request(request)

    async def strip_headers(request) -> None:
        for name in list(request.headers):
            if name.lower() not in SAFE_HEADERS and not name.lower().startswith("x-stainless-"):
                del request.headers[name]
        request.headers["authorization"] = "Bearer not-needed"

    return openai.DefaultAsyncHttpxClient(transport=PinnedTransport(), timeout=timeout, follow_redirects=False,
                                          event_hooks={"request": [strip_headers]})
