"""``workbench eval``."""

from __future__ import annotations

import sys

from ..fusion.modes import MODE_NAMES

#: instrument -> the fusion modes its evaluation needs (``workbench.experiments``)
EXPERIMENTS = {"debate_vs_vote": ("debate", "vote"), "agreement_gate": ("best-of",), "member_attribution": (),
               "judge_bias_sweep": (), "grounding": (), "image_ablation": (), "cost_matched_ablation": (),
               "quantization_panel": ()}


def register(sub) -> None:
    s = sub.add_parser("eval", help="evaluate members, fusion modes and the oracle on a dataset")
    s.add_argument("--dataset", required=True,
                   help="builtin:arithmetic[:easy|medium|hard], builtin:shapes, PATH.jsonl, "
                        "hf:REPO_OR_FOLDER[:CONFIG][@SPLIT], parquet:FILE, csv:FILE or jsonl:FILE")
    s.add_argument("--fields", help="which column is what, for hf:/parquet:/csv:/jsonl: datasets: "
                                    "input=COL,target=COL[,choices=COL][,image=COL[+COL]][,id=COL][,type=TYPE]")
    s.add_argument("--shuffle", type=int, metavar="SEED", help="take the items in a shuffled order (tables)")
    s.add_argument("--stratify", metavar="COLUMN", help="take the items in turn from each value of COLUMN (tables)")
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
    s.add_argument("--experiment", action="append", choices=EXPERIMENTS, metavar="NAME",
                   help="also run a research instrument on the evaluation's cached answers (repeatable): "
                        + ", ".join(EXPERIMENTS) + "; the modes it needs are added")
    s.set_defaults(func=cmd_eval)


def cmd_eval(args) -> int:
    from ..answers import split_pool
    from ..context import RunContext
    from ..settings import FusionSettings
    from ..storage import RunStore
    from . import metrics, report
    from .harness import evaluate

    from .tables import with_options

    args.dataset = with_options(args.dataset, args.fields, args.shuffle, args.stratify)
    settings = FusionSettings(seed=0, rounds=args.rounds, swap_k=args.swap_k, max_new_tokens=args.max_new_tokens)
    modes = split_pool(args.modes)
    for name in args.experiment or ():
        modes += [m for m in EXPERIMENTS[name] if m not in modes]
    df = evaluate(args.dataset, split_pool(args.pool), args.judge, modes, settings, limit=args.limit,
                  inject=args.inject, concurrency=args.concurrency, context=RunContext.for_cli(RunStore(args.store)))
    paths = report.write(df, args.out)
    if df.attrs.get("environment_differences"):
        print("warning: the rows compared here came from different environments (versions, code, device or "
              "models):\n  " + "\n  ".join(df.attrs["environment_differences"]), file=sys.stderr)
    acc = metrics.accuracy_table(df)
    print(acc[["system", "n", "accuracy", "ci_low", "ci_high", "tokens_per_correct"]].to_string(index=False))
    if skipped := df.attrs.get("skipped"):
        print(f"\n{len(skipped)} item(s) could not be read and were left out: "
              + "; ".join(f"{i}: {why}" for i, why in skipped[:10]), file=sys.stderr)
    print(f"\nwrote {paths['table']} and {paths['report']}")
    if args.experiment:
        run_experiments(df, args.experiment, args.judge, args.dataset, args.out, split_pool(args.pool),
                        store=RunStore(args.store), settings=settings, limit=args.limit,
                        mode=next((m for m in modes if m not in ("vote", "debate")), "best-of"))
    return 0


def run_experiments(df, names: list[str], judge: str | None, dataset: str, out: str,
                    pool: list[str] | None = None, store=None, settings=None, limit: int | None = None,
                    mode: str = "best-of") -> None:
    """Run instruments on an evaluation frame; print each summary, write its table (CSV) and one self-contained
    HTML page (what ran, a noise notice, per instrument its table, headline numbers and figure; plotly.js once)."""
    import html
    import json
    from pathlib import Path

    from .. import experiments as X
    from ..errors import ConfigError
    from .report import environment_html, figure_html, noise_notice, page, table_html

    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    items = int(df["item_id"].nunique()) if "item_id" in df else 0
    parts = [f"<h1>Research instruments: {html.escape(dataset)}</h1>",
             f"<p class='wb-summary'>{html.escape(', '.join(dict.fromkeys(names)))} on the cached member answers of "
             f"{items} items of {html.escape(dataset)} "
             f"(pool: {html.escape(', '.join(df.attrs.get('pool') or pool or []))}"
             f"; judge: {html.escape(str(judge))}). Each section shows the instrument's table, its headline numbers "
             "(with paired 95% intervals) and its figure; an interval that includes 0 is no evidence either way.</p>"]
    if notice := noise_notice(df):
        parts.append(f"<p class='wb-notice'>{html.escape(notice)}</p>")
    parts.append(environment_html(df))
    for name in dict.fromkeys(names):
        if name == "cost_matched_ablation":
            if not judge:
                raise ConfigError(f"{name} needs --judge")
            e = X.cost_matched_ablation(dataset, pool, judge, mode=mode, settings=settings, store=store, limit=limit)
        elif name in ("judge_bias_sweep", "grounding"):
            if not judge:
                raise ConfigError(f"{name} needs --judge")
            e = getattr(X, name)(df, judge, dataset=dataset)
        elif name == "quantization_panel":  # the first member's model, unquantized vs INT4, on this dataset
            from ..specs import load_registry

            first = load_registry().member(pool[0]).model if pool else None
            if first is None or first.backend == "openai":
                raise ConfigError("quantization_panel loads the first --pool member's model twice: it must be local")
            e = X.quantization_panel(first, datasets=[dataset], limit=limit, store=store)
        elif name == "image_ablation":
            e = X.image_ablation(df, pool=pool, dataset=dataset)
        elif name == "member_attribution":
            e = X.member_attribution(df)  # majority vote on subsets: no model call (Python: judge=... re-judges)
        else:
            e = getattr(X, name)(df)
        e.frame.to_csv(folder / f"{name}.csv", index=False)
        print(f"\n== {name} ({e.judge_calls} judge calls) ==\n{e.frame.to_string(index=False)}")
        print(json.dumps(e.summary, indent=1, default=str))
        parts += [f"<h2>{html.escape(name)}</h2>", f"<p class='muted'>{e.judge_calls} judge calls</p>",
                  table_html(e.frame), "<details><summary>headline numbers</summary><pre>"
                  + html.escape(json.dumps(e.summary, indent=1, default=str)) + "</pre></details>",
                  figure_html(e.figure, f"fig-{name}")]
    path = folder / "experiments.html"
    path.write_text(page("Research instruments", parts))
    print(f"\nwrote {path}")
