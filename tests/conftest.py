"""Shared fixtures: hermetic remote-code cache, a local tokenizer, calibration texts, corpus loading."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# transformers copies trust_remote_code modules here; keep it out of the user's cache.
os.environ.setdefault("HF_MODULES_CACHE", tempfile.mkdtemp(prefix="scaffold-hf-modules-"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402

ARCHS_DIR = Path(__file__).parent / "archs"


def local_tokenizer(vocab_size: int = 512, input_names: tuple[str, ...] = ("input_ids", "attention_mask")):
    """A word-level ``PreTrainedTokenizerFast`` built on the spot: tokens ``w0 .. w{n}`` plus specials."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["[UNK]", "[PAD]", "[BOS]", "[EOS]"]
    vocab = {token: i for i, token in enumerate(specials)}
    vocab.update({f"w{i}": i + len(specials) for i in range(vocab_size - len(specials))})
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]", bos_token="[BOS]", eos_token="[EOS]"
    )
    tokenizer.model_input_names = list(input_names)
    return tokenizer


def calibration_texts(count: int = 4, words: int = 48, vocab_size: int = 512) -> list[str]:
    """Deterministic calibration strings over the local tokenizer's vocabulary."""
    return [" ".join(f"w{(7 * i + 13 * j) % (vocab_size - 4)}" for j in range(words)) for i in range(count)]


@pytest.fixture
def make_tokenizer():
    return local_tokenizer


@pytest.fixture
def calib_texts() -> list[str]:
    return calibration_texts()


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
