import re

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


def test_fused_models_parse_from_the_models_file_and_bad_tables_say_what_is_wrong(tmp_path):
    from workbench.errors import ConfigError
    from workbench.specs import Registry

    good = ('[fusions.trio]\npool = ["tiny-offline:analyst", "tiny-offline"]\njudge = "tiny-offline"\n'
            'mode = "debate"\nrounds = 3\nswap_k = 2\nmax_tokens = 64\ntimeout_s = 30\ndescription = "d"\n')
    reg = Registry()
    reg.add_toml(good, "f.toml")
    f = reg.fusions["trio"]
    assert f.pool == ("tiny-offline:analyst", "tiny-offline") and f.mode == "debate"
    assert f.settings == {"rounds": 3, "swap_k": 2} and f.max_tokens == 64 and f.timeout_s == 30
    for bad, says in [('[fusions.x]\njudge = "a"\n', "needs pool"),
                      ('[fusions.x]\npool = []\n', "needs pool"),
                      ('[fusions.x]\npool = ["a"]\nwizard = 1\n', "unknown keys ['wizard']"),
                      ('[fusions."a:b"]\npool = ["a"]\n', "no ':'"),
                      ('[fusions.x]\npool = ["a"]\nmax_tokens = -1\n', "max_tokens must be a positive"),
                      ('[fusions.x]\npool = ["a"]\njudge = 3\n', "judge must be a model name")]:
        with pytest.raises(ConfigError, match=re.escape(says)):
            Registry().add_toml(bad, "f.toml")


def test_a_server_refuses_a_fused_model_that_does_not_resolve():
    from workbench.errors import ConfigError
    from workbench.serve.targets import check_fusions
    from workbench.specs import load_registry

    for table, says in [('pool = ["no-such-model"]\njudge = "tiny-offline"', "unknown model 'no-such-model'"),
                        ('pool = ["tiny-offline"]\nmode = "merge"', "mode merge needs a judge"),
                        ('pool = ["tiny-offline"]\njudge = "tiny-offline"\nrounds = 0', "rounds must be at least 1"),
                        ('pool = ["tiny-offline"]\njudge = "tiny-offline"\nmode = "chaos"', "unknown mode")]:
        reg = load_registry()
        reg.add_toml(f"[fusions.x]\n{table}\n", "f.toml")
        with pytest.raises(ConfigError, match=re.escape(says)):
            check_fusions(reg)
