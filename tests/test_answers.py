"""Answer handling shared by fusion and evaluation: one rule each, table-tested."""

import pytest

from workbench.answers import extract_answer, last_number, letters, normalise, split_pool, sum_known, unique_top


@pytest.mark.parametrize("text, answer", [
    ("The answer is 42.", "42"),
    ("Final answer: B", "b"),
    ("Final answer: Paris.", "paris"),
    ("\\boxed{17}", "17"),
    ("Answer: 2.50 dollars", "2.5"),
    ("1,000.0", "1000"),
    ("x = 3 and y = 4", "4"),  # no answer phrase: the last number
    ("-7", "-7"),
    ("no digits here\nlast line!", "last line"),  # no number either: the last line
    ("  ", ""),
])
def test_extract_answer(text, answer):
    assert extract_answer(text) == answer


@pytest.mark.parametrize("raw, norm", [("1,000.0", "1000"), ("3 apples", "3"), ("**Paris**.", "paris"),
                                        ("2.50", "2.5"), ("  Yes!  ", "yes")])
def test_normalise(raw, norm):
    assert normalise(raw) == norm


def test_letters_numbers_scores_costs_and_pools():
    assert letters(3) == ["A", "B", "C"] and letters(28)[-2:] == ["C26", "C27"]
    assert last_number("x 1,234.5 y") == 1234.5 and last_number("none") is None
    assert unique_top({"a": 1, "b": 2}) == "b"
    assert unique_top({"a": 2, "b": 2}) is None and unique_top({}) is None
    assert sum_known([None, 1.5, None, 2]) == 3.5 and sum_known([None]) is None and sum_known([]) is None
    assert split_pool(" a, ,b:skeptic ,") == ["a", "b:skeptic"] and split_pool(None) == []
