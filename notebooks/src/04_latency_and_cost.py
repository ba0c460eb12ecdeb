# %% [markdown]
# # Latency and cost
#
# Fusion waits for the slowest member and then for the judge, and spends tokens on every member. How much does the
# pool phase add over its slowest member, and how many tokens (and dollars, where the API reports them) does each
# correct answer cost?

# %% [markdown]
# **About the stored outputs.** This notebook is committed executed, on SmolLM2-135M-Instruct offline
# (`smol-offline`, a 2-core CPU) at the test run's small sizes: 3 items, answers cut at 40 tokens
# (`scripts/make_notebooks.py --execute`). A 135M model is weak: it gets easy arithmetic right now and then, and as
# a judge it mostly picks by position. Read the stored numbers as a demonstration of the method (what each number
# means, how to tell evidence from noise), not as findings about fusion. The *Reading* lines are printed from the
# numbers, so they stay right when you re-execute with a stronger model or more items (`WORKBENCH_NB_ITEMS=50`).

# %%
# the setup cell: notebooks/src/_setup.py, written out here in the notebook
from _setup import wb, DATASET, ITEMS, JUDGE_TOKENS, PRESET, TOKENS

# %%
result = await wb.fuse("What is 17 + 25? Explain briefly.", [PRESET, f"{PRESET}:skeptic", f"{PRESET}:concise"],
                       judge=PRESET, mode="merge", max_new_tokens=TOKENS, judge_max_new_tokens=JUDGE_TOKENS, seed=0)
first = result.rounds[0]
pool_wall = max(o.end_s for o in first) - min(o.start_s for o in first)
print(f"Finding: pool phase {pool_wall:.2f} s, slowest member {result.slowest_member_s:.2f} s: "
      f"overhead {pool_wall / result.slowest_member_s:.3f}x; judge {result.judge_wall_s:.2f} s")
ratio = pool_wall / result.slowest_member_s
print("Reading: " + ("the pool phase took no longer than its slowest member: fanning out cost nothing extra. "
                     if ratio < 1.05 else
                     f"the pool phase took {ratio:.2f}x its slowest member: members waited for each other (on a CPU "
                     "they share the cores). ")
      + f"The judge took {result.judge_wall_s / pool_wall:.1f}x as long as the pool phase: fusion's latency is the "
        "slowest member plus the judge, whatever the pool size.")

# %%
from workbench.render import plots

plots.run_timeline(result)

# %% [markdown]
# **How to read the timeline.** Member bars overlap when the members run side by side (batched into one call here:
# they share one model); the judge's bar starts after the last member ends. Shortening the pool phase means
# shortening the slowest member; the judge's bar is the price of fusion.

# %%
plots.tokens_and_cost(result)

# %% [markdown]
# **How to read it.** Prompt and completion tokens per member and for the judge. The judge's prompt holds every
# member's answer, so it grows with the pool size and the answers' length; in merge mode it also writes a new
# answer. Dollars show in the hover only when an API reports a cost: a local model such as SmolLM2 costs time, not
# money.

# %% [markdown]
# ## Tokens per correct answer
#
# On a small evaluation: each system's tokens (and cost, when the API reports it; local models have none) divided by
# its correct answers.

# %%
from workbench.eval import metrics

df = wb.evaluate(DATASET, [PRESET, f"{PRESET}:skeptic"], judge=PRESET, modes=["best-of", "vote"],
                 limit=ITEMS, max_new_tokens=TOKENS, judge_max_new_tokens=JUDGE_TOKENS, seed=0)
acc = metrics.accuracy_table(df)
print("Finding: tokens per correct answer: " + ", ".join(
    f"{r.system} {r.tokens_per_correct:.0f}" for r in acc.itertuples() if r.kind != "oracle"))
acc[["system", "accuracy", "tokens", "tokens_per_correct", "cost_per_correct", "mean_latency_s"]]

# %%
scored = acc[(acc["kind"] != "oracle") & (acc["accuracy"] > 0)]
if scored.empty:
    print("Reading: no system answered an item right, so every cost per correct answer is infinite (inf): "
          "nothing to compare on these items.")
else:
    cheap = scored.loc[scored["tokens_per_correct"].idxmin()]
    print(f"Reading: the cheapest right answers came from {cheap['system']} ({cheap['tokens_per_correct']:.0f} tokens "
          f"each). A fused system spends its members' tokens and the judge's, so it pays off only when its accuracy "
          f"rises more than its tokens do" + ("; a system with no right answer shows inf." if
                                               (acc["accuracy"] == 0).any() else "."))

# %%
plots.accuracy_vs_cost(acc)

# %% [markdown]
# **How to read it.** Each point is a system: to the right is more tokens per item, up is more accurate. A fused
# system sits to the right of its members by construction; it is worth its tokens only if it also sits higher by
# more than the intervals of notebook 02 leave to chance. Up and to the left is better on both counts.

# %%
# The numbers above, checked (the test suite runs this notebook): the pool phase lasts at least as long as its
# slowest member, timings are ordered, and tokens per correct answer is tokens / correct answers.
assert pool_wall >= result.slowest_member_s - 1e-6 and result.judge_wall_s >= 0
assert all(0 <= o.start_s <= o.end_s for o in first if o.ok)
metrics.assert_consistent(df)
for _, r in acc.iterrows():
    right = round(r["accuracy"] * r["n"])
    assert r["tokens_per_correct"] == (r["tokens"] / right if right else float("inf"))
print("consistent")
