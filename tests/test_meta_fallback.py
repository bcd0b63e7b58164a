"""Model code that cannot be built on the meta device is built on the CPU from a shrunk config, and inspected."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

CONFIG = """
from transformers import PretrainedConfig


class ItemConfig(PretrainedConfig):
    model_type = "scaf_item"

    def __init__(self, vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2, **kwargs):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.intermediate_size = intermediate_size
        self.num_hidden_layers = num_hidden_layers
        super().__init__(**kwargs)
"""

MODELING = """
import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import CausalLMOutput

from .configuration_item import ItemConfig


class ItemBlock(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.up = nn.Linear(config.hidden_size, config.intermediate_size)
        self.down = nn.Linear(config.intermediate_size, config.hidden_size)
        # like a torch.distributions object built in __init__: a value read back with .item()
        self.scale = float(torch.tensor(0.5).item())

    def forward(self, hidden_states):
        return hidden_states + self.scale * self.down(torch.relu(self.up(hidden_states)))


class ItemForCausalLM(PreTrainedModel):
    config_class = ItemConfig

    def __init__(self, config):
        super().__init__(config)
        self.embed = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList([ItemBlock(config) for _ in range(config.num_hidden_layers)])
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, **kwargs):
        hidden = self.embed(input_ids)
        for layer in self.layers:
            hidden = layer(hidden)
        return CausalLMOutput(logits=self.lm_head(hidden))
"""


def item_model(folder: Path, *, broken: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "configuration_item.py").write_text(CONFIG)
    modeling = (
        MODELING.replace("self.post_init()", "self.post_init()\n        raise ValueError('no build')")
        if broken
        else MODELING
    )
    (folder / "modeling_item.py").write_text(modeling)
    config = {
        "model_type": "scaf_item",
        "architectures": ["ItemForCausalLM"],
        "auto_map": {
            "AutoConfig": "configuration_item.ItemConfig",
            "AutoModelForCausalLM": "modeling_item.ItemForCausalLM",
        },
        "num_hidden_layers": 24,
    }
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_meta_only_failure_falls_back_to_a_shrunk_cpu_build(tmp_path):
    from scaffold.inspection.stage import load_context
    from scaffold.resolve.target import resolve_target

    ctx = load_context(resolve_target(str(item_model(tmp_path / "item")), trust_remote_code=True))
    assert next(ctx.meta_model.parameters()).device.type == "cpu"
    assert len(ctx.meta_model.layers) < 24  # a shrunk copy of the config
    assert len(ctx.notes) == 1 and "cannot be built on the meta device" in ctx.notes[0]
    assert "item() cannot be called on meta tensors" in ctx.notes[0]


def _inspect(folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "scaffold", "inspect", str(folder), "--trust-remote-code"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "COLUMNS": "200"},
    )


def test_inspect_goes_on_after_the_fallback_and_says_so(tmp_path):
    done = _inspect(item_model(tmp_path / "item"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "cannot be built on the meta device" in " ".join(done.stdout.split())
    assert "Traceback" not in done.stderr


def test_code_that_cannot_be_built_at_all_still_exits_2(tmp_path):
    done = _inspect(item_model(tmp_path / "broken", broken=True))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "error [build]" in done.stderr and "Traceback" not in done.stderr
