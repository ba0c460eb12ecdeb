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


def test_eval_cli_runs_the_experiments_and_adds_the_modes_they_need(tmp_path, server, capsys, monkeypatch):
    models = tmp_path / "models.toml"
    models.write_text("".join(
        f'[models.{n}]\nbackend="openai"\nmodel="reply={r}"\nbase_url="{server.base_url}"\n'
        for n, r in [("right", "Final answer: 5"), ("wrong", "Final answer: 4"), ("other", "Final answer: 6")])
        + f'[models.judge]\nbackend="openai"\nmodel="judge_pick=5"\nbase_url="{server.base_url}"\n')
    monkeypatch.setenv("WORKBENCH_MODELS_FILE", str(models))
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"id": f"q{i}", "prompt": f"2+3? ({i})", "reference": "5",
                                        "answer_type": "numeric"}) + "\n" for i in range(3)))
    out = tmp_path / "out"
    assert main(["eval", "--dataset", str(data), "--pool", "right,wrong,other", "--judge", "judge", "--modes", "vote",
                 "--rounds", "2", "--store", str(tmp_path / "s.sqlite"), "--out", str(out),
                 "--experiment", "debate_vs_vote", "--experiment", "agreement_gate",
                 "--experiment", "member_attribution", "--experiment", "judge_bias_sweep"]) == 0
    printed = capsys.readouterr().out
    for name in ("debate_vs_vote", "agreement_gate", "member_attribution", "judge_bias_sweep"):
        assert f"== {name} (" in printed and (out / f"{name}.csv").exists()
    assert "== judge_bias_sweep (27 judge calls) ==" in printed  # 3 items x (3! orderings + 3 name labellings)
    page = (out / "experiments.html").read_text()
    assert page.count("plotly.js v") <= 2 and page.count("Plotly.newPlot") == 4  # plotly once, four figures
    attribution = (out / "member_attribution.csv").read_text()
    assert "member:right,1.0" in attribution.replace("1.0000", "1.0")  # the only right member carries it all


def test_eval_cli_image_ablation_on_shapes(tmp_path, server, capsys, monkeypatch):
    models = tmp_path / "models.toml"
    models.write_text(f'[models.sees]\nbackend="openai"\nmodel="seen=1"\nbase_url="{server.base_url}"\nvision=true\n'
                      f'[models.blind]\nbackend="openai"\nmodel="reply=Final answer: 3"\nbase_url="{server.base_url}"\n')
    monkeypatch.setenv("WORKBENCH_MODELS_FILE", str(models))
    out = tmp_path / "out"
    assert main(["eval", "--dataset", "builtin:shapes", "--limit", "2", "--pool", "sees,blind", "--modes", "vote",
                 "--store", str(tmp_path / "s.sqlite"), "--out", str(out), "--experiment", "image_ablation"]) == 0
    printed = capsys.readouterr().out
    assert '"member:sees": {\n   "ignored_rate": 0.0' in printed and '"member:blind": {\n   "ignored_rate": 1.0' in printed


def test_eval_cli_warns_when_cached_answers_come_from_another_environment(tmp_path, server, capsys, monkeypatch):
    from workbench import provenance

    models = tmp_path / "models.toml"
    models.write_text(f'[models.right]\nbackend="openai"\nmodel="reply=Final answer: 5"\nbase_url="{server.base_url}"\n')
    monkeypatch.setenv("WORKBENCH_MODELS_FILE", str(models))
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"id": "a", "prompt": "2+3?", "reference": "5", "answer_type": "numeric"}) + "\n")
    args = ["eval", "--dataset", str(data), "--pool", "right,right", "--store", str(tmp_path / "s.sqlite"),
            "--out", str(tmp_path / "out")]
    real = provenance.package_versions()
    monkeypatch.setattr(provenance, "package_versions", lambda: {**real, "openai": "0.0.0+older"})
    assert main(args + ["--modes", "vote"]) == 0  # the pool's answers cached under an "older" install
    assert "different environments" not in capsys.readouterr().err
    monkeypatch.setattr(provenance, "package_versions", lambda: real)
    assert main(args + ["--modes", "vote", "--swap-k", "2"]) == 0  # new rows beside the cached answers
    err = capsys.readouterr().err
    assert "warning: the rows compared here came from different environments" in err
    assert f"openai: 0.0.0+older vs {real['openai']}" in err
    assert "different environments" in (tmp_path / "out" / "report.html").read_text()
