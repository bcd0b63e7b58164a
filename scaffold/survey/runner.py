"""Run the survey: one isolated worker subprocess per model type, in parallel, resumable, under a time limit."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from pathlib import Path

from scaffold.errors import ScaffoldError
from scaffold.survey import rows as R
from scaffold.survey.worker import VERSIONS_ENV

RESULTS = "results.jsonl"


@dataclass
class SurveyOptions:
    out: Path
    jobs: int = 1
    timeout: float = 600.0  # seconds per model type, all stages together
    fix: bool = True
    # the versions every row of this run is keyed on, taken once at its start (a commit made while the survey
    # runs does not split it); empty: taken when the run starts
    versions: dict[str, str] = field(default_factory=dict)


def causal_lm_types() -> list[str]:
    """Every model type transformers maps to a causal-LM class."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    return sorted(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES)


def select_types(types: list[str], all_causal_lm: bool) -> list[str]:
    """The model types to survey, in order, without duplicates; unknown names are a user error."""
    from scaffold.resolve.target import known_model_types

    chosen = list(dict.fromkeys([*types, *(causal_lm_types() if all_causal_lm else [])]))
    if not chosen:
        raise ScaffoldError("nothing to survey", "survey", hint="pass --types a,b or --all-causal-lm")
    known = set(known_model_types())
    unknown = [name for name in chosen if name not in known]
    if unknown:
        raise ScaffoldError(f"unknown model type(s): {', '.join(unknown)}", "survey")
    return chosen


def current_versions() -> dict[str, str]:
    """The versions rows are keyed on: packages and the tool's commit (scaffold.survey.provenance)."""
    from scaffold.survey.provenance import survey_versions

    return survey_versions()


def pending_types(types: list[str], results: Path, versions: dict[str, str], fix: bool = False) -> list[str]:
    """The types without a finished row for these versions in ``results`` (with ``fix``, rows whose fix was
    skipped by ``--no-fix`` are pending again)."""
    done = {row.model_type for row in R.latest_rows(R.read_rows(results), versions) if _complete(row, fix)}
    return [name for name in types if name not in done]


def _complete(row: R.SurveyRow, fix: bool) -> bool:
    fix_skipped = row.tiny_build == R.OK and row.stock != R.OK and row.after_scaffold == R.SKIPPED
    return row.phase == "done" and not (fix and fix_skipped)


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        process.kill()


def _interrupted_row(
    row_path: Path, model_type: str, status: str, detail: str, seconds: float, versions: dict[str, str]
) -> R.SurveyRow:
    """The worker's last written row with the stage it was in marked ``status`` (timeout / worker-crash)."""
    try:
        row = R.SurveyRow.from_json(json.loads(row_path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        row = R.SurveyRow(model_type=model_type, versions=dict(versions), phase="tiny_build")
    if row.phase in ("start", "tiny_build"):
        row.tiny_build = f"{status}: {detail}"
    elif row.phase == "stock":
        row.stock, row.stock_detail = status, detail
    elif row.phase == "after_scaffold":
        row.after_scaffold, row.after_detail = status, detail
    row.phase = "done"
    row.seconds = round(seconds, 1)
    return row


def run_worker(model_type: str, options: SurveyOptions) -> R.SurveyRow:
    """Survey ``model_type`` in a fresh subprocess; a crash or timeout still yields a row."""
    start = time.monotonic()
    versions = options.versions or current_versions()
    with tempfile.TemporaryDirectory(prefix="survey-row-") as tmp:
        row_path = Path(tmp) / "row.json"
        command = [sys.executable, "-m", "scaffold.survey.worker", model_type, str(row_path)]
        command += ["--timeout", str(options.timeout)] + ([] if options.fix else ["--no-fix"])
        env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "PYTHONWARNINGS": "ignore"}
        env[VERSIONS_ENV] = json.dumps(versions)
        process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True
        )
        try:
            _, stderr = process.communicate(timeout=options.timeout)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            process.communicate()
            detail = f"past {options.timeout:g} s"
            return _interrupted_row(row_path, model_type, R.TIMEOUT, detail, time.monotonic() - start, versions)
        row_written = row_path.is_file()
        if row_written:
            row = R.SurveyRow.from_json(json.loads(row_path.read_text(encoding="utf-8")))
            if process.returncode == 0 and row.phase == "done":
                return row
        tail = " ".join((stderr or "").strip().splitlines()[-1:])[:300]
        detail = f"exit {process.returncode}" + (f": {tail}" if tail else "")
        return _interrupted_row(row_path, model_type, R.WORKER_CRASH, detail, time.monotonic() - start, versions)


def run_survey(
    types: list[str], options: SurveyOptions, on_row: Callable[[R.SurveyRow], None] | None = None
) -> list[R.SurveyRow]:
    """Survey the pending ``types`` into ``options.out/results.jsonl``; returns the rows of this run."""
    results = options.out / RESULTS
    options = replace(options, versions=options.versions or current_versions())
    todo = pending_types(types, results, options.versions, options.fix)
    new_rows: list[R.SurveyRow] = []
    with ThreadPoolExecutor(max_workers=max(1, options.jobs)) as pool:
        futures = {pool.submit(run_worker, name, options): name for name in todo}
        for future in as_completed(futures):
            row = future.result()
            R.append_row(results, row)
            new_rows.append(row)
            if on_row is not None:
                on_row(row)
    return new_rows
