"""Unit tests of the tiny builder: shrink rules, layer plans, ids, MoE, determinism, NaN repair, save/load."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from transformers import AutoConfig

from scaffold.errors import ScaffoldError
from scaffold.tiny import ShrinkError, TinyModel, build_tiny, save_tiny
from scaffold.tiny.init import repair_uninitialised
from scaffold.tiny.inputs import forward_parameters
from scaffold.tiny.layers import plan_layers
from scaffold.tiny.shrink import ShrinkTargets, shrink_config_dict
from scaffold.tiny.tokenizer import calibration_texts, make_tokenizer

CAREFUL = ShrinkTargets("careful")


@pytest.fixture(scope="module")
def tiny_llama() -> TinyModel:
    torch.manual_seed(0)
    return build_tiny(AutoConfig.for_model("llama"))


# -- shrink rules on plain dicts ------------------------------------------------------------


def test_mla_dims_stay_consistent():
    tree = {
        "hidden_size": 7168,
        "num_attention_heads": 128,
        "num_key_value_heads": 128,
        "num_hidden_layers": 61,
        "head_dim": 64,
        "qk_rope_head_dim": 64,
        "qk_nope_head_dim": 128,
        "v_head_dim": 128,
        "qk_head_dim": 192,
        "kv_lora_rank": 512,
        "q_lora_rank": 1536,
    }
    new, changes = shrink_config_dict(tree, CAREFUL)
    assert new["qk_head_dim"] == new["qk_nope_head_dim"] + new["qk_rope_head_dim"]
    assert new["head_dim"] == new["qk_rope_head_dim"]
    assert new["num_hidden_layers"] == 2 and new["num_attention_heads"] == 4
    assert 0 < new["kv_lora_rank"] < 512 and 0 < new["q_lora_rank"] < 1536
    assert changes["qk_head_dim"] == [192, new["qk_head_dim"]]


def test_rope_sections_follow_the_head_dim():
    tree = {
        "hidden_size": 3584,
        "num_attention_heads": 28,
        "num_key_value_heads": 4,
        "num_hidden_layers": 28,
        "rope_parameters": {"rope_type": "default", "mrope_section": [16, 24, 24]},
    }
    new, _ = shrink_config_dict(tree, CAREFUL)
    head_dim = new["hidden_size"] // new["num_attention_heads"]
    assert sum(new["rope_parameters"]["mrope_section"]) == head_dim // 2
    assert all(s > 0 for s in new["rope_parameters"]["mrope_section"])


@settings(max_examples=60, deadline=None)
@given(
    heads=st.sampled_from([1, 2, 4, 8, 12, 16, 20, 28, 32, 40, 64, 128]),
    kv_divisor=st.sampled_from([1, 2, 4, 8, 16]),
    head_dim=st.sampled_from([32, 64, 80, 96, 128, 256]),
)
def test_heads_divide_by_kv_heads(heads, kv_divisor, head_dim):
    kv = max(1, heads // kv_divisor) if heads % kv_divisor == 0 else heads
    tree = {"hidden_size": heads * head_dim, "num_attention_heads": heads, "num_key_value_heads": kv}
    new, _ = shrink_config_dict(tree, CAREFUL)
    assert new["num_attention_heads"] % new["num_key_value_heads"] == 0
    assert new["hidden_size"] == new["num_attention_heads"] * (new["hidden_size"] // new["num_attention_heads"])
    assert new["num_key_value_heads"] <= new["num_attention_heads"] <= 4


def test_token_ids_land_inside_the_vocab_and_stay_distinct():
    tree = {
        "vocab_size": 151936,
        "pad_token_id": 0,
        "bos_token_id": 151643,
        "eos_token_id": [151645, 151643],
        "text_config": {"model_type": "x", "vocab_size": 151936, "image_token_id": 151655},
    }
    new, _ = shrink_config_dict(tree, CAREFUL)
    ids = [new["pad_token_id"], new["bos_token_id"], *new["eos_token_id"], new["text_config"]["image_token_id"]]
    assert all(0 <= i < 512 for i in ids)
    assert len({new["bos_token_id"], new["eos_token_id"][0], new["text_config"]["image_token_id"]}) == 3
    assert new["eos_token_id"][1] == new["bos_token_id"]  # equal ids stay equal


def test_schedules_and_index_lists_follow_the_layer_count():
    tree = {
        "hidden_size": 256,
        "num_attention_heads": 4,
        "num_hidden_layers": 32,
        "attn_layer_period": 8,
        "attn_layer_offset": 4,
        "first_k_dense_replace": 3,
        "mlp_only_layers": [0, 31],
        "layer_types": ["linear_attention"] * 3 + ["full_attention"] + ["linear_attention"] * 28,
    }
    new, _ = shrink_config_dict(tree, CAREFUL)
    assert new["attn_layer_period"] == 2 and new["attn_layer_offset"] == 1
    assert new["first_k_dense_replace"] == 1
    assert sorted(set(new["layer_types"])) == ["full_attention", "linear_attention"]
    assert all(0 <= i < 2 for i in new["mlp_only_layers"])


def test_cpu_switches_defaults_and_cross_frame_sizes():
    tree = {
        "hidden_size": 1024,
        "num_attention_heads": 16,
        "use_mamba_kernels": True,
        "default_language": None,
        "languages": ["en_XX", "de_DE"],
        "hidden_size_global": 2048,
        "encoder_hash_byte_group_vocab": 500002,
        "global_config": {"model_type": "g", "hidden_size": 2048, "num_attention_heads": 16},
    }
    new, changes = shrink_config_dict(tree, CAREFUL)
    assert new["use_mamba_kernels"] is False and changes["use_mamba_kernels"] == [True, False]
    assert new["default_language"] == "en_XX"
    assert new["hidden_size_global"] == new["global_config"]["hidden_size"] == 64  # follows the other frame
    assert new["encoder_hash_byte_group_vocab"] == 512


def test_layer_plan_keeps_distinct_layer_kinds():
    config = {"layer_types": ["sliding"] * 5 + ["full"] + ["sliding"] * 5 + ["full"]}
    plan = plan_layers(config, 12, 2)
    assert plan.kept == (0, 5)
    assert plan.renumber([5, 11]) == [1]


# -- real builds --------------------------------------------------------------------------


def test_llama_is_tiny_and_forwards(tiny_llama):
    config = tiny_llama.config
    assert tiny_llama.strategy == "careful"
    assert config.hidden_size == 64 and config.num_hidden_layers == 2 and config.vocab_size == 512
    assert len(tiny_llama.model.model.layers) == config.num_hidden_layers
    assert tiny_llama.changes["hidden_size"] == [4096, 64]
    assert not tiny_llama.model.training and next(tiny_llama.model.parameters()).dtype == torch.float32
    assert set(tiny_llama.inputs) <= forward_parameters(tiny_llama.model)
    assert tiny_llama.inputs["input_ids"].shape == (2, 8)
    logits = tiny_llama.forward().logits
    assert logits.shape == (2, 8, 512) and torch.isfinite(logits).all()


def test_gpt2_inputs_skip_token_type_ids():
    tiny = build_tiny(AutoConfig.for_model("gpt2"))
    assert "token_type_ids" not in tiny.inputs
    assert "attention_mask" in tiny.inputs


def test_moe_keeps_top_k_within_experts():
    tiny = build_tiny(AutoConfig.for_model("qwen3_moe"))
    config = tiny.config
    assert config.num_experts == 4 and config.num_experts_per_tok <= config.num_experts
    assert config.num_experts_per_tok == 2


def test_hybrid_layer_list_keeps_both_kinds():
    tiny = build_tiny(AutoConfig.for_model("gemma3_text"), layers=2)
    config = tiny.config
    assert len(config.layer_types) == config.num_hidden_layers == len(tiny.model.model.layers) == 2
    assert set(config.layer_types) == {"sliding_attention", "full_attention"}


def test_ids_inside_vocab_after_build():
    tiny = build_tiny(AutoConfig.for_model("qwen2"))
    config = tiny.config
    for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
        value = getattr(config, name)
        assert value is None or 0 <= value < config.vocab_size
    assert not (tiny.inputs["input_ids"] >= config.vocab_size).any()


def test_same_seed_same_weights_other_seed_other_weights():
    config = AutoConfig.for_model("llama")
    first = build_tiny(config, seed=3).model.state_dict()
    second = build_tiny(config, seed=3).model.state_dict()
    other = build_tiny(config, seed=4).model.state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert any(not torch.equal(first[k], other[k]) for k in first if first[k].is_floating_point())


def test_repair_replaces_uninitialised_parameters():
    model = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))
    with torch.no_grad():
        model[0].weight.fill_(float("nan"))
        model[0].bias.fill_(3e38)
    repaired = repair_uninitialised(model, seed=0)
    assert repaired == ["0.weight", "0.bias"]
    assert torch.isfinite(model[0].weight).all() and model[0].weight.abs().max() < 1
    assert torch.equal(model[1].weight, torch.ones(4))  # initialised parameters are left alone


def test_nan_initialising_model_is_repaired(monkeypatch):
    """A model whose own init leaves torch.empty garbage (here: NaN) still gives finite logits."""
    from transformers.models.llama import modeling_llama

    original = modeling_llama.LlamaPreTrainedModel._init_weights

    def nan_init(self, module):
        original(self, module)
        if isinstance(module, nn.Linear):
            module.weight.data.fill_(float("nan"))

    monkeypatch.setattr(modeling_llama.LlamaPreTrainedModel, "_init_weights", nan_init)
    tiny = build_tiny(AutoConfig.for_model("llama"))
    assert all(torch.isfinite(p).all() for p in tiny.model.parameters())
    assert torch.isfinite(tiny.forward().logits).all()


def test_failure_names_the_broken_constraint(monkeypatch):
    from transformers.models.llama import modeling_llama

    def broken(self, *args, **kwargs):
        raise ValueError("rotary dim must divide head_dim")

    monkeypatch.setattr(modeling_llama.LlamaForCausalLM, "forward", broken)
    with pytest.raises(ShrinkError) as caught:
        build_tiny(AutoConfig.for_model("llama"))
    assert caught.value.stage == "shrink" and isinstance(caught.value, ScaffoldError)
    assert "rotary dim must divide head_dim" in caught.value.message
    assert [a.strategy for a in caught.value.attempts] == ["careful", "careful_deeper", "gentle", "depth_only"]


def test_layers_must_be_positive():
    with pytest.raises(ScaffoldError):
        build_tiny(AutoConfig.for_model("llama"), layers=0)


# -- tokenizer, texts, save/load ------------------------------------------------------------


def test_tokenizer_specials_and_texts():
    tokenizer = make_tokenizer(512, special_ids={"eos_token": 2, "pad_token": 0})
    assert len(tokenizer) == 512
    assert tokenizer.eos_token_id == 2 and tokenizer.pad_token_id == 0
    assert all(0 <= i < 512 for i in tokenizer.all_special_ids)
    texts = calibration_texts(n=4, seed=1)
    assert texts == calibration_texts(n=4, seed=1) and len(set(texts)) == 4
    encoded = tokenizer(texts)
    assert set(encoded) == {"input_ids", "attention_mask"}
    assert all(len(ids) >= 32 for ids in encoded["input_ids"])
    assert all(tokenizer.unk_token_id not in ids for ids in encoded["input_ids"])


def test_save_and_load_round_trip(tiny_llama, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    save_tiny(tiny_llama, tmp_path)
    assert (tmp_path / "model.safetensors").is_file() and (tmp_path / "calibration.txt").is_file()
    model = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    with torch.no_grad():
        logits = model(**tiny_llama.inputs).logits
    assert torch.allclose(logits, tiny_llama.forward().logits, atol=1e-5)
    assert tokenizer.eos_token_id == tiny_llama.config.eos_token_id
    assert max(tokenizer("hello world the model")["input_ids"]) < tiny_llama.config.vocab_size


@pytest.mark.slow
def test_autoround_calibrates_with_the_tiny_tokenizer(tmp_path):
    from auto_round import AutoRound

    tiny = build_tiny(AutoConfig.for_model("llama"))
    block_linears = [n for n, m in tiny.model.named_modules() if isinstance(m, nn.Linear) and ".layers." in n]
    tokenizer = make_tokenizer(tiny.config.vocab_size)
    autoround = AutoRound(
        tiny.model,
        tokenizer,
        scheme="W4A16",
        iters=2,
        nsamples=2,
        seqlen=32,
        batch_size=2,
        dataset=calibration_texts(),
        device_map="cpu",
    )
    autoround.quantize_and_save(str(tmp_path / "q"), format="auto_round")
    from safetensors import safe_open

    keys = [k for f in (tmp_path / "q").rglob("*.safetensors") for k in safe_open(str(f), "pt").keys()]
    packed = {k for k in keys if k.endswith(".qweight")}
    assert len(packed) == len(block_linears) == 14  # every block Linear has dims AutoRound can pack
