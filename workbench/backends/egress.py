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


def allowed_hosts(text: str | None = None) -> frozenset[str]:
    """Hosts the host lets visitors' endpoints reach even when private (``WORKBENCH_ALLOWED_HOSTS``): entries are
    ``name`` (ports 80 and 443 only), ``name:PORT`` (that port) or ``name:*`` (any port, said so on purpose);
    an IPv6 address in brackets (``[fd00::5]:8000``)."""
    text = os.environ.get("WORKBENCH_ALLOWED_HOSTS", "") if text is None else text
    return frozenset(h.strip().lower() for h in text.split(",") if h.strip())


def host_allowed(host: str, port: int, allow: frozenset[str]) -> bool:
    """Whether ``host:port`` is one of the allowed entries (see ``allowed_hosts``)."""
    if not allow:
        return False
    name = host.lower().rstrip(".")
    names = {name, f"[{name}]"} if ":" in name else {name}
    return any(f"{n}:{port}" in allow or f"{n}:*" in allow or (port in (80, 443) and n in allow) for n in names)


_V4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated IPv4-compatible (::a.b.c.d), and :: itself
_V4_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")  # SIIT (RFC 2765): ::ffff:0:a.b.c.d
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # the well-known NAT64 prefix (RFC 6052): the last 32 bits
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # local-use NAT64 (RFC 8215): operator-chosen embedding
_SITE_LOCAL = ipaddress.ip_network("fec0::/10")  # deprecated, still routed inside some networks


def _public_v4(ip: ipaddress.IPv4Address) -> bool:
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified)


def is_public_address(addr: str) -> bool:
    """Whether a connection to ``addr`` reaches the public internet only, judged by what it really reaches:
    an IPv6 address that carries an IPv4 one (IPv4-mapped, IPv4-compatible, SIIT, NAT64, 6to4) is judged by the
    IPv4 address it carries, since a host that routes it reaches that address; forms whose embedding the
    server cannot know (local-use NAT64, Teredo) and site-local ones are refused. ``ipaddress`` alone calls
    several of these global (``64:ff9b::a9fe:a9fe`` is the metadata service behind NAT64)."""
    try:
        ip = ipaddress.ip_address(addr.split("%")[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv4Address):
        return _public_v4(ip)
    if ip.ipv4_mapped is not None:
        return _public_v4(ip.ipv4_mapped)
    if ip in _NAT64:
        return _public_v4(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    if ip.sixtofour is not None:
        return _public_v4(ip.sixtofour)
    if ip in _V4_COMPATIBLE or ip in _V4_TRANSLATED or ip in _NAT64_LOCAL or ip in _SITE_LOCAL \
            or ip.teredo is not None:
        return False
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified or ip.is_site_local)


def public_addresses(host: str, port: int, allow: frozenset[str] = frozenset()) -> list[str]:
    """The addresses ``host`` resolves to; PolicyError unless every one is public (or the host is allowed)."""
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError, ValueError):
        raise PolicyError(f"the endpoint host {host!r} cannot be reached") from None
    addrs = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if host_allowed(host, port, allow):
        return addrs
    for addr in addrs:
        if not is_public_address(addr):
            raise PolicyError(f"the endpoint host {host!r} cannot be reached from this server (a local or "
                              f"private address; the host can allow it with WORKBENCH_ALLOWED_HOSTS={host}:{port})")
    return addrs


def guarded_http_client(timeout: Any):
    """The openai SDK's own async HTTP client (httpx or httpx2, whichever the SDK is built on) for untrusted
    endpoints (see the module docstring); ``timeout`` is of the SDK's type (``sdk_http.sdk_timeout``)."""
    import openai

    from .sdk_http import sdk_http

    http: Any = sdk_http()  # the httpx or httpx2 module

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
