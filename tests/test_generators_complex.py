"""The complex generators: fused MoE replacement, layer-type conversion, block replay fix, forward coverage.

Each test renders the generated code, imports it, applies it to a small float32 model and checks it
is numerically equivalent to the original; the ``slow`` ones run AutoRound W4A16 on a tiny model and
count the packed ``qweight`` tensors of the export.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from scaffold.findings import Finding, Mode, Severity
from scaffold.plan import HandlerBranch, Plan, TopLevelFunction

TOL = 1e-5


# ---------------------------------------------------------------------------- helpers


def plan_for(model_type: str = "toy_moe", model_class: str = "ToyForCausalLM") -> Plan:
    return Plan(model_type=model_type, model_class=model_class)


def import_source(source: str, tmp_path: Path, name: str):
    """Write ``source`` to ``tmp_path/<name>.py`` and import it as module ``name``."""
    path = tmp_path / f"{name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def ruff_clean(source: str, tmp_path: Path) -> None:
    path = tmp_path / "ruff_probe.py"
    path.write_text(source)
    root = Path(__file__).resolve().parents[1]
    for args in (["check", "--no-cache"], ["format", "--check", "--no-cache"]):
        result = subprocess.run(
            [sys.executable, "-m", "ruff", *args, "--config", str(root / "pyproject.toml"), str(path)],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stdout + result.stderr


def functions_source(plan: Plan) -> str:
    """Module source defining every TopLevelFunction of ``plan`` (what the plugin and the patch both include)."""
    return "\n\n\n".join(e.code.strip() for e in plan.edits if isinstance(e, TopLevelFunction)) + "\n"


def run_branch(plan: Plan, namespace: dict, model: nn.Module) -> None:
    """Execute the HandlerBranch bodies of ``plan`` the way ``_handle_special_model`` would."""
    for edit in plan.edits:
        if isinstance(edit, HandlerBranch):
            assert edit.model_type == model.config.model_type
            exec(edit.body, {**namespace, "model": model})  # noqa: S102 - generated code under test


@pytest.fixture
def replacement_registry():
    """Forget replacement classes registered by a test (AutoRound refuses duplicate registrations)."""
    from auto_round.modeling.fused_moe.replace_modules import BUILTIN_MODULES, ReplacementModuleBase

    before = dict(ReplacementModuleBase._replacement_registry)
    builtin_before = dict(BUILTIN_MODULES)
    yield
    ReplacementModuleBase._replacement_registry.clear()
    ReplacementModuleBase._replacement_registry.update(before)
    BUILTIN_MODULES.clear()
    BUILTIN_MODULES.update(builtin_before)


# ---------------------------------------------------------------------------- fused MoE


class ToyExperts(nn.Module):
    """Fused experts stored as 3-D parameters, NOT decorated with ``use_experts_implementation``."""

    def __init__(self, num_experts=4, hidden=64, inter=32, split="concatenated", gate_first=True, transposed=False,
                 bias=False, activation="silu"):  # fmt: skip
        super().__init__()
        from transformers.activations import ACT2FN

        self.num_experts, self.split, self.gate_first, self.transposed = num_experts, split, gate_first, transposed
        self.act_fn = ACT2FN[activation]

        def weight(out_features, in_features):
            shape = (num_experts, in_features, out_features) if transposed else (num_experts, out_features, in_features)
            return nn.Parameter(torch.randn(*shape) * 0.1)

        if split == "separate":
            self.gate_proj, self.up_proj = weight(inter, hidden), weight(inter, hidden)
        else:
            self.gate_up_proj = weight(2 * inter, hidden)
        self.down_proj = weight(hidden, inter)
        if bias:
            self.gate_up_proj_bias = nn.Parameter(torch.randn(num_experts, 2 * inter) * 0.1)
            self.down_proj_bias = nn.Parameter(torch.randn(num_experts, hidden) * 0.1)
        self.bias = bias

    def _linear(self, x, weight, index):
        w = weight[index]
        return x @ w if self.transposed else x @ w.t()

    def forward(self, hidden_states, top_k_index, top_k_weights):
        out = torch.zeros_like(hidden_states)
        for e in range(self.num_experts):
            token_idx, pos = torch.where(top_k_index == e)
            if token_idx.numel() == 0:
                continue
            x = hidden_states[token_idx]
            if self.split == "separate":
                gate, up = self._linear(x, self.gate_proj, e), self._linear(x, self.up_proj, e)
            else:
                gate_up = self._linear(x, self.gate_up_proj, e)
                if self.bias:
                    gate_up = gate_up + self.gate_up_proj_bias[e]
                if self.split == "interleaved":
                    gate, up = gate_up[..., 0::2], gate_up[..., 1::2]
                else:
                    gate, up = gate_up.chunk(2, dim=-1)
                if not self.gate_first:
                    gate, up = up, gate
            y = self._linear(self.act_fn(gate) * up, self.down_proj, e)
            if self.bias:
                y = y + self.down_proj_bias[e]
            out.index_add_(0, token_idx, y * top_k_weights[token_idx, pos, None])
        return out


def experts_finding(experts: ToyExperts, paths: list[str], probed: bool = True, convention: str = "topk") -> Finding:
    """The ``fused_moe`` finding the detector reports for ``experts`` (evidence per docs/findings-schema.md)."""
    params = {name: list(p.shape) for name, p in experts.named_parameters()}
    roles = {name: name.removesuffix("_proj").removesuffix("_proj_bias") for name in params}
    roles = {name: role.replace("_bias", "") for name, role in roles.items()}
    return Finding(
        mode=Mode.FUSED_MOE,
        severity=Severity.SILENT,
        summary=f"{type(experts).__name__} keeps its experts fused; AutoRound leaves them unquantized",
        fix="replace the experts container with per-expert nn.Linear",
        modules=paths,
        classes=[type(experts).__name__],
        evidence={
            "class": type(experts).__name__,
            "num_experts": experts.num_experts,
            "params": params,
            "experts_interface": False,
            "autoround_unfuses": False,
            "builtin_replacement": False,
            "call": {
                "convention": convention,
                "hidden_arg": "hidden_states",
                "index_arg": "top_k_index",
                "weight_arg": "top_k_weights",
                "signature": ["hidden_states", "top_k_index", "top_k_weights"],
            },
            "layout": {
                "probed": probed,
                "gate_up": experts.split,
                "gate_first": experts.gate_first,
                "transposed": experts.transposed,
                "activation": "silu",
                "bias": experts.bias,
                "roles": roles,
                "max_abs_err": 0.0,
            },
        },
        probe="tiny",
    )


def every_expert_routing(tokens: int, num_experts: int, top_k: int = 2):
    """Routing where every expert receives tokens, with random normalised weights."""
    index = torch.stack([torch.arange(tokens) % num_experts, (torch.arange(tokens) + 1) % num_experts], dim=1)
    weights = torch.softmax(torch.randn(tokens, top_k), dim=-1)
    return index[:, :top_k], weights


def generated_moe_module(plan: Plan, tmp_path: Path, name: str):
    (file,) = plan.files
    assert file.path == "auto_round/modeling/fused_moe/toy_moe.py"
    return import_source(file.content, tmp_path, name)


LAYOUTS = [
    dict(split="concatenated", gate_first=True, transposed=False, bias=False),
    dict(split="concatenated", gate_first=False, transposed=True, bias=False),
    dict(split="interleaved", gate_first=True, transposed=False, bias=True),
    dict(split="interleaved", gate_first=False, transposed=True, bias=True),
    dict(split="separate", gate_first=True, transposed=True, bias=False),
]


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda d: "-".join(f"{k}={v}" for k, v in d.items()))
def test_fused_moe_replacement_is_equivalent(layout, tmp_path, replacement_registry):
    from scaffold.generators import fused_moe

    torch.manual_seed(0)
    experts = ToyExperts(**layout).eval()
    plan = plan_for()
    fused_moe.generate(experts_finding(experts, ["model.layers.0.mlp.experts"]), plan)
    module = generated_moe_module(plan, tmp_path, f"gen_moe_{abs(hash(str(layout)))}")
    replacement = module.LinearToyExperts.from_original(experts, None)
    assert all(p.device.type == "meta" for p in replacement.parameters())  # built on meta, filled later
    replacement.materialize_weights()
    linears = [m for m in replacement.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == 3 * experts.num_experts
    assert all(p.device.type == "cpu" for p in replacement.parameters())

    hidden = torch.randn(24, 64)
    index, weights = every_expert_routing(24, experts.num_experts)
    with torch.no_grad():
        expected = experts(hidden, index, weights)
        got = replacement(hidden_states=hidden, top_k_index=index, top_k_weights=weights)
    assert (got - expected).abs().max().item() <= TOL

    (facts,) = plan.test_data["replacements"]
    assert facts["replacement_class"] == "LinearToyExperts" and facts["num_experts"] == 4
    assert facts["convention"] == "topk" and not facts["skeleton"]
    (entry,) = plan.edits
    assert entry.registry == "BUILTIN_MODULES" and entry.key == "toy_moe"
    assert entry.value == 'LazyImport("auto_round.modeling.fused_moe.toy_moe")'
    assert entry.runtime_value == "LazyImport(__name__)"
    assert plan.plugin_parts[0].code in plan.files[0].content


def test_fused_moe_output_is_ruff_clean_and_stable(tmp_path):
    from scaffold.generators import fused_moe

    torch.manual_seed(0)
    contents = []
    for _ in range(2):
        plan = plan_for()
        fused_moe.generate(experts_finding(ToyExperts(bias=True), ["model.layers.0.mlp.experts"]), plan)
        contents.append(plan.files[0].content)
    assert contents[0] == contents[1]
    assert "auto-round 0.16" in contents[0] and "transformers" in contents[0]
    ruff_clean(contents[0], tmp_path)


def test_fused_moe_two_classes_share_one_file(tmp_path, replacement_registry):
    from scaffold.generators import fused_moe

    plan = plan_for()
    first = experts_finding(ToyExperts(), ["model.layers.0.mlp.experts"])
    second = experts_finding(ToyExperts(split="separate"), ["model.layers.1.mlp.experts"])
    second.evidence["class"] = "OtherExperts"
    fused_moe.generate(first, plan)
    fused_moe.generate(second, plan)
    assert len(plan.files) == 1 and len(plan.edits) == 1 and len(plan.plugin_parts) == 2
    ruff_clean(plan.files[0].content, tmp_path)
    module = import_source(plan.files[0].content, tmp_path, "gen_moe_two")
    assert {"LinearToyExperts", "LinearOtherExperts"} <= set(vars(module))


@pytest.mark.parametrize("problem", ["unprobed", "unknown_convention"])
def test_fused_moe_skeleton_fails_until_finished(problem, tmp_path, replacement_registry):
    from scaffold.generators import fused_moe

    experts = ToyExperts()
    finding = experts_finding(experts, ["model.layers.0.mlp.experts"], probed=problem != "unprobed",
                              convention="topk" if problem == "unprobed" else "unknown")  # fmt: skip
    plan = plan_for()
    fused_moe.generate(finding, plan)
    content = plan.files[0].content
    assert "TODO(scaffold)" in content and plan.items[0].todos
    assert plan.test_data["replacements"][0]["skeleton"]
    ruff_clean(content, tmp_path)
    module = import_source(content, tmp_path, f"gen_moe_skeleton_{problem}")
    with pytest.raises(NotImplementedError, match="TODO"):
        module.LinearToyExperts.from_original(experts, None)
