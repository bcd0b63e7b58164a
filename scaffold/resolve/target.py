"""Resolve a target (``transformers:<type>``, a local folder, a Hub id) to a config.

Only ``config.json``, ``generation_config.json`` and remote-code ``*.py`` files are ever
fetched from the Hub, never weights. Remote code runs only with ``trust_remote_code``, and only
from the target itself unless ``allow_remote_code_from`` names another source (``scaffold.resolve.remote_code``).
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scaffold.errors import ScaffoldError, first_line
from scaffold.resolve.remote_code import Origin, allowed_from_env, check_auto_map

TRANSFORMERS_PREFIX = "transformers:"
HUB_FILES = ["config.json", "generation_config.json", "*.py"]
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}(/[\w.-]{1,96})?$")


@dataclass
class ResolvedTarget:
    """What the rest of the pipeline needs to know about a target."""

    spec: str
    kind: str  # "transformers" | "local" | "hub"
    config: Any  # transformers.PretrainedConfig
    model_type: str
    model_dir: Path | None = None
    trust_remote_code: bool = False
    revision: str | None = None
    remote_code_files: list[str] = field(default_factory=list)
    allow_remote_code_from: tuple[str, ...] = ()

    @property
    def has_remote_code(self) -> bool:
        return bool(getattr(self.config, "auto_map", None))

    @property
    def slug(self) -> str:
        """A file-system friendly name for output folders (``generated/<slug>``)."""
        return re.sub(r"[^A-Za-z0-9_]+", "_", self.model_type).strip("_") or "model"


def known_model_types() -> list[str]:
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    return sorted(CONFIG_MAPPING_NAMES)


def resolve_target(
    spec: str,
    *,
    trust_remote_code: bool = False,
    revision: str | None = None,
    verbose: bool = False,
    allow_remote_code_from: Iterable[str] | None = None,
) -> ResolvedTarget:
    """Turn a target string into a :class:`ResolvedTarget`, or raise :class:`ScaffoldError`.

    ``allow_remote_code_from`` names other repositories or folders ``auto_map`` may load code from
    (default: ``$SCAFFOLD_ALLOW_REMOTE_CODE_FROM``, how the generated test inherits the CLI flag).
    """
    allowed = allowed_from_env() if allow_remote_code_from is None else tuple(allow_remote_code_from)
    spec = spec.strip()
    if not spec:
        raise ScaffoldError("empty target; give transformers:<model_type>, a model folder or a Hub id", "resolve")
    if spec.startswith(TRANSFORMERS_PREFIX):
        return _resolve_transformers(spec)
    path = Path(spec).expanduser()
    if path.exists() or spec.startswith((".", "/", "~")) or os.sep in spec and path.parent.exists():
        return _resolve_local(spec, path, trust_remote_code=trust_remote_code, allowed=allowed)
    if _HUB_ID.match(spec):
        return _resolve_hub(spec, trust_remote_code=trust_remote_code, revision=revision, allowed=allowed)
    raise ScaffoldError(f"'{spec}' is neither transformers:<model_type>, an existing folder nor a Hub id", "resolve")


def _resolve_transformers(spec: str) -> ResolvedTarget:
    from transformers import AutoConfig

    model_type = spec[len(TRANSFORMERS_PREFIX) :].strip()
    types = known_model_types()
    if model_type not in types:
        close = difflib.get_close_matches(model_type, types, n=3, cutoff=0.6)
        hint = f"did you mean {', '.join(close)}?" if close else "see `transformers.CONFIG_MAPPING` for the list"
        raise ScaffoldError(f"unknown model_type '{model_type}' in this transformers; {hint}", "resolve")
    try:
        config = AutoConfig.for_model(model_type)
    except Exception as exc:  # noqa: BLE001 - reported as one line
        raise ScaffoldError(
            f"transformers cannot make the default config of '{model_type}': {first_line(exc)}", "config"
        ) from exc
    return ResolvedTarget(spec=spec, kind="transformers", config=config, model_type=model_type)


def _read_config_json(folder: Path, name: str = "config.json") -> dict:
    config_file = folder / name
    if not config_file.is_file():
        raise ScaffoldError(f"{folder} is not a model folder: it has no config.json", "resolve")
    try:
        data = json.loads(config_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ScaffoldError(f"{config_file} is not valid JSON: {exc}", "config") from exc
    if not isinstance(data, dict):
        raise ScaffoldError(f"{config_file} must hold a JSON object, not {type(data).__name__}", "config")
    return data


def _require_trust(data: dict, where: str, trust_remote_code: bool) -> None:
    if data.get("auto_map") and not trust_remote_code:
        raise ScaffoldError(
            f"{where} ships remote code (auto_map in config.json); re-run with --trust-remote-code to allow it to run",
            "resolve",
        )


def _check_remote_code(data: dict, origin: Origin, allowed: tuple[str, ...], where: str) -> dict | None:
    """Validate ``auto_map`` of config.json (and tokenizer_config.json) before any code is imported."""
    tokenizer = origin.folder / "tokenizer_config.json"
    if tokenizer.is_file() and "auto_map" in (tokenizer_data := _read_config_json(origin.folder, tokenizer.name)):
        check_auto_map(tokenizer_data["auto_map"], origin, allowed, f"{where} tokenizer_config.json")
    return check_auto_map(data.get("auto_map"), origin, allowed, where)


def _load_config(
    folder: Path, data: dict, trust_remote_code: bool, spec: str, auto_map: dict | None, revision: str | None = None
) -> Any:
    from transformers import AutoConfig

    from scaffold.resolve.diagnose import diagnose_load_error

    model_type = data.get("model_type")
    if not data.get("auto_map"):
        if not model_type:
            raise ScaffoldError(f"{folder}/config.json has neither model_type nor auto_map", "config")
        if model_type not in known_model_types():
            close = difflib.get_close_matches(str(model_type), known_model_types(), n=3, cutoff=0.6)
            hint = f"did you mean {', '.join(close)}?" if close else "and it has no auto_map to remote code"
            raise ScaffoldError(f"model_type '{model_type}' is unknown to this transformers; {hint}", "config")
    kwargs = {"code_revision": revision} if revision else {}  # a same-repo `repo--` reference reads this revision
    try:
        config = AutoConfig.from_pretrained(str(folder), trust_remote_code=trust_remote_code, **kwargs)
    except ScaffoldError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise diagnose_load_error(exc, stage="config", where=spec) from exc
    if auto_map and getattr(config, "auto_map", None):
        config.auto_map = auto_map  # same-repo references made local: the model code comes from ``folder``
    return config


def _resolve_local(spec: str, path: Path, *, trust_remote_code: bool, allowed: tuple[str, ...]) -> ResolvedTarget:
    if not path.exists():
        raise ScaffoldError(f"folder {path} does not exist", "resolve")
    if not path.is_dir():
        raise ScaffoldError(f"{path} is a file, not a model folder with config.json", "resolve")
    data = _read_config_json(path)
    _require_trust(data, str(path), trust_remote_code)
    auto_map = _check_remote_code(data, Origin(path.resolve()), allowed, str(path))
    config = _load_config(path, data, trust_remote_code, spec, auto_map)
    return ResolvedTarget(
        spec=spec,
        kind="local",
        config=config,
        model_type=str(getattr(config, "model_type", None) or data.get("model_type") or path.name),
        model_dir=path.resolve(),
        trust_remote_code=trust_remote_code,
        remote_code_files=sorted(p.name for p in path.glob("*.py")),
        allow_remote_code_from=allowed,
    )


def _resolve_hub(
    spec: str, *, trust_remote_code: bool, revision: str | None, allowed: tuple[str, ...]
) -> ResolvedTarget:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on")
    try:
        folder = Path(snapshot_download(spec, revision=revision, allow_patterns=HUB_FILES, local_files_only=offline))
    except (LocalEntryNotFoundError, OfflineModeIsEnabled) as exc:
        raise ScaffoldError(
            f"Hub id '{spec}' is not in the local Hugging Face cache and the Hub cannot be reached"
            + (" (HF_HUB_OFFLINE is set)" if offline else ""),
            "resolve",
            hint="connect once, or give a local model folder",
        ) from exc
    except GatedRepoError as exc:
        raise ScaffoldError(f"Hub repo '{spec}' is gated: log in with `hf auth login` first", "resolve") from exc
    except RepositoryNotFoundError as exc:
        raise ScaffoldError(f"Hub repo '{spec}' does not exist or is private", "resolve") from exc
    except RevisionNotFoundError as exc:
        raise ScaffoldError(f"revision '{revision}' not found in Hub repo '{spec}'", "resolve") from exc
    except Exception as exc:  # noqa: BLE001 - network errors of any kind
        raise ScaffoldError(f"cannot fetch '{spec}' from the Hub: {first_line(exc)}", "resolve") from exc
    data = _read_config_json(folder)
    _require_trust(data, f"Hub repo '{spec}'", trust_remote_code)
    auto_map = _check_remote_code(data, Origin(folder, spec), allowed, f"Hub repo '{spec}'")
    config = _load_config(folder, data, trust_remote_code, spec, auto_map, revision)
    return ResolvedTarget(
        spec=spec,
        kind="hub",
        config=config,
        model_type=str(getattr(config, "model_type", None) or data.get("model_type")),
        model_dir=folder,
        trust_remote_code=trust_remote_code,
        revision=revision,
        remote_code_files=sorted(p.name for p in folder.glob("*.py")),
        allow_remote_code_from=allowed,
    )
