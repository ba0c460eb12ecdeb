import pytest

from workbench import ConfigError, UnknownModelError, load_registry


def test_presets_shipped():
    reg = load_registry()
    assert {"scout-int4", "tiny-offline"} <= set(reg.models)
    assert reg.models["scout-int4"].quant == "int4"
    assert "lm_head" in reg.models["scout-int4"].skip_modules and "router" in reg.models["scout-int4"].skip_modules


def test_unknown_model_lists_presets():
    with pytest.raises(UnknownModelError) as info:
        load_registry().resolve("no-such-model")
    assert "scout-int4" in str(info.value) and "tiny-offline" in str(info.value)


def test_resolve_forms(tmp_path):
    reg = load_registry()
    spec = reg.resolve("openrouter:meta-llama/llama-4-scout")
    assert spec.backend == "openai" and spec.api_key_env == "OPENROUTER_API_KEY"
    assert reg.resolve("org/model").backend == "local"
    assert reg.resolve(str(tmp_path)).model == str(tmp_path.resolve())


def test_member_with_persona():
    m = load_registry().member("tiny-offline:skeptic")
    assert m.model.name == "tiny-offline" and "skeptic" in m.persona and m.label == "tiny-offline:skeptic"


def test_user_file_merged_on_top(tmp_path):
    f = tmp_path / "models.toml"
    f.write_text('[models.tiny-offline]\nbackend = "tiny"\nmodel = "x"\ndescription = "mine"\n'
                 '[models.mine]\nbackend = "openai"\nmodel = "m"\nbase_url = "http://127.0.0.1:9/v1"\n'
                 '[personas]\npirate = "Talk like a pirate."\n')
    reg = load_registry(f)
    assert reg.models["tiny-offline"].description == "mine"
    assert reg.models["mine"].base_url.endswith(":9/v1") and "scout-int4" in reg.models
    assert reg.member("mine:pirate").persona == "Talk like a pirate."


@pytest.mark.parametrize("text, match", [
    ("[models.x\n", "not valid TOML"),
    ('[models.x]\nbackend = "magic"\nmodel = "m"\n', "backend"),
    ('[models.x]\nbackend = "local"\nmodel = "m"\ncolour = 1\n', "unknown keys"),
])
def test_bad_user_file_is_a_clear_error(tmp_path, text, match):
    f = tmp_path / "models.toml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_registry(f)
