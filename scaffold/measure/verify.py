"""The verify stage: run a generated adaptation's test and summarise its verdict."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scaffold.errors import ScaffoldError


@dataclass
class Verdict:
    passed: bool
    returncode: int
    data: dict[str, Any] = field(default_factory=dict)  # what the generated test wrote to SCAFFOLD_VERDICT
    output_tail: str = ""
    problem: str | None = None  # why a run that pytest passed still does not count (``--real`` skipped)


REAL_KEY = "real_checkpoint"  # testkit.quantize_real records the checkpoint it quantized under this key
REAL_HINT = "pass as TARGET a local folder holding the checkpoint (config.json and *.safetensors) on a CUDA machine"


def skip_reasons(output: str) -> list[str]:
    """The reasons of pytest's ``-rs`` summary lines (``SKIPPED [1] file:line: reason``)."""
    return [line.split(": ", 1)[-1].strip() for line in output.splitlines() if line.startswith("SKIPPED")]


def real_run_problem(data: dict[str, Any], output: str) -> str | None:
    """None when ``--real`` really quantized a checkpoint, else why not and what to pass."""
    if data.get(REAL_KEY):
        return None
    reasons = [r for r in skip_reasons(output) if "real" in r or "CUDA" in r or "checkpoint" in r]
    why = f"skipped ({reasons[0]})" if reasons else "did not run"
    return f"--real: the real-checkpoint test {why}; {REAL_HINT}"


def find_test(generated_dir: Path) -> Path:
    tests = sorted(generated_dir.glob("test_*.py"))
    if not generated_dir.is_dir() or not tests:
        raise ScaffoldError(
            f"no generated test in {generated_dir}", "verify", hint="run `scaffold new-arch TARGET` first"
        )
    return tests[0]


def run_generated_test(
    generated_dir: Path,
    *,
    checkout: Path | None = None,
    real: bool = False,
    timeout: int = 1800,
    allow_remote_code_from: list[str] | None = None,
) -> Verdict:
    """Run ``test_<slug>.py`` in a subprocess, through the plugin or a patched checkout.

    ``allow_remote_code_from`` reaches the test's own target resolution through the environment.
    """
    from scaffold.resolve.remote_code import ALLOW_ENV

    test = find_test(generated_dir)
    env = dict(os.environ)
    if allow_remote_code_from:
        env[ALLOW_ENV] = " ".join(allow_remote_code_from)
    if checkout is not None:
        if not (checkout / "auto_round").is_dir():
            raise ScaffoldError(f"{checkout} is not an AutoRound checkout (no auto_round/ folder)", "verify")
        env["SCAFFOLD_ADAPTATION"] = "checkout"
        env["PYTHONPATH"] = os.pathsep.join([str(checkout.resolve()), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    with tempfile.TemporaryDirectory() as tmp:
        verdict_file = Path(tmp) / "verdict.json"
        env["SCAFFOLD_VERDICT"] = str(verdict_file)
        command = [sys.executable, "-m", "pytest", test.name, "-q", "-p", "no:cacheprovider"]
        command += ["--real", "-rs"] if real else []
        try:
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, cwd=test.parent)
        except subprocess.TimeoutExpired as exc:
            raise ScaffoldError(f"the generated test ran past {timeout} s", "verify") from exc
        data = json.loads(verdict_file.read_text()) if verdict_file.is_file() else {}
    output = done.stdout + done.stderr
    tail = "\n".join(output.strip().splitlines()[-25:])
    problem = real_run_problem(data, output) if real and done.returncode == 0 else None
    return Verdict(
        passed=done.returncode == 0 and problem is None,
        returncode=done.returncode,
        data=data,
        output_tail=tail,
        problem=problem,
    )
