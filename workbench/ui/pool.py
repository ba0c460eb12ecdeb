"""Pool editing for the page: table rows -> Members, endpoints added in the browser, add / clear / remember.

Pure functions over plain values (no components), shared by the Fuse, Evaluate and History tabs.
"""

from __future__ import annotations

from typing import Any

from ..errors import WorkbenchError
from ..policy import Policy
from ..specs import Member, Registry

MAX_MEMBERS = 8
POOL_HEADERS = ["model", "persona", "temperature", "name"]


def rows_of(table: Any) -> list[list[Any]]:
    """A gr.Dataframe value (a pandas DataFrame or a list of lists) as a list of rows."""
    return table.values.tolist() if hasattr(table, "values") else list(table or [])


def default_pool(preset: str) -> list[list[Any]]:
    """The starting pool: the preset three times, plain and with two personas, at three temperatures (members
    of one local model are batched together; each row samples its own tokens)."""
    return [[preset, "", 0.7, ""], [preset, "skeptic", 1.0, ""], [preset, "analyst", 0.3, ""]]


def members_from_rows(rows: Any, reg: Registry, policy: Policy) -> list[Member]:
    """Pool table rows (model, persona, temperature, name) -> Members, as ``policy`` lets this caller name them.

    Raises WorkbenchError (PolicyError) on a bad or refused row."""
    members = []
    rows = [r for r in rows_of(rows) if r and str(r[0] if r[0] is not None else "").strip() not in ("", "nan")]
    if len(rows) > MAX_MEMBERS:  # before resolving any of them
        raise WorkbenchError(f"the pool has {len(rows)} members; the page shows at most {MAX_MEMBERS}")
    for n, row in enumerate(rows, 1):
        row = [("" if c is None else str(c)).strip() for c in list(row) + [""] * 4][:4]
        model, persona, temp, name = row
        if not model or model.lower() == "nan":
            continue
        base = policy.member(model, reg)
        persona_text, persona_name = base.persona, base.persona_name
        if persona and persona.lower() != "nan":
            persona_text, persona_name = (reg.personas[persona], persona) if persona in reg.personas \
                else (persona, "custom")
        try:
            temperature = float(temp) if temp and temp.lower() != "nan" else None
        except ValueError:
            raise WorkbenchError(f"pool row {n}: temperature {temp!r} is not a number") from None
        members.append(Member(base.model, persona_text, persona_name, temperature,
                              display_name=name if name and name.lower() != "nan" else ""))
    if len(members) > MAX_MEMBERS:
        raise WorkbenchError(f"the pool has {len(members)} members; the page shows at most {MAX_MEMBERS}")
    return members


def add_member_row(table: Any, model: str, persona: str, temp: Any) -> tuple[list[list[Any]], str]:
    """The table with one more member row, and a message ("" when added). A blank temperature leaves the
    row's blank too: the member samples at the run's temperature (and batches with the other members)."""
    rows = [r for r in rows_of(table) if r and str(r[0]).strip() not in ("", "nan", "None")]
    if len(rows) >= MAX_MEMBERS:
        return rows, f"⚠ at most {MAX_MEMBERS} members"
    text = "" if temp is None else str(temp).strip()
    if text.lower() in ("", "nan", "none"):
        value: Any = ""
    else:
        try:
            value = float(text)
        except ValueError:
            return rows, f"⚠ temperature {text!r} is not a number (leave it blank for the run's)"
        if not 0 <= value <= 2:
            return rows, f"⚠ temperature {value:g} is outside 0..2"
    rows.append([model or "", persona or "", value, ""])
    return rows, ""


def remember_pool(table: Any, state: dict[str, Any] | None) -> dict[str, Any]:
    """The browser state with the pool table in it (kept across reloads)."""
    return {**(state or {}), "pool": [[("" if c is None else c) for c in r] for r in rows_of(table)]}


def check_endpoint(name: str, url: str, model: str, key_var: str) -> str:
    """What is missing or malformed in an endpoint form ("" when complete); the policy checks the rest."""
    if not (name and url and model):
        return "⚠ an endpoint needs a name, a base URL and a model"
    if key_var and not key_var.replace("_", "").isalnum():
        return "⚠ give the *name* of the environment variable holding the key, not the key itself"
    return ""
