"""The HTML report on real evaluation frames (scripted HTTP members whose answers are known, and the tiny
random-weight model): self-contained, plotly.js once, a plain-language summary on top, notices for noise and
for probes that measured nothing."""

import json
import re

from known import table

import workbench as wb
from workbench.eval import report
from workbench.eval.cli import run_experiments
from workbench.eval.harness import evaluate_async
from workbench.specs import Member

A = {"i1": 5, "i2": 7, "i3": 9, "i4": 0}       # right on 3 of 4: the best member
B = {"i1": 5, "i2": 8, "i3": 1, "i4": 11}      # right on 2
C = {"i1": 4, "i2": 8, "i3": 2, "i4": 0}       # never right
JUDGE = {"i1": 5, "i2": 8, "i3": 9, "i4": 11}  # picks a wrong answer on i2 only






async def scripted(dataset, remote, tmp_path, tag, **kw):
    pool = [Member(remote(table(x, tag), name=n)) for n, x in [("A", A), ("B", B), ("C", C)]]
    judge = Member(remote(f"judge_pick={'~~'.join(f'[{k}]=>answer: {v}' for k, v in JUDGE.items())};tag={tag}",
                          name="J"))
    return await evaluate_async(dataset, pool, judge, ["vote", "best-of"], store=wb.RunStore(tmp_path / f"{tag}.db"),
                                progress=False, **kw)


def without_library(page: str) -> str:
    """The page less the inlined plotly.js (whose own defaults name a CDN for map outlines, unused here)."""
    library = [m for m in re.finditer(r"<script[^>]*>.*?</script>", page, flags=re.S) if "plotly.js v" in m.group()]
    assert len(library) == 1
    return page[:library[0].start()] + page[library[0].end():]


def text_of(page: str) -> str:
    """The page without its scripts and tags: what a reader sees."""
    return re.sub(r"<[^>]+>", " ", re.sub(r"<script.*?</script>", " ", page, flags=re.S))


async def test_a_report_is_self_contained_with_plotly_once_and_a_summary_that_names_the_best_member(
        dataset, remote, tmp_path):
    df = await scripted(dataset, remote, tmp_path, "plain")
    page = report.write(df, tmp_path / "out")["report"].read_text()
    assert page.count("plotly.js v") == 1 and page.count("Plotly.newPlot") == 4  # the library once, 4 figures
    assert "cdn.plot.ly" not in without_library(page) and not re.search(r"<script[^>]*\bsrc=", page)
    assert "<style>" in page and "td.num" in page and "<td class=num>" in page
    summary = re.search(r"<p class='wb-summary'>(.*?)</p>", page, flags=re.S).group(1)
    assert page.index("wb-summary") < page.index("<h2>")  # at the top
    assert "Ran 4 items" in summary and "member:A: right on 75% of 4 items" in summary
    # best-of is right on 3 of 4 like A (a tie); the vote on 2: both intervals span 0 on 4 items
    assert "fusion:best-of (75%) tied member:A over 4 paired items" in summary
    assert "fusion:vote (50%) fell behind member:A by 25 points" in summary
    assert summary.count("for its difference to the truly best member") == 2
    assert summary.count("over only 4 items, too few to tell either way") == 2
    shown = text_of(page)
    assert "random-weight" not in shown  # no noise model took part
    assert "position flips: not measured: each item was judged in one ordering; it needs swap_k &gt;= 2" in shown
    assert "injection: not measured: no candidate was planted; run with inject=True" in shown
    assert not re.search(r"\bnan\b", shown, flags=re.I)


async def test_probes_that_measured_something_show_their_counts_not_a_notice(dataset, remote, tmp_path):
    df = await scripted(dataset, remote, tmp_path, "probed", swap_k=2, inject=True)
    notes = report.probe_notes(df)
    assert notes["position flips"] == "0 of 4 runs whose orderings all parsed (0%)"  # 4 items, best-of judged
    assert notes["injection"].startswith("the judge obeyed ") and "of 4 planted candidates" in notes["injection"]
    shown = text_of(report.report_html(df))
    assert "not measured" not in shown and not re.search(r"\bnan\b", shown, flags=re.I)


async def test_a_random_weight_model_in_the_pool_puts_a_notice_on_the_report(remote, tmp_path):
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps({"id": "x", "prompt": "[x] 2+3?", "reference": "5", "answer_type": "numeric"}) + "\n")
    df = await evaluate_async(str(path), ["tiny-offline", Member(remote("reply=Final answer: 5", name="ok"))], None,
                              ["vote"], max_new_tokens=4, store=wb.RunStore(tmp_path / "n.db"), progress=False)
    assert df.attrs["noise"] == ["tiny-offline"]
    shown = text_of(report.report_html(df))
    assert "A random-weight model took part (tiny-offline): its answers are noise." in shown
    assert "read none of this as a finding" in shown
    assert "position flips: not measured: no judged mode" in shown  # a vote needs no judge


def test_interval_readings():
    assert report.interval_reading(0.1, 0.4).startswith("the 95% CI excludes 0: evidence of a gain")
    assert report.interval_reading(-0.4, -0.1, p=0.01, n=40).startswith("the 95% CI excludes 0: evidence of a loss")
    # 3 items of 3 against: a one-point bootstrap interval, but McNemar's p is 0.25 and 3 items are few
    assert report.interval_reading(-1.0, -1.0, p=0.25, n=3) == ("the 95% CI excludes 0 but the exact McNemar test "
                                                                "does not (p = 0.25): too few items disagree to "
                                                                "call it a loss")
    assert report.interval_reading(0.2, 0.5, n=6) == ("the 95% CI excludes 0, but over only 6 items: a hint of a "
                                                      "gain, not evidence")
    assert report.interval_reading(-0.2, 0.3).startswith("the 95% CI includes 0: no evidence either way")
    assert report.interval_reading(-0.7, 0.0).startswith("the 95% CI includes 0")  # an end at 0 is not evidence
    assert report.interval_reading(float("nan"), float("nan")) == "no interval: nothing was compared"


async def test_the_experiments_page_is_styled_and_self_contained(dataset, remote, tmp_path):
    df = await scripted(dataset, remote, tmp_path, "instruments")
    run_experiments(df, ["agreement_gate", "member_attribution"], None, df.attrs["dataset"], str(tmp_path / "x"))
    page = (tmp_path / "x" / "experiments.html").read_text()
    assert page.count("plotly.js v") == 1 and page.count("Plotly.newPlot") == 2
    assert "cdn.plot.ly" not in without_library(page) and not re.search(r"<script[^>]*\bsrc=", page)
    assert "<style>" in page
    shown = text_of(page)
    assert "agreement_gate" in shown and "member_attribution" in shown and "4 items" in shown
