"""Plans as JSON (``generated/<type>/edits.json``), so a patch can be applied later or elsewhere."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from scaffold.errors import ScaffoldError
from scaffold.plan.edits import edit_from_json
from scaffold.plan.model import CodeBlock, GeneratedFile, Plan, PlanItem

SCHEMA_VERSION = "1.0"
EDITS_FILE = "edits.json"
PATCH_FILE = "autoround.patch"


def plan_to_json(plan: Plan) -> dict[str, Any]:
    """A JSON-ready dict of ``plan``; every edit carries its ``kind`` tag (``EditKind.to_json``)."""
    data = dataclasses.asdict(plan)
    data["edits"] = [edit.to_json() for edit in plan.edits]
    return {"schema_version": SCHEMA_VERSION, **data}


def _build(cls: type, data: dict[str, Any], what: str):
    names = {field.name for field in dataclasses.fields(cls)}
    try:
        return cls(**{key: value for key, value in data.items() if key in names})
    except TypeError as exc:
        raise ScaffoldError(f"invalid {what} in plan JSON: {exc}", "patch") from None


def plan_from_json(data: dict[str, Any]) -> Plan:
    """The :class:`Plan` that :func:`plan_to_json` wrote. Unknown keys are ignored (newer writers)."""
    if not isinstance(data, dict) or "model_type" not in data:
        raise ScaffoldError("plan JSON must be an object with model_type, files and edits", "patch")
    major = str(data.get("schema_version", SCHEMA_VERSION)).split(".")[0]
    if major != SCHEMA_VERSION.split(".")[0]:
        found = data["schema_version"]
        raise ScaffoldError(f"plan JSON schema {found} is not supported (want {SCHEMA_VERSION})", "patch")
    return Plan(
        model_type=data["model_type"],
        model_class=data.get("model_class", ""),
        files=[_build(GeneratedFile, item, "file") for item in data.get("files", [])],
        edits=[edit_from_json(item) for item in data.get("edits", [])],
        items=[_build(PlanItem, item, "plan item") for item in data.get("items", [])],
        plugin_parts=[_build(CodeBlock, item, "code block") for item in data.get("plugin_parts", [])],
        test_data=dict(data.get("test_data", {})),
        autoround_version=str(data.get("autoround_version", "")),
    )


def save_plan(plan: Plan, path: Path) -> Path:
    """Write ``plan`` as JSON to ``path`` (a file, or a folder that gets ``edits.json``)."""
    path = path / EDITS_FILE if path.is_dir() else path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(plan_to_json(plan), indent=2) + "\n", encoding="utf-8")
    return path


def load_plan(path: Path) -> Plan:
    """Read a plan from ``path`` (a file, or a generated folder holding ``edits.json``)."""
    path = path / EDITS_FILE if path.is_dir() else path
    if not path.is_file():
        raise ScaffoldError(f"no plan at {path} (expected the {EDITS_FILE} written by new-arch)", "patch")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ScaffoldError(f"{path} is not valid JSON: {exc}", "patch") from None
    return plan_from_json(data)
