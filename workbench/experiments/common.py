"""What every instrument returns, and the paired comparison they all report."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..answers import extract_answer
from ..errors import ConfigError
from ..eval.harness import run_sync  # noqa: F401  (re-exported for the instruments)
from ..stats import mean_interval, paired_binary


@dataclass
class Experiment:
    """One instrument's result."""

    name: str  #: the instrument
    frame: pd.DataFrame  #: tidy rows (what the figure shows)
    figure: Any  #: a plotly Figure
    summary: dict[str, Any] = field(default_factory=dict)  #: headline numbers, with CIs and p-values
    judge_calls: int = 0  #: judge calls the instrument made (0: it read cached answers only)
    details: pd.DataFrame | None = None  #: finer rows where the instrument has them (every ordering's verdict...)


def paired(a: np.ndarray, b: np.ndarray, level: float = 0.95) -> dict[str, Any]:
    """``a`` against ``b`` on the same items: the mean difference and its 95 % interval. Right/wrong answers
    (1/0): ``stats.paired_binary`` (Agresti-Min interval, the discordant items and the exact McNemar p-value);
    other numbers: Student's t interval of the per-item differences."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) and np.isin(np.concatenate([a, b]), (0.0, 1.0)).all():
        return paired_binary(a, b, level)
    diff, lo, hi = mean_interval(a - b, level)
    return dict(n=len(a), diff=diff, ci_low=lo, ci_high=hi)


def mean_ci(values: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high) over items: ``stats.mean_interval`` (Wilson for right/wrong, else Student's t)."""
    return mean_interval(values, level)


def scored(value) -> bool:
    """A ``correct`` cell that holds a verdict: not None, and not NaN (what a frame read back from CSV holds where
    an answer could not be scored; ``bool(nan)`` is True, so NaN must never reach a truth test)."""
    return value is not None and not (isinstance(value, float) and value != value)


def member_table(df: pd.DataFrame) -> pd.DataFrame:
    """Member rows of an evaluation frame, one per item x member, in pool order, with ``ok`` (the member
    answered: not failed, not skipped for an image it cannot see), ``key`` (its answer as the vote mode keys it: ``answers.extract_answer`` of the reply, so members
    that agree in different words share a key; "" when none), ``scored`` (its answer could be scored) and
    ``correct`` (False where it could not)."""
    systems = df.attrs.get("member_systems") or sorted(s for s in df["system"].unique() if s.startswith("member:"))
    m = df[df["system"].isin(systems)].copy()
    m["order"] = m["system"].map({s: i for i, s in enumerate(systems)})
    m["ok"] = ~m["explanation"].astype(str).str.match(r"(?:failed|skipped):") if "explanation" in m else True
    m["key"] = [extract_answer(a) if ok else "" for a, ok in zip(m["answer"].fillna("").astype(str), m["ok"])] \
        if "answer" in m else ""
    m["scored"] = m["correct"].map(scored)
    m["correct"] = m["correct"].map(lambda c: bool(c) if scored(c) else False)
    return m.sort_values(["item_id", "order"]).reset_index(drop=True)


def dataset_items(df: pd.DataFrame, dataset: Any = None) -> dict[str, Any]:
    """The evaluation's items by id (their prompts, for instruments that ask the judge again).

    ``dataset``: what the evaluation ran on (a name, a JSONL path or a Dataset); default the frame's own
    (built-in datasets are regenerated from the evaluation's seed)."""
    from ..eval.datasets import TABLE_SCHEMES, Dataset, load_dataset

    ids = list(dict.fromkeys(df["item_id"]))
    spec = dataset if dataset is not None else df.attrs.get("dataset")
    if spec is None:
        raise ConfigError("which dataset did this evaluation run on? pass dataset=")
    if isinstance(spec, Dataset):
        ds = spec
    elif str(spec).startswith("builtin:"):
        ds = load_dataset(str(spec), limit=max(len(ids), 20), seed=int(df.attrs.get("seed", 0) or 0))
    elif str(spec).startswith(TABLE_SCHEMES):  # the rows the evaluation took, in order
        ds = load_dataset(str(spec), limit=len(ids) + len(df.attrs.get("skipped") or []))
    else:
        ds = load_dataset(str(spec))
    by_id = {i.id: i for i in ds.items}
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise ConfigError(f"{len(missing)} item(s) of the evaluation are not in {ds.name} (e.g. {missing[0]!r}): "
                          "pass the dataset it ran on")
    return by_id
