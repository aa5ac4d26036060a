"""The documentation cannot rot: its examples run, its site builds, its CLI
reference matches ``--help``, and the built-in library page lists every built-in.

Every fenced ```python block of a page in docs/ runs, in order, in one
namespace per page (a page reads like a notebook). A block is skipped only
when the line right before it is ``<!-- skip: reason -->``, so a reader sees
that it is not run (the comment is visible in the Markdown source) and why.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

_FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```\s*$", re.S | re.M)
_SKIP = re.compile(r"<!--\s*skip:\s*(.+?)\s*-->\s*$")


def python_blocks(path: Path) -> list[tuple[int, str, str | None]]:
    """Return ``(line number, code, skip reason or None)`` of each ```python block."""
    text = path.read_text()
    blocks = []
    for match in _FENCE.finditer(text):
        if match.group(1) != "python":
            continue
        line = text.count("\n", 0, match.start()) + 1
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        skip = _SKIP.search(before)
        blocks.append((line, match.group(2), skip.group(1) if skip else None))
    return blocks


PAGES = sorted(p for p in DOCS.glob("*.md") if python_blocks(p))


def test_pages_have_examples():
    names = {p.name for p in PAGES}
    assert {"index.md", "quickstart.md", "aggregates.md", "querying.md", "builtins.md"} <= names


def test_skipped_blocks_give_a_reason():
    for page in DOCS.glob("*.md"):
        for line, _, reason in python_blocks(page):
            assert reason is None or len(reason) > 10, f"{page.name}:{line}: say why the block is skipped"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_page_examples_run(page, tmp_path, monkeypatch):
    # Examples may write files: they do so in a scratch directory.
    monkeypatch.chdir(tmp_path)
    # A fresh module per page, under one importable name, and a compile
    # cache of the docs' own: numba's on-disk cache records the module of the
    # compiled code and must import it again in a later process, and
    # fastagg's cache key ignores the module, so identical code compiled
    # from another page or test must not be served here (nor ours there).
    base = os.environ.get("FASTAGG_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "fastagg"
    )
    monkeypatch.setenv("FASTAGG_CACHE_DIR", os.path.join(base, "docs-examples"))
    module = types.ModuleType("fastagg_docs_examples")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    namespace = module.__dict__
    for line, code, skip in python_blocks(page):
        if skip is not None:
            continue
        try:
            exec(compile(code, f"{page}:{line}", "exec"), namespace)
        except Exception as exc:
            raise AssertionError(f"{page.name}, block at line {line} failed: {type(exc).__name__}: {exc}") from exc


def test_builtins_page_lists_every_builtin():
    from fastagg.compile.spec import spec_of
    from fastagg.builtins import BUILTINS

    text = (DOCS / "builtins.md").read_text()
    missing = [spec_of(cls).name for cls in BUILTINS if f"`{spec_of(cls).name}" not in text]
    assert not missing, f"docs/builtins.md does not document {missing}"


def _load_generator():
    spec = importlib.util.spec_from_file_location("gen_cli_reference", DOCS / "gen_cli_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_reference_up_to_date():
    gen = _load_generator()
    current = (DOCS / "cli-reference.md").read_text()
    made_with = re.search(r"Python (\d+\.\d+)", current)
    if made_with and made_with.group(1) != f"{sys.version_info.major}.{sys.version_info.minor}":
        # argparse's help layout differs between Python versions.
        pytest.skip(f"reference generated with Python {made_with.group(1)}")
    assert current == gen.render(), "docs/cli-reference.md is stale: run python docs/gen_cli_reference.py"


def test_cli_reference_covers_every_command():
    from fastagg.cli import build_parser

    text = (DOCS / "cli-reference.md").read_text()
    parser = build_parser()
    commands = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction").choices
    for name, sub in commands.items():
        assert f"## fastagg {name}" in text
        for action in sub._actions:
            for option in action.option_strings:
                assert option in text, f"fastagg {name} {option} is not in the CLI reference"


def test_mkdocs_build_strict(tmp_path):
    pytest.importorskip("mkdocs")
    mkdocs = [sys.executable, "-m", "mkdocs"]
    proc = subprocess.run(
        [*mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "site" / "index.html").exists()
    assert (tmp_path / "site" / "aggregates" / "index.html").exists()
    shutil.rmtree(tmp_path / "site")


def test_builtins_page_window_column_is_right():
    from fastagg.compile.spec import spec_of
    from fastagg.builtins import BUILTINS

    window = {}
    for line in (DOCS / "builtins.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[2] in ("yes", "no"):
            for name in re.findall(r"`([a-z_0-9]+)(?:\(|`)", cells[0]):
                window[name] = cells[2] == "yes"
            for alias in re.findall(r"alias `([a-z_0-9]+)", cells[0]):
                window[alias] = cells[2] == "yes"
    for cls in BUILTINS:
        spec = spec_of(cls)
        assert window.get(spec.name) == spec.is_window, f"docs/builtins.md: window column of {spec.name}"
