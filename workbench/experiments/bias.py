"""What the judge does with the same candidates in other places and under other labels (MT-Bench's position
bias): the judge is asked again over permutations of one item's cached answers."""

from __future__ import annotations

import asyncio
import itertools
import random
from typing import Any

import numpy as np
import pandas as pd

from ..answers import letters
from ..errors import ConfigError
from ..records import MemberOutput
from .common import Experiment, dataset_items, mean_ci, member_table, run_sync


def kendall_tau(a: list[float], b: list[float]) -> float:
    """Kendall's tau-b between two score vectors over the same candidates (ties allowed); nan if undefined."""
    conc = disc = ties_a = ties_b = 0
    for i, j in itertools.combinations(range(len(a)), 2):
        da, db = np.sign(a[i] - a[j]), np.sign(b[i] - b[j])
        if da == 0 and db == 0:
            continue
        if da == 0:
            ties_a += 1
        elif db == 0:
            ties_b += 1
        elif da == db:
            conc += 1
        else:
            disc += 1
    denom = ((conc + disc + ties_a) * (conc + disc + ties_b)) ** 0.5
    return (conc - disc) / denom if denom else float("nan")


def orderings(n: int, max_orders: int | None, rng: random.Random) -> list[tuple[int, ...]]:
    """Every permutation of n candidates, or ``max_orders`` of them sampled without repeats."""
    allp = list(itertools.permutations(range(n)))
    if max_orders is None or max_orders >= len(allp):
        return allp
    return rng.sample(allp, max_orders)


def judge_bias_sweep(df: pd.DataFrame, judge: Any, dataset: Any = None, max_orders: int | None = 24,
                     shuffle_labels: bool = True, name_probe: bool = True, registry: Any = None, seed: int = 0,
                     concurrency: int = 8) -> Experiment:
    """The judge over many orderings of each item's cached member answers.

    Each ordering shows the candidates in a permutation (all of them up to ``max_orders``, else a sample) and,
    with ``shuffle_labels``, under a shuffled set of labels (so that position and label can be told apart). An
    unbiased judge picks each position and each label at the rate 1 / (candidates); each rate is over the verdicts
    that had that position (an item where a member failed has fewer), with a 95 % Wilson interval, against the mean
    of 1 / candidates over those verdicts (``expected``). ``summary`` also gives the share of items whose pick
    changed with the ordering (over items with at least two valid verdicts; the others are counted apart), and the
    mean Kendall's tau between the score rankings of every two orderings of an item (1: the same ranking wherever
    they stand).

    With ``name_probe``, each item is also judged in pool order under three labellings: anonymous letters, the
    members' true names, and the names rotated one place (each answer wearing another member's name). A judge
    that reads names follows the name: ``summary["name_probe"]`` gives how often the pick changed from the
    anonymous one under true names and under swapped names, and how often under swapped names it picked the answer
    wearing the name of its anonymous pick. When the judge's model and persona are also a member's,
    ``summary["self_preference"]`` gives that member's win rate against 1/n, and how often it won on items where
    it was wrong and another member was right.
    """
    from ..fusion import judge as J
    from ..fusion.fanout import load_members
    from ..fusion.modes import MODES
    from ..settings import FusionSettings
    from ..specs import Member, load_registry
    from ..types import Failure

    registry = registry or load_registry()
    judge_member = judge if isinstance(judge, Member) else registry.member(judge)
    members = member_table(df)
    by_id = dataset_items(df, dataset)
    rng = random.Random(seed)
    mode = MODES["best-of"]
    config = FusionSettings(seed=seed).judge_config()

    probes: list[dict[str, Any]] = []

    # Every judge call is planned first (the orderings and labels drawn in the same order as ever), then asked
    # concurrently, at most ``concurrency`` at a time: a local judge batches them, an endpoint takes them in parallel.
    plan: list[tuple[str, Any, Any]] = []  # (kind, item, what the row needs)
    for item in dict.fromkeys(members["item_id"]):
        g = members[(members["item_id"] == item) & members["ok"]].sort_values("order")
        outs = [MemberOutput(int(r.order), r.system, 1, True, str(r.answer)) for r in g.itertuples()]
        if len(outs) < 2:
            continue
        ids = [o.member for o in outs]
        for k, perm in enumerate(orderings(len(outs), max_orders, rng)):
            order = [ids[p] for p in perm]
            labels = letters(len(order))
            if shuffle_labels:
                labels = rng.sample(labels, len(labels))
            plan.append(("ordering", item, dict(g=g, outs=outs, k=k, order=order, labels=labels)))
        if name_probe:
            names = [o.label.removeprefix("member:") for o in outs]
            if len(set(names)) < len(names):  # duplicate labels cannot be told apart by name
                names = [f"{n_} #{i + 1}" for i, n_ in enumerate(names)]
            for condition, labels in (("anonymous", letters(len(ids))), ("true names", names),
                                      ("swapped names", names[1:] + names[:1])):
                plan.append(("probe", item, dict(outs=outs, order=ids, labels=labels, condition=condition)))

    async def run():
        backend = (await load_members([judge_member]))[0]
        if isinstance(backend, Failure):
            raise ConfigError(f"the judge could not be loaded: {backend.reason}")
        gate = asyncio.Semaphore(max(1, concurrency))

        async def ask(item, p):
            async with gate:
                return await J.judge_once(backend, judge_member, by_id[item].to_prompt(), p["outs"], p["order"],
                                          mode, config, labels=p["labels"])

        verdicts = await asyncio.gather(*(ask(item, p) for _, item, p in plan))
        rows, calls = [], 0
        for (kind, item, p), (a, parsed, attempts, _) in zip(plan, verdicts):
            calls += len(attempts)
            won = a.winner if parsed else None
            if kind == "probe":
                probes.append(dict(item_id=item, condition=p["condition"], labels=p["labels"], ids=p["order"],
                                   valid=parsed is not None, winner=won))
                continue
            order, labels, g = p["order"], p["labels"], p["g"]
            label_of = dict(zip(order, labels))
            scores = {m: float(parsed["scores"][label_of[m]]) for m in order} if parsed else {}
            rows.append(dict(item_id=item, ordering=p["k"], order=order, labels=labels, valid=parsed is not None,
                             winner=won,
                             winner_position=order.index(won) if won is not None else None,
                             winner_label=label_of[won] if won is not None else None,
                             winner_correct=bool(g[g["order"] == won]["correct"].iloc[0]) if won is not None else None,
                             scores=scores, n=len(order)))
        return rows, calls

    rows, calls = run_sync(run())
    frame = pd.DataFrame(rows)
    exp = _summarise(frame, calls)
    if probes:
        exp.summary["name_probe"] = _name_probe(pd.DataFrame(probes))
    systems = list(dict.fromkeys(members.sort_values("order")["system"]))
    pool_members = df.attrs.get("pool_members")  # Member dicts, when the frame carries them
    own = _own_member(judge_member, systems, pool_members, registry)
    if own is not None and len(frame):
        exp.summary["self_preference"] = _self_preference(frame, own, members)
    return exp


def _name_probe(p: pd.DataFrame) -> dict[str, Any]:
    """How the pick moves when the candidates wear names (true, then swapped) instead of letters."""
    wide = p[p["valid"]].pivot_table(index="item_id", columns="condition", values="winner", aggfunc="first")
    out: dict[str, Any] = {"items": int(len(wide))}
    for cond in ("true names", "swapped names"):
        if "anonymous" in wide and cond in wide:
            both = wide[["anonymous", cond]].dropna()
            changed, lo, hi = mean_ci((both["anonymous"] != both[cond]).to_numpy(dtype=float))
            out[f"changed_with_{cond.replace(' ', '_')}"] = dict(rate=changed, ci=(lo, hi), items=len(both))
    if "anonymous" in wide and "swapped names" in wide:
        ids = p[p["condition"] == "swapped names"].set_index("item_id")["ids"]
        follows = []
        for item, r in wide[["anonymous", "swapped names"]].dropna().iterrows():
            # under swapped names the answer at place j wears the true name of place j+1 (rotated by one): the
            # answer wearing the anonymous pick's name stands one place before the anonymous pick
            order = list(ids[item])
            wearer = order[(order.index(int(r["anonymous"])) - 1) % len(order)]
            follows.append(float(int(r["swapped names"]) == wearer))
        rate, lo, hi = mean_ci(np.array(follows))
        out["followed_the_name"] = dict(rate=rate, ci=(lo, hi), items=len(follows))
    return out


def _own_member(judge_member, systems: list[str], pool_members, registry) -> int | None:
    """The pool index of the member that is the judge itself (same model and persona), if any."""
    for i, system in enumerate(systems):
        label = system.removeprefix("member:")
        try:
            m = registry.member(label)
        except Exception:  # noqa: BLE001  (a display name that is not a model name: cannot be the judge)
            continue
        if m.model == judge_member.model and (m.persona or None) == (judge_member.persona or None):
            return i
    return None


def _self_preference(frame: pd.DataFrame, own: int, members: pd.DataFrame) -> dict:
    """The judge's own member's win rate over the verdicts in which it was a candidate (where it failed it was not
    shown, and cannot win), against what picking at random gives there: the mean of 1 / candidates."""
    valid = frame[frame["valid"]]
    valid = valid[[own in order for order in valid["order"]]]
    wins = (valid["winner"] == own).to_numpy(dtype=float)
    rate, lo, hi = mean_ci(wins)
    right = members.set_index(["item_id", "order"])["correct"]
    wrong_own = [r for r in valid.itertuples()
                 if not right.get((r.item_id, own), False)
                 and any(right.get((r.item_id, m), False) for m in r.order if m != own)]
    bad = np.array([float(r.winner == own) for r in wrong_own])
    brate, blo, bhi = mean_ci(bad)
    return dict(member=own, win_rate=rate, ci=(lo, hi), verdicts=len(valid),
                expected=float((1 / valid["n"]).mean()) if len(valid) else float("nan"),
                won_while_wrong=brate, won_while_wrong_ci=(blo, bhi), verdicts_where_it_was_wrong=len(bad))


def _summarise(frame: pd.DataFrame, calls: int) -> Experiment:
    import plotly.graph_objects as go

    valid = frame[frame["valid"]] if len(frame) else frame
    n = int(frame["n"].max()) if len(frame) else 0
    by_pos = []
    # A position (a label) can win only in the verdicts that had it: items where a member failed have fewer
    # candidates. Each rate is over those verdicts, against the mean of 1 / (that verdict's candidates).
    for p, lab in zip(range(n), letters(n)):
        has = valid[valid["n"] > p]
        expected = float((1 / has["n"]).mean()) if len(has) else float("nan")
        for kind, key, won in (("position", str(p + 1), has["winner_position"] == p),
                               ("label", lab, has["winner_label"] == lab)):
            mean, lo, hi = mean_ci(won.to_numpy(dtype=float))
            by_pos.append(dict(kind=kind, key=key, win_rate=mean, ci_low=lo, ci_high=hi, expected=expected,
                               verdicts=len(has)))
    rates = pd.DataFrame(by_pos, columns=["kind", "key", "win_rate", "ci_low", "ci_high", "expected", "verdicts"])
    rates = rates.sort_values("kind", kind="stable", key=lambda k: k.map({"position": 0, "label": 1}))
    rates = rates.reset_index(drop=True)
    taus, flips = [], []
    for _item, g in valid.groupby("item_id"):
        members = sorted(g["scores"].iloc[0])
        vecs = [[s[m] for m in members] for s in g["scores"]]
        t = [kendall_tau(a, b) for a, b in itertools.combinations(vecs, 2)]
        t = [x for x in t if x == x]
        if t:
            taus.append(float(np.mean(t)))
        if len(g) > 1:  # one valid verdict cannot show a change: such items are left out, not "unchanged"
            flips.append(float(g["winner"].nunique() > 1))
    tau, tau_lo, tau_hi = mean_ci(np.array(taus))
    flip, flip_lo, flip_hi = mean_ci(np.array(flips))
    summary = dict(items=int(frame["item_id"].nunique()) if len(frame) else 0, orderings=len(frame),
                   valid_verdicts=len(valid), pick_changed_with_ordering=flip, pick_changed_ci=(flip_lo, flip_hi),
                   pick_changed_items=len(flips),
                   pick_changed_left_out=int(valid["item_id"].nunique()) - len(flips) if len(valid) else 0,
                   kendall_tau=tau, kendall_tau_ci=(tau_lo, tau_hi),
                   position_1_win_rate=float(rates.iloc[0]["win_rate"]) if n else float("nan"))
    fig = go.Figure()
    for kind in ("position", "label"):
        r = rates[rates["kind"] == kind]
        fig.add_trace(go.Bar(x=[f"{kind} {k}" for k in r["key"]], y=r["win_rate"], name=f"by {kind}",
                             error_y=dict(type="data", symmetric=False, array=r["ci_high"] - r["win_rate"],
                                          arrayminus=r["win_rate"] - r["ci_low"])))
    if n:
        pos = rates[rates["kind"] == "position"]
        fig.add_trace(go.Scatter(x=[f"position {k}" for k in pos["key"]], y=pos["expected"], mode="markers",
                                 marker=dict(symbol="line-ew-open", size=24), name="no bias (1 / candidates)"))
    fig.update_layout(title=f"Judge bias: pick changed with the ordering on {flip:.0%} of items; "
                            f"Kendall's tau {tau:.2f}", yaxis_title="win rate", yaxis_range=[0, 1.05])
    return Experiment("judge_bias_sweep", rates, fig, summary, judge_calls=calls, details=frame)
