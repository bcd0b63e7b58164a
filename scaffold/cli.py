"""The ``scaffold`` command line (typer + rich). Each command is a thin shell over one stage."""

from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from scaffold.errors import ScaffoldError

app = typer.Typer(
    help="Make a new LLM architecture work with Intel's AutoRound quantizer.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

TargetArg = Annotated[str, typer.Argument(help="transformers:<model_type>, a local model folder, or a Hub id.")]
TrustOpt = Annotated[bool, typer.Option("--trust-remote-code", help="Allow the target's remote code to run.")]
AllowFromOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--allow-remote-code-from",
        help="Another Hub repo or folder auto_map may load code from (repeatable; default: only the target).",
        envvar="SCAFFOLD_ALLOW_REMOTE_CODE_FROM",
        metavar="REPO",
    ),
]
RevisionOpt = Annotated[str | None, typer.Option("--revision", help="Hub revision (branch, tag or commit).")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Show the traceback of a load failure.")]


def user_errors(func):
    """Print a :class:`ScaffoldError` as one line and exit 2, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        try:
            return func(*args, **kwargs)
        except ScaffoldError as exc:
            if kwargs.get("verbose") and getattr(exc, "traceback_text", None):
                err_console.print(exc.traceback_text, markup=False, highlight=False)
            print(exc.one_line(), file=sys.stderr)
            raise typer.Exit(exc.exit_code) from None

    return wrapper


def _resolve(target: str, trust_remote_code: bool, revision: str | None, allow_from: list[str] | None = None):
    from scaffold.resolve.target import resolve_target

    return resolve_target(
        target, trust_remote_code=trust_remote_code, revision=revision, allow_remote_code_from=allow_from or ()
    )


@app.command()
@user_errors
def inspect(
    target: TargetArg,
    trust_remote_code: TrustOpt = False,
    allow_from: AllowFromOpt = None,
    revision: RevisionOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the versioned JSON report.")] = False,
    static: Annotated[bool, typer.Option("--static", help="Skip dynamic probes on the tiny instance.")] = False,
    group_size: Annotated[int, typer.Option("--group-size", help="Quantization group size to check.")] = 128,
    verbose: VerboseOpt = False,
) -> None:
    """Diagnose why AutoRound would fail on TARGET (exit 0: nothing to fix, 1: findings, 3: inconclusive)."""
    resolved = _resolve(target, trust_remote_code, revision, allow_from)
    from scaffold.inspection.report_view import print_report
    from scaffold.inspection.stage import inspect_target

    report = inspect_target(resolved, group_size=group_size, dynamic=not static)
    if as_json:
        from scaffold.measure.precision import host_precision

        print(json.dumps({**report.to_json(), "host": host_precision().to_json()}, indent=2))
    else:
        print_report(report, console)
    raise typer.Exit(inspect_exit_code(report))


def inspect_exit_code(report) -> int:
    """0: nothing to fix; 1: findings; 3: inconclusive (no finding, but the tiny instance for the probes failed)."""
    if report.problems:
        return 1
    return 3 if report.inconclusive else 0


@app.command()
@user_errors
def tiny(
    target: TargetArg,
    out: Annotated[Path, typer.Option("--out", help="Folder to save the tiny model, tokenizer and texts.")],
    trust_remote_code: TrustOpt = False,
    allow_from: AllowFromOpt = None,
    revision: RevisionOpt = None,
    layers: Annotated[int, typer.Option("--layers", help="Number of blocks per stack.")] = 2,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    verbose: VerboseOpt = False,
) -> None:
    """Build a tiny random instance of TARGET, check it forwards, and save it to --out."""
    from scaffold.tiny import build_tiny, save_tiny

    resolved = _resolve(target, trust_remote_code, revision, allow_from)
    result = build_tiny(resolved.config, trust_remote_code=resolved.trust_remote_code, layers=layers, seed=seed)
    save_tiny(result, out)
    info = result.describe()
    console.print(
        f"[green]tiny {resolved.model_type}[/green] ({info['model_class']}, {info['parameters']:,} parameters, "
        f"strategy {info['strategy']}) saved to {out}"
    )


def main() -> None:  # pragma: no cover - console entry point
    app()


@app.command()
@user_errors
def verify(
    target: TargetArg,
    trust_remote_code: TrustOpt = False,
    allow_from: AllowFromOpt = None,
    revision: RevisionOpt = None,
    generated: Annotated[
        Path | None, typer.Option("--generated", help="Folder written by new-arch (default generated/<type>).")
    ] = None,
    autoround: Annotated[
        Path | None, typer.Option("--autoround", help="Verify through this patched AutoRound checkout.")
    ] = None,
    real: Annotated[bool, typer.Option("--real", help="Run on the real checkpoint (needs a GPU).")] = False,
    verbose: VerboseOpt = False,
) -> None:
    """Run the generated test for TARGET and print a short verdict (exit 0 when it passes)."""
    from rich.table import Table

    from scaffold.measure.verify import run_generated_test

    resolved = _resolve(target, trust_remote_code, revision, allow_from)
    folder = generated or Path("generated") / resolved.slug
    verdict = run_generated_test(folder, checkout=autoround, real=real, allow_remote_code_from=allow_from)
    table = Table(title=f"verify {resolved.model_type} ({'checkout' if autoround else 'plugin'})")
    table.add_column("check")
    table.add_column("result")
    table.add_row("generated test", "[green]passed[/green]" if verdict.passed else "[red]failed[/red]")
    for key, value in verdict.data.items():
        table.add_row(key.replace("_", " "), str(value))
    console.print(table)
    if verdict.problem:
        print(verdict.problem, file=sys.stderr)
    elif not verdict.passed:
        console.print(verdict.output_tail, markup=False, highlight=False)
    raise typer.Exit(0 if verdict.passed else 1)


@app.command()
@user_errors
def patch(
    generated_dir: Annotated[Path, typer.Argument(help="Folder with the edits.json written by new-arch.")],
    autoround: Annotated[Path, typer.Option("--autoround", help="AutoRound source checkout to patch.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", "--diff", help="Show the diff, write nothing.")] = False,
    check: Annotated[bool, typer.Option("--check", help="Exit 1 when the checkout lacks some change.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace entries that differ from the plan.")] = False,
    allow_dirty: Annotated[bool, typer.Option("--allow-dirty", help="Patch a tree with uncommitted changes.")] = False,
) -> None:
    """Apply GENERATED_DIR/edits.json to an AutoRound checkout (all or nothing) and save autoround.patch."""
    from scaffold.patch import load_plan, run_patch

    plan = load_plan(generated_dir)
    code = run_patch(
        plan,
        autoround,
        dry_run=dry_run,
        check=check,
        force=force,
        allow_dirty=allow_dirty,
        patch_dir=None if check else generated_dir if generated_dir.is_dir() else generated_dir.parent,
        console=console,
    )
    raise typer.Exit(code)


@app.command("new-arch")
@user_errors
def new_arch(
    target: TargetArg,
    out: Annotated[Path | None, typer.Option("--out", help="Output folder (default generated/<type>).")] = None,
    trust_remote_code: TrustOpt = False,
    allow_from: AllowFromOpt = None,
    revision: RevisionOpt = None,
    group_size: Annotated[int, typer.Option("--group-size", help="Quantization group size to check.")] = 128,
    autoround: Annotated[
        Path | None, typer.Option("--autoround", help="Also patch this AutoRound checkout (saves autoround.patch).")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Render and show the summary, write nothing.")] = False,
    check: Annotated[bool, typer.Option("--check", help="Exit 1 if the --autoround checkout lacks a change.")] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an output folder new-arch wrote / conflicting entries.")
    ] = False,
    allow_dirty: Annotated[bool, typer.Option("--allow-dirty", help="Patch a tree with uncommitted changes.")] = False,
    verbose: VerboseOpt = False,
) -> None:
    """Generate the AutoRound adaptation of TARGET: plugin, checkout edits, REPORT.md and a test."""
    from rich.table import Table

    from scaffold.plan.generate import new_arch as run_new_arch

    resolved = _resolve(target, trust_remote_code, revision, allow_from)
    result = run_new_arch(
        resolved,
        out,
        group_size=group_size,
        autoround=autoround,
        dry_run=dry_run,
        check=check,
        force=force,
        allow_dirty=allow_dirty,
    )
    table = Table(title=f"new-arch {resolved.model_type} ({result.report.model_class})")
    for column in ("finding", "severity", "generated", "to do by hand"):
        table.add_column(column)
    for index, finding in enumerate(result.report.findings):
        if index in result.items:
            generated = sum(len(item.generated) for item in result.items[index])
            todos = sum(len(item.todos) for item in result.items[index])
            table.add_row(finding.mode.value, finding.severity.value, str(generated), str(todos))
    if not result.report.problems:
        table.add_row("-", "ok", "nothing to generate", "-")
    console.print(table)
    where = "would be written to" if dry_run or check else "written to"
    console.print(f"{len(result.rendered.files)} files {where} {result.rendered.out}")
    if result.prediction:
        console.print(
            f"predicted on the tiny instance: {result.prediction['layers']} packed layers, "
            f"{result.prediction['block_share']:.1%} of block weights"
        )
    _print_todos(result.rendered.todos)
    for note in result.notes:
        console.print(f"note: {note}", highlight=False)
    if result.patch is not None:
        written = len(getattr(result.patch, "written", []) or [])
        console.print(f"AutoRound checkout {autoround}: {written} files written" if written else "checkout unchanged")
        if check and result.patch.pending:
            raise typer.Exit(1)
    if result.rendered.todos:  # a skeleton is not an adaptation yet
        raise typer.Exit(1)


@app.command()
@user_errors
def update(
    folder: Annotated[Path, typer.Argument(help="A folder `scaffold new-arch` wrote, tracked by git and committed.")],
    trust_remote_code: TrustOpt = False,
    allow_from: AllowFromOpt = None,
    revision: RevisionOpt = None,
    conflict: Annotated[
        str, typer.Option("--conflict", help="How a conflict is shown: inline (merge markers) or rej (.rej files).")
    ] = "inline",
    verbose: VerboseOpt = False,
) -> None:
    """Render FOLDER again with the current tool, auto-round and transformers, keeping hand edits (3-way merge).

    Exit 0: updated; 1: conflicts or TODO(scaffold) items remain; 2: bad input.
    """
    from scaffold.render.update import read_answers, require_clean_git, target_spec, update_adaptation

    if conflict not in ("inline", "rej"):
        raise ScaffoldError(f"--conflict must be inline or rej, not {conflict!r}", "update")
    answers = read_answers(folder)
    if answers.get("trust_remote_code") and not trust_remote_code:
        raise ScaffoldError(
            f"{folder} was generated from remote code", "update", hint="pass --trust-remote-code to run it again"
        )
    require_clean_git(folder)
    resolved = _resolve(target_spec(folder, answers), trust_remote_code, revision, allow_from)
    result = update_adaptation(folder, resolved, answers, conflict=conflict)
    for path in result.changed:
        console.print(f"updated {path}", highlight=False, soft_wrap=True)
    for path in result.kept:
        console.print(f"kept {path}: no longer generated, but edited by hand", highlight=False, soft_wrap=True)
    if not result.changed:
        console.print(f"{folder}: already up to date", highlight=False, soft_wrap=True)
    for path in result.conflicts:
        console.print(f"[red]conflict[/red] {path}: resolve it by hand", highlight=False, soft_wrap=True)
    _print_todos(result.todos)
    if result.conflicts or result.todos:
        raise typer.Exit(1)


def _print_todos(todos) -> None:
    """The REPORT.md checklist on the terminal, then how many are left."""
    from scaffold.render.folder import todo_line

    for todo in todos:
        console.print(f"[yellow]TODO(scaffold)[/yellow] {todo_line(todo)}", highlight=False, soft_wrap=True)
    if todos:
        console.print(f"{len(todos)} to do by hand (REPORT.md checklist): finish them, then `scaffold verify`")


@app.command()
@user_errors
def survey(
    types: Annotated[str, typer.Option("--types", help="Comma-separated model types, e.g. llama,bloom.")] = "",
    all_causal_lm: Annotated[
        bool, typer.Option("--all-causal-lm", help="Every model type transformers maps to a causal LM.")
    ] = False,
    jobs: Annotated[int, typer.Option("--jobs", help="Worker subprocesses run in parallel.")] = 1,
    out: Annotated[Path, typer.Option("--out", help="Folder for results.jsonl, SURVEY.md, survey.html.")] = Path(
        "generated/survey"
    ),
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds per model type, all stages.")] = 600.0,
    no_fix: Annotated[bool, typer.Option("--no-fix", help="Skip new-arch + verify on failing types.")] = False,
) -> None:
    """Survey stock AutoRound (and the scaffold's fix) on tiny instances of many model types."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from scaffold.survey import SurveyOptions, latest_rows, read_rows, run_survey, select_types, summarize
    from scaffold.survey.render import write_outputs
    from scaffold.survey.runner import RESULTS, current_versions, pending_types

    chosen = select_types([name.strip() for name in types.split(",") if name.strip()], all_causal_lm)
    versions = current_versions()  # every row of this run is keyed on these, the tool's commit among them
    options = SurveyOptions(out=out, jobs=jobs, timeout=timeout, fix=not no_fix, versions=versions)
    todo = pending_types(chosen, out / RESULTS, versions, options.fix)
    if len(todo) < len(chosen):
        console.print(f"resuming: {len(chosen) - len(todo)} of {len(chosen)} types already in {out / RESULTS}")
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("survey", total=len(todo))

        def on_row(row) -> None:
            progress.console.print(f"{row.model_type}: stock {row.stock}, after scaffold {row.after_scaffold}")
            progress.advance(task)

        run_survey(chosen, options, on_row=on_row)
    rows = latest_rows(read_rows(out / RESULTS), versions)  # every type surveyed into --out with these versions
    write_outputs(out, rows, versions)
    console.print(summarize(rows).line(), highlight=False)


dev_app = typer.Typer(help="Develop autoround-scaffold itself (in a source checkout).", no_args_is_help=True)
app.add_typer(dev_app, name="dev")


@dev_app.command("add-mode")
@user_errors
def add_mode(name: Annotated[str, typer.Argument(help="The new failure mode, lower_snake_case.")]) -> None:
    """Write a new failure mode's skeleton (package, templates, tests) and register it (docs/adding-a-mode.md)."""
    from scaffold.dev.add_mode import add_mode as write_skeleton
    from scaffold.dev.add_mode import source_root

    root = source_root()
    for path in write_skeleton(name, root):
        console.print(f"wrote {path.relative_to(root)}", highlight=False)
    console.print("next: fill every TODO(scaffold): marker, then `python -m pytest tests/modes -q`", highlight=False)
