"""Request bodies: read within a time and size limit, and charged to one budget for what the server holds at once."""

from __future__ import annotations

import asyncio

from fastapi import Request

from . import protocol as P


class BodyBudget:
    """Request bodies held in memory at once, in bytes (``Limits.max_bodies_bytes``): a body is charged as it is
    read (its declared length up front) and released when its request is done; past the budget: 429.

    Large bodies (over ``SMALL`` bytes) may fill only seven eighths of the budget: the rest is kept for small ones,
    so that clients sending huge bodies cannot make an ordinary request wait."""

    SMALL = 1_000_000

    def __init__(self) -> None:
        self.held = 0
        self.peak = 0

    def charge(self, n: int, budget: int, body: int = 0) -> None:
        """Charge ``n`` more bytes of a body that will then be ``body`` bytes long."""
        if self.held + n > (budget if max(body, n) <= self.SMALL else budget - budget // 8):
            raise P.APIError(429, "the server is reading other large requests; try again in a moment",
                             "rate_limit_exceeded", headers={"Retry-After": "1"})
        self.held += n  # one event loop: no lock needed
        self.peak = max(self.peak, self.held)

    def release(self, n: int) -> None:
        self.held -= n


BODIES = BodyBudget()


async def read_body(request: Request, limit: int, budget: int, charged: list[int], within_s: float) -> bytes:
    """The body, at most ``limit`` bytes (413), charged to ``BODIES`` as it arrives; ``charged[0]`` says how much
    (the caller releases it). A body that has not all arrived ``within_s`` seconds after the headers is a 408 and
    the connection is closed (a client sending a byte every few seconds holds its share of the budget no longer)."""
    try:
        async with asyncio.timeout(within_s):
            return await _read_all(request, limit, budget, charged)
    except TimeoutError:
        raise P.APIError(408, f"the request body did not arrive within {within_s:g} s", "request_timeout",
                         headers={"Connection": "close"}) from None


async def _read_all(request: Request, limit: int, budget: int, charged: list[int]) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise P.APIError(413, f"the request body is {int(declared):,} bytes; this server takes at most {limit:,}",
                         "request_too_large")
    if declared and declared.isdigit():
        BODIES.charge(int(declared), budget, int(declared))
        charged[0] += int(declared)
    body = bytearray()
    async for piece in request.stream():
        body += piece
        if len(body) > limit:
            raise P.APIError(413, f"the request body is over this server's limit of {limit:,} bytes",
                             "request_too_large")
        if len(body) > charged[0]:  # chunked, or longer than declared
            BODIES.charge(len(body) - charged[0], budget, len(body))
            charged[0] = len(body)
    return bytes(body)
