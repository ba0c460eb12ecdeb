"""The HTTP library the installed ``openai`` SDK talks through, and objects of its own types.

openai 1.x and 2.x are built on ``httpx``; openai 3.x on ``httpx2``, whose client refuses an ``httpx.Timeout``
(``TypeError: Invalid timeout``; see FACTS.md at the repo root). Nothing here builds an object of one library and
hands it to an SDK built on the other: timeouts are ``openai.Timeout``, clients ``openai.DefaultAsyncHttpxClient``,
transports and exceptions come from the module that client class is defined on.
"""

from __future__ import annotations

import functools
import importlib
from types import ModuleType
from typing import Any

_HTTP_LIBS = ("httpx2", "httpx")


@functools.cache
def sdk_http() -> ModuleType:
    """The module (``httpx`` or ``httpx2``) whose ``AsyncClient`` the installed openai SDK subclasses."""
    import openai

    for cls in openai.DefaultAsyncHttpxClient.__mro__:
        root = cls.__module__.split(".")[0]
        if root in _HTTP_LIBS:
            return importlib.import_module(root)
    raise RuntimeError(f"openai {openai.__version__}: its HTTP client is built on none of {_HTTP_LIBS}")


def sdk_timeout(total_s: float, connect_s: float) -> Any:
    """A timeout of the SDK's own type: ``total_s`` for reads and writes, ``connect_s`` to connect."""
    import openai

    return openai.Timeout(total_s, connect=min(connect_s, total_s))


def transport_errors() -> tuple[type[BaseException], ...]:
    """The SDK's HTTP library's errors for a connection cut or garbled mid-stream (outside the SDK's own)."""
    http = sdk_http()
    return http.TransportError, http.DecodingError
