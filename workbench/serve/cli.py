"""``workbench serve``: the fused models of the models file as an OpenAI-compatible API, on uvicorn.

On SIGTERM or Ctrl-C it drains as ``workbench demo`` does: new requests get 503, runs in flight get
``--grace-s`` seconds, the rest are stored as interrupted, then models are unloaded and it exits 0.
"""

from __future__ import annotations

import os
import socket
import sys
import threading

from ..errors import ConfigError


def register(sub) -> None:
    s = sub.add_parser("serve", help="fused models as an OpenAI-compatible API (/v1/chat/completions)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--public", action="store_true",
                   help="public mode: clients may call only this host's fused and plain models, within its limits "
                        "(on by itself on Spaces or when --host is not loopback)")
    s.add_argument("--local", action="store_true",
                   help="local mode even when --host is not loopback (only on a network you trust)")
    s.add_argument("--api-key-env", metavar="NAME",
                   help="the environment variable holding the bearer token clients must send (none: no auth)")
    s.add_argument("--grace-s", type=float, default=float(os.environ.get("WORKBENCH_GRACE_S", 25)),
                   help="on SIGTERM / Ctrl-C, seconds runs in flight get to finish (default 25)")
    s.set_defaults(func=cmd_serve)


class UvicornThread:
    """uvicorn serving ``app`` from a thread (signals stay with the main thread, which drains)."""

    def __init__(self, app, host: str, port: int):
        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                                    lifespan="off", timeout_graceful_shutdown=5))
        self.thread = threading.Thread(target=self.server.run, name="workbench-serve", daemon=True)

    def start(self, timeout_s: float = 30.0) -> None:
        import time

        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise ConfigError("the API server did not start (see the messages above)")
            time.sleep(0.05)

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def cmd_serve(args) -> int:
    from ..serving import StopSignals

    stop = StopSignals()  # first: a signal during start-up still drains and exits 0
    from ..policy import Policy
    from ..storage import RunStore
    from .app import create_server_app

    policy = Policy.for_host(True if args.public else (False if args.local else None), bind_host=args.host)
    print(policy.describe(), file=sys.stderr, flush=True)
    if not port_free(args.host, args.port):
        raise ConfigError(f"port {args.port} on {args.host} is in use; choose another with --port")
    store = RunStore()
    app = create_server_app(policy, store, args.api_key_env)
    server = UvicornThread(app, args.host, args.port)
    server.start()
    from ..serving import serve_until_signal

    fused = ", ".join(policy.registry.fusions) or "none (add [fusions.NAME] tables to the models file)"
    print(f"serving http://{args.host}:{args.port}/v1 (OpenAI chat completions). Fused models: {fused}. "
          f"Runs are stored in {store.path}. Auth: "
          + (f"bearer token from ${args.api_key_env}" if args.api_key_env else "none"), file=sys.stderr, flush=True)
    serve_until_signal(server, args.grace_s, stop)
    return 0
