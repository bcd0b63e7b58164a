"""ScafSplit: a small decoder whose checkpoint fuses ``q_proj``/``k_proj``/``v_proj`` into one ``qkv_fused`` tensor.

Like sarvam_moe's ``query_key_value``, it registers a transformers 5 conversion that splits the fused rows on load
(``Split(dim=0)``, uneven: q has 64 rows, k and v 32). ``save_pretrained`` reverts it, concatenating the three
layers; once AutoRound has packed them their ``qweight`` (``[in/8, out]``) cannot be concatenated, so stock
AutoRound crashes saving the export.
"""

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutput, CausalLMOutput

try:  # transformers 5: the checkpoint's fused qkv rows are split on load (transformers 4.x has no such mapping)
    from transformers.conversion_mapping import register_checkpoint_conversion_mapping
    from transformers.core_model_loading import Split, WeightConverter

    register_checkpoint_conversion_mapping(
        "scafsplit",
        [
            WeightConverter(
                source_patterns="qkv_fused",
                target_patterns=["q_proj", "k_proj", "v_proj"],
                operations=[Split(dim=0)],
            )
        ],
        overwrite=True,
    )
except ImportError:
    pass


class ScafSplitConfig(PretrainedConfig):
    model_type = "scafsplit"

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


class ScafSplitBlock(nn.Module):
    """``h + o(silu(q(x)) * [k(x) | v(x)])`` then a gated MLP; k and v have half of q's rows."""

    def __init__(self, config):
        super().__init__()
        hidden = config.hidden_size
        self.norm = nn.LayerNorm(hidden)
        self.q_proj = nn.Linear(hidden, hidden, bias=False)
        self.k_proj = nn.Linear(hidden, hidden // 2, bias=False)
        self.v_proj = nn.Linear(hidden, hidden // 2, bias=False)
        self.o_proj = nn.Linear(hidden, hidden, bias=False)
        self.mlp_norm = nn.LayerNorm(hidden)
        self.gate_proj = nn.Linear(hidden, config.intermediate_size, bias=False)
        self.up_proj = nn.Linear(hidden, config.intermediate_size, bias=False)
        self.down_proj = nn.Linear(config.intermediate_size, hidden, bias=False)

    def forward(self, hidden_states, **kwargs):
        x = self.norm(hidden_states)
        mixed = F.silu(self.q_proj(x)) * torch.cat([self.k_proj(x), self.v_proj(x)], dim=-1)
        hidden_states = hidden_states + self.o_proj(mixed)
        x = self.mlp_norm(hidden_states)
        return hidden_states + self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class ScafSplitPreTrainedModel(PreTrainedModel):
    config_class = ScafSplitConfig
    base_model_prefix = "model"
    _no_split_modules = ["ScafSplitBlock"]

    def _init_weights(self, module):
        with torch.no_grad():
            for name, param in module.named_parameters(recurse=False):
                if param.dim() >= 2:
                    param.normal_(0.0, self.config.initializer_range)
                elif name == "weight":
                    param.fill_(1.0)
                else:
                    param.zero_()


class ScafSplitModel(ScafSplitPreTrainedModel):
    def __init__(self, config):
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList([ScafSplitBlock(config) for _ in range(config.num_hidden_layers)])
        self.norm = nn.LayerNorm(config.hidden_size)
        self.post_init()

    def get_input_embeddings(self):
        return self.embed_tokens

    def forward(self, input_ids=None, attention_mask=None, inputs_embeds=None, **kwargs):
        hidden_states = self.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds
        for layer in self.layers:
            hidden_states = layer(hidden_states)
        return BaseModelOutput(last_hidden_state=self.norm(hidden_states))


class ScafSplitForCausalLM(ScafSplitPreTrainedModel, GenerationMixin):
    def __init__(self, config):
        super().__init__(config)
        self.model = ScafSplitModel(config)
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
