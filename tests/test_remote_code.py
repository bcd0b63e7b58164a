"""``auto_map`` is checked before any code runs: only the target's own code, unless a flag names another source."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from scaffold.cli import app
from scaffold.errors import ScaffoldError
from scaffold.resolve.remote_code import ALLOW_ENV
from scaffold.resolve.target import resolve_target

runner = CliRunner()
MARKER_ENV = "SCAFFOLD_TEST_REMOTE_CODE_RAN"
CONFIG_CODE = """import os
from pathlib import Path

from transformers import LlamaConfig

Path(os.environ["{marker}"]).write_text("{name}")


class {cls}(LlamaConfig):
    model_type = "remotex"
"""
BASE = {"model_type": "remotex", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4}


def _code_folder(folder: Path, module: str = "configuration_x", cls: str = "XConfig") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{module}.py").write_text(CONFIG_CODE.format(marker=MARKER_ENV, name=folder.name, cls=cls))
    return folder


def _model(folder: Path, auto_map: dict, tokenizer_map: dict | None = None) -> Path:
    _code_folder(folder)
    (folder / "config.json").write_text(json.dumps(dict(BASE, auto_map=auto_map)))
    if tokenizer_map is not None:
        (folder / "tokenizer_config.json").write_text(json.dumps({"auto_map": tokenizer_map}))
    return folder


@pytest.fixture
def marker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A file the remote code writes when it is imported: it must not exist after a refusal."""
    path = tmp_path / "ran.txt"
    monkeypatch.setenv(MARKER_ENV, str(path))
    monkeypatch.delenv(ALLOW_ENV, raising=False)
    return path


def _one_error_line(result) -> str:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


def test_local_target_code_loads(tmp_path: Path, marker: Path):
    target = resolve_target(
        str(_model(tmp_path / "model", {"AutoConfig": "configuration_x.XConfig"})), trust_remote_code=True
    )
    assert type(target.config).__name__ == "XConfig" and marker.read_text() == "model"


def test_code_from_another_folder_is_refused_before_it_runs(tmp_path: Path, marker: Path):
    other = _code_folder(tmp_path / "other", "configuration_y", "YConfig")
    model = _model(tmp_path / "model", {"AutoConfig": f"{other}--configuration_y.YConfig"})
    line = _one_error_line(runner.invoke(app, ["inspect", str(model), "--trust-remote-code", "--static"]))
    assert f"loads code from '{other}'" in line and "refused" in line and "--allow-remote-code-from" in line
    assert not marker.exists()


def test_the_flag_allows_the_named_folder(tmp_path: Path, marker: Path):
    other = _code_folder(tmp_path / "other", "configuration_y", "YConfig")
    model = _model(tmp_path / "model", {"AutoConfig": f"{other}--configuration_y.YConfig"})
    target = resolve_target(str(model), trust_remote_code=True, allow_remote_code_from=[str(other)])
    assert type(target.config).__name__ == "YConfig" and marker.read_text() == "other"
    assert target.allow_remote_code_from == (str(other),)


def test_the_environment_allows_it_for_generated_tests(tmp_path: Path, marker: Path, monkeypatch):
    other = _code_folder(tmp_path / "other", "configuration_y", "YConfig")
    model = _model(tmp_path / "model", {"AutoConfig": f"{other}--configuration_y.YConfig"})
    monkeypatch.setenv(ALLOW_ENV, str(other))
    assert type(resolve_target(str(model), trust_remote_code=True).config).__name__ == "YConfig"


def test_hub_style_reference_from_a_local_folder_names_the_repo(tmp_path: Path, marker: Path):
    model = _model(tmp_path / "model", {"AutoConfig": "configuration_x.XConfig", "AutoModel": "other/repo--m.M"})
    line = _one_error_line(
        runner.invoke(app, ["tiny", str(model), "--trust-remote-code", "--out", str(tmp_path / "t")])
    )
    assert "auto_map['AutoModel'] loads code from 'other/repo'" in line
    assert "--allow-remote-code-from other/repo" in line and not marker.exists()
    allowed = ["verify", str(model), "--trust-remote-code", "--allow-remote-code-from", "someone/else"]
    assert "'other/repo'" in _one_error_line(runner.invoke(app, allowed))


def test_tokenizer_auto_map_is_checked_too(tmp_path: Path, marker: Path):
    model = _model(
        tmp_path / "model", {"AutoConfig": "configuration_x.XConfig"}, {"AutoTokenizer": ["t.T", "x/y--t.F"]}
    )
    with pytest.raises(
        ScaffoldError, match="tokenizer_config.json: auto_map\\['AutoTokenizer'\\] loads code from 'x/y'"
    ):
        resolve_target(str(model), trust_remote_code=True)
    assert not marker.exists()


def test_reference_to_the_target_folder_itself_is_made_local(tmp_path: Path, marker: Path):
    model = _model(tmp_path / "model", {"AutoConfig": f"{tmp_path / 'model'}--configuration_x.XConfig"})
    target = resolve_target(str(model), trust_remote_code=True)
    assert target.config.auto_map == {"AutoConfig": "configuration_x.XConfig"}


@pytest.mark.parametrize(
    "reference, why",
    [
        ("a/b--c/d--configuration_x.XConfig", "'--' appears more than once"),
        ("--configuration_x.XConfig", "the repository part is empty"),
        ("configuration_x", "is not 'module.Class'"),
        ("configuration_x.sub.XConfig", "is not 'module.Class'"),
        ("../configuration_x.XConfig", "is not 'module.Class'"),
        (42, "a int, not a string"),
        (["t.A", "t.B", "t.C"], "expected 'module.Class'"),
    ],
)
def test_malformed_entry_is_one_line(tmp_path: Path, marker: Path, reference, why: str):
    model = _model(tmp_path / "model", {"AutoConfig": "configuration_x.XConfig", "AutoModelForCausalLM": reference})
    line = _one_error_line(runner.invoke(app, ["inspect", str(model), "--trust-remote-code"]))
    assert "auto_map['AutoModelForCausalLM']" in line and "is malformed" in line and why in line
    assert not marker.exists()


def _hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, repo: str, auto_map: dict) -> None:
    """A Hugging Face cache holding ``repo`` (config.json + configuration_x.py) as huggingface_hub lays it out."""
    import huggingface_hub.constants as constants

    cache = tmp_path / "hub"
    folder = cache / f"models--{repo.replace('/', '--')}"
    commit = "1" * 40
    snapshot = _model(folder / "snapshots" / commit, auto_map)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(commit)
    assert snapshot.is_dir()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


def test_hub_target_same_repo_reference_reads_the_fetched_files(tmp_path: Path, marker: Path, monkeypatch):
    _hub_cache(tmp_path, monkeypatch, "acme/remote", {"AutoConfig": "acme/remote--configuration_x.XConfig"})
    target = resolve_target("acme/remote", trust_remote_code=True)
    assert type(target.config).__name__ == "XConfig"
    assert target.config.auto_map == {"AutoConfig": "configuration_x.XConfig"}  # model code from the snapshot


def test_hub_target_cross_repo_reference_is_refused(tmp_path: Path, marker: Path, monkeypatch):
    auto_map = {"AutoConfig": "configuration_x.XConfig", "AutoModelForCausalLM": "other/repo--modeling.M"}
    _hub_cache(tmp_path, monkeypatch, "acme/remote", auto_map)
    with pytest.raises(ScaffoldError) as info:
        resolve_target("acme/remote", trust_remote_code=True)
    line = info.value.one_line()
    assert "Hub repo 'acme/remote'" in line and "loads code from 'other/repo'" in line and not marker.exists()
    assert os.environ.get(ALLOW_ENV) is None
