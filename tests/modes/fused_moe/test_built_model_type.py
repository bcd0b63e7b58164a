"""fused_moe keys AutoRound's replacement by the ``config.model_type`` of the model as built.

``transformers:llama4`` builds ``Llama4ForCausalLM``, whose config is the text one (``llama4_text``). AutoRound's
``BUILTIN_MODULES`` holds a replacement for ``llama4`` only, and ``is_custom_model`` reads the built model's type:
its experts stay fused, so the detector must say so and the generator must register the built type.
"""

from __future__ import annotations

import pytest

from scaffold.inspection.findings import Mode, Severity
from scaffold.inspection.stage import load_context
from scaffold.modes.fused_moe import detect
from scaffold.modes.fused_moe.generate import registry_key
from scaffold.plan.model import Plan
from scaffold.resolve.target import resolve_target


@pytest.mark.skipif(not detect.has_experts_interface(), reason="transformers 5.x model code")
def test_text_model_of_a_multimodal_checkpoint_is_keyed_by_its_own_type():
    ctx = load_context(resolve_target("transformers:llama4"))
    findings = [f for f in detect.detect(ctx) if f.mode is Mode.FUSED_MOE]
    assert [f.severity for f in findings] == [Severity.SILENT]
    finding = findings[0]
    assert finding.evidence["builtin_replacement"] is False and finding.evidence["model_type"] == "llama4_text"
    assert registry_key(finding, Plan("llama4", "Llama4ForCausalLM")) == "llama4_text"
