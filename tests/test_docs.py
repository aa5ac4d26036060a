"""The docs cannot rot: docstring examples run, public names and CLI commands are documented,
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

PACKAGE = ROOT / "fastagg"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


# Every module with an example is doctested: a new module's examples run
# without anyone adding it to a list. __main__ would run the CLI on import.
DOCTESTED = sorted(
    _module_name(path)
    for path in PACKAGE.rglob("*.py")
    if path.name != "__main__.py" and ">>>" in path.read_text(encoding="utf-8")
)


def test_doctest_discovery_finds_the_known_examples():
    assert {"fastagg.compile.spec", "fastagg.database", "fastagg.accessor"} <= set(DOCTESTED)


@pytest.mark.parametrize("module_name", DOCTESTED)
def test_docstring_examples_run(module_name):
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # An optional dependency (dask) may be absent; a fastagg module must not be.
        if exc.name and exc.name.split(".")[0] == "fastagg":
            raise
        pytest.skip(f"{module_name} needs {exc.name}, which is not installed")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
    assert result.attempted > 0


@pytest.mark.parametrize("name", fastagg.__all__)
def test_public_names_documented(name):
    obj = getattr(fastagg, name)
    assert obj.__doc__ and obj.__doc__.strip(), name


def test_cli_commands_documented():
    # The generated reference (test_docs_examples) lists the options; the
    # guide must explain each command, and --help must say what it does.
    import argparse

    from fastagg.cli import build_parser

    subparsers = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    helps = {action.dest: action.help for action in subparsers._choices_actions}
    guide = (ROOT / "docs" / "cli.md").read_text()
    assert subparsers.choices
    for name in subparsers.choices:
        assert helps.get(name), f"fastagg {name} has no help text in --help"
        assert f"## `fastagg {name}`" in guide, f"docs/cli.md has no section for fastagg {name}"


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
