# %% [markdown]
# # What does INT4 cost?
#
# The same model loaded twice, unquantized and in INT4 (bitsandbytes NF4), as two members of one pool, answering
# greedily: first an **audit** of what is really 4-bit in each loaded model (bytes by component and dtype, read from
# the model, not from its config), then how often their answers agree and the paired accuracy difference. For a
# vision model (Llama 4) a third arm quantizes the vision tower too: is an INT4 vision encoder worse?

# %% [markdown]
# **About the stored outputs.** This notebook is committed executed, on SmolLM2-135M-Instruct offline
# (`smol-offline`, a 2-core CPU) at the test run's small sizes: 3 items, answers cut at 40 tokens
# (`scripts/make_notebooks.py --execute`). A 135M model is weak: it gets easy arithmetic right now and then, and as
# a judge it mostly picks by position. Read the stored numbers as a demonstration of the method (what each number
# means, how to tell evidence from noise), not as findings about fusion. The *Reading* lines are printed from the
# numbers, so they stay right when you re-execute with a stronger model or more items (`WORKBENCH_NB_ITEMS=50`).

# %%
# the setup cell: notebooks/src/_setup.py, written out here in the notebook
from _setup import os, DATASET, ITEMS, PRESET, SPEC, TOKENS

# %%
from workbench import experiments as X

QUANT_ITEMS = int(os.environ.get("WORKBENCH_NB_QUANT_ITEMS", ITEMS))
panel = X.quantization_panel(PRESET, datasets=[DATASET, "builtin:shapes"], limit=QUANT_ITEMS, max_new_tokens=TOKENS)
q = panel.summary
print(f"Finding (audit, {PRESET}): 4-bit share of the loaded bytes: " + ", ".join(
    f"{arm} {share:.0%} ({q['total_bytes'][arm] / 2**20:.0f} MiB)" for arm, share in q["four_bit_share_of_bytes"].items())
    + "; 4-bit components: " + "; ".join(f"{arm}: {', '.join(c) or 'none'}" for arm, c in q["four_bit_components"].items())
    + (f"; skipped (text-only model): {', '.join(q['datasets_skipped'])}" if q["datasets_skipped"] else ""))
panel.details.pivot_table(index="component", columns=["arm", "dtype"], values="bytes", aggfunc="sum").fillna(0)

# %% [markdown]
# **How to read the audit.** Bytes per component (rows) by arm and dtype (columns), read from the loaded models. In
# the INT4 arm the quantized weights show as `nf4` (with their statistics counted in); what stayed 16- or 32-bit is
# either on the skip list (embeddings, lm_head: kept out on purpose) or a tensor that is not a Linear layer. The
# check to make: every component you meant to quantize appears under `nf4` and nowhere else.

# %%
for r in panel.frame.itertuples():
    agreed = (f"same answer on {r.agreement:.0%} of the {r.both_answered} items both answered (95% CI "
              f"{r.agreement_ci_low:.0%}-{r.agreement_ci_high:.0%})" if r.both_answered else
              "agreement not measured (no item both answered)")
    print(f"Finding ({r.dataset}, {r.comparison}, {r.items} items): {agreed}; accuracy "
          f"{r.accuracy_a:.0%} vs {r.accuracy_b:.0%}, difference {r.diff:+.0%} (CI {r.ci_low:+.0%} to {r.ci_high:+.0%}, "
          f"McNemar p = {r.mcnemar_p:.2f}).")
from workbench.eval.report import interval_reading

for r in panel.frame.itertuples():
    print(f"Reading ({r.dataset}, {r.comparison}): " + (
        "not measured: no item where both arms gave an answer; " if not r.both_answered else
        f"the arms gave the same answer on {r.agreement:.0%} of the items both answered; ")
        + f"accuracy difference {r.diff:+.0%}: {interval_reading(r.ci_low, r.ci_high, r.mcnemar_p, r.items)}.")
panel.frame

# %%
panel.figure

# %% [markdown]
# Agreement is the sharper instrument: two arms can have the same accuracy while answering different items right. An
# accuracy difference whose interval includes 0 is not evidence that INT4 is worse (or better) on these items.

# %% [markdown]
# ## The vision tower in 4 bits
#
# SmolLM2 takes no images, so on a CPU the vision arm runs on the tiny random-weight Llama 4: its answers are noise,
# but its **audit** is real and shows what the third arm changes. On a GPU with Scout, the panel above already has
# the vision arm on `builtin:shapes`.

# %%
vt = X.quantization_panel("tiny-offline", datasets=["builtin:shapes"], limit=2, max_new_tokens=4) \
    if SPEC.vision is False else panel
v = vt.summary
print(f"Finding (vision tower, {v['model']}): 4-bit components per arm: "
      + "; ".join(f"{arm}: {', '.join(c) or 'none'}" for arm, c in v["four_bit_components"].items())
      + f"; loaded bytes {', '.join(f'{a} {b / 2**10:.0f} KiB' for a, b in v['total_bytes'].items())}.")
vt.details[vt.details["component"] == "vision"].pivot_table(index="dtype", columns="arm", values="bytes",
                                                           aggfunc="sum").fillna(0)

# %% [markdown]
# **How to read it.** The vision tower's bytes by dtype in each arm: only the third arm should hold `nf4` here. On
# Scout that arm's accuracy on `builtin:shapes` against the INT4 arm's answers the question "is an INT4 vision
# encoder worse?"; on the CPU the tiny model's answers are noise, so only the audit above is real.

# %%
# The numbers above, checked (the test suite runs this notebook): the unquantized arm holds nothing in 4 bits,
# the INT4 arm's 4-bit parts are a subset of the vision arm's, and the rates are rates.
for p_ in (panel, vt):
    s_ = p_.summary
    arms = s_["arms"]
    assert s_["four_bit_share_of_bytes"][arms[0]] == 0 and s_["four_bit_components"][arms[0]] == []
    assert s_["four_bit_share_of_bytes"]["INT4"] > 0
    if len(arms) == 3:
        assert set(s_["four_bit_components"]["INT4"]) < set(s_["four_bit_components"][arms[2]])
        assert "vision" in s_["four_bit_components"][arms[2]] and "vision" not in s_["four_bit_components"]["INT4"]
    f = p_.frame
    assert ((f["agreement"].isna()) | f["agreement"].between(0, 1)).all() and (f["both_answered"] <= f["items"]).all()
print("consistent")
