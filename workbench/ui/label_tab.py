"""The Label tab: the researcher judges a queue of stored runs by keyboard, arena-style.

Each run's member answers are shown blind (no names, in a random order fixed per run and session); the
researcher picks the best (keys 1-8, 0 when none stands out), then the fused answer is revealed and rated
against that pick (b better, s same, w worse); n skips. Labels go to the run store with the run
(``RunStore.set_label``, ``blind=True``); the judge's agreement with them (``workbench.storage.labels``) updates as
you go. The queue lives on the server, per browser session; the page sends one key at a time (the next once
the last one's effect is shown) and the server runs one session's events one at a time (visitors do not wait on
each other), so keys typed faster than the page redraws are applied in the order they were typed.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from typing import Any

import gradio as gr

from ..context import page_owner
from ..errors import WorkbenchError
from ..storage.labels import NONE_STANDS_OUT, agreement, agreement_markdown, blind_order
from ..render.html import esc, thumbnails_html
from .pool import MAX_MEMBERS
from .tab import Page, Tab, session_key

QUEUE = 200  #: runs taken into one queue (the newest unlabelled)
LETTERS = "ABCDEFGH"

#: Keys -> the button they press while the Label tab is shown (and no text field has the focus).
KEYS_JS = """
() => {
  if (window.__wbLabelKeys) return;
  window.__wbLabelKeys = true;
  // Keys are queued and pressed one at a time: the next only after the page showed the last one's answer (or
  // 10 s), so two requests never race to the server and keys typed ahead are applied in the order typed.
  const queue = [];
  let busy = false;
  const watched = () => ['label-progress', 'label-answers', 'label-fused'].map(i => document.getElementById(i))
    .filter(Boolean);
  const snapshot = () => watched().map(e => e.innerHTML).join('|');  // every answer carries a new data-seq
  // Gradio can leave the last of several quick answers undrawn (the server applied every key; the page showed
  // the one before): once the keys are done and the page is quiet, redraw from the server's state once.
  let settle = null;
  function pump() {
    if (settle) { clearTimeout(settle); settle = null; }
    if (!busy && !queue.length) {
      settle = setTimeout(() => { settle = null; const r = document.getElementById('label-refresh'); if (r) r.click(); },
                          250);
      return;
    }
    if (busy) return;
    const btn = document.getElementById(queue.shift());
    if (!btn || btn.offsetParent === null || btn.disabled) { pump(); return; }
    busy = true;
    const before = snapshot();
    let done = false;
    const finish = () => { if (done) return; done = true; obs.disconnect(); busy = false; setTimeout(pump, 0); };
    const obs = new MutationObserver(() => { if (snapshot() !== before) finish(); });
    watched().forEach(el => obs.observe(el, {childList: true, subtree: true, characterData: true}));
    setTimeout(finish, 10000);
    btn.click();
  }
  document.addEventListener('keydown', (e) => {
    const panel = document.getElementById('label-panel');
    if (!panel || panel.offsetParent === null) return;
    const t = e.target;
    if (t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' || t.tagName === 'SELECT' || t.isContentEditable)) return;
    if (e.ctrlKey || e.metaKey || e.altKey || e.repeat) return;
    const k = e.key.toLowerCase();
    const named = {b: 'label-rate-better', s: 'label-rate-same', w: 'label-rate-worse', n: 'label-skip'};
    const id = named[k] || (/^[0-8]$/.test(k) ? 'label-pick-' + k : null);
    if (!id) return;
    e.preventDefault();
    queue.push(id);
    pump();
  });
}
"""


class _Sessions:
    """Each browser session's queue: run ids, position, the pick made on the current run (bounded LRU)."""

    def __init__(self, size: int = 256):
        self._d: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.size = size

    def get(self, key: str) -> dict[str, Any]:
        s = self._d.pop(key, None) or {"queue": [], "pos": 0, "pick": None, "done": 0, "lock": threading.Lock()}
        self._d[key] = s
        while len(self._d) > self.size:
            self._d.popitem(last=False)
        return s


class LabelTab(Tab):
    title = "Label"
    elem_id = "label-tab"
    load_js = KEYS_JS  #: the keyboard shortcuts

    def __init__(self, page: Page):
        super().__init__(page)
        self.sessions = _Sessions()

    def layout(self) -> None:
        with gr.Column(elem_id="label-panel"):
            gr.Markdown("**You as the judge.** Stored runs, one at a time: the member answers are shown blind, "
                        "in random order. Keys: **1–8** pick the best answer (**0**: none stands out), then the "
                        "fused answer appears: **b** better, **s** same, **w** worse than your pick; **n** skips. "
                        "The judge's agreement with you is below.")
            with gr.Row(equal_height=True):
                self.include_eval = gr.Checkbox(False, label="Include evaluation items", elem_id="label-include-eval")
                self.start_btn = gr.Button("Start / reload the queue (unlabelled runs, newest first)",
                                           elem_id="label-start", variant="primary")
            progress = gr.Markdown("", elem_id="label-progress")
            prompt_md = gr.HTML("", elem_id="label-prompt")
            answers = gr.HTML("", elem_id="label-answers")
            with gr.Row():
                self.picks = [gr.Button(f"{LETTERS[i]} · {i + 1}", elem_id=f"label-pick-{i + 1}", visible=False,
                                        min_width=70, size="sm") for i in range(MAX_MEMBERS)]
                self.none_btn = gr.Button("None stands out · 0", elem_id="label-pick-0", visible=False, size="sm")
                self.skip_btn = gr.Button("Skip · n", elem_id="label-skip", visible=False, size="sm")
            fused = gr.HTML("", elem_id="label-fused")
            with gr.Row(visible=False) as rate_row:
                self.rates = [gr.Button(f"Fused {r} · {r[0]}", elem_id=f"label-rate-{r}", size="sm")
                              for r in ("better", "same", "worse")]
            agree_md = gr.Markdown("", elem_id="label-agreement")
            # pressed by the key pump after the last key (see KEYS_JS): the page shows what the server holds
            self.refresh_btn = gr.Button("Redraw", elem_id="label-refresh", elem_classes=["wb-offscreen"])
        self.outputs = [progress, prompt_md, answers, fused, rate_row, *self.picks, self.none_btn, self.skip_btn,
                        agree_md]

    def wire(self) -> None:
        # a key pressed again before the page redrew counts again ("multiple"), it is not dropped
        each: dict[str, Any] = dict(api_visibility="private", concurrency_limit=None, show_progress="hidden",
                                    trigger_mode="multiple")
        serial, outputs = self.serial, self.outputs
        self.start_btn.click(serial(self.start), self.include_eval, outputs, **each)
        for i, b in enumerate(self.picks):
            b.click(serial(self.pick(i + 1)), None, outputs, **each)
        self.none_btn.click(serial(self.pick(0)), None, outputs, **each)
        self.skip_btn.click(serial(self.skip), None, outputs, **each)
        self.refresh_btn.click(serial(self.refresh), None, outputs, **each)
        for r, b in zip(("better", "same", "worse"), self.rates):
            b.click(serial(self.rate(r)), None, outputs, **each)

    def view(self, sess: dict[str, Any], owner: str | None, note: str = "", fresh: bool = False) -> tuple:
        sess["seq"] = sess.get("seq", 0) + 1  # every answer differs: the page's key pump waits for it
        out = self._view(sess, owner, note, fresh)
        seq = f'<span class="wb-seq" data-seq="{sess["seq"]}"></span>'
        return (out[0], out[1], (out[2] or "") + seq, *out[3:])

    def _view(self, sess: dict[str, Any], owner: str | None, note: str = "", fresh: bool = False) -> tuple:
        store = self.store
        if fresh or "agree" not in sess:  # after a label or a start only: a pick changes no figure
            sess["agree"] = agreement_markdown(agreement(store.labelled_runs(owner, include_eval=True)))
        agree = sess["agree"]
        hidden = (gr.update(visible=False),) * (len(self.picks) + 2)
        queue, pos = sess["queue"], sess["pos"]
        if pos >= len(queue):
            msg = (f"Queue done: **{sess['done']}** labelled this session. " if queue else
                   "No unlabelled runs with two or more answers here. ") + \
                "Press *Start* to load more (runs made since, or evaluation items)."
            return (note + msg, "", "", "", gr.update(visible=False), *hidden, agree)
        try:
            r = store.load(queue[pos], owner)
        except WorkbenchError as exc:  # deleted since the queue was made: skip it
            sess["pos"] += 1
            return self._view(sess, owner, f"⚠ {exc}; skipped. ")
        outs = r.outputs
        order = blind_order(r.run_id, len(outs), sess.get("salt", ""))
        sess["shown"] = [outs[j].member for j in order]  # what keys 1.. pick
        head = (f"{note}Run **{pos + 1} of {len(queue)}** · {sess['done']} labelled this session · "
                f"`{r.run_id}`")
        images = store.images(r.run_id, owner) if r.prompt.get("images") else []
        prompt = ('<div class="wb-label-prompt">' + thumbnails_html(r.prompt.get("text") or "", images, size=160)
                  .replace("This run's prompt", "Prompt") + "</div>")
        pick_vis = tuple(gr.update(visible=i < len(outs)) for i in range(len(self.picks)))
        return (head, prompt, blind_answers_html(r, order), fused_html(r, order, sess["pick"]),
                gr.update(visible=True), *pick_vis, gr.update(visible=True), gr.update(visible=True), agree)

    def start(self, with_eval, request: gr.Request | None = None):
        owner = page_owner(request, self.policy)
        sess = self.sessions.get(session_key(request))
        queue = label_queue(self.store, owner, bool(with_eval))
        sess.update(queue=queue, pos=0, pick=None, done=0, salt=session_key(request), pending_rate=None)
        return self.view(sess, owner, fresh=True)

    def on_current(self, act):
        """A key's handler: ``act(sess, owner)`` on the run shown; past the queue's end it only redraws."""
        def handler(request: gr.Request | None = None):
            owner = page_owner(request, self.policy)
            sess = self.sessions.get(session_key(request))
            if sess["pos"] >= len(sess["queue"]):
                return self.view(sess, owner)
            return act(sess, owner, request)
        return handler

    def pick(self, k: int):
        def act(sess, owner, request):
            shown = sess.get("shown", [])  # pool indices as lettered on the screen (set by the last redraw)
            if k > len(shown):
                return self.view(sess, owner, f"⚠ this run has {len(shown)} answers. ")
            sess["pick"] = NONE_STANDS_OUT if k == 0 else shown[k - 1]
            if sess.get("pending_rate"):  # the rating came first (typed ahead): the label is complete
                return self.rate(sess.pop("pending_rate"))(request)
            return self.view(sess, owner)
        return self.on_current(act)

    def rate(self, rating: str):
        def act(sess, owner, request):
            if sess["pick"] is None:  # kept: a pick that arrives next completes the label
                sess["pending_rate"] = rating
                return self.view(sess, owner, f"Rating *{rating}* noted: now pick the best answer (1–8, or 0). ")
            try:
                self.store.set_label(sess["queue"][sess["pos"]], sess["pick"], rating, blind=True, owner=owner)
            except WorkbenchError as exc:
                return self.view(sess, owner, f"⚠ {exc}. ")
            sess.update(pos=sess["pos"] + 1, pick=None, done=sess["done"] + 1, pending_rate=None)
            return self.view(sess, owner, fresh=True)
        return self.on_current(act)

    def refresh(self, request: gr.Request | None = None):
        return self.view(self.sessions.get(session_key(request)), page_owner(request, self.policy))

    def skip(self, request: gr.Request | None = None):
        sess = self.sessions.get(session_key(request))
        if sess["pos"] < len(sess["queue"]):
            sess.update(pos=sess["pos"] + 1, pick=None, pending_rate=None)
        return self.view(sess, page_owner(request, self.policy))

    def serial(self, fn):
        """One browser session's events one at a time (its own lock): visitors never wait on each other, and a
        session's keys, which its page sends one after another, are applied in that order."""
        @functools.wraps(fn)  # Gradio reads fn's signature (it passes the request by position)
        def locked(*args, **kw):
            request = kw.get("request") or next((a for a in args if isinstance(a, gr.Request)), None)
            with self.sessions.get(session_key(request))["lock"]:
                return fn(*args, **kw)
        return locked


def label_queue(store, owner: str | None, with_eval: bool) -> list[str]:
    """The run ids to label: the newest unlabelled finished runs with two or more answers and a fused one."""
    queue = []
    for row in store.list(QUEUE, owner=owner, labelled=False, include_eval=with_eval):
        if row["status"] != "done":
            continue
        try:
            r = store.load(row["run_id"], owner)
        except WorkbenchError:
            continue
        if sum(o.ok for o in r.outputs) >= 2 and r.final_answer:
            queue.append(r.run_id)
    return queue


def blind_answers_html(r, order: list[int]) -> str:
    """A run's member answers without names, lettered in the blind ``order``."""
    blocks = []
    for i, j in enumerate(order):
        o = r.outputs[j]
        body = esc(o.text) if o.ok else f"<em>(no answer: {esc(o.kind or 'failed')})</em> {esc(o.text)}"
        blocks.append(f'<div class="wb-blind" data-key="{i + 1}"><strong>Answer {LETTERS[i]}</strong> '
                      f'<small>(key {i + 1})</small><pre class="wb-pre">{body}</pre></div>')
    return '<div class="wb-blind-grid">' + "".join(blocks) + "</div>"


def fused_html(r, order: list[int], picked: int | None) -> str:
    """The fused answer, revealed once the researcher picked (naming their pick by its letter)."""
    if picked is None:
        return "<p><em>Pick the best answer first; the fused answer shows then.</em></p>"
    which = "none stands out" if picked == NONE_STANDS_OUT else \
        f"Answer {LETTERS[order.index(next(k for k, o in enumerate(r.outputs) if o.member == picked))]}"
    return (f'<div class="wb-blind wb-fused"><strong>The fused answer</strong> <small>(your pick: '
            f'{esc(which)}; is this better, the same or worse? b / s / w)</small>'
            f'<pre class="wb-pre">{esc(r.final_answer)}</pre></div>')
