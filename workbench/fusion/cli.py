"""``workbench fuse`` and ``workbench runs``."""

from __future__ import annotations

import asyncio
import json
import sys

from .modes import MODES, MODE_NAMES


def register(sub) -> None:
    s = sub.add_parser("fuse", help="run one fusion: a pool answers, a judge decides")
    s.add_argument("prompt")
    s.add_argument("--pool", required=True, help="comma-separated members, e.g. tiny-offline,tiny-offline:skeptic")
    s.add_argument("--judge", help="the judge model (not needed for --mode vote)")
    s.add_argument("--mode", default="best-of", choices=MODE_NAMES)
    s.add_argument("--rounds", type=int, default=2, help="debate rounds")
    s.add_argument("--image", action="append", metavar="PATH")
    s.add_argument("--max-new-tokens", type=int, default=256)
    s.add_argument("--temperature", type=float, default=0.7)
    s.add_argument("--seed", type=int)
    s.add_argument("--member-timeout", type=float, default=300.0)
    s.add_argument("--quorum", type=int, default=1)
    s.add_argument("--swap-k", type=int, default=1, help="judge k orderings (position-bias check)")
    s.add_argument("--store", help="SQLite run store (default: the user data directory)")
    s.add_argument("--no-store", action="store_true", help="do not save the run")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_fuse)

    s = sub.add_parser("runs", help="list, show, export, delete and re-judge stored runs")
    s.add_argument("action", choices=["list", "show", "export", "delete", "rejudge"])
    s.add_argument("run_id", nargs="?")
    s.add_argument("--format", choices=["json", "md"], default="md")
    s.add_argument("--out", help="write the export here instead of stdout")
    s.add_argument("--judge")
    s.add_argument("--mode", choices=[n for n, m in MODES.items() if not m.multi_round])
    s.add_argument("--limit", type=int, default=20)
    s.add_argument("--store")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_runs)


def cmd_fuse(args) -> int:
    from ..answers import split_pool
    from ..policy import Policy
    from ..settings import FusionSettings
    from ..store import RunStore
    from ..types import Prompt
    from .engine import fuse

    prompt = Prompt(args.prompt, images=args.image or [])
    store = None if args.no_store else RunStore(args.store)
    settings = FusionSettings(rounds=args.rounds, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                              seed=args.seed, member_timeout_s=args.member_timeout, quorum=args.quorum,
                              swap_k=args.swap_k)
    result = asyncio.run(fuse(prompt, split_pool(args.pool), args.judge, args.mode, settings, store=store,
                              policy=Policy.for_host(), origin="cli"))
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, default=str))
    else:
        from ..render import to_markdown

        print(to_markdown(result))
        if store is not None:
            print(f"saved as run {result.run_id} in {store.path}", file=sys.stderr)
    return 0


def cmd_runs(args) -> int:
    from ..errors import ConfigError
    from ..render import export
    from ..store import RunStore

    store = RunStore(args.store)
    if args.action == "list":
        rows = store.list(args.limit)
        if args.json:
            print(json.dumps(rows, indent=2))
        for r in rows if not args.json else []:
            flag = " (interrupted)" if r["status"] == "interrupted" else " (degraded)" if r["degraded"] else ""
            print(f"{r['run_id']}  {r['mode']:<8} {r['prompt'][:50]!r}{flag}")
        return 0
    if not args.run_id:
        raise ConfigError(f"runs {args.action} needs a run id (see `workbench runs list`)")
    if args.action == "delete":
        if not store.delete(args.run_id):
            raise ConfigError(f"no run {args.run_id!r}")
        print(f"deleted {args.run_id}")
        return 0
    if args.action == "rejudge":
        from .engine import rejudge

        old = store.load(args.run_id)
        new = asyncio.run(rejudge(old, args.judge, args.mode, images=store.images(args.run_id)))
        store.save(new, store.images(args.run_id))
        text = export(new, "json" if args.json else "md")
    else:
        text = export(store.load(args.run_id), "json" if args.format == "json" or args.json else "md")
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        print(text)
    return 0
