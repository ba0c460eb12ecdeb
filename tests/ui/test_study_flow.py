"""The study flow in a real browser (Debian's chromium): the page fixes of issue 14, History at scale, and the
researcher labelling a queue of stored runs by keyboard. Screenshots are checked by size and visible text."""

import asyncio
import time

import pytest
from PIL import Image, ImageDraw
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from pagekit import add_endpoint, open_settings, pool_of, submit, text_of, wait_text

import workbench as wb
from workbench.specs import Member
from workbench.testing import free_port


pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def study(tmp_path_factory, remote):
    """An app of its own (its own run store), so counts and labels are this module's only."""
    from workbench.ui.gradio_app import CSS, build_demo

    store = wb.RunStore(tmp_path_factory.mktemp("study") / "runs.sqlite")
    demo = build_demo("tiny-offline", store=store, preload=False)
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, css=CSS,
                            quiet=True)
    yield demo, url, store
    demo.close()


@pytest.fixture
def spage(browser, study):
    _, url, _ = study
    ctx = browser.new_context(viewport={"width": 1400, "height": 1400})
    pg = ctx.new_page()
    pg.set_default_timeout(60_000)
    pg.goto(url, wait_until="load")
    pg.wait_for_selector("#prompt-box textarea")
    yield pg
    ctx.close()


@pytest.fixture(scope="module")
def circle_png(tmp_path_factory):
    """224 x 224, white with a red disc: the image whose strip used to show only its white top edge."""
    path = tmp_path_factory.mktemp("img") / "circle.png"
    img = Image.new("RGB", (224, 224), "white")
    ImageDraw.Draw(img).ellipse((60, 60, 160, 160), fill=(220, 30, 30))
    img.save(path)
    return path


def in_thread(make_coro):
    """Run a coroutine to the end on a thread of its own (Playwright's sync API holds this thread's loop)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as ex:
        return ex.submit(lambda: asyncio.run(make_coro())).result()


def wait_count(page, n: int) -> None:
    """History's count line says exactly n runs match (not 12 when n is 2)."""
    page.wait_for_function("n => document.querySelector('#hist-count').innerText.trim().startsWith(n + ' run(s) match')",
                           arg=n, timeout=90_000)


def stop_enabled(page) -> bool:
    page.wait_for_selector("#stop-btn", state="attached")  # a loaded machine may draw the page in pieces
    return page.evaluate("() => !document.querySelector('#stop-btn').disabled")


def test_input_strip_thumbnails_prompt_cleared_and_reused(spage, circle_png, tmp_path, server):
    page = spage
    add_endpoint(page, "echo", server.base_url, "reply=a red circle;st=1")
    pool_of(page, "echo")
    page.get_by_label("vote").check()
    submit(page, "What shape is this?", [circle_png])
    wait_text(page, "#verdict", "Final answer")
    wait_text(page, "#input-images", "What shape is this?")
    img = page.locator("#input-images img").first
    box = img.bounding_box()
    natural = page.evaluate("() => { const i = document.querySelector('#input-images img');"
                            " return [i.naturalWidth, i.naturalHeight]; }")
    assert natural == [96, 96]  # scaled down on the server: the whole image, not its top edge
    assert 40 <= box["width"] <= 100 and 40 <= box["height"] <= 100
    assert "224×224" in text_of(page, "#input-images")
    page.locator("#input-images").screenshot(path=str(tmp_path / "strip.png"))
    assert Image.open(tmp_path / "strip.png").height < 200
    # the box was cleared when the run started (the strip shows what was sent)...
    assert page.input_value("#prompt-box textarea") == ""
    assert page.locator("#prompt-box .thumbnail-item, #prompt-box img").count() == 0
    # ...and "Reuse this prompt" puts text and image back
    page.click("#reuse-prompt")
    page.wait_for_function("() => document.querySelector('#prompt-box textarea').value === 'What shape is this?'")
    page.wait_for_function("() => document.querySelectorAll('#prompt-box img').length >= 1")
    # with "keep" ticked the next prompt stays in the box after its run
    page.get_by_label("Keep prompt and images after a run").check()
    page.fill("#prompt-box textarea", "Kept?")
    page.click("#prompt-box button.submit-button")
    wait_text(page, "#input-images", "Kept?")
    wait_text(page, "#verdict", "Final answer")
    assert page.input_value("#prompt-box textarea") == "Kept?"
    page.get_by_role("tab", name="History").click()  # finished runs show there without a refresh
    wait_text(page, "#runs-table", "Kept?")
    page.get_by_role("tab", name="Fuse").click()


def test_stop_is_enabled_only_while_a_run_runs(spage, server):
    page = spage
    assert not stop_enabled(page)  # nothing runs yet
    add_endpoint(page, "slow3", server.base_url, "reply=done;delay=60;st=2")
    pool_of(page, "slow3")
    page.get_by_label("vote").check()
    submit(page, "wait")
    wait_text(page, "#member-stats-0", "waiting")
    page.wait_for_function("() => !document.querySelector('#stop-btn').disabled")
    page.screenshot(path="/tmp/wb-stop-running.png")
    page.click("#stop-btn")
    wait_text(page, "#status", "Run stopped")
    page.wait_for_function("() => document.querySelector('#stop-btn').disabled")
    add_endpoint(page, "fast3", server.base_url, "reply=ok;st=3")
    pool_of(page, "fast3")
    submit(page, "quick")
    wait_text(page, "#verdict", "Final answer")
    page.wait_for_function("() => document.querySelector('#stop-btn').disabled")  # finished: disabled again


def test_member_temperature_blank_by_default_and_checked(spage):
    page = spage
    open_settings(page)
    assert page.input_value("#add-temp textarea, #add-temp input") == ""
    page.get_by_role("button", name="Clear pool").click()
    page.wait_for_timeout(300)
    page.click("#add-member")
    page.wait_for_function("document.querySelector('#pool-table').innerText.includes('tiny-offline')")
    rows = page.evaluate("() => [...document.querySelectorAll('#pool-table tr')]"
                         ".map(tr => [...tr.querySelectorAll('td')].map(td => td.textContent.trim()))")
    cells = next(r for r in rows if "tiny-offline" in r)
    assert cells[2] == "", cells  # blank: the member runs at the run's temperature (it used to be 0)
    page.fill("#add-temp textarea, #add-temp input", "hot")
    page.click("#add-member")
    wait_text(page, "#status", "not a number")


def test_batched_members_show_their_own_finish_time_and_rounds_are_timed_alike(spage, server):
    page = spage
    open_settings(page)
    page.get_by_role("button", name="Clear pool").click()
    page.wait_for_timeout(300)
    for persona in ("", "skeptic", "analyst"):
        page.get_by_label("Persona").fill(persona)
        page.click("#add-member")
        page.wait_for_timeout(300)
    page.get_by_label("vote").check()
    page.get_by_label("number input for Max new tokens").fill("16")
    page.keyboard.press("Enter")
    submit(page, "Say something")
    for i in range(3):
        wait_text(page, f"#member-stats-{i}", "done at", timeout=180_000)
    wait_text(page, "#status", "slowest member", timeout=180_000)
    wait_text(page, "#member-stats-0", "batched with 2 other")
    # a debate: every round timed the same way in the status line
    add_endpoint(page, "deb", server.base_url, "reply=Final answer: 4;st=4")
    pool_of(page, "deb")
    page.get_by_role("radio", name="debate").check()
    page.get_by_label("Judge", exact=True).fill("deb")
    page.keyboard.press("Enter")
    submit(page, "2+2?")
    wait_text(page, "#status", "round 2:")
    status = text_of(page, "#status")
    assert "round 1:" in status and "round 2:" in status and status.count("slowest member") == 2


def _seed_runs(store, remote, n_each=2):
    """Runs of every origin in the store (scripted members, no browser)."""
    pool = [Member(remote("reply=Paris;h=1", name="alpha")), Member(remote("reply=Lyon;h=1", name="beta"))]
    judge = Member(remote("judge_pick=Lyon;h=1", name="J"))

    async def go():
        made = {}
        for origin in ["page", "api", "cli", "eval:builtin:arithmetic"]:
            for k in range(n_each):
                made.setdefault(origin, []).append(
                    await wb.fuse(f"{origin} question {k} about France", pool, judge,
                                  context=wb.RunContext(store=store, origin=origin)))
        return made

    return in_thread(go)


def test_history_filters_search_row_click_and_compare(spage, study, remote, tmp_path):
    page = spage
    _, _, store = study
    made = _seed_runs(store, remote)
    page.get_by_role("tab", name="History").click()
    page.click("#hist-refresh")
    wait_text(page, "#hist-count", "evaluation item(s) hidden")
    table = text_of(page, "#runs-table")
    assert "eval:builtin:arithmetic" not in table and "api question 0" in table
    assert "alpha, beta" in table and "beta" in table  # pool and verdict columns
    # origin filter
    page.get_by_label("Origin").click()
    page.get_by_role("option", name="api", exact=True).click()
    wait_count(page, 2)
    assert "page question" not in text_of(page, "#runs-table")
    page.get_by_label("Origin").click()
    page.get_by_role("option", name="any", exact=True).click()
    # search (every word)
    wait_text(page, "#runs-table", "page question")
    page.fill("#hist-search textarea, #hist-search input", "CLI question")
    page.keyboard.press("Enter")
    page.wait_for_function("() => !document.querySelector('#runs-table').innerText.includes('page question')")
    wait_count(page, 2)
    assert "api question" not in text_of(page, "#runs-table") and "cli question 1" in text_of(page, "#runs-table")
    page.fill("#hist-search textarea, #hist-search input", "")
    page.keyboard.press("Enter")
    # evaluation items on request
    page.get_by_label("Show evaluation items").check()
    wait_text(page, "#runs-table", "eval:builtin:arithmetic")
    page.screenshot(path=str(tmp_path / "history.png"), full_page=True)
    assert (tmp_path / "history.png").stat().st_size > 20_000
    # a row click opens its run
    target = made["cli"][0].run_id
    for attempt in range(3):  # on a loaded machine the table can still be redrawing when clicked: click again
        page.locator("#runs-table [role=gridcell]", has_text="cli question 0 about").first.click()
        try:
            wait_text(page, "#history-view", f"Fusion run {target}", timeout=30_000)
            break
        except PlaywrightTimeout:
            if attempt == 2:
                raise
    # compare with another run, side by side
    other = made["api"][0].run_id
    page.get_by_label("Compare with (same prompt, or any run id)").fill(other)
    page.keyboard.press("Enter")
    page.click("#compare-runs")
    wait_text(page, "#compare-view", "Different prompts")
    assert page.locator("#compare-view .wb-compare-col").count() == 2
    assert target in text_of(page, "#compare-view") and other in text_of(page, "#compare-view")
    # a label from the opened run shows in the table
    page.locator("#hist-label-best label", has_text="beta").click()
    page.locator("#hist-label-fused label", has_text="same").click()
    page.click("#hist-label-save")
    wait_text(page, "#history-status", "Saved your label")
    assert store.label(target)["best_member"] == 1
    wait_text(page, "#hist-agreement", "1 of 1")


def test_label_a_queue_of_runs_by_keyboard(browser, tmp_path_factory, remote, capsys):
    """20 stored runs labelled with the keyboard only; the agreement figure is the judge's vs these labels."""
    from workbench.ui.gradio_app import CSS, build_demo

    store = wb.RunStore(tmp_path_factory.mktemp("labels") / "runs.sqlite")
    pool = [Member(remote("reply=Paris is the answer;q=1", name="alpha")),
            Member(remote("reply=Lyon is the answer;q=1", name="beta")),
            Member(remote("reply=Nice is the answer;q=1", name="gamma"))]
    judge = Member(remote("judge_pick=Lyon;q=1", name="J"))

    async def go():
        return [await wb.fuse(f"Question {k}?", pool, judge,
                              context=wb.RunContext(store=store, origin="page")) for k in range(20)]

    runs = in_thread(go)
    demo = build_demo("tiny-offline", store=store, preload=False)
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, css=CSS,
                            quiet=True)
    ctx = browser.new_context(viewport={"width": 1400, "height": 1200})
    page = ctx.new_page()
    page.set_default_timeout(30_000)
    try:
        page.goto(url, wait_until="load")
        page.get_by_role("tab", name="Label").click()
        page.click("#label-start")
        wait_text(page, "#label-progress", "Run 1 of 20")
        assert "alpha" not in text_of(page, "#label-answers") and "beta" not in text_of(page, "#label-answers")
        page.click("#label-progress")  # focus on the page, not a field
        t0 = time.monotonic()
        for k in range(20):
            wait_text(page, "#label-progress", f"Run {k + 1} of 20")
            # the run is drawn whole (on a loaded machine the progress line can show before the fused answer of
            # the run before is cleared): only then a pick's fused answer is this run's
            wait_text(page, "#label-fused", "Pick the best answer first")
            answers = page.eval_on_selector_all("#label-answers .wb-blind pre", "els => els.map(e => e.innerText)")
            assert len(answers) == 3 and "Lyon is the answer" in answers
            want = "Lyon" if k < 15 else "Paris"  # agree with the judge on 15, not on 5
            page.keyboard.press(str(next(i for i, a in enumerate(answers) if want in a) + 1))
            wait_text(page, "#label-fused", "The fused answer")
            assert "Lyon is the answer" in text_of(page, "#label-fused")
            page.keyboard.press("sbw"[k % 3])
        wait_text(page, "#label-progress", "Queue done")
        elapsed = time.monotonic() - t0
        wait_text(page, "#label-agreement", "15 of 20")
        agree = text_of(page, "#label-agreement")
        assert "75%" in agree and "53%" in agree and "89%" in agree  # Wilson 95% CI of 15/20
        page.screenshot(path=str(tmp_path_factory.mktemp("shots") / "labelled.png"), full_page=True)
        labels = [store.label(r.run_id) for r in runs]
        assert all(lab and lab["blind"] for lab in labels)
        assert sum(lab["best_member"] == 1 for lab in labels) == 15
        assert [lab["fused"] for lab in labels[::-1][:3]] == ["same", "better", "worse"]  # newest first in the queue
        with capsys.disabled():
            print(f"\nlabelled 20 runs by keyboard in {elapsed:.1f} s ({elapsed / 20:.2f} s a run, "
                  f"waiting for each redraw)")
        # keys typed ahead of the redraws are applied in order, none dropped (three runs, six keys at once)
        async def three():
            return [await wb.fuse(f"More {k}?", pool, judge,
                                  context=wb.RunContext(store=store, origin="page")) for k in range(3)]

        more = in_thread(three)
        page.click("#label-start")
        wait_text(page, "#label-progress", "Run 1 of 3")
        page.click("#label-progress")
        page.keyboard.type("0s0s0s", delay=20)
        wait_text(page, "#label-progress", "Queue done")
        assert [store.label(r.run_id)["best_member"] for r in more] == [-1, -1, -1]
        assert all(store.label(r.run_id)["fused"] == "same" for r in more)
        wait_text(page, "#label-agreement", "15 of 20")  # "none stands out" is not compared
        # the same figure on the Evaluate tab
        page.get_by_role("tab", name="Evaluate").click()
        page.click("#eval-agreement-refresh")
        wait_text(page, "#eval-agreement", "15 of 20")
    finally:
        ctx.close()
        demo.close()


def test_a_public_visitor_keeps_their_runs_after_a_reload(browser, tmp_path_factory):
    """Public mode: the page sets a random visitor cookie; a run made before a reload and one after belong to the
    same visitor (History shows both), and another browser gets another token."""
    from workbench.policy import Policy
    from workbench.ui.gradio_app import CSS, build_demo

    store = wb.RunStore(tmp_path_factory.mktemp("visitor") / "runs.sqlite")
    demo = build_demo("tiny-offline", store=store, preload=False, policy=Policy.for_host(public=True))
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, css=CSS,
                            quiet=True)
    ctx = browser.new_context(viewport={"width": 1400, "height": 1200})
    try:
        page = ctx.new_page()
        page.set_default_timeout(60_000)
        owners = []
        for k in range(2):
            page.goto(url, wait_until="load")
            page.wait_for_selector("#prompt-box textarea")
            open_settings(page)
            page.get_by_label("vote").check()
            submit(page, f"before and after a reload {k}")
            deadline = time.monotonic() + 60
            while len(store.list(owner=None)) < k + 1 and time.monotonic() < deadline:
                time.sleep(0.2)
            owners.append(store._conn.execute("SELECT owner FROM runs ORDER BY rowid DESC LIMIT 1").fetchone()[0])
        cookie = next(c for c in ctx.cookies() if c["name"] == "wb_visitor")
        assert len(cookie["value"]) == 32 and owners[0] == owners[1] and owners[0].startswith("visitor:")
        assert len(store.list(owner=owners[0])) == 2
        other = browser.new_context()
        try:
            p2 = other.new_page()
            p2.goto(url, wait_until="load")
            p2.wait_for_selector("#prompt-box textarea")
            p2.wait_for_function("() => document.cookie.includes('wb_visitor=')")
            assert next(c for c in other.cookies() if c["name"] == "wb_visitor")["value"] != cookie["value"]
        finally:
            other.close()
    finally:
        ctx.close()
        demo.close()
