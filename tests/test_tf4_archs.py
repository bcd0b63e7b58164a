"""The transformers-4.4x-style architectures in tests/archs_tf4: they load on 4.57 and stock AutoRound fails on them.

Each folder's expected.json says which failure modes it reproduces and what stock auto-round 0.16.1
does (``stock_error``: a substring of the exception; or ``stock_warning``: a substring of a warning
logged by a run that ends without error and exports nothing). Run with ``.ci/tf4.sh``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from scaffold.inspection.findings import Mode
from scaffold.versions import transformers_major

ARCHS_TF4 = Path(__file__).parent / "archs_tf4"
ARCH_NAMES = sorted(p.name for p in ARCHS_TF4.iterdir() if (p / "config.json").is_file())
needs_tf4 = pytest.mark.skipif(transformers_major() != 4, reason="written for transformers 4.x (run .ci/tf4.sh)")


def expected(name: str) -> dict:
    return json.loads((ARCHS_TF4 / name / "expected.json").read_text())


def build(name: str) -> torch.nn.Module:
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(str(ARCHS_TF4 / name), trust_remote_code=True)
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config, trust_remote_code=True).eval()


@pytest.mark.tf4
def test_at_least_five_architectures():
    assert len(ARCH_NAMES) >= 5


@pytest.mark.tf4
@pytest.mark.parametrize("name", ARCH_NAMES)
def test_folder_is_complete_and_tiny(name):
    folder = ARCHS_TF4 / name
    info = expected(name)
    assert info["modes"] and all(Mode(mode) for mode in info["modes"])
    assert info["stock_symptom"] and bool(info.get("stock_error")) != bool(info.get("stock_warning"))
    assert (folder / "README.md").read_text().strip()
    config = json.loads((folder / "config.json").read_text())
    assert config["auto_map"] and config["hidden_size"] == 64 and config["vocab_size"] == 512
    assert 2 <= config["num_hidden_layers"] <= 4
    modeling = next(folder.glob("modeling_*.py")).read_text()
    assert "transformers.modeling_attn_mask_utils" in modeling and "self.post_init()" in modeling


@pytest.mark.tf4
@needs_tf4
@pytest.mark.parametrize("name", ARCH_NAMES)
def test_loads_and_forwards_on_transformers_4(name):
    model = build(name)
    ids = torch.randint(4, 512, (2, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        cached = model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=True)
        plain = model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False)
    assert cached.logits.shape == (2, 12, 512) and torch.isfinite(cached.logits).all()
    torch.testing.assert_close(cached.logits, plain.logits)


@pytest.mark.tf4
@needs_tf4
@pytest.mark.parametrize("name", ARCH_NAMES)
def test_stock_autoround_shows_the_symptom(name, tmp_path, make_tokenizer, calib_texts):
    from scaffold.measure.quantize import count_packed, run_autoround

    info = expected(name)
    run = run_autoround(build(name), make_tokenizer(), calib_texts, tmp_path / "export", raise_errors=False)
    if info.get("stock_error"):
        assert not run.ok and info["stock_error"] in run.error_line, run.error_line
        return
    assert run.ok, run.error_line
    assert any(info["stock_warning"] in warning for warning in run.warnings), run.warnings
    exported = list((tmp_path / "export").glob("*.safetensors"))
    assert not exported or count_packed(tmp_path / "export").packed_modules == 0


@pytest.mark.skipif(transformers_major() < 5, reason="transformers 4 still has modeling_attn_mask_utils")
def test_transformers_5_stops_at_the_import_stage_with_the_version_range():
    from scaffold.build.meta import build_meta
    from scaffold.errors import ScaffoldError
    from scaffold.resolve.target import resolve_target

    name = ARCH_NAMES[0]
    target = resolve_target(str(ARCHS_TF4 / name), trust_remote_code=True)
    with pytest.raises(ScaffoldError) as info:
        build_meta(target.config, trust_remote_code=True, where=name)
    assert info.value.stage == "import"
    assert "transformers.modeling_attn_mask_utils" in info.value.message
    assert "transformers<5 has it" in info.value.message


@pytest.mark.tf4
@needs_tf4
@pytest.mark.parametrize("name", ARCH_NAMES)
def test_scaffold_inspect_finds_the_expected_modes(name):
    from scaffold.inspection.stage import inspect_target
    from scaffold.resolve.target import resolve_target

    report = inspect_target(resolve_target(str(ARCHS_TF4 / name), trust_remote_code=True))
    found = {finding.mode.value for finding in report.problems}
    assert set(expected(name)["modes"]) <= found, found
