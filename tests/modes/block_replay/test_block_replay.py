"""block_replay: its corpus fixture trips it (a 0-d per-layer scale AutoRound replays from layer 0).

The fixture is ``SPEC.fixture`` (``scaffold/modes/block_replay/__init__.py``); unit tests of the detector and the
generator stay in tests/test_detectors_*.py and tests/test_generat*.py.
"""

from __future__ import annotations

from scaffold.inspection.findings import Mode
from tests.modes.fixtures import fixture_findings, problem_modes


def test_fixture_trips_block_replay():
    modes = problem_modes(fixture_findings(Mode.BLOCK_REPLAY))
    assert modes == ["block_replay"]  # and no other mode


def test_the_fix_branch_also_fires_for_the_built_model_type():
    """A text model built from a multimodal target (qwen3_5 builds Qwen3_5ForCausalLM with its qwen3_5_text
    config) resolves to another model type: ``_handle_special_model`` must patch it under that type too."""
    from scaffold.inspection.findings import Finding, Severity
    from scaffold.modes.block_replay.generate import generate
    from scaffold.plan.model import HandlerBranch, Plan

    def branches(evidence):
        plan = Plan(model_type="hybrid", model_class="HybridForCausalLM")
        finding = Finding(Mode.BLOCK_REPLAY, Severity.FAILS, "replay fails", "fix", evidence=evidence)
        generate(finding, plan)
        return [(e.model_type, e.body) for e in plan.edits if isinstance(e, HandlerBranch)]

    evidence = {"stack": "model.layers", "cause": "zero_dim_tensor", "cause_inputs": ["step"]}
    evidence["inputs"] = {"hidden_states": "Tensor[1, 8, 32] float32", "step": "Tensor[] int64"}
    assert branches(evidence) == [("hybrid", "_patch_hybrid_block_replay(model)")]
    assert branches({**evidence, "model_type": "hybrid_text"}) == [
        ("hybrid", "_patch_hybrid_block_replay(model)"),
        ("hybrid_text", "_patch_hybrid_block_replay(model)"),
    ]


def test_an_int_mask_cause_gets_a_complete_fix():
    """An integer mask every block gets alike is kept out of AutoRound's cache and handed back: no skeleton."""
    from scaffold.inspection.findings import Finding, Severity
    from scaffold.modes.block_replay.generate import choose_fix, render_fix

    evidence = {"stack": "layers", "cause": "int_mask", "cause_inputs": ["token_mask"]}
    evidence["inputs"] = {"hidden_states": "Tensor[1, 8, 32] float32", "token_mask": "Tensor[1, 8] int64"}
    fix = choose_fix(Finding(Mode.BLOCK_REPLAY, Severity.FAILS, "replay fails", "fix", evidence=evidence))
    assert (fix.rewrite, fix.constant_keys) == ("constant", ("token_mask",))
    assert "NotImplementedError" not in render_fix(fix, "toy", "seen")
