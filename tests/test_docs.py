"""The documentation site: its generated references are the code's (regenerate: python -m honed.cli.reference docs),
and `mkdocs build --strict` passes (every page in the navigation, every link and anchor resolving)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from honed.cli.reference import markdown as commands, with_keys

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_the_command_reference_is_generated_from_the_parsers():
    assert (DOCS / "reference" / "commands.md").read_text() == commands() + "\n", \
        "regenerate with: python -m honed.cli.reference docs"
    assert "`--max-batch-items MAX_BATCH_ITEMS`" in commands()  # an option added to a parser shows up


def test_the_recipe_key_reference_is_generated_from_the_schema():
    page = (DOCS / "reference" / "recipe-keys.md").read_text()
    assert page == with_keys(page), "regenerate with: python -m honed.cli.reference docs"
    assert "| `model.bags` |" in page


def test_the_site_builds_strictly(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("material")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")],
                          cwd=DOCS.parent, capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "site" / "reference" / "commands" / "index.html").is_file()


def test_the_run_directory_page_names_every_run_file():
    import honed.runfiles as runfiles

    page = (DOCS / "reference" / "run-directory.md").read_text()
    names = [value for key, value in vars(runfiles).items() if key.isupper() and isinstance(value, str)]
    assert names and [name for name in names if f"`{name}" not in page and f"{name}`" not in page] == []
