"""Registrations keyed by the model type AutoRound resolves for the loaded model (scaffold/generators/model_key.py).

A remote-code config class that declares no ``model_type`` (Ling-V2) carries config.json's name when read from
the file and ``''`` when rebuilt from ``to_dict()``: the adaptation must reach the model either way.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from transformers import PretrainedConfig

from scaffold.codegen import model_key
from scaffold.inspection.findings import Finding, Mode, Severity
from scaffold.modes.block_detection import generate as block_detection
from scaffold.modes.ignore_layers import generate as ignore_layers
from scaffold.plan.model import DictEntry, Plan


class NamelessConfig(PretrainedConfig):
    """Like ``BailingMoeV2Config``: no ``model_type`` on the class."""


class NamedConfig(PretrainedConfig):
    model_type = "toy-moe"


def _ctx(config: PretrainedConfig) -> SimpleNamespace:
    return SimpleNamespace(config=config, target=SimpleNamespace(has_remote_code=True))


def _plan(ctx: SimpleNamespace) -> Plan:
    plan = Plan(model_type=model_key.plan_key("toy-moe", ctx), model_class="ToyMoeForCausalLM")
    stacks = [{"path": "model.layers", "block_class": "B", "count": 3, "exclude_classes": ["ToyMTPLayer"]}]
    found = Finding(Mode.BLOCK_DETECTION, Severity.FAILS, "mtp", "fix", evidence={"stacks": stacks})
    block_detection.generate(found, plan, ctx)
    rule = Finding(Mode.IGNORE_LAYERS, Severity.FAILS, "mtp", "fix", evidence={"layer_patterns": ["model.layers.2."]})
    ignore_layers.generate(rule, plan, ctx)
    model_key.generate(plan, ctx)
    return plan


def _registered(plan: Plan, config: PretrainedConfig) -> tuple[str, bool]:
    """What AutoRound resolves for a model with ``config`` once the plan's map entries and ignore rule apply."""
    from auto_round import special_model_handler
    from auto_round.utils import model as utils_model

    entries = [e for e in plan.edits if isinstance(e, DictEntry) and e.registry == model_key.REGISTRY]
    rule = next(e for e in plan.edits if e.kind == "ignore_rule")
    matcher = eval(rule.call.split("matchers=[")[1].split("],")[0].strip().rstrip(","), vars(special_model_handler))  # noqa: S307
    saved = dict(utils_model.ARCHITECTURE_MODEL_TYPE_MAP)
    try:
        for entry in entries:
            utils_model.ARCHITECTURE_MODEL_TYPE_MAP[entry.key] = eval(entry.value)  # noqa: S307
        model = SimpleNamespace(config=config)
        return utils_model.resolve_model_type(model), matcher(model)
    finally:
        utils_model.ARCHITECTURE_MODEL_TYPE_MAP.clear()
        utils_model.ARCHITECTURE_MODEL_TYPE_MAP.update(saved)


@pytest.mark.parametrize("read_from", ["config.json", "to_dict"])
def test_a_config_class_without_model_type_is_reached_through_its_architecture(read_from):
    from_file = NamelessConfig(model_type="toy-moe", architectures=["ToyMoeForCausalLM"])
    assert from_file.model_type == "toy-moe" and type(from_file).model_type == ""
    plan = _plan(_ctx(from_file))
    assert plan.model_type == "toy-moe"
    assert DictEntry(model_key.UTILS_MODEL, model_key.REGISTRY, "ToyMoeForCausalLM", '"toy-moe"') in plan.edits
    assert "ArchitectureMatcher" in next(e.call for e in plan.edits if e.kind == "ignore_rule")
    assert plan.test_data["block_detection"]["exclude_classes"] == ["ToyMTPLayer"]
    loaded = from_file if read_from == "config.json" else NamelessConfig.from_dict(from_file.to_dict())
    assert _registered(plan, loaded) == ("toy-moe", True)


def test_a_config_class_with_its_model_type_keeps_the_plain_keys():
    plan = _plan(_ctx(NamedConfig(architectures=["ToyMoeForCausalLM"])))
    assert not [e for e in plan.edits if getattr(e, "registry", None) == model_key.REGISTRY]
    assert 'ModelTypeMatcher("toy-moe", mode="full")' in next(e.call for e in plan.edits if e.kind == "ignore_rule")
    assert all("ARCHITECTURE_MODEL_TYPE_MAP" not in line for item in plan.items for line in item.generated)


def test_the_key_is_what_autoround_resolves():
    class Mimo(PretrainedConfig):
        model_type = "qwen2"

    ctx = _ctx(Mimo(architectures=["MiMoAudioForCausalLM"]))  # AutoRound's own map: mimo_audio
    assert model_key.plan_key("qwen2", ctx) == "mimo_audio"
    assert model_key.plan_key("qwen2", None) == "qwen2"
