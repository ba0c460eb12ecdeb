"""Modes as objects: each holds its judge task, schema, validation and final-answer rule; one registry."""

import pytest

from workbench.errors import ConfigError
from workbench.fusion.modes import JUDGED_MODES, MODE_NAMES, MODES, get_mode, majority
from workbench.records import MemberOutput, Verdict


def out(member, text, ok=True):
    return MemberOutput(member, f"m{member}", 1, ok, text)


def test_registry_is_the_one_list_of_modes():
    assert MODE_NAMES == ("best-of", "merge", "debate", "vote") and JUDGED_MODES == ("best-of", "merge", "debate")
    assert [m.multi_round for m in MODES.values()] == [False, False, True, False]
    with pytest.raises(ConfigError, match="best-of, merge, debate, vote"):
        get_mode("borda")


@pytest.mark.parametrize("mode, reply, error", [
    ("best-of", {"scores": {"A": 7, "B": 3}, "rationale": "A is right"}, "winner"),
    ("merge", {"scores": {"A": 7}, "rationale": "r"}, "answer"),
    ("debate", {"winner": "A", "scores": {"A": 7}, "rationale": "r"}, "answer"),
    ("best-of", {"winner": "C", "scores": {"A": 7}, "rationale": "r"}, "winner"),
    ("merge", {"scores": {"A": 11}, "rationale": "r", "answer": "x"}, "0 to 10"),
    ("merge", {"scores": {"Z": 1}, "rationale": "r", "answer": "x"}, "unknown candidate"),
])
def test_each_mode_validates_its_own_reply(mode, reply, error):
    with pytest.raises(ValueError, match=error):
        MODES[mode].validate(reply, ["A", "B"])


def test_final_answer_rules():
    outputs = [out(0, "zero"), out(1, "one")]
    v = Verdict("best-of", winner=1, answer="ignored", valid=True)
    assert MODES["best-of"].final_answer(v, outputs) == "one"  # the winner's text, unchanged
    assert MODES["merge"].final_answer(Verdict("merge", answer="both [A][B]", valid=True), outputs) == "both [A][B]"
    assert MODES["merge"].validate({"scores": {"[A]": 5}, "rationale": "r", "answer": "x"}, ["A"])["scores"] == {"A": 5}


def test_vote_ties_go_to_the_first_member_in_pool_order():
    answer, winner, counts, _ = majority([out(0, "Final answer: 3"), out(1, "4"), out(2, "three is 3"),
                                          out(3, "4"), out(4, "", ok=False)])
    assert (answer, winner, counts) == ("3", 0, {"3": 2, "4": 2})


def test_a_new_mode_is_one_file(tmp_path, monkeypatch):
    import sys

    import workbench.fusion.modes as modes

    (tmp_path / "x_test_mode.py").write_text(
        "from workbench.fusion.modes.base import Mode\n"
        "MODE = Mode(name='x-test', description='a mode from one file', task='Pick.', schema='{}', order=50)\n")
    monkeypatch.setattr(modes, "__path__", [*modes.__path__, str(tmp_path)])
    try:
        assert list(modes._discover()) == ["best-of", "merge", "debate", "vote", "x-test"]
    finally:
        sys.modules.pop("workbench.fusion.modes.x_test_mode", None)
