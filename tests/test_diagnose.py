"""Load diagnosis: a broken remote-code model folder gives one line naming the stage and what to do.

Every test builds a tiny remote-code folder (written for transformers 4.4x) in tmp_path with one
defect, runs the real loader, and checks the line. They run under transformers 4.57 and 5.x.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import torch

from scaffold.errors import ScaffoldError
from scaffold.resolve.diagnose import diagnose_load_error
from scaffold.resolve.import_needs import package_uses
from scaffold.resolve.removed_apis import find_removed
from scaffold.versions import transformers_major

pytestmark = pytest.mark.tf4

CONFIGURATION = """
from transformers import PretrainedConfig


class TinyXConfig(PretrainedConfig):
    model_type = "tinyx"

    def __init__(self, vocab_size=512, hidden_size=64, num_hidden_layers=2, **kwargs):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        super().__init__(**kwargs)
"""

MODELING = """
import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

from .configuration_tinyx import TinyXConfig
{header}


class TinyXForCausalLM(PreTrainedModel):
    config_class = TinyXConfig

    def __init__(self, config):
        super().__init__(config)
{init}
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(nn.Linear(config.hidden_size, config.hidden_size) for _ in range(2))
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, past_key_values=None, **kwargs):
        hidden = self.embed_tokens(input_ids)
{forward}
        for layer in self.layers:
            hidden = layer(hidden)
        return CausalLMOutputWithPast(logits=self.lm_head(hidden))
"""


def remote_folder(
    tmp_path: Path, header: str = "", init: str = "", forward: str = "", extra: dict[str, str] | None = None
) -> Path:
    """A remote-code model folder; its name is unique because transformers caches modules by folder name."""
    folder = tmp_path / f"tinyx_{tmp_path.name}"
    folder.mkdir()
    auto_map = {
        "AutoConfig": "configuration_tinyx.TinyXConfig",
        "AutoModelForCausalLM": "modeling_tinyx.TinyXForCausalLM",
    }
    config = {"model_type": "tinyx", "architectures": ["TinyXForCausalLM"], "auto_map": auto_map}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "configuration_tinyx.py").write_text(CONFIGURATION)
    body = {k: textwrap.indent(textwrap.dedent(v).strip(), " " * 8) for k, v in (("init", init), ("forward", forward))}
    (folder / "modeling_tinyx.py").write_text(MODELING.format(header=textwrap.dedent(header).strip(), **body))
    for name, text in (extra or {}).items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(textwrap.dedent(text))
    return folder


def load_error(folder: Path, *, forward: bool = False) -> ScaffoldError:
    """Resolve, build on meta and (optionally) forward ``folder`` the way ``scaffold inspect`` does."""
    from scaffold.build.meta import build_meta, instantiate
    from scaffold.resolve.target import resolve_target

    with pytest.raises(ScaffoldError) as info:
        target = resolve_target(str(folder), trust_remote_code=True)
        build_meta(target.config, trust_remote_code=True, where=folder.name)
        if forward:
            torch.manual_seed(0)
            model = instantiate(target.config, trust_remote_code=True)
            try:
                model(input_ids=torch.tensor([[1, 2, 3]]))
            except Exception as exc:  # noqa: BLE001 - the forward stage of the tiny probe
                raise diagnose_load_error(exc, stage="forward", where=folder.name) from exc
    return info.value


FLASH_ONLY_ON_GPU = """
from flash_attn import flash_attn_func


class TinyXFlashAttention2(nn.Module):
    def forward(self, q, k, v):
        return flash_attn_func(q, k, v, causal=True)
"""


def test_flash_attn_used_only_on_gpu_path_suggests_guard(tmp_path):
    error = load_error(remote_folder(tmp_path, header=FLASH_ONLY_ON_GPU))
    assert error.stage == "import"
    assert "modeling_tinyx.py:8 imports 'flash_attn'" in error.message
    assert "not needed on CPU" in error.message and "is_flash_attn_2_available" in error.message
    assert "TinyXFlashAttention2.forward" in error.message
    assert "\n" not in error.one_line() and "Traceback" in error.traceback_text


def test_package_used_on_cpu_path_says_install(tmp_path):
    # a package with a known pip name (fla) and one without (named as imported); neither is installed here
    header = "from fla.ops import chunk_gated_delta_rule\nimport scaffold_absent_pkg"
    forward = "hidden = scaffold_absent_pkg.rearrange(chunk_gated_delta_rule(hidden), 'b s h -> b s h')"
    error = load_error(remote_folder(tmp_path, header=header, forward=forward))
    assert error.stage == "import"
    assert "needs 'fla' (used in TinyXForCausalLM.forward): pip install flash-linear-attention" in error.message
    assert "needs 'scaffold_absent_pkg' (used in TinyXForCausalLM.forward): pip install scaffold_absent_pkg" in (
        error.message
    )


def test_cuda_only_package_needed_on_cpu_says_no_cpu_route(tmp_path):
    header = "import xformers.ops as xops"
    forward = "hidden = xops.memory_efficient_attention(hidden, hidden, hidden)"
    error = load_error(remote_folder(tmp_path, header=header, forward=forward))
    assert "needs 'xformers' on CPU too" in error.message and "needs a CUDA GPU" in error.message


def test_bare_sibling_import_says_relative_import(tmp_path):
    error = load_error(remote_folder(tmp_path, header="from configuration_tinyx import TinyXConfig as _Config"))
    assert error.stage == "import"
    assert "imports its sibling 'configuration_tinyx'" in error.message
    assert "`from .configuration_tinyx import …`" in error.message


def test_removed_cache_api_names_the_version_range(tmp_path):
    forward = """
    from transformers import DynamicCache
    past_key_values = DynamicCache()
    past_length = past_key_values.get_usable_length(input_ids.shape[1], 0)
    """
    error = load_error(remote_folder(tmp_path, forward=forward), forward=True)
    assert error.stage == "forward"
    assert "DynamicCache.get_usable_length" in error.message and "transformers<=4.53 has it" in error.message
    assert "modeling_tinyx.py:" in error.message and "get_seq_length" in error.message


@pytest.mark.skipif(transformers_major() < 5, reason="transformers 4 still ships modeling_attn_mask_utils")
def test_removed_module_on_transformers_5(tmp_path):
    header = "from transformers.modeling_attn_mask_utils import _prepare_4d_causal_attention_mask"
    error = load_error(remote_folder(tmp_path, header=header))
    assert error.stage == "import"
    assert "transformers.modeling_attn_mask_utils" in error.message and "transformers<5 has it" in error.message


@pytest.mark.skipif(transformers_major() < 5, reason="transformers 4 configs default pad_token_id")
def test_config_default_dropped_in_transformers_5(tmp_path):
    error = load_error(remote_folder(tmp_path, init="self.padding_idx = config.pad_token_id"))
    assert error.stage == "build"
    assert "config.pad_token_id" in error.message and "transformers<5 has it" in error.message


def test_removed_api_table_lookup():
    module = find_removed(ModuleNotFoundError("No module named 'transformers.modeling_attn_mask_utils'"))
    assert module is not None and module.has_it == "<5"
    name = find_removed(ImportError("cannot import name 'is_torch_fx_available' from 'transformers.utils' (x.py)"))
    assert name is not None and name.api == "transformers.utils.is_torch_fx_available"
    unknown = find_removed(ImportError("cannot import name 'Nope' from 'transformers.models.llama' (x.py)"))
    assert unknown is not None and unknown.has_it == ""
    assert find_removed(AttributeError("'FooConfig' object has no attribute 'eos_token_id'")).has_it == "<5"
    assert find_removed(AttributeError("'FooConfig' object has no attribute 'my_own_field'")) is None
    assert find_removed(ValueError("No module named 'transformers.x'")) is None


def test_cuda_assert_at_build_time(tmp_path):
    error = load_error(remote_folder(tmp_path, init="assert torch.cuda.is_available()"))
    assert error.stage == "build"
    assert "requires CUDA while building the model" in error.message
    assert "`assert torch.cuda.is_available()`" in error.message


def test_flash_attention_demanded_at_build_time(tmp_path):
    init = """
    if config._attn_implementation != "flash_attention_2":
        raise ValueError("TinyX only supports flash_attention_2")
    """
    error = load_error(remote_folder(tmp_path, init=init))
    assert "requires flash-attention while building the model" in error.message


def test_package_folder_not_copied(tmp_path):
    extra = {"layers/__init__.py": "Block = 1\n"}
    error = load_error(remote_folder(tmp_path, header="from .layers import Block", extra=extra))
    assert error.stage == "import"
    assert "package folder 'layers/'" in error.message and "flatten it into layers.py" in error.message


def test_data_file_next_to_code_not_copied(tmp_path):
    header = "import json, os\nTABLE = json.load(open(os.path.join(os.path.dirname(__file__), 'rope_table.json')))"
    error = load_error(remote_folder(tmp_path, header=header, extra={"rope_table.json": "{}"}))
    assert error.stage == "import"
    assert "reads 'rope_table.json' next to its own file" in error.message


def test_from_dot_import_module_not_copied(tmp_path):
    error = load_error(remote_folder(tmp_path, header="from . import helpers", extra={"helpers.py": "X = 1\n"}))
    assert "`from . import helpers`" in error.message and "`from .helpers import …`" in error.message
    assert "although helpers is in" in error.message


def test_unrecognised_failure_keeps_type_message_and_location(tmp_path):
    folder = remote_folder(tmp_path, init="raise KeyError('rope_type')")
    error = load_error(folder)
    assert error.stage == "build"
    assert error.message.startswith(f"{folder.name}: KeyError: 'rope_type'")
    assert "modeling_tinyx.py:" in error.message


def test_package_uses_classifies_paths():
    source = textwrap.dedent(
        """
        import torch
        import bitsandbytes as bnb
        from flash_attn import flash_attn_func as faf
        import unused_pkg

        def attention(q, use_flash):
            if use_flash and torch.cuda.is_available():
                return faf(q)
            return q

        def linear8bit(x):
            return bnb.nn.Linear8bitLt(x)
        """
    )
    flash = package_uses(source, "flash_attn")
    assert flash.import_line == 4 and flash.used_in == ["attention"] and flash.cuda_only
    assert package_uses(source, "bitsandbytes").cuda_only
    assert package_uses(source, "unused_pkg").used_in == []
    assert not package_uses(source, "torch").cuda_only


def test_cli_prints_one_line_and_traceback_with_verbose(tmp_path):
    from typer.testing import CliRunner

    from scaffold.cli import app

    folder = remote_folder(tmp_path, header=FLASH_ONLY_ON_GPU)
    runner = CliRunner()
    plain = runner.invoke(app, ["inspect", str(folder), "--trust-remote-code", "--static"])
    assert plain.exit_code == 2
    lines = [line for line in plain.output.splitlines() if line.startswith("error")]
    assert lines == [lines[0]] and lines[0].startswith("error [import]: ") and "flash_attn" in lines[0]
    assert "Traceback" not in plain.output
    verbose = runner.invoke(app, ["inspect", str(folder), "--trust-remote-code", "--static", "--verbose"])
    assert verbose.exit_code == 2 and "Traceback" in verbose.output


def test_cli_new_arch_stops_with_one_line(tmp_path):
    from typer.testing import CliRunner

    from scaffold.cli import app

    folder = remote_folder(tmp_path, init="assert torch.cuda.is_available()")
    result = CliRunner().invoke(app, ["new-arch", str(folder), "--trust-remote-code", "--dry-run"])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.startswith("error")]
    assert len(lines) == 1 and lines[0].startswith("error [build]: ") and "requires CUDA" in lines[0]


def test_tiny_builder_reports_forward_failures_with_the_diagnosis(tmp_path):
    from scaffold.resolve.target import resolve_target
    from scaffold.tiny import ShrinkError, build_tiny

    forward = "past_length = __import__('transformers').DynamicCache().get_usable_length(input_ids.shape[1], 0)"
    target = resolve_target(str(remote_folder(tmp_path, forward=forward)), trust_remote_code=True)
    with pytest.raises(ShrinkError) as info:
        build_tiny(target.config, trust_remote_code=True)
    assert {attempt.stage for attempt in info.value.attempts} == {"forward"}
    assert "DynamicCache.get_usable_length" in info.value.message and "transformers<=4.53 has it" in info.value.message
