"""The tabs without a browser: one shape for all of them, and their handler logic called directly."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

import workbench as wb
from workbench.context import RunContext
from workbench.errors import WorkbenchError
from workbench.policy import Policy
from workbench.storage import RunStore
from workbench.ui.evaluate_tab import instrument_calls
from workbench.ui.fuse_tab import plan_run, prompt_parts, with_endpoint
from workbench.ui.gradio_app import build_demo
from workbench.ui.history_tab import query
from workbench.ui.label_tab import blind_answers_html, fused_html, label_queue
from workbench.ui.tab import Tab


def me(session: str = "s1", host: str = "127.0.0.1"):
    return SimpleNamespace(session_hash=session, client=SimpleNamespace(host=host), headers={})


def test_every_tab_has_one_shape_and_fills_what_it_names_on_load(tmp_path):
    demo = build_demo("tiny-offline", store=RunStore(tmp_path / "r.sqlite"), preload=False)
    assert [type(t).__name__ for t in demo.tabs] == ["FuseTab", "EvaluateTab", "HistoryTab", "LabelTab"]
    for tab in demo.tabs:
        assert isinstance(tab, Tab) and tab.title
        assert len(tab.on_load({}, me())) == len(tab.loads), type(tab).__name__
    # the page's one load handler fills every tab's components, in the tabs' order
    restore = next(f for f in demo.fns.values() if f.fn is not None and f.fn.__qualname__ == "build_demo.<locals>.restore")
    assert [c._id for c in restore.outputs] == [c._id for t in demo.tabs for c in t.loads]
    # each handler is a method of its tab, named by its class (tests and readers find it there)
    names = {f.fn.__qualname__ for f in demo.fns.values() if f.fn is not None}
    assert {"FuseTab.run", "FuseTab.add_endpoint", "EvaluateTab.run", "HistoryTab.rejudge_run",
            "LabelTab.start"} <= names


def test_the_fuse_tab_reads_and_checks_what_the_page_sends():
    assert prompt_parts({"text": "hi", "files": ["/a.png", {"path": "/b.png"}]}) == ("hi", ["/a.png", "/b.png"])
    assert prompt_parts("plain") == ("plain", []) and prompt_parts(None) == ("", [])
    policy = Policy(public=False)
    members, judge, settings, _ = plan_run([["tiny-offline", "", "", ""]] * 2, "tiny-offline", "vote", 2, 32, 0.5, 1,
                                           None, {}, policy)
    assert len(members) == 2 and judge is None and settings.max_new_tokens == 32 and settings.blind_members == "skip"
    with pytest.raises(WorkbenchError, match="the pool is empty"):
        plan_run([["", "", "", ""]], "tiny-offline", "best-of", 1, 32, 0.5, 1, "skip", {}, policy)
    with pytest.raises(WorkbenchError, match="no-such-model"):
        plan_run([["no-such-model", "", "", ""]], None, "vote", 1, 32, 0.5, 1, "skip", {}, policy)



def test_a_run_with_a_model_that_cannot_run_here_is_refused_at_once_saying_why(monkeypatch):
    import workbench.availability as av

    monkeypatch.setattr(av, "cuda_available", lambda: False)
    av.clear_cache()
    policy = Policy(public=False)
    with pytest.raises(WorkbenchError, match="scout-int4 cannot run here: .* needs a CUDA GPU"):
        plan_run([["tiny-offline", "", "", ""], ["scout-int4", "", "", ""]], None, "vote", 1, 32, 0.5, 1, "skip",
                 {}, policy)
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    with pytest.raises(WorkbenchError, match="openrouter-scout cannot run here: .*OPENROUTER_API_KEY is not set"):
        plan_run([["tiny-offline", "", "", ""]], "openrouter-scout", "best-of", 1, 32, 0.5, 1, "skip", {}, policy)


def test_adding_an_endpoint_replaces_one_of_the_same_name_and_refuses_what_the_host_refuses():
    local = Policy(public=False)
    state, msg = with_endpoint(" mine ", "http://localhost:8000/v1", "m", "", True, {"pool": [["x"]]}, local)
    assert state == {"pool": [["x"]], "endpoints": [{"name": "mine", "base_url": "http://localhost:8000/v1",
                                                     "model": "m", "api_key_env": "", "vision": True}]}
    assert msg == "Added endpoint **mine**."
    again, _ = with_endpoint("mine", "http://localhost:9000/v1", "m2", "", False, state, local)
    assert again is not None and [e["base_url"] for e in again["endpoints"]] == ["http://localhost:9000/v1"]
    none, why = with_endpoint("", "http://localhost:8000/v1", "m", "", True, state, local)
    assert none is None and why.startswith("⚠")
    public = Policy.for_host(public=True)  # visitors may not name endpoints unless the host allows it
    refused, why = with_endpoint("e", "http://localhost:8000/v1", "m", "", True, {}, public)
    assert refused is None and "⚠" in why


def test_instrument_call_bounds_grow_with_items_and_pool():
    assert instrument_calls("member_attribution", 10, 3) is None  # reads cached answers only
    assert instrument_calls("judge_bias_sweep", 10, 3) == 60 and instrument_calls("grounding", 10, 3) == 10
    assert instrument_calls("cost_matched_ablation", 10, 3) == 120 and instrument_calls("image_ablation", 10, 3) == 60


async def test_history_query_and_the_label_queue_on_a_real_store(tmp_path, remote):
    from workbench.specs import Member

    store = RunStore(tmp_path / "runs.sqlite")
    pool = [Member(remote("reply=Paris;tabs=1", name="alpha")), Member(remote("reply=Lyon;tabs=1", name="beta"))]
    runs = [await wb.fuse(f"q{k}", pool, mode="vote", context=RunContext(store=store, origin="page")) for k in range(3)]
    await wb.fuse("e0", pool, mode="vote", context=RunContext(store=store, origin="eval:builtin:arithmetic"))
    store.set_label(runs[0].run_id, 0, "same")
    rows, note = query(store, None)
    assert [r["run_id"] for r in rows] == [r.run_id for r in runs[::-1]]
    assert note.startswith("**3** run(s) match") and "1 evaluation item(s) hidden" in note
    assert [r["run_id"] for r in query(store, None, labelled="labelled")[0]] == [runs[0].run_id]
    assert len(query(store, None, search_text="q1")[0]) == 1
    assert label_queue(store, None, with_eval=False) == [runs[2].run_id, runs[1].run_id]
    assert len(label_queue(store, None, with_eval=True)) == 3
    r = runs[1]
    html = blind_answers_html(r, [1, 0])
    assert html.index("Lyon") < html.index("Paris") and "alpha" not in html and "beta" not in html
    assert "Pick the best answer first" in fused_html(r, [1, 0], None)
    assert "your pick: Answer A" in fused_html(r, [1, 0], 1)  # beta, shown first


def test_a_tab_handler_runs_without_a_browser(tmp_path):
    """The History tab's save and export, called as the page would call them."""
    store = RunStore(tmp_path / "r.sqlite")
    demo = build_demo("tiny-offline", store=store, preload=False,
                      policy=Policy(public=False))
    history = next(t for t in demo.tabs if t.title == "History")
    status, *_ = history.save_label("", None, None, request=me())
    assert status.startswith("⚠ pick the best member answer")
    status, *_ = history.save_label("no-such-run", 0, "same", request=me())
    assert status.startswith("⚠") and "no-such-run" in status
    path, msg = history.export_json("no-such-run", request=me())
    assert path is None and msg.startswith("⚠")


async def test_an_evaluation_over_the_hosts_item_limit_is_refused_before_it_runs(tmp_path):
    """A public page (or its /evaluate API) takes at most ``Limits.max_eval_items`` items; the field says so."""
    import dataclasses

    from workbench.policy import PUBLIC_LIMITS

    store = RunStore(tmp_path / "r.sqlite")
    policy = Policy(public=True, limits=dataclasses.replace(PUBLIC_LIMITS, max_eval_items=5))
    demo = build_demo("tiny-offline", store=store, preload=False, policy=policy)
    ev = next(t for t in demo.tabs if t.title == "Evaluate")
    items = ev.run_inputs[1]
    assert items.maximum == 5 and "at most 5" in items.info
    rows = [["tiny-offline", ""]]
    for n in (6, 0):
        outs = [o async for o in ev.run("builtin:arithmetic:easy", n, ["vote"], False, False, 16, rows, None, {},
                                        request=me())]
        assert len(outs) == 1  # refused before any progress
        status, *rest = outs[-1]
        assert status.startswith("⚠") and "1 to 5" in status, status
        assert rest == [None] * 6
    assert store.count() == 0  # nothing ran, nothing was stored
