"""Known answers for the evaluation tests: a four-item dataset's references, and scripted members that answer each
item from a table (the ``dataset`` fixture in conftest.py writes the dataset)."""

REFS = {"i1": 5, "i2": 7, "i3": 9, "i4": 11}


def table(answers, tag="", extra=()):
    """A scripted member's script: per item (matched by its "[id]" in the prompt) the answer to give."""
    entries = list(extra) + [f"[{k}]=>Final answer: {v}" for k, v in answers.items()]
    return f"table={'~~'.join(entries)};tag={tag}"
