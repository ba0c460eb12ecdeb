"""The History tab: stored runs, reopen one, re-judge it without regenerating, export JSON or Markdown."""

from __future__ import annotations

import asyncio
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import gradio as gr

from .. import plots, render
from ..errors import WorkbenchError
from ..fusion.engine import rejudge
from ..fusion.modes import MODES
from ..store import RunStore
from ..policy import Policy
from .fuse_tab import owner_of, quota_of


@dataclass
class HistoryTab:
    """The components the page's load handler fills, and how."""

    table: Any
    run_dd: Any
    judge_dd: Any  #: the re-judge model list (grows with endpoints added on the Fuse tab)
    refresh: Callable[..., tuple]  #: (request) -> (table rows, run dropdown update)


def build_history_tab(store: RunStore, model_choices: list[str], preset: str, saved, policy: Policy) -> HistoryTab:
    """Lay out the tab inside the current Blocks and wire its handlers. On a public server a visitor sees,
    opens, re-judges and exports only the runs of their own session."""
    with gr.Tab("History"):
        runs_df = gr.Dataframe(headers=["run", "when", "mode", "prompt", "final answer", "degraded"],
                               interactive=False, elem_id="runs-table")
        with gr.Row():
            run_dd = gr.Dropdown([], label="Run", elem_id="run-select", allow_custom_value=True)
            refresh_btn = gr.Button("Refresh")
            open_btn = gr.Button("Open", elem_id="open-run")
        with gr.Row():
            rj_judge = gr.Dropdown(model_choices, value=preset, label="Re-judge with", allow_custom_value=True)
            rj_mode = gr.Radio([n for n, m in MODES.items() if not m.multi_round], value="merge", label="Mode")
            rj_btn = gr.Button("Re-judge (no regeneration)", elem_id="rejudge")
        with gr.Row():
            exp_json = gr.Button("Export JSON")
            exp_md = gr.Button("Export Markdown")
            exp_file = gr.File(label="Export", interactive=False)
        hist_status = gr.Markdown("", elem_id="history-status")
        hist_view = gr.Markdown("", elem_id="history-view")
        hist_plot = gr.Plot(label="Timeline")

    def refresh(request: gr.Request = None):
        runs = store.list(100, owner=owner_of(request, policy))
        rows = [[r["run_id"], time.strftime("%Y-%m-%d %H:%M", time.localtime(r["created_at"])), r["mode"],
                 r["prompt"][:60], (r["final_answer"] or "")[:60],
                 "interrupted" if r["status"] == "interrupted" else "yes" if r["degraded"] else ""] for r in runs]
        return rows, gr.update(choices=[r["run_id"] for r in runs])

    refresh_btn.click(refresh, None, [runs_df, run_dd], api_visibility="private")

    def open_run(run_id, request: gr.Request = None):
        try:
            result = store.load((run_id or "").strip(), owner=owner_of(request, policy))
        except WorkbenchError as exc:
            return f"⚠ {exc}", "", None
        return f"Run `{result.run_id}`", render.to_markdown(result), plots.run_timeline(result)

    open_btn.click(open_run, run_dd, [hist_status, hist_view, hist_plot], api_visibility="private")

    async def rejudge_run(run_id, judge, mode, state, request: gr.Request = None):
        owner = owner_of(request, policy)
        try:
            old = await asyncio.to_thread(store.load, (run_id or "").strip(), owner)  # SQLite off the loop
            reg = await asyncio.to_thread(policy.registry_with, (state or {}).get("endpoints", []))
            images = await asyncio.to_thread(store.images, old.run_id, owner)
            new = await rejudge(old, policy.member(judge, reg) if MODES[mode].judged else None, mode,
                                images=images, registry=reg, policy=policy, quota=quota_of(request, policy))
        except WorkbenchError as exc:
            return f"⚠ {exc}", gr.update(), gr.update(), gr.update(), gr.update()
        await asyncio.to_thread(store.save, new, images, owner)
        rows, dd = refresh(request)
        return (f"Re-judged `{old.run_id}` as `{new.run_id}` ({mode}, no member regenerated).",
                render.to_markdown(new), plots.run_timeline(new), rows,
                gr.update(choices=dd["choices"], value=new.run_id))

    rj_btn.click(rejudge_run, [run_dd, rj_judge, rj_mode, saved],
                 [hist_status, hist_view, hist_plot, runs_df, run_dd], api_visibility="private")

    def export(run_id, fmt, request):
        try:
            text = render.export(store.load((run_id or "").strip(), owner=owner_of(request, policy)), fmt)
        except WorkbenchError as exc:
            return None, f"⚠ {exc}"
        path = Path(tempfile.mkdtemp(prefix="wb-export-")) / f"{run_id}.{'json' if fmt == 'json' else 'md'}"
        path.write_text(text)
        return str(path), f"Exported `{run_id}`."

    def export_json(run_id, request: gr.Request = None):
        return export(run_id, "json", request)

    def export_md(run_id, request: gr.Request = None):
        return export(run_id, "md", request)

    exp_json.click(export_json, run_dd, [exp_file, hist_status], api_visibility="private")
    exp_md.click(export_md, run_dd, [exp_file, hist_status], api_visibility="private")

    return HistoryTab(runs_df, run_dd, rj_judge, refresh)
