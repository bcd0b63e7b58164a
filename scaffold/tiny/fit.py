"""Inputs the model's own forward demands: special tokens it looks up, a mask it builds itself.

Some remote code finds its prompt markers by value (ChatGLM-6B: ``seq.index(gmask_token_id)`` and
``seq.index(bos_token_id)``) and fails with ``ValueError: 500 is not in list`` on plain text. Each such id
that is one of the config's special token ids is appended to every sequence (the last positions, in the
order the forward asked for them), and the forward is tried again. A forward that fails with the
tokenizer's ``attention_mask`` and runs without it builds its own mask: the mask is left out.
The calibration tokenizer appends the same ids (``TinyModel.suffix_ids``), so AutoRound's forward runs too.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import torch

from scaffold.tiny.inputs import forward_parameters, special_token_ids

# ``list.index`` / ``tuple.index`` on a missing value: "500 is not in list" / "tuple.index(x): x not in tuple".
_NOT_IN_LIST = re.compile(r"^(-?\d+) is not in (?:list|tuple)$")
MAX_SUFFIX = 4  # special tokens appended at most (ChatGLM-6B needs two: gMASK/MASK and BOS)


def missing_token(exc: BaseException, special: set[int]) -> int | None:
    """The special token id a ``seq.index(id)`` lookup did not find, or None."""
    if not isinstance(exc, ValueError):
        return None
    found = _NOT_IN_LIST.match(str(exc).strip())
    if found is None:
        return None
    token = int(found.group(1))
    return token if token in special else None


def with_suffix(inputs: dict[str, Any], suffix: tuple[int, ...]) -> dict[str, Any]:
    """``inputs`` whose ``input_ids`` (and decoder ids) end with ``suffix`` in every row, length unchanged."""
    fitted = dict(inputs)
    for key in ("input_ids", "decoder_input_ids"):
        ids = inputs.get(key)
        if isinstance(ids, torch.Tensor) and ids.dim() == 2 and ids.shape[-1] > len(suffix):
            ids = ids.clone()
            ids[:, ids.shape[-1] - len(suffix) :] = torch.tensor(suffix, dtype=ids.dtype)
            fitted[key] = ids
    return fitted


def fit_inputs(
    forward: Callable[[dict[str, Any]], Any], inputs: dict[str, Any], config: Any
) -> tuple[dict[str, Any], tuple[int, ...]]:
    """Inputs ``forward`` runs on, and the special ids appended to them; re-raises when no repair helps."""
    special = special_token_ids(config)
    suffix: tuple[int, ...] = ()
    while True:
        try:
            forward(inputs)
            return inputs, suffix
        except Exception as exc:  # noqa: BLE001 - repaired below or re-raised
            token = missing_token(exc, special)
            if token is not None and token not in suffix and len(suffix) < MAX_SUFFIX:
                suffix = (*suffix, token)
                inputs = with_suffix(inputs, suffix)
                continue
            if "attention_mask" not in inputs:
                raise
            unmasked = {k: v for k, v in inputs.items() if k != "attention_mask"}
            try:
                forward(unmasked)
            except Exception as second:  # noqa: BLE001
                if missing_token(second, special) is None:
                    raise exc from None  # the mask was not the problem: report the first failure
                inputs = unmasked  # the mask was one problem; a looked-up token is the next
                continue
            return unmasked, suffix


def own_mask_samples(model: Any, samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Calibration samples with ``attention_mask=None`` where the forward takes a mask but the sample has none.

    Such a forward builds its own mask (the tokenizer's was left out, see :func:`fit_inputs`); AutoRound's
    ``calib`` adds a ``[batch, seq]`` padding mask to every sample without the key, which that forward cannot
    take. A key holding None keeps AutoRound's out, and the forward gets None, its default.
    """
    if "attention_mask" not in forward_parameters(model):
        return samples
    return [s if "attention_mask" in s else {**s, "attention_mask": None} for s in samples]


def calibration_dataset(model: Any, tokenizer: Any, texts: list[str], seqlen: int) -> list[Any]:
    """``texts`` as AutoRound's ``dataset``: the strings, or, where the tokenizer gives no attention mask and the
    forward takes one (it builds its own), the tokenized samples of :func:`own_mask_samples`."""
    names = getattr(tokenizer, "model_input_names", None) or ["attention_mask"]
    if "attention_mask" in names or "attention_mask" not in forward_parameters(model):
        return list(texts)
    encoded = [tokenizer(text, truncation=True, max_length=seqlen, return_tensors="pt") for text in texts]
    return own_mask_samples(model, [{"input_ids": e["input_ids"]} for e in encoded])
