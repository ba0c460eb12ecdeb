"""An evaluation as files: the tidy table (parquet when pyarrow is there, else CSV) and an HTML report."""

from __future__ import annotations

import html
from pathlib import Path

from .. import plots
from . import metrics
from .metrics import metric_lines


def figures(df) -> dict:
    """The evaluation figures, by name (shared by the report, the UI and the notebooks)."""
    s = metrics.summary(df)
    figs = {"accuracy": plots.accuracy_ci(s["accuracy"]), "accuracy_vs_cost": plots.accuracy_vs_cost(s["accuracy"]),
            "judge": plots.regret_and_damage(s["regret"], s["merge_damage"], s["position_flips"], s["injection"]),
            "latency": plots.latency_by_system(df)}
    if len(s["debate"]):
        figs["debate"] = plots.debate_flips(s["debate"])
    return figs


def write(df, out_dir: str | Path) -> dict[str, Path]:
    """Write results (parquet or CSV) and report.html to ``out_dir``; return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    try:
        import pyarrow  # noqa: F401

        paths["table"] = out / "results.parquet"
        df.to_parquet(paths["table"])
    except ImportError:
        paths["table"] = out / "results.csv"
        df.to_csv(paths["table"], index=False)
    s = metrics.summary(df)
    parts = [f"<h1>Evaluation {html.escape(str(df.attrs.get('dataset', '')))}</h1>",
             f"<p>pool: {html.escape(', '.join(df.attrs.get('pool', [])))}; judge: "
             f"{html.escape(str(df.attrs.get('judge')))}; best single member: {html.escape(str(s['best_member']))}</p>",
             "<h2>Accuracy</h2>", s["accuracy"].to_html(index=False, float_format=lambda x: f"{x:.3f}"),
             "<h2>Fused vs the best single member (paired)</h2>",
             s["paired"].to_html(index=False, float_format=lambda x: f"{x:.3f}"),
             "<h2>Judge</h2>", s["regret"].to_html(index=False, float_format=lambda x: f"{x:.3f}"),
             "<ul>" + "".join(f"<li>{html.escape(x[2:])}</li>" for x in metric_lines(s)) + "</ul>"]
    first = True
    for name, fig in figures(df).items():
        parts.append(fig.to_html(full_html=False, include_plotlyjs=True if first else False, div_id=f"fig-{name}"))
        first = False
    paths["report"] = out / "report.html"
    paths["report"].write_text("<!doctype html><html><head><meta charset='utf-8'><title>Fusion evaluation</title>"
                               "</head><body>" + "\n".join(parts) + "</body></html>")
    return paths
