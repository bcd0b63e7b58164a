"""ScafTie: a small decoder written the transformers 4.x way, ``_tied_weights_keys`` a list of weight names.

transformers 5 expects a ``{target: source}`` dict there; its ``save_pretrained`` calls ``.keys()`` on the list
(``AttributeError: 'list' object has no attribute 'keys'``), so stock AutoRound crashes saving the export.
"""

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutput, CausalLMOutput


class ScafTieConfig(PretrainedConfig):
    model_type = "scaftie"

    def __init__(
        self,
        vocab_size=512,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        initializer_range=0.02,
        tie_word_embeddings=False,
        **kwargs,
    ):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.intermediate_size = intermediate_size
        self.num_hidden_layers = num_hidden_layers
        self.initializer_range = initializer_range
        super().__init__(tie_word_embeddings=tie_word_embeddings, **kwargs)


class ScafTieBlock(nn.Module):
    """A residual MLP block: ``h + down(silu(gate(norm(h))) * up(norm(h)))``."""

    def __init__(self, config):
        super().__init__()
        self.norm = nn.LayerNorm(config.hidden_size)
        self.gate_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)

    def forward(self, hidden_states, **kwargs):
        x = self.norm(hidden_states)
        return hidden_states + self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class ScafTiePreTrainedModel(PreTrainedModel):
    config_class = ScafTieConfig
    base_model_prefix = "model"
    _no_split_modules = ["ScafTieBlock"]

    def _init_weights(self, module):
        with torch.no_grad():
            for name, param in module.named_parameters(recurse=False):
                if param.dim() >= 2:
                    param.normal_(0.0, self.config.initializer_range)
                elif name == "weight":
                    param.fill_(1.0)
                else:
                    param.zero_()


class ScafTieModel(ScafTiePreTrainedModel):
    def __init__(self, config):
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList([ScafTieBlock(config) for _ in range(config.num_hidden_layers)])
        self.norm = nn.LayerNorm(config.hidden_size)
        self.post_init()

    def get_input_embeddings(self):
        return self.embed_tokens

    def forward(self, input_ids=None, attention_mask=None, inputs_embeds=None, **kwargs):
        hidden_states = self.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds
        for layer in self.layers:
            hidden_states = layer(hidden_states)
        return BaseModelOutput(last_hidden_state=self.norm(hidden_states))


class ScafTieForCausalLM(ScafTiePreTrainedModel, GenerationMixin):
    _tied_weights_keys = ["lm_head.weight"]  # the transformers 4.x form

    def __init__(self, config):
        super().__init__(config)
        self.model = ScafTieModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self):
        return self.model.embed_tokens

    def get_output_embeddings(self):
        return self.lm_head

    def forward(self, input_ids=None, attention_mask=None, inputs_embeds=None, labels=None, **kwargs):
        hidden_states = self.model(input_ids=input_ids, inputs_embeds=inputs_embeds).last_hidden_state
        logits = self.lm_head(hidden_states)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(), labels[:, 1:].reshape(-1))
        return CausalLMOutput(loss=loss, logits=logits)
