"""Who runs a fusion, where, and against what: a ``RunContext``, built in one place for each entry point.

``fuse``, ``fuse_stream``, ``rejudge`` and ``evaluate`` take one (``context=``); what to run (the prompt, the
pool, the judge, the mode, the settings) stays in their own arguments. The entry points build theirs here:

- a notebook or script: ``RunContext()`` (local: trusted, nothing stored) or ``RunContext(store=RunStore())``;
- the CLI: ``RunContext.for_cli(store)``;
- the page and the Gradio API: ``RunContext.for_page(request, policy, store, origin=...)``;
- the OpenAI-compatible API: ``RunContext.for_api(request, policy, store)``.

On a public server a run belongs to its visitor (``owner``: the page's cookie token, hashed; an API client's
address) and counts against the visitor's limit of runs in flight (``quota``: the client's address, an IPv6
client's /64); on a local one nobody owns a run (every run is shared, as on the researcher's own machine) and only
the server's total counts.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Awaitable
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from typing import Any, TypeVar

from .policy import Policy, quota_key
from .shutdown import run_tracked
from .specs import Registry, load_registry
from .storage import RunStore

T = TypeVar("T")

#: the cookie holding a visitor's random token (set by the page, see ``ui.gradio_app.VISITOR_JS``)
VISITOR_COOKIE = "wb_visitor"


@dataclass(frozen=True)
class RunContext:
    """The part of a run that is about the caller, not the question.

    Attributes:
        registry: presets to resolve names (None: the policy's, else the shipped presets + the user's models file).
        store: a RunStore to save finished runs in, with their images (None: not stored).
        policy: what the caller may name, reach and spend (``workbench.policy``); None trusts the caller.
        owner: who the run belongs to (a public server's visitor), stored with it; None: shared.
        quota: who the policy's runs-in-flight limit counts the run against (a client's address); None counts it in
            the server's total only (a run inside an evaluation that is counted as a whole).
        origin: where the run came from, stored with it and shown in History: "python", "cli", "page", "gradio-api",
            "api", or "eval:DATASET" for an evaluation's items.
    """

    registry: Registry | None = None
    store: RunStore | None = None
    policy: Policy | None = None
    owner: str | None = None
    quota: str | None = None
    origin: str = "python"

    def replace(self, **changes: Any) -> RunContext:
        return dataclasses.replace(self, **changes)

    def resolved_registry(self) -> Registry:
        """The registry names are resolved in: this context's, else the policy's (the host's models), else the
        shipped presets and the user's models file."""
        if self.registry is not None:
            return self.registry
        return self.policy.registry if self.policy is not None else load_registry()

    @property
    def public(self) -> bool:
        return self.policy is not None and self.policy.public

    async def tracked(self, work: Awaitable[T], what: str) -> T:
        """Run ``work`` (a re-judge, a whole evaluation, an instrument) as one run counted against this context's
        quota and the server's total; a draining server waits for it, then stops it (ShuttingDownError naming
        ``what``)."""
        lim = self.policy.limits if self.policy is not None else None
        return await run_tracked(work, what, self.quota, lim.runs_per_session if lim else None,
                                 lim.runs_total if lim else None)

    @classmethod
    def for_cli(cls, store: RunStore | None) -> RunContext:
        """The command line: the researcher's own call, checked by this machine's policy (local unless the
        environment says it is a Space); runs shared."""
        return cls(store=store, policy=Policy.for_host(), origin="cli")

    @classmethod
    def for_page(cls, request: Any, policy: Policy, store: RunStore | None, registry: Registry | None = None,
                 origin: str = "page") -> RunContext:
        """A call from the page or the Gradio API (``request``: Gradio's ``gr.Request``, or None)."""
        return cls(registry=registry, store=store, policy=policy, owner=page_owner(request, policy),
                   quota=client_quota(request, policy), origin=origin)

    @classmethod
    def for_api(cls, request: Any, policy: Policy, store: RunStore | None) -> RunContext:
        """A call to the OpenAI-compatible API (``request``: Starlette's). On a public server its runs belong to
        the client's address (an API client has no cookie of the page's)."""
        owner = f"api:{_client_host(request) or 'unknown'}" if policy.public else None
        return cls(registry=policy.registry, store=store, policy=policy, owner=owner,
                   quota=client_quota(request, policy), origin="api")


def with_shorthands(context: RunContext | None, *, store: RunStore | None = None,
                    registry: Registry | None = None) -> RunContext:
    """``context`` (default: a local one) with ``fuse``'s and ``evaluate``'s ``store=`` and ``registry=``
    shorthands applied on top (a notebook writes ``fuse(..., store=store)``)."""
    context = context or RunContext()
    if store is not None:
        context = context.replace(store=store)
    if registry is not None:
        context = context.replace(registry=registry)
    return context


def _client_host(request: Any) -> str | None:
    return getattr(getattr(request, "client", None), "host", None)


def visitor_token(request: Any) -> str | None:
    """The visitor's token from its cookie, when it looks like one the page made (32 to 128 hex characters)."""
    headers = getattr(request, "headers", None) or {}
    raw = headers.get("cookie") if hasattr(headers, "get") else None
    if not raw:
        return None
    try:
        jar: SimpleCookie = SimpleCookie()
        jar.load(raw)
    except CookieError:
        return None
    morsel = jar.get(VISITOR_COOKIE)
    token = morsel.value if morsel is not None else ""
    return token if 32 <= len(token) <= 128 and all(c in "0123456789abcdef" for c in token) else None


def page_owner(request: Any, policy: Policy) -> str | None:
    """Whose runs these are on a public server: the visitor's (its cookie token, hashed: the same after a reload;
    without one, its page session); nobody's (shared) locally."""
    if not policy.public:
        return None
    token = visitor_token(request)
    if token:
        return "visitor:" + hashlib.sha256(token.encode()).hexdigest()[:32]
    return getattr(request, "session_hash", None) or "anonymous"


def client_quota(request: Any, policy: Policy) -> str | None:
    """Who the runs-in-flight limit counts on a public server: the client's address (a session id or a cookie is
    the client's to choose); None locally."""
    return quota_key(_client_host(request)) if policy.public else None
