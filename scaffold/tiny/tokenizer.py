"""A word-level tokenizer and English-like calibration texts, made on the spot (no network)."""

from __future__ import annotations

import random

# Frequent English words: the calibration texts are drawn from them, so they tokenize without <unk>.
WORDS = (
    "the of and to in is that it was for on are as with his they at be this from have or by one had not but what "
    "all were when we there can an your which their said if do will each about how up out them then she many some "
    "so these would other into has more her two like him see time could no make than first been its who now people "
    "my made over did down only way find use may water long little very after words called just where most know "
    "get through back much before go good new write our used me man too any day same right look think also around "
    "another came come work three word must because does part even place well such here take why things help put "
    "years different away again off went old number great tell men say small every found still between name should "
    "home big give air line set own under read last never us left end along while might next sound below saw "
    "something thought both few those always looked show large often together asked house world going want school "
    "important until form food keep children feet land side without boy once animals life enough took sometimes "
    "four head above kind began almost live page got earth need far hand high year mother light parts country "
    "father let night following picture being study second eyes soon times story boys since white days ever paper "
    "hard near sentence better best across during today others however sure means knew try told young miles sun "
    "ways thing whole hear example heard several change answer room sea against top turned learn point city play "
    "toward five using himself usually money seen car morning family river model layer weight quantize round"
).split()
PUNCTUATION = (".", ",", ";", ":", "!", "?", "(", ")", "'", '"', "-")
SPECIALS = {"pad_token": "<pad>", "unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>"}


def suffix_token(token_id: int) -> str:
    """The name of an appended special token that has no role of its own (e.g. ChatGLM's gMASK)."""
    return f"<special_{token_id}>"


def _vocab(vocab_size: int, special_ids: dict[str, int], suffix_ids: tuple[int, ...] = ()) -> dict[str, int]:
    """Token → id for exactly ``vocab_size`` ids, specials at ``special_ids`` (else at 0..3), suffix ids named."""
    need = len(SPECIALS) + len(suffix_ids) + 1
    if vocab_size < need:
        raise ValueError(f"vocab_size {vocab_size} is too small for a tokenizer (need at least {need})")
    placed: dict[int, str] = {}
    for role, token in SPECIALS.items():
        wanted = special_ids.get(role)
        if isinstance(wanted, int) and 0 <= wanted < vocab_size and wanted not in placed:
            placed[wanted] = token
    for token_id in suffix_ids:
        if 0 <= token_id < vocab_size and token_id not in placed:
            placed[token_id] = suffix_token(token_id)
    leftover = [token for token in SPECIALS.values() if token not in placed.values()]
    free_ids = (i for i in range(vocab_size) if i not in placed)
    for token in leftover:
        placed[next(free_ids)] = token
    fillers = iter((*PUNCTUATION, *WORDS, *(f"tok{i}" for i in range(vocab_size))))
    for i in range(vocab_size):
        if i not in placed:
            token = next(fillers)
            while token in placed.values():
                token = next(fillers)
            placed[i] = token
    return {token: i for i, token in placed.items()}


def make_tokenizer(
    vocab_size: int,
    model_input_names: tuple[str, ...] = ("input_ids", "attention_mask"),
    special_ids: dict[str, int] | None = None,
    suffix_ids: tuple[int, ...] = (),
):
    """A ``PreTrainedTokenizerFast`` over exactly ``vocab_size`` ids, with pad/unk/bos/eos inside the vocab.

    ``special_ids`` places special tokens where the model config expects them, e.g. ``{"eos_token": 2}``.
    ``suffix_ids`` are appended to every encoded text (``TinyModel.suffix_ids``: ids the forward looks up);
    truncation keeps them, as it keeps any special token a post-processor adds.
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = _vocab(vocab_size, special_ids or {}, tuple(suffix_ids))
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=SPECIALS["unk_token"]))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    names = {i: token for token, i in vocab.items()}
    suffix = [(names[i], i) for i in suffix_ids if i in names]
    if suffix:
        tail = " ".join(token for token, _ in suffix)
        backend.post_processor = processors.TemplateProcessing(
            single=f"$A {tail}", pair=f"$A $B {tail}", special_tokens=list(dict.fromkeys(suffix))
        )
    extra = [token for token, _ in suffix if token not in SPECIALS.values()]
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        model_input_names=list(model_input_names),
        model_max_length=2048,
        **SPECIALS,
        **({"additional_special_tokens": list(dict.fromkeys(extra))} if extra else {}),
    )


def calibration_texts(n: int = 8, seed: int = 0, words: int = 64) -> list[str]:
    """``n`` English-like texts of about ``words`` words each (enough for seqlen 32), reproducible by ``seed``."""
    rng = random.Random(seed)
    texts = []
    for _ in range(n):
        sentences = []
        count = 0
        while count < words:
            length = rng.randint(6, 14)
            sentence = " ".join(rng.choice(WORDS) for _ in range(length))
            sentences.append(sentence[0].upper() + sentence[1:] + rng.choice((".", ".", ".", "!", "?")))
            count += length
        texts.append(" ".join(sentences))
    return texts
