"""``workbench demo``: launch the Gradio app."""

from __future__ import annotations

import os


def register(sub) -> None:
    s = sub.add_parser("demo", help="launch the Gradio workbench")
    s.add_argument("--preset", default="auto", help="model to start on (auto: Scout INT4 if it can run, else tiny)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int)
    s.add_argument("--pool", help="starting pool, comma-separated members (default: the preset with personas)")
    s.add_argument("--share", action="store_true", help="a public gradio.live link (needs network); implies --public")
    s.add_argument("--local", action="store_true",
                   help="local mode even when --host is not loopback (only on a network you trust)")
    s.add_argument("--public", action="store_true",
                   help="public mode: visitors may name only this host's models, reach no private address, use "
                        "no key variable of their own, and see only their own runs (on by itself on Spaces)")
    s.add_argument("--api-key-env", metavar="NAME",
                   help="every programmatic route (the OpenAI-compatible API at /v1, the /fuse and /evaluate API "
                        "endpoints) requires the bearer token in this environment variable; the page does not")
    s.add_argument("--grace-s", type=float, default=float(os.environ.get("WORKBENCH_GRACE_S", 25)),
                   help="on SIGTERM / Ctrl-C, seconds that runs in flight get to finish before they are recorded "
                        "as interrupted (default 25, or $WORKBENCH_GRACE_S)")
    s.set_defaults(func=cmd_demo)


def cmd_demo(args) -> int:
    from .serving import StopSignals

    stop = StopSignals()  # first: a SIGTERM while the app starts still drains and exits 0
    from .answers import split_pool
    from .ui.gradio_app import launch

    launch(args.preset, args.host, args.port, pool=split_pool(args.pool) or None, share=args.share,
           grace_s=args.grace_s, stop=stop, public=True if args.public else (False if args.local else None),
           api_key_env=args.api_key_env)
    return 0
