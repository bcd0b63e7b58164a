"""The scaffold's own stages under both transformers majors (4.57 via .ci/tf4.sh, and 5.x)."""

from __future__ import annotations

import logging

import pytest
import torch

from scaffold import autoround_api
from scaffold.build import build_meta, count_parameters
from scaffold.resolve import resolve_target

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


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_meta_build_passes_dtype_without_deprecation_warning():
    from transformers import AutoModelForCausalLM

    target = resolve_target("transformers:llama")
    records = _Records()
    logger = logging.getLogger("transformers")  # transformers' loggers do not propagate to the root logger
    logger.addHandler(records)
    try:
        build_meta(target.config)
        with torch.device("meta"):  # the check itself: the deprecated spelling is still reported here
            AutoModelForCausalLM.from_config(target.config, torch_dtype=torch.float32)
    finally:
        logger.removeHandler(records)
    deprecations = [m for m in records.messages if "torch_dtype" in m]
    assert len(deprecations) == 1, records.messages


def test_cli_inspect_static(tmp_path):
    import json

    from typer.testing import CliRunner

    from scaffold.cli import app

    result = CliRunner().invoke(app, ["inspect", "transformers:qwen3_moe", "--static", "--json"])
    assert result.exit_code in (0, 1), result.output
    report = json.loads(result.stdout)
    assert report["model_class"] == "Qwen3MoeForCausalLM" and report["dynamic"] is False
    assert report["autoround_blocks"][0][0] == "model.layers.0"
