"""A real browser: Debian's chromium driven by Playwright against the app on 127.0.0.1."""

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
    submit(page, "hello")
    wait_text(page, "#member-stats-0", "WB_TEST_MISSING_KEY_VAR")
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


def test_evaluate_tab_runs_a_builtin_dataset(page):
    page.get_by_role("tab", name="Evaluate").click()
    page.click("#eval-run")
    wait_text(page, "#eval-status", "best single member", timeout=180_000)
    table = text_of(page, "#eval-table")
    assert "oracle" in table and "fusion:vote" in table and "member:tiny-offline" in table
