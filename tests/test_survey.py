"""``scaffold survey``: rows, resumability, isolation (timeouts), and the rendered outputs."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from scaffold.cli import app
from scaffold.errors import ScaffoldError
from scaffold.survey import SurveyOptions, SurveyRow, read_rows, select_types, summarize
from scaffold.survey import rows as R
from scaffold.survey.render import html_page, markdown
from scaffold.survey.runner import pending_types, run_worker
from scaffold.survey.worker import failure_reason

VERSIONS = {"transformers": "5.24.0", "auto_round": "0.16.1", "autoround_scaffold": "0.1.0"}


def _row(model_type: str, **fields) -> SurveyRow:
    return SurveyRow(model_type=model_type, tiny_build="ok", versions=dict(VERSIONS), phase="done", **fields)


def test_summary_classifies_rows_honestly():
    rows = [
        _row("a", stock="ok", stock_share=1.0),
        _row("b", stock="crash", stock_detail="RuntimeError: x", after_scaffold="ok"),
        _row("c", stock="under-quantized", stock_share=0.5, after_scaffold="needs-human", todos=2),
        _row("d", stock="crash", after_scaffold="failed", after_detail="generated test: AssertionError"),
        SurveyRow(model_type="e", tiny_build="ShrinkError: no strategy", versions=dict(VERSIONS), phase="done"),
    ]
    summary = summarize(rows)
    assert (summary.types, summary.ok, summary.fixed, summary.human, summary.survey_failures) == (5, 1, 1, 2, 1)
    assert summary.reasons == {"TODOs left by new-arch": 1, "after-scaffold failed (generated test)": 1}
    assert summary.line().startswith("5 types, 1 ok out of the box, 1 fixed by scaffold with no hand edits, 2 need")
    assert summary.line().endswith("1 not surveyed (tiny build failed: the survey's own failure)")


def test_multimodal_rows_are_not_counted_as_autoround_failures():
    rows = [_row("a", stock="ok", stock_share=1.0), _row("m", stock=R.MULTIMODAL, stock_detail="needs a processor")]
    summary = summarize(rows)
    assert (summary.types, summary.ok, summary.human, summary.multimodal) == (2, 1, 0, 1)
    assert rows[1].outcome == "not-surveyed"
    assert summary.line().endswith("1 multimodal, not surveyed (AutoRound's MLLM path needs a processor)")


def test_ok_rows_with_a_silent_replay_mismatch_are_counted():
    rows = [_row("a", stock="ok", findings=["block_replay:fails"]), _row("b", stock="ok", findings=[])]
    summary = summarize(rows)
    assert (summary.ok, summary.ok_replay_mismatch) == (2, 1)
    assert "2 ok out of the box (1 of them replay some block with wrong inputs" in summary.line()


def test_markdown_and_html_tables():
    rows = [_row("a|b", stock="ok", stock_share=1.0), _row("c", stock="under-quantized", stock_share=0.25)]
    text = markdown(rows, VERSIONS)
    assert "| a\\|b |" in text and "25.0%" in text and "transformers 5.24.0" in text
    page = html_page(rows, VERSIONS)
    assert page.count("<tr class=") == 2 and 'data-sort="0.25"' in page and "<script>" in page
    assert "http://" not in page and "https://" not in page  # no network


def test_pending_types_skips_done_rows_of_the_same_versions(tmp_path):
    results = tmp_path / "results.jsonl"
    R.append_row(results, _row("a", stock="ok"))
    R.append_row(results, _row("b", stock="crash"))  # fix not run (--no-fix)
    other = _row("c", stock="ok")
    other.versions["transformers"] = "4.57.0"
    R.append_row(results, other)
    assert pending_types(["a", "b", "c"], results, VERSIONS) == ["c"]
    assert pending_types(["a", "b", "c"], results, VERSIONS, fix=True) == ["b", "c"]


def test_failure_reason_prefers_the_failed_summary():
    tail = "E   assert 0.5 >= 0.99\nFAILED test_x.py::test_quantize - assert 0.5 >= 0.99\n1 failed, 2 passed in 3.0s"
    assert failure_reason(tail) == "FAILED test_x.py::test_quantize - assert 0.5 >= 0.99"
    assert failure_reason("E   KeyError: 'x'\n1 failed") == "E   KeyError: 'x'"
    assert failure_reason("") == "no output"


def test_select_types_rejects_unknown_and_empty():
    assert select_types(["llama", "llama"], False) == ["llama"]
    assert "llama" in select_types([], True)
    with pytest.raises(ScaffoldError, match="not_a_model"):
        select_types(["not_a_model"], False)
    with pytest.raises(ScaffoldError):
        select_types([], False)


def test_worker_timeout_still_gives_a_row(tmp_path):
    row = run_worker("llama", SurveyOptions(out=tmp_path, timeout=1.0, fix=False))
    assert row.model_type == "llama" and row.phase == "done"
    assert row.tiny_build.startswith("timeout") or R.TIMEOUT in (row.stock, row.after_scaffold)
    assert row.outcome != "ok"


@pytest.fixture(scope="module")
def surveyed(tmp_path_factory):
    """llama (healthy), qwen3_moe (MoE) and bloom (crashes today) in one run; only bloom gets new-arch + verify,
    since the fix runs only where stock AutoRound crashed or under-quantized."""
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("survey")
    args = ["survey", "--types", "bloom,llama,qwen3_moe", "--jobs", "2", "--out", str(out), "--timeout", "400"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return out, {row.model_type: row for row in read_rows(out / "results.jsonl")}, result.output


@pytest.mark.slow
def test_survey_rows(surveyed):
    out, rows, output = surveyed
    assert set(rows) == {"llama", "qwen3_moe", "bloom"}
    llama = rows["llama"]
    assert (llama.model_class, llama.tiny_build, llama.stock) == ("LlamaForCausalLM", "ok", "ok")
    assert llama.stock_share == 1.0
    assert llama.after_scaffold == "skipped" and llama.seconds > 0
    assert set(llama.versions) >= {"transformers", "auto_round", "autoround_scaffold"}
    moe = rows["qwen3_moe"]
    assert moe.tiny_build == "ok" and moe.stock in ("ok", "under-quantized")
    assert 0.0 < moe.stock_share <= 1.0
    assert (moe.stock == "ok") == (moe.stock_share >= R.FULL_SHARE)
    assert (moe.after_scaffold == "skipped") == (moe.stock == "ok")
    bloom = rows["bloom"]
    assert bloom.stock == "crash" and bloom.stock_detail.startswith("RuntimeError")
    assert any(finding.startswith("block_replay") for finding in bloom.findings)
    assert bloom.after_scaffold in ("ok", "failed", "needs-human")
    if bloom.after_scaffold != "ok":
        assert bloom.after_detail
    assert "3 types" in output and (out / "SURVEY.md").is_file() and (out / "survey.html").is_file()
    assert "| bloom | BloomForCausalLM | ok | crash (RuntimeError" in (out / "SURVEY.md").read_text()


@pytest.mark.slow
def test_survey_resumes(surveyed):
    out, _, _ = surveyed
    before = (out / "results.jsonl").read_text().splitlines()
    result = CliRunner().invoke(app, ["survey", "--types", "llama,bloom,qwen3_moe", "--no-fix", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "resuming: 3 of 3" in result.output
    assert (out / "results.jsonl").read_text().splitlines() == before
    assert all(json.loads(line)["phase"] == "done" for line in before)
