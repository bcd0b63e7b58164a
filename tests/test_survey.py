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

VERSIONS = {"transformers": "5.24.0", "auto_round": "0.16.1", "autoround_scaffold": "0.1.0", "scaffold_commit": "abc"}


def _row(model_type: str, **fields) -> SurveyRow:
    return SurveyRow(model_type=model_type, tiny_build="ok", versions=dict(VERSIONS), phase="done", **fields)


def test_summary_classifies_rows_honestly():
    rows = [
        _row("a", stock="ok", stock_share=1.0),
        _row("b", stock="crash", stock_detail="RuntimeError: x", after_scaffold="ok", generated=1, after_share=1.0),
        _row("c", stock="under-quantized", stock_share=0.5, after_scaffold="needs-human", todos=2),
        _row("d", stock="crash", after_scaffold="failed", after_detail="generated test: AssertionError"),
        SurveyRow(model_type="e", tiny_build="ShrinkError: no strategy", versions=dict(VERSIONS), phase="done"),
    ]
    summary = summarize(rows)
    assert (summary.types, summary.ok, summary.fixed, summary.human, summary.survey_failures) == (5, 1, 1, 2, 1)
    assert summary.reasons == {"TODOs left by new-arch": 1, "after-scaffold failed (generated test)": 1}
    assert summary.line().startswith("5 types, 1 ok out of the box, 1 fixed by scaffold with no hand edits, 2 need")
    assert "1 not surveyed (tiny build failed: the survey's own failure)" in summary.line()


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"generated": 0, "after_share": 1.0}, "nothing generated"),
        ({"generated": 1, "after_share": None}, "no share recorded"),
        ({"generated": 2, "after_share": 0.493, "stock_share": 0.493}, "share 49.3% after (stock 49.3%)"),
        ({"generated": 1, "after_share": 0.9}, "share 90.0% after (stock 20.0%)"),
    ],
)
def test_a_passing_generated_test_is_a_fix_only_with_proof(fields, why):
    row = _row("x", **{"stock": "under-quantized", "stock_share": 0.2, "after_scaffold": "ok", **fields})
    assert row.outcome == "needs-human" and row.unproven_fix == why
    assert row.human_reason == f"generated test passed, fix unproven: {why.split(' (')[0]}"
    proven = _row("y", stock="under-quantized", stock_share=0.493, after_scaffold="ok", generated=1, after_share=1.0)
    assert proven.outcome == "fixed" and proven.unproven_fix == ""


def test_multimodal_rows_are_not_counted_as_autoround_failures():
    rows = [_row("a", stock="ok", stock_share=1.0), _row("m", stock=R.MULTIMODAL, stock_detail="needs a processor")]
    summary = summarize(rows)
    assert (summary.types, summary.ok, summary.human, summary.multimodal) == (2, 1, 0, 1)
    assert rows[1].outcome == "not-surveyed"
    assert "; 1 multimodal, not surveyed (AutoRound's MLLM path needs a processor);" in summary.line()


def test_ok_rows_with_a_silent_replay_mismatch_are_counted():
    rows = [
        _row("a", stock="ok", findings=["block_replay:fails"], replay_evidence=[EVIDENCE]),
        _row("b", stock="ok", findings=[]),
    ]
    summary = summarize(rows)
    assert (summary.ok, summary.ok_replay_mismatch) == (2, 1)
    assert "2 ok out of the box (1 of them replay some block with wrong inputs" in summary.line()


EVIDENCE = {"block": "h.1", "cause": "alibi", "inputs": ["alibi"], "max_abs_err": 0.3, "exception": ""}


def test_confusion_matrix_of_inspect_against_stock():
    from scaffold.survey.agreement import CLEAN, FLAGGED, STOCK_BROKEN, STOCK_OK, STOCK_REPLAY, confusion

    rows = [
        _row("ok_clean", stock="ok", stock_share=1.0),
        _row("broken_flagged", stock="crash", findings=["fused_moe:fails"]),
        _row("broken_clean", stock="under-quantized", stock_share=0.4, stock_detail="unpacked: x.experts"),
        _row("ok_flagged", stock="ok", stock_share=1.0, findings=["layer_types:silently-skips-weights"]),
        _row("replay_evidenced", stock="ok", findings=["block_replay:fails"], replay_evidence=[EVIDENCE]),
        _row(
            "replay_unknown",
            stock="ok",
            findings=["block_replay:fails"],
            replay_evidence=[{**EVIDENCE, "cause": "unknown", "inputs": []}],
        ),
        _row(
            "unchained_list",
            stock="ok",
            findings=["block_detection:fails"],
            replay_evidence=[{"block": "t.attentions", "cause": "unchained", "inputs": ["t.attentions"]}],
        ),
        _row("timed_out", stock="timeout"),
        SurveyRow(model_type="no_tiny", tiny_build="ShrinkError: x", versions=dict(VERSIONS), phase="done"),
    ]
    matrix = confusion(rows)
    assert matrix.compared == 7 and matrix.agree == 4
    assert matrix.cells == {
        (CLEAN, STOCK_OK): 1,
        (FLAGGED, STOCK_BROKEN): 1,
        (CLEAN, STOCK_BROKEN): 1,
        (FLAGGED, STOCK_OK): 2,
        (FLAGGED, STOCK_REPLAY): 2,
    }
    reasons = {d.model_type: d.reason for d in matrix.disagreements}
    assert set(reasons) == {"broken_clean", "ok_flagged", "replay_unknown"}
    assert reasons["broken_clean"] == "inspect finds nothing; stock under-quantized: unpacked: x.experts"
    assert "replay evidence missing" in reasons["replay_unknown"]
    assert summarize(rows).ok_replay_mismatch == 2  # the evidenced ones only
    assert "evidence missing" not in reasons["ok_flagged"]
    line = summarize(rows).line()
    assert line.endswith("inspect vs stock: 4 agree, 3 disagree")
    text = markdown(rows, VERSIONS)
    assert "| flagged | 2 | 1 | 2 |" in text and "- **replay_unknown** (flagged / ok):" in text


def test_markdown_and_html_tables():
    host = {"device": "cpu", "cpu": "Xeon", "bf16": True, "amp_dtype": "bfloat16"}
    rows = [
        _row("a|b", stock="ok", stock_share=1.0, host=host),
        _row("c", stock="crash", after_scaffold="ok", generated=2, after_share=0.96875, host=host),
    ]
    text = markdown(rows, VERSIONS)
    assert "| a\\|b |" in text and "96.9%" in text and "transformers 5.24.0, " in text and "scaffold_commit abc" in text
    assert "| c |  | ok | crash |  |  | ok | 2 | 96.9% | 0 |" in text
    assert "Host: cpu Xeon (bf16), AutoRound tuned in bfloat16 (2 rows)." in text
    page = html_page(rows, VERSIONS)
    assert page.count("<tr class=") == 2 and 'data-sort="0.96875"' in page and "<script>" in page
    assert "<h2>Inspect against stock AutoRound</h2>" in page
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
    assert pending_types(["a", "b", "c"], results, {**VERSIONS, "scaffold_commit": "def"}) == ["a", "b", "c"]


def test_tool_identity_keys_on_commit_and_uncommitted_changes(monkeypatch):
    from scaffold.survey import provenance

    answers = {"rev-parse": "0123456789abcdef\n", "status": "", "diff": ""}

    def fake_git(root, *args):
        if args[:2] == ("rev-parse", "--show-toplevel"):
            return str(provenance.Path(provenance.__file__).parents[2]) + "\n"
        return answers[args[0]]

    monkeypatch.setattr(provenance, "_git", fake_git)
    clean = provenance.tool_identity()
    assert (clean.commit, clean.dirty, clean.key) == ("0123456789ab", False, "0123456789ab")
    answers.update(status=" M scaffold/cli.py\n", diff="-old\n+new\n")
    dirty = provenance.tool_identity()
    assert dirty.dirty and dirty.key.startswith("0123456789ab+") and len(dirty.changes) == 10
    answers.update(diff="-old\n+newer\n")
    assert provenance.tool_identity().key != dirty.key
    monkeypatch.setattr(provenance, "_git", lambda root, *args: None)
    assert provenance.tool_identity() == provenance.ToolIdentity(commit="v" + provenance_version(), dirty=False)


def provenance_version() -> str:
    import scaffold

    return scaffold.__version__


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


SURVEY_TOOL = "feedc0ffee00"  # the tool identity both survey runs below are keyed on (others edit this checkout)


@pytest.fixture(scope="module")
def surveyed(tmp_path_factory):
    """llama (healthy), qwen3_moe (MoE) and bloom (crashes today) in one run; only bloom gets new-arch + verify,
    since the fix runs only where stock AutoRound crashed or under-quantized."""
    from scaffold.survey import provenance

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("survey")
    args = ["survey", "--types", "bloom,llama,qwen3_moe", "--jobs", "2", "--out", str(out), "--timeout", "400"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(provenance, "tool_identity", lambda: provenance.ToolIdentity(SURVEY_TOOL, dirty=False))
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        yield out, {row.model_type: row for row in read_rows(out / "results.jsonl")}, result.output


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
    # keyed on the survey's identity, taken once; commit/dirty say what the worker really ran
    assert llama.versions["scaffold_commit"] == SURVEY_TOOL and llama.commit and llama.commit != SURVEY_TOOL
    assert llama.timestamp.startswith("20")
    assert llama.host["amp_dtype"] in ("bfloat16", "float32") and isinstance(llama.host["bf16"], bool)
    bloom = rows["bloom"]
    assert bloom.stock == "crash" and bloom.stock_detail.startswith("RuntimeError")
    assert bloom.findings == ["block_replay:fails"]
    assert [(e["cause"], e["inputs"]) for e in bloom.replay_evidence] == [("alibi", ["alibi"])]
    # alibi replayed per sample: the generated plugin fixes bloom, and its test's export packs every block weight
    assert (bloom.after_scaffold, bloom.after_detail, bloom.generated, bloom.after_share) == ("ok", "", 1, 1.0)
    assert bloom.outcome == "fixed"
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
