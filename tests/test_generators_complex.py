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

from scaffold.inspection.findings import Finding, Mode, Severity
from scaffold.plan.model import HandlerBranch, Plan, TopLevelFunction

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

    def __init__(
        self,
        num_experts=4,
        hidden=64,
        inter=32,
        split="concatenated",
        gate_first=True,
        transposed=False,
        bias=False,
        activation="silu",
    ):
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
    from scaffold.modes.fused_moe import generate as fused_moe

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

    (facts,) = plan.test_data["fused_moe"]
    assert facts["replacement_class"] == "LinearToyExperts" and facts["num_experts"] == 4
    assert facts["convention"] == "topk" and not facts["skeleton"]
    (entry,) = plan.edits
    assert entry.registry == "BUILTIN_MODULES" and entry.key == "toy_moe"
    assert entry.value == 'LazyImport("auto_round.modeling.fused_moe.toy_moe")'
    assert entry.runtime_value == "LazyImport(__name__)"
    assert plan.plugin_parts[0].code in plan.files[0].content


def test_fused_moe_output_is_ruff_clean_and_stable(tmp_path):
    from scaffold.modes.fused_moe import generate as fused_moe

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
    from scaffold.modes.fused_moe import generate as fused_moe

    plan = plan_for()
    first = experts_finding(ToyExperts(), ["model.layers.0.mlp.experts"])
    second = experts_finding(ToyExperts(split="separate"), ["model.layers.1.mlp.experts"])
    second.evidence["class"] = "AnotherRemoteCodeFusedMixtureOfExpertsContainerWithAVeryLongName"
    fused_moe.generate(first, plan)
    fused_moe.generate(second, plan)
    assert len(plan.files) == 1 and len(plan.edits) == 1 and len(plan.plugin_parts) == 2
    ruff_clean(plan.files[0].content, tmp_path)
    module = import_source(plan.files[0].content, tmp_path, "gen_moe_two")
    assert {"LinearToyExperts", "LinearAnotherRemoteCodeFusedMixtureOfExpertsContainerWithAVeryLongName"} <= set(
        vars(module)
    )


@pytest.mark.parametrize("problem", ["unprobed", "unknown_convention"])
def test_fused_moe_skeleton_fails_until_finished(problem, tmp_path, replacement_registry):
    from scaffold.modes.fused_moe import generate as fused_moe

    experts = ToyExperts()
    finding = experts_finding(
        experts,
        ["model.layers.0.mlp.experts"],
        probed=problem != "unprobed",
        convention="topk" if problem == "unprobed" else "unknown",
    )
    plan = plan_for()
    fused_moe.generate(finding, plan)
    content = plan.files[0].content
    assert "TODO(scaffold)" in content and plan.items[0].todos
    assert plan.test_data["fused_moe"][0]["skeleton"]
    ruff_clean(content, tmp_path)
    module = import_source(content, tmp_path, f"gen_moe_skeleton_{problem}")
    with pytest.raises(NotImplementedError, match="TODO"):
        module.LinearToyExperts.from_original(experts, None)


def tiny_mixtral_with_toy_experts(seed: int = 0) -> nn.Module:
    """Tiny Mixtral whose experts containers are undecorated :class:`ToyExperts` holding the same weights."""
    from transformers import MixtralConfig, MixtralForCausalLM

    torch.manual_seed(seed)
    config = MixtralConfig(
        vocab_size=512,
        hidden_size=64,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        num_local_experts=4,
        num_experts_per_tok=2,
        max_position_embeddings=128,
    )
    model = MixtralForCausalLM(config).eval()
    for layer in model.model.layers:
        toy = ToyExperts(num_experts=4, hidden=64, inter=64)
        with torch.no_grad():
            toy.gate_up_proj.copy_(layer.mlp.experts.gate_up_proj)
            toy.down_proj.copy_(layer.mlp.experts.down_proj)
        layer.mlp.experts = toy
    return model


@pytest.mark.slow
def test_fused_moe_replacement_lets_autoround_pack_every_expert(tmp_path, replacement_registry):
    """Measured: without the replacement 8 modules pack (attention only, block share 0.20); with it 32 (0.996)."""
    from auto_round.modeling.fused_moe.replace_modules import BUILTIN_MODULES
    from auto_round.utils import LazyImport

    from scaffold.modes.fused_moe import generate as fused_moe

    model = tiny_mixtral_with_toy_experts()
    paths = [f"model.layers.{i}.mlp.experts" for i in range(2)]
    plan = plan_for("mixtral", "MixtralForCausalLM")
    fused_moe.generate(experts_finding(model.model.layers[0].mlp.experts, paths), plan)
    import_source(plan.files[0].content, tmp_path, "gen_moe_e2e")
    BUILTIN_MODULES["mixtral"] = LazyImport("gen_moe_e2e")  # what the runtime plugin's DictEntry does
    packed, share = quantize_and_count(model, tmp_path / "export", tiny_mixtral_with_toy_experts())
    assert packed.packed_modules == 2 * (4 + 3 * 4)  # q/k/v/o + gate/up/down of 4 experts per block
    assert share > 0.99  # all but the two 4x64 routers, which must stay unquantized


# ---------------------------------------------------------------------------- block replay (ALiBi / Bloom)


def tiny_bloom(seed: int = 0):
    from transformers import BloomConfig, BloomForCausalLM

    torch.manual_seed(seed)
    config = BloomConfig(vocab_size=512, hidden_size=64, n_layer=2, n_head=4)
    return BloomForCausalLM(config).eval()


def replay_finding(cause: str = "alibi", inputs: dict | None = None) -> Finding:
    return Finding(
        mode=Mode.BLOCK_REPLAY,
        severity=Severity.FAILS,
        summary="AutoRound's block replay crashes on transformer.h",
        fix="rewrite the replayed block inputs",
        modules=["transformer.h"],
        classes=["BloomBlock"],
        evidence={
            "stack": "transformer.h",
            "exception": "RuntimeError: The expanded size of the tensor (8) must match the existing size (4)",
            "inputs": inputs
            if inputs is not None
            else {"alibi": "Tensor[8, 1, 32]", "attention_mask": "Tensor[2, 1, 32, 32]"},
            "cause": cause,
        },
        probe="tiny",
    )


def patched_namespace(plan: Plan, tmp_path: Path, name: str) -> dict:
    return vars(import_source(functions_source(plan), tmp_path, name))


def test_block_replay_alibi_fix_is_equivalent(tmp_path):
    from scaffold.modes.block_replay import generate as block_replay

    plan = plan_for("bloom", "BloomForCausalLM")
    block_replay.generate(replay_finding(), plan)
    assert [type(e).__name__ for e in plan.edits].count("HandlerBranch") == 1
    source = functions_source(plan)
    ruff_clean(source, tmp_path)
    namespace = patched_namespace(plan, tmp_path, "gen_replay_alibi")

    reference, model = tiny_bloom(), tiny_bloom()
    run_branch(plan, namespace, model)
    input_ids = torch.randint(4, 512, (2, 12))
    padded = torch.ones(2, 12, dtype=torch.long)
    padded[1, :3] = 0  # left padding on the second sample
    with torch.no_grad():
        for mask in (None, torch.ones(2, 12, dtype=torch.long), padded):
            expected = reference(input_ids=input_ids, attention_mask=mask).logits
            got = model(input_ids=input_ids, attention_mask=mask).logits
            rows = slice(None) if mask is None else mask.bool()
            assert (got[rows] - expected[rows]).abs().max().item() <= TOL

    # What AutoRound's replay does: call one block with the cached kwargs, which no longer hold alibi.
    captured = {}
    model.transformer.h[0].register_forward_pre_hook(
        lambda m, a, k: captured.update(k=dict(k), a=a), with_kwargs=True, prepend=False
    )
    with torch.no_grad():
        model(input_ids=input_ids, use_cache=False)
        assert "alibi" not in captured["k"]
        block_in = reference.transformer.word_embeddings_layernorm(reference.transformer.word_embeddings(input_ids))
        replayed = model.transformer.h[0](block_in, **captured["k"])[0]
        mask = captured["k"].get("attention_mask")
        alibi = reference.transformer.build_alibi_tensor(torch.ones(2, 12), 4, torch.float32)
        original = reference.transformer.h[0](block_in, alibi=alibi, attention_mask=mask)[0]
    assert (replayed - original).abs().max().item() <= TOL


@pytest.mark.parametrize(
    "cause, inputs, rewrite",
    [
        ("zero_dim_tensor", {"scale": "Tensor[]", "attention_mask": "Tensor[2, 1, 8, 8]"}, "constant"),
        ("python_list", {"layer_types": {"type": "list", "shape": None}}, "constant"),
        ("int_mask", {"attention_mask": "Tensor[2, 1, 8, 8]"}, "constant"),
        ("python_scalar", {"scale": "float"}, "constant"),
        ("unknown", {"attention_mask": "Tensor[2, 1, 8, 8]"}, "skeleton"),
    ],
)
def test_block_replay_other_causes(cause, inputs, rewrite, tmp_path):
    from scaffold.modes.block_replay import generate as block_replay

    plan = plan_for("toy_replay", "ToyForCausalLM")
    block_replay.generate(replay_finding(cause, inputs), plan)
    (facts,) = plan.test_data["block_replay"]
    assert facts["rewrite"] == rewrite
    ruff_clean(functions_source(plan), tmp_path)
    namespace = patched_namespace(plan, tmp_path, f"gen_replay_{cause}")

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(8, 8)

        def forward(self, hidden_states, scale=None, layer_types=None, attention_mask=None):
            factor = 1.0 if scale is None else float(scale)
            return self.linear(hidden_states) * factor * (len(layer_types) if layer_types else 1)

    class Toy(nn.Module):
        def __init__(self):
            super().__init__()
            self.config = type("Config", (), {"model_type": "toy_replay"})()
            self.transformer = nn.Module()
            self.transformer.h = nn.ModuleList([Block(), Block()])

        def forward(self, x):
            for block in self.transformer.h:
                x = block(x, scale=torch.tensor(0.5), layer_types=["a", "b"])
            return x

    torch.manual_seed(0)
    reference = Toy()
    model = Toy()
    model.load_state_dict(reference.state_dict())
    if rewrite == "skeleton":
        assert "TODO(scaffold)" in functions_source(plan) and plan.items[0].todos
        with pytest.raises(NotImplementedError, match="TODO"):
            run_branch(plan, namespace, model)
        return
    run_branch(plan, namespace, model)
    x = torch.randn(2, 8)
    assert (model(x) - reference(x)).abs().max().item() <= TOL
    captured = {}
    model.transformer.h[1].register_forward_pre_hook(lambda m, a, k: captured.update(k), with_kwargs=True)
    model(x)
    assert not set(block_replay.choose_fix(replay_finding(cause, inputs)).constant_keys) & set(captured)
    # AutoRound replays a later block with only what it cached (the constants are not in it).
    fresh = Toy()
    fresh.load_state_dict(reference.state_dict())
    run_branch(plan, namespace, fresh)
    block_inputs = {"scale": torch.tensor(0.5), "layer_types": ["a", "b"]}
    cached = {
        k: v
        for k, v in block_inputs.items()
        if k not in block_replay.choose_fix(replay_finding(cause, inputs)).constant_keys
    }
    with torch.no_grad():
        fresh.transformer.h[0](x, **block_inputs)  # the calibration forward, stopped after the first block
        replayed = fresh.transformer.h[1](x, **cached)
        expected = reference.transformer.h[1](x, **block_inputs)
    assert (replayed - expected).abs().max().item() <= TOL


def quantize_and_count(model: nn.Module, out_dir: Path, fresh_model: nn.Module):
    """AutoRound W4A16 (iters=2, nsamples=2, group 32) on ``model``; the packed count and block share of the export."""
    from scaffold.autoround_api import get_block_names
    from scaffold.measure.quantize import block_share, count_packed, run_autoround
    from scaffold.tiny.tokenizer import calibration_texts, make_tokenizer

    blocks = get_block_names(fresh_model)
    tokenizer = make_tokenizer(512, special_ids={"unk_token": 0, "pad_token": 1, "bos_token": 2, "eos_token": 3})
    run_autoround(model, tokenizer, calibration_texts(4), out_dir, group_size=32)
    packed = count_packed(out_dir)
    return packed, block_share(fresh_model, packed, blocks)


@pytest.mark.slow
def test_block_replay_alibi_fix_lets_autoround_quantize_bloom(tmp_path):
    from scaffold.modes.block_replay import generate as block_replay

    plan = plan_for("bloom", "BloomForCausalLM")
    block_replay.generate(replay_finding(), plan)
    namespace = patched_namespace(plan, tmp_path, "gen_replay_alibi_e2e")
    model = tiny_bloom()
    run_branch(plan, namespace, model)
    packed, share = quantize_and_count(model, tmp_path / "export", tiny_bloom())
    assert packed.packed_modules == 2 * 4  # query_key_value, dense, dense_h_to_4h, dense_4h_to_h per block
    assert share == pytest.approx(1.0)


# ---------------------------------------------------------------------------- layer types


class CustomLinear(nn.Module):
    """A remote-code style projection: its own class, exactly ``F.linear``."""

    def __init__(self, weight: nn.Parameter, bias: nn.Parameter | None):
        super().__init__()
        self.weight, self.bias = weight, bias

    def forward(self, x):
        return nn.functional.linear(x, self.weight, self.bias)


class ScaledLinear(CustomLinear):
    """Not exactly ``F.linear``: an extra output scale."""

    def forward(self, x):
        return 2.0 * super().forward(x)


def tiny_llama(seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=512,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
    )
    return LlamaForCausalLM(config).eval()


def with_custom_linears(model: nn.Module, cls: type = CustomLinear) -> nn.Module:
    for name, module in list(model.model.layers.named_modules()):
        if isinstance(module, nn.Linear):
            parent, _, leaf = name.rpartition(".")
            setattr(model.model.layers.get_submodule(parent), leaf, cls(module.weight, module.bias))
    return model


def layer_finding(cls: type, exact: bool) -> Finding:
    return Finding(
        mode=Mode.LAYER_TYPES,
        severity=Severity.SILENT,
        summary=f"{cls.__name__} layers are not nn.Linear; AutoRound leaves them unquantized",
        fix="convert them to nn.Linear",
        modules=["model.layers.0.self_attn.q_proj"],
        classes=[cls.__name__],
        evidence={
            "class": cls.__name__,
            "weight_attr": "weight",
            "bias_attr": "bias",
            "weight_shape": [64, 64],
            "exact_linear": exact,
            "max_abs_err": 0.0 if exact else 1.5,
            "count": 14,
        },
        probe="tiny",
    )


def test_layer_types_conversion_is_equivalent(tmp_path):
    from scaffold.modes.layer_types import generate as layer_types

    plan = plan_for("llama", "LlamaForCausalLM")
    layer_types.generate(layer_finding(CustomLinear, exact=True), plan)
    ruff_clean(functions_source(plan), tmp_path)
    assert "INNER_SUPPORTED_LAYER_TYPES" not in [getattr(e, "registry", None) for e in plan.edits]
    namespace = patched_namespace(plan, tmp_path, "gen_layer_types")
    reference = tiny_llama()
    model = with_custom_linears(tiny_llama())
    weights = {n: m.weight for n, m in model.named_modules() if isinstance(m, CustomLinear)}
    assert len(weights) == 14
    run_branch(plan, namespace, model)
    converted = {n: m for n, m in model.named_modules() if n in weights}
    assert all(type(m) is nn.Linear and m.weight is weights[n] for n, m in converted.items())
    input_ids = torch.randint(4, 512, (2, 16))
    with torch.no_grad():
        diff = model(input_ids=input_ids).logits - reference(input_ids=input_ids).logits
    assert diff.abs().max().item() <= TOL
    (facts,) = plan.test_data["layer_types"]
    assert facts["class"] == "CustomLinear" and not facts["skeleton"]


def test_layer_types_inexact_class_is_a_failing_skeleton(tmp_path):
    from scaffold.modes.layer_types import generate as layer_types

    plan = plan_for("llama", "LlamaForCausalLM")
    layer_types.generate(layer_finding(CustomLinear, exact=True), plan)
    layer_types.generate(layer_finding(ScaledLinear, exact=False), plan)
    functions = [e for e in plan.edits if isinstance(e, TopLevelFunction)]
    assert len(functions) == 1 and sum(isinstance(e, HandlerBranch) for e in plan.edits) == 1
    assert "TODO(scaffold)" in functions[0].code and plan.items[-1].todos
    assert all(c["skeleton"] for c in plan.test_data["layer_types"])
    ruff_clean(functions_source(plan), tmp_path)
    namespace = patched_namespace(plan, tmp_path, "gen_layer_types_skeleton")
    with pytest.raises(NotImplementedError, match="TODO"):
        run_branch(plan, namespace, with_custom_linears(tiny_llama(), ScaledLinear))


@pytest.mark.slow
def test_layer_types_conversion_lets_autoround_pack_custom_linears(tmp_path):
    from scaffold.modes.layer_types import generate as layer_types

    plan = plan_for("llama", "LlamaForCausalLM")
    layer_types.generate(layer_finding(CustomLinear, exact=True), plan)
    namespace = patched_namespace(plan, tmp_path, "gen_layer_types_e2e")
    model = with_custom_linears(tiny_llama())
    run_branch(plan, namespace, model)
    packed, share = quantize_and_count(model, tmp_path / "export", tiny_llama())
    assert packed.packed_modules == 2 * 7
    assert share == pytest.approx(1.0)


# ---------------------------------------------------------------------------- forward coverage


def llama_with_draft_tower(seed: int = 0) -> nn.Module:
    """Tiny Llama plus a ``model.draft_layers`` stack that ``model.forward`` never runs."""
    from transformers.models.llama.modeling_llama import LlamaDecoderLayer

    model = tiny_llama(seed)
    torch.manual_seed(seed + 1)
    model.model.draft_layers = nn.ModuleList([LlamaDecoderLayer(model.config, 2 + i) for i in range(2)]).eval()
    return model


def coverage_finding(same_signature: bool = True) -> Finding:
    return Finding(
        mode=Mode.FORWARD_COVERAGE,
        severity=Severity.SILENT,
        summary="model.forward never runs model.draft_layers; AutoRound caches no inputs for it",
        fix="a forward that also runs the draft tower",
        modules=["model.draft_layers"],
        classes=["LlamaDecoderLayer"],
        evidence={
            "reached": ["model.layers"],
            "unreached": [{"path": "model.draft_layers", "block_class": "LlamaDecoderLayer", "count": 2}],
            "same_signature_as": "model.layers" if same_signature else None,
            "hidden_size_match": same_signature,
        },
        probe="tiny",
    )


def test_forward_coverage_runs_the_unreached_stack(tmp_path):
    from scaffold.modes.forward_coverage import generate as forward_coverage

    plan = plan_for("llama", "LlamaForCausalLM")
    forward_coverage.generate(coverage_finding(), plan)
    ruff_clean(functions_source(plan), tmp_path)
    namespace = patched_namespace(plan, tmp_path, "gen_forward_coverage")
    model = llama_with_draft_tower()
    input_ids = torch.randint(4, 512, (2, 16))
    with torch.no_grad():
        expected = model(input_ids=input_ids).logits
    run_branch(plan, namespace, model)
    seen: dict = {}

    def keep(key, value) -> None:
        seen.setdefault(key, value)

    model.model.layers[-1].register_forward_hook(lambda m, a, out: keep("reached_out", out))
    model.model.layers[0].register_forward_pre_hook(lambda m, a, k: keep("kw", k), with_kwargs=True)
    for i, block in enumerate(model.model.draft_layers):
        block.register_forward_pre_hook(lambda m, a, k, i=i: keep(i, (a, k)), with_kwargs=True)
    with torch.no_grad():
        got = model(input_ids=input_ids).logits
    assert (got - expected).abs().max().item() <= TOL  # the model's own output is unchanged
    reached_out = seen["reached_out"][0] if isinstance(seen["reached_out"], tuple) else seen["reached_out"]
    draft_args, draft_kwargs = seen[0]
    assert torch.equal(draft_args[0], reached_out)  # the draft tower runs on the reached stack's output
    assert draft_kwargs.keys() == seen["kw"].keys() and 1 in seen  # with the same inputs, through every block
    assert draft_kwargs.get("use_cache") is not True and draft_kwargs.get("past_key_values") is None
    assert plan.test_data == {}  # the prediction test checks it: no TEST_DATA key nobody reads


def test_forward_coverage_without_matching_signature_is_a_failing_skeleton(tmp_path):
    from scaffold.modes.forward_coverage import generate as forward_coverage

    plan = plan_for("llama", "LlamaForCausalLM")
    forward_coverage.generate(coverage_finding(same_signature=False), plan)
    assert "TODO(scaffold)" in functions_source(plan) and plan.items[0].todos
    ruff_clean(functions_source(plan), tmp_path)
    namespace = patched_namespace(plan, tmp_path, "gen_forward_coverage_skeleton")
    model = llama_with_draft_tower()
    run_branch(plan, namespace, model)
    with pytest.raises(NotImplementedError, match="TODO"):
        model(input_ids=torch.randint(4, 512, (1, 8)))


def test_block_replay_later_block_with_same_inputs_needs_no_second_fix():
    from scaffold.modes.block_replay import generate as block_replay

    plan = plan_for("bloom", "BloomForCausalLM")
    block_replay.generate(replay_finding(), plan)
    edits = len(plan.edits)
    later = replay_finding("per_block_input")
    later.evidence["cause_inputs"] = []  # block 1 replayed with block 0's inputs fails the same way
    block_replay.generate(later, plan)
    assert len(plan.edits) == edits and "already rewritten" in plan.items[-1].generated[0]
    other = replay_finding("per_block_input")
    other.evidence["cause_inputs"] = ["position_bias"]
    block_replay.generate(other, plan)
    names = [e.name for e in plan.edits if isinstance(e, TopLevelFunction)]
    assert len(names) == len(set(names)) and "_patch_bloom_2_block_replay" in names
    assert plan.items[-1].todos


# ---------------------------------------------------------------------------- corpus architectures (real detectors)

ARCHS = Path(__file__).parent / "archs"
MINE = {Mode.FUSED_MOE, Mode.LAYER_TYPES, Mode.BLOCK_REPLAY, Mode.FORWARD_COVERAGE}


def detected_plan(target: str, modes: set[Mode]):
    """Run the detectors of ``modes`` on ``target`` and feed their findings to the generators."""
    from scaffold.inspection.stage import load_context
    from scaffold.modes import by_mode
    from scaffold.resolve.target import resolve_target

    ctx = load_context(resolve_target(target, trust_remote_code=not target.startswith("transformers:")))
    plan = Plan(model_type=ctx.target.model_type, model_class=ctx.model_class)
    found = set()
    for mode in sorted(modes, key=lambda m: m.value):
        for finding in by_mode(mode).detector.detect(ctx):
            if finding.severity is not Severity.OK:
                by_mode(mode).generator.generate(finding, plan, ctx)
                found.add(mode)
    return ctx, plan, found


def apply_plan(plan: Plan, model: nn.Module, tmp_path: Path, name: str) -> None:
    """What AutoRound does with the adaptation: module replacements first, then ``_handle_special_model``."""
    for index, file in enumerate(plan.files):
        import_source(file.content, tmp_path, f"{name}_file{index}")
    from auto_round.modeling.fused_moe.replace_modules import ReplacementModuleBase, materialize_model_

    for facts in plan.test_data.get("fused_moe", []):
        for path in facts["module_paths"]:
            original = model.get_submodule(path)
            replacement_cls = ReplacementModuleBase.get_replacement_class(type(original).__name__)
            model.set_submodule(path, replacement_cls.from_original(original, model.config))
    materialize_model_(model)
    if any(isinstance(e, TopLevelFunction) for e in plan.edits):
        run_branch(plan, patched_namespace(plan, tmp_path, f"{name}_functions"), model)


@pytest.mark.parametrize(
    "target, modes",
    [
        ("fused_experts", {Mode.FUSED_MOE}),
        ("custom_linear", {Mode.LAYER_TYPES}),
        ("combo", {Mode.FUSED_MOE, Mode.LAYER_TYPES}),
        ("transformers:bloom", {Mode.BLOCK_REPLAY}),
    ],
)
def test_generated_code_from_real_findings_keeps_the_model_equivalent(target, modes, tmp_path, replacement_registry):
    import copy

    spec = target if target.startswith("transformers:") else str(ARCHS / target)
    ctx, plan, found = detected_plan(spec, MINE)
    assert found == modes
    assert not any(item.todos for item in plan.items), [item.todos for item in plan.items]
    for file in plan.files:
        ruff_clean(file.content, tmp_path)
    if any(isinstance(e, TopLevelFunction) for e in plan.edits):
        ruff_clean(functions_source(plan), tmp_path)
    tiny = ctx.tiny()
    model = tiny.model
    reference = copy.deepcopy(model)
    name = "gen_" + target.replace(":", "_")
    apply_plan(plan, model, tmp_path, name)
    for facts in plan.test_data.get("fused_moe", []):  # every expert routed, per experts module
        for path in facts["module_paths"]:
            tokens = torch.randn(24, model.config.hidden_size)
            index, weights = every_expert_routing(24, facts["num_experts"])
            call = {facts["hidden_arg"]: tokens, facts["index_arg"]: index, facts["weight_arg"]: weights}
            with torch.no_grad():
                diff = model.get_submodule(path)(**call) - reference.get_submodule(path)(**call)
            assert diff.abs().max().item() <= TOL
    with torch.no_grad():
        expected = reference(**tiny.inputs, use_cache=False)
        got = model(**tiny.inputs, use_cache=False)
    expected, got = (out.logits if hasattr(out, "logits") else out[0] for out in (expected, got))
    assert (got - expected).abs().max().item() <= TOL


@pytest.mark.slow
def test_forward_coverage_lets_autoround_quantize_the_unreached_stack(tmp_path):
    """Stock: the draft stack gets no cached inputs and quantize() fails; with the generated forward it packs."""
    from scaffold.autoround_api import get_block_names
    from scaffold.modes.forward_coverage import generate as forward_coverage

    fresh = llama_with_draft_tower()
    assert ["model.draft_layers.0", "model.draft_layers.1"] in get_block_names(fresh)
    plan = plan_for("llama", "LlamaForCausalLM")
    forward_coverage.generate(coverage_finding(), plan)
    model = llama_with_draft_tower()
    run_branch(plan, patched_namespace(plan, tmp_path, "gen_forward_coverage_e2e"), model)
    packed, share = quantize_and_count(model, tmp_path / "export", fresh)
    assert packed.packed_modules == 4 * 7  # two decoder layers and two draft layers, 7 projections each
    assert share == pytest.approx(1.0)


def test_block_replay_sequence_first_fix(tmp_path):
    """Sequence-first blocks with a 0-d layer index (ChatGLM-6B style): AutoRound sees batch-first tensors, the
    model's own forward is unchanged, and a block replayed alone with batch-first inputs matches the model."""
    from scaffold.modes.block_replay import generate as block_replay

    finding = replay_finding("sequence_first", {"hidden_states": "Tensor[8, 1, 8]", "layer_id": "Tensor[]"})
    finding.evidence.update(
        batch_dims={"hidden_states": 1, "rotary": 1},
        mishandled={"layer_id": "zero_dim_tensor"},
        per_block_values={"layer_id": [0, 1]},
    )
    plan = plan_for("toy_seqfirst", "ToyForCausalLM")
    block_replay.generate(finding, plan)
    (facts,) = plan.test_data["block_replay"]
    assert facts["rewrite"] == "batch_first" and not facts["skeleton"]
    ruff_clean(functions_source(plan), tmp_path)
    namespace = patched_namespace(plan, tmp_path, "gen_replay_seqfirst")

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(8, 8)

        def forward(self, hidden_states, rotary, layer_id=None):  # [seq, batch, 8], [seq, batch or 1, 8]
            return (self.linear(hidden_states + rotary) * (1.0 + float(layer_id)), None)

    class Encoder(nn.Module):  # the stack's owner: its forward runs the blocks sequence-first
        def __init__(self):
            super().__init__()
            self.h = nn.ModuleList([Block(), Block()])

        def forward(self, hidden, rotary):
            for i, block in enumerate(self.h):
                hidden = block(hidden, rotary, layer_id=torch.tensor(i))[0]
            return hidden

    class Toy(nn.Module):
        def __init__(self):
            super().__init__()
            self.config = type("Config", (), {"model_type": "toy_seqfirst"})()
            self.transformer = Encoder()

        def forward(self, x):  # x: [batch, seq, 8]
            rotary = torch.arange(x.shape[1] * 8.0).view(-1, 1, 8) / 64
            return self.transformer(x.transpose(0, 1), rotary).transpose(0, 1)

    torch.manual_seed(0)
    reference = Toy()
    model = Toy()
    model.load_state_dict(reference.state_dict())
    run_branch(plan, namespace, model)
    x = torch.randn(2, 6, 8)
    seen = {}
    model.transformer.h[0].register_forward_pre_hook(lambda m, a, k: seen.update(a=a, k=dict(k)), with_kwargs=True)
    with torch.no_grad():
        assert (model(x) - reference(x)).abs().max().item() <= TOL
    # what AutoRound caches: batch-first hidden states and rotary table, the 0-d layer_id kept out
    assert seen["a"][0].shape == (2, 6, 8) and seen["k"]["rotary"].shape == (1, 6, 8) and "layer_id" not in seen["k"]
    rotary = torch.arange(6 * 8.0).view(-1, 1, 8) / 64
    with torch.no_grad():  # replayed alone, as block_forward does: batch-first in, batch-first out, no layer_id
        replayed = model.transformer.h[1](x, rotary=rotary.transpose(0, 1).expand(2, -1, -1))[0]
        expected = reference.transformer.h[1](x.transpose(0, 1), rotary, layer_id=torch.tensor(1))[0]
    assert (replayed - expected.transpose(0, 1)).abs().max().item() <= TOL
