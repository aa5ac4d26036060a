"""The docs cannot rot: docstring examples run, public names are documented,
and the conda environment stays in step with pyproject.toml."""

from __future__ import annotations

import doctest
import importlib
import re
import tomllib
from pathlib import Path

import pytest

import fastagg

ROOT = Path(__file__).resolve().parent.parent

DOCTESTED = [
    "fastagg.compile.spec", "fastagg.compile.vector", "fastagg.compile.value", "fastagg.database", "fastagg.accessor",
    *(f"fastagg.builtins.{m}" for m in ("extrema", "keys", "moments", "products", "quantiles", "regression", "shape", "sketches")),
]  # fmt: skip


@pytest.mark.parametrize("module_name", DOCTESTED)
def test_docstring_examples_run(module_name):
    module = importlib.import_module(module_name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
    assert result.attempted > 0


@pytest.mark.parametrize("name", fastagg.__all__)
def test_public_names_documented(name):
    obj = getattr(fastagg, name)
    assert obj.__doc__ and obj.__doc__.strip(), name


def _requirement_names(items):
    return {re.split(r"[<>=!~ \[]", item.strip(), maxsplit=1)[0].lower() for item in items if isinstance(item, str)}


# conda-forge names of packages whose PyPI name differs.
CONDA_NAMES = {"duckdb": "python-duckdb", "xxhash": "python-xxhash"}


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    wanted = _requirement_names(project["dependencies"])
    for extra in extras.values():
        wanted |= _requirement_names(extra)
    wanted = {CONDA_NAMES.get(name, name) for name in wanted}
    conda = set()
    for line in (ROOT / "environment.yml").read_text().splitlines():
        m = re.match(r"\s*-\s+([A-Za-z0-9_.-]+)", line)
        if m and m.group(1) not in ("pip", "python", "conda-forge"):
            conda.add(m.group(1).lower())
    assert wanted <= conda, wanted - conda


def test_readme_quick_start_has_two_commands():
    text = (ROOT / "README.md").read_text()
    section = re.search(r"^## Quick start\n(.*?)(?=^## )", text, re.S | re.M).group(1)
    commands = [line.strip() for line in section.splitlines() if line.startswith("    ")]
    assert len(commands) == 2
    assert "fastagg demo" in commands[0]
    assert "pytest" in commands[1]
