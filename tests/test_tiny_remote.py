"""A remote-code model (auto_map + .py files in the folder): shrink, NaN repair, save with its code, reload."""

from __future__ import annotations

import json

import torch
from transformers import AutoConfig, AutoModelForCausalLM

from scaffold.tiny import build_tiny, save_tiny

CONFIGURATION = """from transformers import PretrainedConfig


class TinyRcConfig(PretrainedConfig):
    model_type = "tinyrc"

    def __init__(self, vocab_size=32000, hidden_size=1024, num_hidden_layers=12, num_attention_heads=16,
                 layer_types=None, pad_token_id=31999, **kwargs):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        kinds = ["full_attention" if i % 3 == 2 else "sliding_attention" for i in range(num_hidden_layers)]
        self.layer_types = layer_types or kinds
        super().__init__(pad_token_id=pad_token_id, **kwargs)
"""

MODELING = """import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import CausalLMOutput

from .configuration_tinyrc import TinyRcConfig


class TinyRcBlock(nn.Module):
    def __init__(self, config, kind):
        super().__init__()
        width = config.hidden_size * (4 if kind == "full_attention" else 2)
        self.up = nn.Linear(config.hidden_size, width)
        self.down = nn.Linear(width, config.hidden_size)
        # written like remote code that relies on loading weights: left uninitialised
        self.scale = nn.Parameter(torch.full((config.hidden_size,), float("nan")))

    def forward(self, x):
        return x + self.down(torch.relu(self.up(x))) * self.scale


class TinyRcForCausalLM(PreTrainedModel):
    config_class = TinyRcConfig

    def __init__(self, config):
        super().__init__(config)
        self.embed = nn.Embedding(config.vocab_size, config.hidden_size)
        self.blocks = nn.ModuleList(TinyRcBlock(config, kind) for kind in config.layer_types)
        self.head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def _init_weights(self, module):
        pass

    def forward(self, input_ids, use_cache=None):
        x = self.embed(input_ids)
        for block in self.blocks:
            x = block(x)
        return CausalLMOutput(logits=self.head(x))
"""

CONFIG = {
    "model_type": "tinyrc",
    "architectures": ["TinyRcForCausalLM"],
    "auto_map": {
        "AutoConfig": "configuration_tinyrc.TinyRcConfig",
        "AutoModelForCausalLM": "modeling_tinyrc.TinyRcForCausalLM",
    },
    "hidden_size": 1024,
    "num_hidden_layers": 12,
    "num_attention_heads": 16,
    "vocab_size": 32000,
}


def write_remote_model(folder):
    folder.mkdir()
    (folder / "configuration_tinyrc.py").write_text(CONFIGURATION)
    (folder / "modeling_tinyrc.py").write_text(MODELING)
    (folder / "config.json").write_text(json.dumps(CONFIG))
    return folder


def test_remote_code_model_shrinks_repairs_and_saves_with_its_code(tmp_path):
    source = write_remote_model(tmp_path / "remote")
    config = AutoConfig.from_pretrained(source, trust_remote_code=True)
    tiny = build_tiny(config, trust_remote_code=True)

    assert tiny.config.hidden_size == 64 and tiny.config.num_hidden_layers == 2
    assert set(tiny.config.layer_types) == {"sliding_attention", "full_attention"}  # both block kinds kept
    assert 0 <= tiny.config.pad_token_id < tiny.config.vocab_size == 512
    assert set(tiny.inputs) == {"input_ids"}  # its forward takes no attention_mask
    assert all(torch.isfinite(p).all() for p in tiny.model.parameters())  # NaN "uninitialised" scales repaired

    out = save_tiny(tiny, tmp_path / "out")
    assert {"configuration_tinyrc.py", "modeling_tinyrc.py"} <= {p.name for p in out.glob("*.py")}
    reloaded = AutoModelForCausalLM.from_pretrained(out, trust_remote_code=True).eval()
    with torch.no_grad():
        logits = reloaded(**tiny.inputs).logits
    assert torch.allclose(logits, tiny.forward().logits, atol=1e-5)
