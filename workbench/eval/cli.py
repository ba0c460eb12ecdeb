"""``workbench eval``."""

from __future__ import annotations


def register(sub) -> None:
    s = sub.add_parser("eval", help="evaluate members, fusion modes and the oracle on a dataset")
    s.add_argument("--dataset", required=True, help="builtin:arithmetic, builtin:shapes or PATH.jsonl")
    s.add_argument("--pool", required=True, help="comma-separated members")
    s.add_argument("--judge")
    s.add_argument("--modes", default="best-of,merge,debate,vote")
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
    from ..store import RunStore
    from . import metrics, report
    from .harness import evaluate

    df = evaluate(args.dataset, [p for p in args.pool.split(",") if p.strip()], args.judge,
                  [m.strip() for m in args.modes.split(",") if m.strip()], rounds=args.rounds, limit=args.limit,
                  swap_k=args.swap_k, inject=args.inject, max_new_tokens=args.max_new_tokens,
                  concurrency=args.concurrency, store=RunStore(args.store))
    paths = report.write(df, args.out)
    acc = metrics.accuracy_table(df)
    print(acc[["system", "n", "accuracy", "ci_low", "ci_high", "tokens_per_correct"]].to_string(index=False))
    print(f"\nwrote {paths['table']} and {paths['report']}")
    return 0
