"""``first_line``: one line that keeps the cause, not a header that stops before it."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from scaffold.cli import app
from scaffold.errors import first_line


def _strict_dataclass_error() -> Exception:
    from transformers import LlamaConfig

    try:
        LlamaConfig(num_hidden_layers="x")
    except Exception as exc:  # noqa: BLE001 - the real exception transformers raises
        return exc
    raise AssertionError("transformers accepted num_hidden_layers='x'")


def test_strict_dataclass_error_keeps_the_reason():
    exc = _strict_dataclass_error()
    assert str(exc).splitlines()[0].endswith(":")  # the premise: the first line is only a header
    line = first_line(exc)
    assert line.startswith("StrictDataclassFieldValidationError: Validation error for field 'num_hidden_layers':")
    assert "expected int, got str" in line and "\n" not in line


def test_headers_and_rulers_are_joined_with_the_first_informative_line():
    exc = ValueError("Errors found:\n-------\n\n  weight 'w' has shape (3, 4)\nsecond problem")
    assert first_line(exc) == "ValueError: Errors found: weight 'w' has shape (3, 4)"


def test_plain_messages_are_unchanged():
    assert first_line(KeyError("model.layers.0")) == "KeyError: 'model.layers.0'"
    assert first_line(RuntimeError("size mismatch\nat line 3")) == "RuntimeError: size mismatch"
    assert first_line(RuntimeError("")) == "RuntimeError:"
    assert first_line(RuntimeError("x" * 50), limit=10) == "RuntimeError: " + "x" * 10


def test_cli_error_line_says_what_is_wrong(tmp_path: Path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama", "num_hidden_layers": "x"}))
    result = CliRunner().invoke(app, ["inspect", str(tmp_path), "--static"])
    assert result.exit_code == 2, result.output
    (line,) = [line for line in result.output.splitlines() if line.strip()]
    assert "num_hidden_layers" in line and "expected int, got str" in line and "Traceback" not in result.output
