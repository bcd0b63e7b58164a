"""save_conversion: its fixture (ScafSplit, ``tests/modes/save_conversion/scafsplit``) trips it on transformers 5,
the reverse conversion is named with the layers it joins, the generated function stops it, and new-arch's generated
test passes (plugin and patched checkout) with the export counted under the model's own names."""

from __future__ import annotations

from pathlib import Path

import pytest

from scaffold.inspection.findings import Mode
from scaffold.modes.save_conversion import check, detect, generate
from scaffold.plan.model import HandlerBranch, Plan, TopLevelFunction
from scaffold.versions import transformers_major
from tests.modes.fixtures import assert_new_arch_fixes, fixture_findings, problem_modes

FIXTURE = Path(__file__).parent / "scafsplit"
tf5 = pytest.mark.skipif(transformers_major() < 5, reason="transformers 5 only: 4.x has no conversion mapping")


def _scafsplit():
    from types import SimpleNamespace

    from scaffold.testkit import build_tiny_target

    tiny = build_tiny_target(str(FIXTURE), trust_remote_code=True)
    return SimpleNamespace(model=tiny.model)


def test_fixture_trips_save_conversion():
    modes = problem_modes(fixture_findings(Mode.SAVE_CONVERSION))
    # transformers 4.x saves under the module names; on 5 the mode explains the save crash (no stock_run finding)
    assert modes == (["save_conversion"] if transformers_major() >= 5 else [])


@tf5
def test_the_reverse_split_is_named_with_the_layers_it_joins():
    (join,) = detect.joined_layers(_scafsplit().model)
    assert join.checkpoint == ["qkv_fused"] and join.targets == ["q_proj", "k_proj", "v_proj"]
    assert join.operations == ["Concatenate"]
    assert join.layers == [f"model.layers.{i}.{p}_proj" for i in range(2) for p in "qkv"]
    assert "Sizes of tensors must match" in join.error  # the packed qweight [in/8, out]: q 64 columns, k 32


@tf5
def test_generated_function_leaves_nothing_to_revert():
    tiny = _scafsplit()
    finding = detect.detect(type("Ctx", (), {"meta_model": tiny.model, "model_class": "ScafSplitForCausalLM"})())[0]
    plan = Plan(model_type="scafsplit", model_class="ScafSplitForCausalLM")
    generate.generate(finding, plan)
    generate.generate(finding, plan)  # a second finding of the same join: one function, one join recorded
    function, branch = plan.edits
    assert isinstance(function, TopLevelFunction) and isinstance(branch, HandlerBranch)
    assert branch.body == f"{function.name}(model)" and not plan.items[0].todos
    assert len(plan.test_data["save_conversion"]["joins"]) == 1
    assert check.problems(tiny, plan.test_data)  # stock AutoRound's handler keeps the conversion
    namespace: dict = {}
    exec(compile(function.code, "<generated>", "exec"), namespace)  # noqa: S102 - the generated function itself
    model = namespace[function.name](tiny.model)
    assert model is tiny.model and detect.joined_layers(model) == []
    assert detect.save_conversions(model) == []
    assert check.problems(tiny, {}) == []  # nothing recorded: nothing checked


@pytest.mark.slow
@tf5
def test_new_arch_fixes_the_save_crash(autoround_checkout, tmp_path):
    assert_new_arch_fixes(FIXTURE, Mode.SAVE_CONVERSION, autoround_checkout, tmp_path)
