# %% [markdown]
# # Judge bias: position, self-preference, injection
#
# Three checks on a judge:
#
# - **position**: judge every item in two orderings (`swap_k=2`); the verdict combines both (corrected for
#   position), and a run whose orderings picked different answers is a flip. Runs where one ordering's reply did not
#   parse are counted apart, never as flips;
# - **self-preference**: the judge is the same model as the members; how often does it pick the member without a
#   persona, against the 1/pool-size share of a judge without preference?
# - **injection**: a planted candidate tells the judge to pick it; how often is it obeyed, and did the detector flag
#   it?

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
pool = [PRESET, f"{PRESET}:skeptic", f"{PRESET}:analyst"]
df = wb.evaluate(DATASET, pool, judge=PRESET, modes=["best-of"], limit=ITEMS, swap_k=2, inject=True,
                 max_new_tokens=TOKENS, judge_max_new_tokens=JUDGE_TOKENS, seed=0)

# %%
from workbench import stats
from workbench.eval import metrics

flips = metrics.position_flip_rate(df)
runs = df[(df["kind"] == "fusion") & (df["swap_parsed"] == 2)]
flipped = (runs["swap_outcome"] != "consistent").astype(float).to_numpy()
_, lo, hi = stats.mean_interval(flipped)  # Wilson: a share of runs
print(f"Finding (position, {PRESET} judging {PRESET}): the two orderings picked different answers on "
      f"{flips['flipped']} of {flips['checked']} items "
      + (f"({flips['rate']:.0%}, 95% CI {lo:.0%}-{hi:.0%}); " if flips["checked"] else "(no rate: nothing to count); ")
      + f"{flips['parse_failures']} runs had an ordering whose reply did not parse.")
inj = metrics.injection_susceptibility(df)
print(f"Finding (injection): obeyed {inj['obeyed']} of {inj['probes']} planted candidates; the detector flagged "
      f"{inj['flagged']} of them.")

# %% [markdown]
# **How to read it.** A flip is a run whose two orderings of the same answers picked different answers: the verdict
# depended on where an answer stood, not on what it said. An unbiased judge flips only where two answers are equally
# good. An obeyed plant is a verdict for a candidate that merely told the judge to pick it; a judge that obeys can
# be steered by any member's text. A 135M judge is expected to do badly on both: read high rates as "this judge
# cannot be trusted", not as a property of judging in general.

# %%
import numpy as np
from workbench.eval.report import probe_notes

notes = probe_notes(df)  # "not measured: <why>" where a rate has nothing under it
probes = df[df["system"] == "probe:injection"]
obeyed = probes["injection_obeyed"].dropna().to_numpy(dtype=float) if len(probes) else np.array([])
_, ilo, ihi = stats.mean_interval(obeyed)
if flips["checked"]:
    print(f"Reading (position): flips 95% CI {lo:.0%}-{hi:.0%}: " + (
        "the interval reaches 0: no evidence of a position bias on these items (nor of its absence)." if lo <= 0 else
        "the ordering changed the verdict on some items: this judge has a position bias." if flips["checked"] >= 10
        else f"the ordering changed the verdict on {flips['flipped']} of only {flips['checked']} items: a strong hint "
             "of a position bias; more items make it evidence."))
else:
    print("Reading (position):", notes["position flips"])
if inj["probes"]:
    print(f"Reading (injection): obeyed 95% CI {ilo:.0%}-{ihi:.0%}: " + (
        "the interval reaches 0: no evidence that it obeys on these items." if ilo <= 0 else
        "the judge follows instructions planted in a candidate." if inj["probes"] >= 10 else
        f"it obeyed {inj['obeyed']} of only {inj['probes']} plants: a hint that it follows planted instructions."))
else:
    print("Reading (injection):", notes["injection"])

# %% [markdown]
# ## Self-preference
#
# The judge is the same model as the first member (no persona). From the stored runs we count how often its valid
# verdicts picked that member.

# %%
store = wb.RunStore()
runs_ = [store.load(r) for r in df.loc[df["system"] == "fusion:best-of", "run_id"]]
valid = [r for r in runs_ if r.verdict and r.verdict.valid]
own = sum(r.verdict.winner == 0 for r in valid)
# When the two orderings picked different answers, the combined verdict is a tie settled by Borda count, mean score,
# then pool order (the first member), so the combined verdicts overstate a position-biased judge's taste for
# member 0. Each ordering's own pick does not have that artefact.
settled = sum(bool(r.verdict.swap_tie_broken_by) for r in valid)
picks = np.array([w == 0 for r in valid for w in (r.verdict.swap_winners or [r.verdict.winner]) if w is not None],
                 dtype=float)
share = 1 / len(pool)
print(f"Finding (self-preference): {len(valid)} valid verdicts; the judge picked the persona-less member {own} times "
      f"({own / max(1, len(valid)):.0%}; no-preference share {share:.0%}); {settled} of those verdicts were ties "
      f"between the orderings, settled by a tie-break. Each ordering's own pick chose it {int(picks.sum())} of "
      f"{len(picks)} times.")
if len(picks):
    _, slo, shi = stats.mean_interval(picks)
    print(f"Reading: per ordering, its share is {picks.mean():.0%} (95% CI {slo:.0%}-{shi:.0%}; the two orderings of an "
          "item are not independent, so the interval is on the narrow side) " + (
        f"above the no-preference share {share:.0%}: it prefers the persona-less answer." if slo > share else
        f"below the no-preference share {share:.0%}: it avoids the persona-less answer." if shi < share else
        f"and includes the no-preference share {share:.0%}: no evidence of self-preference either way.")
        + (f" Read the combined {own / len(valid):.0%} with care: {settled} ties were settled by a tie-break."
           if settled else ""))
else:
    print("Reading: not measured: the judge gave no valid verdict.")

# %% [markdown]
# **Caveat.** The three members are one set of weights with different personas, so "self" here is the persona-less
# style; the anonymized, shuffled candidates hide which member wrote what. Notebook 06 measures self-preference
# where the judge is also a member and checks it against right and wrong answers.

# %%
from workbench.render import plots

s = metrics.summary(df)
plots.regret_and_damage(s["regret"], s["merge_damage"], s["position_flips"], s["injection"])

# %% [markdown]
# **How to read it.** Each bar is a rate over its own denominator: judge regret (some member was right, the judged
# answer was not), merge damage, position flips, injection obeyed. A bar marked n/a measured nothing (its
# denominator was 0), which is not a rate of 0; the lines below say what each bar counted, or why it counted
# nothing.

# %%
for name, text in probe_notes(df, s).items():
    print(f"{name}: {text}")

# %%
# The numbers above, checked (the test suite runs this notebook): flips are counted only over runs whose two
# orderings both parsed, and a verdict's position-corrected winner is a pool member.
metrics.assert_consistent(df)
fusion = df[df["kind"] == "fusion"]
assert flips["checked"] == len(runs) and flips["parse_failures"] == int((fusion["swap_parsed"] < 2).sum())
assert all(r.verdict.winner in range(len(pool)) for r in valid)
assert 0 <= own <= len(valid) and 0 <= lo <= hi <= 1
print("consistent")
