"""The measuring harness on a tiny llama-like model: every block linear packed, reload finite."""

from __future__ import annotations

import json

import pytest
import torch

from scaffold.measure.quantize import block_coverage, block_share, count_packed, reload_and_forward, run_autoround
from scaffold.tiny.tokenizer import calibration_texts, make_tokenizer


def _tiny_llama():
    from transformers import AutoModelForCausalLM, LlamaConfig

    config = LlamaConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=512,
        max_position_embeddings=128,
        pad_token_id=1,
        bos_token_id=2,
        eos_token_id=3,
    )
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config).eval()


@pytest.fixture(scope="module")
def llama_export(tmp_path_factory):
    model = _tiny_llama()
    linears = {name for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)}
    out = tmp_path_factory.mktemp("llama") / "export"
    run = run_autoround(model, make_tokenizer(512), calibration_texts(4), out, group_size=32)
    return model, linears, run


@pytest.mark.slow
def test_run_autoround_packs_every_block_linear(llama_export):
    model, linears, run = llama_export
    assert run.ok, run.error_line
    assert any("Summary: quantized 14/15" in line for line in run.summary_lines), run.summary_lines
    packed = count_packed(run.export_dir)
    assert set(packed.packed) == {name for name in linears if ".layers." in name}
    assert len(packed.packed) == 14
    assert packed.packed["model.layers.0.mlp.down_proj"] == 128 * 64
    assert packed.packed_shapes["model.layers.0.self_attn.k_proj"] == (64, 32)
    assert "lm_head" in packed.plain and "model.embed_tokens" in packed.plain
    coverage = block_coverage(run.original_params, packed, [["model.layers.0", "model.layers.1"]])
    assert coverage.share == 1.0 and coverage.unquantized == [] and coverage.unmatched_packed == []
    assert coverage.total_params == 2 * (64 * 64 * 2 + 64 * 32 * 2 + 3 * 64 * 128)
    assert block_share(_tiny_llama(), packed, ["model.layers.0", "model.layers.1"]) == 1.0
    assert block_share(run.original_params, packed, ["model.layers.0"]) == 1.0


@pytest.mark.slow
def test_reload_and_forward_is_finite(llama_export):
    _, _, run = llama_export
    result = reload_and_forward(run.export_dir)
    assert result.ok, result.error
    assert result.finite
    assert result.quantized_modules == 14


def test_run_autoround_captures_errors(tmp_path):
    model = _tiny_llama()
    run = run_autoround(
        model, make_tokenizer(512), calibration_texts(4), tmp_path / "x", scheme="NO_SUCH_SCHEME", raise_errors=False
    )
    assert not run.ok and run.error_type and "NO_SUCH_SCHEME" in run.error_line
    with pytest.raises(Exception, match="NO_SUCH_SCHEME"):
        run_autoround(model, make_tokenizer(512), calibration_texts(4), tmp_path / "y", scheme="NO_SUCH_SCHEME")


def test_count_packed_reads_bits_and_plain_weights(tmp_path):
    from safetensors.torch import save_file

    tensors = {
        "blocks.0.proj.qweight": torch.zeros(64 * 8 // 32, 32, dtype=torch.int32),  # 8-bit override, in=64
        "blocks.0.fc.qweight": torch.zeros(64 * 4 // 32, 16, dtype=torch.int32),  # 4-bit default, in=64
        "blocks.0.experts.qweight": torch.zeros(4, 8, 16, dtype=torch.int32),  # a rank this count cannot read
        "blocks.0.experts.w_in": torch.zeros(4, 32, 64),
        "blocks.0.norm.weight": torch.zeros(64),
        "head.weight": torch.zeros(10, 64),
    }
    save_file(tensors, str(tmp_path / "model.safetensors"))
    qconfig = {"bits": 4, "group_size": 32, "extra_config": {"blocks.0.proj": {"bits": 8}}}
    (tmp_path / "config.json").write_text(json.dumps({"quantization_config": qconfig}))
    packed = count_packed(tmp_path)
    assert packed.packed == {"blocks.0.proj": 64 * 32, "blocks.0.fc": 64 * 16}
    assert packed.plain == {"blocks.0.experts.w_in": 4 * 32 * 64, "head": 640}
    assert packed.group_size == 32 and packed.packed_params == 64 * 48
    assert packed.unread == ["blocks.0.experts.qweight"]


def test_block_coverage_counts_unfused_experts_for_fused_owner():
    from scaffold.measure.quantize import PackedCount

    class Experts(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w_in = torch.nn.Parameter(torch.zeros(2, 8, 4))
            self.w_out = torch.nn.Parameter(torch.zeros(2, 4, 4))

    model = torch.nn.Module()
    model.blocks = torch.nn.ModuleList([torch.nn.Module()])
    model.blocks[0].experts = Experts()
    model.blocks[0].proj = torch.nn.Linear(4, 4)
    packed = PackedCount(
        packed={"blocks.0.experts.0.w_in": 32, "blocks.0.experts.1.w_in": 32, "other.proj": 16},
        packed_shapes={},
        plain={},
        bits=4,
        group_size=128,
    )
    coverage = block_coverage(model, packed, ["blocks.0"])
    assert coverage.total_params == 64 + 32 + 16
    assert coverage.per_owner == {"blocks.0.experts": (64, 96), "blocks.0.proj": (0, 16)}
    assert coverage.share == pytest.approx(64 / 112)
    assert coverage.unquantized == ["blocks.0.experts", "blocks.0.proj"]
    assert block_share(model, packed, ["blocks"], exclude=[r"\.proj$"]) == pytest.approx(64 / 96)


def test_block_coverage_maps_legacy_export_names_back(monkeypatch):
    from transformers import conversion_mapping
    from transformers.core_model_loading import WeightRenaming

    from scaffold.measure.quantize import PackedCount

    model = torch.nn.Module()
    model.layers = torch.nn.ModuleList([torch.nn.Module()])
    model.layers[0].self_attn = torch.nn.Module()
    model.layers[0].self_attn.q_proj = torch.nn.Linear(8, 8)
    # checkpoint (export) key -> model key, as transformers 5 loads legacy checkpoints
    renamings = [WeightRenaming(r"^transformer\.h\.", "layers."), WeightRenaming(r"\.attn\.", ".self_attn.")]
    monkeypatch.setattr(conversion_mapping, "get_model_conversion_mapping", lambda *a, **k: renamings)
    packed = PackedCount({"transformer.h.0.attn.q_proj": 64}, {}, {}, bits=4, group_size=128)
    coverage = block_coverage(model, packed, ["layers"])
    assert coverage.share == 1.0 and coverage.unmatched_packed == []
    # from shapes alone the legacy name cannot be mapped: it is reported, not silently counted
    by_shapes = block_coverage(dict(model.named_parameters()), packed, ["layers"])
    assert by_shapes.share == 0.0 and by_shapes.total_params == 64
    assert by_shapes.unmatched_packed == ["transformer.h.0.attn.q_proj"]


def test_run_autoround_captures_sys_exit(monkeypatch, tmp_path):
    import sys

    import auto_round

    def exits(*args, **kwargs):
        auto_round.logger.logger.error("this model has not been supported")
        sys.exit(-1)

    monkeypatch.setattr(auto_round, "AutoRound", exits)
    run = run_autoround(torch.nn.Linear(4, 4), None, ["w"], tmp_path, raise_errors=False)
    assert not run.ok and run.error_type == "SystemExit"
    assert "this model has not been supported" in run.warnings


def _stock_export(model: torch.nn.Module, tokenizer, out_dir):
    from scaffold.measure.stock import STOCK_GROUP_SIZE, STOCK_SETTINGS, text_block_names
    from scaffold.tiny.tokenizer import calibration_texts

    blocks, ignored = text_block_names(model)
    torch.manual_seed(0)
    settings = {**STOCK_SETTINGS, "iters": 0}
    run = run_autoround(model, tokenizer, calibration_texts(), out_dir, group_size=STOCK_GROUP_SIZE, **settings)
    packed = count_packed(run.export_dir)
    return run, packed, block_coverage(run.original_params, packed, blocks, exclude=ignored)


@pytest.mark.slow
@pytest.mark.parametrize("model_type", ["mixtral", "exaone"])
def test_exports_saved_under_checkpoint_keys_count_in_full(model_type, tmp_path):
    """transformers 5 saves these under their checkpoint's legacy keys; every packed tensor maps back."""
    from scaffold.resolve.target import resolve_target
    from scaffold.testkit import tokenizer_for
    from scaffold.tiny.builder import build_tiny

    tiny = build_tiny(resolve_target(f"transformers:{model_type}").config)
    run, packed, coverage = _stock_export(tiny.model, tokenizer_for(tiny), tmp_path / "export")
    saved_elsewhere = [name for name in packed.packed if f"{name}.weight" not in run.original_params]
    assert saved_elsewhere  # the case this test is about
    assert coverage.unmatched_packed == []
    assert coverage.share == 1.0, coverage.unquantized


@pytest.mark.slow
@pytest.mark.tf4
def test_remote_code_export_counts_in_full(arch_loader, make_tokenizer, tmp_path, monkeypatch):
    """Remote code has no conversion rules: its export keeps the model's names and every packed tensor counts."""
    from auto_round import special_model_handler

    monkeypatch.setitem(special_model_handler.SPECIAL_SHARED_CACHE_KEYS, "ScafAliForCausalLM", ("position_bias",))
    model = arch_loader("shared_tensor")
    run, packed, coverage = _stock_export(model, make_tokenizer(), tmp_path / "export")
    name = "model.layers.0.self_attn.q_proj"
    assert run.original_params.checkpoint_keys.module_name(name) == name
    assert all(f"{name}.weight" in run.original_params for name in packed.packed)
    assert coverage.unmatched_packed == [] and packed.packed_modules > 0
    assert coverage.share == 1.0, coverage.unquantized


@pytest.mark.tf4
def test_transformers4_rules_map_checkpoint_keys_in_the_load_direction():
    from scaffold.measure.checkpoint_keys import _transformers4_mapper

    class Legacy(torch.nn.Module):
        _checkpoint_conversion_mapping = {r"^model\.(?!language_model)": "model.language_model."}

        @staticmethod
        def _fix_state_dict_key_on_load(key):
            return key.replace("LayerNorm.gamma", "LayerNorm.weight"), "gamma" in key

    keys = _transformers4_mapper(Legacy())
    assert keys.module_name("model.layers.0.mlp.fc1") == "model.language_model.layers.0.mlp.fc1"
    assert keys.model_key("lm_head.weight") == "lm_head.weight"
    assert keys.model_key("model.LayerNorm.gamma") == "model.language_model.LayerNorm.weight"
    assert _transformers4_mapper(torch.nn.Module()).rename is None


@pytest.mark.tf4
def test_packed_tensors_no_rule_maps_are_reported():
    from scaffold.measure.checkpoint_keys import KeyMapper
    from scaffold.measure.quantize import PackedCount, ParamShapes

    shapes = ParamShapes({"model.layers.0.q.weight": (8, 8)}, KeyMapper(lambda key: key.replace("h.", "layers.")))
    packed = PackedCount({"model.h.0.q": 64, "model.blocks.0.k": 64}, {}, {}, bits=4, group_size=128)
    coverage = block_coverage(shapes, packed, ["model.layers"])
    assert coverage.share == 1.0 and coverage.unmatched_packed == ["model.blocks.0.k"]
