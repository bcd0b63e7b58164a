"""Fused MoE experts: a ``ReplacementModuleBase`` that splits 3-D expert weights into per-expert ``nn.Linear``.

AutoRound 0.16 quantizes only ``nn.Linear``-like layers; experts stored as fused 3-D parameters whose
forward is not decorated with transformers' ``use_experts_implementation`` stay fused and are silently
left unquantized. The generated replacement swaps the experts container (routing stays in the MoE
block): per-expert layers are built on the meta device in ``__init__`` and filled from the original
slices in ``_materialize_weights``, as in ``auto_round/modeling/fused_moe/step3_5_moe.py``. The layout
(concatenated / interleaved gate-up, gate first, transposed storage, bias, activation, a single projection
per expert, identity experts) and the call convention (top-k indices and weights, dense per-expert weights,
rows in equal per-expert blocks, per-expert row counts; see ``scaffold.modes.fused_moe.probe``) come from the
probe's evidence; without a probed layout or a known call convention the class is a skeleton with
``TODO(scaffold)`` that raises until a human finishes it.

Measured on auto-round 0.16.1 (tiny Mixtral, 2 blocks, 4 undecorated fused experts, W4A16 iters=2): stock
packs 8 modules (attention only, block share 0.20); with the replacement 32 (share 0.996, the routers stay
unquantized).
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from typing import Any

from scaffold.codegen import identifier, py_str, tiny_module_paths
from scaffold.codegen.templates import TODO, add_to_module, render_code
from scaffold.inspection.context import InspectContext
from scaffold.inspection.findings import Finding, Mode
from scaffold.modes.fused_moe.probe import CONVENTIONS
from scaffold.plan.model import REPLACE_MODULES, CodeBlock, DictEntry, GeneratedFile, Plan, PlanItem

REGISTRY = "BUILTIN_MODULES"
IMPORTS = [
    "import torch",
    "from torch import nn",
    "from transformers.activations import ACT2FN",
    "from auto_round.modeling.fused_moe.replace_modules import ReplacementModuleBase",
]
MATERIALIZE_IMPORTS = [
    "from auto_round.modeling.fused_moe.utils import _update_parameter",
    "from auto_round.utils import clear_memory",
]
GATE_UP_SPLITS = ("concatenated", "interleaved", "separate", "none", "single")
_DEFAULT_ARGS = {"hidden_arg": "hidden_states", "index_arg": "top_k_index", "weight_arg": "top_k_weights"}
_ROUTING_ARGS = {  # the call arguments each convention routes by
    "topk": ("hidden_arg", "index_arg", "weight_arg"),
    "dense": ("hidden_arg", "weight_arg"),
    "batched": ("hidden_arg",),
    "grouped": ("hidden_arg", "sizes_arg"),
}


@dataclass
class ExpertsLayout:
    """How one fused experts class stores and calls its experts, read from a finding's evidence."""

    original_class: str
    params: dict[str, list[int]]
    weights: dict[str, str]  # role (gate_up | gate | up | down) -> 3-D parameter name
    biases: dict[str, str]  # role -> 2-D bias parameter name
    split: str
    gate_first: bool
    transposed: bool
    activation: str
    hidden_arg: str
    index_arg: str
    weight_arg: str
    extra_args: list[str]
    num_experts: int | None
    problems: list[str] = field(default_factory=list)  # why only a skeleton can be generated
    convention: str = "topk"
    sizes_arg: str | None = None
    identity_experts: bool = False
    forward_params: list[str] = field(default_factory=list)  # the replacement forward's parameters, in order

    @property
    def gated(self) -> bool:
        return "gate" in self.weights or "gate_up" in self.weights

    @property
    def single(self) -> bool:
        return self.split == "single"

    @property
    def skeleton(self) -> bool:
        return bool(self.problems)


def _known_activation(name: str | None) -> bool:
    if not name:
        return False
    from transformers.activations import ACT2FN

    return name in ACT2FN


def _forward_params(signature: list[str], routed: list[str], sizes_arg: str | None) -> list[str]:
    """Parameter declarations of the replacement forward: the original's, in order; routing arguments required."""
    if not signature:
        signature = list(routed)
    last_required = max((i for i, name in enumerate(signature) if name in routed), default=-1)
    params = []
    for i, name in enumerate(signature):
        if name.startswith("*"):
            params.append(f"{name}: object")
        elif name in routed:
            params.append(f"{name}: object" if name == sizes_arg else f"{name}: torch.Tensor")
        else:
            params.append(f"{name}: object" if i < last_required else f"{name}: object = None")
    return params


def _not_probed(layout: dict[str, Any]) -> str:
    """Why the layout was not measured, with the closest candidate when there was one."""
    text = f"the expert layout was not measured on a tiny instance: {layout.get('reason') or 'no reason recorded'}"
    closest = layout.get("closest")
    if closest:
        described = ", ".join(f"{k}={v}" for k, v in closest.items() if k != "max_abs_err")
        text += f" (closest candidate {described}: max abs error {closest.get('max_abs_err', float('nan')):.3g})"
    return text


def _layout_problems(layout: dict[str, Any], split: str, weights: dict[str, str]) -> list[str]:
    """What in a measured layout the template cannot express."""
    problems = []
    if split not in GATE_UP_SPLITS:
        problems.append(f"unknown gate/up split {split!r}")
    if split == "single":
        if "proj" not in weights:
            problems.append(f"no projection role in {sorted(weights)}")
    elif "down" not in weights or not ({"gate_up", "up"} & set(weights)):
        problems.append(f"no up/down projection roles in {sorted(weights)}")
    if split != "single" and not _known_activation(layout.get("activation")):
        problems.append(f"activation {layout.get('activation')!r} is not in transformers' ACT2FN")
    return problems


def read_layout(finding: Finding) -> ExpertsLayout:
    """The experts layout of ``finding``; ``problems`` lists what keeps it from being generated in full."""
    evidence = finding.evidence
    layout = evidence.get("layout") or {}
    call = evidence.get("call") or {}
    params = {name: list(shape) for name, shape in (evidence.get("params") or {}).items()}
    weights: dict[str, str] = {}
    biases: dict[str, str] = {}
    for name, role in (layout.get("roles") or {}).items():
        is_bias = len(params.get(name, [])) == 2 if name in params else name.endswith("bias")
        (biases if is_bias else weights)[role] = name
    problems: list[str] = []
    if not layout.get("probed"):
        problems.append(_not_probed(layout))
    convention = call.get("convention")
    if convention not in CONVENTIONS:
        problems.append(f"unknown call convention {convention!r} (arguments {call.get('signature')})")
    split = layout.get("gate_up") or "separate"
    if layout.get("probed"):  # an unmeasured layout has no roles nor activation: the reason above says why
        problems += _layout_problems(layout, split, weights)
    signature = [name for name in call.get("signature") or [] if name != "self"]
    hidden_arg, index_arg, weight_arg = (call.get(key) or default for key, default in _DEFAULT_ARGS.items())
    sizes_arg = call.get("sizes_arg")
    named = {"hidden_arg": hidden_arg, "index_arg": index_arg, "weight_arg": weight_arg, "sizes_arg": sizes_arg}
    routed = [named[key] for key in _ROUTING_ARGS.get(str(convention), _ROUTING_ARGS["topk"]) if named[key]]
    return ExpertsLayout(
        original_class=evidence.get("class") or (finding.classes[0] if finding.classes else "Experts"),
        params=params,
        weights=weights,
        biases=biases,
        split=split,
        gate_first=bool(layout.get("gate_first", True)),
        transposed=bool(layout.get("transposed", False)),
        activation=layout.get("activation") or "silu",
        hidden_arg=hidden_arg,
        index_arg=index_arg,
        weight_arg=weight_arg,
        extra_args=[name for name in signature if name not in routed],
        num_experts=evidence.get("num_experts"),
        problems=problems,
        convention=str(convention) if convention in CONVENTIONS else "topk",
        sizes_arg=sizes_arg,
        identity_experts=bool(layout.get("identity_experts")),
        forward_params=_forward_params(signature, routed, sizes_arg),
    )


def module_path(model_type: str) -> str:
    """Import path of the generated replacement module in an AutoRound checkout."""
    return f"auto_round.modeling.fused_moe.{identifier(model_type)}"


def registry_key(finding: Finding, plan: Plan) -> str:
    """The ``BUILTIN_MODULES`` key: the ``config.model_type`` of the model as built, which AutoRound reads (a text
    model class of a multimodal checkpoint carries its text config's type), else the plan's."""
    return str(finding.evidence.get("model_type") or plan.model_type)


def render_replacement(layout: ExpertsLayout) -> str:
    """Source of the expert MLP and replacement classes for ``layout``."""
    return render_code(
        "fused_moe/fused_moe.py.jinja",
        original_class=layout.original_class,
        replacement_class=f"Linear{layout.original_class}",
        expert_class=f"{layout.original_class}ExpertMLP",
        skeleton=layout.skeleton,
        problems=layout.problems,
        problem_lines=[textwrap.wrap(problem, 80, break_long_words=False) for problem in layout.problems],
        todo=TODO,
        gated=layout.gated,
        single=layout.single,
        convention=layout.convention,
        sizes_arg=layout.sizes_arg,
        identity_experts=layout.identity_experts,
        forward_params=layout.forward_params,
        weights=layout.weights,
        biases=layout.biases,
        split=layout.split,
        gate_first=layout.gate_first,
        transposed=layout.transposed,
        activation=layout.activation,
        hidden_arg=layout.hidden_arg,
        index_arg=layout.index_arg,
        weight_arg=layout.weight_arg,
        extra_args=layout.extra_args,
        params=layout.params,
    )


def generate(finding: Finding, plan: Plan, ctx: InspectContext | None = None) -> None:
    layout = read_layout(finding)
    code = render_replacement(layout)
    imports = IMPORTS if layout.skeleton else IMPORTS + MATERIALIZE_IMPORTS
    key = registry_key(finding, plan)
    module = module_path(key)
    path = module.replace(".", "/") + ".py"
    existing = next((f for f in plan.files if f.path == path), None)
    docstring = f"Per-expert ``nn.Linear`` replacements for the fused experts of ``{key}``."
    content = add_to_module(existing.content if existing else None, docstring, imports, code)
    if existing:
        existing.content = content
    else:
        plan.files.append(GeneratedFile(path=path, content=content))
    if not any(isinstance(e, DictEntry) and e.registry == REGISTRY and e.key == key for e in plan.edits):
        plan.edits.append(
            DictEntry(
                file=REPLACE_MODULES,
                registry=REGISTRY,
                key=key,
                value=f"LazyImport({py_str(module)})",
                runtime_value="LazyImport(__name__)",
            )
        )
    plan.plugin_parts.append(CodeBlock(code=code, imports=list(imports)))
    replacement = f"Linear{layout.original_class}"
    facts = _test_facts(finding, layout, replacement, module, tiny_module_paths(ctx, layout.original_class))
    plan.test_data.setdefault(Mode.FUSED_MOE.value, []).append(facts)
    todos = [f"{TODO} in {path}: {problem}" for problem in layout.problems]
    plan.items.append(
        PlanItem(
            mode=finding.mode.value,
            summary=finding.summary,
            generated=[
                f"{'skeleton ' if layout.skeleton else ''}`{replacement}` for `{layout.original_class}` in {path}",
                f'`{REGISTRY}["{key}"] = LazyImport("{module}")` in {REPLACE_MODULES}',
            ],
            todos=todos,
        )
    )


def _test_facts(
    finding: Finding, layout: ExpertsLayout, replacement: str, module: str, paths: list[str] | None = None
) -> dict[str, Any]:
    """What the generated equivalence test needs to rebuild the call and compare outputs."""
    return {
        "original_class": layout.original_class,
        "replacement_class": replacement,
        "module": module,
        "module_paths": paths or list(finding.modules),
        "convention": (finding.evidence.get("call") or {}).get("convention", "unknown"),
        "hidden_arg": layout.hidden_arg,
        "index_arg": layout.index_arg if layout.convention == "topk" else None,
        "weight_arg": layout.weight_arg if layout.convention in ("topk", "dense") else None,
        "num_experts": layout.num_experts,
        "skeleton": layout.skeleton,
    }
