"""Memory plans built from the config alone on the meta device."""

import json

from transformers import Llama4Config

from workbench.backends.quant import SCOUT_CONFIG, plan_memory
from workbench.cli import main
from workbench.specs import DEFAULT_SKIP_MODULES


def test_scout_plan_int4_and_bf16():
    plan = plan_memory(Llama4Config(**SCOUT_CONFIG), DEFAULT_SKIP_MODULES)
    assert 108e9 < plan["total_parameters"] < 109.5e9
    assert 96.0e9 < plan["parameters"]["experts"] < 97.0e9
    assert 55 <= plan["int4_total_gib"] <= 60
    assert 195 <= plan["bf16_total_gib"] <= 210
    # skip-listed parts stay bf16; experts shrink about 3.9x
    assert plan["int4_bytes"]["vision"] == plan["bf16_bytes"]["vision"]
    assert plan["int4_bytes"]["lm_head"] == plan["bf16_bytes"]["lm_head"]
    assert 3.8 < plan["bf16_bytes"]["experts"] / plan["int4_bytes"]["experts"] < 4.0


def test_experts_left_in_bf16_cost_what_facts_say():
    """With experts skipped (what on-the-fly bitsandbytes does) Scout needs ~189 GiB: it fits no GPU."""
    plan = plan_memory(Llama4Config(**SCOUT_CONFIG), (*DEFAULT_SKIP_MODULES, r".*\.experts"))
    assert 185 < plan["int4_total_gib"] < 192


def test_cli_memory_json(capsys):
    assert main(["memory", "scout-int4", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["quant"] == "int4" and 55 <= out["planned_gib"] <= 60
    assert {"experts", "attention", "vision", "embeddings"} <= set(out["int4_bytes"])
