"""``scaffold update DIR``: render an adaptation again with the current tool, auto-round and transformers,
keeping hand edits.

The answers file of DIR holds the answers of ``new-arch`` and the files exactly as it wrote them (the base).
The target is rendered again, as if into DIR, into a temporary folder (the new version). Both versions become
the two tagged commits of a temporary copier template of plain files, and copier's three-way update
(``run_update``) merges the changes from base to new version into a git copy of DIR, hand edits included.
Conflicts stay visible (inline markers or ``.rej`` files); the merged files are written back into DIR.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scaffold.errors import ScaffoldError
from scaffold.plan.model import TodoItem
from scaffold.render.folder import ANSWERS_FILE, BASE_KEY, find_todos, read_files, yaml_load
from scaffold.resolve.target import ResolvedTarget

OLD_TAG, NEW_TAG = "1", "2"  # versions of the temporary template: as new-arch wrote DIR, as rendered now
TEMPLATE_SUFFIX = ".scaffold-tmpl"  # only the answers file is a template; every other file is copied as is
CONFLICT_MARK = "<<<<<<< "
GIT_USER = ["-c", "user.name=autoround-scaffold", "-c", "user.email=scaffold@localhost", "-c", "commit.gpgsign=false"]


@dataclass
class UpdateResult:
    folder: Path
    changed: list[str] = field(default_factory=list)  # files written, added or removed in DIR
    conflicts: list[str] = field(default_factory=list)  # files with merge markers or a .rej file
    kept: list[str] = field(default_factory=list)  # no longer generated, but edited by hand: left in place
    todos: list[TodoItem] = field(default_factory=list)  # TODO(scaffold) comments left after the merge


def read_answers(folder: Path) -> dict[str, Any]:
    """The answers of the ``new-arch`` run that wrote ``folder``; one clear error when it is not such a folder."""
    folder = Path(folder)
    path = folder / ANSWERS_FILE
    if not folder.is_dir():
        raise ScaffoldError(f"{folder} is not a folder", "update")
    if not path.is_file():
        raise ScaffoldError(f"{folder} has no {ANSWERS_FILE}: not a folder `scaffold new-arch` wrote", "update")
    try:
        answers = yaml_load(path.read_text(encoding="utf-8"))
    except Exception as exc:  # noqa: BLE001 - a broken answers file is one line
        raise ScaffoldError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}", "update") from None
    if not isinstance(answers, dict) or "target" not in answers or "scaffold_version" not in answers:
        raise ScaffoldError(f"{path} is not the answers file of `scaffold new-arch`", "update")
    if not isinstance(answers.get(BASE_KEY), dict):
        raise ScaffoldError(
            f"{path} does not record the files new-arch wrote (written by autoround-scaffold "
            f"{answers['scaffold_version']})",
            "update",
            hint="regenerate it once with `scaffold new-arch --force`",
        )
    return answers


def target_spec(folder: Path, answers: dict[str, Any]) -> str:
    """The target to render again: the recorded folder of a local target (relative to DIR), else the spec."""
    target_path = answers.get("target_path") or ""
    if target_path:
        return str((Path(folder) / target_path).resolve())
    return str(answers["target"])


def require_clean_git(folder: Path) -> None:
    """DIR must be tracked by git with nothing uncommitted, so the update can be reviewed and undone."""
    inside = _git(folder, "rev-parse", "--is-inside-work-tree", check=False)
    if inside.returncode != 0 or inside.stdout.strip() != "true":
        raise ScaffoldError(f"{folder} is not in a git work tree", "update", hint="commit it to git, then update")
    status = _git(folder, "status", "--porcelain", "--untracked-files=all", "--", ".").stdout
    if status.strip():
        first = status.splitlines()[0].strip()
        raise ScaffoldError(f"{folder} has uncommitted changes ({first})", "update", hint="commit or stash them first")


def update_adaptation(
    folder: Path, target: ResolvedTarget, answers: dict[str, Any], *, conflict: str = "inline"
) -> UpdateResult:
    """Render ``target`` again and merge the change since the recorded base into ``folder``, keeping hand edits."""
    from scaffold.plan.generate import new_arch

    folder = Path(folder).resolve()
    base: dict[str, str] = answers[BASE_KEY]
    with tempfile.TemporaryDirectory(prefix="scaffold-update-") as tmp:
        scratch = Path(tmp)
        fresh = scratch / "fresh" / folder.name
        new_arch(target, folder, group_size=int(answers.get("group_size", 128)), write_to=fresh)
        new_files = read_files(fresh)
        template = _template_repo(scratch / "template", base, new_files)
        work = _work_copy(scratch / "work", folder, template)
        _run_copier_update(work, conflict)
        result = UpdateResult(folder=folder)
        _drop_obsolete(work, base, new_files, result)
        _write_back(work, folder, result)
        (folder / ANSWERS_FILE).write_text((fresh / ANSWERS_FILE).read_text(encoding="utf-8"), encoding="utf-8")
    result.todos = find_todos(folder)
    return result


def _git(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(["git", *GIT_USER, *args], cwd=cwd, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise ScaffoldError(f"git {args[0]} failed in {cwd}: {done.stderr.strip()[:300]}", "update")
    return done


def _write_files(folder: Path, files: dict[str, str]) -> None:
    for relative, text in files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def _template_repo(repo: Path, base: dict[str, str], new_files: dict[str, str]) -> Path:
    """A copier template of plain files: tag ``1`` holds the base, tag ``2`` the files rendered now."""
    repo.mkdir(parents=True)
    _git(repo, "init", "--quiet")
    config = f"_answers_file: {ANSWERS_FILE}\n_templates_suffix: {TEMPLATE_SUFFIX}\n"
    for tag, files in ((OLD_TAG, base), (NEW_TAG, new_files)):
        for child in repo.iterdir():
            if child.name != ".git":
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        (repo / "copier.yml").write_text(config, encoding="utf-8")
        answers_template = "{{ _copier_conf.answers_file }}" + TEMPLATE_SUFFIX
        (repo / answers_template).write_text("{{ _copier_answers|to_nice_yaml -}}\n", encoding="utf-8")
        _write_files(repo, files)
        _git(repo, "add", "--all")
        _git(repo, "commit", "--quiet", "--allow-empty", "-m", f"version {tag}")
        _git(repo, "tag", tag)
    return repo


def _work_copy(work: Path, folder: Path, template: Path) -> Path:
    """A git repository holding DIR's tracked files, its answers pointing at the temporary template."""
    work.mkdir(parents=True)
    tracked = _git(folder, "ls-files", "-z", "--", ".").stdout.split("\0")
    for relative in filter(None, tracked):
        if Path(relative).name == ANSWERS_FILE and Path(relative).parent == Path("."):
            continue
        target = work / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(folder / relative, target)
    (work / ANSWERS_FILE).write_text(f"_commit: '{OLD_TAG}'\n_src_path: {template.as_posix()}\n", encoding="utf-8")
    _git(work, "init", "--quiet")
    _git(work, "add", "--all")
    _git(work, "commit", "--quiet", "-m", "adaptation as found")
    return work


def _run_copier_update(work: Path, conflict: str) -> None:
    import copier

    try:
        copier.run_update(
            str(work),
            vcs_ref=NEW_TAG,
            defaults=True,
            overwrite=True,
            quiet=True,
            conflict=conflict,
            unsafe=False,
            skip_tasks=True,
        )
    except Exception as exc:  # noqa: BLE001 - one line for the user
        raise ScaffoldError(f"copier update failed: {type(exc).__name__}: {exc}", "update") from exc


def _drop_obsolete(work: Path, base: dict[str, str], new_files: dict[str, str], result: UpdateResult) -> None:
    """A file the tool no longer generates goes, unless it was edited by hand (then it stays, and is listed)."""
    for relative in sorted(set(base) - set(new_files)):
        path = work / relative
        if not path.is_file():
            continue
        if path.read_text(encoding="utf-8") == base[relative]:
            path.unlink()
        else:
            result.kept.append(relative)


def _write_back(work: Path, folder: Path, result: UpdateResult) -> None:
    """Copy the merged files into DIR: changed and new files written, removed ones deleted."""
    merged = {p.relative_to(work).as_posix() for p in work.rglob("*") if p.is_file() and ".git" not in p.parts}
    merged.discard(ANSWERS_FILE)
    before = set(filter(None, _git(folder, "ls-files", "-z", "--", ".").stdout.split("\0")))
    before.discard(ANSWERS_FILE)
    for relative in sorted(merged):
        source, target = work / relative, folder / relative
        text = source.read_bytes()
        if target.is_file() and target.read_bytes() == text:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(text)
        result.changed.append(relative)
        if relative.endswith(".rej") or any(
            line.startswith(CONFLICT_MARK) for line in text.decode("utf-8", "replace").splitlines()
        ):
            result.conflicts.append(relative)
    for relative in sorted(before - merged):
        (folder / relative).unlink(missing_ok=True)
        result.changed.append(relative)
