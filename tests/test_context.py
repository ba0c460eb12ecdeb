"""RunContext: who runs, counted against whom, built in one place per entry point (workbench/context.py)."""

import hashlib
from types import SimpleNamespace

import workbench as wb
from workbench.context import RunContext, client_quota, page_owner, visitor_token, with_shorthands
from workbench.policy import Policy
from workbench.specs import Registry

TOKEN = "ab" * 16  # what the page's script makes: 32 hex characters


def request(host="203.0.113.7", cookie=None, session="sess-1"):
    """What the builders read of a Gradio or Starlette request: headers, the client's address, the session."""
    return SimpleNamespace(headers={"cookie": cookie} if cookie else {}, client=SimpleNamespace(host=host),
                           session_hash=session)


def test_a_local_server_shares_runs_and_counts_only_its_total(tmp_path):
    store = wb.RunStore(tmp_path / "r.sqlite")
    ctx = RunContext.for_page(request(cookie=f"wb_visitor={TOKEN}"), Policy(public=False), store)
    assert (ctx.owner, ctx.quota, ctx.origin, ctx.store, ctx.public) == (None, None, "page", store, False)
    api = RunContext.for_api(request(), Policy(public=False), store)
    assert (api.owner, api.quota, api.origin) == (None, None, "api")


def test_a_public_page_visitor_owns_runs_by_cookie_and_is_counted_by_address():
    public = Policy(public=True)
    ctx = RunContext.for_page(request(cookie=f"other=1; wb_visitor={TOKEN}"), public, None, origin="gradio-api")
    assert ctx.owner == "visitor:" + hashlib.sha256(TOKEN.encode()).hexdigest()[:32]
    assert ctx.quota == "ip:203.0.113.7" and ctx.origin == "gradio-api" and ctx.public
    # without a token of the page's shape, the page session owns the runs; the address still counts them
    for cookie in (None, "wb_visitor=short", "wb_visitor=" + "zz" * 16, "wb_visitor=\x00bad"):
        assert page_owner(request(cookie=cookie), public) == "sess-1"
    assert page_owner(SimpleNamespace(), public) == "anonymous" and visitor_token(None) is None
    # an IPv6 client is counted by its /64: every address in it is the same visitor
    assert client_quota(request(host="2001:db8:1:2::5"), public) == client_quota(request(host="2001:db8:1:2::9"),
                                                                                 public)


def test_a_public_api_client_owns_runs_by_address():
    ctx = RunContext.for_api(request(host="198.51.100.4"), Policy(public=True), None)
    assert (ctx.owner, ctx.quota, ctx.origin) == ("api:198.51.100.4", "ip:198.51.100.4", "api")
    assert ctx.registry is not None and ctx.resolved_registry() is ctx.registry


def test_names_resolve_in_the_context_the_policy_or_the_shipped_presets(tmp_path):
    mine, hosts = Registry(), Registry()
    assert RunContext(registry=mine, policy=Policy(registry=hosts)).resolved_registry() is mine
    assert RunContext(policy=Policy(registry=hosts)).resolved_registry() is hosts
    assert "tiny-offline" in RunContext().resolved_registry().models


def test_the_store_and_registry_shorthands_replace_the_contexts(tmp_path):
    store, reg = wb.RunStore(tmp_path / "r.sqlite"), Registry()
    base = RunContext(owner="visitor:x", origin="page")
    ctx = with_shorthands(base, store=store, registry=reg)
    assert (ctx.store, ctx.registry, ctx.owner, ctx.origin) == (store, reg, "visitor:x", "page")
    assert with_shorthands(None) == RunContext() and with_shorthands(base) is base


async def test_a_run_is_stored_with_its_contexts_owner_and_origin(tmp_path, remote):
    store = wb.RunStore(tmp_path / "r.sqlite")
    r = await wb.fuse("2+2?", [wb.Member(remote("reply=Final answer: 4;ctx=1", name="m"))], mode="vote",
                      context=RunContext(store=store, owner="visitor:a", origin="page"))
    assert store.load(r.run_id, owner="visitor:a").origin == "page"
    assert store.count(owner="visitor:b") == 0
