"""``workbench fuse`` and ``workbench runs``."""

from __future__ import annotations

import asyncio
import json
import sys

from ..settings import BLIND_MEMBERS
from .modes import MODE_NAMES, MODES


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
    s.add_argument("--blind-members", choices=BLIND_MEMBERS, default="skip",
                   help="members that cannot see images, given --image: skip them (not asked, not judged) or tell "
                        "them an image they cannot see was attached (they answer from the text alone)")
    s.add_argument("--store", help="SQLite run store (default: the user data directory)")
    s.add_argument("--no-store", action="store_true", help="do not save the run")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_fuse)

    s = sub.add_parser("runs", help="list, show, export, delete, re-judge and label stored runs; the judge's "
                                     "agreement with your labels")
    s.add_argument("action", choices=["list", "show", "export", "delete", "rejudge", "label", "agreement"])
    s.add_argument("run_id", nargs="?")
    s.add_argument("--format", choices=["json", "md"], default="md")
    s.add_argument("--out", help="write the export here instead of stdout")
    s.add_argument("--judge")
    s.add_argument("--mode", choices=list(MODES), help="rejudge: the new mode (not debate); list: only this mode")
    s.add_argument("--limit", type=int, default=20)
    s.add_argument("--origin", help="list: only runs from page, api, gradio-api, cli, python, eval (any evaluation) "
                                    "or eval:DATASET")
    s.add_argument("--search", help="list: words that must all appear in the prompt, answer, pool or judge")
    s.add_argument("--all", action="store_true", help="list: include evaluation items (hidden by default)")
    s.add_argument("--best", help="label: the best member answer (its number from 1, or its name; 0: none stands out)")
    s.add_argument("--fused", choices=["better", "same", "worse"],
                   help="label: the fused answer compared with the best member answer")
    s.add_argument("--store")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_runs)


def cmd_fuse(args) -> int:
    from ..answers import split_pool
    from ..context import RunContext
    from ..settings import FusionSettings
    from ..storage import RunStore
    from ..types import Prompt
    from .engine import fuse

    prompt = Prompt(args.prompt, images=args.image or [])
    store = None if args.no_store else RunStore(args.store)
    settings = FusionSettings(rounds=args.rounds, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                              seed=args.seed, member_timeout_s=args.member_timeout, quorum=args.quorum,
                              swap_k=args.swap_k, blind_members=args.blind_members)
    result = asyncio.run(fuse(prompt, split_pool(args.pool), args.judge, args.mode, settings,
                              context=RunContext.for_cli(store)))
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, default=str))
    else:
        from ..render import to_markdown

        print(to_markdown(result))
        if store is not None:
            print(f"saved as run {result.run_id} in {store.path}", file=sys.stderr)
    return 0


def list_line(r: dict) -> str:
    """One run as a line of `runs list`: time, origin, mode, pool -> verdict, cost, label, prompt, id."""
    import time

    flag = " (interrupted)" if r["status"] == "interrupted" else " (degraded)" if r["degraded"] else ""
    cost = f"${r['cost_usd']:.4f}" if r.get("cost_usd") is not None else "-"
    lab = r.get("label") or {}
    label = f" [you: {lab.get('fused') or 'picked'}]" if lab else ""
    verdict = f" -> {r['winner']}" if r.get("winner") else ""
    return (f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(r['created_at']))}  {r.get('origin') or 'unknown':<10} "
            f"{r['mode']:<8} {(r.get('pool') or '')[:40]}{verdict}  {cost}  {r['prompt'][:40]!r}{flag}{label}  "
            f"{r['run_id']}")


def _member_index(result, best: str) -> int | None:
    """--best as a pool index: a number from 1 (0: none stands out) or a member's name."""
    from ..errors import ConfigError

    labels = [o.label for o in result.outputs]
    if best.strip().isdigit():
        n = int(best)
        if n == 0:
            return -1  # none stands out
        if 1 <= n <= len(labels):
            return result.outputs[n - 1].member
    elif best in labels:
        return result.outputs[labels.index(best)].member
    raise ConfigError(f"--best {best!r}: give 1..{len(labels)} or one of {', '.join(labels)} (0: none stands out)")


def cmd_runs(args) -> int:
    from ..context import RunContext
    from ..errors import ConfigError
    from ..render import export
    from ..storage import RunStore

    store = RunStore(args.store)
    if args.action == "list":
        filters = dict(origin=args.origin, mode=args.mode, search=args.search, include_eval=args.all)
        rows = store.list(args.limit, **filters)
        if args.json:
            print(json.dumps(rows, indent=2))
            return 0
        for r in rows:
            print(list_line(r))
        total = store.count(**filters)
        n_hidden = 0 if args.all or args.origin else store.count(**{**filters, "include_eval": True}) - total
        hidden = f"; {n_hidden} evaluation item(s) hidden (--all shows them)" if n_hidden else ""
        print(f"{len(rows)} of {total} run(s){hidden}; store: {store.path}", file=sys.stderr)
        return 0
    if args.action == "agreement":
        from ..storage.labels import agreement, agreement_markdown

        a = agreement(store.labelled_runs(include_eval=True))  # as History and Evaluate report it
        print(json.dumps(a, indent=2, default=str) if args.json else agreement_markdown(a).replace("**", ""))
        return 0
    if not args.run_id:
        raise ConfigError(f"runs {args.action} needs a run id (see `workbench runs list`)")
    if args.action == "delete":
        if not store.delete(args.run_id):
            raise ConfigError(f"no run {args.run_id!r}")
        print(f"deleted {args.run_id}")
        return 0
    if args.action == "label":
        from ..storage.labels import NONE_STANDS_OUT

        result = store.load(args.run_id)
        best = _member_index(result, args.best) if args.best is not None else None
        lab = store.set_label(args.run_id, best, args.fused)
        names = {NONE_STANDS_OUT: "none stands out", None: "-"}
        picked = names[best] if best is None or best in names else result.pool[best].get("label", best)
        print(json.dumps(lab) if args.json else f"labelled {args.run_id}: best {picked}, fused {lab['fused'] or '-'}")
        return 0
    if args.action == "rejudge":
        from .engine import rejudge

        old = store.load(args.run_id)
        new = asyncio.run(rejudge(old, args.judge, args.mode, images=store.images(args.run_id),
                                  context=RunContext.for_cli(store)))  # saved in the store
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
