"""An evaluation as files: the tidy table (parquet when pyarrow is there, else CSV) and one HTML report.

The report reads top-down: a plain-language paragraph (what ran, the best single member, whether each fusion
mode beat it and whether its paired interval makes that evidence or noise), notices (a random-weight model took
part; a probe measured nothing, and why), then styled tables and the figures. It is one self-contained file:
a small inline stylesheet and plotly.js inlined once in the head, never per figure and never from a CDN.
``page`` is the same shell for the instruments' page (``workbench eval --experiment``).
"""

from __future__ import annotations

import html
import math
import numbers
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..stats import interval_reading

from ..render import plots
from ..fusion.modes import JUDGED_MODES
from ..stats import VS_BEST_METHOD
from . import metrics
from .metrics import metric_lines

CSS = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d2430;
       max-width: 1100px; margin: 2em auto; padding: 0 1.2em; }
h1 { font-size: 1.6em; margin-bottom: .2em; } h2 { font-size: 1.25em; margin-top: 1.8em; }
.wb-summary { font-size: 1.05em; background: #f4f7fb; border-left: 4px solid #4c78a8; padding: .8em 1em; }
.wb-notice { background: #fff4e5; border-left: 4px solid #e8a33d; padding: .6em 1em; margin: .6em 0; }
table { border-collapse: collapse; margin: .6em 0 1.2em; font-size: .92em; }
th, td { border: 1px solid #d0d7de; padding: .3em .65em; text-align: left; vertical-align: top; }
th { background: #eef1f4; } tbody tr:nth-child(even) { background: #f8f9fb; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: #f6f8fa; padding: .6em; overflow-x: auto; font-size: .85em; }
.muted { color: #5b6573; }
"""


def _num(x: Any) -> bool:
    return isinstance(x, numbers.Number) and not isinstance(x, (bool, np.bool_))


def _cell(x: Any, na: str) -> str:
    if x is None or x is pd.NA or (isinstance(x, float) and math.isnan(x)):
        return na
    if isinstance(x, float):
        return "∞" if math.isinf(x) else f"{x:.3f}"
    return html.escape(str(x))


def table_html(frame, na: str = "–") -> str:
    """A DataFrame as an HTML table: numbers right-aligned to 3 decimals, missing values as ``na``."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for rec in frame.itertuples(index=False):
        rows.append("<tr>" + "".join(f"<td{' class=num' if _num(x) else ''}>{_cell(x, na)}</td>"
                                     for x in rec) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def figure_html(fig, div_id: str) -> str:
    """One figure's div and script, without plotly.js (``page`` inlines it once)."""
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id)


def page(title: str, parts: list[str], with_plotly: bool = True) -> str:
    """A self-contained HTML page: the stylesheet, plotly.js once (when figures are in ``parts``), the parts."""
    js = ""
    if with_plotly:
        from plotly.offline import get_plotlyjs

        js = ("<script>window.PlotlyConfig = {MathJaxConfig: 'local'};</script>\n"
              f"<script type='text/javascript'>{get_plotlyjs()}</script>")
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'><style>{CSS}</style>{js}</head>"
            "<body>\n" + "\n".join(parts) + "\n</body></html>\n")


def noise_notice(df) -> str | None:
    """A sentence naming the random-weight models that took part (``df.attrs["noise"]``), or None."""
    noise = df.attrs.get("noise") or []
    if not noise:
        return None
    return (f"A random-weight model took part ({', '.join(noise)}): its answers are noise. These numbers exercise "
            "the pipeline; they say nothing about fusion.")


def environment_html(df) -> str:
    """The header block on what produced the frame (``df.attrs["environment"]``), and a notice when its rows came
    from different environments (``environment_differences``)."""
    from ..provenance import summary_lines

    esc = html.escape
    out = ""
    diffs = df.attrs.get("environment_differences") or []
    if diffs:
        out += ("<p class='wb-notice'>The rows of this evaluation came from different environments; compare with "
                "care: " + esc("; ".join(diffs[:12])) + ("; ..." if len(diffs) > 12 else "") + "</p>")
    lines = summary_lines(df.attrs.get("environment") or {})
    return out + ("<details class='wb-env'><summary>environment: " + esc(lines[0]) + "</summary><ul>"
                  + "".join(f"<li>{esc(x)}</li>" for x in lines[1:]) + "</ul></details>")


def summary_paragraph(df, s: dict | None = None) -> str:
    """One plain-language paragraph: what ran, the best single member, and whether each fusion mode beat it
    (and whether its paired interval makes that evidence or noise)."""
    s = s or metrics.summary(df)
    acc = s["accuracy"].set_index("system") if len(s["accuracy"]) else None
    items = int(df["item_id"].nunique()) if "item_id" in df else 0
    pool, judge = df.attrs.get("pool") or [], df.attrs.get("judge")
    text = [f"Ran {items} item{'s' * (items != 1)} of {df.attrs.get('dataset') or 'the dataset'} through "
            f"{len(pool)} pool member{'s' * (len(pool) != 1)} ({', '.join(pool) or 'unnamed'}), "
            + (f"with {judge} as the judge." if judge else "with no judge.")]
    best = s["best_member"]
    if acc is None or best is None:
        return " ".join(text + ["No member answer was scored, so there is nothing to compare."])
    b = acc.loc[best]
    text.append(f"The best single member was {best}: right on {b['accuracy']:.0%} of {int(b['n'])} items (95% CI "
                f"{b['ci_low']:.0%} to {b['ci_high']:.0%}; picked as best on these same items, which flatters it).")
    fused = s["paired"][s["paired"]["system"] != "oracle"] if len(s["paired"]) else s["paired"]
    if not len(fused):
        text.append("No fusion mode was scored against it.")
    for r in fused.itertuples() if len(fused) else ():
        if r.vs is None:
            text.append(f"{r.system} could not be compared: no item where it and every member were scored.")
            continue
        verb = ("was ahead of" if r.diff > 0 else "fell behind" if r.diff < 0 else "tied")
        gap = f" by {abs(r.diff) * 100:.0f} points" if r.diff else ""
        text.append(f"{r.system} ({acc.loc[r.system, 'accuracy']:.0%}) {verb} {r.vs}{gap} over {r.n} paired items; "
                    f"for its difference to the truly best member, "
                    f"{interval_reading(r.ci_low, r.ci_high, r.mcnemar_p, r.n)}"
                    + (f" ({r.left_out} items left out: some member's answer could not be scored)" if r.left_out
                       else "") + ".")
    if "oracle" in acc.index:
        text.append(f"Some member was right on {acc.loc['oracle', 'accuracy']:.0%} of items (the oracle): the most "
                    "any pick of one member's answer could reach.")
    if noise_notice(df):
        text.append("A random-weight model took part: read none of this as a finding.")
    return " ".join(text)


def _judged(df) -> bool:
    return "mode" in df and bool(df["mode"].isin(JUDGED_MODES).any())


def probe_notes(df, s: dict | None = None) -> dict[str, str]:
    """Each judge probe's result in words, or "not measured: <why>" where its rate would be nan."""
    s = s or metrics.summary(df)
    notes: dict[str, str] = {}
    for r in s["regret"].itertuples() if len(s["regret"]) else ():
        notes[f"judge regret, {r.system}"] = (
            f"{r.regrets} of {r.eligible} items some member got right ({r.regret_rate:.0%})" if r.eligible else
            "not measured: no item where some member was right (and the fused answer could be scored)")
    md = s["merge_damage"]
    if "system" in df and (df["system"] == "fusion:merge").any():
        notes["merge damage"] = (f"{md['damaged']} of {md['eligible']} items whose top candidate was right "
                                 f"({md['rate']:.0%})" if md["eligible"] else
                                 "not measured: no merge item whose top-scored candidate was right")
    pf = s["position_flips"]
    swap_k = df.attrs.get("swap_k")
    if pf["checked"]:
        notes["position flips"] = (f"{pf['flipped']} of {pf['checked']} runs whose orderings all parsed "
                                   f"({pf['rate']:.0%})" + (f"; {pf['note']}" if pf.get("note") else ""))
    elif not _judged(df):
        notes["position flips"] = "not measured: no judged mode (best-of, merge, debate) was run"
    elif pf["parse_failures"]:
        notes["position flips"] = (f"not measured: none of the {pf['parse_failures']} judged runs had every "
                                   "ordering's verdict parse")
    elif (swap_k if swap_k is not None else
          (df["swap_k"].fillna(0).max() if "swap_k" in df and len(df) else 1)) < 2:
        notes["position flips"] = ("not measured: each item was judged in one ordering; it needs swap_k >= 2 "
                                   "(swap_k=2 in Python, --swap-k 2 on the command line)")
    else:
        notes["position flips"] = "not measured: no judged run gave a verdict"
    inj = s["injection"]
    if inj["probes"]:
        notes["injection"] = (f"the judge obeyed {inj['obeyed']} of {inj['probes']} planted candidates "
                              f"({inj['rate']:.0%})")
    elif inj["no_verdict"]:
        notes["injection"] = (f"not measured: the judge gave no valid verdict on any of the {inj['no_verdict']} "
                              "planted candidates")
    else:
        notes["injection"] = ("not measured: no candidate was planted; run with inject=True "
                              "(--inject on the command line)")
    return notes


def figures(df) -> dict:
    """The evaluation figures, by name (shared by the report, the UI and the notebooks)."""
    s = metrics.summary(df)
    figs = {"accuracy": plots.accuracy_ci(s["accuracy"]), "accuracy_vs_cost": plots.accuracy_vs_cost(s["accuracy"]),
            "judge": plots.regret_and_damage(s["regret"], s["merge_damage"], s["position_flips"], s["injection"]),
            "latency": plots.latency_by_system(df)}
    if len(s["debate"]):
        figs["debate"] = plots.debate_flips(s["debate"])
    return figs


def report_html(df) -> str:
    """The evaluation report as one self-contained HTML page."""
    s = metrics.summary(df)
    esc = html.escape
    notes = probe_notes(df, s)
    notices = [n for n in [noise_notice(df)] if n]
    notices += [f"{name}: {text}" for name, text in notes.items() if text.startswith("not measured")]
    parts = [f"<h1>Evaluation: {esc(str(df.attrs.get('dataset', '')))}</h1>",
             f"<p class='wb-summary'>{esc(summary_paragraph(df, s))}</p>"]
    parts += [f"<p class='wb-notice'>{esc(n)}</p>" for n in notices]
    parts.append(environment_html(df))
    parts += [f"<p class='muted'>pool: {esc(', '.join(df.attrs.get('pool', [])))}; judge: "
              f"{esc(str(df.attrs.get('judge')))}; best single member: {esc(str(s['best_member']))}</p>",
              "<h2>Accuracy</h2>", table_html(s["accuracy"])]
    if len(s["paired"]):
        parts += ["<h2>Fused vs the best single member (paired)</h2>",
                  "<p class='muted'>diff: the system's accuracy minus that of the member that scored best on the "
                  "same items (vs; chosen on the items it is compared on, which flatters it). The interval is for the "
                  "difference to the truly best member: " + esc(VS_BEST_METHOD) + " (near_best: the members that "
                  "could be the best). left_out: items the system was scored on but some member was not.</p>",
                  table_html(s["paired"].drop(columns=["method"])),
                  # metric_lines starts with one line per paired row
                  "<ul>" + "".join(f"<li>{esc(x[2:])}</li>" for x in metric_lines(s)[:len(s["paired"])]) + "</ul>"]
    parts += ["<h2>Judge</h2>"]
    if len(s["regret"]):
        parts.append(table_html(s["regret"], na="not measured"))
    parts.append("<ul>" + "".join(f"<li><strong>{esc(k)}</strong>: {esc(v)}</li>" for k, v in notes.items())
                 + "</ul>")
    parts += ["<h2>Figures</h2>"] + [figure_html(fig, f"fig-{name}") for name, fig in figures(df).items()]
    return page("Fusion evaluation", parts)


def write(df, out_dir: str | Path) -> dict[str, Path]:
    """Write results (parquet or CSV) and report.html to ``out_dir``; return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    try:
        import pyarrow  # noqa: F401

        paths["table"] = out / "results.parquet"
        parquet_ready(df).to_parquet(paths["table"])
    except ImportError:
        paths["table"] = out / "results.csv"
        df.to_csv(paths["table"], index=False)
    paths["report"] = out / "report.html"
    paths["report"].write_text(report_html(df))
    return paths


def parquet_ready(df):
    """``df`` as parquet takes it: cells holding dicts or lists (e.g. ``truncated_chars``, often empty, which parquet
    cannot store) as JSON text, and the frame's attrs (kept in the file's metadata) as plain JSON values."""
    import json

    table = df.copy()
    for column in table.columns:
        nested = table[column].map(lambda v: isinstance(v, (dict, list, tuple)))
        if nested.any():
            table[column] = table[column].map(lambda v: json.dumps(v, default=str)
                                              if isinstance(v, (dict, list, tuple)) else v)
    table.attrs = json.loads(json.dumps(df.attrs, default=str))
    return table
