# %% [markdown]
# # Self-consistency and fusion modes vs single members
#
# Does fusion beat a single member? Five members sample the same model at temperature 0.8; we compare one sample
# with a **majority vote** over the five (self-consistency) and with a judge's **best-of**, on the same items, with
# bootstrap confidence intervals. The interval for "vs the best member" re-selects the best member in every resample
# (choosing it on the same items flatters it), and McNemar's exact test checks the paired difference.

# %% [markdown]
# **About the stored outputs.** This notebook is committed executed, on SmolLM2-135M-Instruct offline
# (`smol-offline`, a 2-core CPU) at the test run's small sizes: 3 items, answers cut at 40 tokens
# (`scripts/make_notebooks.py --execute`). A 135M model is weak: it gets easy arithmetic right now and then, and as
# a judge it mostly picks by position. Read the stored numbers as a demonstration of the method (what each number
# means, how to tell evidence from noise), not as findings about fusion. The *Reading* lines are printed from the
# numbers, so they stay right when you re-execute with a stronger model or more items (`WORKBENCH_NB_ITEMS=50`).

# %%
# the setup cell: notebooks/src/_setup.py, written out here in the notebook
from _setup import wb, DATASET, ITEMS, JUDGE_TOKENS, PRESET, SPEC, TOKENS

# %%
pool = [wb.Member(SPEC, temperature=0.8, display_name=f"sample {i}") for i in range(1, 6)]
df = wb.evaluate(DATASET, pool, judge=PRESET, modes=["vote", "best-of"], limit=ITEMS,
                 max_new_tokens=TOKENS, judge_max_new_tokens=JUDGE_TOKENS, seed=0)
df[["item_id", "system", "correct", "extracted", "latency_s", "tokens"]].head(12)

# %% [markdown]
# **How to read it.** The evaluation is one tidy table, one row per item x system: each sample (`member:sample N`),
# the oracle (is *any* sample right?) and each fusion mode. `extracted` is the answer the scorer pulled out of the
# text and `correct` its verdict against the reference. Every number below is computed from this table, so a
# surprising number can be traced to its rows here.

# %% [markdown]
# ## Accuracy per system
#
# Members in blue, the oracle (is *any* sample right?) in grey, fusion in orange; the whiskers are 95% bootstrap
# intervals.

# %%
from workbench.render import plots
from workbench.eval import metrics

acc = metrics.accuracy_table(df)
plots.accuracy_ci(acc)

# %% [markdown]
# **How to read it.** Each bar is a system's accuracy on the same items; the whisker is where the accuracy could
# plausibly be on other items like these. Bars whose whiskers overlap widely are not told apart by this many items:
# compare systems paired, item by item (next table), not by eye. The oracle is a ceiling, not a system: no way of
# choosing one sample's answer can beat it.

# %%
n = int(acc["n"].max())
width = float((acc["ci_high"] - acc["ci_low"]).mean())
print(f"Reading: {n} items, so one item moves an accuracy by {1 / n:.0%}; the intervals are {width:.0%} wide on average: "
      + ("too wide to rank these bars by eye." if width > 0.25 else "narrow enough that bars far apart are really apart."))

# %% [markdown]
# ## Paired against the best single member

# %%
metrics.paired_vs_best(df)

# %% [markdown]
# **How to read it.** `diff` is the system's accuracy minus the best sample's (`vs`) on the same items;
# `wins`/`losses` are the items where exactly one of the two was right, and McNemar's exact test asks whether those
# split more unevenly than chance. What would count as evidence that fusion helps: an interval that excludes 0 over
# enough items that the wins and losses number in the tens. An interval that includes 0 is no evidence either way,
# not evidence of no effect.

# %%
from workbench.eval.report import interval_reading

for r in metrics.paired_vs_best(df).itertuples():
    print(f"Reading: {r.system} minus {r.vs}: {r.diff:+.0%} over {r.n} items; "
          f"{interval_reading(r.ci_low, r.ci_high, r.mcnemar_p, r.n)}; "
          f"they disagree on {r.wins + r.losses} items (McNemar p = {r.mcnemar_p:.2f}).")

# %%
a = acc.set_index("system")
single = a.loc[[s for s in a.index if s.startswith("member:")], "accuracy"]
vote, best_of = a.loc["fusion:vote"], a.loc["fusion:best-of"]
p = metrics.paired_vs_best(df).set_index("system")
print(f"Finding ({DATASET}, {int(vote['n'])} items, {PRESET}): one sample is right {single.mean():.0%} of the time "
      f"on average (samples range {single.min():.0%}-{single.max():.0%}); a majority vote over {len(pool)} samples "
      f"{vote['accuracy']:.0%} (95% CI {vote['ci_low']:.0%}-{vote['ci_high']:.0%}); the judge's best-of "
      f"{best_of['accuracy']:.0%} ({best_of['ci_low']:.0%}-{best_of['ci_high']:.0%}); some sample right "
      f"{a.loc['oracle', 'accuracy']:.0%}. Vote vs the best sample: {p.loc['fusion:vote', 'diff']:+.0%} "
      f"(CI {p.loc['fusion:vote', 'ci_low']:+.0%} to {p.loc['fusion:vote', 'ci_high']:+.0%}, "
      f"McNemar p = {p.loc['fusion:vote', 'mcnemar_p']:.2f}).")
for line in metrics.metric_lines(metrics.summary(df)):
    print(line)
from workbench.eval import report
print("\nIn one paragraph (what the HTML report opens with):", report.summary_paragraph(df))

# %% [markdown]
# **What this can and cannot tell you.** All five samples are the same model at temperature 0.8. A majority vote
# helps when the right answer is the most common one among the samples (self-consistency); when most samples are
# wrong in different ways, the vote just lands on one of them. Best-of needs a judge that can tell a right answer
# from a wrong one; a 135M judge mostly cannot (notebook 03), so expect it near a random pick of one sample. On a
# handful of items neither difference can be told from noise: the run shows how to measure, a stronger model and
# `WORKBENCH_NB_ITEMS=50` or more give something to read.

# %%
# The tables above, checked against each other and their definitions (the test suite runs this notebook):
# accuracies and intervals in [0, 1], one row per item and system, the oracle right exactly where some member
# is and never below a member, flips counted over runs whose orderings all parsed, counts within denominators.
metrics.assert_consistent(df)
assert p.loc["oracle", "diff"] >= 0  # the oracle is never below the best member
assert single.max() <= a.loc["oracle", "accuracy"] + 1e-12
print("consistent")
