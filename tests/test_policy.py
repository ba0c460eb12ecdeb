"""The policy: what a caller may name, reach and spend, local vs public."""

import dataclasses

import pytest

import workbench as wb
from workbench.errors import PolicyError
from workbench.policy import PUBLIC_LIMITS, Limits, Policy
from workbench.settings import FusionSettings
from workbench.specs import Member, ModelSpec


@pytest.fixture
def public():
    return Policy.for_host(public=True)


def test_public_mode_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv("SPACE_ID", raising=False)
    monkeypatch.delenv("WORKBENCH_PUBLIC", raising=False)
    assert not Policy.for_host().public
    monkeypatch.setenv("SPACE_ID", "someone/space")
    p = Policy.for_host()
    assert p.public and not p.allow_custom_endpoints and not p.allow_private_hosts and p.limits == PUBLIC_LIMITS
    monkeypatch.setenv("WORKBENCH_LIMITS", "max_new_tokens=64,runs_total=2")
    assert Policy.for_host().limits.max_new_tokens == 64 and "PUBLIC" in Policy.for_host().describe()
    monkeypatch.setenv("WORKBENCH_LIMITS", "max_new_tokens=lots")
    with pytest.raises(PolicyError, match="NAME=NUMBER"):
        Policy.for_host()


def test_public_callers_name_host_models_only_with_one_message_for_any_path(public, tmp_path):
    assert public.member("tiny-offline:skeptic").model.name == "tiny-offline"
    existing, missing = tmp_path, tmp_path / "missing"
    messages = set()
    for name in (str(existing), str(missing), "org/some-model", "openrouter:meta-llama/llama-4-scout"):
        with pytest.raises(PolicyError) as exc:
            public.member(name)
        messages.add(str(exc.value).replace(name, "NAME"))
    assert len(messages) == 1  # no file-system probe, no download, no key-carrying scheme


def test_local_mode_trusts_the_researcher(tmp_path):
    local = Policy.for_host(public=False)
    assert local.member("org/some-model").model.model == "org/some-model"
    local.check_spec(ModelSpec(name="mine", backend="openai", model="m", base_url="http://127.0.0.1:1/v1",
                               api_key_env="ANY_VAR"))


def test_public_endpoints_never_carry_a_key_or_reach_private_hosts(public):
    open_policy = dataclasses.replace(public, allow_custom_endpoints=True)
    with pytest.raises(PolicyError, match="off"):
        public.registry_with([{"name": "e", "base_url": "https://example.com/v1", "model": "m"}])
    with pytest.raises(PolicyError, match="key"):
        open_policy.registry_with([{"name": "e", "base_url": "https://example.com/v1", "model": "m",
                                    "api_key_env": "HF_TOKEN"}])
    for url in ("http://127.0.0.1:8000/v1", "http://localhost/v1", "http://169.254.169.254/latest",
                "http://10.0.0.5/v1", "http://[::1]:80/v1", "file:///etc/passwd"):
        with pytest.raises(PolicyError):
            open_policy.registry_with([{"name": "e", "base_url": url, "model": "m"}])
    allowed = dataclasses.replace(open_policy, allowed_hosts=frozenset({"127.0.0.1:*"}))
    assert "e" in allowed.registry_with([{"name": "e", "base_url": "http://127.0.0.1:8000/v1", "model": "m"}]).models
    with pytest.raises(PolicyError, match="server's model"):
        open_policy.registry_with([{"name": "tiny-offline", "base_url": "https://example.com/v1", "model": "m"}])


def test_a_hand_built_member_is_checked_like_a_name(public):
    with pytest.raises(PolicyError):
        public.check_spec(ModelSpec(name="tiny-offline", backend="local", model="/etc"))  # a preset's name, not its spec
    public.check_spec(public.registry.models["tiny-offline"])


def test_limits_name_what_was_over(public):
    tiny = public.member("tiny-offline")
    prompt = wb.Prompt("hi")
    public.check_run(prompt, [tiny], tiny, FusionSettings(max_new_tokens=64))
    for settings, what in [(FusionSettings(rounds=9), "debate rounds"), (FusionSettings(max_new_tokens=10**5), "tokens"),
                           (FusionSettings(swap_k=4), "orderings")]:
        with pytest.raises(PolicyError, match=what):
            public.check_run(prompt, [tiny], tiny, settings)
    with pytest.raises(PolicyError, match="members"):
        public.check_run(prompt, [tiny] * 7, tiny, FusionSettings())
    with pytest.raises(PolicyError, match="characters"):
        public.check_run(wb.Prompt("x" * 9000), [tiny], tiny, FusionSettings())
    assert Limits().max_pool == 8


async def test_the_judges_token_limit_is_the_hosts(remote):
    """The judge's default (max(512, the members' limit)) is capped to a lower host limit; one the caller sets is
    checked against it; the run's judge gets no more than the host allows."""
    pol = Policy(public=False, limits=Limits(max_new_tokens=128, max_judge_tokens=256))
    m = Member(remote("reply=Final answer: 5", name="m"))
    assert pol.fit(FusionSettings(max_new_tokens=64)).judge_tokens == 256  # default 512 capped
    pol.check_run(wb.Prompt("q"), [m], m, FusionSettings(max_new_tokens=64))  # the default fits after capping
    with pytest.raises(PolicyError, match="1000 judge tokens is over this server's limit of 256"):
        pol.check_run(wb.Prompt("q"), [m], m, FusionSettings(max_new_tokens=64, judge_max_new_tokens=1000))
    judge = Member(remote("judge_pick=5", name="j"))
    r = await wb.fuse("q", [m], judge, mode="best-of", max_new_tokens=64, context=wb.RunContext(policy=pol))
    assert r.settings.judge_tokens == 256 and r.verdict.valid


async def test_fuse_applies_the_policy_when_asked(public, remote):
    with pytest.raises(PolicyError):
        await wb.fuse("q", ["org/some-model"], mode="vote", context=wb.RunContext(policy=public))
    with pytest.raises(PolicyError):  # a Member object does not get around it
        await wb.fuse("q", [Member(remote("reply=x", name="evil"))], mode="vote", context=wb.RunContext(policy=public))


def test_a_persona_suffix_never_makes_a_public_name_touch_the_disk(public, tmp_path):
    messages = set()
    for name in (f"{tmp_path}:skeptic", f"{tmp_path / 'missing'}:skeptic", "/etc/passwd:skeptic", "~root:skeptic",
                 "~nosuchuser:skeptic"):
        with pytest.raises(PolicyError) as exc:
            public.member(name)
        messages.add(str(exc.value).split("'")[-1])
    assert len(messages) == 1
    with pytest.raises(PolicyError, match="no ':'"):
        dataclasses.replace(public, allow_custom_endpoints=True).registry_with(
            [{"name": "/etc:skeptic", "base_url": "https://example.com/v1", "model": "m"}])


def test_serving_beyond_loopback_is_public_unless_the_host_says_otherwise(monkeypatch):
    monkeypatch.delenv("SPACE_ID", raising=False)
    monkeypatch.delenv("WORKBENCH_PUBLIC", raising=False)
    assert Policy.for_host(bind_host="0.0.0.0").public and not Policy.for_host(bind_host="127.0.0.1").public
    assert not Policy.for_host(public=False, bind_host="0.0.0.0").public
    monkeypatch.setenv("WORKBENCH_PUBLIC", "true")
    assert Policy.for_host(bind_host="127.0.0.1").public
    monkeypatch.setenv("WORKBENCH_PUBLIC", "0")
    assert not Policy.for_host(bind_host="0.0.0.0").public


def test_member_overrides_count_against_the_limits(public):
    tiny = public.registry.models["tiny-offline"]
    with pytest.raises(PolicyError, match="temperature"):
        public.check_run(wb.Prompt("hi"), [Member(tiny, temperature=1e9)], None, FusionSettings())
    with pytest.raises(PolicyError, match="persona"):
        public.check_run(wb.Prompt("hi"), [Member(tiny, persona="x" * 9000)], None, FusionSettings())


def test_a_public_server_loads_at_most_its_limit_of_local_models(monkeypatch):
    """Visitors cannot make the host load every cached local model: past max_local_models a run is refused."""
    from workbench.backends import lifetime
    from workbench.errors import BusyError

    held = [{"name": "smol-a", "backend": "local", "handles": 0, "kept": True},
            {"name": "smol-b", "backend": "local", "handles": 0, "kept": True},
            {"name": "api", "backend": "openai", "handles": 0, "kept": True}]
    monkeypatch.setattr(lifetime, "loaded", lambda: held)
    pol = Policy(public=False, limits=Limits(max_local_models=2))
    spec = lambda name, backend="local": ModelSpec(name=name, backend=backend, model="x")  # noqa: E731
    pol._check_local_models([spec("smol-a"), spec("smol-b"), spec("other", "openai")])  # loaded ones: fine
    with pytest.raises(BusyError, match="at most 2 local models loaded \\(smol-a, smol-b\\); smol-c would be more"):
        pol._check_local_models([spec("smol-c")])
    held.pop(0)
    pol._check_local_models([spec("smol-c"), spec("smol-b")])  # room again once one is unloaded


def test_a_partly_cached_snapshot_is_refused_not_completed_from_the_hub(tmp_path, monkeypatch):
    import json

    import huggingface_hub.constants as hc

    from workbench.backends.local import resolve_checkpoint
    from workbench.errors import ModelLoadError

    snap = tmp_path / "models--org--half" / "snapshots" / ("a" * 40)
    snap.mkdir(parents=True)
    (tmp_path / "models--org--half" / "refs").mkdir()
    (tmp_path / "models--org--half" / "refs" / "main").write_text("a" * 40)
    (snap / "config.json").write_text("{}")
    (snap / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {
        "a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}))
    (snap / "model-00001-of-00002.safetensors").write_bytes(b"x")
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # and were it to try the network, this test must not reach it
    spec = ModelSpec(name="half", backend="local", model="org/half")
    with pytest.raises(ModelLoadError, match="only partly downloaded .*model-00002-of-00002.safetensors"):
        resolve_checkpoint(spec, local_files_only=True)
    (snap / "model-00002-of-00002.safetensors").write_bytes(b"x")
    assert resolve_checkpoint(spec, local_files_only=True) == snap


@pytest.mark.parametrize("host, key", [
    ("203.0.113.7", "ip:203.0.113.7"),
    ("::ffff:203.0.113.7", "ip:203.0.113.7"),  # the same IPv4 client through a dual-stack socket
    ("2001:db8:1:2:aaaa::1", "ip:2001:db8:1:2::/64"),
    ("2001:db8:1:2:ffff:ffff:ffff:ffff", "ip:2001:db8:1:2::/64"),  # any address of that /64: one visitor
    ("2001:db8:1:3::1", "ip:2001:db8:1:3::/64"),
    ("fe80::1%eth0", "ip:fe80::/64"),
    ("testclient", "ip:testclient"),
    (None, "ip:unknown"),
])
def test_per_visitor_limits_count_an_ipv4_address_or_an_ipv6_64(host, key):
    from workbench.policy import quota_key

    assert quota_key(host) == key
