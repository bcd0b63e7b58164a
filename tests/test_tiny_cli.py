"""``scaffold tiny TARGET --out DIR`` through typer's CliRunner."""

from __future__ import annotations

from typer.testing import CliRunner

from scaffold.cli import app

runner = CliRunner()


def test_tiny_command_saves_a_loadable_folder(tmp_path):
    from transformers import AutoConfig, AutoTokenizer

    out = tmp_path / "tiny_llama"
    result = runner.invoke(app, ["tiny", "transformers:llama", "--out", str(out), "--layers", "1", "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert "strategy careful" in result.output
    for name in ("config.json", "model.safetensors", "tokenizer.json", "calibration.txt"):
        assert (out / name).is_file(), name
    assert AutoConfig.from_pretrained(out).num_hidden_layers == 1
    assert len(AutoTokenizer.from_pretrained(out)) == AutoConfig.from_pretrained(out).vocab_size


def test_tiny_command_reports_unknown_type_in_one_line(tmp_path):
    result = runner.invoke(app, ["tiny", "transformers:llamma", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert "error [resolve]" in result.output and "did you mean llama" in result.output
    assert "Traceback" not in result.output
