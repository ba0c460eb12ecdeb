"""FusionSettings: one validated object from the call to the stored record."""

import pytest

import workbench as wb
from workbench.errors import ConfigError
from workbench.settings import FusionSettings


@pytest.mark.parametrize("bad", [dict(rounds=0), dict(swap_k=0), dict(quorum=0), dict(max_new_tokens=0),
                                 dict(temperature=-1), dict(top_p=0), dict(member_timeout_s=0)])
def test_bad_settings_are_refused_in_one_place(bad):
    with pytest.raises(ConfigError):
        FusionSettings(**bad)
    with pytest.raises(ConfigError):
        FusionSettings().replace(**bad)


def test_unknown_keyword_names_the_fields():
    with pytest.raises(ConfigError, match="swap_k"):
        FusionSettings().replace(swapk=2)


def test_judge_tokens_and_configs():
    s = FusionSettings(max_new_tokens=64, seed=3, judge_timeout_s=9)
    assert s.judge_tokens == 512 and FusionSettings(max_new_tokens=900).judge_tokens == 900
    assert s.judge_config().temperature == 0.0 and s.judge_config().timeout_s == 9
    assert s.member_config().max_new_tokens == 64 and s.member_config().seed == 3


async def test_the_run_stores_the_settings_it_ran_with(remote, tmp_path):
    store = wb.RunStore(tmp_path / "runs.sqlite")
    pool = [wb.Member(remote("reply=4", name="m"))]
    r = await wb.fuse("2+2?", pool, mode="vote", settings=FusionSettings(seed=7, rounds=3), max_new_tokens=32,
                      store=store)
    assert r.settings == FusionSettings(seed=7, rounds=1, max_new_tokens=32)  # vote runs one round
    assert store.load(r.run_id).settings == r.settings
    assert FusionSettings.from_dict({**r.settings.to_dict(), "from_the_future": 1}) == r.settings


def test_the_keyword_overrides_are_the_twin_of_fusion_settings():
    """``fuse(..., round=3)`` is caught by a type checker because ``**overrides`` is ``Unpack[SettingsOverrides]``;
    that only holds while SettingsOverrides has FusionSettings' fields with their types."""
    import dataclasses
    import typing

    from workbench.fusion.engine import FuseOptions, fuse, fuse_stream
    from workbench.settings import FusionSettings, SettingsOverrides

    fields = typing.get_type_hints(FusionSettings)
    assert typing.get_type_hints(SettingsOverrides) == {f.name: fields[f.name]
                                                        for f in dataclasses.fields(FusionSettings)}
    assert SettingsOverrides.__required_keys__ == frozenset()
    assert set(SettingsOverrides.__optional_keys__) < set(FuseOptions.__optional_keys__)
    for fn in (fuse_stream, fuse, FusionSettings.build):
        hint = typing.get_type_hints(fn, include_extras=True)
        assert typing.get_origin(hint["overrides" if fn is not fuse else "kwargs"]) is typing.Unpack


def test_an_unknown_override_is_refused_at_run_time_too():
    from workbench.errors import ConfigError
    from workbench.settings import FusionSettings

    with pytest.raises(ConfigError, match=r"unknown setting\(s\) \['round'\]"):
        FusionSettings.build(None, round=3)
