"""What the browser tests do on the page (Playwright's sync API): read and wait for text, submit a prompt, open
the settings, add an endpoint, make a pool. The ``browser`` fixture is in conftest.py."""


def text_of(page, selector):
    return page.inner_text(selector)


def wait_text(page, selector, needle, timeout=90_000):
    page.wait_for_function(
        "([sel, needle]) => { const e = document.querySelector(sel); return e && e.innerText.includes(needle); }",
        arg=[selector, needle], timeout=timeout)


def submit(page, text, files=()):
    page.fill("#prompt-box textarea", text)
    if files:
        page.set_input_files("#prompt-box input[type=file]", [str(f) for f in files])
        page.wait_for_timeout(500)
    page.click("#prompt-box button.submit-button")


def open_settings(page):
    if not page.is_visible("#pool-table"):
        page.click("#settings > button")
        page.wait_for_selector("#pool-table")


def add_endpoint(page, name, url, model, key_var=""):
    open_settings(page)
    if not page.get_by_label("Base URL").is_visible():
        page.click("#endpoint-acc > button")
    page.get_by_label("Name").fill(name)
    page.get_by_label("Base URL").fill(url)
    page.get_by_label("Model", exact=True).last.fill(model)
    page.get_by_label("API key variable (never the key)").fill(key_var)
    page.get_by_role("button", name="Add endpoint").click()
    wait_text(page, "#status", f"Added endpoint {name}")


def pool_of(page, model_name):
    """Make the pool a single member (an endpoint added in this page)."""
    open_settings(page)
    page.get_by_role("button", name="Clear pool").click()
    page.wait_for_timeout(300)
    page.click("#add-member")
    page.wait_for_function("n => document.querySelector('#pool-table').innerText.includes(n)", arg=model_name)
