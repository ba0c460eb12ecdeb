"""The Evaluate tab: a small built-in dataset through members, fusion modes and the oracle, with the
same figures the notebooks and `workbench eval` show."""

from __future__ import annotations

import asyncio

import gradio as gr

from ..context import RunContext, page_owner
from ..errors import WorkbenchError
from ..eval.metrics import metric_lines
from ..fusion.modes import MODE_NAMES
from ..policy import Policy
from ..settings import FusionSettings
from ..store import RunStore
from .pool import members_from_rows


def build_evaluate_tab(pool_df, judge_dd, saved, store: RunStore, policy: Policy, api_token: str | None = None):
    """Lay out the tab inside the current Blocks; pool and judge come from the Fuse tab's controls.
    Returns (the judge-vs-you Markdown, the handler that fills it) for the page's load. ``api_token``: the key
    the ``/evaluate`` API endpoint asks of clients (None: none; the page's own button never asks)."""
    with gr.Tab("Evaluate"):
        gr.Markdown("Run the pool (from the Fuse tab) on a generated dataset with ground truth: each member alone, "
                    "each fusion mode, and the oracle (is any member right?). Member answers are cached, so adding "
                    "a mode later does not regenerate them.")
        with gr.Row():
            dataset = gr.Dropdown(["builtin:arithmetic:easy", "builtin:arithmetic:medium", "builtin:arithmetic",
                                   "builtin:shapes"], value="builtin:arithmetic:easy",
                                  label="Dataset", elem_id="eval-dataset")
            limit = gr.Slider(1, 50, value=4, step=1, label="Items")
            modes = gr.CheckboxGroup(list(MODE_NAMES), value=["best-of", "vote"], label="Modes")
            swap = gr.Checkbox(False, label="Position check (2 orderings)")
            inject = gr.Checkbox(False, label="Injection probe")
            tokens = gr.Slider(16, 1024, value=64, step=16, label="Max new tokens")
        run_btn = gr.Button("Evaluate", variant="primary", elem_id="eval-run")
        status = gr.Markdown("", elem_id="eval-status")
        table = gr.Dataframe(label="Accuracy per system", interactive=False, elem_id="eval-table")
        with gr.Row():
            acc_plot = gr.Plot(label="Accuracy")
            cost_plot = gr.Plot(label="Accuracy vs cost")
        with gr.Row():
            judge_plot = gr.Plot(label="Judge")
            debate_plot = gr.Plot(label="Debate")
        with gr.Accordion("Judge vs you (your labels of runs, from the Label tab, History or the Fuse tab)",
                          open=True, elem_id="eval-agreement-acc"):
            agree_md = gr.Markdown("", elem_id="eval-agreement")
            agree_btn = gr.Button("Refresh", size="sm", elem_id="eval-agreement-refresh")
        last = gr.State(None)  # this session's last evaluation frame (kept on the server), for the instruments
        with gr.Accordion("Research instruments (on the cached answers of the last evaluation)", open=False):
            gr.Markdown("Where the gain comes from and what the judge does, from the answers already cached: "
                        "**debate vs vote** (needs the debate and vote modes), **agreement gate** (skip the judge "
                        "when k of n members agree; needs best-of), **member attribution** (leave-one-out and "
                        "Shapley values, by majority vote on every subset: no model call), **judge bias sweep** "
                        "(the judge over up to 6 orderings per item, labels shuffled: it calls the judge), "
                        "**grounding** (the judge's analysis of the answers, every quote checked against the answer "
                        "it cites: one judge call per item; the analyses are shown below with unfound quotes marked), "
                        "**image ablation** (vision members answer the image items again without the image and "
                        "with a blank one: two generations per item and member), **cost-matched ablation** (the pool "
                        "vs k samples of its best member vs k samples of the judge's model, fused the same way: "
                        "diversity vs synthesis; it generates the two sampled pools), **quantization panel** (the "
                        "first member's model unquantized vs INT4, and with a 4-bit vision tower for a vision model: "
                        "what is really 4-bit, agreement and accuracy; it loads the model two or three times).")
            instruments = gr.CheckboxGroup(list(INSTRUMENTS), value=["debate_vs_vote", "agreement_gate",
                                                                       "member_attribution"],
                                           label="Instruments", elem_id="eval-instruments")
            inst_btn = gr.Button("Run instruments", elem_id="eval-instruments-run")
            inst_status = gr.Markdown("", elem_id="eval-instruments-status")
            inst_plots = []
            for pair in range(0, len(INSTRUMENTS), 2):  # two a row: six in one row were too narrow to read
                with gr.Row():
                    inst_plots += [gr.Plot(label=name.replace("_", " ")) for name in INSTRUMENTS[pair:pair + 2]]
            analyses = gr.Markdown("", elem_id="eval-analyses")

        async def run(ds, n, chosen, swap_on, inject_on, max_tokens, rows, judge, state,
                      request: gr.Request | None = None, progress=gr.Progress(track_tqdm=True)):
            from .. import plots
            from ..eval import metrics
            from ..eval.harness import evaluate_async

            try:
                reg = await asyncio.to_thread(policy.registry_with, (state or {}).get("endpoints", []))
                members = members_from_rows(rows, reg, policy)
                if not members:
                    raise WorkbenchError("the pool is empty: add members on the Fuse tab")
                if not chosen:
                    raise WorkbenchError("pick at least one mode")
                settings = FusionSettings(seed=0, swap_k=2 if swap_on else 1, max_new_tokens=int(max_tokens))
                df = await evaluate_async(ds, members, policy.member(judge, reg) if judge else None, chosen,
                                          settings, limit=int(n), inject=inject_on,
                                          context=RunContext.for_page(request, policy, store, reg))
            except WorkbenchError as exc:
                return f"⚠ {exc}", None, None, None, None, None, None
            s = metrics.summary(df)
            acc = s["accuracy"]
            shown = acc[["system", "n", "accuracy", "ci_low", "ci_high", "tokens_per_correct", "mean_latency_s"]].round(3)
            lines = [f"**{len(df['item_id'].unique())} items** · best single member: **{s['best_member']}**"]
            lines += metric_lines(s)
            if any(m.model.is_noise for m in members):
                lines.append("\n_The tiny offline model's answers are noise: these numbers exercise the pipeline only._")
            debate = plots.debate_flips(s["debate"]) if len(s["debate"]) else None
            return ("\n".join(lines), shown, plots.accuracy_ci(acc), plots.accuracy_vs_cost(acc),
                    plots.regret_and_damage(s["regret"], s["merge_damage"], s["position_flips"], s["injection"]), debate,
                    df)

        run_inputs = [dataset, limit, modes, swap, inject, tokens, pool_df, judge_dd, saved]
        run_outputs = [status, table, acc_plot, cost_plot, judge_plot, debate_plot, last]
        run_btn.click(run, run_inputs, run_outputs, api_visibility="private", concurrency_limit=4,
                      concurrency_id="evaluate")

        async def api_run(ds, n, chosen, swap_on, inject_on, max_tokens, rows, judge, state,
                          request: gr.Request | None = None, progress=gr.Progress(track_tqdm=True)):
            """The ``/evaluate`` API endpoint: the page's evaluation, for a client holding the host's API key."""
            from ..serve.auth import BAD_KEY, bearer_ok

            if not bearer_ok(getattr(request, "headers", None) or {}, api_token):
                return (f"⚠ {BAD_KEY}", None, None, None, None, None, None)
            return await run(ds, n, chosen, swap_on, inject_on, max_tokens, rows, judge, state, request, progress)

        api_btn = gr.Button(visible=False)
        api_btn.click(api_run, run_inputs, run_outputs, api_name="evaluate", concurrency_limit=4,
                      concurrency_id="evaluate")

        async def run_instruments(df, chosen, judge, request: gr.Request | None = None):
            from .. import experiments as X

            context = RunContext.for_page(request, policy, store)  # each instrument counts as one of its runs
            figures = {name: None for name in INSTRUMENTS}
            if df is None:
                return ("⚠ run an evaluation first: the instruments read its cached answers", *figures.values(), "")
            lines, shown = [], ""
            items, k = int(df["item_id"].nunique()), len(df.attrs.get("pool", []))
            # model calls each instrument may make, at most, counted before it runs (Limits.max_instrument_calls)
            calls = {"judge_bias_sweep": items * 6, "grounding": items, "cost_matched_ablation": 3 * items * (k + 1),
                     "image_ablation": 2 * items * k, "quantization_panel": 3 * items}
            for name in chosen or []:
                try:
                    if name in calls:
                        if name == "quantization_panel" and policy.public:
                            raise WorkbenchError("the quantization panel loads models outside the server's pool; "
                                                 "it is not offered on a public server")
                        policy.check_instrument(name, calls[name])
                    if name in ("judge_bias_sweep", "grounding"):
                        if not judge:
                            raise WorkbenchError(f"{name.replace('_', ' ')} needs a judge (the Fuse tab's)")
                        member = policy.member(judge)
                        extra = {"max_orders": 6} if name == "judge_bias_sweep" else {}
                        e = await context.tracked(asyncio.to_thread(getattr(X, name), df, member, df.attrs["dataset"],
                                                                    **extra), name.replace("_", " "))
                        if name == "grounding" and e.details is not None:
                            shown = "\n\n".join(f"#### {r.item_id}\n" + (r.markdown or "_the analysis did not "
                                                                                    "parse_")
                                                 for r in e.details.itertuples())
                    elif name == "cost_matched_ablation":
                        if not judge:
                            raise WorkbenchError("the cost-matched ablation needs a judge (the Fuse tab's)")
                        pool = [policy.member(label) for label in df.attrs.get("pool", [])]
                        e = await context.tracked(asyncio.to_thread(
                            X.cost_matched_ablation, df.attrs["dataset"], pool, policy.member(judge),
                            store=store, limit=int(df["item_id"].nunique()), registry=policy.registry),
                            "the cost-matched ablation")
                    elif name == "quantization_panel":
                        labels = df.attrs.get("pool", [])
                        first = policy.member(labels[0]).model if labels else None
                        if first is None or first.backend == "openai":
                            raise WorkbenchError("the quantization panel needs a local model as the first member")
                        e = await context.tracked(asyncio.to_thread(
                            X.quantization_panel, first, [df.attrs["dataset"]], int(df["item_id"].nunique()),
                            store=store, registry=policy.registry), "the quantization panel")
                    elif name == "image_ablation":
                        pool = [policy.member(label) for label in df.attrs.get("pool", [])]
                        e = await context.tracked(asyncio.to_thread(X.image_ablation, df, pool, df.attrs["dataset"]),
                                                  "the image ablation")
                    else:
                        e = await asyncio.to_thread(getattr(X, name), df)
                except WorkbenchError as exc:
                    lines.append(f"- **{name}**: ⚠ {exc}")
                    continue
                figures[name] = e.figure
                lines.append(f"- **{name}** ({e.judge_calls} judge calls): " + summary_text(e.summary))
            return ("\n".join(lines) or "pick an instrument", *figures.values(), shown)

        inst_btn.click(run_instruments, [last, instruments, judge_dd], [inst_status, *inst_plots, analyses],
                       api_visibility="private", concurrency_limit=2)

        def judge_vs_you(request: gr.Request | None = None) -> str:
            """The judge's agreement with the researcher's labels, evaluation items included."""
            from ..labels import agreement, agreement_markdown

            return agreement_markdown(agreement(store.labelled_runs(page_owner(request, policy), include_eval=True)))

        agree_btn.click(judge_vs_you, None, agree_md, api_visibility="private")
    return agree_md, judge_vs_you


#: the instruments the tab offers (``workbench.experiments``)
INSTRUMENTS = ("debate_vs_vote", "agreement_gate", "member_attribution", "judge_bias_sweep", "grounding",
               "image_ablation", "cost_matched_ablation", "quantization_panel")


def summary_text(summary: dict) -> str:
    """An instrument's headline numbers on one line (nested comparisons as diff [CI], p)."""
    parts = []
    for k, v in summary.items():
        if isinstance(v, dict) and "diff" in v:
            p = f", McNemar p {v['mcnemar_p']:.3g}" if "mcnemar_p" in v else ""
            parts.append(f"{k.replace('_', ' ')}: {v['diff']:+.3f} [{v['ci_low']:+.3f}, {v['ci_high']:+.3f}]{p}")
        elif isinstance(v, float):
            parts.append(f"{k.replace('_', ' ')}: {v:.3f}")
        elif isinstance(v, (int, str)) or (isinstance(v, (list, tuple)) and len(v) <= 6):
            parts.append(f"{k.replace('_', ' ')}: {v}")
    return "; ".join(parts)
