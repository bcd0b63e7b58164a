"""Dynamic detectors (forward_coverage, shared_cache_keys, block_replay) on hand-written archs, llama and bloom."""

from __future__ import annotations

import pytest
import torch
from inspect_archs.dynamic_archs import ARCHS, DETECTOR_OF, make_context

from scaffold.inspection.autoround_replay import declared_shared_keys
from scaffold.inspection.context import InspectContext
from scaffold.inspection.findings import Finding, Mode, Severity
from scaffold.inspection.probes import calibration_samples, find_stacks, same_value
from scaffold.modes.block_replay import detect as block_replay
from scaffold.modes.block_replay.detect import classify
from scaffold.modes.forward_coverage import detect as forward_coverage
from scaffold.modes.shared_cache_keys import detect as shared_cache_keys
from scaffold.modes.shared_cache_keys.detect import split_problem

# AutoRound bf16 support simulated off, then on: the verdicts must not depend on the machine.
pytestmark = pytest.mark.usefixtures("autoround_bf16")

DETECTORS = (forward_coverage, shared_cache_keys, block_replay)


def run_all(ctx: InspectContext) -> list[Finding]:
    torch.manual_seed(0)
    return [finding for detector in DETECTORS for finding in detector.detect(ctx)]


@pytest.fixture(scope="module")
def arch_findings(autoround_bf16) -> dict[str, list[Finding]]:
    return {model_type: run_all(make_context(model_type)) for model_type in ARCHS}


@pytest.mark.parametrize("model_type", list(ARCHS))
def test_each_arch_trips_exactly_its_detector(arch_findings, model_type):
    modes = [f.mode.value for f in arch_findings[model_type]]
    expected = [DETECTOR_OF[model_type]] if model_type in DETECTOR_OF else []
    assert modes == expected
    assert all(f.probe == "tiny" for f in arch_findings[model_type])


def test_forward_coverage_evidence(arch_findings):
    (finding,) = arch_findings["da_mtp_tower"]
    assert finding.severity is Severity.SILENT
    assert finding.evidence["reached"] == ["layers"]
    assert finding.evidence["unreached"] == [{"path": "mtp_layers", "block_class": "Block", "count": 2}]
    assert finding.evidence["same_signature_as"] == "layers"
    assert finding.evidence["hidden_size_match"] is True


def test_shared_cache_key_is_verified_by_replay(arch_findings):
    (finding,) = arch_findings["da_shared_bias"]
    evidence = finding.evidence
    assert evidence["model_class"] == "da_shared_bias_ForCausalLM"
    assert evidence["keys"] == ["position_bias"]
    assert evidence["details"]["position_bias"]["shape"] == [4, 8, 8]
    verified = evidence["verified"]["layers.0"]
    assert not verified["without"].startswith("matches")
    assert verified["with"].startswith("matches")
    assert "da_shared_bias_ForCausalLM" in finding.fix


@pytest.mark.parametrize(
    ("model_type", "cause", "names"),
    [("da_layer_scale", "zero_dim_tensor", ["layer_scale"]), ("da_state_list", "python_list", ["states"])],
)
def test_block_replay_cause(arch_findings, model_type, cause, names):
    (finding,) = arch_findings[model_type]
    assert finding.severity is Severity.FAILS
    assert finding.evidence["cause"] == cause
    assert finding.evidence["cause_inputs"] == names
    assert finding.evidence["stack"] == "layers"
    assert finding.evidence["exception"]


def test_block_replay_per_block_input(arch_findings):
    (finding,) = arch_findings["da_layer_window"]
    evidence = finding.evidence
    assert evidence["cause"] == "per_block_input"
    assert evidence["cause_inputs"] == ["window"]
    assert evidence["block"] == "layers.1"
    assert evidence["replayed_with_inputs_of"] == "layers.0"
    assert evidence["max_abs_err"] > 1e-2


def test_hybrid_masks_are_rebuilt_per_block_from_a_padded_forward(arch_findings):
    """lara_mini / qwen3_5 in miniature: linear layers get the 2-D integer padding mask, attention layers a 4-D
    bool mask; AutoRound replays layer 1 with layer 0's integer mask (SDPA raises). With the tiny batch's all-ones
    mask both kinds get None, so the rebuild keys come from a padded forward too, and the rebuild fix (run here on
    the tiny model) gives layer 1 its own mask: AutoRound's replay then matches."""
    from scaffold.inspection.autoround_replay import replay_outcomes
    from scaffold.modes.block_replay.generate import choose_fix, render_fix

    (finding,) = arch_findings["da_hybrid_mask"]
    evidence = finding.evidence
    assert (evidence["cause"], evidence["cause_inputs"]) == ("per_block_input", ["attention_mask"])
    assert "attn_mask dtype" in evidence["exception"]
    assert evidence["rebuild"]["keys"] == ["attention_mask"]
    fix = choose_fix(finding)
    assert (fix.rewrite, fix.constant_keys) == ("rebuild", ("attention_mask",))
    tiny = make_context("da_hybrid_mask").tiny()
    assert not replay_outcomes(tiny.model, tiny.inputs)["layers.1"].startswith("matches")
    namespace: dict = {}
    exec(render_fix(fix, "toy", "seen"), namespace)  # noqa: S102 - generated code
    namespace["_patch_toy_block_replay"](tiny.model)
    outcomes = replay_outcomes(tiny.model, tiny.inputs)
    assert all(outcome.startswith("matches") for outcome in outcomes.values()), outcomes


def test_shared_state_is_carried_per_sample_to_each_replayed_block(arch_findings):
    """gemma4's KVSharingDict in miniature: one dict per forward, layer 0 writes keys into it, layer 1 reads them.
    AutoRound caches no dict (the replay of layer 0 crashes on None); the state fix gives each replayed block a
    fresh dict holding the entries the earlier blocks wrote for its samples: AutoRound's replay then matches."""
    from scaffold.inspection.autoround_replay import replay_outcomes
    from scaffold.modes.block_replay.generate import choose_fix, render_fix

    (finding,) = arch_findings["da_shared_state"]
    evidence = finding.evidence
    assert (evidence["cause"], evidence["cause_inputs"]) == ("shared_state", ["shared"])
    assert evidence["shared_state"] == {
        "key": "shared",
        "type": "builtins.dict",
        "writers": {"layers.0": ["kv"]},
        "batch_first": True,
    }
    fix = choose_fix(finding)
    assert (fix.rewrite, fix.state_key, fix.constant_keys) == ("state", "shared", ())
    tiny = make_context("da_shared_state").tiny()
    assert not replay_outcomes(tiny.model, tiny.inputs)["layers.0"].startswith("matches")
    namespace: dict = {}
    exec(render_fix(fix, "toy", "seen"), namespace)  # noqa: S102 - generated code
    namespace["_patch_toy_block_replay"](tiny.model)
    outcomes = replay_outcomes(tiny.model, tiny.inputs)
    assert len(outcomes) == 2 and all(outcome.startswith("matches") for outcome in outcomes.values()), outcomes


def test_rebuild_keys_of_a_padded_forward():
    """The per-block keys a rebuild fix re-derives: an all-ones mask alone shows none for a hybrid stack."""
    ctx = make_context("da_hybrid_mask")
    model, blocks = ctx.tiny().model, ["layers.0", "layers.1"]
    assert block_replay._differing_keys(model, blocks, ctx.tiny().inputs)[0] == []
    assert block_replay.rebuild_facts(ctx, "layers")["keys"] == ["attention_mask"]


def test_static_context_skips_probes():
    ctx = make_context("da_shared_bias", dynamic=False)
    assert run_all(ctx) == []


def test_split_problem():
    assert split_problem(torch.zeros(2, 8), batch=2) is None
    assert "0-d" in split_problem(torch.tensor(1.0), batch=2)
    assert "dim 0 is 4" in split_problem(torch.zeros(4, 8, 8), batch=2)
    assert "list" in split_problem([torch.zeros(2, 8)], batch=2)
    assert split_problem(["no tensors"], batch=2) is None


def test_classify_int_mask_and_unknown():
    mask = torch.ones(1, 8, dtype=torch.long)
    assert classify({"hidden_states": torch.zeros(1, 8, 4), "token_mask": mask}, {}, ()).tag == "int_mask"
    cached = {"token_mask": "Tensor[1, 8] bool"}
    assert classify({"hidden_states": torch.zeros(1, 8, 4), "token_mask": mask.bool()}, cached, ()).tag == "unknown"
    # an input the block gets that AutoRound did not cache at all (gemma4's KVSharingDict) is named
    missing = classify({"hidden_states": torch.zeros(1, 8, 4), "shared_kv": {"k": 1}}, {}, ())
    assert (missing.tag, missing.inputs) == ("not_cached", ["shared_kv"])
    # a declared shared key is not blamed
    assert classify({"pos": [torch.zeros(1)]}, {}, ("pos",)).tag == "unknown"


def test_same_value_and_samples():
    a = torch.arange(4.0)
    assert same_value((a, a), (a.clone(), a.clone()))
    assert not same_value(a, a + 1)
    samples = calibration_samples({"input_ids": torch.arange(8).view(1, 8), "attention_mask": torch.ones(1, 8)}, 2)
    assert [s["input_ids"].shape for s in samples] == [torch.Size([1, 8])] * 2
    assert not torch.equal(samples[0]["input_ids"], samples[1]["input_ids"])
    assert all(s["attention_mask"][0, -1] == 0 and s["attention_mask"][0, 0] == 1 for s in samples)


def test_declared_shared_keys_restores_registry():
    from auto_round.special_model_handler import SPECIAL_SHARED_CACHE_KEYS

    before = dict(SPECIAL_SHARED_CACHE_KEYS)
    with declared_shared_keys("SomeModelClass", ("bias",)):
        assert SPECIAL_SHARED_CACHE_KEYS["SomeModelClass"] == ("bias",)
    assert SPECIAL_SHARED_CACHE_KEYS == before


def test_find_stacks_on_hand_written_arch():
    ctx = make_context("da_mtp_tower")
    stacks = {s.path: s for s in find_stacks(ctx.tiny().model)}
    assert stacks["layers"].blocks == ("layers.0", "layers.1")
    assert stacks["mtp_layers"].count == 2


def _transformers_context(model_type: str) -> InspectContext:
    from scaffold.inspection.stage import load_context
    from scaffold.resolve.target import resolve_target

    ctx = load_context(resolve_target(f"transformers:{model_type}"))
    ctx.tiny()
    return ctx


def test_llama_triggers_nothing():
    ctx = _transformers_context("llama")
    assert run_all(ctx) == []
    assert ctx.notes == []


def test_bloom_alibi_replay_is_reported():
    ctx = _transformers_context("bloom")
    findings = run_all(ctx)
    assert [f.mode for f in findings] == [Mode.BLOCK_REPLAY]
    evidence = findings[0].evidence
    assert evidence["cause"] == "alibi"
    assert evidence["stack"] == "transformer.h"
    assert "The expanded size of the tensor" in evidence["exception"]
    assert "post_process_cache_data" in evidence["cause_detail"]


def test_mishandled_inputs_names_every_uncacheable_kind():
    from scaffold.modes.block_replay.detect import mishandled_inputs

    inputs = {
        "hidden_states": torch.zeros(1, 8, 4),
        "layer_id": torch.tensor(1),
        "layer_idx": 1,
        "states": [torch.zeros(1, 4)],
        "token_mask": torch.ones(1, 8, dtype=torch.long),
        "attention_mask": torch.ones(1, 1, 8, 8, dtype=torch.bool),
        "use_cache": False,
    }
    found = mishandled_inputs(inputs, ())
    assert found == {
        "layer_id": "zero_dim_tensor",
        "layer_idx": "python_scalar",
        "states": "python_list",
        "token_mask": "int_mask",
    }
    assert "layer_id" not in mishandled_inputs(inputs, ("layer_id",))


def test_sequence_first_layout_is_classified_before_other_causes():
    layout = {"hidden_states": 1, "rotary_pos_emb": 1, "attention_mask": 0}
    inputs = {"hidden_states": torch.zeros(8, 1, 4), "layer_id": torch.tensor(0)}
    cause = classify(inputs, {}, (), layout)
    assert cause.tag == "sequence_first" and cause.inputs == ["hidden_states", "rotary_pos_emb"]
    assert classify(inputs, {}, (), {"hidden_states": 0}).tag == "zero_dim_tensor"
