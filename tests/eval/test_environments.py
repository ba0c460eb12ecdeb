"""An evaluation's rows carry the environment that made them; a mix of environments is said (workbench.provenance)."""

from known import REFS, table

import workbench as wb
from workbench import provenance
from workbench.specs import Member


async def test_an_evaluation_warns_when_its_rows_come_from_different_environments(dataset, remote, tmp_path,
                                                                                   monkeypatch):
    from workbench.eval.harness import evaluate_async
    from workbench.eval.report import report_html

    store = wb.RunStore(tmp_path / "s.sqlite")
    pool = [Member(remote(table(REFS, "env"), name="A")), Member(remote(table(REFS, "env"), name="B"))]
    # the pool's answers generated and cached under an older install (another transformers)
    real = provenance.package_versions()
    monkeypatch.setattr(provenance, "package_versions", lambda: {**real, "transformers": "0.0.0+elsewhere"})
    df = await evaluate_async(dataset, pool, None, ["vote"], store=store, progress=False)
    assert df.attrs["environment_differences"] == [] and df["env_id"].notna().all()
    assert df.attrs["environment"]["packages"]["transformers"] == "0.0.0+elsewhere"
    assert "environment: code: workbench" in report_html(df) and "different environments" not in report_html(df)
    # today's install: a new evaluation of the same pool reuses those cached answers beside new fused runs
    monkeypatch.undo()
    again = await evaluate_async(dataset, pool, None, ["vote"], store=store, progress=False, swap_k=3)
    diffs = again.attrs["environment_differences"]
    assert any(d.startswith("transformers: ") and "0.0.0+elsewhere" in d for d in diffs), diffs
    assert again["env_id"].nunique() == 2
    assert "different environments" in report_html(again) and "0.0.0+elsewhere" in report_html(again)
