"""The patcher against a real AutoRound source tree (the sdist of the installed version, as a git repo)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from scaffold.cli import app
from scaffold.errors import ScaffoldError
from scaffold.patch import (
    APPLIED,
    CONFLICT,
    PRESENT,
    REPLACED,
    SKIPPED,
    apply_plan,
    load_plan,
    plan_from_json,
    plan_to_json,
    run_patch,
    save_plan,
    write_patch,
)
from scaffold.plan.model import (
    REPLACE_MODULES,
    SPECIAL_MODEL_HANDLER,
    UTILS_COMMON,
    DictEntry,
    GeneratedFile,
    HandlerBranch,
    IgnoreRule,
    Plan,
    SequenceItem,
    TopLevelFunction,
)
from tests.conftest_patch import AUTOROUND_VERSION, commit_all, git

UTILS_MODEL = "auto_round/utils/model.py"
REPLACEMENT = "auto_round/modeling/fused_moe/tiny_moe.py"
BLOCK_FUNCTION = '''def _get_tiny_moe_multimodal_block(model, quant_vision=False):
    """Block names of the tiny_moe text stack."""
    return [[f"model.layers.{i}" for i in range(len(model.model.layers))]]
'''
IGNORE_FUNCTION = 'def _tiny_moe_ignore_layers(model):\n    return ["lm_head"]\n'
PATCH_FUNCTION = (
    'def _patch_tiny_moe(model):\n    """Mark the model as patched."""\n    model.tiny_moe_patched = True\n'
)
REPLACEMENT_CODE = '''"""Unfused experts for tiny_moe (generated)."""

from auto_round.modeling.fused_moe.replace_modules import ReplacementModuleBase  # noqa: F401
'''


def full_plan() -> Plan:
    """A plan with every edit kind, touching every registry the patcher knows."""
    return Plan(
        model_type="tiny_moe",
        model_class="TinyMoeForCausalLM",
        files=[GeneratedFile(REPLACEMENT, REPLACEMENT_CODE)],
        edits=[
            DictEntry(
                REPLACE_MODULES, "BUILTIN_MODULES", "tiny_moe", 'LazyImport("auto_round.modeling.fused_moe.tiny_moe")'
            ),
            SequenceItem(UTILS_COMMON, "INNER_SUPPORTED_LAYER_TYPES", "TinyLinear"),
            SequenceItem(UTILS_MODEL, "_LLM_ONLY_MODEL_TYPES", "tiny_moe"),
            SequenceItem(SPECIAL_MODEL_HANDLER, "mllms_with_limited_bs", "tiny_moe"),
            SequenceItem(SPECIAL_MODEL_HANDLER, "SUPPORT_ONLY_TEXT_MODELS", "tiny_moe"),
            TopLevelFunction(
                SPECIAL_MODEL_HANDLER,
                "_get_tiny_moe_multimodal_block",
                BLOCK_FUNCTION,
                before="SPECIAL_MULTIMODAL_BLOCK",
            ),
            DictEntry(SPECIAL_MODEL_HANDLER, "SPECIAL_MULTIMODAL_BLOCK", "tiny_moe", "_get_tiny_moe_multimodal_block"),
            DictEntry(SPECIAL_MODEL_HANDLER, "SPECIAL_SHARED_CACHE_KEYS", "TinyMoeForCausalLM", '("router_bias",)'),
            TopLevelFunction(SPECIAL_MODEL_HANDLER, "_tiny_moe_ignore_layers", IGNORE_FUNCTION),
            TopLevelFunction(SPECIAL_MODEL_HANDLER, "_patch_tiny_moe", PATCH_FUNCTION, before="_handle_special_model"),
            HandlerBranch(
                SPECIAL_MODEL_HANDLER,
                "_handle_special_model",
                "tiny_moe",
                "from functools import partial\n\n_patch_tiny_moe(model)\nmodel.forward = partial(model.forward)\n",
            ),
            IgnoreRule(
                SPECIAL_MODEL_HANDLER,
                "tiny_moe",
                'register_ignore_layers(\n    matchers=[ModelTypeMatcher(r"tiny_moe", mode="full")],\n'
                '    ignore_layers=["mlp.gate", _tiny_moe_ignore_layers],\n)',
            ),
        ],
    )


def small_plan() -> Plan:
    """A new file and one registry entry in the smallest registry file (for tests about the workflow)."""
    builtin = DictEntry(
        REPLACE_MODULES, "BUILTIN_MODULES", "tiny_moe", 'LazyImport("auto_round.modeling.fused_moe.tiny_moe")'
    )
    return Plan("tiny_moe", "TinyMoeForCausalLM", files=[GeneratedFile(REPLACEMENT, REPLACEMENT_CODE)], edits=[builtin])


def module_of(checkout: Path, relative: str) -> ast.Module:
    return ast.parse((checkout / relative).read_text(encoding="utf-8"))


def assigned(tree: ast.Module, name: str) -> ast.expr:
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                return node.value
    raise AssertionError(f"{name} not assigned")


def dict_keys(tree: ast.Module, name: str) -> list:
    return [ast.literal_eval(key) for key in assigned(tree, name).keys]


def top_index(tree: ast.Module, predicate) -> int:
    return next(i for i, node in enumerate(tree.body) if predicate(node))


def test_apply_writes_every_edit_kind(autoround_checkout: Path) -> None:
    plan = full_plan()
    result = apply_plan(plan, autoround_checkout)

    assert result.autoround_version == AUTOROUND_VERSION
    assert [s.status for s in result.statuses if s.kind != "readme"] == [APPLIED] * (len(plan.edits) + 1)
    assert set(result.written) == {REPLACEMENT, REPLACE_MODULES, UTILS_COMMON, UTILS_MODEL, SPECIAL_MODEL_HANDLER}
    assert (autoround_checkout / REPLACEMENT).read_text() == REPLACEMENT_CODE

    builtin = dict_keys(module_of(autoround_checkout, REPLACE_MODULES), "BUILTIN_MODULES")
    assert builtin[-1] == "tiny_moe" and builtin[:-1] == ["llama4", "deepseek_v2", "qwen3_5_moe"] + builtin[3:-1]
    common = module_of(autoround_checkout, UTILS_COMMON)
    assert ast.literal_eval(assigned(common, "INNER_SUPPORTED_LAYER_TYPES")) == (
        "FP8Linear",
        "CompressedLinear",
        "TinyLinear",
    )
    assert ast.literal_eval(assigned(module_of(autoround_checkout, UTILS_MODEL), "_LLM_ONLY_MODEL_TYPES")) == {
        "bagel",
        "tiny_moe",
    }

    handler = module_of(autoround_checkout, SPECIAL_MODEL_HANDLER)
    assert ast.literal_eval(assigned(handler, "mllms_with_limited_bs"))[-1] == "tiny_moe"
    assert ast.literal_eval(assigned(handler, "SUPPORT_ONLY_TEXT_MODELS"))[-1] == "tiny_moe"
    assert dict_keys(handler, "SPECIAL_SHARED_CACHE_KEYS") == ["Gemma3ForConditionalGeneration", "TinyMoeForCausalLM"]
    assert dict_keys(handler, "SPECIAL_MULTIMODAL_BLOCK")[-1] == "tiny_moe"
    function_at = top_index(handler, lambda n: getattr(n, "name", None) == "_get_tiny_moe_multimodal_block")
    registry_at = top_index(
        handler, lambda n: isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "SPECIAL_MULTIMODAL_BLOCK"
    )
    assert function_at == registry_at - 1
    patch_at = top_index(handler, lambda n: getattr(n, "name", None) == "_patch_tiny_moe")
    assert patch_at == top_index(handler, lambda n: getattr(n, "name", None) == "_handle_special_model") - 1
    ignore_at = top_index(handler, lambda n: getattr(n, "name", None) == "_tiny_moe_ignore_layers")
    assert "tiny_moe" in ast.unparse(handler.body[ignore_at + 1])  # the rule that uses it comes right after

    text = (autoround_checkout / SPECIAL_MODEL_HANDLER).read_text()
    branch = (
        '    if model_type == "tiny_moe":\n        from functools import partial\n\n        _patch_tiny_moe(model)\n'
    )
    assert branch in text
    assert text.index(branch) < text.index("    return model\n\n\ndef update_module(")
    rule = text.index('ModelTypeMatcher(r"tiny_moe"')
    assert text.rindex('ModelTypeMatcher(r"bagel"') < rule < text.index("def get_predefined_ignore_layers")
    assert git(autoround_checkout, "status", "--porcelain", "--untracked-files=no").count("\n") == 4


def test_second_run_changes_nothing(autoround_checkout: Path) -> None:
    apply_plan(full_plan(), autoround_checkout)
    commit_all(autoround_checkout, "patched")

    again = apply_plan(full_plan(), autoround_checkout)

    assert again.diff == "" and again.written == [] and not again.pending
    assert {s.status for s in again.statuses if s.kind != "readme"} == {PRESENT}
    assert all(s.line for s in again.statuses if s.kind != "readme")
    assert git(autoround_checkout, "status", "--porcelain") == ""


def test_conflicting_value_is_reported_and_nothing_written(autoround_checkout: Path) -> None:
    source = (autoround_checkout / REPLACE_MODULES).read_text()
    llama4_line = source.splitlines().index('    "llama4": LazyImport("auto_round.modeling.fused_moe.llama4"),') + 1
    plan = small_plan()
    plan.edits.append(DictEntry(REPLACE_MODULES, "BUILTIN_MODULES", "llama4", 'LazyImport("elsewhere")'))

    result = apply_plan(plan, autoround_checkout)

    (conflict,) = result.conflicts
    assert conflict.where == f"{REPLACE_MODULES}:{llama4_line}"
    assert result.blocked and result.written == []
    assert git(autoround_checkout, "status", "--porcelain") == ""
    with pytest.raises(ScaffoldError, match=f"{REPLACE_MODULES}:{llama4_line}") as info:
        run_patch(plan, autoround_checkout)
    assert info.value.stage == "patch"

    forced = apply_plan(plan, autoround_checkout, force=True)
    assert [s.target for s in forced.statuses if s.status == REPLACED] == ["BUILTIN_MODULES['llama4']"]
    tree = module_of(autoround_checkout, REPLACE_MODULES)
    values = dict(zip(dict_keys(tree, "BUILTIN_MODULES"), assigned(tree, "BUILTIN_MODULES").values, strict=True))
    assert ast.unparse(values["llama4"]) == "LazyImport('elsewhere')"


def test_conflicting_subscript_statement_entry(autoround_checkout: Path) -> None:
    source = (autoround_checkout / SPECIAL_MODEL_HANDLER).read_text()
    line = source.splitlines().index('SPECIAL_SHARED_CACHE_KEYS["MiniMaxText01ForCausalLM"] = ("slope_rate",)') + 1
    same = DictEntry(SPECIAL_MODEL_HANDLER, "SPECIAL_SHARED_CACHE_KEYS", "MiniMaxText01ForCausalLM", "('slope_rate', )")
    other = DictEntry(SPECIAL_MODEL_HANDLER, "SPECIAL_SHARED_CACHE_KEYS", "MiniMaxText01ForCausalLM", '("slope",)')

    present = apply_plan(Plan("m", "M", edits=[same]), autoround_checkout, readme=False)
    conflict = apply_plan(Plan("m", "M", edits=[other]), autoround_checkout, readme=False)

    assert [(s.status, s.line) for s in present.statuses] == [(PRESENT, line)]
    assert [(s.status, s.line) for s in conflict.statuses] == [(CONFLICT, line)]


def test_existing_branch_found_inside_and_or(autoround_checkout: Path) -> None:
    body = "_attach_gemma4_unified_rotary_emb(model)\n"
    plan = Plan(
        "gemma4_unified",
        "X",
        edits=[HandlerBranch(SPECIAL_MODEL_HANDLER, "_handle_special_model", "gemma4_unified", body)],
    )

    result = apply_plan(plan, autoround_checkout, readme=False)

    assert [s.status for s in result.statuses] == [PRESENT] and result.diff == ""


def test_dirty_tree_is_refused_unless_allowed(autoround_checkout: Path) -> None:
    readme = autoround_checkout / "README.md"
    readme.write_text(readme.read_text() + "\nlocal note\n")

    with pytest.raises(ScaffoldError, match="uncommitted changes") as info:
        apply_plan(small_plan(), autoround_checkout)
    assert info.value.stage == "patch"
    assert not (autoround_checkout / REPLACEMENT).exists()

    assert apply_plan(small_plan(), autoround_checkout, dry_run=True).written == []
    assert REPLACEMENT in apply_plan(small_plan(), autoround_checkout, allow_dirty=True).written


def test_missing_registry_names_registry_file_and_version(autoround_checkout: Path) -> None:
    path = autoround_checkout / REPLACE_MODULES
    path.write_text(path.read_text().replace("BUILTIN_MODULES", "BUILTIN_REPLACEMENTS"))
    commit_all(autoround_checkout, "rename the registry")

    with pytest.raises(ScaffoldError) as info:
        apply_plan(small_plan(), autoround_checkout)

    message = info.value.one_line()
    assert "BUILTIN_MODULES" in message and REPLACE_MODULES in message and AUTOROUND_VERSION in message
    assert git(autoround_checkout, "status", "--porcelain") == ""


def test_failed_write_leaves_checkout_untouched(autoround_checkout: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import scaffold.patch.apply as apply_module

    real_replace = apply_module.os.replace
    calls: list[str] = []

    def replace_then_fail(source, target):
        calls.append(str(target))
        if len(calls) == 2:
            raise OSError("disk full")
        real_replace(source, target)

    monkeypatch.setattr(apply_module.os, "replace", replace_then_fail)
    with pytest.raises(ScaffoldError, match="nothing was changed: disk full"):
        apply_plan(small_plan(), autoround_checkout)

    assert len(calls) == 2
    assert git(autoround_checkout, "status", "--porcelain", "--untracked-files=all") == ""


def test_saved_patch_applies_with_git_apply(autoround_checkout: Path, tmp_path: Path) -> None:
    plan = full_plan()
    dry = apply_plan(plan, autoround_checkout, dry_run=True)
    patch = write_patch(dry, tmp_path / "generated")
    assert dry.written == [] and git(autoround_checkout, "status", "--porcelain") == ""

    git(autoround_checkout, "apply", "--check", str(patch))
    git(autoround_checkout, "apply", str(patch))

    assert apply_plan(plan, autoround_checkout, allow_dirty=True).diff == ""
    assert (autoround_checkout / REPLACEMENT).read_text() == REPLACEMENT_CODE


def test_check_mode_reports_pending_changes(autoround_checkout: Path) -> None:
    assert run_patch(small_plan(), autoround_checkout, check=True) == 1
    assert git(autoround_checkout, "status", "--porcelain") == ""
    assert run_patch(small_plan(), autoround_checkout) == 0
    assert run_patch(small_plan(), autoround_checkout, check=True) == 0


def test_readme_row_added_to_supported_models_table(autoround_checkout: Path) -> None:
    plain = apply_plan(small_plan(), autoround_checkout, dry_run=True)
    assert [(s.file, s.status) for s in plain.statuses if s.kind == "readme"] == [("README.md", SKIPPED)]

    readme = autoround_checkout / "README.md"
    table = (
        "\n## Supported Models\n\n| Model | Architecture | Notes |\n|---|---|---|\n| `llama` | `LlamaForCausalLM` | |\n"
    )
    readme.write_text(readme.read_text() + table)
    commit_all(autoround_checkout, "add a table")

    apply_plan(small_plan(), autoround_checkout)
    lines = readme.read_text().splitlines()
    assert lines[-1] == "| `tiny_moe` | `TinyMoeForCausalLM` |  |"
    commit_all(autoround_checkout, "patched")
    again = apply_plan(small_plan(), autoround_checkout)
    assert [s.status for s in again.statuses if s.kind == "readme"] == [PRESENT] and again.diff == ""


def test_plan_json_round_trip(tmp_path: Path) -> None:
    plan = full_plan()
    data = json.loads(json.dumps(plan_to_json(plan)))

    assert plan_from_json(data) == plan
    assert load_plan(save_plan(plan, tmp_path)) == plan
    data["edits"][0]["added_later"] = "ignored by older readers"
    assert plan_from_json(data) == plan
    data["edits"][0]["kind"] = "rename"
    with pytest.raises(ScaffoldError, match="unknown edit kind 'rename'"):
        plan_from_json(data)


def test_cli_patch_command(autoround_checkout: Path, tmp_path: Path) -> None:
    generated = tmp_path / "generated" / "tiny_moe"
    generated.mkdir(parents=True)
    save_plan(small_plan(), generated)
    runner = CliRunner()
    args = ["patch", str(generated), "--autoround", str(autoround_checkout)]

    assert runner.invoke(app, [*args, "--check"]).exit_code == 1
    applied = runner.invoke(app, args)
    assert applied.exit_code == 0, applied.output
    assert (generated / "autoround.patch").is_file()
    assert runner.invoke(app, [*args, "--check"]).exit_code == 0

    missing = runner.invoke(app, ["patch", str(tmp_path), "--autoround", str(autoround_checkout)])
    assert missing.exit_code == 2


@pytest.mark.slow
def test_patched_autoround_imports_and_registers(autoround_checkout: Path) -> None:
    apply_plan(full_plan(), autoround_checkout)
    code = (
        "import sys\n"
        "import auto_round.special_model_handler as s, auto_round.modeling.fused_moe.replace_modules as r\n"
        "assert s.__file__.startswith(sys.argv[1])\n"
        "assert 'tiny_moe' in r.BUILTIN_MODULES and 'tiny_moe' in s.SPECIAL_MULTIMODAL_BLOCK\n"
        "assert s.SPECIAL_SHARED_CACHE_KEYS['TinyMoeForCausalLM'] == ('router_bias',)\n"
        "from types import SimpleNamespace as NS\n"
        "model = NS(config=NS(model_type='tiny_moe', architectures=['TinyMoeForCausalLM']), forward=print)\n"
        "assert s.get_predefined_ignore_layers(model) == ['mlp.gate', 'lm_head']\n"
        "assert s._handle_special_model(model).tiny_moe_patched\n"
        "assert any(getattr(m, 'model_type', '') == 'tiny_moe' for rule in s._PRE_DEFINED_IGNORE_LAYERS"
        " for m in rule.matchers)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(autoround_checkout)], cwd=autoround_checkout, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_installed_source_tree_is_a_checkout(tmp_path: Path) -> None:
    """The no-network fallback of conftest_patch: the installed package laid out as a patchable source tree."""
    import auto_round

    from scaffold.patch import read_autoround_version
    from tests.conftest_patch import installed_source_tree

    tree = installed_source_tree(tmp_path)
    installed = Path(auto_round.__file__).parent.parent
    assert read_autoround_version(tree) == AUTOROUND_VERSION
    for relative in (REPLACE_MODULES, SPECIAL_MODEL_HANDLER, UTILS_COMMON, UTILS_MODEL):
        assert (tree / relative).read_text() == (installed / relative).read_text()
    assert not list(tree.rglob("*.pyc")) and (tree / "README.md").read_text().strip()
    assert REPLACEMENT in apply_plan(full_plan(), tree, allow_dirty=True).written


def _set_version(checkout: Path, version: str | None) -> None:
    path = checkout / "auto_round" / "version.py"
    if version is None:
        path.unlink()
    else:
        path.write_text(f'__version__ = "{version}"\n')
    commit_all(checkout, f"version {version}")


@pytest.mark.parametrize("version, words", [("0.15.2", "is auto-round 0.15.2"), (None, "of unknown version")])
def test_checkout_outside_the_supported_range_is_refused_unless_forced(autoround_checkout: Path, version, words):
    from scaffold.patch import supported_range

    assert supported_range() == "<0.18,>=0.16"  # pyproject's auto-round requirement, read from the metadata
    _set_version(autoround_checkout, version)
    for kwargs in ({}, {"dry_run": True}, {"check": True}):
        with pytest.raises(ScaffoldError) as info:
            apply_plan(small_plan(), autoround_checkout, **kwargs)
        message = info.value.one_line()
        assert words in message and "outside the range this tool supports (auto-round<0.18,>=0.16)" in message
        assert "--force" in message
    assert git(autoround_checkout, "status", "--porcelain", "--untracked-files=all") == ""

    forced = apply_plan(small_plan(), autoround_checkout, force=True)
    assert REPLACEMENT in forced.written and "patched anyway (--force)" in forced.version_note


def test_cli_patch_refuses_an_unsupported_checkout_in_one_line(autoround_checkout: Path, tmp_path: Path) -> None:
    _set_version(autoround_checkout, "0.18.0")
    generated = tmp_path / "generated"
    save_plan(small_plan(), generated / "edits.json")
    result = CliRunner().invoke(app, ["patch", str(generated), "--autoround", str(autoround_checkout)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    (line,) = [line for line in result.output.splitlines() if line.strip()]
    assert "is auto-round 0.18.0, outside the range" in line
    assert not (generated / "autoround.patch").exists()
    forced = CliRunner().invoke(app, ["patch", str(generated), "--autoround", str(autoround_checkout), "--force"])
    assert forced.exit_code == 0 and "patched anyway (--force)" in forced.output


def test_edits_record_the_autoround_version_they_were_made_for(autoround_checkout: Path, tmp_path: Path) -> None:
    plan = small_plan()
    plan.autoround_version = "0.16.0"
    path = save_plan(plan, tmp_path / "edits.json")
    assert json.loads(path.read_text())["autoround_version"] == "0.16.0" and load_plan(path) == plan
    result = CliRunner().invoke(app, ["patch", str(path), "--autoround", str(autoround_checkout), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "the edits were made for auto-round 0.16.0" in result.output


def test_keyboard_interrupt_between_file_swaps_undoes_everything(autoround_checkout: Path, monkeypatch) -> None:
    import scaffold.patch.apply as apply_module

    new_folder_file = "auto_round/modeling/tiny_moe_pkg/__init__.py"  # its folder must disappear too
    plan = full_plan()
    plan.files.append(GeneratedFile(new_folder_file, '"""tiny_moe."""\n'))
    real_replace = apply_module.os.replace
    calls: list[str] = []

    def replace_then_interrupt(source, target):
        calls.append(str(target))
        if len(calls) == 3:
            raise KeyboardInterrupt
        real_replace(source, target)

    monkeypatch.setattr(apply_module.os, "replace", replace_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        apply_plan(plan, autoround_checkout)

    assert len(calls) == 3  # two files were swapped in before the interrupt
    assert git(autoround_checkout, "status", "--porcelain", "--untracked-files=all", "--ignored") == ""
    assert not (autoround_checkout / new_folder_file).parent.exists()


def test_interrupt_while_staging_leaves_no_temporary_file_nor_folder(autoround_checkout: Path, monkeypatch) -> None:
    import scaffold.patch.apply as apply_module

    plan = full_plan()
    plan.files.append(GeneratedFile("auto_round/modeling/tiny_moe_pkg/__init__.py", '"""tiny_moe."""\n'))
    real_copymode = apply_module.shutil.copymode
    calls: list[str] = []

    def copymode_then_interrupt(source, target):
        calls.append(str(target))
        if len(calls) == 2:  # after the new folder was made (files are staged in sorted order)
            raise KeyboardInterrupt
        real_copymode(source, target)

    monkeypatch.setattr(apply_module.shutil, "copymode", copymode_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        apply_plan(plan, autoround_checkout)
    assert "special_model_handler.py" in calls[-1]
    assert git(autoround_checkout, "status", "--porcelain", "--untracked-files=all", "--ignored") == ""
    assert not (autoround_checkout / "auto_round/modeling/tiny_moe_pkg").exists()


def test_untracked_file_at_a_target_path_is_dirty(autoround_checkout: Path) -> None:
    (autoround_checkout / "notes.txt").write_text("an untracked file elsewhere does not matter\n")
    untracked = autoround_checkout / REPLACEMENT
    untracked.write_text("# someone's own work, never committed\n")

    with pytest.raises(ScaffoldError, match=r"uncommitted changes \(auto_round/modeling/fused_moe/tiny_moe.py"):
        apply_plan(small_plan(), autoround_checkout, force=True)
    assert untracked.read_text() == "# someone's own work, never committed\n"

    untracked.unlink()
    assert REPLACEMENT in apply_plan(small_plan(), autoround_checkout).written
