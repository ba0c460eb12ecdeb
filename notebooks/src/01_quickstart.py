# %% [markdown]
# # Quickstart: one model, one fusion run
#
# Load a model, look at what it costs in memory, then send one prompt (with a picture when the model sees images) to
# a pool of three members and let a judge pick the best answer. Everything shown here comes from the same
# `FusionResult` the web app renders.

# %% [markdown]
# **About the stored outputs.** This notebook is committed executed, on SmolLM2-135M-Instruct offline
# (`smol-offline`, a 2-core CPU) at the test run's small sizes: 3 items, answers cut at 40 tokens
# (`scripts/make_notebooks.py --execute`). A 135M model is weak: it gets easy arithmetic right now and then, and as
# a judge it mostly picks by position. Read the stored numbers as a demonstration of the method (what each number
# means, how to tell evidence from noise), not as findings about fusion. The *Reading* lines are printed from the
# numbers, so they stay right when you re-execute with a stronger model or more items (`WORKBENCH_NB_ITEMS=50`).

# %%
# the setup cell: notebooks/src/_setup.py, written out here in the notebook
from _setup import wb, JUDGE_TOKENS, PRESET, SPEC, TOKENS

# %% [markdown]
# ## Load a model
#
# `load_model` takes a preset, a Hugging Face id, a local checkpoint, a GGUF file or an endpoint. `memory_report()`
# gives the bytes held, by component and dtype; in INT4 the MoE experts show up as `nf4`.

# %%
model = wb.load_model(PRESET)
report = model.memory_report()
from pathlib import Path
print(f"{report['total_gib']:.3f} GiB loaded from the checkpoint {Path(report['checkpoint']).name}")
{component: dtypes for component, dtypes in report["by_component"].items()}

# %% [markdown]
# **How to read it.** `total_gib` is what the loaded weights and buffers hold; `by_component` maps each part of the
# model to bytes per dtype, read from the loaded tensors (not from the config). SmolLM2-135M unquantized holds about
# 135M parameters x 4 bytes in float32. For Scout in INT4 look for `nf4` under the experts and attention, and
# `bfloat16` under vision, router and lm_head (kept out of 4 bits on purpose: see FACTS.md at the repo root). A
# component you expected in 4 bits but find in 16 is the thing to catch here: it is where the memory goes.

# %% [markdown]
# ## One fusion run
#
# Three members (one model with three personas and temperatures: they share the weights and are batched into one
# `generate` call) answer; the judge, decoding under the verdict's JSON schema, picks one.

# %%
from PIL import Image, ImageDraw

images = []
if SPEC.vision:
    img = Image.new("RGB", (224, 224), "white")
    ImageDraw.Draw(img).ellipse((60, 60, 160, 160), fill=(220, 30, 30))
    images = [img]
text = ("What shape is in the picture, and what colour is it?" if images else
        "A farmer has 3 pens with 4 sheep in each. How many sheep are there? End with 'Final answer: <number>'.")
pool = [wb.Member(SPEC, temperature=0.7), wb.Member(SPEC, wb.load_registry().personas["skeptic"], "skeptic", 1.0),
        wb.Member(SPEC, wb.load_registry().personas["analyst"], "analyst", 0.3)]
result = await wb.fuse(wb.Prompt(text, images=images), pool, judge=PRESET, mode="best-of",
                       max_new_tokens=TOKENS, judge_max_new_tokens=JUDGE_TOKENS, seed=0)
print(result.final_answer[:300])

# %% [markdown]
# ## Side by side
#
# Every member's answer with its timings and tokens, then the verdict with the anonymized labels mapped back to
# member names.

# %%
import pandas as pd
from IPython.display import HTML, display
from workbench.render import html as render

pd.DataFrame([{"member": o.label, "ok": o.ok, "answer": o.text[:120], "TTFT s": o.ttft_s, "latency s": o.latency_s,
               "tokens out": o.completion_tokens} for o in result.outputs])

# %% [markdown]
# **How to read it.** One row per member. The three share one set of weights and are batched into one `generate`
# call, so they start together and finish close together. TTFT (time to first token) is what a user waits before
# text appears; latency is the whole answer. `tokens out` at the run's limit (`TOKENS`) means the answer was cut
# off: a cut answer may never reach its "Final answer" line. Differences between the members here come from their
# personas and temperatures, not their weights.

# %%
display(HTML(render.verdict_html(result)))
v = result.verdict
print("Finding:", f"the judge picked {result.outputs[v.winner].label} ({v.rationale[:120]!r})" if v.valid
      else f"no valid verdict ({v.error}); the run fell back to the first answer")

# %%
from workbench.answers import extract_answer

# Reading, from the answers above: is the pick right, and could it have been? (the sheep question's answer is 12)
if images:
    print("Reading: a picture question has no reference answer here; read the answers and the pick yourself.")
else:
    right = [o.label for o in result.outputs if o.ok and extract_answer(o.text) == "12"]
    picked = result.outputs[v.winner].label if v.valid and v.winner is not None else None
    if not right:
        verdict = "no member answered 12, so no pick could be right: the judge cannot add what the pool lacks."
    elif picked in right:
        verdict = f"the judge picked {picked}, one of them."
    else:
        verdict = f"the judge picked {picked or 'nothing valid'}, a wrong one, although a right answer was there (judge regret)."
    print(f"Reading: {len(right)} of {len(result.outputs)} members answered 12{' (' + ', '.join(right) + ')' if right else ''}; "
          f"{verdict} One prompt is an anecdote: notebooks 02 and 03 count how often each happens, with intervals.")

# %%
from workbench.render import plots

plots.run_timeline(result)

# %% [markdown]
# **How to read the timeline.** One bar per member from its start to its last token (the first token is marked),
# then the judge's bar. Members batched into one call start together; the pool phase ends with its slowest member,
# and the title gives the pool phase's overhead over that member (1.00x: running members side by side cost nothing
# extra). The judge's bar is the price of fusion: it reads every answer, then writes a JSON verdict.

# %%
# The numbers above, checked against each other (the test suite runs this notebook: a wrong table fails it).
outs = result.rounds[0]
assert all(o.latency_s >= 0 and (o.ttft_s is None or 0 <= o.ttft_s <= o.latency_s) for o in outs)
assert all(o.start_s <= o.end_s for o in outs if o.ok)
assert result.slowest_member_s == max(o.latency_s for o in outs)
judge_tokens = sum(a.prompt_tokens + a.completion_tokens for a in result.verdict.attempts)
assert result.total_tokens == sum(o.prompt_tokens + o.completion_tokens for o in outs) + judge_tokens
v = result.verdict
if v.valid and v.winner is not None:
    assert result.final_answer == result.outputs[v.winner].text  # best-of answers with the winner's own text
else:
    assert result.degraded and any("fell back" in x for x in result.failure_reasons)
print("consistent")
