"""``save_tiny``: a folder that ``from_pretrained`` loads as model and tokenizer, with calibration texts."""

from __future__ import annotations

import inspect
import json
import shutil
from pathlib import Path
from typing import Any

from scaffold.tiny.inputs import text_vocab_size
from scaffold.tiny.model import TinyModel
from scaffold.tiny.tokenizer import calibration_texts, make_tokenizer

CALIBRATION_FILES = ("calibration.txt", "calibration.json")


def save_tiny(tiny: TinyModel, out_dir: str | Path) -> Path:
    """Save model (safetensors) + config, a matching tokenizer, ``calibration.txt``/``.json`` and remote code."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tiny.model.save_pretrained(str(out))
    config = tiny.model.config
    input_names = tuple(name for name in ("input_ids", "attention_mask") if name in tiny.inputs)
    tokenizer = make_tokenizer(
        text_vocab_size(config),
        model_input_names=input_names,
        special_ids=_special_ids(config),
        suffix_ids=tiny.suffix_ids,
    )
    tokenizer.save_pretrained(str(out))
    texts = calibration_texts()
    (out / "calibration.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    (out / "calibration.json").write_text(json.dumps(texts, indent=1), encoding="utf-8")
    copy_remote_code(tiny, out)
    return out


def _special_ids(config: Any) -> dict[str, int]:
    text = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config
    ids = {}
    for role in ("pad_token", "bos_token", "eos_token", "unk_token"):
        value = getattr(text, f"{role}_id", None)
        if value is None:
            value = getattr(config, f"{role}_id", None)
        if isinstance(value, list):
            value = value[0] if value else None
        if isinstance(value, int) and not isinstance(value, bool):
            ids[role] = value
    return ids


def copy_remote_code(tiny: TinyModel, out: Path) -> list[str]:
    """Copy the ``.py`` files of remote-code classes next to the weights, as the Hub folder had them.

    ``save_pretrained`` copies them itself when the class was registered for an auto class; this makes
    sure every module named in ``auto_map`` is there either way. Returns the file names copied.
    """
    auto_map = getattr(tiny.model.config, "auto_map", None) or {}
    if not auto_map:
        return []
    copied = []
    for obj in (type(tiny.model), type(tiny.model.config)):
        module = inspect.getmodule(obj)
        if module is None or not module.__name__.startswith("transformers_modules"):
            continue
        source_dir = Path(inspect.getfile(obj)).parent
        for source in sorted(source_dir.glob("*.py")):
            target = out / source.name
            if source.name != "__init__.py" and not target.exists():
                shutil.copyfile(source, target)
                copied.append(source.name)
    return copied
