"""The Evaluate tab: a dataset (built in; on a local server also a standard benchmark or any table) through members,
fusion modes and the oracle, with the same figures the notebooks and `workbench eval` show."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import gradio as gr

from ..context import RunContext, page_owner
from ..errors import WorkbenchError
from ..eval.metrics import metric_lines
from ..fusion.modes import MODE_NAMES
from ..settings import FusionSettings
from ..stats import interval_reading
from ..specs import Member
from .fuse_tab import FuseTab
from .pool import members_from_rows
from .tab import Page, Tab

#: the instruments the tab offers (``workbench.experiments``)
INSTRUMENTS = ("debate_vs_vote", "agreement_gate", "member_attribution", "judge_bias_sweep", "grounding",
               "image_ablation", "cost_matched_ablation", "quantization_panel")
DATASETS = ["builtin:arithmetic:easy", "builtin:arithmetic:medium", "builtin:arithmetic", "builtin:shapes"]
INSTRUMENTS_HELP = (
    "Where the gain comes from and what the judge does, from the answers already cached: "
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


#: the instruments ticked at first: they need only the modes ticked at first (``modes_for``)
DEFAULT_INSTRUMENTS = ("agreement_gate", "member_attribution")


def modes_for(instruments, modes) -> list[str]:
    """``modes`` and the modes the ``instruments`` need, in the order of ``MODE_NAMES``."""
    from ..eval.cli import EXPERIMENTS

    need = set(modes or []) | {m for name in instruments or [] for m in EXPERIMENTS.get(name, ())}
    return [m for m in MODE_NAMES if m in need]


def instrument_modes(instruments, modes) -> tuple[list[str], str]:
    """The Modes box with what the chosen instruments need added, and a line saying what was added and why."""
    from ..eval.cli import EXPERIMENTS

    added = {m: [n for n in instruments or [] if m in EXPERIMENTS.get(n, ())]
             for m in modes_for(instruments, modes) if m not in (modes or [])}
    line = "; ".join(f"added the **{m}** mode: {', '.join(n.replace('_', ' ') for n in names)} needs it"
                     for m, names in added.items())
    return modes_for(instruments, modes), (line + " (run the evaluation again: member answers are cached)"
                                           if line else "")


def missing_modes(name: str, df) -> list[str]:
    """The modes instrument ``name`` needs that the evaluation ``df`` did not run."""
    from ..eval.cli import EXPERIMENTS

    systems = set(df["system"].unique())
    return [m for m in EXPERIMENTS.get(name, ()) if f"fusion:{m}" not in systems]


def fmt_duration(seconds: float) -> str:
    """42 s, 3 min 5 s, 1 h 2 min."""
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {s % 3600 // 60} min"


def progress_line(dataset: str, counts: list[tuple[float, int, int]], t0: float, now: float) -> str:
    """An evaluation in progress: items done of all, the time so far and the time left at the rate of the items
    done in this run (items evaluated before, taken from the store at the start, do not count towards it)."""
    if not counts:
        return f"Evaluating **{dataset}**: starting (loading the pool) · {fmt_duration(now - t0)}"
    start, done0, total = counts[0]
    _, done, _ = counts[-1]
    line = f"Evaluating **{dataset}**: {done} of {total} items · {fmt_duration(now - t0)}"
    if done0:
        line += f" ({done0} from earlier runs)"
    if done > done0 and done < total:
        left = (counts[-1][0] - start) / (done - done0) * (total - done)
        line += f" · about {fmt_duration(left)} left"
    elif done == done0 and done < total:
        line += " · time left known after the first item"
    return line


def instrument_calls(name: str, items: int, pool_size: int) -> int | None:
    """The model calls an instrument may make, at most, counted before it runs (``Limits.max_instrument_calls``);
    None: it makes none (it reads the cached answers)."""
    return {"judge_bias_sweep": items * 6, "grounding": items, "cost_matched_ablation": 3 * items * (pool_size + 1),
            "image_ablation": 2 * items * pool_size, "quantization_panel": 3 * items}.get(name)


def evaluation_figures(df, members: list[Member]) -> tuple:
    """An evaluation frame as the tab shows it: (status Markdown, accuracy table, four figures)."""
    from ..render import plots
    from ..eval import metrics

    s = metrics.summary(df)
    acc = s["accuracy"]
    shown = acc[["system", "n", "accuracy", "ci_low", "ci_high", "tokens_per_correct", "mean_latency_s"]].round(3)
    lines = [f"**{len(df['item_id'].unique())} items** · best single member: **{s['best_member']}**"]
    lines += metric_lines(s)
    if any(m.model.is_noise for m in members):
        lines.append("\n_The tiny offline model's answers are noise: these numbers exercise the pipeline only._")
    debate = plots.debate_flips(s["debate"]) if len(s["debate"]) else None
    return ("\n".join(lines), shown, plots.accuracy_ci(acc), plots.accuracy_vs_cost(acc),
            plots.regret_and_damage(s["regret"], s["merge_damage"], s["position_flips"], s["injection"]), debate)


def summary_text(summary: dict) -> str:
    """An instrument's headline numbers on one line (nested comparisons as diff [CI], p)."""
    parts = []
    for k, v in summary.items():
        if isinstance(v, dict) and "diff" in v:
            p = f", McNemar p {v['mcnemar_p']:.3g}" if "mcnemar_p" in v else ""
            lo, hi = v["ci_low"], v["ci_high"]
            ci = f"[{lo:+.3f}, {hi:+.3f}]{p}: {interval_reading(lo, hi, v.get('mcnemar_p'), v.get('n'))}" \
                if lo == lo and hi == hi else "(no interval: too few items, or no spread among them)"
            parts.append(f"{k.replace('_', ' ')}: {v['diff']:+.3f} {ci}")
        elif isinstance(v, float):
            parts.append(f"{k.replace('_', ' ')}: {v:.3f}")
        elif isinstance(v, (int, str)) or (isinstance(v, (list, tuple)) and len(v) <= 6):
            parts.append(f"{k.replace('_', ' ')}: {v}")
    return "; ".join(parts)


class EvaluateTab(Tab):
    """Pool and judge come from the Fuse tab's controls. The ``/evaluate`` API endpoint runs the same evaluation
    for a client holding the page's ``api_token`` (the page's own button never asks for it)."""

    title = "Evaluate"

    def __init__(self, page: Page, fuse: FuseTab):
        super().__init__(page)
        self.fuse = fuse

    def layout(self) -> None:
        gr.Markdown("Run the pool (from the Fuse tab) on a generated dataset with ground truth: each member alone, "
                    "each fusion mode, and the oracle (is any member right?). Member answers are cached, so adding "
                    "a mode later does not regenerate them.")
        with gr.Row():
            self.run_inputs = [
                gr.Dropdown(self.datasets(), value=DATASETS[0], label="Dataset", elem_id="eval-dataset",
                            allow_custom_value=not self.policy.public,
                            info=None if self.policy.public else "a preset, or any hf:REPO[:CONFIG][@SPLIT], "
                                 "parquet:FILE, csv:FILE or jsonl:FILE (with #input=COL,target=COL,...)"),
                gr.Number(4, minimum=1, maximum=self.policy.limits.max_eval_items, precision=0, label="Items",
                          elem_id="eval-items", info=f"at most {self.policy.limits.max_eval_items:,} here"),
                gr.CheckboxGroup(list(MODE_NAMES), value=modes_for(DEFAULT_INSTRUMENTS, ["best-of", "vote"]),
                                 label="Modes", elem_id="eval-modes"),
                gr.Checkbox(False, label="Position check (2 orderings)"),
                gr.Checkbox(False, label="Injection probe"),
                gr.Slider(16, 1024, value=64, step=16, label="Max new tokens"),
                self.fuse.pool_df, self.fuse.judge_dd, self.fuse.saved]
        self.run_btn = gr.Button("Evaluate", variant="primary", elem_id="eval-run")
        status = gr.Markdown("", elem_id="eval-status")
        table = gr.Dataframe(label="Accuracy per system", interactive=False, elem_id="eval-table")
        with gr.Row():
            acc_plot, cost_plot = gr.Plot(label="Accuracy"), gr.Plot(label="Accuracy vs cost")
        with gr.Row():
            judge_plot, debate_plot = gr.Plot(label="Judge"), gr.Plot(label="Debate")
        with gr.Accordion("Judge vs you (your labels of runs, from the Label tab, History or the Fuse tab)",
                          open=True, elem_id="eval-agreement-acc"):
            self.agree_md = gr.Markdown("", elem_id="eval-agreement")
            self.agree_btn = gr.Button("Refresh", size="sm", elem_id="eval-agreement-refresh")
        self.last = gr.State(None)  # this session's last evaluation frame (kept on the server), for the instruments
        self.run_outputs = [status, table, acc_plot, cost_plot, judge_plot, debate_plot, self.last]
        with gr.Accordion("Research instruments (on the cached answers of the last evaluation)", open=False):
            gr.Markdown(INSTRUMENTS_HELP)
            self.instruments = gr.CheckboxGroup(list(INSTRUMENTS), value=list(DEFAULT_INSTRUMENTS),
                                                label="Instruments", elem_id="eval-instruments")
            self.needs_md = gr.Markdown("", elem_id="eval-instruments-needs")
            self.inst_btn = gr.Button("Run instruments", elem_id="eval-instruments-run")
            self.inst_outputs: list[Any] = [gr.Markdown("", elem_id="eval-instruments-status")]
            for pair in range(0, len(INSTRUMENTS), 2):  # two a row: six in one row were too narrow to read
                with gr.Row():
                    self.inst_outputs += [gr.Plot(label=name.replace("_", " ")) for name in INSTRUMENTS[pair:pair + 2]]
            self.inst_outputs.append(gr.Markdown("", elem_id="eval-analyses"))
        self.loads = [self.agree_md]

    def datasets(self) -> list[str]:
        """The built-in datasets; on a local server also the standard benchmarks (``eval.presets``)."""
        from ..eval.presets import PRESETS

        return DATASETS + ([] if self.policy.public else list(PRESETS))

    def wire(self) -> None:
        self.run_btn.click(self.run, self.run_inputs, self.run_outputs, api_visibility="private",
                           concurrency_limit=4, concurrency_id="evaluate")
        api_btn = gr.Button(visible=False)
        api_btn.click(self.api_run, self.run_inputs, self.run_outputs, api_name="evaluate", concurrency_limit=4,
                      concurrency_id="evaluate")
        self.inst_btn.click(self.run_instruments, [self.last, self.instruments, self.fuse.judge_dd],
                            self.inst_outputs, api_visibility="private", concurrency_limit=2)
        self.agree_btn.click(self.judge_vs_you, None, self.agree_md, api_visibility="private")
        # an instrument adds the modes its evaluation needs (as `workbench eval --experiment` does), and says so
        modes = self.run_inputs[2]
        self.instruments.input(instrument_modes, [self.instruments, modes], [modes, self.needs_md],
                               api_visibility="private")

    def on_load(self, state, request):
        return (self.judge_vs_you(request),)

    async def run(self, ds, n, chosen, swap_on, inject_on, max_tokens, rows, judge, state,
                  request: gr.Request | None = None):
        """The evaluation, with its progress in the status line (items done of all, time so far, time left) every
        second, then its figures; a closed page cancels it."""
        from ..eval.harness import evaluate_async

        policy = self.policy
        skip = (gr.skip(),) * 6
        try:
            reg = await asyncio.to_thread(policy.registry_with, (state or {}).get("endpoints", []))
            members = members_from_rows(rows, reg, policy)
            if not members:
                raise WorkbenchError("the pool is empty: add members on the Fuse tab")
            if not chosen:
                raise WorkbenchError("pick at least one mode")
            policy.check_eval_items(int(n or 0))
            settings = FusionSettings(seed=0, swap_k=2 if swap_on else 1, max_new_tokens=int(max_tokens))
            counts: list[tuple[float, int, int]] = []  # (when, items done, items in all)
            t0 = time.monotonic()
            task = asyncio.ensure_future(evaluate_async(
                ds, members, policy.member(judge, reg) if judge else None, chosen, settings, limit=int(n),
                inject=inject_on, progress=False, on_progress=lambda d, t: counts.append((time.monotonic(), d, t)),
                context=RunContext.for_page(request, policy, self.store, reg)))
            try:
                yield (f"Evaluating **{ds}**: starting (loading the pool) · 0 s", *skip)
                while not task.done():
                    await asyncio.wait({task}, timeout=1.0)
                    if not task.done():
                        yield (progress_line(ds, counts, t0, time.monotonic()), *skip)
                df = task.result()
            finally:  # the page went away (or Stop): the evaluation stops with it; finished items stay stored
                if not task.done():
                    task.cancel()
        except WorkbenchError as exc:
            yield (f"⚠ {exc}", None, None, None, None, None, None)
            return
        status, *figures = evaluation_figures(df, members)
        took = time.monotonic() - t0
        yield (f"Finished: {len(df['item_id'].unique())} items in {fmt_duration(took)}.\n\n{status}", *figures, df)

    async def api_run(self, ds, n, chosen, swap_on, inject_on, max_tokens, rows, judge, state,
                      request: gr.Request | None = None):
        """The ``/evaluate`` API endpoint: the page's evaluation, for a client holding the host's API key (its
        progress lines stream; the last value is the result)."""
        from ..serve.auth import BAD_KEY, bearer_ok

        if not bearer_ok(getattr(request, "headers", None) or {}, self.page.api_token):
            yield (f"⚠ {BAD_KEY}", None, None, None, None, None, None)
            return
        async for out in self.run(ds, n, chosen, swap_on, inject_on, max_tokens, rows, judge, state, request):
            yield out

    async def run_instruments(self, df, chosen, judge, request: gr.Request | None = None) -> tuple:
        context = RunContext.for_page(request, self.policy, self.store)  # each instrument counts as one of its runs
        figures: dict[str, Any] = {name: None for name in INSTRUMENTS}
        if df is None:
            return ("⚠ run an evaluation first: the instruments read its cached answers", *figures.values(), "")
        lines, shown = [], ""
        for name in chosen or []:
            if missing := missing_modes(name, df):
                lines.append(f"- **{name}**: ⚠ needs the {' and '.join(missing)} mode(s), which the last evaluation "
                             "did not run: tick them under Modes and evaluate again (member answers are cached)")
                continue
            try:
                e = await self.instrument(name, df, judge, context)
            except WorkbenchError as exc:
                lines.append(f"- **{name}**: ⚠ {exc}")
                continue
            if name == "grounding" and e.details is not None:
                shown = "\n\n".join(f"#### {r.item_id}\n" + (r.markdown or "_the analysis did not parse_")
                                    for r in e.details.itertuples())
            figures[name] = e.figure
            lines.append(f"- **{name}** ({e.judge_calls} judge calls): " + summary_text(e.summary))
        return ("\n".join(lines) or "pick an instrument", *figures.values(), shown)

    async def instrument(self, name: str, df, judge: str | None, context: RunContext):
        """One instrument on the evaluation ``df``, within the host's limits; those that call models count as a run."""
        from .. import experiments as X

        policy, items, labels = self.policy, int(df["item_id"].nunique()), df.attrs.get("pool", [])
        calls = instrument_calls(name, items, len(labels))
        if calls is None:
            return await asyncio.to_thread(getattr(X, name), df)
        if name == "quantization_panel" and policy.public:
            raise WorkbenchError("the quantization panel loads models outside the server's pool; "
                                 "it is not offered on a public server")
        policy.check_instrument(name, calls)

        def the_judge() -> Member:
            if not judge:
                raise WorkbenchError(f"{name.replace('_', ' ')} needs a judge (the Fuse tab's)")
            return policy.member(judge)

        dataset = df.attrs["dataset"]
        if name in ("judge_bias_sweep", "grounding"):
            extra = {"max_orders": 6} if name == "judge_bias_sweep" else {}
            work = asyncio.to_thread(getattr(X, name), df, the_judge(), dataset, **extra)
        elif name == "cost_matched_ablation":
            work = asyncio.to_thread(X.cost_matched_ablation, dataset, [policy.member(label) for label in labels],
                                     the_judge(), store=self.store, limit=items, registry=policy.registry)
        elif name == "quantization_panel":
            first = policy.member(labels[0]).model if labels else None
            if first is None or first.backend == "openai":
                raise WorkbenchError("the quantization panel needs a local model as the first member")
            work = asyncio.to_thread(X.quantization_panel, first, [dataset], items, store=self.store,
                                     registry=policy.registry)
        else:  # image_ablation
            work = asyncio.to_thread(X.image_ablation, df, [policy.member(label) for label in labels], dataset)
        what = {"cost_matched_ablation": "the cost-matched ablation", "quantization_panel": "the quantization panel",
                "image_ablation": "the image ablation"}.get(name, name.replace("_", " "))
        return await context.tracked(work, what)

    def judge_vs_you(self, request: gr.Request | None = None) -> str:
        """The judge's agreement with the researcher's labels, evaluation items included."""
        from ..storage.labels import agreement, agreement_markdown

        owner = page_owner(request, self.policy)
        return agreement_markdown(agreement(self.store.labelled_runs(owner, include_eval=True)))
