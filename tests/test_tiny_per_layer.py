"""Per-layer overrides (transformers 5's ``per_layer_config``), kept sums of head dims, and tiny-config validation."""

from __future__ import annotations

import copy

import pytest
import torch
from transformers import CONFIG_MAPPING, AutoConfig, LlamaConfig
from typer.testing import CliRunner

from scaffold.tiny import ShrinkError, build_tiny
from scaffold.tiny import builder as builder_module
from scaffold.tiny.builder import config_invalidity
from scaffold.tiny.layers import plan_layers, write_layer_keys
from scaffold.tiny.shrink import Shrinker, ShrinkTargets, _scale, keep_sums, shrink_config_dict

CAREFUL = ShrinkTargets("careful")


def _needs(model_type: str) -> None:
    if model_type not in CONFIG_MAPPING:
        pytest.skip(f"this transformers has no {model_type}")


needs_validate = pytest.mark.skipif(
    not hasattr(LlamaConfig, "validate"), reason="configs validate themselves from transformers 5 on"
)


# -- shrink rules on plain dicts ------------------------------------------------------------


def test_a_rounded_apart_sum_is_mended_on_its_larger_part():
    old = {"head_dim": 256, "qk_nope_head_dim": 240, "qk_rope_head_dim": 16, "v_head_dim": 100}
    # each shrunk on its own, rounded to even sizes: 240/16 -> 16 and 16/16 -> 2, which no longer add up to 16
    new = {"head_dim": 16, "qk_nope_head_dim": _scale(240, 16, 2), "qk_rope_head_dim": _scale(16, 16, 2)}
    assert new["qk_nope_head_dim"] + new["qk_rope_head_dim"] != new["head_dim"]
    new["v_head_dim"] = 6
    assert keep_sums(old, new) == {"qk_nope_head_dim": 14}  # v_head_dim is in no sum: left alone
    assert keep_sums(old, {**new, "qk_nope_head_dim": 14}) == {}
    # the frame's head dim is never the part recomputed: the hidden size follows it
    old = {"head_dim": 128, "qk_rope_head_dim": 64, "qk_head_dim": 192}
    assert keep_sums(old, {"head_dim": 16, "qk_rope_head_dim": 10, "qk_head_dim": 24}) == {"qk_rope_head_dim": 8}


def test_a_sum_across_frame_and_layer_override_holds_after_the_shrink():
    tree = {
        "hidden_size": 4096,
        "num_attention_heads": 16,
        "num_hidden_layers": 4,
        "head_dim": 256,
        "qk_rope_head_dim": 16,
        "qk_nope_head_dim": 128,  # the frame's own layers: no sum
        "layer_types": ["full_attention", "sliding_attention"] * 2,
        "per_layer_config": {"1": {"qk_nope_head_dim": 240}, "3": {"qk_nope_head_dim": 240}},
    }
    new, _ = shrink_config_dict(tree, CAREFUL)
    (override,) = new["per_layer_config"].values()
    assert new["head_dim"] == 16 and new["qk_nope_head_dim"] == 8  # the frame keeps its own (scaled) sizes
    assert override["qk_nope_head_dim"] + new["qk_rope_head_dim"] == new["head_dim"]


def test_overrides_are_shrunk_with_the_frame_and_keyed_by_the_kept_layers():
    tree = {
        "hidden_size": 2048,
        "num_attention_heads": 8,
        "num_key_value_heads": 4,
        "head_dim": 256,
        "num_hidden_layers": 12,
        "sliding_window": 512,
        "layer_types": (["sliding_attention"] * 5 + ["full_attention"]) * 2,
        "per_layer_config": {
            "05": {"head_dim": 512, "num_key_value_heads": 1, "sliding_window": None},
            "11": {"head_dim": 512, "num_key_value_heads": 1, "sliding_window": None},
        },
    }
    new, changes = shrink_config_dict(tree, CAREFUL)
    assert new["layer_types"] == ["sliding_attention", "full_attention"]
    assert new["per_layer_config"] == {"1": {"head_dim": 32, "num_key_value_heads": 1, "sliding_window": None}}
    assert changes["per_layer_config"] == [tree["per_layer_config"], new["per_layer_config"]]
    # an override's own head count bounds its kv heads (the frame's 4 new heads would allow 2)
    tree["per_layer_config"] = {"05": {"num_attention_heads": 2, "num_key_value_heads": 2}}
    new, _ = shrink_config_dict(tree, CAREFUL)
    assert new["per_layer_config"] == {"1": {"num_attention_heads": 1, "num_key_value_heads": 1}}


def test_override_keys_keep_their_format_and_unshrunk_depth_keeps_the_indices():
    assert write_layer_keys({3: {}, 10: {}}, padded=True) == {"03": {}, "10": {}}
    assert write_layer_keys({10: {}, 3: {}}, padded=False) == {3: {}, 10: {}}
    tree = {"hidden_size": 256, "num_attention_heads": 4, "num_hidden_layers": 2}
    tree["per_layer_config"] = {1: {"intermediate_size": 1024}}
    new, _ = shrink_config_dict(tree, CAREFUL)
    assert new["per_layer_config"] == {1: {"intermediate_size": 256}}
    frames = [path for path, _ in Shrinker(CAREFUL)._frames(tree, "")]
    assert frames == [""]  # per_layer_config is no frame of its own


def test_layer_plan_keeps_an_overridden_layer():
    config = {"per_layer_config": {"07": {"num_local_experts": 4}}}
    assert plan_layers(config, 10, 2).kept == (0, 7)


# -- tiny instances of transformers 5's heterogeneous configs -------------------------------


def _saves_and_reloads(config, tmp_path):
    config.save_pretrained(tmp_path)
    return AutoConfig.from_pretrained(tmp_path)


def test_dots3_note_tiny_config_keeps_its_sliding_layers_and_reloads(tmp_path):
    _needs("dots3_note")
    torch.manual_seed(0)
    original = AutoConfig.for_model("dots3_note")
    tiny = build_tiny(original)
    text = tiny.config.get_text_config()
    assert text.num_hidden_layers == 2 and sorted(text.layer_types) == ["indexed_attention", "sliding_attention"]
    overrides = text.to_dict()["per_layer_config"]
    sliding = str(text.layer_types.index("sliding_attention"))
    assert list(overrides) == [sliding]
    assert (
        overrides[sliding]["qk_nope_head_dim"]
        < original.text_config.to_dict()["per_layer_config"]["02"]["qk_nope_head_dim"]
    )
    layer = text.per_layer_config["sliding_attention"]
    assert layer.head_dim == layer.qk_nope_head_dim + layer.qk_rope_head_dim
    reloaded = _saves_and_reloads(tiny.config, tmp_path)
    assert reloaded.get_text_config().to_dict()["per_layer_config"] == overrides


def test_gemma4_text_tiny_config_keeps_its_wide_full_attention_layer_and_reloads(tmp_path):
    _needs("gemma4_text")
    torch.manual_seed(0)
    tiny = build_tiny(AutoConfig.for_model("gemma4_text"))
    config = tiny.config
    full = config.layer_types.index("full_attention")
    assert config.per_layer_config[full].head_dim == 2 * config.per_layer_config[1 - full].head_dim == 32
    reloaded = _saves_and_reloads(config, tmp_path)
    assert reloaded.to_dict()["per_layer_config"] == {str(full): {"head_dim": 32}}
    assert torch.isfinite(tiny.forward().logits).all()


# -- an invalid tiny config is a build failure ----------------------------------------------


@needs_validate
def test_config_invalidity_names_the_validator_and_its_message():
    config = LlamaConfig()
    assert config_invalidity(config) is None
    config.hidden_size = 65
    assert config_invalidity(config) == (
        "validate_architecture: ValueError: "
        "The hidden size (65) is not a multiple of the number of attention heads (32)."
    )


def _stale_overrides(monkeypatch):
    """The shrink as it was before per-layer overrides were handled: they keep full sizes and old indices."""
    monkeypatch.setattr(Shrinker, "_shrink_per_layer", lambda self, *args: None)


def test_an_invalid_tiny_config_fails_the_build_in_one_line(monkeypatch):
    _needs("dots3_note")
    _stale_overrides(monkeypatch)
    with pytest.raises(ShrinkError) as caught:
        build_tiny(AutoConfig.for_model("dots3_note"))
    assert {a.stage for a in caught.value.attempts} == {"config"}
    message = caught.value.message
    assert "\n" not in message
    assert "the shrunk config does not validate: text_config: validate_architecture" in message
    assert "SWA head_dim must equal qk_nope_head_dim + qk_rope_head_dim" in message


@needs_validate
def test_inspect_is_inconclusive_and_tiny_exits_2_on_an_invalid_tiny_config(monkeypatch, tmp_path):
    from scaffold.cli import app

    def invalid(config, tree, changes):
        small = copy.deepcopy(config)
        small.hidden_size = 65
        return small

    monkeypatch.setattr(builder_module, "rebuild_config", invalid)
    runner = CliRunner()
    result = runner.invoke(app, ["tiny", "transformers:llama", "--out", str(tmp_path / "t")])
    text = " ".join(result.output.split())
    assert result.exit_code == 2 and "Traceback" not in text
    assert "does not validate: validate_architecture: ValueError: The hidden size (65)" in text
    result = runner.invoke(app, ["inspect", "transformers:llama"])
    text = " ".join(result.output.split())
    assert result.exit_code == 3, text
    assert "inconclusive" in text and "does not validate" in text
