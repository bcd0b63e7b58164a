"""Inputs a forward demands (scaffold/tiny/fit.py): looked-up special tokens appended, a self-built mask kept."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers import PretrainedConfig

from scaffold.tiny.fit import calibration_dataset, fit_inputs, missing_token, own_mask_samples, with_suffix
from scaffold.tiny.tokenizer import calibration_texts, make_tokenizer


class MarkerModel(nn.Module):
    """Finds its prompt markers by value and builds its own boolean mask, as ChatGLM-6B's forward does."""

    def __init__(self, config: PretrainedConfig):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, 8)

    def forward(self, input_ids, attention_mask=None):
        for seq in input_ids.tolist():
            seq.index(self.config.gmask_token_id)
            seq.index(self.config.bos_token_id)
        scores = self.embed(input_ids).sum(-1)
        if attention_mask is None:
            attention_mask = torch.zeros_like(input_ids, dtype=torch.bool)
        return scores.masked_fill(attention_mask, -1.0)  # a [batch, seq] long padding mask fails here


def _config() -> PretrainedConfig:
    return PretrainedConfig(vocab_size=64, gmask_token_id=60, bos_token_id=61, eos_token_id=62)


def _inputs() -> dict[str, torch.Tensor]:
    return {"input_ids": torch.randint(0, 50, (2, 8)), "attention_mask": torch.ones(2, 8, dtype=torch.long)}


def test_missing_token_only_reads_the_configs_special_ids():
    assert missing_token(ValueError("60 is not in list"), {60, 61}) == 60
    assert missing_token(ValueError("7 is not in list"), {60, 61}) is None  # not a special token: a real bug
    assert missing_token(RuntimeError("60 is not in list"), {60}) is None


def test_with_suffix_keeps_the_length():
    ids = torch.arange(16).reshape(2, 8)
    fitted = with_suffix({"input_ids": ids}, (60, 61))
    assert fitted["input_ids"].shape == (2, 8) and fitted["input_ids"][:, -2:].tolist() == [[60, 61]] * 2
    assert ids[0, -1] == 7  # the caller's tensor is left alone


def test_fit_inputs_appends_looked_up_ids_and_leaves_the_mask_out():
    model = MarkerModel(_config())
    inputs, suffix = fit_inputs(lambda batch: model(**batch), _inputs(), model.config)
    assert suffix == (60, 61)
    assert "attention_mask" not in inputs
    assert inputs["input_ids"][:, -2:].tolist() == [[60, 61]] * 2


def test_fit_inputs_reraises_what_no_rule_repairs():
    class Broken(MarkerModel):
        def forward(self, input_ids, attention_mask=None):
            raise KeyError("something else")

    model = Broken(_config())
    with pytest.raises(KeyError):
        fit_inputs(lambda batch: model(**batch), _inputs(), model.config)


def test_tokenizer_appends_the_suffix_through_truncation():
    tokenizer = make_tokenizer(64, ("input_ids",), suffix_ids=(60, 61))
    encoded = tokenizer(calibration_texts()[0], truncation=True, max_length=16)
    assert len(encoded["input_ids"]) == 16 and encoded["input_ids"][-2:] == [60, 61]
    assert "attention_mask" not in encoded


def test_calibration_dataset_keeps_autorounds_padding_mask_out():
    model = MarkerModel(_config())
    tokenizer = make_tokenizer(64, ("input_ids",), suffix_ids=(60, 61))
    dataset = calibration_dataset(model, tokenizer, calibration_texts(2), 16)
    assert [sorted(sample) for sample in dataset] == [["attention_mask", "input_ids"]] * 2
    assert all(sample["attention_mask"] is None and sample["input_ids"].shape == (1, 16) for sample in dataset)
    model(**dataset[0])  # the forward builds its own mask
    masked = make_tokenizer(64)
    assert calibration_dataset(model, masked, ["a b"], 16) == ["a b"]  # a tokenizer mask: texts as they are
    assert own_mask_samples(nn.Linear(2, 2), [{"input_ids": 1}]) == [{"input_ids": 1}]  # no mask parameter
