"""The README's recipe reference is generated from the schema; it must not drift."""

from pathlib import Path

from honed.recipe.reference import markdown

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_recipe_reference_matches_the_schema():
    text = README.read_text()
    block = text.split("<!-- recipe-reference:start -->\n")[1].split("\n<!-- recipe-reference:end -->")[0]
    assert block == markdown(), "regenerate with: honed recipes --reference"


def test_readme_names_the_two_setup_commands_and_ci_runs_the_test_one():
    text = README.read_text()
    assert "bin/honed train imdb_seed" in text and "bin/test" in text
    ci = (README.parent / ".ci" / "run").read_text()
    assert "bin/test" in ci
