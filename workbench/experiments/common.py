"""What every instrument returns, and the paired comparison they all report."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError
from ..eval.harness import run_sync  # noqa: F401  (re-exported for the instruments)
from ..eval.metrics import mcnemar_exact


@dataclass
class Experiment:
    """One instrument's result."""

    name: str  #: the instrument
    frame: pd.DataFrame  #: tidy rows (what the figure shows)
    figure: Any  #: a plotly Figure
    summary: dict[str, Any] = field(default_factory=dict)  #: headline numbers, with CIs and p-values
    judge_calls: int = 0  #: judge calls the instrument made (0: it read cached answers only)
    details: pd.DataFrame | None = None  #: finer rows where the instrument has them (every ordering's verdict...)


def paired(a: np.ndarray, b: np.ndarray, n_boot: int = 2000, ci: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """``a`` against ``b`` on the same items (1/0 or numbers): mean difference, a percentile bootstrap interval
    over items, and for right/wrong answers the discordant items and the exact McNemar p-value."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    n = len(a)
    if n == 0:
        return dict(n=0, diff=float("nan"), ci_low=float("nan"), ci_high=float("nan"))
    d = a - b
    rng = np.random.default_rng(seed)
    boot = d[rng.integers(0, n, size=(n_boot, n))].mean(axis=1)
    lo, hi = np.quantile(boot, [(1 - ci) / 2, 1 - (1 - ci) / 2])
    out = dict(n=n, diff=float(d.mean()), ci_low=float(lo), ci_high=float(hi))
    if set(np.unique(np.concatenate([a, b]))) <= {0.0, 1.0}:
        wins, losses = int((d > 0).sum()), int((d < 0).sum())
        out.update(wins=wins, losses=losses, mcnemar_p=mcnemar_exact(wins, losses))
    return out


def mean_ci(values: np.ndarray, n_boot: int = 2000, ci: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high): the mean with a percentile bootstrap interval over items."""
    v = np.asarray(values, dtype=float)
    if len(v) == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    boot = v[rng.integers(0, len(v), size=(n_boot, len(v)))].mean(axis=1)
    lo, hi = np.quantile(boot, [(1 - ci) / 2, 1 - (1 - ci) / 2])
    return float(v.mean()), float(lo), float(hi)


def member_table(df: pd.DataFrame) -> pd.DataFrame:
    """Member rows of an evaluation frame, one per item x member, in pool order, with ``ok`` (the member
    answered) and ``key`` (its normalised extracted answer; "" when none)."""
    systems = df.attrs.get("member_systems") or sorted(s for s in df["system"].unique() if s.startswith("member:"))
    m = df[df["system"].isin(systems)].copy()
    m["order"] = m["system"].map({s: i for i, s in enumerate(systems)})
    m["ok"] = ~m["explanation"].astype(str).str.startswith("failed:") if "explanation" in m else True
    m["key"] = m["extracted"].fillna("").astype(str).str.strip().str.lower() if "extracted" in m else ""
    m["correct"] = m["correct"].map(lambda c: bool(c) if c is not None and c == c else False)
    return m.sort_values(["item_id", "order"]).reset_index(drop=True)


def dataset_items(df: pd.DataFrame, dataset: Any = None) -> dict[str, Any]:
    """The evaluation's items by id (their prompts, for instruments that ask the judge again).

    ``dataset``: what the evaluation ran on (a name, a JSONL path or a Dataset); default the frame's own
    (built-in datasets are regenerated from the evaluation's seed)."""
    from ..eval.datasets import Dataset, load_dataset

    ids = list(dict.fromkeys(df["item_id"]))
    spec = dataset if dataset is not None else df.attrs.get("dataset")
    if spec is None:
        raise ConfigError("which dataset did this evaluation run on? pass dataset=")
    if isinstance(spec, Dataset):
        ds = spec
    elif str(spec).startswith("builtin:"):
        ds = load_dataset(str(spec), limit=max(len(ids), 20), seed=int(df.attrs.get("seed", 0) or 0))
    else:
        ds = load_dataset(str(spec))
    by_id = {i.id: i for i in ds.items}
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise ConfigError(f"{len(missing)} item(s) of the evaluation are not in {ds.name} (e.g. {missing[0]!r}): "
                          "pass the dataset it ran on")
    return by_id
