"""The Fuse tab: prompt with images, pool / judge / mode, one streaming column per member, transcript,
verdict and figures. Its run handler only maps ``ui.stream.view_updates`` to components."""

from __future__ import annotations

import asyncio
from typing import Any

import gradio as gr

from ..render import plots
from ..context import RunContext, page_owner
from ..errors import WorkbenchError
from ..fusion.engine import fuse_stream
from ..fusion.modes import MODE_NAMES, get_mode
from ..policy import Policy
from ..records import FusionResult
from ..render import html as render
from ..settings import FusionSettings
from ..specs import Member
from ..types import Prompt
from .pool import (MAX_MEMBERS, POOL_HEADERS, add_member_row, check_endpoint, default_pool, members_from_rows,
                   remember_pool)
from .startup import SMOL, TINY
from .stream import view_updates
from .tab import Page, Tab, label_choices, label_controls, models_with_endpoints, session_key


def prompt_parts(mm: Any) -> tuple[str, list[str]]:
    """The prompt box's value as (text, image file paths)."""
    if not isinstance(mm, dict):
        return str(mm or ""), []
    files = [f if isinstance(f, str) else f.get("path", "") for f in mm.get("files", [])]
    return mm.get("text", ""), files


def plan_run(rows: Any, judge: str | None, mode: str, rounds: Any, max_tokens: Any, temperature: Any, swap_k: Any,
             blind: Any, state: dict[str, Any] | None,
             policy: Policy) -> tuple[list[Member], Member | None, FusionSettings, Any]:
    """What the page asks to run, checked by the host's policy (the browser's state is checked on every call):
    (members, judge member or None, settings, the session's registry). WorkbenchError says what is wrong."""
    reg = policy.registry_with((state or {}).get("endpoints", []))
    members = members_from_rows(rows, reg, policy)
    if not members:
        raise WorkbenchError("the pool is empty: add at least one member")
    judge_member = policy.member(judge, reg) if get_mode(mode).judged and judge else None
    from ..availability import availability

    for who in [*members, *([judge_member] if judge_member else [])]:  # refused at once, saying why (no loading)
        a = availability(who.model, policy.public)
        if not a.runnable:
            raise WorkbenchError(f"{who.label} cannot run here: {a.reason}")
    settings = FusionSettings(rounds=int(rounds), max_new_tokens=int(max_tokens), temperature=float(temperature),
                              swap_k=int(swap_k), blind_members=blind or "skip")
    return members, judge_member, settings, reg


def with_endpoint(name: str, url: str, model: str, key_var: str | None, vision: bool, state: dict[str, Any] | None,
                  policy: Policy) -> tuple[dict[str, Any] | None, str]:
    """The browser state with one more endpoint (replacing one of the same name), or None and why not."""
    name, url, model, key_var = (x.strip() for x in (name, url, model, key_var or ""))
    problem = check_endpoint(name, url, model, key_var)
    new = {"name": name, "base_url": url, "model": model, "api_key_env": key_var, "vision": vision}
    eps = [e for e in (state or {}).get("endpoints", []) if e.get("name") != name] + [new]
    if not problem:
        try:
            policy.registry_with(eps)
        except WorkbenchError as exc:
            problem = f"⚠ {exc}"
    return (None, problem) if problem else ({**(state or {}), "endpoints": eps}, f"Added endpoint **{name}**.")


class FuseTab(Tab):
    title = "Fuse"

    def __init__(self, page: Page, start_pool: list[list[Any]], noise_md):
        super().__init__(page)
        self.start_pool, self.noise_md = start_pool, noise_md
        self.running: dict[str, int] = {}  #: runs in flight per browser session (Stop is enabled while any is)

    # ---- layout ----
    def layout(self) -> None:
        self.saved = gr.BrowserState({"pool": self.start_pool, "endpoints": []}, storage_key="fusion-workbench-v1")
        self.prompt_box = gr.MultimodalTextbox(label="Prompt", placeholder="Ask something; attach or paste images",
                                               file_types=["image"], file_count="multiple", sources=["upload"],
                                               submit_btn="Fuse", elem_id="prompt-box")
        with gr.Row(equal_height=True):
            self.status = gr.Markdown("", elem_id="status")
            self.keep_cb = gr.Checkbox(False, label="Keep prompt and images after a run", elem_id="keep-prompt",
                                       scale=0, min_width=160)
            self.stop_btn = gr.Button("Stop", variant="stop", elem_id="stop-btn", scale=0, min_width=100, size="sm",
                                      interactive=False)
        with gr.Accordion("Pool, judge and mode", open=False, elem_id="settings"):
            self.layout_pool()
            self.layout_settings()
        with gr.Row(equal_height=False, visible=False) as self.strip_row:
            self.images_strip = gr.HTML("", elem_id="input-images")
            self.reuse_btn = gr.Button("Reuse this prompt", elem_id="reuse-prompt", scale=0, min_width=140, size="sm")
        self.last_prompt = gr.State(None)  #: the last run's prompt box value (text and image files), for "reuse"
        self.last_run = gr.State(None)  #: the last finished run's id (for the researcher's label)
        self.layout_results()
        self.loads = [self.pool_df, self.add_model, self.judge_dd, self.status]

    def layout_pool(self) -> None:
        page = self.page
        self.pool_df = gr.Dataframe(headers=POOL_HEADERS, value=self.start_pool, column_count=4,
                                    interactive=True, label="Pool (one member a row)", elem_id="pool-table")
        with gr.Row():
            self.add_model = gr.Dropdown(page.models, value=page.preset, label="Model", allow_custom_value=True)
            self.add_persona = gr.Dropdown(page.personas, value="", label="Persona", allow_custom_value=True)
            self.add_temp = gr.Textbox("", label="Temperature", placeholder="blank: the run's",
                                       elem_id="add-temp", max_lines=1)
            self.add_btn = gr.Button("Add member", elem_id="add-member")
            self.clear_btn = gr.Button("Clear pool")
        with gr.Accordion("Add an OpenAI-compatible endpoint", open=False, elem_id="endpoint-acc"):
            with gr.Row():
                self.endpoint_fields = [
                    gr.Textbox(label="Name", placeholder="my-vllm"),
                    gr.Textbox(label="Base URL", placeholder="http://localhost:8000/v1"),
                    gr.Textbox(label="Model", placeholder="meta-llama/Llama-4-Scout-17B-16E-Instruct"),
                    gr.Textbox(label="API key variable (never the key)", placeholder="OPENROUTER_API_KEY"),
                    gr.Checkbox(True, label="Takes images")]
                self.ep_btn = gr.Button("Add endpoint")

    def layout_settings(self) -> None:
        preset = self.page.preset
        with gr.Row():
            self.judge_dd = gr.Dropdown(self.page.models, value=preset, label="Judge", allow_custom_value=True,
                                        elem_id="judge")
            mode = gr.Radio(list(MODE_NAMES), value="best-of", label="Mode", elem_id="mode")
            rounds = gr.Slider(1, 5, value=2, step=1, label="Debate rounds")
            # CPU presets write ~10 tokens/s: a shorter default keeps the first run under a minute
            tokens = gr.Slider(16, 4096, value=128 if preset in (SMOL, TINY) else 256, step=16, label="Max new tokens")
            temp = gr.Slider(0, 2, value=0.7, step=0.05, label="Temperature")
            swap = gr.Slider(1, 4, value=1, step=1, label="Judge orderings (verdict corrected for position)")
            blind = gr.Radio([("skip them", "skip"), ("tell them; they answer from the text", "tell")],
                             value="skip", label="Members that cannot see images, given an image",
                             elem_id="blind-members")
        self.settings_inputs = [mode, rounds, tokens, temp, swap, blind]  #: ``run``'s arguments after the judge

    def layout_results(self) -> None:
        with gr.Row(elem_classes="wb-members"):
            self.heads, self.bodies, self.stats, self.cols = [], [], [], []
            for i in range(MAX_MEMBERS):
                with gr.Column(visible=i < 3, elem_classes="wb-member", elem_id=f"member-{i}", min_width=280) as c:
                    self.heads.append(gr.Markdown(f"**member {i + 1}**", elem_id=f"member-head-{i}"))
                    self.bodies.append(gr.Markdown("", elem_id=f"member-body-{i}"))
                    self.stats.append(gr.Markdown("", elem_id=f"member-stats-{i}"))
                self.cols.append(c)
        with gr.Accordion("Debate transcript", open=False, elem_id="transcript-acc"):
            self.transcript = gr.HTML("", elem_id="transcript")
        with gr.Accordion("Judge", open=True, elem_id="judge-acc"):
            self.verdict = gr.HTML("", elem_id="verdict")
            self.label_box, self.label_best, self.label_fused, self.label_btn = label_controls("")
            self.label_msg = gr.Markdown("", elem_id="label-msg")
        with gr.Row():
            self.timeline_plot = gr.Plot(label="Timeline")
            self.tokens_plot = gr.Plot(label="Tokens and cost")

    # ---- events ----
    def wire(self) -> None:
        run_inputs = [self.prompt_box, self.pool_df, self.judge_dd, *self.settings_inputs, self.keep_cb, self.saved]
        run_outputs = [self.prompt_box, self.status, self.strip_row, self.images_strip, self.last_prompt,
                       self.noise_md, self.transcript, self.verdict, self.timeline_plot, self.tokens_plot,
                       self.stop_btn, self.label_box, self.label_best, self.label_fused, self.label_msg,
                       self.last_run, *self.heads, *self.bodies, *self.stats, *self.cols]
        # progress shows on the judge section only: the prompt box stays usable and the columns readable
        self.run_event = self.prompt_box.submit(self.run, run_inputs, run_outputs, api_visibility="private",
                                                concurrency_limit=None, show_progress="minimal",
                                                show_progress_on=[self.verdict])
        self.stop_btn.click(self.stopped, None, [self.status, self.stop_btn], cancels=[self.run_event],
                            api_visibility="private")
        self.reuse_btn.click(lambda last, cur: last or cur, [self.last_prompt, self.prompt_box], self.prompt_box,
                             api_visibility="private")
        self.label_btn.click(self.save_label, [self.last_run, self.label_best, self.label_fused], self.label_msg,
                             api_visibility="private")
        # pool editing, persisted in the browser
        self.add_btn.click(add_member_row, [self.pool_df, self.add_model, self.add_persona, self.add_temp],
                           [self.pool_df, self.status], api_visibility="private")
        self.clear_btn.click(lambda: [["", "", "", ""]], None, self.pool_df, api_visibility="private")
        self.pool_df.change(remember_pool, [self.pool_df, self.saved], self.saved, api_visibility="private")
        #: the event of adding an endpoint (other tabs chain their model lists on it)
        self.endpoint_added = self.ep_btn.click(self.add_endpoint, [*self.endpoint_fields, self.saved],
                                                [self.saved, self.add_model, self.judge_dd, self.status],
                                                api_visibility="private")

    def on_load(self, state, request):
        """The browser's saved pool and endpoints; the start-up model's failure, falling back to what can run."""
        pool = state.get("pool") or self.start_pool
        choices = models_with_endpoints(self.page.models, state)
        msg, judge = "", gr.update(choices=choices)
        loader = self.page.preloader
        if loader is not None and loader.done.is_set() and loader.error:
            # a visitor reads that it failed; why (paths, commands) is the host's, in the server's log
            msg = "⚠ the start-up model did not load here" if self.policy.public else f"⚠ {loader.error}"
            if self.page.preset != TINY and pool == self.start_pool:
                pool, judge = default_pool(TINY), gr.update(choices=choices, value=TINY)
                msg += " Falling back to the tiny offline model (random weights: its answers are noise)."
        return pool, gr.update(choices=choices), judge, msg

    def ended(self, request) -> dict:
        """A run of this session ended: Stop stays enabled only while another one runs."""
        key = session_key(request)
        self.running[key] = max(0, self.running.get(key, 0) - 1)
        if not self.running[key]:
            self.running.pop(key, None)
            return {self.stop_btn: gr.update(interactive=False)}
        return {}

    def stopped(self, request: gr.Request | None = None):
        self.running.pop(session_key(request), None)
        return "⏹ Run stopped: every member and the judge were cancelled.", gr.update(interactive=False)

    def first_updates(self, mode: str, members: list[Member], judge: Member | None, text: str, files: list[str],
                      thumbs: str, keep: bool) -> dict:
        """What the page shows as a run starts: one column per member, the prompt in the strip."""
        n = len(members)
        first = {self.status: f"Starting {mode} with {n} member(s) · 0 s",
                 self.strip_row: gr.update(visible=True), self.images_strip: thumbs,
                 self.last_prompt: {"text": text, "files": list(files)},
                 self.noise_md: gr.update(visible=any(m.model.is_noise for m in members)
                                          or bool(judge and judge.model.is_noise)),
                 self.transcript: "", self.verdict: "", self.timeline_plot: None, self.tokens_plot: None,
                 self.stop_btn: gr.update(interactive=True), self.label_box: gr.update(visible=False),
                 self.last_run: None}
        if not keep:  # the strip above shows what was sent; "Reuse this prompt" puts it back
            first[self.prompt_box] = {"text": "", "files": []}
        for i in range(MAX_MEMBERS):
            first[self.cols[i]] = gr.update(visible=i < n)
            first[self.heads[i]] = f"**{members[i].label}**" if i < n else ""
            first[self.bodies[i]] = ""
            first[self.stats[i]] = "waiting…" if i < n else ""
        return first

    def final_updates(self, result: FusionResult) -> dict:
        upd = {self.status: render.status_line(result), self.transcript: render.transcript_html(result),
               self.verdict: render.verdict_html(result), self.timeline_plot: plots.run_timeline(result),
               self.tokens_plot: plots.tokens_and_cost(result), self.last_run: result.run_id}
        last = len(result.rounds)
        batched = render.batches(result, last)
        for o in result.rounds[-1] if result.rounds else []:
            upd[self.stats[o.member]] = (f"round {o.round} · " if last > 1 else "") + \
                render.member_stats(o, batched.get(o.member))
        if result.outputs and not result.interrupted:
            upd[self.label_box] = gr.update(visible=True)
            upd[self.label_best] = gr.update(choices=label_choices(result), value=None)
            upd[self.label_fused] = gr.update(value=None)
            upd[self.label_msg] = ""
        return upd

    async def run(self, mm, rows, judge, mode, rounds, max_tokens, temperature, swap_k, blind, keep, state,
                  request: gr.Request | None = None):
        text, files = prompt_parts(mm)
        policy = self.policy
        context = RunContext.for_page(request, policy, self.store)  # its registry: the session's endpoints, below
        # limits first, then decoding, off the event loop; a bad image leaves the box, the text and the good ones stay
        try:
            loaded = await asyncio.to_thread(policy.read_images, files, context.quota, True)  # count first
        except WorkbenchError as exc:  # the server's limits (runs in flight, decoding slots): nothing is lost
            yield {self.status: f"⚠ {exc}"}
            return
        errors = {f: img if isinstance(img, str) else "" for f, img in zip(files, loaded)}
        if any(errors.values()):
            yield {self.status: "⚠ " + "; ".join(e for e in errors.values() if e)
                   + " (removed from the prompt; fix it and submit again)",
                   self.prompt_box: {"text": text, "files": [f for f, e in errors.items() if not e]}}
            return
        try:
            prompt = Prompt(text, images=loaded)  # already decoded: ImageData passes through
            members, judge_member, settings, reg = await asyncio.to_thread(  # host lookups off the event loop
                plan_run, rows, judge, mode, rounds, max_tokens, temperature, swap_k, blind, state, policy)
        except WorkbenchError as exc:
            yield {self.status: f"⚠ {exc}"}
            return
        thumbs = await asyncio.to_thread(render.thumbnails_html, text, loaded)
        key = session_key(request)
        counted = True  # this run is in running[key] until it ends (ended() re-renders the button)
        try:
            self.running[key] = self.running.get(key, 0) + 1
            yield self.first_updates(mode, members, judge_member, text, files, thumbs, keep)
            events = fuse_stream(prompt, members, judge_member, mode, settings, context=context.replace(registry=reg))
            async for u in view_updates(events, len(members)):
                upd: dict = {self.bodies[i]: t for i, t in u.bodies.items()}
                upd.update({self.stats[i]: s for i, s in u.stats.items()})
                if u.status is not None:
                    upd[self.status] = u.status
                if u.judge is not None:  # the judge at work, as it writes (the verdict replaces it at the end)
                    upd[self.verdict] = render.judge_live_html(u.judge, u.phase)
                if u.result is not None:
                    upd.update(self.final_updates(u.result))
                    upd.update(self.ended(request))
                    counted = False
                yield upd
        except WorkbenchError as exc:
            upd = {self.status: f"⚠ {exc}" + ("" if keep else " (your prompt is in the strip: **Reuse this prompt**)")}
            if counted:
                upd.update(self.ended(request))
                counted = False
            yield upd
        finally:
            if counted:  # cancelled by Stop or a closed tab: the stop handler re-renders the button
                self.running[key] = max(0, self.running.get(key, 0) - 1)
                if not self.running[key]:
                    self.running.pop(key, None)

    def save_label(self, run_id, best, fused, request: gr.Request | None = None) -> str:
        if not run_id:
            return "⚠ no finished run to label"
        if best is None and not fused:
            return "⚠ pick the best member answer, rate the fused answer, or both"
        try:
            self.store.set_label(run_id, best, fused or None, owner=page_owner(request, self.policy))
        except WorkbenchError as exc:
            return f"⚠ {exc}"
        return f"Saved your label of `{run_id}` (History and Evaluate report the judge's agreement with you)."

    def add_endpoint(self, name, url, model, key_var, vision, state):
        new_state, msg = with_endpoint(name, url, model, key_var, vision, state, self.policy)
        if new_state is None:
            return state, gr.update(), gr.update(), msg
        choices = models_with_endpoints(self.page.models, new_state)
        return new_state, gr.update(choices=choices, value=name.strip()), gr.update(choices=choices), msg
