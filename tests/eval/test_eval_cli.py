import json

from workbench.cli import main


def test_eval_cli_writes_table_and_report(tmp_path, server, capsys, monkeypatch):
    models = tmp_path / "models.toml"
    models.write_text(f'[models.right]\nbackend="openai"\nmodel="reply=Final answer: 5"\nbase_url="{server.base_url}"\n'
                      f'[models.wrong]\nbackend="openai"\nmodel="reply=Final answer: 4"\nbase_url="{server.base_url}"\n')
    monkeypatch.setenv("WORKBENCH_MODELS_FILE", str(models))
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"id": "a", "prompt": "2+3?", "reference": "5", "answer_type": "numeric"}) + "\n")
    out = tmp_path / "out"
    assert main(["eval", "--dataset", str(data), "--pool", "right,wrong,wrong", "--modes", "vote",
                 "--store", str(tmp_path / "s.sqlite"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "member:right" in printed and "oracle" in printed
    table = (out / "results.csv").read_text() if (out / "results.csv").exists() else None
    assert table is not None or (out / "results.parquet").exists()
    report = (out / "report.html").read_text()
    assert "fig-accuracy" in report and "Fused vs the best single member" in report
    assert main(["eval", "--dataset", str(tmp_path / "missing.jsonl"), "--pool", "right", "--modes", "vote",
                 "--store", str(tmp_path / "s.sqlite"), "--out", str(out)]) == 2
