"""Survey one model type in this process (the runner starts it as ``python -m scaffold.survey.worker``).

Stages: tiny build + inspect, stock AutoRound on the tiny instance, then (when the stock run crashed or
under-quantized) ``new-arch`` into a temporary folder and its generated test. The row is rewritten to
``row_path`` before each stage, so a runner that kills this process on timeout still knows how far it got.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scaffold.errors import first_line
from scaffold.measure.stock import STOCK_GROUP_SIZE, run_stock
from scaffold.survey import rows as R

VERSIONS_ENV = "SCAFFOLD_SURVEY_VERSIONS"  # JSON: the survey's versions, set by scaffold.survey.runner


def _first_line(exc: BaseException) -> str:
    return first_line(exc, limit=300)


def _write(row: R.SurveyRow, path: Path, phase: str) -> None:
    row.phase = phase
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(row.to_json()), encoding="utf-8")
    os.replace(tmp, path)


def multimodal_for_autoround(ctx: Any, findings: list[str]) -> bool:
    """AutoRound calls the model multimodal and it is (no mllm_misdetection finding says otherwise)."""
    from scaffold.inspection.findings import Mode
    from scaffold.modes.mllm_misdetection.detect import autoround_mllm_verdict

    misdetected = any(finding.startswith(f"{Mode.MLLM_MISDETECTION.value}:") for finding in findings)
    return autoround_mllm_verdict(ctx).multimodal and not misdetected


@dataclass
class FixResult:
    status: str  # ok | failed | needs-human
    detail: str = ""
    todos: int = 0
    generated: int = 0  # findings new-arch generated code for
    after_share: float | None = None  # block_share the generated test recorded for its export


def run_fix(target: Any, out_dir: Path, deadline: float) -> FixResult:
    """``new-arch`` into ``out_dir`` and its generated test."""
    from scaffold.measure.verify import run_generated_test
    from scaffold.plan.generate import new_arch
    from scaffold.render.folder import todo_line

    try:
        result = new_arch(target, out_dir, force=True)
    except Exception as exc:  # noqa: BLE001 - recorded in the row
        return FixResult(R.FAILED, f"new-arch: {_first_line(exc)}")
    generated = sum(any(item.generated for item in items) for items in result.items.values())
    todos = len(result.rendered.todos)
    if todos:
        first = todo_line(result.rendered.todos[0])
        return FixResult(R.NEEDS_HUMAN, f"{todos} TODO(scaffold), first {first}"[:300], todos, generated)
    left = max(10, int(deadline - time.monotonic()))
    try:
        verdict = run_generated_test(out_dir, timeout=left)
    except Exception as exc:  # noqa: BLE001 - recorded in the row
        return FixResult(R.FAILED, f"verify: {_first_line(exc)}", generated=generated)
    after_share = verdict.data.get("counted_share", verdict.data.get("block_share"))
    after_share = float(after_share) if isinstance(after_share, (int, float)) else None
    if verdict.passed:
        return FixResult(R.OK, generated=generated, after_share=after_share)
    detail = f"generated test: {failure_reason(verdict.output_tail)}"[:300]
    return FixResult(R.FAILED, detail, generated=generated, after_share=after_share)


def replay_evidence(problems: list[Any]) -> list[dict[str, Any]]:
    """What each block_replay finding measured (the block, the error or crash, the input named as the cause), and
    each list block_detection's chain probe saw AutoRound take for blocks though the forward does not chain it
    (AutoRound then feeds each such block the previous one's output: wrong inputs, silently)."""
    from scaffold.inspection.findings import Mode

    entries = []
    for finding in problems:
        if finding.mode is Mode.BLOCK_DETECTION:  # a list AutoRound takes for blocks that the forward does not chain
            unchained = [path for path, how in (finding.evidence.get("forward") or {}).items() if how == "unchained"]
            entries += [{"block": path, "cause": "unchained", "inputs": [path]} for path in unchained]
            continue
        if finding.mode is not Mode.BLOCK_REPLAY:
            continue
        evidence = finding.evidence
        entries.append(
            {
                "block": evidence.get("block", ""),
                "cause": evidence.get("cause", "unknown"),
                "inputs": list(evidence.get("cause_inputs") or []),
                "max_abs_err": evidence.get("max_abs_err"),
                "exception": str(evidence.get("exception") or "")[:200],
            }
        )
    return entries


def failure_reason(output: str) -> str:
    """The most telling line of a failed pytest run: its ``FAILED`` summary, an ``E`` line, or the last line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for prefix in ("FAILED ", "ERROR ", "E "):
        found = [line for line in lines if line.startswith(prefix)]
        if found:
            return found[0]
    return lines[-1] if lines else "no output"


def survey_one(
    model_type: str,
    row_path: Path,
    *,
    fix: bool = True,
    timeout: float = 600.0,
    versions: dict[str, str] | None = None,
) -> R.SurveyRow:
    """Fill and return the row of ``model_type``, rewriting ``row_path`` as each stage starts.

    ``versions``: what the row is keyed on (the survey's, taken at its start); default: this process's own.
    ``commit`` and ``dirty`` always say what this process runs.
    """
    from scaffold.survey.provenance import host_info, survey_versions, timestamp, tool_identity

    start = time.monotonic()
    deadline = start + timeout
    tool = tool_identity()
    row = R.SurveyRow(model_type=model_type, versions=versions or survey_versions(tool), timestamp=timestamp())
    row.commit, row.dirty = tool.commit, tool.dirty
    _write(row, row_path, "tiny_build")
    try:
        from scaffold.inspection.stage import inspect_with_context
        from scaffold.resolve.target import resolve_target

        target = resolve_target(f"transformers:{model_type}")
        report, ctx = inspect_with_context(target, group_size=STOCK_GROUP_SIZE, dynamic=True)
        row.model_class = report.model_class
        row.findings = [f"{f.mode.value}:{f.severity.value}" for f in report.problems]
        row.replay_evidence = replay_evidence(report.problems)
        tiny = ctx.tiny()
    except Exception as exc:  # noqa: BLE001 - a tiny build failure is the survey's own failure
        row.tiny_build = ctx._tiny_error if "ctx" in locals() and ctx._tiny_error else _first_line(exc)
        row.seconds = round(time.monotonic() - start, 1)
        _write(row, row_path, "done")
        return row
    row.tiny_build = R.OK
    row.host = host_info()
    if multimodal_for_autoround(ctx, row.findings):
        row.stock = R.MULTIMODAL
        row.stock_detail = "AutoRound's MLLM path needs the model's processor and image/audio calibration data"
        row.seconds = round(time.monotonic() - start, 1)
        _write(row, row_path, "done")
        return row
    _write(row, row_path, "stock")
    with tempfile.TemporaryDirectory(prefix=f"survey-{model_type}-") as tmp:
        # AutoRound's own precision on this host; the target's whole config where AutoRound reads the checkpoint's.
        # Without bf16 that is the float32 run inspect already made (ctx.probe_results): not run twice.
        from scaffold.measure.precision import host_precision

        stock = None if host_precision().bf16 else ctx.probe_results.get("stock_run")
        stock = stock or run_stock(tiny, Path(tmp) / "stock", checkpoint_config=target.config)
        row.stock, row.stock_detail, row.stock_share = stock.status, stock.detail(), stock.share
        row.host = host_info(stock.amp_dtype)
        if fix and row.stock != R.OK:
            _write(row, row_path, "after_scaffold")
            fixed = run_fix(target, Path(tmp) / "adaptation", deadline)
            row.after_scaffold, row.after_detail, row.todos = fixed.status, fixed.detail, fixed.todos
            row.generated, row.after_share = fixed.generated, fixed.after_share
    row.seconds = round(time.monotonic() - start, 1)
    _write(row, row_path, "done")
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model_type")
    parser.add_argument("row_path", type=Path)
    parser.add_argument("--no-fix", action="store_true")
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    versions = json.loads(os.environ.get(VERSIONS_ENV) or "{}") or None  # set by the runner
    survey_one(args.model_type, args.row_path, fix=not args.no_fix, timeout=args.timeout, versions=versions)


if __name__ == "__main__":
    main()
