"""Static detectors, block stacks, coverage and prediction on hand-written archs and two transformers models."""

from __future__ import annotations

import importlib

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from scaffold.inspection.context import InspectContext
from scaffold.inspection.coverage import compute_coverage, scan_model
from scaffold.inspection.findings import Mode, Severity
from scaffold.inspection.stacks import block_stacks
from scaffold.modes.fused_moe.probe import call_convention, capture_call, probe_layout
from scaffold.modes.ignore_layers.detect import layer_patterns
from scaffold.modes.layer_types.detect import probe_linear
from scaffold.plan.predict import predict_after_fix
from scaffold.versions import transformers_major
from tests.inspect_archs.static_archs import (
    ARCHS,
    DETECTOR_OF,
    ExactProj,
    FusedExperts,
    ScaledProj,
    StaticArchConfig,
    make_context,
    tiny_of,
)

STATIC_DETECTORS = ["block_detection", "layer_types", "fused_moe", "ignore_layers", "mllm_misdetection"]


def run_static(ctx: InspectContext):
    findings = []
    for name in STATIC_DETECTORS:
        findings.extend(importlib.import_module(f"scaffold.modes.{name}.detect").detect(ctx))
    return findings


# --- block stacks on plain module trees ---------------------------------------------------------------


class _Layer(nn.Module):
    def __init__(self, width: int = 8):
        super().__init__()
        self.proj = nn.Linear(width, width)


class _Numbered(nn.Module):
    def __init__(self, count: int):
        super().__init__()
        for i in range(count):
            self.add_module(str(i), _Layer())


class _MultiComponent(nn.Module):
    def __init__(self):
        super().__init__()
        self.vision_model = nn.Module()
        self.vision_model.encoder = nn.Sequential(_Layer(), _Layer(), _Layer())
        self.language = nn.Module()
        self.language.decoder = nn.Module()
        self.language.decoder.blocks = _Numbered(4)
        self.language.heads = nn.ModuleList([nn.Linear(8, 8), nn.Linear(8, 8)])  # bare layers: not blocks
        self.lookup = nn.ModuleDict({"a": nn.Embedding(4, 8), "b": nn.Embedding(4, 8)})  # no linear weights


def test_block_stacks_finds_nested_stacks_of_every_container_kind():
    stacks = {s.path: s for s in block_stacks(_MultiComponent())}
    assert set(stacks) == {"vision_model.encoder", "language.decoder.blocks"}
    assert stacks["language.decoder.blocks"].container == "numbered"
    assert stacks["language.decoder.blocks"].count == 4
    assert stacks["language.decoder.blocks"].linear_params == 4 * 8 * 8
    assert stacks["vision_model.encoder"].container == "Sequential"
    assert stacks["vision_model.encoder"].modality == "vision"
    assert stacks["language.decoder.blocks"].to_dict()["block_class"] == "_Layer"


def test_blocks_nested_inside_a_stack_belong_to_it():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.experts = nn.ModuleList([_Layer() for _ in range(3)])

    model = nn.Module()
    model.layers = nn.ModuleList([Block(), Block()])
    assert [(s.path, s.count) for s in block_stacks(model)] == [("layers", 2)]


# --- one detector per hand-written arch -----------------------------------------------------------------


def test_control_arch_has_no_findings_and_full_coverage():
    ctx = make_context("sa_dense")
    assert run_static(ctx) == []
    (cov,) = compute_coverage(ctx)
    assert (cov.stack, cov.blocks, cov.linear_layers, cov.quantizable_layers) == ("model.layers", 2, 4, 4)
    assert cov.share == 1.0


@pytest.mark.parametrize("model_type", sorted(DETECTOR_OF))
def test_each_arch_trips_exactly_its_detector(model_type):
    problems = [f for f in run_static(make_context(model_type)) if f.severity is not Severity.OK]
    assert [f.mode.value for f in problems] == [DETECTOR_OF[model_type]]


def test_block_detection_reports_decoy_and_missed_stack():
    (finding,) = [f for f in run_static(make_context("sa_decoy")) if f.mode is Mode.BLOCK_DETECTION]
    assert finding.severity is Severity.FAILS
    assert finding.evidence["wrong"] == ["model.embed_helpers"]
    assert finding.evidence["missing"] == ["model.layers"]
    assert finding.evidence["stacks"] == [
        {"path": "model.layers", "block_class": "Block", "count": 2, "container": "Sequential"}
    ]
    assert finding.evidence["autoround_blocks"] == [["model.embed_helpers.0", "model.embed_helpers.1"]]


def test_block_detection_when_autoround_finds_nothing():
    (finding,) = [f for f in run_static(make_context("sa_sequential")) if f.mode is Mode.BLOCK_DETECTION]
    assert finding.evidence["autoround_blocks"] == [] and finding.evidence["missing"] == ["model.layers"]
    assert "no blocks" in finding.summary


def test_layer_types_probe_confirms_exact_linear():
    (finding,) = importlib.import_module("scaffold.modes.layer_types.detect").detect(make_context("sa_custom_linear"))
    ev = finding.evidence
    assert finding.probe == "tiny"
    assert (ev["class"], ev["weight_attr"], ev["bias_attr"], ev["count"]) == ("ExactProj", "weight", "bias", 4)
    assert ev["exact_linear"] is True and ev["max_abs_err"] <= 1e-6


def test_layer_types_static_only_says_so():
    (finding,) = importlib.import_module("scaffold.modes.layer_types.detect").detect(
        make_context("sa_custom_linear", dynamic=False)
    )
    assert finding.probe == "static" and finding.evidence["exact_linear"] is False
    assert "not probed" in finding.summary


def test_probe_linear_tells_scaled_from_exact():
    torch.manual_seed(0)
    exact, scaled = probe_linear(ExactProj(8, 4), "weight", "bias"), probe_linear(ScaledProj(8, 4), "weight", "bias")
    assert exact.exact_linear and exact.max_abs_err == 0.0
    assert not scaled.exact_linear and scaled.max_abs_err > 1e-3


def test_fused_moe_measures_call_and_layout():
    (finding,) = importlib.import_module("scaffold.modes.fused_moe.detect").detect(make_context("sa_fused_moe"))
    ev = finding.evidence
    assert finding.severity is Severity.SILENT and finding.probe == "tiny"
    assert (ev["class"], ev["num_experts"]) == ("FusedExperts", 4)
    assert ev["params"] == {"gate_up_proj": [4, 256, 64], "down_proj": [4, 64, 128]}
    assert ev["experts_interface"] is False and ev["autoround_unfuses"] is False and ev["builtin_replacement"] is False
    assert ev["call"]["convention"] == "topk"
    assert (ev["call"]["hidden_arg"], ev["call"]["index_arg"]) == ("hidden_states", "top_k_index")
    assert ev["layout"]["probed"] is True
    assert ev["layout"]["roles"] == {"gate_up_proj": "gate_up", "down_proj": "down"}


def test_fused_moe_static_only_keeps_required_keys():
    (finding,) = importlib.import_module("scaffold.modes.fused_moe.detect").detect(
        make_context("sa_fused_moe", dynamic=False)
    )
    assert finding.probe == "static"
    assert finding.evidence["call"]["convention"] == "unknown" and finding.evidence["layout"]["probed"] is False


@pytest.mark.parametrize(
    "options, expected",
    [
        ({"interleaved": True}, {"gate_up": "interleaved", "gate_first": True, "transposed": False}),
        ({"transposed": True}, {"gate_up": "concatenated", "gate_first": True, "transposed": True}),
        ({"up_first": True}, {"gate_up": "concatenated", "gate_first": False, "transposed": False}),
        ({"act": F.gelu}, {"gate_up": "concatenated", "activation": "gelu"}),
    ],
)
def test_layout_probe_finds_the_layout_that_reproduces_the_output(options, expected):
    torch.manual_seed(0)
    experts = FusedExperts(StaticArchConfig(), **options)
    x, index, weights = torch.randn(6, 64), torch.randint(0, 4, (6, 2)), torch.rand(6, 2)
    call = capture_call(experts, lambda: experts(x, top_k_index=index, top_k_weights=weights))
    layout = probe_layout(experts, call, call_convention(experts, call, 64), "silu")
    assert layout["probed"] is True and layout["max_abs_err"] <= 1e-5
    assert {k: layout[k] for k in expected} == expected


def test_layout_probe_says_when_no_candidate_matches():
    torch.manual_seed(0)
    experts = FusedExperts(StaticArchConfig(), act=torch.tanh)
    x, index, weights = torch.randn(6, 64), torch.randint(0, 4, (6, 2)), torch.rand(6, 2)
    call = capture_call(experts, lambda: experts(x, index, weights))
    layout = probe_layout(experts, call, call_convention(experts, call, 64), "silu")
    assert layout["probed"] is False and layout["closest"]["max_abs_err"] > 1e-5


def test_ignore_layers_non_divisible_and_patterns():
    (finding,) = importlib.import_module("scaffold.modes.ignore_layers.detect").detect(make_context("sa_non_divisible"))
    ev = finding.evidence
    assert finding.severity is Severity.OK and ev["group_size"] == 32  # AutoRound keeps them in float itself
    assert "already kept in float by AutoRound" in finding.summary
    assert {d["path"] for d in ev["non_divisible"]} == {
        f"model.layers.{i}.mlp.{p}" for i in (0, 1) for p in ("up_proj", "down_proj")
    }
    assert ev["layer_patterns"] == ["mlp.up_proj", "mlp.down_proj"]


def test_ignore_layers_router_already_ignored_is_ok():
    (finding,) = importlib.import_module("scaffold.modes.ignore_layers.detect").detect(make_context("sa_fused_moe"))
    assert finding.severity is Severity.OK
    assert finding.evidence["routers"] == ["model.layers.0.mlp.gate", "model.layers.1.mlp.gate"]
    assert finding.evidence["layer_patterns"] == ["mlp.gate"]


def test_mtp_layers_beyond_num_hidden_layers_and_by_name():
    from scaffold.inspection.stacks import BlockStack
    from scaffold.modes.ignore_layers.detect import _mtp_paths

    stack = BlockStack("model.layers", "Block", 3, "ModuleList", 0, [f"model.layers.{i}" for i in range(3)])
    names = ["model.layers.0.mlp.up", "model.mtp_head.proj", "model.mtp_head.norm_proj"]
    assert _mtp_paths([stack], names, num_layers=2, declared=1) == ["model.layers.2.", "model.mtp_head."]
    # without a declared MTP count, blocks beyond num_hidden_layers are not MTP (blenderbot's longer decoder)
    assert _mtp_paths([stack], names, num_layers=2) == ["model.mtp_head."]


def test_layer_patterns_fall_back_to_full_paths_when_a_suffix_over_matches():
    names = ["m.0.mlp.gate", "m.0.mlp.gate_proj", "m.1.mlp.gate"]
    assert layer_patterns(["m.0.mlp.gate", "m.1.mlp.gate"], names) == ["m.0.mlp.gate", "m.1.mlp.gate"]
    assert layer_patterns(["m.1.mlp.gate"], ["m.1.mlp.gate", "m.1.mlp.up"]) == ["mlp.gate"]


def test_mllm_misdetection_names_the_config_key():
    (finding,) = importlib.import_module("scaffold.modes.mllm_misdetection.detect").detect(make_context("sa_mllm_key"))
    assert "image_token_id" in finding.evidence["reason"]


# --- coverage and prediction ----------------------------------------------------------------------------


def test_coverage_puts_fused_experts_in_their_own_bucket():
    (cov,) = compute_coverage(make_context("sa_fused_moe"))
    experts = 2 * (4 * 256 * 64 + 4 * 64 * 128)
    routers = 2 * 4 * 64
    assert cov.linear_params == experts + routers
    assert cov.quantizable_params == 0
    assert cov.where_unquantized == {"fused experts": experts, "ignored by autoround": routers}


def test_predict_counts_one_matrix_per_expert_and_projection():
    config_cls, model_cls = ARCHS["sa_fused_moe"]
    model = tiny_of(config_cls(), model_cls).model
    prediction = predict_after_fix(model, ["model.layers"], 32, ["mlp.gate"])
    # per block: 4 experts x (gate, up) [128 x 64] + 4 experts x down [64 x 128]; the router is ignored
    assert prediction.layers == 2 * (4 * 2 + 4)
    assert prediction.params == 2 * (4 * 2 * 128 * 64 + 4 * 64 * 128)
    assert prediction.stacks[0].skipped == {"ignored": 2 * 4 * 64}
    # int schemes pad a partial last group: group size 128 on in_features 64 still packs
    assert predict_after_fix(model, ["model.layers"], 128, ["mlp.gate"]).params == prediction.params


def test_predict_leaves_out_shapes_autoround_skips():
    config_cls, model_cls = ARCHS["sa_non_divisible"]  # intermediate 48: not a multiple of 32
    model = tiny_of(config_cls(), model_cls).model
    prediction = predict_after_fix(model, ["model.layers"], 32, [])
    assert (prediction.params, prediction.layers) == (0, 0)
    assert prediction.stacks[0].skipped == {"non-divisible": 4 * 48 * 64}


def test_predict_counts_custom_linear_classes():
    config_cls, model_cls = ARCHS["sa_custom_linear"]
    model = tiny_of(config_cls(), model_cls).model
    stacks = scan_model(model).stacks
    prediction = predict_after_fix(model, stacks, 32, [])
    assert (prediction.layers, prediction.params) == (4, 4 * 64 * 128)


# --- real transformers models ---------------------------------------------------------------------------


def _real_context(model_type: str, tiny_config_kwargs: dict) -> InspectContext:
    from transformers import AutoConfig, AutoModelForCausalLM

    from scaffold.inspection.stage import load_context
    from scaffold.resolve.target import resolve_target
    from scaffold.tiny.model import TinyModel

    ctx = load_context(resolve_target(f"transformers:{model_type}"))
    config = AutoConfig.for_model(model_type, **tiny_config_kwargs)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config).eval()
    inputs = {"input_ids": torch.randint(0, config.vocab_size, (2, 8), generator=torch.Generator().manual_seed(0))}
    ctx._tiny = TinyModel(model, config, "AutoModelForCausalLM", inputs, "hand")
    return ctx


_TINY = dict(
    vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
    num_key_value_heads=2, head_dim=16,
)  # fmt: skip


def test_transformers_llama_triggers_nothing():
    ctx = _real_context("llama", _TINY)
    assert run_static(ctx) == []
    (cov,) = compute_coverage(ctx)
    assert cov.stack == "model.layers" and cov.blocks == 32 and cov.share == 1.0


def test_transformers_qwen3_moe_experts_are_covered():
    ctx = _real_context("qwen3_moe", {**_TINY, "moe_intermediate_size": 32, "num_experts": 4, "num_experts_per_tok": 2})
    findings = run_static(ctx)
    assert [f for f in findings if f.severity is not Severity.OK] == []
    (moe,) = [f for f in findings if f.mode is Mode.FUSED_MOE]
    assert moe.evidence["experts_interface"] is True and moe.evidence["autoround_unfuses"] is True
    assert moe.evidence["layout"]["probed"] is True
    assert moe.evidence["layout"]["gate_up"] == "concatenated"
    (cov,) = compute_coverage(ctx)
    assert set(cov.where_unquantized) == {"router"} and cov.share > 0.99


@pytest.mark.slow
def test_prediction_equals_what_autoround_packs(make_tokenizer, calib_texts, tmp_path):
    """Ground truth for the shape rule: int W4A16 pads a partial group (in 96, group 128) and skips 80-wide layers."""
    from scaffold.measure.quantize import count_packed, run_autoround

    config_cls, model_cls = ARCHS["sa_dense"]
    model = tiny_of(config_cls(intermediate_size=96, vocab_size=512), model_cls).model
    model.model.layers[1].mlp.up_proj, model.model.layers[1].mlp.down_proj = nn.Linear(64, 80), nn.Linear(80, 64)
    prediction = predict_after_fix(model, ["model.layers"], 128, [])
    run_autoround(model, make_tokenizer(512), calib_texts, tmp_path, iters=0, nsamples=2, seqlen=16, group_size=128)
    packed = count_packed(tmp_path)
    assert (packed.packed_params, packed.packed_modules) == (prediction.params, prediction.layers) == (2 * 96 * 64, 2)


@pytest.mark.tf4
@pytest.mark.skipif(transformers_major() >= 5, reason="transformers 4.x behaviour")
def test_transformers_4_has_no_experts_interface():
    from scaffold.inspection.stage import load_context
    from scaffold.resolve.target import resolve_target

    ctx = load_context(resolve_target("transformers:llama4_text"), dynamic=False)
    (moe,) = importlib.import_module("scaffold.modes.fused_moe.detect").detect(ctx)
    assert moe.evidence["experts_interface"] is False and moe.evidence["autoround_unfuses"] is False
    assert "no experts interface" in moe.evidence["note"]
    assert moe.severity is Severity.SILENT


class _ScoresPlusZeroExperts(nn.Module):
    """A router class that is not nn.Linear and scores 4 experts plus 2 identity ('zero') experts."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(6, 64))

    def forward(self, x):
        return F.linear(x, self.weight).topk(2, dim=-1)


class _FusedExperts(nn.Module):
    def __init__(self):
        super().__init__()
        self.gate_up_proj = nn.Parameter(torch.randn(4, 256, 64))
        self.down_proj = nn.Parameter(torch.randn(4, 64, 128))


def test_a_router_named_so_is_a_router_even_when_it_scores_extra_experts():
    from scaffold.inspection.linear_weights import router_weights

    moe = nn.Module()
    moe.experts, moe.router, moe.other = _FusedExperts(), _ScoresPlusZeroExperts(), _ScoresPlusZeroExperts()
    model = nn.Module()
    model.mlp = moe
    scan = scan_model(model)
    assert [w.path for w in router_weights(model, scan.weights)] == ["mlp.router"]
