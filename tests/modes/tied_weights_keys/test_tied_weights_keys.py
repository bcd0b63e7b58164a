"""tied_weights_keys: its fixture (ScafTie, ``tests/modes/tied_weights_keys/scaftie``) trips it on transformers 5,
the generated conversion is idempotent, and new-arch's generated test passes (plugin and patched checkout)."""

from __future__ import annotations

from pathlib import Path

import pytest
from torch import nn

from scaffold.inspection.findings import Finding, Mode, Severity
from scaffold.modes.tied_weights_keys import detect, generate
from scaffold.plan.model import HandlerBranch, Plan, TopLevelFunction
from scaffold.versions import transformers_major
from tests.modes.fixtures import assert_new_arch_fixes, fixture_findings, problem_modes

FIXTURE = Path(__file__).parent / "scaftie"


def test_fixture_trips_tied_weights_keys():
    modes = problem_modes(fixture_findings(Mode.TIED_WEIGHTS_KEYS))
    # transformers 4.x reads the list itself; on 5 the mode explains the save crash (no stock_run finding)
    assert modes == (["tied_weights_keys"] if transformers_major() >= 5 else [])


class Embedder(nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = nn.Module()
        self.inner.embed = nn.Embedding(8, 4)
        self.head = nn.Linear(4, 8)

    def get_input_embeddings(self):
        return self.inner.embed


class ListTied(Embedder):
    _tied_weights_keys = ["head.weight"]


class TupleTiedNoEmbeddings(nn.Module):
    _tied_weights_keys = ("head.weight",)


class DictTied(Embedder):
    _tied_weights_keys = {"head.weight": "inner.embed.weight"}


def test_list_and_tuple_styles_are_found_with_their_source():
    model = nn.Sequential(ListTied(), TupleTiedNoEmbeddings(), DictTied(), ListTied())
    found = {cls.name: cls for cls in detect.list_style_classes(model)}
    assert set(found) == {"ListTied", "TupleTiedNoEmbeddings"}  # a dict (the 5.x form) is not reported
    assert found["ListTied"].mapping == {"head.weight": "inner.embed.weight"}
    assert found["ListTied"].modules == ["0", "3"]
    assert found["TupleTiedNoEmbeddings"].source is None


def _finding(cls: detect.ListStyleClass) -> Finding:
    evidence = {"class": cls.name, "tied_weights_keys": cls.keys, "source": cls.source, "transformers": "5"}
    return Finding(Mode.TIED_WEIGHTS_KEYS, Severity.FAILS, "list-style", "convert", evidence=evidence)


def test_generated_conversion_makes_the_dict_once(tmp_path):
    plan = Plan(model_type="toy-tie", model_class="ListTied")
    (cls,) = detect.list_style_classes(ListTied())
    generate.generate(_finding(cls), plan)
    function, branch = plan.edits
    assert isinstance(function, TopLevelFunction) and isinstance(branch, HandlerBranch)
    assert branch.body == f"{function.name}(model)" and not plan.items[0].todos
    namespace: dict = {}
    exec(compile(function.code, "<generated>", "exec"), namespace)  # noqa: S102 - the generated function itself
    convert = namespace[function.name]

    class Fresh(ListTied):
        _tied_weights_keys = ["head.weight"]

    Fresh.__name__ = "ListTied"
    model = Fresh()
    assert convert(model) is model
    assert Fresh._tied_weights_keys == {"head.weight": "inner.embed.weight"}
    Fresh._tied_weights_keys = {"head.weight": "somewhere.else.weight"}  # already a dict: left as is
    convert(model)
    assert Fresh._tied_weights_keys == {"head.weight": "somewhere.else.weight"}
    assert ListTied._tied_weights_keys == ["head.weight"]  # other classes of the same name untouched
    assert plan.test_data["tied_weights_keys"]["classes"] == {"ListTied": {"head.weight": "inner.embed.weight"}}


def test_a_class_without_input_embeddings_gets_a_failing_skeleton():
    plan = Plan(model_type="toy-tie", model_class="TupleTiedNoEmbeddings")
    (cls,) = detect.list_style_classes(TupleTiedNoEmbeddings())
    generate.generate(_finding(cls), plan)
    function = plan.edits[0]
    assert "TODO(scaffold)" in function.code and plan.items[0].todos
    namespace: dict = {}
    exec(compile(function.code, "<generated>", "exec"), namespace)  # noqa: S102
    with pytest.raises(NotImplementedError, match="TODO"):
        namespace[function.name](TupleTiedNoEmbeddings())


@pytest.mark.slow
@pytest.mark.skipif(transformers_major() < 5, reason="transformers 5 only: 4.x saves the list-style keys")
def test_new_arch_fixes_the_save_crash(autoround_checkout, tmp_path):
    assert_new_arch_fixes(FIXTURE, Mode.TIED_WEIGHTS_KEYS, autoround_checkout, tmp_path)
