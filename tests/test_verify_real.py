"""`scaffold verify --real` counts only when a real checkpoint was quantized."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from scaffold.cli import app
from scaffold.measure.verify import REAL_KEY, real_run_problem

REPO = Path(__file__).resolve().parent.parent


def test_a_skipped_real_test_is_a_problem_naming_what_to_pass():
    output = "SKIPPED [1] test_bloom.py:76: the real checkpoint needs a CUDA GPU\n1 passed, 1 skipped"
    problem = real_run_problem({}, output)
    assert problem and "skipped (the real checkpoint needs a CUDA GPU)" in problem
    assert "local folder" in problem and "safetensors" in problem
    assert real_run_problem({REAL_KEY: "/models/x"}, output) is None


@pytest.mark.slow
def test_verify_real_fails_when_the_real_checkpoint_test_skips():
    """On a target without weights (transformers:bloom) the real-checkpoint test skips: verify must not pass."""
    result = CliRunner().invoke(
        app, ["verify", "transformers:bloom", "--generated", str(REPO / "generated" / "bloom"), "--real"]
    )
    text = " ".join(result.output.split())
    assert result.exit_code == 1, text
    assert "--real: the real-checkpoint test skipped" in text
