"""The proof corpus (tests/archs/*): each architecture loads, runs, and breaks stock AutoRound as described.

The slow tests quantize with stock auto-round (``iters=0``: the same block detection, layer selection and
block replay as tuning, without the sign-gradient steps) and assert the symptom from ``expected.json``:
an exception matching ``stock_check.error_match``, or a packed share of block weights measured on the
export that is at most ``stock_check.max_share``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from scaffold.autoround_api import get_block_names
from scaffold.inspection.findings import Mode
from scaffold.measure.quantize import block_coverage, count_packed, reload_and_forward, run_autoround

ARCHS = Path(__file__).parent / "archs"
NAMES = sorted(p.name for p in ARCHS.iterdir() if (p / "expected.json").exists())


def _expected(name: str) -> dict:
    return json.loads((ARCHS / name / "expected.json").read_text())


def test_corpus_has_the_six_architectures():
    assert NAMES == ["combo", "custom_linear", "draft_tower", "fused_experts", "hidden_blocks", "shared_tensor"]
    model_types = {json.loads((ARCHS / n / "config.json").read_text())["model_type"] for n in NAMES}
    assert len(model_types) == len(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_arch_loads_and_forwards(name, arch_loader):
    expected = _expected(name)
    assert expected["modes"] and all(Mode(mode) for mode in expected["modes"])
    assert expected["stock_symptom"]
    model = arch_loader(name)
    config = model.config
    assert config.hidden_size == 64 and config.vocab_size == 512 and config.num_hidden_layers <= 4
    torch.manual_seed(0)
    input_ids = torch.randint(4, 512, (2, 16))
    logits = model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids)).logits
    assert logits.shape == (2, 16, 512) and torch.isfinite(logits).all()
    for stack in expected["block_stacks"]:
        assert any(n.startswith(stack + ".") for n, _ in model.named_parameters()), stack
    if "stock_block_names" in expected:
        assert get_block_names(model) == expected["stock_block_names"]


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_stock_autoround_fails_or_underquantizes(name, arch_loader, make_tokenizer, calib_texts, tmp_path):
    expected = _expected(name)
    check = expected["stock_check"]
    model = arch_loader(name)
    run = run_autoround(
        model, make_tokenizer(), calib_texts, tmp_path / "export", iters=0, group_size=32, raise_errors=False
    )
    print(f"{name}: stock auto-round {run.seconds:.1f}s, {run.error_line or 'ok'}")
    if "error_match" in check:
        assert not run.ok, f"stock AutoRound unexpectedly succeeded on {name}"
        assert run.error_type == check["error_type"]
        assert re.search(check["error_match"], run.error), run.error_line
        return
    assert run.ok, run.error_line
    coverage = block_coverage(run.original_params, count_packed(run.export_dir), expected["block_stacks"])
    print(f"{name}: packed share of block weights {coverage.share:.3f}")
    assert coverage.share <= check["max_share"] < 1.0
    assert set(check.get("unpacked", [])) <= set(coverage.unquantized)
    if "log_match" in check:
        assert any(check["log_match"] in line for line in run.summary_lines), run.summary_lines


# Positive controls: the one-line fix each README names makes stock AutoRound get past the symptom, which
# shows the symptom comes from that cause and not from the harness. Each entry: AutoRound kwargs, shared cache
# keys to declare, stacks to measure, expected packed share of them after the fix.
CONTROLS = {
    "shared_tensor": ({}, {"ScafAliForCausalLM": ("position_bias",)}, ["model.layers"], 1.0),
    "hidden_blocks": (
        {"to_quant_block_names": [["model.layers.block0", "model.layers.block1"]]},
        {},
        ["model.layers"],
        1.0,
    ),
    "draft_tower": ({"to_quant_block_names": [["model.layers.0", "model.layers.1"]]}, {}, ["model.layers"], 1.0),
    # declaring the shared gate lets combo run, but its fused experts and QLinear attention still pack nothing
    "combo": ({}, {"ScafComboForCausalLM": ("residual_gate",)}, ["model.layers"], 0.0),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CONTROLS))
def test_named_fix_gets_stock_autoround_past_the_symptom(
    name, arch_loader, make_tokenizer, calib_texts, tmp_path, monkeypatch
):
    from auto_round import special_model_handler

    kwargs, shared_keys, stacks, share = CONTROLS[name]
    for model_class, keys in shared_keys.items():
        monkeypatch.setitem(special_model_handler.SPECIAL_SHARED_CACHE_KEYS, model_class, keys)
    model = arch_loader(name)
    run = run_autoround(model, make_tokenizer(), calib_texts, tmp_path / "export", iters=0, group_size=32, **kwargs)
    packed = count_packed(run.export_dir)
    coverage = block_coverage(run.original_params, packed, stacks)
    print(f"{name}: fixed run {run.seconds:.1f}s, share of {stacks} {coverage.share:.3f}")
    assert coverage.share == share, coverage.unquantized
    reloaded = reload_and_forward(run.export_dir, trust_remote_code=True)
    assert reloaded.ok and reloaded.finite, reloaded.error
    assert reloaded.quantized_modules == len(packed.packed)
    if name == "draft_tower":
        tower = block_coverage(run.original_params, packed, ["model.draft_layers"])
        assert tower.share == 0.0  # the draft tower still needs a forward that runs it
