"""The simple generators (block detection, shared cache keys, ignore layers, MLLM misdetection) and their helpers."""

from __future__ import annotations

import subprocess
import sys

import pytest

from scaffold.codegen import py_literal
from scaffold.inspection.findings import Finding, Mode, Severity
from scaffold.modes.block_detection import generate as block_detection
from scaffold.modes.ignore_layers import generate as ignore_layers
from scaffold.modes.ignore_layers.generate import router_suffix
from scaffold.modes.mllm_misdetection import generate as mllm_misdetection
from scaffold.modes.shared_cache_keys import generate as shared_cache_keys
from scaffold.plan.model import SPECIAL_MODEL_HANDLER, DictEntry, IgnoreRule, Plan, SequenceItem, TopLevelFunction
from scaffold.render.import_block import format_imports


def finding(mode: Mode, **evidence) -> Finding:
    return Finding(mode, Severity.FAILS, f"{mode.value} problem", "fix it", evidence=evidence)


def new_plan() -> Plan:
    return Plan(model_type="toy-moe", model_class="ToyMoeForCausalLM")


def test_block_detection_registers_a_function_that_reads_the_stacks_at_run_time():
    plan = new_plan()
    stacks = [{"path": "model.layers", "block_class": "B", "count": 4, "container": "ModuleList"}]
    stacks.append({"path": "model.visual.blocks", "block_class": "V", "count": 2, "container": "ModuleList"})
    block_detection.generate(finding(Mode.BLOCK_DETECTION, autoround_blocks=[], stacks=stacks), plan, None)
    function, entry = plan.edits
    assert isinstance(function, TopLevelFunction) and function.name == "_get_toy_moe_multimodal_block"
    assert function.before == "SPECIAL_MULTIMODAL_BLOCK"
    assert entry == DictEntry(SPECIAL_MODEL_HANDLER, "SPECIAL_MULTIMODAL_BLOCK", "toy-moe", function.name)
    assert plan.test_data["block_detection"]["stacks"] == ["model.layers"]  # vision only with quant_vision

    import torch
    from torch import nn

    namespace: dict = {}
    exec(function.code, namespace)  # noqa: S102 - the generated function on a toy module tree
    model = nn.Module()
    model.model = nn.Module()
    model.model.layers = nn.ModuleList(nn.Linear(2, 2) for _ in range(3))
    model.model.visual = nn.Module()
    model.model.visual.blocks = nn.ModuleList(nn.Linear(2, 2) for _ in range(2))
    get_blocks = namespace[function.name]
    assert get_blocks(model) == [["model.layers.0", "model.layers.1", "model.layers.2"]]
    assert get_blocks(model, quant_vision=True)[1] == ["model.visual.blocks.0", "model.visual.blocks.1"]
    assert torch.is_tensor(model.model.layers[0].weight)


def test_block_detection_without_stacks_leaves_a_todo():
    plan = new_plan()
    block_detection.generate(finding(Mode.BLOCK_DETECTION, autoround_blocks=[], stacks=[]), plan, None)
    assert plan.edits == [] and plan.items[0].todos


def test_shared_cache_keys_are_keyed_by_model_class():
    plan = new_plan()
    evidence = {"model_class": "ToyMoeModel", "keys": ["slope_rate", "slope_rate", "alibi"]}
    shared_cache_keys.generate(finding(Mode.SHARED_CACHE_KEYS, **evidence), plan, None)
    value = '("slope_rate", "alibi")'
    assert plan.edits == [DictEntry(SPECIAL_MODEL_HANDLER, "SPECIAL_SHARED_CACHE_KEYS", "ToyMoeModel", value)]
    assert plan.test_data["shared_cache_keys"] == {"ToyMoeModel": ["slope_rate", "alibi"]}


def test_single_shared_key_is_a_one_element_tuple():
    plan = new_plan()
    shared_cache_keys.generate(finding(Mode.SHARED_CACHE_KEYS, model_class="M", keys=["k"]), plan, None)
    assert plan.edits[0].value == '("k",)'


@pytest.mark.parametrize(
    ("path", "suffix"),
    [("model.layers.3.mlp.gate", ".mlp.gate"), ("model.layers.12.block_sparse_moe.router", ".block_sparse_moe.router")],
)
def test_router_suffix_drops_the_block_index(path, suffix):
    assert router_suffix(path) == suffix


def test_router_outside_a_stack_keeps_its_path():
    assert router_suffix("router") == "router"


def test_ignore_rule_lists_the_routers_itself():
    plan = new_plan()
    routers = ["model.layers.0.mlp.gate", "model.layers.1.mlp.gate"]
    evidence = {"routers": routers, "layer_patterns": ["mtp", "mlp.gate"]}
    ignore_layers.generate(finding(Mode.IGNORE_LAYERS, **evidence), plan, None)
    function, rule = plan.edits
    assert isinstance(function, TopLevelFunction) and isinstance(rule, IgnoreRule)
    assert 'ModelTypeMatcher("toy-moe", mode="full")' in rule.call
    assert '"mtp",' in rule.call and f"{function.name}," in rule.call
    assert '"mlp.gate"' not in rule.call  # a substring pattern would also hit mlp.gate_proj
    assert plan.test_data["ignore_layers"] == {"patterns": ["mtp"], "router_suffixes": [".mlp.gate"]}

    from torch import nn

    namespace: dict = {}
    exec(function.code, namespace)  # noqa: S102
    layer = nn.Module()
    layer.mlp = nn.Module()
    layer.mlp.gate = nn.Linear(2, 2)
    layer.mlp.gate_proj = nn.Linear(2, 2)
    model = nn.Module()
    model.layers = nn.ModuleList([layer])
    assert namespace[function.name](model) == ["layers.0.mlp.gate"]


def test_mllm_misdetection_adds_the_model_type_to_the_exemptions():
    plan = new_plan()
    mllm_misdetection.generate(finding(Mode.MLLM_MISDETECTION, reason="config key vision_config"), plan, None)
    assert plan.edits == [SequenceItem("auto_round/utils/model.py", "_LLM_ONLY_MODEL_TYPES", "toy-moe")]
    assert plan.test_data["mllm_misdetection"] == {"llm_only": True}


def test_literal_writer_round_trips_and_is_ruff_stable(tmp_path):
    data = {"a": [1, 2.5, None, True], "b": {}, "c": [], "d": {"x": 'quote " and ünïcode'}}
    source = f"DATA = {py_literal(data)}\n"
    namespace: dict = {}
    exec(source, namespace)  # noqa: S102
    assert namespace["DATA"] == data
    (tmp_path / "data.py").write_text(source)
    command = [sys.executable, "-m", "ruff", "format", "--isolated", "--check", str(tmp_path / "data.py")]
    done = subprocess.run(command, capture_output=True)
    assert done.returncode == 0, done.stdout


def test_import_block_matches_ruff_isort(tmp_path):
    lines = [
        "import torch.nn.functional as F",
        "from torch import nn",
        "import sys",
        "from __future__ import annotations",
        "from auto_round.special_model_handler import register_ignore_layers, ModelTypeMatcher",
        "import torch",
        "from auto_round.special_model_handler import SPECIAL_MULTIMODAL_BLOCK",
        "import auto_round.utils.model as ar_utils_model",
        "from torch import nn",
    ]
    block = format_imports(lines)
    path = tmp_path / "mod.py"
    path.write_text(f'"""Doc."""\n\n{block}\n\nUSE = (F, nn, sys, torch, register_ignore_layers)\n')
    path.write_text(path.read_text() + "USE2 = (ModelTypeMatcher, SPECIAL_MULTIMODAL_BLOCK, ar_utils_model)\n")
    command = [
        sys.executable,
        "-m",
        "ruff",
        "check",
        "--isolated",
        "--line-length",
        "120",
        "--select",
        "I,F",
        str(path),
    ]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout
    assert block.count("from torch import nn") == 1
