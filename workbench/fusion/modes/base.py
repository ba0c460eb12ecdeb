"""What a fusion mode is: the judge's task and reply schema, how a reply is validated, and the final answer rule."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...records import MemberOutput, Verdict


@dataclass(frozen=True)
class Mode:
    """One way of turning a pool's answers into one.

    A judged mode shows the candidates to a judge with ``task`` and asks for a JSON reply shaped like
    ``schema``; ``validate`` checks that reply and ``final_answer`` reads the run's answer from the
    verdict. A mode that is not judged (vote) decides without a judge.
    """

    name: str  #: as typed in the CLI, the UI and the API
    description: str  #: one line for help texts and the UI
    order: int = 100  #: place in menus (lowest first)
    judged: bool = True  #: needs a judge model
    multi_round: bool = False  #: uses debate rounds (``FusionSettings.rounds``)
    task: str = ""  #: what the judge is asked to do
    schema: str = ""  #: the JSON reply the judge must give (shown to it verbatim)
    needs_winner: bool = False  #: the reply names a winning candidate
    needs_answer: bool = False  #: the reply writes the final answer

    def validate(self, obj: dict[str, Any], ids: list[str]) -> dict[str, Any]:
        """Check a parsed judge reply against this mode's schema; return it normalised. Raises ValueError."""
        scores = obj.get("scores")
        if not isinstance(scores, dict) or not scores:
            raise ValueError('"scores" must be an object mapping candidate ids to numbers')
        clean: dict[str, float] = {}
        for k, v in scores.items():
            k = str(k).strip().strip("[]")
            if k not in ids:
                raise ValueError(f'"scores" names unknown candidate {k!r}; ids are {ids}')
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0 <= v <= 10:
                raise ValueError(f"score for {k} must be a number from 0 to 10")
            clean[k] = float(v)
        out: dict[str, Any] = {"scores": clean, "rationale": obj.get("rationale")}
        if not isinstance(out["rationale"], str) or not out["rationale"].strip():
            raise ValueError('"rationale" must be a non-empty string')
        if self.needs_winner:
            winner = str(obj.get("winner", "")).strip().strip("[]")
            if winner not in ids:
                raise ValueError(f'"winner" must be one of {ids}')
            out["winner"] = winner
        if self.needs_answer:
            answer = obj.get("answer")
            if not isinstance(answer, str) or not answer.strip():
                raise ValueError('"answer" must be a non-empty string')
            out["answer"] = answer
        return out

    def json_schema(self, ids: list[str], max_new_tokens: int) -> dict[str, Any]:
        """The reply ``validate`` accepts, as a JSON schema (constrained decoding and ``response_format``).

        The rationale comes first (reasoning before the decision), then scores and the winner, then a written
        answer. Free text is capped at one character per token left after the fixed parts, so a whole verdict
        fits in ``max_new_tokens`` even for a tokenizer of single characters; a limit too small for the
        shortest verdict ends in an incomplete reply, which is a recorded judge failure, not a hang."""
        fixed = 24 + 8 * len(ids) + (8 if self.needs_winner else 0)  # keys, braces, scores, winner
        text_chars = max(16, max_new_tokens - fixed)
        rationale = text_chars // 3 if self.needs_answer else text_chars
        props: dict[str, Any] = {
            "rationale": {"type": "string", "minLength": 1, "maxLength": rationale},
            "scores": {"type": "object", "additionalProperties": False, "required": list(ids),
                       "properties": {i: {"type": "integer", "minimum": 0, "maximum": 10} for i in ids}},
        }
        if self.needs_winner:
            props["winner"] = {"enum": list(ids)}
        if self.needs_answer:
            props["answer"] = {"type": "string", "minLength": 1, "maxLength": text_chars - rationale}
        return {"type": "object", "additionalProperties": False, "required": list(props), "properties": props}

    def final_answer(self, verdict: Verdict, outputs: list[MemberOutput]) -> str:
        """The run's answer from a valid verdict: the answer the judge wrote (merge, debate, vote)."""
        return verdict.answer
