"""Target resolution and bad input: one clear line, exit code 2, no traceback."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from scaffold.cli import app
from scaffold.errors import ScaffoldError
from scaffold.resolve.target import resolve_target

runner = CliRunner()

LLAMA_CONFIG = {
    "model_type": "llama",
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 512,
}


def _one_error_line(result) -> str:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    return lines[0]


def test_transformers_target_is_offline_default_config():
    target = resolve_target("transformers:llama")
    assert target.kind == "transformers" and target.model_type == "llama"
    assert type(target.config).__name__ == "LlamaConfig"


def test_unknown_model_type_suggests_close_names():
    line = _one_error_line(runner.invoke(app, ["inspect", "transformers:lama"]))
    assert "unknown model_type 'lama'" in line and "did you mean" in line and "llama" in line


def test_local_folder(tmp_path: Path):
    (tmp_path / "config.json").write_text(json.dumps(LLAMA_CONFIG))
    target = resolve_target(str(tmp_path))
    assert target.kind == "local" and target.model_type == "llama" and target.config.hidden_size == 64


def test_missing_folder():
    line = _one_error_line(runner.invoke(app, ["inspect", "./no/such/folder"]))
    assert "does not exist" in line


def test_folder_that_is_not_a_model(tmp_path: Path):
    (tmp_path / "notes.txt").write_text("hello")
    line = _one_error_line(runner.invoke(app, ["inspect", str(tmp_path)]))
    assert "no config.json" in line


def test_malformed_config(tmp_path: Path):
    (tmp_path / "config.json").write_text("{not json")
    line = _one_error_line(runner.invoke(app, ["inspect", str(tmp_path)]))
    assert "not valid JSON" in line


def test_config_without_model_type(tmp_path: Path):
    (tmp_path / "config.json").write_text(json.dumps({"hidden_size": 8}))
    line = _one_error_line(runner.invoke(app, ["inspect", str(tmp_path)]))
    assert "neither model_type nor auto_map" in line


def test_remote_code_needs_the_flag(tmp_path: Path):
    config = dict(LLAMA_CONFIG, model_type="mycustom", auto_map={"AutoConfig": "configuration_x.XConfig"})
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "configuration_x.py").write_text("raise SystemExit('remote code ran without permission')\n")
    line = _one_error_line(runner.invoke(app, ["inspect", str(tmp_path)]))
    assert "--trust-remote-code" in line


def test_hub_id_offline_and_not_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(ScaffoldError) as info:
        resolve_target("someone/never-cached-model", revision=None)
    assert "not in the local Hugging Face cache" in info.value.one_line()


HUB_REPO_FILES = {  # a Hub repository as its file listing shows it: weights, tokenizer, docs and code
    "config.json": json.dumps(LLAMA_CONFIG),
    "generation_config.json": "{}",
    "model.safetensors": "weights",
    "model-00001-of-00002.safetensors": "weights",
    "pytorch_model.bin": "weights",
    "model.safetensors.index.json": "{}",
    "tokenizer.json": "{}",
    "README.md": "# acme/tiny-llama",
    "helper.py": "X = 1\n",
    "extra/nested.bin": "weights",
}


@pytest.fixture
def fake_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """Online mode against a fake Hub: huggingface_hub's own ``snapshot_download`` runs, the repo listing and
    file downloads it asks for are served here and recorded (no network)."""
    import huggingface_hub._snapshot_download as snapshot
    import huggingface_hub.constants as constants
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import RepoFile

    calls: dict = {"revisions": [], "downloads": []}
    commit = "a" * 40
    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))

    def repo_info(self, repo_id, *, revision=None, **kwargs):
        calls["revisions"].append((repo_id, revision))
        return SimpleNamespace(sha=commit)

    def list_repo_tree(self, repo_id, *, revision=None, **kwargs):
        assert revision == commit
        for index, (path, text) in enumerate(HUB_REPO_FILES.items()):
            yield RepoFile(path=path, size=len(text), oid=f"{index:040d}")

    def hf_hub_download(repo_id, *, filename, revision, cache_dir, **kwargs):
        calls["downloads"].append(filename)
        path = Path(cache_dir) / f"models--{repo_id.replace('/', '--')}" / "snapshots" / revision / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(HUB_REPO_FILES[filename])
        return str(path)

    monkeypatch.setattr(HfApi, "repo_info", repo_info)
    monkeypatch.setattr(HfApi, "list_repo_tree", list_repo_tree)
    monkeypatch.setattr(snapshot, "hf_hub_download", hf_hub_download)
    return calls


def test_hub_id_fetches_config_and_code_only(fake_hub: dict):
    """The real Hub code path: only config.json, generation_config.json and *.py are requested, never weights."""
    target = resolve_target("acme/tiny-llama", revision="v1.0")
    assert target.kind == "hub" and target.model_type == "llama" and target.revision == "v1.0"
    assert fake_hub["revisions"] == [("acme/tiny-llama", "v1.0")]  # the pinned revision
    assert sorted(fake_hub["downloads"]) == ["config.json", "generation_config.json", "helper.py"]
    assert sorted(p.name for p in target.model_dir.iterdir()) == ["config.json", "generation_config.json", "helper.py"]


def test_every_command_has_help():
    import typer

    assert runner.invoke(app, ["--help"]).exit_code == 0
    commands = sorted(typer.main.get_command(app).commands)
    for command in ["inspect", "tiny"]:
        assert command in commands
    for command in commands:
        sub = runner.invoke(app, [command, "--help"])
        assert sub.exit_code == 0, command
