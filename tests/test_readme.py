"""The README stays a front page: two set-up commands CI runs, the two worked examples, links that resolve."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def test_readme_names_the_two_setup_commands_and_ci_runs_the_test_one():
    text = README.read_text()
    setup = text.split("## Set-up: two commands")[1].split("```bash\n")[1].split("```")[0].splitlines()
    assert [line.split()[:2] for line in setup] == [["bin/honed", "train"], ["bin/test", "#"]]
    assert "bin/honed train linear_regression" in setup[0]  # offline: generated data, no download
    assert "bin/honed train imdb_seed" in text  # the second worked example
    ci = (README.parent / ".ci" / "run").read_text()
    assert "bin/test" in ci


def test_readme_is_a_front_page_whose_links_resolve():
    text = README.read_text()
    assert len(text.splitlines()) <= 200  # the rest lives in docs/
    assert "## Worked example 1: linear regression by gradient descent" in text
    assert "## Worked example 2: IMDB movie-review sentiment" in text
    targets = [t.split("#")[0] for t in re.findall(r"\]\(([^)]+)\)", text) if not t.startswith("http")]
    assert targets and all((ROOT / t).exists() for t in targets), [t for t in targets if not (ROOT / t).exists()]
