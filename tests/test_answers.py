"""Answer handling shared by fusion and evaluation: one rule each, table-tested."""

from fractions import Fraction

import pytest

from workbench.answers import (answer_value, extract_answer, format_number, last_number, letters, normalise, split_pool,
                               sum_known, unique_top, words_to_number)

#: (reply, the answer a vote and a scorer read from it)
EXTRACT = [
    # answer phrases
    ("The answer is 42.", "42"),
    ("Final answer: B", "b"),
    ("Final answer: Paris.", "paris"),
    ("Answer: 2.50 dollars", "2.5"),
    ("answer = 12", "12"),
    ("Final Answer 9", "9"),
    ("The final answer is: $1,250.", "1250"),
    ("Final answer: 12 cm, since each side is 3 cm", "12"),
    ("Final answer: -3", "-3"),
    ("Final answer: −3", "-3"),
    ("The answer is five.", "5"),
    ("Final answer: twenty-one", "21"),
    ("Final answer: one hundred and five", "105"),
    ("Final answer: three quarters", "0.75"),
    ("Final answer: 1/2", "0.5"),
    ("Final answer: 0.5", "0.5"),
    ("Final answer: 2/4", "0.5"),
    ("Final answer: 1/3", "1/3"),
    ("Final answer: 1 1/2 cups", "1.5"),
    ("Final answer: 50%", "50"),
    ("Final answer: The Eiffel Tower. It is in Paris.", "the eiffel tower"),
    ("Final answer: **Yes**", "yes"),
    # the last answer wins
    ("The answer is 3. Wait, I made a mistake: the answer is 4.", "4"),
    ("Answer: 7\nOn reflection, final answer: 8", "8"),
    # \boxed{} beats an answer phrase; nested braces and LaTeX fractions inside it
    ("Answer: 5, so \\boxed{6}", "6"),
    ("\\boxed{17}", "17"),
    ("We get $\\boxed{\\frac{1}{2}}$.", "0.5"),
    ("\\boxed{\\dfrac{3}{4}}", "0.75"),
    ("\\boxed{1} first, then \\boxed{2}", "2"),
    ("\\boxed{\\text{Paris}}", "paris"),
    ("\\boxed{x = 7}", "7"),
    # cases a review found
    ("Final answer: 5 million", "5000000"),
    ("The answer is 1.5 billion dollars", "1500000000"),
    ("\\boxed{10^{6}}", "1000000"),
    ("\\boxed{\\frac12}", "0.5"),
    ("The answer is 1\\frac{1}{2}", "1.5"),
    ("The answer is 3 + 4 = 7", "7"),
    ("Answer: 2^10 = 1024", "1024"),
    ("The answer is one of them.", "one of them"),
    ("The answer is (B) Paris.", "b"),
    ("Answer: 3:00 PM", "3:00 pm"),
    ("The answer is 1,5", "1,5"),
    # no answer phrase: the last number
    ("1,000.0", "1000"),
    ("x = 3 and y = 4", "4"),
    ("-7", "-7"),
    ("She had 3/4 of a cake left.", "0.75"),
    ("The total is 1,234,567 people", "1234567"),
    ("It costs .5 dollars", "0.5"),
    ("Version 2.0 came out in 2019", "2019"),
    # no number either: the last line
    ("no digits here\nlast line!", "last line"),
    ("  ", ""),
]

NORMALISE = [
    ("1,000.0", "1000"), ("3 apples", "3"), ("**Paris**.", "paris"), ("2.50", "2.5"), ("  Yes!  ", "yes"),
    ("five", "5"), ("Five apples", "5"), ("$5", "5"), ("5 million", "5000000"), ("(B)", "b"), ("x=5", "5"),
    ("\"Paris\"", "paris"), ("1/2", "0.5"), ("-0.250", "-0.25"), ("2 thousand", "2000"), ("a half", "0.5"),
    ("New York City", "new york city"), ("12°C", "12"),
]


@pytest.mark.parametrize("text, answer", EXTRACT)
def test_extract_answer(text, answer):
    assert extract_answer(text) == answer


@pytest.mark.parametrize("raw, norm", NORMALISE)
def test_normalise(raw, norm):
    assert normalise(raw) == norm


def test_the_table_is_large_enough():
    assert len(EXTRACT) + len(NORMALISE) >= 40


@pytest.mark.parametrize("a, b", [("Final answer: 1/2", "The answer is 0.5"), ("five", "5"),
                                  ("\\boxed{12}", "Answer: 12 cm"), ("Final answer: $1,000", "1000 dollars")])
def test_equal_answers_vote_together(a, b):
    assert extract_answer(a) == extract_answer(b)


def test_numbers_words_and_formats():
    assert words_to_number("ninety nine") == 99 and words_to_number("seven hundred") == 700
    assert words_to_number("the end") is None and words_to_number("") is None
    assert format_number(Fraction(1, 3)) == "1/3" and format_number(Fraction(-1, 8)) == "-0.125"
    assert answer_value("0.5") == Fraction(1, 2) and answer_value("1/3") == Fraction(1, 3)
    assert answer_value("paris") is None


def test_letters_numbers_scores_costs_and_pools():
    assert letters(3) == ["A", "B", "C"] and letters(28)[-2:] == ["C26", "C27"]
    assert last_number("x 1,234.5 y") == 1234.5 and last_number("none") is None
    assert last_number("about 3/4") == 0.75
    assert unique_top({"a": 1, "b": 2}) == "b"
    assert unique_top({"a": 2, "b": 2}) is None and unique_top({}) is None
    assert sum_known([None, 1.5, None, 2]) == 3.5 and sum_known([None]) is None and sum_known([]) is None
    assert split_pool(" a, ,b:skeptic ,") == ["a", "b:skeptic"] and split_pool(None) == []
