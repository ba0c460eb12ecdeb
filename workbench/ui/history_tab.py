"""The History tab: every stored run, filtered and searched; a row click opens it; two runs side by side;
the researcher's label of a run and the judge's agreement with those labels; re-judge; export."""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from .. import plots, render
from ..context import RunContext, page_owner
from ..errors import WorkbenchError
from ..fusion.engine import rejudge
from ..fusion.modes import MODE_NAMES, MODES
from ..labels import agreement, agreement_markdown
from ..policy import Policy
from ..render.html import compare_html
from ..store import RunStore
from .fuse_tab import label_choices, label_controls

HEADERS = ["when", "origin", "mode", "pool", "judge", "verdict", "cost", "tokens", "you", "prompt", "run"]
PAGE = 200  #: rows shown at once (the newest that match; the count says how many match)
ANY = "any"


@dataclass
class HistoryTab:
    """The components the page's load handler fills, and how."""

    table: Any
    run_dd: Any
    judge_dd: Any  #: the re-judge model list (grows with endpoints added on the Fuse tab)
    refresh: Callable[..., tuple]  #: (request) -> (table rows, run dropdown update)
    outputs: list  #: what ``refresh_all`` fills
    refresh_all: Callable[..., tuple]  #: (filters..., request) -> values for ``outputs``
    filters: list  #: the filter inputs of ``refresh_all``


def row_of(r: dict[str, Any]) -> list[Any]:
    """One run as a History table row."""
    lab = r.get("label") or {}
    you = lab.get("fused") or ("picked" if lab.get("best_member") is not None else "") if lab else ""
    flag = " (interrupted)" if r["status"] == "interrupted" else " (degraded)" if r["degraded"] else ""
    verdict = (r.get("winner") or "") or (r["final_answer"] or "")[:40]
    return [time.strftime("%Y-%m-%d %H:%M", time.localtime(r["created_at"])), r.get("origin") or "unknown",
            r["mode"] + flag, r.get("pool") or "", r.get("judge") or "", verdict,
            "" if r.get("cost_usd") is None else f"${r['cost_usd']:.4f}", r.get("total_tokens") or 0, you,
            (r["prompt"] or "")[:80], r["run_id"]]


def build_history_tab(store: RunStore, model_choices: list[str], preset: str, saved, policy: Policy) -> HistoryTab:
    """Lay out the tab inside the current Blocks and wire its handlers. On a public server a visitor sees,
    opens, labels, re-judges and exports only the runs of their own session."""
    with gr.Tab("History"):
        with gr.Row(equal_height=True):
            search = gr.Textbox(label="Search (prompt, answer, pool, judge, run id)", elem_id="hist-search",
                                max_lines=1, scale=3)
            origin_dd = gr.Dropdown([ANY, "page", "api", "gradio-api", "cli", "python", "eval"], value=ANY,
                                    label="Origin", elem_id="hist-origin", allow_custom_value=True, scale=1)
            mode_dd = gr.Dropdown([ANY, *MODE_NAMES], value=ANY, label="Mode", elem_id="hist-mode", scale=1)
            labelled_dd = gr.Dropdown([ANY, "labelled", "unlabelled"], value=ANY, label="Your label",
                                      elem_id="hist-labelled", scale=1)
            include_eval = gr.Checkbox(False, label="Show evaluation items", elem_id="hist-include-eval", scale=1)
            refresh_btn = gr.Button("Refresh", scale=0, min_width=90, elem_id="hist-refresh")
        count_md = gr.Markdown("", elem_id="hist-count")
        runs_df = gr.Dataframe(headers=HEADERS, interactive=False, elem_id="runs-table", wrap=False,
                               max_height=420)
        ids = gr.State([])  #: the run ids of the table's rows, in order (a row click opens ids[row])
        agree_md = gr.Markdown("", elem_id="hist-agreement")
        with gr.Row(equal_height=True):
            run_dd = gr.Dropdown([], label="Run", elem_id="run-select", allow_custom_value=True, scale=3)
            open_btn = gr.Button("Open", elem_id="open-run", scale=0, min_width=90)
            compare_dd = gr.Dropdown([], label="Compare with (same prompt, or any run id)", elem_id="compare-select",
                                     allow_custom_value=True, scale=3)
            compare_btn = gr.Button("Compare side by side", elem_id="compare-runs", scale=0, min_width=120)
        hist_status = gr.Markdown("", elem_id="history-status")
        compare_view = gr.HTML("", elem_id="compare-view")
        label_box, label_best, label_fused, label_btn = label_controls("hist-")
        hist_view = gr.Markdown("", elem_id="history-view")
        hist_plot = gr.Plot(label="Timeline")
        with gr.Accordion("Re-judge or export this run", open=False, elem_id="hist-actions"):
            with gr.Row():
                rj_judge = gr.Dropdown(model_choices, value=preset, label="Re-judge with", allow_custom_value=True)
                rj_mode = gr.Radio([n for n, m in MODES.items() if not m.multi_round], value="merge", label="Mode")
                rj_btn = gr.Button("Re-judge (no regeneration)", elem_id="rejudge")
            with gr.Row():
                exp_json = gr.Button("Export JSON")
                exp_md = gr.Button("Export Markdown")
                exp_file = gr.File(label="Export", interactive=False)

    filters = [search, origin_dd, mode_dd, labelled_dd, include_eval]

    def query(search_text, origin, mode, labelled, with_eval, request) -> tuple[list[dict], int, str]:
        owner = page_owner(request, policy)
        kw: dict[str, Any] = dict(origin=None if origin in (None, "", ANY) else origin,
                                  mode=None if mode in (None, "", ANY) else mode,
                                  search=search_text or None, include_eval=bool(with_eval),
                                  labelled={"labelled": True, "unlabelled": False}.get(labelled))
        runs = store.list(PAGE, owner=owner, **kw)
        total = store.count(owner=owner, **kw)
        hidden = 0 if with_eval or kw["origin"] else store.count(owner=owner, **{**kw, "include_eval": True}) - total
        note = f"**{total}** run(s) match" + (f"; the newest {PAGE} shown" if total > PAGE else "") + \
            (f"; {hidden} evaluation item(s) hidden (tick *Show evaluation items*)" if hidden else "") + \
            ". Click a row to open the run."
        return runs, total, note

    def refresh_all(search_text=None, origin=ANY, mode=ANY, labelled=ANY, with_eval=False,
                    request: gr.Request | None = None):
        runs, _, note = query(search_text, origin, mode, labelled, with_eval, request)
        owner = page_owner(request, policy)
        origins = sorted({o.split(":")[0] if o.startswith("eval:") else o for o in store.origins(owner)} - {""})
        return ([row_of(r) for r in runs], [r["run_id"] for r in runs], note,
                agreement_markdown(agreement(store.labelled_runs(owner))),
                gr.update(choices=[r["run_id"] for r in runs]),
                gr.update(choices=[ANY, *dict.fromkeys(["page", "api", "gradio-api", "cli", "python", "eval",
                                                         *origins])]))

    outputs = [runs_df, ids, count_md, agree_md, run_dd, origin_dd]
    for ev in (refresh_btn.click, search.submit, origin_dd.input, mode_dd.input, labelled_dd.input,
               include_eval.input):
        ev(refresh_all, filters, outputs, api_visibility="private")

    def refresh(request: gr.Request | None = None):  # the page's load handler: table and run list, no filters
        rows, _ids, _note, _agree, dd, _origins = refresh_all(request=request)
        return rows, dd

    def open_run(run_id, request: gr.Request | None = None):
        owner = page_owner(request, policy)
        run_id = (run_id or "").strip()
        try:
            result = store.load(run_id, owner=owner)
            label = store.label(run_id, owner)
        except WorkbenchError as exc:
            return f"⚠ {exc}", "", None, gr.update(visible=False), gr.update(), gr.update(), gr.update(), "", None
        same = store.same_prompt(run_id, owner)
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(result.created_at))
        msg = (f"Run `{result.run_id}` ({when}, from {result.origin or 'unknown'})"
               + (f"; {len(same)} other run(s) of the same prompt: pick one under *Compare with*" if same else ""))
        best = gr.update(choices=label_choices(result), value=label["best_member"] if label else None)
        return (msg, render.to_markdown(result), plots.run_timeline(result),
                gr.update(visible=bool(result.outputs)), best,
                gr.update(value=label["fused"] if label else None),
                gr.update(choices=same, value=same[0] if same else None), "", result.run_id)

    opened = gr.State(None)  #: the run shown below (a label is saved to it, whatever the Run box holds now)
    open_outputs = [hist_status, hist_view, hist_plot, label_box, label_best, label_fused, compare_dd, compare_view,
                    opened]
    open_btn.click(open_run, run_dd, open_outputs, api_visibility="private")

    def open_row(row_ids, evt: gr.SelectData, request: gr.Request | None = None):
        row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        run_id = row_ids[row] if row_ids and 0 <= row < len(row_ids) else ""
        return (gr.update(value=run_id),) + open_run(run_id, request)

    runs_df.select(open_row, ids, [run_dd, *open_outputs], api_visibility="private")

    def compare(a, b, request: gr.Request | None = None):
        owner = page_owner(request, policy)
        try:
            ra, rb = (store.load((x or "").strip(), owner=owner) for x in (a, b))
        except WorkbenchError as exc:
            return f"⚠ {exc} (open a run, then pick the one to compare it with)"
        return compare_html(ra, rb)

    compare_btn.click(compare, [run_dd, compare_dd], compare_view, api_visibility="private")

    def save_label(run_id, best, fused, search_text=None, origin=ANY, mode=ANY, labelled=ANY, with_eval=False,
                   request: gr.Request | None = None):
        if best is None and not fused:
            return ("⚠ pick the best member answer, rate the fused answer, or both",) + tuple(gr.update()
                                                                                        for _ in outputs)
        try:
            store.set_label((run_id or "").strip(), best, fused or None, owner=page_owner(request, policy))
        except WorkbenchError as exc:
            return (f"⚠ {exc}",) + tuple(gr.update() for _ in outputs)
        return (f"Saved your label of `{run_id}`.",) + refresh_all(search_text, origin, mode, labelled, with_eval, request)

    label_btn.click(save_label, [opened, label_best, label_fused, *filters], [hist_status, *outputs],
                    api_visibility="private")

    async def rejudge_run(run_id, judge, mode, state, search_text=None, origin=ANY, mode_f=ANY, labelled=ANY,
                          with_eval=False, request: gr.Request | None = None):
        owner = page_owner(request, policy)
        try:
            old = await asyncio.to_thread(store.load, (run_id or "").strip(), owner)  # SQLite off the loop
            reg = await asyncio.to_thread(policy.registry_with, (state or {}).get("endpoints", []))
            images = await asyncio.to_thread(store.images, old.run_id, owner)
            new = await rejudge(old, policy.member(judge, reg) if MODES[mode].judged else None, mode,
                                images=images, context=RunContext.for_page(request, policy, store, reg))  # saved
        except WorkbenchError as exc:
            return (f"⚠ {exc}", gr.update(), gr.update(), gr.update(), gr.update()) + tuple(gr.update()
                                                                                        for _ in outputs)
        fresh = list(refresh_all(search_text, origin, mode_f, labelled, with_eval, request))
        fresh[outputs.index(run_dd)] = gr.update(choices=fresh[1], value=new.run_id)
        return (f"Re-judged `{old.run_id}` as `{new.run_id}` ({mode}, no member regenerated).",
                render.to_markdown(new), plots.run_timeline(new), new.run_id, gr.update(value=None), *fresh)

    rj_btn.click(rejudge_run, [run_dd, rj_judge, rj_mode, saved, *filters],
                 [hist_status, hist_view, hist_plot, opened, label_fused, *outputs], api_visibility="private")

    def export(run_id, fmt, request):
        try:
            text = render.export(store.load((run_id or "").strip(), owner=page_owner(request, policy)), fmt)
        except WorkbenchError as exc:
            return None, f"⚠ {exc}"
        path = Path(tempfile.mkdtemp(prefix="wb-export-")) / f"{run_id}.{'json' if fmt == 'json' else 'md'}"
        path.write_text(text)
        return str(path), f"Exported `{run_id}`."

    def export_json(run_id, request: gr.Request | None = None):
        return export(run_id, "json", request)

    def export_md(run_id, request: gr.Request | None = None):
        return export(run_id, "md", request)

    exp_json.click(export_json, run_dd, [exp_file, hist_status], api_visibility="private")
    exp_md.click(export_md, run_dd, [exp_file, hist_status], api_visibility="private")

    return HistoryTab(runs_df, run_dd, rj_judge, refresh, outputs, refresh_all, filters)
