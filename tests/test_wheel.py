"""The wheel ships the templates: built, installed into a fresh venv (not editable) and run from there."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_pyproject_lists_every_subpackage_and_the_templates():
    """``packages`` is an explicit list (``templates/`` maps to ``scaffold.templates``): new subpackages join it."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = {"scaffold"} | {
        "scaffold." + init.parent.relative_to(ROOT / "scaffold").as_posix().replace("/", ".")
        for init in (ROOT / "scaffold").glob("*/**/__init__.py")
    }
    assert set(config["packages"]) == found | {"scaffold.templates"}
    assert config["package-dir"] == {"scaffold.templates": "templates"}


def test_templates_load_from_the_package():
    from scaffold.render.resources import template_path

    assert (template_path("adaptation") / "copier.yml").is_file()
    assert (template_path("modes") / "block_replay" / "block_replay.py.jinja").is_file()


def _build_wheel(tmp_path: Path) -> Path:
    """Build from a copy of the sources, so nothing is written into the checkout."""
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("scaffold", "templates"):
        shutil.copytree(ROOT / name, source / name, ignore=ignore)
    wheels = tmp_path / "wheels"
    command = [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation"]
    command += ["-w", str(wheels)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (wheel,) = wheels.glob("autoround_scaffold-*.whl")
    return wheel


@pytest.mark.slow
def test_wheel_install_runs_new_arch(tmp_path):
    wheel = _build_wheel(tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {name for name in names if name.startswith("scaffold/templates/")}
    expected = {
        "scaffold/templates/" + path.relative_to(ROOT / "templates").as_posix()
        for path in (ROOT / "templates").rglob("*")
        if path.is_file() and path.suffix in {".jinja", ".yml"}
    }
    assert expected and expected <= shipped, expected - shipped
    assert not [name for name in names if "__pycache__" in name]

    venv = tmp_path / "venv"  # sees torch, transformers, auto-round from the system; the tool only from the wheel
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    install = [str(python), "-m", "pip", "install", "--no-deps", "--no-index", "--quiet", str(wheel)]
    done = subprocess.run(install, capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    code = "import scaffold, scaffold.render.resources as r; print(scaffold.__file__); print(r.templates_root())"
    where = subprocess.run(
        [str(python), "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
    ).stdout.split()
    site = venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    assert [Path(p) for p in where] == [site / "scaffold" / "__init__.py", site / "scaffold" / "templates"]

    out = tmp_path / "bloom"
    done = subprocess.run(
        [str(venv / "bin" / "scaffold"), "new-arch", "transformers:bloom", "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    written = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert {".copier-answers.yml", "REPORT.md", "bloom_autoround.py", "test_bloom.py", "edits.json"} <= written
    assert "def _patch_bloom_block_replay" in (out / "bloom_autoround.py").read_text()
