# %% [markdown]
# # Where does a fusion gain come from?
#
# Three instruments on one evaluation's **cached** member answers (no member answers twice):
#
# - **debate vs vote** ("Debate or Vote", 2025): does debating beat a plain majority vote over the answers the
#   debate started from? Per round: answers changed, right→wrong and wrong→right flips;
# - **agreement gate**: skip the judge when k of the n members already agree; what does each k cost and save?
# - **member attribution**: leave-one-out and exact Shapley values of each member's contribution to the pool's
#   accuracy (by majority vote on every subset of the cached answers: no model call).
#
# Every comparison is paired on the same items, with a bootstrap interval and an exact McNemar test.

# %% [markdown]
# **About the stored outputs.** This notebook is committed executed, on SmolLM2-135M-Instruct offline
# (`smol-offline`, a 2-core CPU) at the test run's small sizes: 3 items, answers cut at 40 tokens
# (`scripts/make_notebooks.py --execute`). A 135M model is weak: it gets easy arithmetic right now and then, and as
# a judge it mostly picks by position. Read the stored numbers as a demonstration of the method (what each number
# means, how to tell evidence from noise), not as findings about fusion. The *Reading* lines are printed from the
# numbers, so they stay right when you re-execute with a stronger model or more items (`WORKBENCH_NB_ITEMS=50`).

# %%
# the setup cell: notebooks/src/_setup.py, written out here in the notebook
from _setup import os, wb, DATASET, ITEMS, JUDGE_TOKENS, PRESET, TOKENS

# %%
from workbench import experiments as X

pool = [PRESET, f"{PRESET}:skeptic", f"{PRESET}:analyst"]
df = wb.evaluate(DATASET, pool, judge=PRESET, modes=["vote", "best-of", "debate"], limit=ITEMS,
                 rounds=2, max_new_tokens=TOKENS, judge_max_new_tokens=JUDGE_TOKENS, seed=0)
dv = X.debate_vs_vote(df)
s, c = dv.summary, dv.summary["debate_minus_vote"]
print(f"Finding ({DATASET}, {s['items']} items, {PRESET}): debate {s['debate_accuracy']:.0%}, a majority vote "
      f"over the round-1 answers {s['vote_round1_accuracy']:.0%}: debate minus vote {c['diff']:+.0%} "
      f"(95% CI {c['ci_low']:+.0%} to {c['ci_high']:+.0%}, McNemar p = {c['mcnemar_p']:.2f}); "
      f"{s['flips_wrong_to_right']} wrong->right and {s['flips_right_to_wrong']} right->wrong flips.")
dv.frame

# %%
dv.figure

# %% [markdown]
# Read the figure as: the line is how often the members were right in each round; the dotted line is what a vote
# over round 1 already gets, the dashed line what debate's judge ends with. When the interval of debate minus vote
# includes 0, the extra rounds bought nothing the vote did not have.

# %%
from workbench.eval.report import interval_reading

rw, wr = s["flips_right_to_wrong"], s["flips_wrong_to_right"]
print(f"Reading: debate minus vote {c['diff']:+.0%}; "
      f"{interval_reading(c['ci_low'], c['ci_high'], c.get('mcnemar_p'), c.get('n'))}. " + (
    "No member moved between a right and a wrong answer after round 1." if rw + wr == 0 else
    f"Debate talked members out of right answers more often than into them ({rw} right->wrong, {wr} wrong->right)."
    if rw > wr else f"Debate moved members into right answers as often as out of them ({rw} each way)." if rw == wr
    else f"More members moved to a right answer than away from one ({wr} wrong->right, {rw} right->wrong)."))

# %%
gate = X.agreement_gate(df, mode="best-of")
print("Finding (agreement gate): " + "; ".join(
    f"{r.label}: accuracy {r.accuracy:.0%} ({r.ci_low:.0%}-{r.ci_high:.0%}), {r.mean_tokens:.0f} tokens, "
    f"judge skipped on {r.judge_skipped} of {r.items}" for r in gate.frame.itertuples()))
gate.frame

# %%
gate.figure

# %% [markdown]
# Each point is a threshold k; blue points are on the Pareto front (no other threshold is both more accurate and
# cheaper). "never skip" is the judged baseline; a threshold to its left at the same height saves the judge's tokens
# at no cost in accuracy.

# %%
judged = gate.frame.iloc[-1]  # "never skip"
saving = gate.frame[(gate.frame["accuracy"] >= judged["accuracy"]) & (gate.frame["mean_tokens"] < judged["mean_tokens"])]
if saving.empty:
    print("Reading: every threshold that skips the judge lost accuracy on these items (or saved nothing): "
          "here the judge earned its tokens.")
else:
    k = saving.sort_values("mean_tokens").iloc[0]
    rule = ("never calling the judge (the members' most common answer every time)" if k["judge_skipped"] == k["items"]
            else f"taking the members' most common answer without the judge when at least {k['label']} gave it")
    print(f"Reading: {rule} kept the judged accuracy ({judged['accuracy']:.0%}) at "
          f"{k['mean_tokens'] / judged['mean_tokens']:.0%} of its tokens on these {int(judged['items'])} items: here "
          "the judge added nothing over the members' own agreement. With few items that is a hint to test on more, "
          "not yet a setting to trust.")

# %%
attr = X.member_attribution(df)
print("Finding (attribution, majority vote): " + "; ".join(
    f"{r.member} Shapley {r.shapley:+.2f} ({r.shapley_ci_low:+.2f} to {r.shapley_ci_high:+.2f}), "
    f"leave-one-out {r.leave_one_out:+.2f}" for r in attr.frame.itertuples())
    + f"; they sum to the pool's vote accuracy {attr.summary['pool_accuracy']:.0%}.")
attr.frame

# %%
attr.figure

# %% [markdown]
# A member whose Shapley value is near 0 adds nothing the others do not already give; a negative leave-one-out means
# the pool votes better without it. With few items the intervals are wide: read them before the point estimates.

# %%
clear = [f"{r.member} ({r.shapley_ci_low:+.2f} to {r.shapley_ci_high:+.2f})" for r in attr.frame.itertuples()
         if r.shapley_ci_low > 0 or r.shapley_ci_high < 0]
print("Reading: " + (f"these members' Shapley intervals exclude 0: {', '.join(clear)}; the vote is better (or "
                     "worse, for a negative one) with them on items like these"
                     + (f" (over only {attr.summary['items']} items: a hint, not evidence)."
                        if attr.summary["items"] < 10 else ".") if clear else
                     "no member's Shapley interval excludes 0: on these items no member's contribution can be told "
                     "from noise."))

# %% [markdown]
# ## Diversity or synthesis?
#
# OpenRouter estimated that about three quarters of its fusion gain came from synthesis and one quarter from
# diversity; Self-MoA found that sampling one good model beat mixing models. Here: the pool's fused accuracy against
# k samples of its own best member, and k samples of the judge's model, each fused the same way (same k, limits and
# items; their tokens per item shown).

# %%
ABLATION_ITEMS = int(os.environ.get("WORKBENCH_NB_ABLATION_ITEMS", ITEMS))
abl = X.cost_matched_ablation(DATASET, pool, PRESET, mode="best-of", limit=ABLATION_ITEMS,
                              settings=wb.FusionSettings(seed=0, max_new_tokens=TOKENS, judge_max_new_tokens=JUDGE_TOKENS))
a = abl.summary
print(f"Finding (cost-matched ablation, {a['items']} items, best member {a['best_member']}): total gain of the fused "
      f"pool over it {a['total_gain']['diff']:+.0%} (CI {a['total_gain']['ci_low']:+.0%} to {a['total_gain']['ci_high']:+.0%}); "
      f"synthesis {a['synthesis']['diff']:+.0%} (CI {a['synthesis']['ci_low']:+.0%} to {a['synthesis']['ci_high']:+.0%}, "
      f"p = {a['synthesis']['mcnemar_p']:.2f}); diversity {a['diversity']['diff']:+.0%} (CI {a['diversity']['ci_low']:+.0%} "
      f"to {a['diversity']['ci_high']:+.0%}, p = {a['diversity']['mcnemar_p']:.2f}).")
abl.frame

# %%
abl.figure

# %% [markdown]
# The split is exact by construction (total = synthesis + diversity); what matters is whether either part's interval
# excludes 0. Here every arm samples the same small model, so "diversity" is only the diversity of personas and
# temperatures; a pool of different models is the real test.

# %%
for part in ("total_gain", "synthesis", "diversity"):
    x = a[part]
    print(f"Reading ({part.replace('_', ' ')}): {x['diff']:+.0%}; "
          f"{interval_reading(x['ci_low'], x['ci_high'], x.get('mcnemar_p'), x.get('n'))}.")

# %%
# The numbers above, checked against each other (the test suite runs this notebook).
from workbench.eval import metrics

metrics.assert_consistent(df)
acc = metrics.accuracy_table(df).set_index("system")
if s["items"] == acc.loc["fusion:vote", "n"]:  # the same vote, on the same items
    assert abs(s["vote_round1_accuracy"] - acc.loc["fusion:vote", "accuracy"]) < 1e-12
assert attr.summary["efficiency_gap"] < 1e-9  # Shapley values sum to the pool's value
g = gate.frame
assert list(g["judge_skipped"]) == sorted(g["judge_skipped"], reverse=True)  # a higher k skips less
if g.iloc[-1]["items"] == acc.loc["fusion:best-of", "n"]:  # "never skip" is the judged best-of
    assert abs(g.iloc[-1]["accuracy"] - acc.loc["fusion:best-of", "accuracy"]) < 1e-12
assert all(e.judge_calls == 0 for e in (dv, gate, attr))  # all from cached answers
from workbench.experiments.ablation import split_check
assert split_check(abl) < 1e-12 and a["total_gain"]["diff"] >= -1 and len(abl.frame) == 4
print("consistent")
