"""The evaluation tests' dataset fixture: four items with known answers (``known.REFS``)."""

import json

import pytest
from known import REFS


@pytest.fixture
def dataset(tmp_path):
    path = tmp_path / "known.jsonl"
    path.write_text("".join(json.dumps({"id": k, "prompt": f"[{k}] compute", "reference": str(v),
                                        "answer_type": "numeric"}) + "\n" for k, v in REFS.items()))
    return str(path)
