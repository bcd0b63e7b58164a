"""new-arch exits 1 while TODO(scaffold) items remain; REPORT.md's checklist lists every to-do of the plan."""

from __future__ import annotations

from test_generate_render import report_of
from typer.testing import CliRunner

from scaffold.cli import app
from scaffold.inspection.findings import Finding, Mode, Severity
from scaffold.plan.generate import build_plan, render_adaptation
from scaffold.resolve.target import ResolvedTarget


def test_a_todo_no_comment_marks_is_in_the_checklist(tmp_path):
    """A finding whose generator could not write code (the probe named no key) is a to-do in the checklist."""
    finding = Finding(Mode.SHARED_CACHE_KEYS, Severity.FAILS, "Something is shared.", "declare it", evidence={})
    report = report_of([finding], model_type="toy_todo")
    plan, items = build_plan(report)
    (todo,) = [t for item in plan.items for t in item.todos]
    target = ResolvedTarget(spec="toy", kind="transformers", config=None, model_type="toy_todo")
    rendered = render_adaptation(report, plan, items, target, tmp_path / "toy", prediction=None, use_ruff=False)
    text = (tmp_path / "toy" / "REPORT.md").read_text()
    assert f"- To do by hand: {todo}" in text
    checklist = text.split("## TODO(scaffold) checklist", 1)[1]
    assert "Nothing left to do by hand" not in checklist
    assert f"- [ ] shared_cache_keys: {todo}" in checklist
    assert [(t.file, t.line) for t in rendered.todos] == [("", 0)]


def test_new_arch_exits_1_and_lists_the_todos(tmp_path):
    out = tmp_path / "hrm_text"
    result = CliRunner().invoke(app, ["new-arch", "transformers:hrm_text", "--out", str(out)])
    assert result.exit_code == 1, result.output
    report = (out / "REPORT.md").read_text()
    rows = [line for line in report.splitlines() if line.startswith("- [ ] ")]
    printed = [line for line in result.output.splitlines() if line.startswith("TODO(scaffold) ")]
    assert rows and len(rows) == len(printed)
    assert f"{len(rows)} to do by hand" in result.output
    for row, line in zip(rows, printed, strict=True):
        item = row.removeprefix("- [ ] ")
        if item.startswith("`"):  # a comment in a file: - [ ] `file:line`: text
            assert line.startswith(f"TODO(scaffold) {item.split('`')[1]} ")
        else:  # a to-do of the plan with no comment to point at: - [ ] mode: text
            assert line == f"TODO(scaffold) {item}"
    assert any(not row.startswith("- [ ] `") for row in rows)  # both kinds are listed
