"""The recipes shipped with honed, by name (`honed train tabular`, `honed.train("tabular")`)."""

from __future__ import annotations

from pathlib import Path


def recipe_dirs() -> list[Path]:
    """Where bundled recipes live: inside the installed package, or the source checkout's recipes/."""
    here = Path(__file__).resolve().parent.parent
    return [d for d in (here / "recipes", here.parent.parent / "recipes") if d.is_dir()]


def bundled_recipes() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for folder in recipe_dirs():
        for path in sorted(folder.glob("*.yaml")):
            found.setdefault(path.stem, path)
    return found


def resolve_recipe(name: str) -> Path:
    """A path as given, or the name of a bundled recipe."""
    path = Path(name)
    if path.exists() or path.suffix in (".yaml", ".yml"):
        return path
    return bundled_recipes().get(name, path)
