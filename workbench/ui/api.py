"""The ``/fuse`` API endpoint for gradio_client: simple typed inputs, the run streamed as JSON updates."""

from __future__ import annotations

import asyncio
import json

import gradio as gr

from ..answers import split_pool
from ..context import RunContext
from ..errors import WorkbenchError
from ..fusion.engine import fuse_stream
from ..policy import Policy
from ..render.html import transcript_html
from ..settings import FusionSettings
from ..storage import RunStore
from ..types import Prompt
from .stream import view_updates


def add_fuse_api(store: RunStore, policy: Policy, api_token: str | None = None) -> None:
    """Add the hidden inputs and the named ``fuse`` endpoint inside the current Blocks; ``api_token``: the key
    its clients must send (``Authorization: Bearer``; None: none), as ``/v1`` asks."""
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

    async def api_fuse(prompt_text, image_files, pool, judge, mode, rounds, max_new_tokens,
                       request: gr.Request | None = None):
        """Run one fusion. pool: comma-separated members; judge: a model (empty for vote).

        Streams {"event": ...} updates; the last value is {"event": "done", "result": FusionResult dict}.
        """
        from ..serve.auth import BAD_KEY, bearer_ok

        if not bearer_ok(getattr(request, "headers", None) or {}, api_token):
            yield {"event": "error", "error": BAD_KEY}
            return
        files = [f if isinstance(f, str) else getattr(f, "name", None) or f.get("path") for f in image_files or []]
        try:
            context = RunContext.for_page(request, policy, store, policy.registry, origin="gradio-api")
            images = await asyncio.to_thread(policy.read_images, files, context.quota)  # count first; off the loop
            prompt = Prompt(prompt_text or "", images)
            members = [policy.member(p) for p in split_pool(pool)]
            settings = FusionSettings(rounds=int(rounds or 2), max_new_tokens=int(max_new_tokens or 256))
            events = fuse_stream(prompt, members, judge or None, mode or "best-of", settings, context=context)
            async for u in view_updates(events, len(members), every_s=0.1):
                if u.result is not None:
                    yield {"event": "done", "result": json.loads(json.dumps(u.result.to_dict(), default=str)),
                           "transcript_html": transcript_html(u.result)}
                elif u.bodies:
                    yield {"event": "tokens", "round": u.round, "members": u.texts, "phase": u.phase,
                           "elapsed_s": round(u.elapsed_s, 2)}
                else:  # the phase moved, the time passed, or the judge wrote more
                    yield {"event": "progress", "round": u.round, "phase": u.phase,
                           "elapsed_s": round(u.elapsed_s, 2), "judge": u.judge}
        except WorkbenchError as exc:
            yield {"event": "error", "error": str(exc)}

    api_btn.click(api_fuse, [api_prompt, api_images, api_pool, api_judge, api_mode, api_rounds, api_tokens],
                  api_out, api_name="fuse", concurrency_limit=None)
