"""One key for every programmatic route: the bearer token API clients send, read from the host's environment."""

from __future__ import annotations

import hmac
import os
from typing import Any

from ..errors import ConfigError

BAD_KEY = "missing or invalid API key: send Authorization: Bearer <key>"


def api_token(api_key_env: str | None) -> str | None:
    """The bearer token programmatic clients must send (the value of ``api_key_env``); None: no key asked.

    Raises:
        ConfigError: the variable is named but unset or empty (a server that meant to be keyed never starts open).
    """
    if not api_key_env:
        return None
    token = os.environ.get(api_key_env, "").strip()
    if not token:
        raise ConfigError(f"--api-key-env {api_key_env}: that environment variable is not set (or empty); "
                          "set it to the token clients must send")
    return token


def bearer_ok(headers: Any, token: str | None) -> bool:
    """Whether a request's ``Authorization: Bearer`` header carries ``token`` (always, when no token is set)."""
    if token is None:
        return True
    scheme, _, given = (headers.get("authorization") or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())
