"""The Gradio workbench: `build_demo()` returns the Blocks. It renders the engine's event stream only.

Fuse tab: prompt with images, pool / judge / mode, one streaming column per member (2-8, scrolling past 4),
the debate transcript, the judge's verdict, timeline and token figures. History tab: stored runs, reopen,
re-judge without regenerating, export. `/fuse` is a named API endpoint for gradio_client.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import gradio as gr

from .. import plots
from ..errors import WorkbenchError
from ..fusion.engine import fuse_stream
from ..fusion.records import (FusionResult, JudgeStart, MemberDone, MemberToken, RoundStart, RunDone, RunStart,
                               VerdictEvent)
from ..specs import Member, ModelSpec, Registry, load_registry
from ..store import RunStore
from ..types import ImageData, Prompt
from . import render
from .startup import TINY, Preloader, choose_preset

MAX_MEMBERS = 8
POOL_HEADERS = ["model", "persona", "temperature", "name"]
MODES = ["best-of", "merge", "debate", "vote"]
UPDATE_EVERY_S = 0.05  # at most ~20 page updates a second while streaming

CSS = """
.wb-members { overflow-x: auto; flex-wrap: nowrap !important; }
.wb-member { min-width: 280px; max-width: 420px; border: 1px solid var(--border-color-primary);
             border-radius: 8px; padding: 6px; }
.wb-pre { white-space: pre-wrap; word-break: break-word; font-family: var(--font-mono); font-size: 0.85em; }
.wb-notice { border-left: 4px solid #f58518; padding-left: 8px; }
"""


def registry_with(endpoints: list[dict[str, Any]]) -> Registry:
    """Shipped presets + user file + endpoints added in this browser (URL, model, key *variable name*)."""
    reg = load_registry()
    for ep in endpoints or []:
        reg.models[ep["name"]] = ModelSpec(name=ep["name"], backend="openai", model=ep["model"],
                                           base_url=ep["base_url"], api_key_env=ep.get("api_key_env") or None,
                                           vision=bool(ep.get("vision", True)), description="added in the browser")
    return reg


def members_from_rows(rows: Any, reg: Registry) -> list[Member]:
    """Pool table rows (model, persona, temperature, name) -> Members. Raises WorkbenchError on a bad row."""
    if hasattr(rows, "values"):  # a pandas DataFrame from gr.Dataframe
        rows = rows.values.tolist()
    members = []
    for n, row in enumerate(rows or [], 1):
        row = [("" if c is None else str(c)).strip() for c in list(row) + [""] * 4][:4]
        model, persona, temp, name = row
        if not model or model.lower() == "nan":
            continue
        base = reg.member(model)
        persona_text, persona_name = base.persona, base.persona_name
        if persona and persona.lower() != "nan":
            persona_text, persona_name = (reg.personas[persona], persona) if persona in reg.personas \
                else (persona, "custom")
        try:
            temperature = float(temp) if temp and temp.lower() != "nan" else None
        except ValueError:
            raise WorkbenchError(f"pool row {n}: temperature {temp!r} is not a number") from None
        members.append(Member(base.model, persona_text, persona_name, temperature,
                              display_name=name if name and name.lower() != "nan" else ""))
    if len(members) > MAX_MEMBERS:
        raise WorkbenchError(f"the pool has {len(members)} members; the page shows at most {MAX_MEMBERS}")
    return members


def _readable(path: str) -> bool:
    try:
        ImageData.load(path)
        return True
    except WorkbenchError:
        return False


def default_pool(preset: str) -> list[list[Any]]:
    return [[preset, "", "", ""], [preset, "skeptic", "", ""], [preset, "analyst", "", ""]]


def build_demo(preset: str | None = None, store: RunStore | None = None, preload: bool = True,
               pool: list[str] | None = None) -> gr.Blocks:
    """The workbench app.

    Args:
        preset: model to start on ("auto": Scout INT4 when a GPU and its weights are there, else tiny-offline).
        store: where runs are kept (default: the user data directory).
        preload: load the start-up preset in the background so the first prompt does not wait.
        pool: the starting pool as member names (default: the preset three times, with personas).
    """
    preset, notice = choose_preset(preset)
    store = store or RunStore()
    loader = Preloader(preset) if preload else None
    reg0 = load_registry()
    model_choices = sorted(reg0.models)
    persona_choices = [""] + sorted(reg0.personas)
    is_noise = reg0.models.get(preset) is not None and reg0.models[preset].is_noise
    start_pool = [[m, "", "", ""] for m in pool] if pool else default_pool(preset)

    with gr.Blocks(title="Fusion Workbench") as demo:
        saved = gr.BrowserState({"pool": start_pool, "endpoints": []}, storage_key="fusion-workbench-v1")
        gr.Markdown("# Fusion Workbench\nDoes a fused pool of models beat the best single one, and why?")
        gr.Markdown(("⚠ " + notice) if notice else "", elem_classes="wb-notice", visible=bool(notice))
        noise_md = gr.Markdown(render.NOISE_NOTICE, elem_id="noise-notice", elem_classes="wb-notice", visible=is_noise)

        with gr.Tab("Fuse"):
            prompt_box = gr.MultimodalTextbox(label="Prompt", placeholder="Ask something; attach or paste images",
                                              file_types=["image"], file_count="multiple", sources=["upload"],
                                              submit_btn="Fuse", elem_id="prompt-box")
            with gr.Row(equal_height=True):
                status = gr.Markdown("", elem_id="status")
                stop_btn = gr.Button("Stop", variant="stop", elem_id="stop-btn", scale=0, min_width=100, size="sm")
            with gr.Accordion("Pool, judge and mode", open=False, elem_id="settings"):
                pool_df = gr.Dataframe(headers=POOL_HEADERS, value=start_pool, column_count=4,
                                       interactive=True, label="Pool (one member a row)",
                                       elem_id="pool-table")
                with gr.Row():
                    add_model = gr.Dropdown(model_choices, value=preset, label="Model", allow_custom_value=True)
                    add_persona = gr.Dropdown(persona_choices, value="", label="Persona", allow_custom_value=True)
                    add_temp = gr.Number(None, label="Temperature (blank: the run's)")
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
                    mode_radio = gr.Radio(MODES, value="best-of", label="Mode", elem_id="mode")
                    rounds_sl = gr.Slider(1, 5, value=2, step=1, label="Debate rounds")
                    tokens_sl = gr.Slider(16, 4096, value=256, step=16, label="Max new tokens")
                    temp_sl = gr.Slider(0, 2, value=0.7, step=0.05, label="Temperature")
                    swap_sl = gr.Slider(1, 4, value=1, step=1, label="Judge orderings (position check)")
            images_gallery = gr.Gallery(label="Input images (sent once to every vision member)", visible=False,
                                        height=140, columns=8, object_fit="contain", elem_id="input-images")
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
            with gr.Row():
                timeline_plot = gr.Plot(label="Timeline")
                tokens_plot = gr.Plot(label="Tokens and cost")

        from .evaluate_tab import build_evaluate_tab

        build_evaluate_tab(pool_df, judge_dd, saved, store, registry_with, members_from_rows)

        from .history_tab import build_history_tab

        runs_df, run_dd, rj_judge, history_rows = build_history_tab(store, model_choices, preset, registry_with, saved)

        # ---- the API endpoint: simple typed inputs, streamed JSON out ----
        with gr.Row(visible=False):
            api_prompt = gr.Textbox()
            api_images = gr.File(file_count="multiple")
            api_pool = gr.Textbox()
            api_judge = gr.Textbox()
            api_mode = gr.Textbox()
            api_rounds = gr.Number()
            api_tokens = gr.Number()
            api_out = gr.JSON()
            api_btn = gr.Button()

        member_outputs = heads + bodies + stats + cols

        async def run(mm, rows, judge, mode, rounds, max_tokens, temperature, swap_k, state):
            text = (mm or {}).get("text", "") if isinstance(mm, dict) else str(mm or "")
            files = (mm or {}).get("files", []) if isinstance(mm, dict) else []
            files = [f if isinstance(f, str) else f.get("path", "") for f in files]
            bad = []
            for f in files:  # check each image; a bad one leaves the box, the text and the good ones stay
                try:
                    ImageData.load(f)
                except WorkbenchError as exc:
                    bad.append(str(exc))
            if bad:
                good = [f for f in files if _readable(f)]
                yield {status: "⚠ " + "; ".join(bad) + " (removed from the prompt; fix it and submit again)",
                       prompt_box: {"text": text, "files": good}}
                return
            try:
                prompt = Prompt(text, images=files)
                reg = registry_with((state or {}).get("endpoints", []))
                members = members_from_rows(rows, reg)
                if len(members) < 1:
                    raise WorkbenchError("the pool is empty: add at least one member")
                judge_member = reg.member(judge) if mode != "vote" and judge else None
            except WorkbenchError as exc:
                yield {status: f"⚠ {exc}"}
                return
            n = len(members)
            texts = [""] * n
            first = {status: f"Running {mode} with {n} member(s)…",
                     images_gallery: gr.update(value=[p for p in files] or None, visible=bool(files)),
                     noise_md: gr.update(visible=any(m.model.is_noise for m in members)
                                         or bool(judge_member and judge_member.model.is_noise)),
                     transcript: "", verdict: "", timeline_plot: None, tokens_plot: None}
            for i in range(MAX_MEMBERS):
                first[cols[i]] = gr.update(visible=i < n)
                first[heads[i]] = f"**{members[i].label}**" if i < n else ""
                first[bodies[i]] = ""
                first[stats[i]] = "waiting…" if i < n else ""
            yield first
            pending: dict = {}
            last = time.monotonic()
            cur_round = 1
            try:
                async for ev in fuse_stream(prompt, members, judge_member, mode, int(rounds),
                                            max_new_tokens=int(max_tokens), temperature=float(temperature),
                                            swap_k=int(swap_k), store=store, registry=reg):
                    if isinstance(ev, MemberToken):
                        texts[ev.member] += ev.text
                        pending[bodies[ev.member]] = texts[ev.member]
                    elif isinstance(ev, RoundStart):
                        cur_round = ev.round
                        if ev.round > 1:
                            texts = [""] * n
                            for i in range(n):
                                pending[stats[i]] = f"round {ev.round}…"
                    elif isinstance(ev, MemberDone):
                        o = ev.output
                        pending[bodies[o.member]] = o.text if o.ok else (o.text + f"\n\n**failed ({o.kind})**: {o.reason}")
                        pending[stats[o.member]] = (f"round {o.round} · " if cur_round > 1 else "") + render.member_stats(o)
                    elif isinstance(ev, VerdictEvent):
                        pending[status] = "Judge done; saving…"
                    elif isinstance(ev, RunDone):
                        pending.update(final_updates(ev.result))
                    elif isinstance(ev, RunStart):
                        pending[status] = f"Run `{ev.run_id}`: {mode} with {n} member(s)…"
                    elif isinstance(ev, JudgeStart):
                        pending[status] = f"Judging (ordering {ev.attempt})…"
                    now = time.monotonic()
                    if pending and (now - last >= UPDATE_EVERY_S or isinstance(ev, (MemberDone, RunDone))):
                        yield pending
                        pending, last = {}, now
            except WorkbenchError as exc:
                pending[status] = f"⚠ {exc}"
            if pending:
                yield pending

        def final_updates(result: FusionResult) -> dict:
            upd = {status: render.status_line(result), transcript: render.transcript_html(result),
                   verdict: render.verdict_html(result), timeline_plot: plots.run_timeline(result),
                   tokens_plot: plots.tokens_and_cost(result)}
            for o in result.rounds[-1] if result.rounds else []:
                upd[stats[o.member]] = (f"round {o.round} · " if len(result.rounds) > 1 else "") + render.member_stats(o)
            return upd

        run_inputs = [prompt_box, pool_df, judge_dd, mode_radio, rounds_sl, tokens_sl, temp_sl, swap_sl, saved]
        run_outputs = [prompt_box, status, images_gallery, noise_md, transcript, verdict, timeline_plot, tokens_plot] + member_outputs
        # progress shows on the judge section only: the prompt box stays usable and the columns readable
        run_event = prompt_box.submit(run, run_inputs, run_outputs, api_visibility="private", concurrency_limit=None,
                                      show_progress="minimal", show_progress_on=[verdict])
        stop_btn.click(lambda: "⏹ Run stopped: every member and the judge were cancelled.", None, status,
                       cancels=[run_event], api_visibility="private")

        # ---- pool editing, persisted in the browser ----
        def add_member(rows, model, persona, temp):
            rows = rows.values.tolist() if hasattr(rows, "values") else list(rows or [])
            rows = [r for r in rows if r and str(r[0]).strip() not in ("", "nan", "None")]
            if len(rows) >= MAX_MEMBERS:
                return rows, f"⚠ at most {MAX_MEMBERS} members"
            rows.append([model or "", persona or "", "" if temp is None else temp, ""])
            return rows, ""

        add_btn.click(add_member, [pool_df, add_model, add_persona, add_temp], [pool_df, status],
                      api_visibility="private")
        clear_btn.click(lambda: [["", "", "", ""]], None, pool_df, api_visibility="private")

        def remember_pool(rows, state):
            rows = rows.values.tolist() if hasattr(rows, "values") else list(rows or [])
            return {**(state or {}), "pool": [[("" if c is None else c) for c in r] for r in rows]}

        pool_df.change(remember_pool, [pool_df, saved], saved, api_visibility="private")

        def add_endpoint(name, url, model, key_var, vision, state):
            name, url, model, key_var = (x.strip() for x in (name, url, model, key_var or ""))
            if not (name and url and model):
                return state, gr.update(), gr.update(), gr.update(), "⚠ an endpoint needs a name, a base URL and a model"
            if os.environ.get("SPACE_ID") and os.environ.get("WORKBENCH_ALLOW_CUSTOM_ENDPOINTS") != "1":
                # on a hosted Space the server would fetch any URL a visitor types (SSRF): off unless allowed
                return state, gr.update(), gr.update(), gr.update(), \
                    "⚠ adding endpoints is off on this hosted Space (set WORKBENCH_ALLOW_CUSTOM_ENDPOINTS=1 to allow)"
            if not url.startswith(("http://", "https://")):
                return state, gr.update(), gr.update(), gr.update(), "⚠ the base URL must start with http:// or https://"
            if key_var and not key_var.replace("_", "").isalnum():
                return state, gr.update(), gr.update(), gr.update(), \
                    "⚠ give the *name* of the environment variable holding the key, not the key itself"
            eps = [e for e in (state or {}).get("endpoints", []) if e["name"] != name]
            eps.append({"name": name, "base_url": url, "model": model, "api_key_env": key_var, "vision": vision})
            choices = sorted(set(model_choices) | {e["name"] for e in eps})
            return ({**(state or {}), "endpoints": eps}, gr.update(choices=choices, value=name),
                    gr.update(choices=choices), gr.update(choices=choices), f"Added endpoint **{name}**.")

        ep_btn.click(add_endpoint, [ep_name, ep_url, ep_model, ep_key, ep_vision, saved],
                     [saved, add_model, judge_dd, rj_judge, status], api_visibility="private")

        def restore(state):
            state = state or {}
            eps = state.get("endpoints", [])
            choices = sorted(set(model_choices) | {e["name"] for e in eps})
            pool = state.get("pool") or start_pool
            msg, judge = "", gr.update(choices=choices)
            if loader is not None and loader.done.is_set() and loader.error:
                msg = f"⚠ {loader.error}"
                if preset != TINY and pool == start_pool:  # fall back to what can run
                    pool, judge = default_pool(TINY), gr.update(choices=choices, value=TINY)
                    msg += " Falling back to the tiny offline model."
            return pool, gr.update(choices=choices), judge, msg, history_rows(), \
                gr.update(choices=[r["run_id"] for r in store.list(100)])

        demo.load(restore, saved, [pool_df, add_model, judge_dd, status, runs_df, run_dd], api_visibility="private")

        async def api_fuse(prompt_text, image_files, pool, judge, mode, rounds, max_new_tokens):
            """Run one fusion. pool: comma-separated members; judge: a model (empty for vote).

            Streams {"event": ...} updates; the last value is {"event": "done", "result": FusionResult dict}.
            """
            files = [f if isinstance(f, str) else getattr(f, "name", None) or f.get("path") for f in image_files or []]
            try:
                prompt = Prompt(prompt_text or "", images=files)
                reg = load_registry()
                members = [reg.member(p) for p in (pool or "").split(",") if p.strip()]
                mode = mode or "best-of"
                stream = fuse_stream(prompt, members, judge or None, mode, int(rounds or 2),
                                     max_new_tokens=int(max_new_tokens or 256), store=store, registry=reg)
                texts = [""] * len(members)
                last = 0.0
                async for ev in stream:
                    if isinstance(ev, MemberToken):
                        texts[ev.member] += ev.text
                        if time.monotonic() - last > 0.1:
                            last = time.monotonic()
                            yield {"event": "tokens", "round": ev.round, "members": list(texts)}
                    elif isinstance(ev, RoundStart):
                        texts = [""] * len(members)
                    elif isinstance(ev, RunDone):
                        yield {"event": "done", "result": json.loads(json.dumps(ev.result.to_dict(), default=str)),
                               "transcript_html": render.transcript_html(ev.result)}
            except WorkbenchError as exc:
                yield {"event": "error", "error": str(exc)}

        api_btn.click(api_fuse, [api_prompt, api_images, api_pool, api_judge, api_mode, api_rounds, api_tokens],
                      api_out, api_name="fuse", concurrency_limit=None)

    demo.queue(default_concurrency_limit=16)
    return demo


def launch(preset: str | None = None, host: str = "127.0.0.1", port: int | None = None,
           pool: list[str] | None = None, grace_s: float = 25.0, **kw) -> None:
    """Build and serve the app until SIGTERM or Ctrl-C, then drain (see ``serve_until_signal``)."""
    from .serving import serve_until_signal

    demo = build_demo(preset, pool=pool)
    demo.launch(server_name=host, server_port=port, css=CSS, prevent_thread_lock=True, **kw)
    serve_until_signal(demo, grace_s)
