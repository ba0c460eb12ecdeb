"""Datasets in the Hub's own layout (parquet shards, a config folder, a split, images embedded), built here and
read through the same reader a Hub download goes through (``datasets``); presets; the math and relaxed scorers."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

datasets = pytest.importorskip("datasets")

from PIL import Image  # noqa: E402

import workbench as wb  # noqa: E402
from workbench.eval.datasets import DatasetError, load_dataset  # noqa: E402
from workbench.eval.scorers import math_equal, score_math, score_relaxed  # noqa: E402
from workbench.eval.tables import parse_spec, with_options  # noqa: E402


def hub_repo(root: Path, config: str, splits: dict[str, datasets.Dataset]) -> Path:
    """A folder as ``push_to_hub`` lays a dataset repo out: ``CONFIG/SPLIT-00000-of-00001.parquet`` and a README
    whose YAML names the config and its splits' files."""
    lines = ["---", "configs:", f"- config_name: {config}", "  data_files:"]
    for split, table in splits.items():
        (root / config).mkdir(parents=True, exist_ok=True)
        table.to_parquet(str(root / config / f"{split}-00000-of-00001.parquet"))
        lines += [f"  - split: {split}", f"    path: {config}/{split}-*"]
    (root / "README.md").write_text("\n".join(lines + ["---", "A test dataset."]) + "\n")
    return root


def gsm8k_like(n: int) -> datasets.Dataset:
    return datasets.Dataset.from_dict({
        "question": [f"Ana has {k} apples and gets {k + 1} more. How many apples does she have?" for k in range(n)],
        "answer": [f"She has {k} + {k + 1} = {2 * k + 1} apples.\n#### {2 * k + 1:,}" for k in range(n)]})


def png(colour: str, size: int = 32) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buf, "PNG")
    return buf.getvalue()


def chart_like(rows: list[tuple[str, list[bytes], str]]) -> datasets.Dataset:
    """ChartQA-shaped rows with two image columns (the second may be empty), as an Image feature."""
    feats = datasets.Features({"id": datasets.Value("string"), "query": datasets.Value("string"),
                               "label": datasets.Sequence(datasets.Value("string")),
                               "image": datasets.Image(), "image_2": datasets.Image()})
    data = {"id": [], "query": [], "label": [], "image": [], "image_2": []}
    for rid, images, label in rows:
        data["id"].append(rid)
        data["query"].append(f"What is the value of bar {rid}?")
        data["label"].append([label])
        data["image"].append({"bytes": images[0], "path": None})
        data["image_2"].append({"bytes": images[1], "path": None} if len(images) > 1 else None)
    return datasets.Dataset.from_dict(data, features=feats)


def test_a_hub_layout_folder_loads_by_config_and_split(tmp_path):
    repo = hub_repo(tmp_path / "gsm", "main", {"train": gsm8k_like(5), "test": gsm8k_like(3)})
    ds = load_dataset(f"hf:{repo}:main@test#input=question,target=answer", limit=2)
    assert [i.reference for i in ds.items] == ["1", "3"] and ds.items[0].answer_type == "numeric"
    assert ds.items[1].prompt.startswith("Ana has 1 apples") and ds.items[0].id == "gsm-0"
    assert len(load_dataset(f"hf:{repo}:main@train")) == 5  # the usual column names need no --fields
    with pytest.raises(DatasetError, match=r"no split 'dev'.*its splits: .*test") as e:
        load_dataset(f"hf:{repo}:main@dev")
    assert "train" in str(e.value)


def test_a_missing_column_names_the_columns_and_the_flag(tmp_path):
    repo = hub_repo(tmp_path / "gsm", "main", {"test": gsm8k_like(2)})
    with pytest.raises(DatasetError) as e:
        load_dataset(f"hf:{repo}:main@test#input=problem")
    assert "input='problem'" in str(e.value) and "Its columns: question, answer" in str(e.value)
    assert "--fields input=COLUMN,target=COLUMN" in str(e.value)
    with pytest.raises(DatasetError, match="unknown option"):
        parse_spec("hf:x@test#inptu=question")


def test_images_are_kept_in_order_and_a_bad_one_fails_its_row_only(tmp_path):
    rows = [("a", [png("red"), png("blue")], "12"), ("b", [png("green")], "7.5"),
            ("c", [b"\x89PNG\r\n\x1a\n not an image"], "3")]
    repo = hub_repo(tmp_path / "charts", "default", {"test": chart_like(rows)})
    ds = load_dataset(f"hf:{repo}@test#input=query,target=label,image=image+image_2,id=id,type=relaxed")
    assert [i.id for i in ds.items] == ["a", "b"] and [r for r, _ in ds.skipped] == ["c"]
    a, b = ds.items
    assert [img.to_pil().getpixel((0, 0)) for img in a.images] == [(255, 0, 0), (0, 0, 255)]
    assert len(b.images) == 1 and b.reference == "7.5" and b.answer_type == "relaxed"
    assert "Final answer" in a.to_prompt().text
    assert [i.sha256 for i in a.to_prompt().images] == [i.sha256 for i in a.images]


def test_save_to_disk_csv_and_jsonl_read_alike(tmp_path):
    table = gsm8k_like(4)
    table.save_to_disk(str(tmp_path / "saved"))
    table.to_csv(str(tmp_path / "items.csv"))
    table.to_json(str(tmp_path / "items.jsonl"))
    refs = [[i.reference for i in load_dataset(spec).items]
            for spec in (f"hf:{tmp_path / 'saved'}", f"csv:{tmp_path / 'items.csv'}",
                         f"jsonl:{tmp_path / 'items.jsonl'}")]
    assert refs == [["1", "3", "5", "7"]] * 3


def test_choices_shuffling_and_strata(tmp_path):
    table = datasets.Dataset.from_dict({
        "id": [f"q{k}" for k in range(6)], "question": [f"Pick {k}" for k in range(6)],
        "choices": [{"text": ["x", "y", "z"], "label": ["1", "2", "3"]}] * 3
        + [{"text": ["u", "v"], "label": ["A", "B"]}] * 3,
        "answerKey": ["2", "3", "1", "B", "A", "B"], "subject": ["s1", "s1", "s1", "s2", "s2", "s3"]})
    table.to_parquet(str(tmp_path / "arc.parquet"))
    spec = f"parquet:{tmp_path / 'arc.parquet'}#input=question,target=answerKey,choices=choices,id=id"
    ds = load_dataset(spec)
    assert [i.reference for i in ds.items] == ["B", "C", "A", "B", "A", "B"]
    assert ds.items[0].answer_type == "choice" and "B) y" in ds.items[0].to_prompt().text
    strata = load_dataset(with_options(spec, stratify="subject"), limit=3)
    assert [i.meta["subject"] for i in strata.items] == ["s1", "s2", "s3"]
    one, two = (load_dataset(with_options(spec, shuffle=7), limit=4) for _ in range(2))
    assert [i.id for i in one.items] == [i.id for i in two.items] != [f"q{k}" for k in range(4)]
    index = datasets.Dataset.from_dict({"question": ["q"], "options": [["a", "b", "c"]], "answer": [2]})
    index.to_parquet(str(tmp_path / "idx.parquet"))
    assert load_dataset(f"parquet:{tmp_path / 'idx.parquet'}#choices=options").items[0].reference == "C"


def test_presets_load_a_local_copy_and_say_what_they_looked_for(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_DATASETS", str(tmp_path / "copies"))
    with pytest.raises(DatasetError) as e:
        load_dataset("gsm8k", limit=2)
    assert "openai/gsm8k" in str(e.value) and str(tmp_path / "copies" / "gsm8k") in str(e.value)
    hub_repo(tmp_path / "copies" / "gsm8k", "main", {"test": gsm8k_like(3)})
    ds = load_dataset("gsm8k", limit=2)
    assert ds.name == "gsm8k" and [i.reference for i in ds.items] == ["1", "3"]
    with pytest.raises(DatasetError, match="Presets: gsm8k, math-500, mmlu-pro"):
        load_dataset("gsm8kk")


def test_gpqa_rows_get_a_fixed_order_of_their_four_answers():
    from workbench.eval.presets import gpqa_row

    row = {"Record ID": "rec1", "Question": "Which?", "Correct Answer": "right", "Incorrect Answer 1": "w1",
           "Incorrect Answer 2": "w2", "Incorrect Answer 3": "w3"}
    a, b = gpqa_row(row), gpqa_row(dict(row))
    assert a.choices == b.choices and sorted(a.choices) == ["right", "w1", "w2", "w3"]
    assert a.choices["ABCD".index(a.reference)] == "right"


def test_math_answers_compare_symbolically_and_untrusted_text_is_never_evaluated():
    assert math_equal(r"\frac{3}{4}", "0.75") and math_equal(r"\dfrac34", r"\frac{3}{4}")
    assert math_equal(r"2\sqrt{5}", r"\sqrt{20}") and math_equal("(1,-2)", "(1, -2)")
    assert math_equal(r"x^2+1", "1+x^2") and math_equal(r"\text{Evelyn}", "Evelyn")
    assert not math_equal("10", "11") and not math_equal("(1,2)", "1")
    assert not math_equal("__import__('os').getcwd()", "1") and not math_equal("9^9^9^9", "1")
    s = score_math(r"First ... so the answer is \boxed{\frac{1}{2}}.", "0.5")
    assert s.correct and s.extracted == r"\frac{1}{2}"
    assert score_math("no box here", "3").correct is False
    assert score_relaxed("Final answer: 41", "42").correct and not score_relaxed("Final answer: 39", "42").correct
    assert score_relaxed("Final answer: Yes", "yes").correct


def test_an_evaluation_runs_on_a_hub_layout_dataset_with_a_real_model(tmp_path):
    """SmolLM2 (real, small) on a GSM8K-shaped table; the tiny vision model on a chart-shaped one with images."""
    repo = hub_repo(tmp_path / "gsm", "main", {"test": gsm8k_like(4)})
    store = wb.RunStore(tmp_path / "runs.sqlite")
    spec = f"hf:{repo}:main@test#input=question,target=answer"
    df = wb.evaluate(spec, ["smol-offline", "smol-offline"], None, ["vote"], limit=2, store=store,
                     max_new_tokens=16)
    assert set(df["item_id"]) == {"gsm-0", "gsm-1"} and df.attrs["dataset"] == spec
    assert {"member:smol-offline", "fusion:vote"} <= set(df["system"])
    charts = hub_repo(tmp_path / "charts", "default", {"test": chart_like(
        [("a", [png("red")], "1"), ("b", [png("blue"), png("red")], "2"), ("c", [b"junk"], "3")])})
    df = wb.evaluate(f"hf:{charts}@test#input=query,target=label,image=image+image_2,id=id,type=relaxed",
                     ["tiny-offline"], None, ["vote"], store=store, max_new_tokens=4)
    assert set(df["item_id"]) == {"a", "b"} and [i for i, _ in df.attrs["skipped"]] == ["c"]
    assert json.dumps(df.attrs["skipped"])  # what the report and the command line print


def test_the_quantization_panel_runs_on_an_image_table(tmp_path):
    """The INT4-vision question on a benchmark-shaped table (not the built-in shapes): the tiny vision model
    unquantized, INT4, and INT4 with a 4-bit vision tower, and the vision comparison made on its image items."""
    from workbench.experiments import quantization_panel

    charts = hub_repo(tmp_path / "charts", "default", {"test": chart_like(
        [("a", [png("red")], "1"), ("b", [png("blue"), png("red")], "2")])})
    spec = f"hf:{charts}@test#input=query,target=label,image=image+image_2,id=id,type=relaxed"
    e = quantization_panel("tiny-offline", [spec], limit=2, max_new_tokens=4, store=wb.RunStore(tmp_path / "r.sqlite"))
    assert list(e.frame["comparison"]) == ["INT4 vs bfloat16", "vision 4-bit vs vision 16-bit (both INT4)"], e.frame
    assert (e.frame["items"] == 2).all() and e.summary["datasets_skipped"] == []
    assert "vision" in e.summary["four_bit_components"]["INT4, vision 4-bit"]
    assert "vision" not in e.summary["four_bit_components"]["INT4"]
