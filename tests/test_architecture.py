"""docs/ARCHITECTURE.md's package table, executable: every `honed.X` import (at the top of a module or inside a
function) must be an arrow the table allows. A new arrow is a decision: add it here and to the page, or move
the code. Cycles that remain are listed as such and may not grow."""

import ast
from collections import defaultdict
from pathlib import Path

import honed

SRC = Path(honed.__file__).parent
LEAVES = {"errors", "registry", "digest", "pretrained", "runfiles", "files", "processes", "__version__"}  # import nothing of honed's stages

# package -> the packages it may import (besides LEAVES)
ALLOWED = {
    "recipe": set(),
    "models": {"recipe"},  # the spec types, for annotations only
    "evaluation": {"data"},
    "data": {"recipe"},
    "run": {"training"},  # the Hook base class
    "training": {"data", "evaluation", "models", "recipe", "warmup"},
    "report": {"data", "evaluation", "recipe", "run"},
    "api": {"data", "evaluation", "models", "recipe", "report", "run", "training", "warmup"},
    "explanation": {"api", "data", "evaluation", "models", "report", "run"},
    "export": {"api", "data", "evaluation", "models", "recipe", "report", "run", "training"},
    "serve": {"api", "data", "evaluation", "explanation", "export", "recipe", "run"},
    "diagnosis": {"api", "data", "evaluation", "recipe", "report", "run", "training", "tuning"},
    "tuning": {"api", "data", "evaluation", "export", "recipe", "report", "run", "training"},
    "cli": {"__init__", "data", "diagnosis", "evaluation", "explanation", "export", "launch", "recipe", "report", "run", "serve",
            "tuning"},
    "__init__": {"api", "diagnosis", "explanation", "recipe", "report", "tuning"},
    "__main__": {"cli"},
    "launch": set(),
    "warmup": set(),
}
# arrows both ways that are known debt: the contract keeps them from spreading (none left)
KNOWN_CYCLES: set[frozenset] = set()


def package_of(path: Path) -> str:
    parts = path.relative_to(SRC).parts
    return parts[0] if len(parts) > 1 else parts[0].removesuffix(".py")


def arrows() -> dict[str, set[str]]:
    found: dict[str, set[str]] = defaultdict(set)
    for path in SRC.rglob("*.py"):
        source = package_of(path)
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "honed":
                names = [node.module] if node.module != "honed" else [f"honed.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names if a.name.split(".")[0] == "honed"]
            for name in names:
                parts = name.split(".")
                target = parts[1] if len(parts) > 1 else "__init__"  # `import honed`: the facade
                if target != source:
                    found[source].add(target)
    return found


def test_every_import_is_an_arrow_the_architecture_allows():
    broken = [f"{a} -> {b}" for a, targets in arrows().items() for b in sorted(targets)
              if b not in LEAVES and b not in ALLOWED.get(a, set())]
    assert broken == [], "update docs/ARCHITECTURE.md and ALLOWED, or move the code"


def test_no_stage_calls_the_facade_and_no_new_cycle_appears():
    graph = arrows()
    assert all("__init__" not in targets for source, targets in graph.items() if source not in ("__main__", "cli"))
    cycles = {frozenset({a, b}) for a, targets in graph.items() for b in targets if a in graph.get(b, set())}
    assert cycles <= KNOWN_CYCLES


def test_the_architecture_page_names_every_package():
    page = (SRC.parent.parent / "docs" / "ARCHITECTURE.md").read_text()
    packages = {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    assert all(f"`{name}/`" in page for name in packages)
    assert "`runfiles.py`" in page and "tests/test_architecture.py" in page
