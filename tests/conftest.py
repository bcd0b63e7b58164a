"""Shared fixtures: hermetic remote-code cache, a local tokenizer, calibration texts, corpus loading."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# transformers copies trust_remote_code modules here; keep it out of the user's cache.
os.environ.setdefault("HF_MODULES_CACHE", tempfile.mkdtemp(prefix="scaffold-hf-modules-"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402


def pytest_configure(config: pytest.Config) -> None:
    """``$SCAFFOLD_AUTOROUND_BF16=on|off``: every AutoRound in the session runs as a bf16 (or non-bf16) CPU would."""
    from scaffold.measure.precision import apply_bf16_override

    apply_bf16_override()


def pytest_report_header(config: pytest.Config) -> str:
    from scaffold.measure.precision import host_precision

    return f"AutoRound precision: {host_precision().line()}"


@pytest.fixture(scope="module", params=["off", "on"], ids=["bf16-off", "bf16-on"])
def autoround_bf16(request: pytest.FixtureRequest):
    """Run a module's tests twice: AutoRound's CPU bf16 check answering off, then on (amp in bf16 autocast, as on
    CUDA and most x86 servers). Subprocesses (generated tests) inherit ``$SCAFFOLD_AUTOROUND_BF16``."""
    from scaffold.measure.precision import simulated_bf16

    with simulated_bf16(request.param == "on"):
        yield request.param


ARCHS_DIR = Path(__file__).parent / "archs"


def local_tokenizer(vocab_size: int = 512, input_names: tuple[str, ...] = ("input_ids", "attention_mask")):
    """A word-level tokenizer made on the spot, specials at the corpus configs' ids (pad 1, bos 2, eos 3)."""
    from scaffold.tiny.tokenizer import make_tokenizer

    return make_tokenizer(
        vocab_size, input_names, special_ids={"unk_token": 0, "pad_token": 1, "bos_token": 2, "eos_token": 3}
    )


@pytest.fixture
def make_tokenizer():
    return local_tokenizer


@pytest.fixture
def calib_texts() -> list[str]:
    from scaffold.tiny.tokenizer import calibration_texts

    return calibration_texts(4)


def load_arch(name: str, seed: int = 0):
    """Random-init model of the corpus architecture ``tests/archs/<name>`` (no weights on disk)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    folder = ARCHS_DIR / name
    config = AutoConfig.from_pretrained(str(folder), trust_remote_code=True)
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config, trust_remote_code=True).eval()


@pytest.fixture
def arch_loader():
    return load_arch


from tests.conftest_patch import *  # noqa
