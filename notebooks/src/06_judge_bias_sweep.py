# %% [markdown]
# # Judge bias sweep: every ordering of the same answers
#
# MT-Bench found its GPT-4 judge changed 12.9% of pairwise verdicts when the answers swapped places. Here the judge
# sees the same cached member answers in **every ordering** (3 answers: 6 orderings), each time under shuffled
# labels, so that a preference for a place and one for a letter can be told apart. An unbiased judge picks each
# place and each label a third of the time, the same answer in every ordering, and ranks the answers the same way
# (Kendall's tau 1). Then a **name probe** (letters, the members' true names, the names swapped between answers) and
# **self-preference** (the judge is also the first member).

# %% [markdown]
# **About the stored outputs.** This notebook is committed executed, on SmolLM2-135M-Instruct offline
# (`smol-offline`, a 2-core CPU) at the test run's small sizes: 3 items, answers cut at 40 tokens
# (`scripts/make_notebooks.py --execute`). A 135M model is weak: it gets easy arithmetic right now and then, and as
# a judge it mostly picks by position. Read the stored numbers as a demonstration of the method (what each number
# means, how to tell evidence from noise), not as findings about fusion. The *Reading* lines are printed from the
# numbers, so they stay right when you re-execute with a stronger model or more items (`WORKBENCH_NB_ITEMS=50`).

# %%
# the setup cell: notebooks/src/_setup.py, written out here in the notebook
from _setup import os, wb, CPU, DATASET, ITEMS, JUDGE_TOKENS, PRESET, TOKENS

# %%
from workbench import experiments as X

pool = [PRESET, f"{PRESET}:skeptic", f"{PRESET}:analyst"]
df = wb.evaluate(DATASET, pool, judge=PRESET, modes=["vote", "best-of", "debate"], limit=ITEMS,
                 rounds=2, max_new_tokens=TOKENS, judge_max_new_tokens=JUDGE_TOKENS, seed=0)
# the answers are cached (notebook 05 made them); the sweep asks only the judge, on a few items
SWEEP_ITEMS = int(os.environ.get("WORKBENCH_NB_SWEEP_ITEMS", 3 if CPU else 20))  # 6 judge calls per item
few = df[df["item_id"].isin(sorted(df["item_id"].unique())[:SWEEP_ITEMS])].copy()
few.attrs.update(df.attrs)
sweep = X.judge_bias_sweep(few, PRESET, max_orders=6, seed=0)
s = sweep.summary


def pct(x):  # a rate over nothing is nan: say so instead
    return "(not measured: nothing to count)" if x != x else f"{x:.0%}"


tau = s["kendall_tau"]
print(f"Finding ({PRESET} judging {PRESET}, {s['items']} items x 6 orderings, {sweep.judge_calls} judge calls): "
      f"{s['valid_verdicts']} of {s['orderings']} verdicts parsed; the pick changed with the ordering on "
      f"{pct(s['pick_changed_with_ordering'])} of items; the first place won {pct(s['position_1_win_rate'])} "
      "(no bias: 33%); " + (f"Kendall's tau between orderings {tau:.2f}." if tau == tau else
                             "Kendall's tau not measured: no two orderings ranked the answers (their scores tied)."))
npb = s.get("name_probe", {})
if "followed_the_name" in npb:
    print(f"Finding (names): with the members' true names instead of letters the pick changed on "
          f"{pct(npb['changed_with_true_names']['rate'])} of items; with the names swapped between answers on "
          f"{pct(npb['changed_with_swapped_names']['rate'])}, and it followed the name on "
          f"{pct(npb['followed_the_name']['rate'])}.")
if "self_preference" in s:
    sp = s["self_preference"]
    print(f"Finding (self-preference): the judge's own member (the same model, no persona) won {pct(sp['win_rate'])} of "
          f"verdicts (no preference: {sp['expected']:.0%}); " + (
              f"on the {sp['verdicts_where_it_was_wrong']} verdicts where it was wrong and another member right, it "
              f"still won {pct(sp['won_while_wrong'])}." if sp["verdicts_where_it_was_wrong"] else
              "whether it wins while wrong was not measured: in no verdict was it wrong and another member right."))
sweep.frame

# %%
sweep.figure

# %% [markdown]
# Bars far above the dotted line at one place (or one letter) are a positional (or label) preference; with a handful
# of items the intervals are wide, so a bar must clear the line by its whole interval before it says anything. Every
# ordering's verdict is in `sweep.details`.

# %%
pos = sweep.frame[sweep.frame["kind"] == "position"]
if not s["valid_verdicts"]:
    print("Reading: not measured: no ordering's verdict parsed.")
else:
    favoured = [f"place {r.key} ({r.win_rate:.0%}, CI {r.ci_low:.0%}-{r.ci_high:.0%})" for r in pos.itertuples()
                if r.ci_low > r.expected]
    print(f"Reading: {s['valid_verdicts']} verdicts on {s['items']} item(s). " + (
        f"The judge favours {', '.join(favoured)} beyond the no-bias share {1 / len(pos):.0%} by its whole interval: "
        "a position bias." if favoured else
        f"No place clears the no-bias share {1 / len(pos):.0%} by its whole interval: no evidence of a position bias.")
        + " The intervals are over the orderings of these few items: the judge's habit here, not in general.")

# %% [markdown]
# ## Is the judge's analysis grounded?
#
# Asked for an analysis instead of a verdict (consensus, contradictions, unique insights, blind spots, each quoting
# a member), does the judge quote what the members wrote? Every quote is checked against the answer it cites (fuzzy
# match, ratio >= 0.85: `workbench.experiments.analysis.THRESHOLD`).

# %%
GROUNDING_ITEMS = int(os.environ.get("WORKBENCH_NB_GROUNDING_ITEMS", 3 if CPU else 20))  # 1 judge call each
some = df[df["item_id"].isin(sorted(df["item_id"].unique())[:GROUNDING_ITEMS])].copy()
some.attrs.update(df.attrs)
g = X.grounding(some, PRESET)


def ci_words(lo, hi):
    """A 95% interval in words; none from one parsed analysis, or from analyses whose rates do not vary."""
    return f"95% CI {pct(lo)}-{pct(hi)}" if lo == lo else "no interval: too few analyses to give one"

gs = g.summary
print(f"Finding (grounding, {PRESET} as analyst, {gs['items']} items): {gs['analyses_parsed']} analyses parsed; "
      f"{gs['grounded_claims']} of {gs['quoted_claims']} quotes were found in the answer they cite "
      f"(per-item rate {pct(gs['grounding_rate'])}, {ci_words(*gs['grounding_rate_ci'])}); by kind: " + ", ".join(f"{k} {pct(v)}" for k, v in gs["by_kind"].items()) + ".")
from IPython.display import Markdown
Markdown("\n\n".join(f"#### {r.item_id}\n{r.markdown}" for r in g.details.itertuples() if r.parsed))

# %% [markdown]
# Quotes marked ⚠ were not found in the answer of the member they are attributed to: an analyst that invents or
# misattributes quotes is not to be trusted on what the members said, however fluent.

# %%
if not gs["quoted_claims"]:
    print(f"Reading: not measured: {gs['analyses_parsed']} analyses parsed and none quoted a member, so there is no "
          "quote to check.")
else:
    share = gs["grounded_claims"] / gs["quoted_claims"]
    print(f"Reading: {share:.0%} of the quotes were found in the answer they cite: " + (
        "most are invented or misattributed; do not trust this analyst's account of what the members said."
        if share < 0.5 else f"{1 - share:.0%} were not, so check every marked quote before trusting the analysis."
        if share < 0.9 else "nearly all are real; still check the marked ones before quoting the analysis."))

# %%
# The numbers above, checked (the test suite runs this notebook): each valid verdict has one winner, so the win
# rates by place (and by label) sum to 1; every ordering of every item was asked; a quote is grounded exactly when
# its match reaches the threshold.
r = sweep.frame
if s["valid_verdicts"]:
    assert abs(r[r["kind"] == "position"]["win_rate"].sum() - 1) < 1e-9
    assert abs(r[r["kind"] == "label"]["win_rate"].sum() - 1) < 1e-9
assert s["orderings"] == 6 * s["items"] and sweep.judge_calls >= s["orderings"]
assert 0 <= s["pick_changed_with_ordering"] <= 1
quoted = g.frame[g.frame["grounded"].notna()]
assert gs["grounded_claims"] == int(quoted["grounded"].sum()) <= gs["quoted_claims"] == len(quoted)
assert all((q["score"] >= 0.85) == q["grounded"] for _, q in quoted.iterrows())  # the documented threshold
print("consistent")
