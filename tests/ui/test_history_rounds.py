"""History shows every round (issue 27): the timeline's title per round, the members table per round, the run's
images as thumbnails from the store, and a table whose prompt and run-id columns stay in view."""

import io
from types import SimpleNamespace

import pytest
from PIL import Image

from workbench.records import FusionResult, MemberOutput, Verdict
from workbench.render import to_markdown
from workbench.render.html import run_images_html, thumbnails_html
from workbench.render.markdown import members_markdown
from workbench.render.plots import run_timeline
from workbench.types import ImageData, Prompt


def png(color=(220, 30, 30), size=(200, 120)) -> ImageData:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return ImageData.load(buf.getvalue())


def out(member, label, rnd, start, end, ttft=0.4, ok=True):
    return MemberOutput(member, label, rnd, ok, f"{label} says {rnd}", kind="" if ok else "timeout",
                        ttft_s=ttft, latency_s=end - start, start_s=start, end_s=end, prompt_tokens=20,
                        completion_tokens=30, finish_reason="stop")


def debate(run_id="20261201-120000-debate01", images=(), rounds=2) -> FusionResult:
    """A 2-round debate timed like the one in issue 27: round 1 5.20 s, round 2 18.10 s, judge 2.60 s."""
    r = FusionResult(run_id, "debate", Prompt("What colour is this?", images=list(images)).to_dict(),
                     [{"label": "alpha", "model": {}}, {"label": "beta", "model": {}}],
                     {"label": "judge-x", "model": {}}, {})
    r.rounds = [[out(0, "alpha", 1, 0.09, 5.29), out(1, "beta", 1, 0.10, 4.00)],
                [out(0, "alpha", 2, 5.30, 23.40), out(1, "beta", 2, 5.31, 20.00)]][:rounds]
    r.verdict = Verdict("debate", winner=0, scores={0: 8, 1: 5}, rationale="alpha", label_map={"A": 0, "B": 1})
    r.final_answer = "red"
    r.pool_wall_s, r.judge_wall_s, r.total_s = 23.40, 2.60, 25.99
    return r


def test_a_debates_timeline_title_gives_each_rounds_time_the_judges_and_the_total():
    fig = run_timeline(debate())
    title = fig.layout.title.text
    assert "round 1 5.20 s · round 2 18.10 s · judge 2.60 s · total 25.99 s" in title
    assert "pool phase (round 1) 5.20 s = 1.000x the slowest member" in title  # round 1 means what it did
    bars = [t for t in fig.data if t.type == "bar"]
    assert [b.y[0] for b in bars] == ["alpha · round 1", "beta · round 1", "alpha · round 2", "beta · round 2",
                                      "judge"]
    assert bars[0].marker.color == bars[1].marker.color != bars[2].marker.color == bars[3].marker.color
    assert [a.text for a in fig.layout.annotations] == ["round 1", "round 2"]  # each round's band, labelled


def test_a_single_round_timeline_keeps_its_title_and_bars():
    fig = run_timeline(debate(rounds=1))
    assert fig.layout.title.text == "Run timeline: pool phase 5.20 s = 1.000x the slowest member"
    assert [t.y[0] for t in fig.data if t.type == "bar"] == ["alpha", "beta", "judge"]
    assert not any(t.showlegend for t in fig.data) and not fig.layout.annotations


def test_the_members_table_has_a_row_per_member_per_round():
    table = members_markdown(debate()).splitlines()
    assert table[0] == "| round | # | member | ok | TTFT | latency | done at | tokens in/out | cost | finish |"
    assert len(table) == 2 + 4
    assert table[4] == "| 2 | 0 | alpha | yes | 0.40s | 18.10s | 23.40s | 20/30 | - | stop |"


def test_the_export_and_historys_view_list_every_round_once():
    r = debate(rounds=1)
    assert "\n## Members\n\n" + members_markdown(r) + "\n" in to_markdown(r)
    assert "| round |" not in to_markdown(r)  # one round: the table as before
    md = to_markdown(debate())
    assert md.count("## Members") == 1 and md.count("| round | # | member") == 1
    assert "| 1 | 1 | beta | yes |" in md and "| 2 | 1 | beta | yes |" in md
    assert "## Round 1" in md and "## Round 2" in md and "## Verdict" in md


def test_thumbnails_are_inline_images_and_the_fuse_strip_is_unchanged():
    img = png()
    html = run_images_html([img])
    assert html.count("<img") == 1 and 'src="data:image/png;base64,' in html and "200×120" in html
    assert "Prompt image<" in html and run_images_html([]) == ""
    strip = thumbnails_html("q <b>", [img])
    assert strip.startswith('<div class="wb-strip"><span class="wb-strip-label">This run\'s prompt</span>'
                            '<div class="wb-thumbs"><figure class="wb-thumb"><img src="data:image/png;base64,')
    assert strip.endswith('<div class="wb-prompt-echo">q &lt;b&gt;</div></div>')


def visitor(name):
    return SimpleNamespace(session_hash=name, client=SimpleNamespace(host="203.0.113.9"))


def test_a_visitor_opens_their_runs_images_and_no_one_elses(tmp_path):
    """Public mode: the run view's thumbnails come from the store's bytes of the visitor's own run."""
    from workbench.policy import Policy
    from workbench.storage import RunStore
    from workbench.ui.gradio_app import build_demo

    store = RunStore(tmp_path / "runs.sqlite")
    img = png()
    mine = debate("20261201-120000-mine0001", images=[img])
    store.save(mine, images=[img], owner="sess-a")
    store.save(debate("20261201-120000-theirs01", images=[img]), images=[img], owner="sess-b")
    demo = build_demo("tiny-offline", store=store, preload=False, policy=Policy.for_host(public=True))
    history = next(t for t in demo.tabs if t.title == "History")
    status, images, view, plot, *_ = history.open_run(mine.run_id, request=visitor("sess-a"))
    assert images.count("<img") == 1 and "data:image/png;base64," in images
    assert "| 2 | 0 | alpha |" in view and "round 2 18.10 s" in plot.layout.title.text
    status, images, view, plot, *_ = history.open_run("20261201-120000-theirs01", request=visitor("sess-a"))
    assert status.startswith("⚠ no run") and images == "" and view == "" and plot is None


@pytest.mark.browser
def test_history_at_1400px_shows_prompt_and_run_id_and_a_debates_rounds(browser, app, tmp_path):
    demo, url = app
    img = png()
    r = debate(images=[img])
    demo.store.save(r, images=[img])
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    page = ctx.new_page()
    page.set_default_timeout(60_000)
    page.goto(url)
    page.get_by_role("tab", name="History").click()
    page.click("#hist-refresh")
    page.wait_for_function("id => document.querySelector('#runs-table').innerText.includes(id)", arg=r.run_id)
    heads = page.evaluate("() => [...document.querySelectorAll('#runs-table th')].map(t => "
                          "[t.innerText.trim(), t.getBoundingClientRect().left, t.getBoundingClientRect().right])")
    assert [h[0] for h in heads[:2]] == ["prompt", "run"], heads
    assert all(0 <= left and right <= 1400 for _, left, right in heads), heads  # every column fits, none scrolled
    cell = page.locator("#runs-table [role=gridcell]", has_text=r.run_id).first.bounding_box()
    assert cell and cell["x"] + cell["width"] <= 1400
    page.locator("#runs-table [role=gridcell]", has_text="What colour is this?").first.click()
    page.wait_for_function("() => document.querySelector('#history-view').innerText.includes('round 2')")
    assert page.locator("#history-images img").count() == 1
    page.wait_for_selector(".js-plotly-plot .gtitle")
    assert "round 2 18.10 s" in (page.text_content(".js-plotly-plot .gtitle") or "")
    page.screenshot(path=str(tmp_path / "history.png"), full_page=True)
    ctx.close()
