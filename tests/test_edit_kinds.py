"""Edit kinds (scaffold/plan/edits.py): a before/after codemod case per kind, its report and plugin lines, the registry.

The codemod cases follow libcst's ``assertCodemod``: the exact source after the edit, and the edit found
(nothing changed) when run again.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from scaffold.errors import ScaffoldError
from scaffold.patch.locate import Where
from scaffold.patch.outcome import APPLIED, PRESENT
from scaffold.patch.serialize import plan_from_json, plan_to_json
from scaffold.patch.source_edit import edit_source
from scaffold.plan import edits
from scaffold.plan.edits import PARTS, EditKind, edit_from_json
from scaffold.plan.model import DictEntry, HandlerBranch, IgnoreRule, Plan, SequenceItem, TopLevelFunction

HANDLER = "auto_round/special_model_handler.py"
UTILS_MODEL = "auto_round/utils/model.py"


@dataclass
class Case:
    edit: EditKind
    before: str
    after: str
    report: str  # the REPORT.md line
    registrations: list[str]  # what the runtime plugin runs for it


CASES = {
    "dict_entry": Case(
        DictEntry(UTILS_MODEL, "ARCHITECTURE_MODEL_TYPE_MAP", "ToyForCausalLM", '"toy"'),
        'ARCHITECTURE_MODEL_TYPE_MAP = {\n    "MiMoAudioModel": "mimo_audio",  # audio\n}\n',
        'ARCHITECTURE_MODEL_TYPE_MAP = {\n    "MiMoAudioModel": "mimo_audio",  # audio\n'
        '    "ToyForCausalLM": "toy",\n}\n',
        'dict entry: `ARCHITECTURE_MODEL_TYPE_MAP["ToyForCausalLM"]` in auto_round/utils/model.py',
        ['ar_utils_model.ARCHITECTURE_MODEL_TYPE_MAP["ToyForCausalLM"] = "toy"'],
    ),
    "dict_entry_statement": Case(
        DictEntry(HANDLER, "SPECIAL_SHARED_CACHE_KEYS", "ToyModel", '("router_bias",)'),
        "from registry import SPECIAL_SHARED_CACHE_KEYS\n\n"
        'SPECIAL_SHARED_CACHE_KEYS["Gemma3n"] = ("per_layer_inputs",)\n',
        "from registry import SPECIAL_SHARED_CACHE_KEYS\n\n"
        'SPECIAL_SHARED_CACHE_KEYS["Gemma3n"] = ("per_layer_inputs",)\n'
        'SPECIAL_SHARED_CACHE_KEYS["ToyModel"] = ("router_bias",)\n',
        'dict entry: `SPECIAL_SHARED_CACHE_KEYS["ToyModel"]` in auto_round/special_model_handler.py',
        ['ar_special_model_handler.SPECIAL_SHARED_CACHE_KEYS["ToyModel"] = ("router_bias",)'],
    ),
    "sequence_item": Case(
        SequenceItem("auto_round/utils/common.py", "INNER_SUPPORTED_LAYER_TYPES", "ToyLinear"),
        "INNER_SUPPORTED_LAYER_TYPES = ('FP8Linear',)\n",
        "INNER_SUPPORTED_LAYER_TYPES = ('FP8Linear', 'ToyLinear')\n",
        'sequence item: "ToyLinear" in `INNER_SUPPORTED_LAYER_TYPES` in auto_round/utils/common.py',
        ['_add_to_sequence(ar_utils_common, "INNER_SUPPORTED_LAYER_TYPES", "ToyLinear")'],
    ),
    "function": Case(
        TopLevelFunction(
            HANDLER, "_get_toy_block", 'def _get_toy_block(model):\n    return [["model.layers.0"]]\n', "BLOCKS"
        ),
        'import os\n\n# Block functions by model type.\nBLOCKS = {"a": _a}\n',
        'import os\n\n\ndef _get_toy_block(model):\n    return [["model.layers.0"]]\n\n\n'
        '# Block functions by model type.\nBLOCKS = {"a": _a}\n',
        "function: `_get_toy_block()` in auto_round/special_model_handler.py",
        [],  # the plugin defines it (plugin_definitions), it registers nothing
    ),
    "branch": Case(
        HandlerBranch(HANDLER, "_handle_special_model", "toy", "model.toy = True\n"),
        "def _handle_special_model(model):\n    model_type = model.config.model_type\n"
        '    if model_type == "deepseek_vl_v2":\n        model.forward = model.language.forward\n    return model\n',
        "def _handle_special_model(model):\n    model_type = model.config.model_type\n"
        '    if model_type == "deepseek_vl_v2":\n        model.forward = model.language.forward\n'
        '    if model_type == "toy":\n        model.toy = True\n    return model\n',
        'branch: `_handle_special_model` branch for `model_type == "toy"` in auto_round/special_model_handler.py',
        ['_add_model_type_branch("toy", _handle_toy_special_model)'],
    ),
    "ignore_rule": Case(
        IgnoreRule(HANDLER, "toy", 'register_ignore_layers(matchers=[ModelTypeMatcher("toy")], ignore_layers=["g"])'),
        "def register_ignore_layers(matchers, ignore_layers):\n    pass\n\n\n"
        '# glm\nregister_ignore_layers(matchers=[ModelTypeMatcher("glm")], ignore_layers=["g"])\n',
        "def register_ignore_layers(matchers, ignore_layers):\n    pass\n\n\n"
        '# glm\nregister_ignore_layers(matchers=[ModelTypeMatcher("glm")], ignore_layers=["g"])\n\n'
        '# toy\nregister_ignore_layers(matchers=[ModelTypeMatcher("toy")], ignore_layers=["g"])\n',
        "ignore rule: `register_ignore_layers` rule for `toy` in auto_round/special_model_handler.py",
        ['register_ignore_layers(matchers=[ModelTypeMatcher("toy")], ignore_layers=["g"])'],
    ),
}


def assert_codemod(edit: EditKind, before: str, after: str) -> None:
    """``edit`` turns ``before`` into exactly ``after``; run again on ``after`` it changes nothing."""
    where = Where(edit.file, "9.9.9")
    first = edit_source(before, [edit], where)
    assert [s.status for s in first.statuses] == [APPLIED]
    assert first.code == after
    again = edit_source(after, [edit], where)
    assert [s.status for s in again.statuses] == [PRESENT]
    assert again.code == after


@pytest.mark.parametrize("name", list(CASES))
def test_codemod_before_after(name: str) -> None:
    case = CASES[name]
    assert_codemod(case.edit, case.before, case.after)


@pytest.mark.parametrize("name", list(CASES))
def test_report_line_plugin_lines_and_json_of_each_kind(name: str) -> None:
    case = CASES[name]
    assert case.edit.report_line() == case.report
    assert case.edit.runtime_lines(set()).registrations == case.registrations
    data = case.edit.to_json()
    assert data["kind"] == case.edit.kind and edit_from_json(data) == case.edit


def test_every_kind_has_a_case_and_plans_round_trip() -> None:
    assert {case.edit.kind for case in CASES.values()} == set(edits.EDIT_KINDS)
    plan = Plan("toy", "ToyForCausalLM", edits=[case.edit for case in CASES.values()])
    assert plan_from_json(plan_to_json(plan)) == plan


def test_unknown_or_invalid_edit_in_json_is_one_line_error() -> None:
    with pytest.raises(ScaffoldError, match="unknown edit kind 'nope'.*known: dict_entry, sequence_item"):
        edit_from_json({"kind": "nope"})
    with pytest.raises(ScaffoldError, match="invalid sequence_item edit in plan JSON"):
        edit_from_json({"kind": "sequence_item", "file": "a.py"})


def _kind_class(tag: str, omit: str = "", annotations: dict | None = None) -> type:
    """A new edit kind made at run time, with every part but ``omit``."""
    namespace = {"__annotations__": annotations or {"file": "str", "kind": "str"}, "kind": tag}
    namespace.update({name: (lambda self, *args: None) for name in PARTS if name != omit})
    return dataclass(frozen=True)(type(f"Toy_{tag}", (EditKind,), namespace))


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> dict:
    """The kind registry, restored after the test."""
    kinds = dict(edits.EDIT_KINDS)
    monkeypatch.setattr(edits, "EDIT_KINDS", kinds)
    return kinds


@pytest.mark.parametrize("part", PARTS)
def test_a_kind_missing_a_part_fails_at_class_creation(registry: dict, part: str) -> None:
    with pytest.raises(TypeError, match=f"edit kind Toy_broken lacks {part}"):
        _kind_class("broken", omit=part)
    assert "broken" not in registry


def test_a_kind_without_tag_file_or_with_a_taken_tag_fails(registry: dict) -> None:
    with pytest.raises(TypeError, match="declares no kind tag"):
        _kind_class("")
    with pytest.raises(TypeError, match="has no file field"):
        _kind_class("nofile", annotations={"kind": "str"})
    with pytest.raises(TypeError, match="'branch' of Toy_branch is taken by HandlerBranch"):
        _kind_class("branch")
    assert registry["branch"] is HandlerBranch


def test_a_complete_new_kind_registers_and_serialises(registry: dict) -> None:
    toy = _kind_class("toy_kind")
    assert registry["toy_kind"] is toy
    assert edit_from_json({"kind": "toy_kind", "file": "a.py", "extra": 1}) == toy(file="a.py")
