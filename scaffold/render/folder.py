"""Render an adaptation folder with copier, format it, and move it into place all at once.

The copier template (``templates/adaptation``) writes the plugin, the generated test, REPORT.md,
README rows and the answers file; this module adds the checkout files of the plan, ``inspect.json``
and ``edits.json``, runs ``ruff format`` when ruff is installed (the templates already produce
formatted code, so output is the same without it), lists every ``TODO(scaffold)`` with its file and
line in REPORT.md, and replaces the destination only once everything rendered.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scaffold.errors import ScaffoldError
from scaffold.markers import TODO_MARK
from scaffold.plan.model import Plan, TodoItem
from scaffold.render.resources import template_path

ADAPTATION_TEMPLATE = "adaptation"  # under the installed templates (scaffold.render.resources)
CHECKOUT_DIR = "autoround"  # plan.files go under <out>/autoround/<path in the checkout>
INSPECT_FILE = "inspect.json"
EDITS_FILE = "edits.json"
ANSWERS_FILE = ".copier-answers.yml"
BASE_KEY = "_scaffold_base"  # answers-file key: the files as rendered, the base of `scaffold update`'s merge


@dataclass
class Rendered:
    """What was (or, for a dry run, would be) written."""

    out: Path
    files: list[str]  # paths relative to ``out``, sorted
    todos: list[TodoItem] = field(default_factory=list)
    formatted_with_ruff: bool = False


def ruff_available() -> bool:
    return importlib.util.find_spec("ruff") is not None


def ruff_format(paths: list[Path]) -> None:
    """Format ``paths`` with the project's style, independent of any config around the output folder."""
    if not paths:
        return
    command = [sys.executable, "-m", "ruff", "format", "--isolated", "--line-length", "120"]
    command += ["--target-version", "py310", "--quiet", *map(str, paths)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise ScaffoldError(f"ruff format failed on generated code: {done.stderr.strip()[:500]}", "render")


def check_replaceable(out: Path, force: bool) -> None:
    """Refuse to overwrite a non-empty ``out`` unless ``force`` and the tool wrote it (it has its answers file)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ScaffoldError(f"{out} exists and is not a folder", "render")
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not force:
        raise ScaffoldError(f"{out} already exists", "render", hint="pass --force to replace it")
    if not _written_by_scaffold(out):
        raise ScaffoldError(
            f"{out} is not a folder scaffold wrote (no {ANSWERS_FILE} from new-arch): not replacing it", "render"
        )


def _written_by_scaffold(folder: Path) -> bool:
    answers = folder / ANSWERS_FILE
    if not answers.is_file():
        return False
    try:
        data = yaml_load(answers.read_text(encoding="utf-8"))
    except Exception:  # noqa: BLE001 - an unreadable answers file is not ours
        return False
    return isinstance(data, dict) and "scaffold_version" in data


def yaml_load(text: str) -> Any:
    import yaml

    return yaml.safe_load(text)


def find_todos(folder: Path) -> list[TodoItem]:
    """Every ``TODO(scaffold)`` comment in generated Python files outside the tests, as ``file:line``."""
    todos = []
    for path in sorted(folder.rglob("*.py")):
        relative = path.relative_to(folder).as_posix()
        if path.name.startswith("test_") or path.name == "conftest.py":
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if TODO_MARK in line:
                text = line.split(TODO_MARK, 1)[1].lstrip(" :-").rstrip("\"')").strip() or line.strip()
                todos.append(TodoItem(file=relative, line=number, text=text))
    return todos


def checklist(folder: Path, plan: Plan) -> list[TodoItem]:
    """Everything left to do by hand: each ``TODO(scaffold)`` comment (file, line), then each to-do of the plan
    that names no comment (``file`` empty): a finding with no generator, a probe that named nothing, ..."""
    rows = find_todos(folder)
    for item in plan.items:
        rows += [TodoItem(file="", line=0, text=f"{item.mode}: {t}") for t in item.todos if not t.startswith(TODO_MARK)]
    return rows


def todo_line(todo: TodoItem) -> str:
    """``file:line text``, or the text alone for a to-do no comment marks."""
    return f"{todo.file}:{todo.line} {todo.text}" if todo.file else todo.text


def edits_json(plan: Plan) -> dict[str, Any]:
    try:
        from scaffold.patch.serialize import plan_to_json
    except ImportError:
        return dataclasses.asdict(plan)
    return plan_to_json(plan)


def _dump(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def _copy_template(folder: Path, answers: dict[str, Any], data: dict[str, Any]) -> None:
    import copier

    template = template_path(ADAPTATION_TEMPLATE)
    try:
        copier.run_copy(
            str(template),
            str(folder),
            data={**answers, **data},
            defaults=True,
            overwrite=True,
            unsafe=False,
            quiet=True,
        )
    except Exception as exc:  # noqa: BLE001 - a template error is one line for the user
        raise ScaffoldError(f"rendering {template.name} failed: {type(exc).__name__}: {exc}", "render") from exc


def _relative_template_path(answers_file: Path, final: Path) -> None:
    """Record the template relative to the output folder, so answers are the same on every machine.

    ``copier recopy`` run from inside the output folder finds the template through it.
    """
    if answers_file.is_file():
        template = template_path(ADAPTATION_TEMPLATE)
        relative = Path(os.path.relpath(template.resolve(), final)).as_posix()
        lines = answers_file.read_text(encoding="utf-8").splitlines(keepends=True)
        lines = [f"_src_path: {relative}\n" if line.startswith("_src_path: ") else line for line in lines]
        answers_file.write_text("".join(lines), encoding="utf-8")


def _render_once(
    folder: Path, answers: dict[str, Any], data: dict[str, Any], extra: dict[str, str], use_ruff: bool
) -> None:
    _copy_template(folder, answers, data)
    for relative, content in extra.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
    if use_ruff:
        ruff_format(sorted(folder.rglob("*.py")))


def render_folder(
    out: Path,
    *,
    answers: dict[str, Any],
    data: dict[str, Any],
    plan: Plan,
    inspect_json: dict[str, Any],
    extra_files: dict[str, str] | None = None,
    use_ruff: bool | None = None,
    dry_run: bool = False,
    force: bool = False,
    write_to: Path | None = None,
) -> Rendered:
    """Render the adaptation into ``out`` atomically (nothing half-written on error).

    ``answers`` are the copier questions recorded in the answers file, ``data`` the computed values
    (``report`` gets ``todos`` filled in here), ``extra_files`` more files relative to ``out``.
    ``write_to`` (an absent folder) receives the files instead of ``out``; paths inside are still those of ``out``.
    """
    out = Path(out)
    if write_to is None and not dry_run:
        check_replaceable(out, force)
    use_ruff = ruff_available() if use_ruff is None else use_ruff
    extra = {f"{CHECKOUT_DIR}/{f.path}": f.content for f in plan.files}
    extra[INSPECT_FILE] = _dump(inspect_json)
    extra[EDITS_FILE] = _dump(edits_json(plan))
    extra.update(extra_files or {})

    destination = Path(write_to if write_to is not None else out).resolve()
    parent = destination.parent
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", dir=parent))
    try:
        folder = staging / out.name
        report = dict(data.get("report", {}))
        _render_once(folder, answers, {**data, "report": {**report, "todos": []}}, extra, use_ruff)
        todos = checklist(folder, plan)
        if todos:  # second pass: REPORT.md lists them with the line numbers of the formatted files
            shutil.rmtree(folder)
            todo_rows = [dataclasses.asdict(t) for t in todos]
            _render_once(folder, answers, {**data, "report": {**report, "todos": todo_rows}}, extra, use_ruff)
        _relative_template_path(folder / ANSWERS_FILE, out.resolve())
        record_base(folder)
        files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
        if not dry_run:
            _move_into_place(folder, destination, staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Rendered(out=out, files=files, todos=todos, formatted_with_ruff=use_ruff)


def read_files(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` but the answers file, relative path -> text."""
    return {
        path.relative_to(folder).as_posix(): path.read_text(encoding="utf-8")
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != ANSWERS_FILE and "__pycache__" not in path.parts
    }


def record_base(folder: Path) -> None:
    """Append the rendered files to the answers file: ``scaffold update`` merges hand edits against them."""
    answers = folder / ANSWERS_FILE
    if not answers.is_file():
        return
    import yaml

    base = yaml.dump({BASE_KEY: read_files(folder)}, Dumper=_literal_dumper(), sort_keys=True, allow_unicode=True)
    comment = "# The files as scaffold wrote them: the base of `scaffold update`'s three-way merge.\n"
    answers.write_text(answers.read_text(encoding="utf-8") + comment + base, encoding="utf-8")


def _literal_str(dumper: Any, value: str) -> Any:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


def _literal_dumper() -> type:
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    Dumper.add_representer(str, _literal_str)
    return Dumper


def _move_into_place(folder: Path, out: Path, staging: Path) -> None:
    """Swap ``folder`` in for ``out``; an existing ``out`` is kept until the new one is in place."""
    backup = staging / "previous"
    if out.exists():
        out.rename(backup)
    try:
        folder.rename(out)
    except OSError:
        if backup.exists():
            backup.rename(out)
        raise
