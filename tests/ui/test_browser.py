"""A real browser: Debian's chromium driven by Playwright against the app on 127.0.0.1."""

import os
from pathlib import Path

import pytest
from pagekit import add_endpoint, open_settings, pool_of, submit, text_of, wait_text

from workbench.testing import free_port

pytestmark = pytest.mark.browser


@pytest.fixture
def page(browser, app):
    _, url = app
    ctx = browser.new_context(viewport={"width": 1400, "height": 1600})
    pg = ctx.new_page()
    pg.set_default_timeout(60_000)
    pg.goto(url)
    pg.wait_for_selector("#prompt-box textarea")
    yield pg
    ctx.close()


def test_fuse_image_prompt_fills_columns_transcript_and_judge(page, red_png, tmp_path):
    assert "random weights" in text_of(page, "#noise-notice")
    submit(page, "What colour is this?", [red_png])
    for i in range(3):
        wait_text(page, f"#member-stats-{i}", "TTFT")
        assert text_of(page, f"#member-body-{i}").strip()
    assert page.is_visible("#input-images")
    wait_text(page, "#verdict", "Final answer")
    page.click("#transcript-acc > button")
    wait_text(page, "#transcript", "Round 1")
    assert "tiny-offline:skeptic" in text_of(page, "#transcript")
    assert "Mode best-of" in text_of(page, "#verdict")
    page.screenshot(path=str(tmp_path / "fuse.png"), full_page=True)
    assert (tmp_path / "fuse.png").stat().st_size > 10_000


def test_stop_cancels_a_run_and_the_app_keeps_working(page, server):
    add_endpoint(page, "slowpoke", server.base_url, "reply=too late;delay=60")
    pool_of(page, "slowpoke")
    submit(page, "Take your time")
    wait_text(page, "#member-stats-0", "waiting")
    # a run in progress says what it does and for how long, every second
    wait_text(page, "#status", "0 of 1 member(s) done · ")  # after the judge's load, however long it took
    first = text_of(page, "#status")
    page.wait_for_function("([sel, was]) => document.querySelector(sel).innerText !== was",
                           arg=["#status", first], timeout=10_000)  # the seconds move
    page.click("#stop-btn")
    wait_text(page, "#status", "Run stopped")
    # the next run works (a fast endpoint this time)
    add_endpoint(page, "quick", server.base_url, "reply=Final answer: 5;b=1")
    pool_of(page, "quick")
    page.get_by_label("vote").check()
    submit(page, "2+3?")
    wait_text(page, "#verdict", "Final answer")
    assert "5" in text_of(page, "#verdict")


def test_bad_inputs_show_messages_and_app_keeps_working(page, corrupt_png, server):
    submit(page, "   ")
    wait_text(page, "#status", "the prompt is empty")
    submit(page, "What is this?", [corrupt_png])
    wait_text(page, "#status", "not a readable image")
    assert page.input_value("#prompt-box textarea") == "What is this?"  # the user's text is kept
    dead = free_port()  # nothing listens there
    add_endpoint(page, "deadend", f"http://127.0.0.1:{dead}/v1", "m")
    pool_of(page, "deadend")
    page.get_by_label("vote").check()
    submit(page, "hello")
    wait_text(page, "#member-stats-0", "failed (connection)", timeout=120_000)
    add_endpoint(page, "keyless", server.base_url, "reply=x", key_var="WB_TEST_MISSING_KEY_VAR")
    pool_of(page, "keyless")
    submit(page, "hello")  # refused at once, saying why (nothing is called)
    wait_text(page, "#status", "keyless cannot run here: its API key variable WB_TEST_MISSING_KEY_VAR is not set")
    assert "Traceback" not in page.content()


def test_pool_survives_a_page_reload(page):
    open_settings(page)
    page.get_by_label("Persona").fill("creative")
    page.click("#add-member")
    page.wait_for_function("document.querySelector('#pool-table').innerText.includes('creative')")
    page.wait_for_timeout(1000)  # BrowserState writes to localStorage
    page.reload()
    page.wait_for_selector("#prompt-box textarea")
    open_settings(page)
    page.wait_for_function("document.querySelector('#pool-table').innerText.includes('creative')")


def test_load_a_past_run_from_history(page, app):
    demo, _ = app
    submit(page, "Remember me")
    wait_text(page, "#verdict", "Final answer")
    run_id = demo.store.list(1)[0]["run_id"]
    page.get_by_role("tab", name="History").click()
    page.get_by_role("button", name="Refresh").click()
    wait_text(page, "#runs-table", run_id)
    page.get_by_label("Run", exact=True).fill(run_id)
    page.keyboard.press("Enter")
    page.click("#open-run")
    wait_text(page, "#history-view", f"Fusion run {run_id}")
    assert "Remember me" in text_of(page, "#history-view")


def test_evaluate_tab_runs_a_builtin_dataset(page, tmp_path):
    page.get_by_role("tab", name="Evaluate").click()
    # an instrument adds the modes it needs, and says so
    page.get_by_text("Research instruments").click()
    page.locator("#eval-instruments").get_by_label("debate_vs_vote").check()
    wait_text(page, "#eval-instruments-needs", "added the debate mode: debate vs vote needs it")
    assert page.locator("#eval-modes").get_by_label("debate").is_checked()
    page.click("#eval-run")
    wait_text(page, "#eval-status", "Finished: 4 items in", timeout=180_000)
    assert "best single member" in text_of(page, "#eval-status")
    table = text_of(page, "#eval-table")
    assert "oracle" in table and "fusion:vote" in table and "member:tiny-offline" in table
    assert "fusion:debate" in table
    page.click("#eval-instruments-run")
    wait_text(page, "#eval-instruments-status", "debate_vs_vote")
    assert "⚠" not in text_of(page, "#eval-instruments-status")
    # the plots are readable at the tab's width: every label inside its plot, none over another
    page.wait_for_selector("#eval-status ~ * .js-plotly-plot, .js-plotly-plot", timeout=60_000)
    boxes = page.evaluate("""() => [...document.querySelectorAll('.js-plotly-plot')].map(p => {
        const r = p.getBoundingClientRect();
        const texts = [...p.querySelectorAll('.legendtext, .xtick text, .ytick text, .gtitle')]
            .map(t => t.getBoundingClientRect()).filter(b => b.width > 0);
        return {plot: [r.left, r.right], texts: texts.map(b => [b.left, b.right, b.top, b.bottom])};
    })""")
    assert boxes
    for b in boxes:
        assert all(b["plot"][0] - 1 <= t[0] and t[1] <= b["plot"][1] + 1 for t in b["texts"]), b
    page.locator("#eval-status").scroll_into_view_if_needed()
    shots = Path(os.environ.get("WORKBENCH_SHOTS") or tmp_path)  # a folder to keep them in, to look at
    page.screenshot(path=str(shots / "evaluate.png"), full_page=True)
