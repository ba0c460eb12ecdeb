"""The History tab: every stored run, filtered and searched; a row click opens it; two runs side by side;
the researcher's label of a run and the judge's agreement with those labels; re-judge; export."""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import gradio as gr

from .. import render
from ..render import plots
from ..context import RunContext, page_owner
from ..errors import WorkbenchError
from ..fusion.engine import rejudge
from ..fusion.modes import MODE_NAMES, MODES
from ..storage.labels import agreement, agreement_markdown
from ..render.html import compare_html, run_images_html
from ..storage import RunStore
from .fuse_tab import FuseTab
from .tab import Page, Tab, label_choices, label_controls, models_with_endpoints

#: the table's columns: what tells runs apart (prompt, run id) first and pinned, in view on a 1280 px screen
HEADERS = ["prompt", "run", "when", "mode", "verdict", "pool", "judge", "origin", "cost", "tokens", "you"]
#: their widths, as shares of the table's: every column fits at 1280-1440 px (cells wrap; ``row_of`` cuts long ones)
WIDTHS: list[str | int] = ["22%", "13%", "9%", "8%", "9%", "9%", "7%", "7%", "6%", "6%", "4%"]
PAGE = 200  #: rows shown at once (the newest that match; the count says how many match)
ANY = "any"
ORIGINS = ["page", "api", "gradio-api", "cli", "python", "eval"]  #: the origin filter's choices before any run


def cut(text: str, n: int) -> str:
    """``text`` on one line, at most ``n`` characters (an ellipsis says where it was cut)."""
    text = " ".join((text or "").split())
    return text if len(text) <= n else text[:n - 1] + "…"


def row_of(r: dict[str, Any]) -> list[Any]:
    """One run as a History table row (columns as ``HEADERS``)."""
    lab = r.get("label") or {}
    you = lab.get("fused") or ("picked" if lab.get("best_member") is not None else "") if lab else ""
    flag = " (interrupted)" if r["status"] == "interrupted" else " (degraded)" if r["degraded"] else ""
    verdict = (r.get("winner") or "") or (r["final_answer"] or "")
    return [cut(r["prompt"], 64), r["run_id"], time.strftime("%Y-%m-%d %H:%M", time.localtime(r["created_at"])),
            r["mode"] + flag, cut(verdict, 40), cut(r.get("pool") or "", 60), cut(r.get("judge") or "", 30),
            r.get("origin") or "unknown", "" if r.get("cost_usd") is None else f"${r['cost_usd']:.4f}",
            r.get("total_tokens") or 0, you]


def query(store: RunStore, owner: str | None, search_text: str | None = None, origin: str | None = ANY,
          mode: str | None = ANY, labelled: str | None = ANY, with_eval: bool = False) -> tuple[list[dict], str]:
    """The newest ``PAGE`` runs of ``owner`` that match the filters, and the line that counts them."""
    kw: dict[str, Any] = dict(origin=None if origin in (None, "", ANY) else origin,
                              mode=None if mode in (None, "", ANY) else mode,
                              search=search_text or None, include_eval=bool(with_eval),
                              labelled={"labelled": True, "unlabelled": False}.get(labelled or ANY))
    runs = store.list(PAGE, owner=owner, **kw)
    total = store.count(owner=owner, **kw)
    hidden = 0 if with_eval or kw["origin"] else store.count(owner=owner, **{**kw, "include_eval": True}) - total
    note = f"**{total}** run(s) match" + (f"; the newest {PAGE} shown" if total > PAGE else "") + \
        (f"; {hidden} evaluation item(s) hidden (tick *Show evaluation items*)" if hidden else "") + \
        ". Click a row to open the run."
    return runs, note


class HistoryTab(Tab):
    """On a public server a visitor sees, opens, labels, re-judges and exports only the runs of their session."""

    title = "History"

    def __init__(self, page: Page, fuse: FuseTab):
        super().__init__(page)
        self.fuse = fuse  #: a finished run shows here at once; endpoints added there can re-judge here

    def layout(self) -> None:
        with gr.Row(equal_height=True):
            self.search = gr.Textbox(label="Search (prompt, answer, pool, judge, run id)", elem_id="hist-search",
                                     max_lines=1, scale=3)
            self.origin_dd = gr.Dropdown([ANY, *ORIGINS], value=ANY, label="Origin", elem_id="hist-origin",
                                         allow_custom_value=True, scale=1)
            self.mode_dd = gr.Dropdown([ANY, *MODE_NAMES], value=ANY, label="Mode", elem_id="hist-mode", scale=1)
            self.labelled_dd = gr.Dropdown([ANY, "labelled", "unlabelled"], value=ANY, label="Your label",
                                           elem_id="hist-labelled", scale=1)
            self.include_eval = gr.Checkbox(False, label="Show evaluation items", elem_id="hist-include-eval",
                                            scale=1)
            self.refresh_btn = gr.Button("Refresh", scale=0, min_width=90, elem_id="hist-refresh")
        self.count_md = gr.Markdown("", elem_id="hist-count")
        self.runs_df = gr.Dataframe(headers=HEADERS, interactive=False, elem_id="runs-table", wrap=True,
                                    column_widths=WIDTHS, pinned_columns=2, max_height=420)
        self.ids = gr.State([])  #: the run ids of the table's rows, in order (a row click opens ids[row])
        self.agree_md = gr.Markdown("", elem_id="hist-agreement")
        with gr.Row(equal_height=True):
            self.run_dd = gr.Dropdown([], label="Run", elem_id="run-select", allow_custom_value=True, scale=3)
            self.open_btn = gr.Button("Open", elem_id="open-run", scale=0, min_width=90)
            self.compare_dd = gr.Dropdown([], label="Compare with (same prompt, or any run id)",
                                          elem_id="compare-select", allow_custom_value=True, scale=3)
            self.compare_btn = gr.Button("Compare side by side", elem_id="compare-runs", scale=0, min_width=120)
        self.status = gr.Markdown("", elem_id="history-status")
        self.compare_view = gr.HTML("", elem_id="compare-view")
        self.label_box, self.label_best, self.label_fused, self.label_btn = label_controls("hist-")
        self.images_view = gr.HTML("", elem_id="history-images")  #: the opened run's prompt images
        self.view = gr.Markdown("", elem_id="history-view")
        self.plot = gr.Plot(label="Timeline")
        self.opened = gr.State(None)  #: the run shown below (a label is saved to it, whatever the Run box holds)
        with gr.Accordion("Re-judge or export this run", open=False, elem_id="hist-actions"):
            with gr.Row():
                self.rj_judge = gr.Dropdown(self.page.models, value=self.page.preset, label="Re-judge with",
                                            allow_custom_value=True)
                self.rj_mode = gr.Radio([n for n, m in MODES.items() if not m.multi_round], value="merge",
                                        label="Mode")
                self.rj_btn = gr.Button("Re-judge (no regeneration)", elem_id="rejudge")
            with gr.Row():
                self.exp_json = gr.Button("Export JSON")
                self.exp_md = gr.Button("Export Markdown")
                self.exp_file = gr.File(label="Export", interactive=False)
        self.filters = [self.search, self.origin_dd, self.mode_dd, self.labelled_dd, self.include_eval]
        #: what ``refresh_all`` fills
        self.outputs = [self.runs_df, self.ids, self.count_md, self.agree_md, self.run_dd, self.origin_dd]
        self.loads = [*self.outputs, self.rj_judge]

    def wire(self) -> None:
        private: dict[str, Any] = dict(api_visibility="private")
        for ev in (self.refresh_btn.click, self.search.submit, self.origin_dd.input, self.mode_dd.input,
                   self.labelled_dd.input, self.include_eval.input):
            ev(self.refresh_all, self.filters, self.outputs, **private)
        open_outputs = [self.status, self.images_view, self.view, self.plot, self.label_box, self.label_best,
                        self.label_fused, self.compare_dd, self.compare_view, self.opened]
        self.open_btn.click(self.open_run, self.run_dd, open_outputs, **private)
        self.runs_df.select(self.open_row, self.ids, [self.run_dd, *open_outputs], **private)
        self.compare_btn.click(self.compare, [self.run_dd, self.compare_dd], self.compare_view, **private)
        self.label_btn.click(self.save_label, [self.opened, self.label_best, self.label_fused, *self.filters],
                             [self.status, *self.outputs], **private)
        self.rj_btn.click(self.rejudge_run, [self.run_dd, self.rj_judge, self.rj_mode, self.fuse.saved,
                                             *self.filters],
                          [self.status, self.view, self.plot, self.opened, self.label_fused, *self.outputs], **private)
        self.exp_json.click(self.export_json, self.run_dd, [self.exp_file, self.status], **private)
        self.exp_md.click(self.export_md, self.run_dd, [self.exp_file, self.status], **private)
        # a finished run shows here at once (with this tab's filters); so do endpoints added on the Fuse tab
        self.fuse.run_event.then(self.refresh_all, self.filters, self.outputs, show_progress="hidden", **private)
        self.fuse.endpoint_added.then(self.judge_choices, self.fuse.saved, self.rj_judge, **private)

    def on_load(self, state, request):
        return (*self.refresh_all(request=request), self.judge_choices(state))

    def judge_choices(self, state):
        return gr.update(choices=models_with_endpoints(self.page.models, state))

    def refresh_all(self, search_text=None, origin=ANY, mode=ANY, labelled=ANY, with_eval=False,
                    request: gr.Request | None = None) -> tuple:
        owner = page_owner(request, self.policy)
        runs, note = query(self.store, owner, search_text, origin, mode, labelled, with_eval)
        origins = sorted({o.split(":")[0] if o.startswith("eval:") else o for o in self.store.origins(owner)} - {""})
        ids = [r["run_id"] for r in runs]
        return ([row_of(r) for r in runs], ids, note, agreement_markdown(agreement(self.store.labelled_runs(owner))),
                gr.update(choices=ids), gr.update(choices=[ANY, *dict.fromkeys([*ORIGINS, *origins])]))

    def open_run(self, run_id, request: gr.Request | None = None) -> tuple:
        owner = page_owner(request, self.policy)
        run_id = (run_id or "").strip()
        try:
            result = self.store.load(run_id, owner=owner)
            label = self.store.label(run_id, owner)
        except WorkbenchError as exc:
            return (f"⚠ {exc}", "", "", None, gr.update(visible=False), gr.update(), gr.update(), gr.update(), "",
                    None)
        # the store's bytes of this owner's run, sent inline: no path a visitor could point elsewhere
        images = self.store.images(run_id, owner=owner) if result.prompt.get("images") else []
        same = self.store.same_prompt(run_id, owner)
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(result.created_at))
        msg = (f"Run `{result.run_id}` ({when}, from {result.origin or 'unknown'})"
               + (f"; {len(same)} other run(s) of the same prompt: pick one under *Compare with*" if same else ""))
        best = gr.update(choices=label_choices(result), value=label["best_member"] if label else None)
        return (msg, run_images_html(images), render.to_markdown(result), plots.run_timeline(result),
                gr.update(visible=bool(result.outputs)), best,
                gr.update(value=label["fused"] if label else None),
                gr.update(choices=same, value=same[0] if same else None), "", result.run_id)

    def open_row(self, row_ids, evt: gr.SelectData, request: gr.Request | None = None):
        row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        run_id = row_ids[row] if row_ids and 0 <= row < len(row_ids) else ""
        return (gr.update(value=run_id),) + self.open_run(run_id, request)

    def compare(self, a, b, request: gr.Request | None = None) -> str:
        owner = page_owner(request, self.policy)
        try:
            ra, rb = (self.store.load((x or "").strip(), owner=owner) for x in (a, b))
        except WorkbenchError as exc:
            return f"⚠ {exc} (open a run, then pick the one to compare it with)"
        return compare_html(ra, rb)

    def save_label(self, run_id, best, fused, search_text=None, origin=ANY, mode=ANY, labelled=ANY,
                   with_eval=False, request: gr.Request | None = None) -> tuple:
        unchanged = tuple(gr.update() for _ in self.outputs)
        if best is None and not fused:
            return ("⚠ pick the best member answer, rate the fused answer, or both", *unchanged)
        try:
            self.store.set_label((run_id or "").strip(), best, fused or None,
                                 owner=page_owner(request, self.policy))
        except WorkbenchError as exc:
            return (f"⚠ {exc}", *unchanged)
        return (f"Saved your label of `{run_id}`.",
                *self.refresh_all(search_text, origin, mode, labelled, with_eval, request))

    async def rejudge_run(self, run_id, judge, mode, state, search_text=None, origin=ANY, mode_f=ANY, labelled=ANY,
                          with_eval=False, request: gr.Request | None = None) -> tuple:
        policy, store = self.policy, self.store
        owner = page_owner(request, policy)
        try:
            old = await asyncio.to_thread(store.load, (run_id or "").strip(), owner)  # SQLite off the loop
            reg = await asyncio.to_thread(policy.registry_with, (state or {}).get("endpoints", []))
            images = await asyncio.to_thread(store.images, old.run_id, owner)
            new = await rejudge(old, policy.member(judge, reg) if MODES[mode].judged else None, mode,
                                images=images, context=RunContext.for_page(request, policy, store, reg))  # saved
        except WorkbenchError as exc:
            return (f"⚠ {exc}", *(gr.update() for _ in range(4 + len(self.outputs))))
        fresh = list(self.refresh_all(search_text, origin, mode_f, labelled, with_eval, request))
        fresh[self.outputs.index(self.run_dd)] = gr.update(choices=fresh[1], value=new.run_id)
        return (f"Re-judged `{old.run_id}` as `{new.run_id}` ({mode}, no member regenerated).",
                render.to_markdown(new), plots.run_timeline(new), new.run_id, gr.update(value=None), *fresh)

    def export(self, run_id, fmt: str, request) -> tuple[str | None, str]:
        try:
            text = render.export(self.store.load((run_id or "").strip(), owner=page_owner(request, self.policy)), fmt)
        except WorkbenchError as exc:
            return None, f"⚠ {exc}"
        path = Path(tempfile.mkdtemp(prefix="wb-export-")) / f"{run_id}.{'json' if fmt == 'json' else 'md'}"
        path.write_text(text)
        return str(path), f"Exported `{run_id}`."

    def export_json(self, run_id, request: gr.Request | None = None):
        return self.export(run_id, "json", request)

    def export_md(self, run_id, request: gr.Request | None = None):
        return self.export(run_id, "md", request)
