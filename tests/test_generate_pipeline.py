"""new-arch end to end on a target AutoRound already handles (transformers:llama): nothing to generate."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from scaffold.cli import app
from scaffold.plan.generate import new_arch
from scaffold.resolve.target import resolve_target

REPO = Path(__file__).resolve().parent.parent


def read_all(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def llama_out(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("new-arch") / "llama"
    result = CliRunner().invoke(app, ["new-arch", "transformers:llama", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "nothing to generate" in result.output
    return out


def test_nothing_to_fix_target_gets_a_report_and_a_test_only(llama_out):
    expected = {".copier-answers.yml", "README_rows.md", "REPORT.md", "conftest.py", "edits.json", "inspect.json"}
    assert set(read_all(llama_out)) == expected | {"test_llama.py"}
    report = (llama_out / "REPORT.md").read_text()
    assert "## Nothing to generate" in report and "Nothing left to do by hand." in report
    assert json.loads((llama_out / "edits.json").read_text())["edits"] == []
    assert json.loads((llama_out / "inspect.json").read_text())["model_type"] == "llama"
    test = (llama_out / "test_llama.py").read_text()
    assert 'TARGET = "transformers:llama"' in test and "PLUGIN = None" in test
    assert '"layers": ' in test  # the prediction is recorded in the test


def test_running_twice_gives_identical_files(llama_out, tmp_path):
    again = new_arch(resolve_target("transformers:llama"), tmp_path / "llama")
    assert read_all(again.rendered.out) == read_all(llama_out)


def test_existing_output_fails_in_one_line_before_inspecting(llama_out):
    result = CliRunner().invoke(app, ["new-arch", "transformers:llama", "--out", str(llama_out)])
    assert result.exit_code == 2
    assert "already exists" in result.output and "Traceback" not in result.output


def test_generated_python_is_ruff_clean(llama_out):
    for command in (["check"], ["format", "--check"]):
        done = subprocess.run([sys.executable, "-m", "ruff", *command, str(llama_out)], cwd=REPO, capture_output=True)
        assert done.returncode == 0, done.stdout


@pytest.mark.slow
def test_generated_test_passes_and_writes_a_verdict(llama_out, tmp_path):
    verdict = tmp_path / "verdict.json"
    env = {**os.environ, "SCAFFOLD_VERDICT": str(verdict)}
    command = [sys.executable, "-m", "pytest", str(llama_out / "test_llama.py"), "-q", "-p", "no:cacheprovider"]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-3000:]
    data = json.loads(verdict.read_text())
    assert data["layers_quantized"] == data["layers_expected"] > 0
    assert data["reload"] == "ok" and data["block_share"] == data["block_share_expected"]


@pytest.mark.slow
def test_real_checkpoint_path_on_a_saved_checkpoint(tmp_path):
    """The --real path (GPU in the generated test) run on CPU on a checkpoint saved to disk."""
    from scaffold.testkit import quantize_real
    from scaffold.tiny import build_tiny, save_tiny

    folder = save_tiny(build_tiny(resolve_target("transformers:llama").config), tmp_path / "checkpoint")
    predicted = {"stacks": ["model.layers"], "roles": {}}
    result = quantize_real(
        str(folder),
        tmp_path / "export",
        predicted=predicted,
        test_data={},
        group_size=32,
        trust_remote_code=False,
        device="cpu",
    )
    assert (result.packed_layers, result.packed_params) == (result.expected_layers, result.expected_params)
    assert result.packed_layers > 0 and result.reload_ok and result.finite


@pytest.mark.slow
def test_shared_tensor_adaptation_makes_autoround_quantize_it(tmp_path):
    """tests/archs/shared_tensor crashes stock AutoRound; its generated plugin + test make it quantize as predicted."""
    arch = REPO / "tests" / "archs" / "shared_tensor"
    expected = json.loads((arch / "expected.json").read_text())
    result = new_arch(resolve_target(str(arch), trust_remote_code=True), tmp_path / "out")
    registered = {key for keys in result.plan.test_data["shared_cache_keys"].values() for key in keys}
    assert registered == set(expected["shared_keys"])
    verdict = tmp_path / "verdict.json"
    env = {**os.environ, "SCAFFOLD_VERDICT": str(verdict)}
    test = result.rendered.out / f"test_{result.report.model_type}.py"
    command = [sys.executable, "-m", "pytest", str(test), "-q", "-p", "no:cacheprovider"]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-3000:]
    data = json.loads(verdict.read_text())
    assert data["adaptation"] == "plugin" and data["layers_quantized"] == data["layers_expected"] > 0


@pytest.mark.slow
def test_per_block_inputs_are_rebuilt_for_replay(tmp_path):
    """transformers:gemma3_text alternates sliding and full attention with their own rotary tables: AutoRound
    replays layer 1 with layer 0's, and the generated rebuild fix gives it its own (the generated test checks it)."""
    from scaffold import testkit

    result = new_arch(resolve_target("transformers:gemma3_text"), tmp_path / "out")
    fixes = result.plan.test_data["block_replay"]
    assert [(f["rewrite"], f["skeleton"]) for f in fixes] == [("rebuild", False)]
    assert "position_embeddings" in fixes[0]["inputs"]
    tiny = testkit.build_tiny_target("transformers:gemma3_text", False)
    assert testkit.replay_problems(tiny)  # stock AutoRound replays layer 1 wrongly
    test = result.rendered.out / "test_gemma3_text.py"
    command = [sys.executable, "-m", "pytest", str(test), "-q", "-p", "no:cacheprovider"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "3 passed" in done.stdout  # registries skipped; replay, quantize and finished-check ran
