"""``workbench eval``."""

from __future__ import annotations

from ..fusion.modes import MODE_NAMES


def register(sub) -> None:
    s = sub.add_parser("eval", help="evaluate members, fusion modes and the oracle on a dataset")
    s.add_argument("--dataset", required=True, help="builtin:arithmetic[:easy|medium|hard], builtin:shapes or PATH.jsonl")
    s.add_argument("--pool", required=True, help="comma-separated members")
    s.add_argument("--judge")
    s.add_argument("--modes", default=",".join(MODE_NAMES), help="comma-separated: " + ", ".join(MODE_NAMES))
    s.add_argument("--rounds", type=int, default=2)
    s.add_argument("--limit", type=int)
    s.add_argument("--swap-k", type=int, default=1)
    s.add_argument("--inject", action="store_true", help="plant a judge-instructing candidate per item")
    s.add_argument("--max-new-tokens", type=int, default=256)
    s.add_argument("--concurrency", type=int, default=4)
    s.add_argument("--store", help="SQLite run store (caches member answers; makes runs resumable)")
    s.add_argument("--out", default="eval-out", help="where results and report.html go")
    s.set_defaults(func=cmd_eval)


def cmd_eval(args) -> int:
    from ..answers import split_pool
    from ..policy import Policy
    from ..settings import FusionSettings
    from ..store import RunStore
    from . import metrics, report
    from .harness import evaluate

    settings = FusionSettings(seed=0, rounds=args.rounds, swap_k=args.swap_k, max_new_tokens=args.max_new_tokens)
    df = evaluate(args.dataset, split_pool(args.pool), args.judge, split_pool(args.modes), settings, limit=args.limit,
                  inject=args.inject, concurrency=args.concurrency, store=RunStore(args.store), policy=Policy.for_host())
    paths = report.write(df, args.out)
    acc = metrics.accuracy_table(df)
    print(acc[["system", "n", "accuracy", "ci_low", "ci_high", "tokens_per_correct"]].to_string(index=False))
    print(f"\nwrote {paths['table']} and {paths['report']}")
    return 0
