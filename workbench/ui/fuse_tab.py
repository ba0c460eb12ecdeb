"""The Fuse tab: prompt with images, pool / judge / mode, one streaming column per member, transcript,
verdict and figures. Its run handler only maps ``ui.stream.view_updates`` to components."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import gradio as gr

from .. import plots
from ..context import VISITOR_COOKIE, RunContext, page_owner
from ..errors import WorkbenchError
from ..fusion.engine import fuse_stream
from ..fusion.modes import MODE_NAMES, get_mode
from ..labels import NONE_STANDS_OUT, RATINGS
from ..policy import Policy
from ..records import FusionResult
from ..render import html as render
from ..settings import FusionSettings
from ..store import RunStore
from ..types import Prompt
from .pool import MAX_MEMBERS, POOL_HEADERS, add_member_row, check_endpoint, members_from_rows, remember_pool
from .startup import SMOL, TINY
from .stream import view_updates


@dataclass
class FuseTab:
    """The components other parts of the page read or update."""

    saved: Any  #: gr.BrowserState: {"pool": rows, "endpoints": [...]}
    pool_df: Any
    judge_dd: Any
    add_model: Any
    status: Any
    noise_md: Any
    endpoint_added: Any  #: the event of adding an endpoint (other tabs chain their model lists on it)
    run_event: Any = None  #: the event of a run (History chains its refresh on it)


def label_controls(prefix: str) -> tuple:
    """The researcher's label of one run (best member answer, the fused answer against it, save), hidden until
    a run is shown: (group, best radio, rating radio, save button); element ids ``{prefix}label-...``."""
    with gr.Group(visible=False, elem_id=f"{prefix}label-box") as box:
        with gr.Row(equal_height=True):
            best = gr.Radio([], label="You as the judge: the best member answer", elem_id=f"{prefix}label-best")
            fused = gr.Radio(list(RATINGS), label="The fused answer, against that one", elem_id=f"{prefix}label-fused")
            save = gr.Button("Save my label", elem_id=f"{prefix}label-save", scale=0, min_width=120)
    return box, best, fused, save


def label_choices(result: FusionResult) -> list[tuple[str, int]]:
    """The best-member choices of a run: its members by name, and "none stands out"."""
    return [(o.label, o.member) for o in result.outputs] + [("none stands out", NONE_STANDS_OUT)]


#: on the page's load: a random visitor token (128 bits from the browser's CSPRNG), kept in a first-party cookie
#: (partitioned when the page is embedded over https, as on a Space) and sent with every request of the page
VISITOR_JS = """
() => {
  const name = '{name}';
  if (document.cookie.split('; ').some(c => c.startsWith(name + '=') && c.length > name.length + 22)) return;
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  const token = Array.from(bytes, b => b.toString(16).padStart(2, '0')).join('');
  const attrs = location.protocol === 'https:' ? '; SameSite=None; Secure; Partitioned' : '; SameSite=Lax';
  document.cookie = name + '=' + token + '; Path=/; Max-Age=31536000' + attrs;
}
""".replace("{name}", VISITOR_COOKIE)


def build_fuse_tab(preset: str, start_pool: list[list[Any]], store: RunStore, model_choices: list[str],
                   persona_choices: list[str], noise_md, policy: Policy) -> FuseTab:
    """Lay out the tab inside the current Blocks and wire its handlers (every call checked by ``policy``)."""
    saved = gr.BrowserState({"pool": start_pool, "endpoints": []}, storage_key="fusion-workbench-v1")
    with gr.Tab("Fuse"):
        prompt_box = gr.MultimodalTextbox(label="Prompt", placeholder="Ask something; attach or paste images",
                                          file_types=["image"], file_count="multiple", sources=["upload"],
                                          submit_btn="Fuse", elem_id="prompt-box")
        with gr.Row(equal_height=True):
            status = gr.Markdown("", elem_id="status")
            keep_cb = gr.Checkbox(False, label="Keep prompt and images after a run", elem_id="keep-prompt",
                                  scale=0, min_width=160)
            stop_btn = gr.Button("Stop", variant="stop", elem_id="stop-btn", scale=0, min_width=100, size="sm",
                                 interactive=False)
        with gr.Accordion("Pool, judge and mode", open=False, elem_id="settings"):
            pool_df = gr.Dataframe(headers=POOL_HEADERS, value=start_pool, column_count=4,
                                   interactive=True, label="Pool (one member a row)", elem_id="pool-table")
            with gr.Row():
                add_model = gr.Dropdown(model_choices, value=preset, label="Model", allow_custom_value=True)
                add_persona = gr.Dropdown(persona_choices, value="", label="Persona", allow_custom_value=True)
                add_temp = gr.Textbox("", label="Temperature", placeholder="blank: the run's",
                                      elem_id="add-temp", max_lines=1)
                add_btn = gr.Button("Add member", elem_id="add-member")
                clear_btn = gr.Button("Clear pool")
            with gr.Accordion("Add an OpenAI-compatible endpoint", open=False, elem_id="endpoint-acc"):
                with gr.Row():
                    ep_name = gr.Textbox(label="Name", placeholder="my-vllm")
                    ep_url = gr.Textbox(label="Base URL", placeholder="http://localhost:8000/v1")
                    ep_model = gr.Textbox(label="Model", placeholder="meta-llama/Llama-4-Scout-17B-16E-Instruct")
                    ep_key = gr.Textbox(label="API key variable (never the key)", placeholder="OPENROUTER_API_KEY")
                    ep_vision = gr.Checkbox(True, label="Takes images")
                    ep_btn = gr.Button("Add endpoint")
            with gr.Row():
                judge_dd = gr.Dropdown(model_choices, value=preset, label="Judge", allow_custom_value=True,
                                       elem_id="judge")
                mode_radio = gr.Radio(list(MODE_NAMES), value="best-of", label="Mode", elem_id="mode")
                rounds_sl = gr.Slider(1, 5, value=2, step=1, label="Debate rounds")
                # CPU presets write ~10 tokens/s: a shorter default keeps the first run under a minute
                tokens_sl = gr.Slider(16, 4096, value=128 if preset in (SMOL, TINY) else 256, step=16,
                                      label="Max new tokens")
                temp_sl = gr.Slider(0, 2, value=0.7, step=0.05, label="Temperature")
                swap_sl = gr.Slider(1, 4, value=1, step=1, label="Judge orderings (verdict corrected for position)")
                blind_radio = gr.Radio([("skip them", "skip"), ("tell them; they answer from the text", "tell")],
                                       value="skip", label="Members that cannot see images, given an image",
                                       elem_id="blind-members")
        with gr.Row(equal_height=False, visible=False) as strip_row:
            images_strip = gr.HTML("", elem_id="input-images")
            reuse_btn = gr.Button("Reuse this prompt", elem_id="reuse-prompt", scale=0, min_width=140, size="sm")
        last_prompt = gr.State(None)  #: the last run's prompt box value (text and image files), for "reuse"
        last_run = gr.State(None)  #: the last finished run's id (for the researcher's label)
        with gr.Row(elem_classes="wb-members"):
            heads, bodies, stats, cols = [], [], [], []
            for i in range(MAX_MEMBERS):
                with gr.Column(visible=i < 3, elem_classes="wb-member", elem_id=f"member-{i}", min_width=280) as c:
                    heads.append(gr.Markdown(f"**member {i + 1}**", elem_id=f"member-head-{i}"))
                    bodies.append(gr.Markdown("", elem_id=f"member-body-{i}"))
                    stats.append(gr.Markdown("", elem_id=f"member-stats-{i}"))
                cols.append(c)
        with gr.Accordion("Debate transcript", open=False, elem_id="transcript-acc"):
            transcript = gr.HTML("", elem_id="transcript")
        with gr.Accordion("Judge", open=True, elem_id="judge-acc"):
            verdict = gr.HTML("", elem_id="verdict")
            label_box, label_best, label_fused, label_btn = label_controls("")
            label_msg = gr.Markdown("", elem_id="label-msg")
        with gr.Row():
            timeline_plot = gr.Plot(label="Timeline")
            tokens_plot = gr.Plot(label="Tokens and cost")

    running: dict[str, int] = {}  #: runs in flight per browser session (Stop is enabled while any is)

    def session_of(request) -> str:
        return getattr(request, "session_hash", None) or "anonymous"

    def ended(request) -> dict:
        """A run of this session ended: Stop stays enabled only while another one runs."""
        key = session_of(request)
        running[key] = max(0, running.get(key, 0) - 1)
        if not running[key]:
            running.pop(key, None)
            return {stop_btn: gr.update(interactive=False)}
        return {}

    def final_updates(result: FusionResult) -> dict:
        upd = {status: render.status_line(result), transcript: render.transcript_html(result),
               verdict: render.verdict_html(result), timeline_plot: plots.run_timeline(result),
               tokens_plot: plots.tokens_and_cost(result), last_run: result.run_id}
        last = len(result.rounds)
        batched = render.batches(result, last)
        for o in result.rounds[-1] if result.rounds else []:
            upd[stats[o.member]] = (f"round {o.round} · " if last > 1 else "") + \
                render.member_stats(o, batched.get(o.member))
        if result.outputs and not result.interrupted:
            upd[label_box] = gr.update(visible=True)
            upd[label_best] = gr.update(choices=label_choices(result), value=None)
            upd[label_fused] = gr.update(value=None)
            upd[label_msg] = ""
        return upd

    async def run(mm, rows, judge, mode, rounds, max_tokens, temperature, swap_k, blind, keep, state,
                  request: gr.Request | None = None):
        text = (mm or {}).get("text", "") if isinstance(mm, dict) else str(mm or "")
        files = (mm or {}).get("files", []) if isinstance(mm, dict) else []
        files = [f if isinstance(f, str) else f.get("path", "") for f in files]
        context = RunContext.for_page(request, policy, store)  # its registry: the session's endpoints, below
        # limits first, then decoding, off the event loop; a bad image leaves the box, the text and the good ones stay
        try:
            loaded = await asyncio.to_thread(policy.read_images, files, context.quota, True)  # count first
        except WorkbenchError as exc:  # the server's limits (runs in flight, decoding slots): nothing is lost
            yield {status: f"⚠ {exc}"}
            return
        errors = {f: img if isinstance(img, str) else "" for f, img in zip(files, loaded)}
        if any(errors.values()):
            yield {status: "⚠ " + "; ".join(e for e in errors.values() if e)
                   + " (removed from the prompt; fix it and submit again)",
                   prompt_box: {"text": text, "files": [f for f, e in errors.items() if not e]}}
            return
        try:
            prompt = Prompt(text, images=loaded)  # already decoded: ImageData passes through
            # browser state: checked on every call (host lookups off the event loop)
            reg = await asyncio.to_thread(policy.registry_with, (state or {}).get("endpoints", []))
            members = members_from_rows(rows, reg, policy)
            if len(members) < 1:
                raise WorkbenchError("the pool is empty: add at least one member")
            judge_member = policy.member(judge, reg) if get_mode(mode).judged and judge else None
            settings = FusionSettings(rounds=int(rounds), max_new_tokens=int(max_tokens),
                                      temperature=float(temperature), swap_k=int(swap_k),
                                      blind_members=blind or "skip")
        except WorkbenchError as exc:
            yield {status: f"⚠ {exc}"}
            return
        n = len(members)
        thumbs = await asyncio.to_thread(render.thumbnails_html, text, loaded)
        first = {status: f"Running {mode} with {n} member(s)…",
                 strip_row: gr.update(visible=True), images_strip: thumbs,
                 last_prompt: {"text": text, "files": list(files)},
                 noise_md: gr.update(visible=any(m.model.is_noise for m in members)
                                     or bool(judge_member and judge_member.model.is_noise)),
                 transcript: "", verdict: "", timeline_plot: None, tokens_plot: None,
                 stop_btn: gr.update(interactive=True), label_box: gr.update(visible=False), last_run: None}
        if not keep:  # the strip above shows what was sent; "Reuse this prompt" puts it back
            first[prompt_box] = {"text": "", "files": []}
        for i in range(MAX_MEMBERS):
            first[cols[i]] = gr.update(visible=i < n)
            first[heads[i]] = f"**{members[i].label}**" if i < n else ""
            first[bodies[i]] = ""
            first[stats[i]] = "waiting…" if i < n else ""
        key = session_of(request)
        counted = True  # this run is in running[key] until it ends (ended() re-renders the button)
        try:
            running[key] = running.get(key, 0) + 1
            yield first
            events = fuse_stream(prompt, members, judge_member, mode, settings,
                                 context=context.replace(registry=reg))
            async for u in view_updates(events, n):
                upd: dict = {bodies[i]: t for i, t in u.bodies.items()}
                upd.update({stats[i]: s for i, s in u.stats.items()})
                if u.status is not None:
                    upd[status] = u.status
                if u.result is not None:
                    upd.update(final_updates(u.result))
                    upd.update(ended(request))
                    counted = False
                yield upd
        except WorkbenchError as exc:
            upd = {status: f"⚠ {exc}" + ("" if keep else " (your prompt is in the strip: **Reuse this prompt**)")}
            if counted:
                upd.update(ended(request))
                counted = False
            yield upd
        finally:
            if counted:  # cancelled by Stop or a closed tab: the stop handler re-renders the button
                running[key] = max(0, running.get(key, 0) - 1)
                if not running[key]:
                    running.pop(key, None)

    run_inputs = [prompt_box, pool_df, judge_dd, mode_radio, rounds_sl, tokens_sl, temp_sl, swap_sl, blind_radio,
                  keep_cb, saved]
    run_outputs = [prompt_box, status, strip_row, images_strip, last_prompt, noise_md, transcript, verdict,
                   timeline_plot, tokens_plot, stop_btn, label_box, label_best, label_fused, label_msg,
                   last_run] + heads + bodies + stats + cols
    # progress shows on the judge section only: the prompt box stays usable and the columns readable
    run_event = prompt_box.submit(run, run_inputs, run_outputs, api_visibility="private", concurrency_limit=None,
                                  show_progress="minimal", show_progress_on=[verdict])

    def stopped(request: gr.Request | None = None):
        running.pop(session_of(request), None)
        return "⏹ Run stopped: every member and the judge were cancelled.", gr.update(interactive=False)

    stop_btn.click(stopped, None, [status, stop_btn], cancels=[run_event], api_visibility="private")
    reuse_btn.click(lambda last, cur: last or cur, [last_prompt, prompt_box], prompt_box, api_visibility="private")

    def save_label(run_id, best, fused, request: gr.Request | None = None):
        if not run_id:
            return "⚠ no finished run to label"
        if best is None and not fused:
            return "⚠ pick the best member answer, rate the fused answer, or both"
        try:
            store.set_label(run_id, best, fused or None, owner=page_owner(request, policy))
        except WorkbenchError as exc:
            return f"⚠ {exc}"
        return f"Saved your label of `{run_id}` (History and Evaluate report the judge's agreement with you)."

    label_btn.click(save_label, [last_run, label_best, label_fused], label_msg, api_visibility="private")

    # ---- pool editing, persisted in the browser ----
    add_btn.click(add_member_row, [pool_df, add_model, add_persona, add_temp], [pool_df, status],
                  api_visibility="private")
    clear_btn.click(lambda: [["", "", "", ""]], None, pool_df, api_visibility="private")
    pool_df.change(remember_pool, [pool_df, saved], saved, api_visibility="private")

    def add_endpoint(name, url, model, key_var, vision, state):
        name, url, model, key_var = (x.strip() for x in (name, url, model, key_var or ""))
        problem = check_endpoint(name, url, model, key_var)
        new = {"name": name, "base_url": url, "model": model, "api_key_env": key_var, "vision": vision}
        try:
            policy.registry_with([*(state or {}).get("endpoints", []), new]) if not problem else None
        except WorkbenchError as exc:
            problem = f"⚠ {exc}"
        if problem:
            return state, gr.update(), gr.update(), problem
        eps = [e for e in (state or {}).get("endpoints", []) if e.get("name") != name] + [new]
        choices = sorted(set(model_choices) | {e["name"] for e in eps})
        return ({**(state or {}), "endpoints": eps}, gr.update(choices=choices, value=name),
                gr.update(choices=choices), f"Added endpoint **{name}**.")

    endpoint_added = ep_btn.click(add_endpoint, [ep_name, ep_url, ep_model, ep_key, ep_vision, saved],
                                  [saved, add_model, judge_dd, status], api_visibility="private")
    return FuseTab(saved, pool_df, judge_dd, add_model, status, noise_md, endpoint_added, run_event)
