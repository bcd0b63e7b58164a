"""Codemods on small sources: formatting variations (hypothesis), branch detection, insertion places."""

from __future__ import annotations

import ast
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scaffold.errors import ScaffoldError
from scaffold.patch.locate import Where
from scaffold.patch.outcome import APPLIED, CONFLICT, PRESENT, REPLACED
from scaffold.patch.source_edit import edit_source
from scaffold.plan.model import DictEntry, HandlerBranch, IgnoreRule, SequenceItem, TopLevelFunction

WHERE = Where("pkg/registry.py", "9.9.9")
PREFIX = "import os\n\n"
SUFFIX = "\n\ndef after():\n    return REG\n"
NAMES = st.text(alphabet="abcdefgh_", min_size=1, max_size=6)
COMMENTS = st.one_of(st.none(), st.text(alphabet="abc xyz", min_size=1, max_size=8).map(str.strip).filter(bool))


@st.composite
def registries(draw, kind: str):
    """Source of ``REG = <literal>`` in a random but valid layout, with its entries and comments.

    Layouts: one line; one entry per line (closing bracket on its own line, optional end-of-line and
    own-line comments); hanging (entries aligned under the first, closing bracket after the last).
    """
    keys = draw(st.lists(NAMES, min_size=1 if kind == "set" else 0, max_size=5, unique=True))
    quote = draw(st.sampled_from(["'", '"']))
    values = [draw(st.integers(0, 99)) for _ in keys]
    entries = [
        f"{quote}{k}{quote}: {v}" if kind == "dict" else f"{quote}{k}{quote}" for k, v in zip(keys, values, strict=True)
    ]
    shape = (
        draw(st.sampled_from(["line", "multi", "hanging"]))
        if len(keys) > 1
        else draw(st.sampled_from(["line", "multi"]))
    )
    shape = shape if keys else "line"
    trailing = (draw(st.booleans()) or kind == "tuple" and len(keys) == 1) and bool(keys)
    opening, closing = {"dict": "{}", "set": "{}", "list": "[]", "tuple": "()"}[kind]
    comments: list[str] = []
    attached: list[tuple[str, str]] = []  # (entry, its end-of-line comment)

    def comment(entry: str = "") -> str:
        text = draw(COMMENTS)
        comments.extend([text] if text else [])
        if text and entry:
            attached.append((entry, f"# {text}"))
        return f"  # {text}" if text else ""

    if shape == "multi":
        lines = [opening]
        for index, entry in enumerate(entries):
            if own_line := draw(COMMENTS):
                comments.append(own_line)
                lines.append(f"    # {own_line}")
            comma = "," if index < len(entries) - 1 or trailing else ""
            lines.append(f"    {entry}{comma}{comment(entry)}")
        if before_closing := draw(COMMENTS):
            comments.append(before_closing)
            lines.append(f"    # {before_closing}")
        literal = "\n".join(lines) + "\n" + closing
    elif shape == "hanging":
        lines = [f"{entry},{comment(entry)}" for entry in entries[:-1]]
        literal = opening + "\n       ".join([*lines, entries[-1] + ("," if trailing else "")]) + closing
    else:
        literal = opening + ", ".join(entries) + ("," if trailing else "") + closing
    tail = comment()
    code = f"{PREFIX}REG = {literal}{tail}\n{SUFFIX}"
    return Registry(code, keys, values, comments, attached, quote, shape)


@dataclass
class Registry:
    code: str
    keys: list[str]
    values: list[int]
    comments: list[str]
    attached: list[tuple[str, str]]
    quote: str
    shape: str

    def assert_comments_kept(self, new_code: str) -> None:
        assert all(f"# {comment}" in new_code for comment in self.comments)
        lines = new_code.splitlines()
        for entry, comment in self.attached:
            assert any(entry in line and line.endswith(comment) for line in lines), (entry, comment)


def registry_value(code: str) -> ast.expr:
    tree = ast.parse(code)
    return next(node.value for node in tree.body if isinstance(node, ast.Assign) and node.targets[0].id == "REG")


def assert_rest_kept(old: str, new: str) -> None:
    assert new.startswith(PREFIX) and new.endswith(SUFFIX)
    assert old.count("\n") < new.count("\n") or old.replace(" ", "") != new.replace(" ", "")


def assert_layout_kept(shape: str, code: str, new: str) -> None:
    """The new entry sits where the layout puts entries: own line, aligned line, or the same line."""
    statement = code[len(PREFIX) :].split("\n\n\ndef after")[0]
    if shape == "multi":
        assert f"\n    {new}" in statement
    elif shape == "hanging":
        assert f"\n       {new}" in statement
    else:
        assert "\n" not in statement.strip()


@settings(max_examples=40, deadline=None, database=None)
@given(registries("dict"), NAMES)
def test_dict_entry_keeps_entries_and_gains_one(registry, new_key) -> None:
    code, keys, values, quote, shape = registry.code, registry.keys, registry.values, registry.quote, registry.shape
    edit = DictEntry(WHERE.file, "REG", new_key, "len('x')")

    result = edit_source(code, [edit], WHERE)

    node = registry_value(result.code)
    if new_key in keys:
        assert result.statuses[0].status == CONFLICT and result.code == code
        return
    assert [ast.literal_eval(k) for k in node.keys] == [*keys, new_key]
    assert [ast.literal_eval(v) for v in node.values[:-1]] == values
    assert ast.unparse(node.values[-1]) == "len('x')"
    registry.assert_comments_kept(result.code)
    quote = quote if keys else '"'  # an empty literal shows no style: the default
    assert f"{quote}{new_key}{quote}: len('x')" in result.code
    assert_layout_kept(shape, result.code, f"{quote}{new_key}{quote}")
    assert_rest_kept(code, result.code)
    again = edit_source(result.code, [edit], WHERE)
    assert again.code == result.code and [s.status for s in again.statuses] == [PRESENT]


@settings(max_examples=40, deadline=None, database=None)
@given(
    st.sampled_from(["tuple", "list", "set"]).flatmap(lambda kind: st.tuples(st.just(kind), registries(kind))), NAMES
)
def test_sequence_item_keeps_items_and_gains_one(case, new_item) -> None:
    kind, registry = case
    code, items, quote, shape = registry.code, registry.keys, registry.quote, registry.shape
    edit = SequenceItem(WHERE.file, "REG", new_item)

    result = edit_source(code, [edit], WHERE)

    node = registry_value(result.code)
    assert type(node).__name__.lower() == kind
    expected = items if new_item in items else [*items, new_item]
    assert [ast.literal_eval(e) for e in node.elts] == expected
    registry.assert_comments_kept(result.code)
    if new_item in items:
        assert result.code == code and result.statuses[0].status == PRESENT
        return
    quote = quote if items else '"'
    assert f"{quote}{new_item}{quote}" in result.code
    assert_layout_kept(shape, result.code, f"{quote}{new_item}{quote}")
    assert_rest_kept(code, result.code)
    assert edit_source(result.code, [edit], WHERE).code == result.code


def test_single_line_singleton_tuple_loses_its_syntactic_comma() -> None:
    result = edit_source("REG = ('a',)\n", [SequenceItem(WHERE.file, "REG", "b")], WHERE)
    assert result.code == "REG = ('a', 'b')\n"


def test_multiline_literal_keeps_comment_on_last_entry_and_style() -> None:
    code = 'REG = {\n    "a": 1,  # first\n    "b": 2  # second\n}\n'
    result = edit_source(code, [DictEntry(WHERE.file, "REG", "c", "3")], WHERE)
    assert result.code == 'REG = {\n    "a": 1,  # first\n    "b": 2,  # second\n    "c": 3\n}\n'


def test_subscript_statements_count_and_extend_registries_without_literal() -> None:
    code = 'REG = make()\nREG["a"] = 1\nif flag:\n    REG["b"] = 2\nREG["c"] = 3\n\nx = 1\n'
    present = edit_source(code, [DictEntry(WHERE.file, "REG", "b", "2")], WHERE)
    added = edit_source(code, [DictEntry(WHERE.file, "REG", "d", "[4]")], WHERE)

    assert [s.status for s in present.statuses] == [PRESENT] and present.statuses[0].line == 4
    assert added.code == code.replace('REG["c"] = 3\n', 'REG["c"] = 3\nREG["d"] = [4]\n')


def test_missing_registry_names_registry_file_and_version() -> None:
    with pytest.raises(ScaffoldError, match=r"OTHER.*pkg/registry\.py.*9\.9\.9") as info:
        edit_source("REG = {}\n", [DictEntry(WHERE.file, "OTHER", "a", "1")], WHERE)
    assert info.value.stage == "patch"
    with pytest.raises(ScaffoldError, match="tuple/list/set literal REG"):
        edit_source("REG = {}\n", [SequenceItem(WHERE.file, "REG", "a")], WHERE)


HANDLER = """def handle(model):
    model_type = model.config.model_type
    if model_type in ("alpha", "beta"):
        model.a = 1
    if hasattr(model, "x") and (model_type == 'gamma' or model_type == "delta"):
        model.b = 2
    return model
"""


@pytest.mark.parametrize("model_type", ["alpha", "beta", "gamma", "delta"])
def test_branch_found_inside_in_tuples_and_boolean_operators(model_type: str) -> None:
    edit = HandlerBranch(WHERE.file, "handle", model_type, "model.c = 3")
    result = edit_source(HANDLER, [edit], WHERE)
    assert [s.status for s in result.statuses] == [CONFLICT] and result.code == HANDLER


def test_branch_appended_after_last_model_type_branch() -> None:
    edit = HandlerBranch(WHERE.file, "handle", "omega", "model.c = 3\n\nmodel.d = 4")
    result = edit_source(HANDLER, [edit], WHERE)
    branch = '    if model_type == "omega":\n        model.c = 3\n\n        model.d = 4\n    return model\n'
    assert result.code == HANDLER.replace("    return model\n", branch)


def test_function_inserted_before_registry_with_comments_kept_on_registry() -> None:
    code = "def a():\n    pass\n\n\n# the registry\nREG = {'a': a}\n"
    function = TopLevelFunction(WHERE.file, "b", "def b():\n    return 2\n", before="REG")
    entry = DictEntry(WHERE.file, "REG", "b", "b")

    result = edit_source(code, [function, entry], WHERE)

    expected = "def a():\n    pass\n\n\ndef b():\n    return 2\n\n\n# the registry\nREG = {'a': a, 'b': b}\n"
    assert result.code == expected
    assert [s.status for s in result.statuses] == [APPLIED, APPLIED]
    changed = TopLevelFunction(WHERE.file, "b", "def b():\n    return 3\n", before="REG")
    assert edit_source(result.code, [changed], WHERE).statuses[0].status == CONFLICT
    assert "return 3" in edit_source(result.code, [changed], WHERE, force=True).code


def test_ignore_rule_after_last_rule_and_detected_by_model_type() -> None:
    code = (
        "def register_ignore_layers(matchers, ignore_layers):\n    pass\n\n\n"
        'register_ignore_layers(matchers=[ModelTypeMatcher(r"a", mode="full")], ignore_layers=["x"])\n\n\n'
        "def later():\n    pass\n"
    )
    rule = IgnoreRule(WHERE.file, "b", "register_ignore_layers(matchers=[ModelTypeMatcher('b')], ignore_layers=['g'])")
    result = edit_source(code, [rule], WHERE)

    assert "ignore_layers=[\"x\"])\n\n# b\nregister_ignore_layers(matchers=[ModelTypeMatcher('b')]" in result.code
    assert result.code.endswith("ignore_layers=['g'])\n\n\ndef later():\n    pass\n")
    other = IgnoreRule(WHERE.file, "a", "register_ignore_layers(matchers=[ModelTypeMatcher('a')], ignore_layers=[])")
    (status,) = edit_source(code, [other], WHERE).statuses
    assert (status.status, status.line) == (CONFLICT, 5)


def test_forced_branch_replaces_a_single_model_branch_and_adds_beside_a_shared_one() -> None:
    code = HANDLER.replace(
        "    return model\n", '    if model_type == "omega":\n        model.e = 5\n    return model\n'
    )
    omega = HandlerBranch(WHERE.file, "handle", "omega", "model.c = 3")
    beta = HandlerBranch(WHERE.file, "handle", "beta", "model.c = 3")

    replaced = edit_source(code, [omega], WHERE, force=True)
    beside = edit_source(code, [beta], WHERE, force=True)

    assert replaced.code == code.replace("model.e = 5", "model.c = 3")
    assert [(s.status, s.line) for s in replaced.statuses] == [(REPLACED, 7)]
    assert beside.code == code.replace(
        "    return model\n", '    if model_type == "beta":\n        model.c = 3\n    return model\n'
    )


def test_trailing_comma_literal_keeps_last_comment_and_own_line_comments_in_place() -> None:
    code = 'REG = [\n    # top\n    "a",  # about a\n    # bottom\n]\n'
    result = edit_source(code, [SequenceItem(WHERE.file, "REG", "b")], WHERE)
    assert result.code == 'REG = [\n    # top\n    "a",  # about a\n    "b",\n    # bottom\n]\n'


def test_function_without_anchor_goes_before_its_first_use_even_one_added_by_the_same_plan() -> None:
    code = (
        "RULES = []\n\n\ndef register_ignore_layers(matchers, ignore_layers):\n    RULES.append(ignore_layers)\n\n\n"
        "register_ignore_layers(matchers=[], ignore_layers=['a'])\n\n\ndef later():\n    return RULES\n"
    )
    helper = TopLevelFunction(WHERE.file, "_ignore_b", "def _ignore_b(model):\n    return ['b']\n")
    rule = IgnoreRule(
        WHERE.file, "b", "register_ignore_layers(matchers=[ModelTypeMatcher('b')], ignore_layers=[_ignore_b])"
    )

    result = edit_source(code, [helper, rule], WHERE)

    assert [s.status for s in result.statuses] == [APPLIED, APPLIED]
    assert (
        "ignore_layers=['a'])\n\n\ndef _ignore_b(model):\n    return ['b']\n\n\n# b\nregister_ignore_layers("
        in result.code
    )
    namespace: dict = {"ModelTypeMatcher": lambda model_type: model_type}
    exec(compile(result.code, "patched", "exec"), namespace)  # every name is defined before its use
    assert [rules[0] if isinstance(rules[0], str) else rules[0](None) for rules in namespace["RULES"]] == ["a", ["b"]]


def test_function_anchored_before_another_function() -> None:
    code = "import os\n\n\ndef handle(model):\n    return model\n"
    helper = TopLevelFunction(WHERE.file, "fix", "def fix(model):\n    pass\n", before="handle")
    result = edit_source(code, [helper], WHERE)
    assert result.code == "import os\n\n\ndef fix(model):\n    pass\n\n\ndef handle(model):\n    return model\n"
    with pytest.raises(ScaffoldError, match="missing_anchor"):
        edit_source(
            code, [TopLevelFunction(WHERE.file, "fix", "def fix():\n    pass\n", before="missing_anchor")], WHERE
        )


def test_readme_row_goes_into_the_supported_models_table_of_either_language() -> None:
    from scaffold.patch.readme import add_supported_row

    table = "| Model | Class |\n|:--|:--|\n| `llama` | `LlamaForCausalLM` |\n"
    english = f"# AutoRound\n\n## Validated Models\n\n{table}\n## Next\n"
    chinese = "## 支持的模型\n\n| 模型 | 说明 |\n| --- | --- |\n| `qwen2` | 已验证 |\n"

    added = add_supported_row(english, "toy", "ToyForCausalLM")
    assert added.added and "| `llama` | `LlamaForCausalLM` |\n| `toy` | `ToyForCausalLM` |\n\n## Next\n" in added.text
    assert add_supported_row(added.text, "toy", "ToyForCausalLM").present
    assert add_supported_row(chinese, "toy", "ToyForCausalLM").text.endswith("| `qwen2` | 已验证 |\n| `toy` |  |\n")
    assert not add_supported_row("# Title\n\n| a | b |\n|---|---|\n", "toy", "T").added
