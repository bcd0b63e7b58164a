"""The scaffold's own stages under both transformers majors (4.57 via .ci/tf4.sh, and 5.x)."""

from __future__ import annotations

import pytest
import torch

from scaffold import autoround_api
from scaffold.build.meta import build_meta, count_parameters
from scaffold.resolve.target import resolve_target

pytestmark = pytest.mark.tf4


@pytest.mark.parametrize(
    ("spec", "model_class"),
    [("transformers:llama", "LlamaForCausalLM"), ("transformers:qwen3_moe", "Qwen3MoeForCausalLM")],
)
def test_resolve_and_meta_build(spec, model_class):
    target = resolve_target(spec)
    model = build_meta(target.config, where=spec)
    assert type(model).__name__ == model_class
    assert next(model.parameters()).device.type == "meta" and count_parameters(model) > 10**9
    assert autoround_api.get_block_names(model)[0][0] == "model.layers.0"


def test_meta_build_passes_dtype_not_the_deprecated_torch_dtype(monkeypatch):
    """transformers >= 4.56 logs a deprecation for every ``torch_dtype=`` (noise in every CLI run)."""
    import transformers

    target = resolve_target("transformers:llama")
    seen: list[dict] = []
    original = transformers.AutoModelForCausalLM.from_config

    def recording(config, **kwargs):
        seen.append(kwargs)
        return original(config, **kwargs)

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_config", recording)
    model = build_meta(target.config)
    assert seen and seen[0].get("dtype") is torch.float32 and "torch_dtype" not in seen[0]
    assert next(model.parameters()).dtype is torch.float32


def test_cli_inspect_static(tmp_path):
    import json

    from typer.testing import CliRunner

    from scaffold.cli import app

    result = CliRunner().invoke(app, ["inspect", "transformers:qwen3_moe", "--static", "--json"])
    assert result.exit_code in (0, 1), result.output
    report = json.loads(result.stdout)
    assert report["model_class"] == "Qwen3MoeForCausalLM" and report["dynamic"] is False
    assert report["autoround_blocks"][0][0] == "model.layers.0"
