"""The public app, attacked as a visitor would: crafted pools, states, endpoints and key names.

A listener on 127.0.0.1 records every request it gets. The host's secret never reaches it, no download
starts, an existing and a missing path read the same, over-limit inputs get a clear message, and the
app keeps serving. The endpoints come from the app itself: a new one fails this test until it has an attack.
"""

import dataclasses
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from gradio_client import Client

from workbench.context import RunContext
from workbench.policy import Policy
from workbench.storage import RunStore
from workbench.ui.gradio_app import CSS, build_demo

SECRET = "hf_secret_value_never_to_leave_0123456789"


class Listener(BaseHTTPRequestHandler):
    seen: list = []

    def log_message(self, *args):
        pass

    def _record(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        Listener.seen.append((self.path, dict(self.headers), body))
        self.send_response(500)
        self.end_headers()

    do_GET = do_POST = _record


@pytest.fixture(scope="module")
def listener():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Listener)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/v1"
    srv.shutdown()


@pytest.fixture(scope="module")
def public_app(tmp_path_factory):
    policy = Policy.for_host(public=True)
    store = RunStore(tmp_path_factory.mktemp("public") / "runs.sqlite")
    demo = build_demo("tiny-offline", store=store, policy=dataclasses.replace(policy, allow_custom_endpoints=True))
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, css=CSS,
                            quiet=True)
    yield demo, url, store
    demo.close()


def attacks_on_fuse(client, listener, tmp_path):
    out = []
    for pool in ("org/any-model", str(tmp_path), str(tmp_path / "missing"), "openrouter:x/y",
                 f"{listener}", "tiny-offline,org/other"):
        out.append(client.predict("hi", [], pool, "", "vote", 1, 8, api_name="/fuse"))
    assert all(o["event"] == "error" for o in out), out
    # an existing and a missing directory read the same (no file-system probe)
    assert out[1]["error"].replace(str(tmp_path), "P") == out[2]["error"].replace(str(tmp_path / "missing"), "P")
    judge = client.predict("hi", [], "tiny-offline", "org/judge-model", "best-of", 1, 8, api_name="/fuse")
    assert judge["event"] == "error" and "not available" in judge["error"]
    for rounds, tokens, what in [(99, 8, "debate rounds"), (1, 10**6, "tokens")]:
        o = client.predict("hi", [], "tiny-offline", "tiny-offline", "debate", rounds, tokens, api_name="/fuse")
        assert o["event"] == "error" and what in o["error"] and "limit" in o["error"]
    o = client.predict("x" * 20000, [], "tiny-offline", "", "vote", 1, 8, api_name="/fuse")
    assert o["event"] == "error" and "characters" in o["error"]
    # a decompression bomb (a small PNG of 6300x6300) is refused from its header, before decoding
    from gradio_client import handle_file
    from PIL import Image

    bomb = tmp_path / "bomb.png"
    Image.new("RGB", (6300, 6300)).save(bomb)
    o = client.predict("hi", [handle_file(str(bomb))], "tiny-offline", "", "vote", 1, 8, api_name="/fuse")
    assert o["event"] == "error" and "6300x6300" in o["error"] and "pixels" in o["error"], o


def attacks_on_evaluate(client, listener, tmp_path):
    crafted = {"pool": [["evil", "", "", ""]], "endpoints": [
        {"name": "evil", "base_url": listener, "model": "m", "api_key_env": "HF_TOKEN", "vision": True}]}
    rows = {"headers": ["model", "persona", "temperature", "name"], "data": [["evil", "", "", ""]]}
    args = ["builtin:arithmetic", 1, ["vote"], False, False, 16, rows, "tiny-offline", crafted]
    status = client.predict(*args, api_name="/evaluate")[0]
    assert "key" in status or "private" in status, status
    no_key = {**crafted, "endpoints": [{**crafted["endpoints"][0], "api_key_env": ""}]}
    status = client.predict(*args[:-1], no_key, api_name="/evaluate")[0]
    assert "local or private address" in status, status
    with pytest.raises(Exception, match="not in the list of choices"):  # Gradio's own check, before ours
        client.predict("/etc/passwd", *args[1:], api_name="/evaluate")
    try:  # a million items: Gradio's own range check or ours (max_eval_items), never a run
        status = client.predict(args[0], 1_000_000, *args[2:], api_name="/evaluate")[0]
        assert "1 to 50" in status, status
    except Exception as exc:  # noqa: BLE001
        assert "1000000" in str(exc) or "maximum" in str(exc).lower(), exc


ATTACKS = {"/fuse": attacks_on_fuse, "/evaluate": attacks_on_evaluate}


def test_every_endpoint_refuses_what_a_visitor_may_not_do(public_app, listener, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    demo, url, store = public_app
    client = Client(url, verbose=False)
    endpoints = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert endpoints == set(ATTACKS), f"endpoints without an attack case: {endpoints - set(ATTACKS)}"
    for attack in ATTACKS.values():
        attack(client, listener, tmp_path)
    assert not any(SECRET in json.dumps([p, h, b.decode(errors="replace")]) for p, h, b in Listener.seen)
    assert Listener.seen == []  # nothing was sent there at all
    ok = client.predict("hi", [], "tiny-offline,tiny-offline:skeptic", "", "vote", 1, 4, api_name="/fuse")
    assert ok["event"] == "done"  # the app keeps serving
    assert store.list(owner=None) and all(r["run_id"] for r in store.list())


def test_visitors_see_only_their_own_runs(public_app):
    demo, url, store = public_app
    a, b = Client(url, verbose=False), Client(url, verbose=False)
    ra = a.predict("from a", [], "tiny-offline", "", "vote", 1, 4, api_name="/fuse")["result"]["run_id"]
    rb = b.predict("from b", [], "tiny-offline", "", "vote", 1, 4, api_name="/fuse")["result"]["run_id"]
    owners = {r["run_id"]: r for r in store.list(100)}
    assert ra in owners and rb in owners
    row_a = store._conn.execute("SELECT owner FROM runs WHERE id = ?", (ra,)).fetchone()[0]
    row_b = store._conn.execute("SELECT owner FROM runs WHERE id = ?", (rb,)).fetchone()[0]
    assert row_a and row_b and row_a != row_b
    assert [r["run_id"] for r in store.list(owner=row_a)] == [ra]
    with pytest.raises(Exception, match="no run"):
        store.load(rb, owner=row_a)


async def test_page_handlers_recheck_the_browser_state_on_every_call(listener, monkeypatch):
    """The page's own (non-API) handlers are reachable by a crafted client too: each one that takes the
    browser's state is called here with a crafted one (a new such handler fails until it is added)."""
    monkeypatch.setenv("HF_TOKEN", SECRET)
    policy = dataclasses.replace(Policy.for_host(public=True), allow_custom_endpoints=True)
    demo = build_demo("tiny-offline", preload=False, policy=policy)
    crafted = {"pool": [["evil", "", "", ""]], "endpoints": [
        {"name": "evil", "base_url": listener, "model": "m", "api_key_env": "HF_TOKEN", "vision": True}]}
    rows = [["evil", "", "", ""]]
    handlers = {f"{f.fn.__qualname__.split('.')[0]}.{f.name}": f.fn for f in demo.fns.values()
                if any(type(c).__name__ == "BrowserState" for c in f.inputs)}
    said = []

    async def page_run():
        async for upd in handlers["FuseTab.run"]({"text": "hi", "files": []}, rows, "evil", "best-of", 1, 8, 0.7, 1,
                                                        "skip", False, crafted):
            said.extend(str(v) for v in upd.values())

    async def rejudge_run():
        said.extend(str(v) for v in await handlers["HistoryTab.rejudge_run"]("any-run", "evil", "merge",
                                                                                   crafted))

    async def evaluate():
        async for out in handlers["EvaluateTab.run"]("builtin:arithmetic", 1, ["vote"], False, False, 8, rows,
                                                      "evil", crafted):
            said.extend(str(v) for v in out)

    async def api_evaluate():
        async for out in handlers["EvaluateTab.api_run"]("builtin:arithmetic", 1, ["vote"], False, False, 8, rows,
                                                          "evil", crafted):
            said.extend(str(v) for v in out)

    async def add_endpoint():
        said.extend(str(v) for v in handlers["FuseTab.add_endpoint"]("e2", listener, "m", "HF_TOKEN", True,
                                                                           crafted))

    def harmless(name):  # keep or show the state; they run no model
        async def call():
            handlers[name](*([rows, crafted] if name.endswith("remember_pool") else [crafted]))
        return call

    attacks = {"FuseTab.run": page_run, "HistoryTab.rejudge_run": rejudge_run,
               "EvaluateTab.run": evaluate, "EvaluateTab.api_run": api_evaluate,
               "FuseTab.add_endpoint": add_endpoint,
               "remember_pool.remember_pool": harmless("remember_pool.remember_pool"),
               "HistoryTab.judge_choices": harmless("HistoryTab.judge_choices"),
               "build_demo.restore": harmless("build_demo.restore")}
    assert set(handlers) == set(attacks), f"handlers taking the browser state without an attack: {set(handlers) - set(attacks)}"
    for attack in attacks.values():
        await attack()
    assert any("⚠" in s and "key" in s for s in said), said
    assert Listener.seen == []


async def test_a_visitor_sees_counts_and_labels_only_their_own_runs(tmp_path, remote):
    """Public mode: History's table, counts and agreement, and the Label tab's queue hold only the visitor's runs."""
    from types import SimpleNamespace

    import workbench as wb
    from workbench.specs import Member

    store = RunStore(tmp_path / "runs.sqlite")
    pool = [Member(remote("reply=Paris;vis=1", name="alpha")), Member(remote("reply=Lyon;vis=1", name="beta"))]
    judge = Member(remote("judge_pick=Lyon;vis=1", name="J"))
    a = [await wb.fuse(f"a{k}", pool, judge,
                       context=RunContext(store=store, owner="sess-a", origin="page")) for k in range(2)]
    await wb.fuse("b0", pool, judge, context=RunContext(store=store, owner="sess-b", origin="page"))
    await wb.fuse("b1", pool, judge, context=RunContext(store=store, owner="sess-b", origin="eval:builtin:arithmetic"))
    store.set_label(a[0].run_id, 1, "same", owner="sess-a")
    demo = build_demo("tiny-offline", store=store, preload=False, policy=Policy.for_host(public=True))
    fns = {f.fn.__qualname__: f.fn for f in demo.fns.values() if f.fn is not None}
    refresh_all = fns["HistoryTab.refresh_all"]
    start = fns["LabelTab.start"]
    visitor = {s: SimpleNamespace(session_hash=s, client=SimpleNamespace(host="203.0.113.9")) for s in ("sess-a",
                                                                                                       "sess-b")}
    rows_a, ids_a, note_a, agree_a, *_ = refresh_all(request=visitor["sess-a"])
    rows_b, ids_b, note_b, agree_b, *_ = refresh_all(request=visitor["sess-b"])
    assert set(ids_a) == {r.run_id for r in a} and "2** run(s) match" in note_a and "1 of 1" in agree_a
    assert len(ids_b) == 1 and "1 evaluation item(s) hidden" in note_b and "no labelled runs" in agree_b
    queue_b = start(True, request=visitor["sess-b"])
    assert "Run **1 of 2**" in queue_b[0] and "a0" not in queue_b[1] and "a1" not in queue_b[1]
    queue_a = start(False, request=visitor["sess-a"])
    assert "Run **1 of 1**" in queue_a[0]  # a0 is labelled already


async def test_label_keys_arriving_out_of_order_still_make_whole_labels(tmp_path, remote):
    """A rating that reaches the server before its pick (two requests racing) is kept until the pick comes."""
    from types import SimpleNamespace

    import workbench as wb
    from workbench.specs import Member

    store = RunStore(tmp_path / "runs.sqlite")
    pool = [Member(remote("reply=Paris;ooo=1", name="alpha")), Member(remote("reply=Lyon;ooo=1", name="beta"))]
    runs = [await wb.fuse(f"q{k}", pool, mode="vote", context=RunContext(store=store, origin="page")) for k in range(2)]
    demo = build_demo("tiny-offline", store=store, preload=False)
    me = SimpleNamespace(session_hash="s1", client=SimpleNamespace(host="127.0.0.1"))
    handlers = {}
    for f in demo.fns.values():
        for block_id, _ in f.targets:
            elem = getattr(demo.blocks.get(block_id), "elem_id", None)
            if elem and elem.startswith("label-"):
                handlers[elem] = f.fn
    handlers["label-start"](False, request=me)
    handlers["label-rate-worse"](request=me)  # arrives first
    out = handlers["label-pick-0"](request=me)
    assert "Run **2 of 2**" in out[0]
    handlers["label-pick-1"](request=me)
    handlers["label-rate-better"](request=me)
    assert [store.label(r.run_id)["fused"] for r in runs[::-1]] == ["worse", "better"]
    assert store.label(runs[1].run_id)["best_member"] == -1


def test_one_key_protects_every_programmatic_route_and_the_page_still_works(tmp_path, monkeypatch):
    """With an API key set, /fuse and /evaluate (Gradio's API) ask for it as /v1 does; the page's events do not."""
    import httpx

    monkeypatch.setenv("WB_TEST_KEY", "k3y-for-clients")
    store = RunStore(tmp_path / "runs.sqlite")
    demo = build_demo("tiny-offline", store=store, preload=False, policy=Policy.for_host(public=True),
                      api_key_env="WB_TEST_KEY")
    from workbench.serve import mount_routes

    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True,
                            app_kwargs={"routes": mount_routes(demo.policy, store, "WB_TEST_KEY")})
    try:
        anon = Client(url, verbose=False)
        o = anon.predict("hi", [], "tiny-offline", "", "vote", 1, 4, api_name="/fuse")
        assert o == {"event": "error", "error": "missing or invalid API key: send Authorization: Bearer <key>"}
        rows = {"headers": ["model", "persona", "temperature", "name"], "data": [["tiny-offline", "", "", ""]]}
        status = anon.predict("builtin:arithmetic", 1, ["vote"], False, False, 16, rows, "tiny-offline", {},
                              api_name="/evaluate")[0]
        assert "missing or invalid API key" in status
        wrong = Client(url, verbose=False, headers={"Authorization": "Bearer nope"})
        assert wrong.predict("hi", [], "tiny-offline", "", "vote", 1, 4, api_name="/fuse")["event"] == "error"
        assert httpx.post(f"{url.rstrip('/')}/v1/chat/completions", json={"model": "tiny-offline", "messages": [
            {"role": "user", "content": "hi"}]}).status_code == 401
        assert store.list(owner=None) == []  # nothing ran
        keyed = Client(url, verbose=False, headers={"Authorization": "Bearer k3y-for-clients"})
        assert keyed.predict("hi", [], "tiny-offline", "", "vote", 1, 4, api_name="/fuse")["event"] == "done"
        status = keyed.predict("builtin:arithmetic", 1, ["vote"], False, False, 16, rows, "tiny-offline", {},
                               api_name="/evaluate")[0]
        assert "API key" not in status and "items" in status, status
    finally:
        demo.close()
    # the page's own handlers take no key: they are the page (a visitor's browser sends none)
    import asyncio

    page_run = next(f.fn for f in demo.fns.values()
                    if f.fn is not None and f.fn.__qualname__ == "EvaluateTab.run")
    async def last():
        return [o async for o in page_run("builtin:arithmetic", 1, ["vote"], False, False, 16,
                                          [["tiny-offline", "", "", ""]], "tiny-offline", {})][-1]

    status = asyncio.run(last())[0]
    assert "API key" not in status and "items" in status, status


def test_a_visitor_keeps_their_runs_across_reloads_by_an_unguessable_cookie(public_app):
    """The page sets a random 128-bit token cookie; runs belong to its hash, so a new page session with the same
    cookie (a reload) sees them, and another visitor (another token, or none) does not."""
    import hashlib

    demo, url, store = public_app
    token = "0123456789abcdef" * 2
    first = Client(url, verbose=False, headers={"Cookie": f"wb_visitor={token}"})
    ra = first.predict("mine", [], "tiny-offline", "", "vote", 1, 4, api_name="/fuse")["result"]["run_id"]
    reload = Client(url, verbose=False, headers={"Cookie": f"other=1; wb_visitor={token}"})  # a new session
    rb = reload.predict("mine again", [], "tiny-offline", "", "vote", 1, 4, api_name="/fuse")["result"]["run_id"]
    owner = "visitor:" + hashlib.sha256(token.encode()).hexdigest()[:32]
    assert {r["run_id"] for r in store.list(owner=owner)} == {ra, rb}
    for cookie in ({"Cookie": "wb_visitor=" + "f" * 32}, {"Cookie": "wb_visitor=short"}, {}):
        other = Client(url, verbose=False, headers=cookie)
        rc = other.predict("theirs", [], "tiny-offline", "", "vote", 1, 4, api_name="/fuse")["result"]["run_id"]
        assert rc not in {r["run_id"] for r in store.list(owner=owner)}
        row = store._conn.execute("SELECT owner FROM runs WHERE id = ?", (rc,)).fetchone()[0]
        assert row != owner and (not cookie or "short" in cookie["Cookie"] or row.startswith("visitor:"))


def test_label_events_wait_only_for_the_same_visitor(tmp_path, remote):
    """One visitor's Label events run one at a time; another visitor's never wait behind them."""
    import asyncio
    import threading
    from types import SimpleNamespace

    import workbench as wb
    from workbench.specs import Member

    store = RunStore(tmp_path / "runs.sqlite")
    pool = [Member(remote("reply=Paris", name="alpha")), Member(remote("reply=Lyon", name="beta"))]
    asyncio.run(wb.fuse("q", pool, mode="vote", context=RunContext(store=store, origin="page")))
    demo = build_demo("tiny-offline", store=store, preload=False)
    handlers = {}
    for f in demo.fns.values():
        for block_id, _ in f.targets:
            elem = getattr(demo.blocks.get(block_id), "elem_id", None)
            if elem and elem.startswith("label-"):
                handlers[elem] = f
    assert all(f.concurrency_limit is None for e, f in handlers.items()
               if e.startswith(("label-pick", "label-rate", "label-skip", "label-start", "label-refresh")))  # no lane
    a = SimpleNamespace(session_hash="a", client=SimpleNamespace(host="127.0.0.1"), headers={})
    b = SimpleNamespace(session_hash="b", client=SimpleNamespace(host="127.0.0.1"), headers={})
    handlers["label-start"].fn(False, request=a)
    handlers["label-start"].fn(False, request=b)
    done = threading.Event()
    started = threading.Event()
    real_set_label = store.set_label

    def slow_label(*args, **kw):  # visitor a's label is slow (a busy disk)
        started.set()
        done.wait(10)
        return real_set_label(*args, **kw)

    store.set_label = slow_label
    handlers["label-pick-1"].fn(request=a)
    t = threading.Thread(target=lambda: handlers["label-rate-same"].fn(request=a))
    t.start()
    assert started.wait(10)
    store.set_label = real_set_label
    second_a = []
    t2 = threading.Thread(target=lambda: second_a.append(handlers["label-skip"].fn(request=a)))
    t2.start()
    out = handlers["label-pick-2"].fn(request=b)  # b is served while a's label is still being written
    assert "Run **1 of 1**" in out[0] and not second_a  # a's next key waits for a's label
    done.set()
    t.join(10)
    t2.join(10)
    assert second_a and "Queue done" in second_a[0][0]
