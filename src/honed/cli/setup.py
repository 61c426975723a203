"""Commands about honed itself: the bundled recipes and the preprocessing cache."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from honed.recipe.bundled import bundled_recipes


def register(sub) -> dict[str, Callable]:
    """Add this group's commands to `sub`; their handlers by name."""
    r = sub.add_parser("recipes", help="list the bundled recipes")
    r.add_argument("--reference", action="store_true", help="print every recipe key (markdown table)")

    c = sub.add_parser("cache", help="the preprocessing cache ($HONED_CACHE)")
    c.add_argument("action", choices=["clear", "info"])
    return {"recipes": cmd_recipes, "cache": cmd_cache}


def describe_recipe(path: Path) -> str:
    """The first comment line of a recipe file: what it does."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
    return ""


def cmd_recipes(args) -> int:
    if args.reference:
        from honed.recipe.reference import markdown

        print(markdown())
        return 0
    recipes = bundled_recipes()
    width = max((len(n) for n in recipes), default=0)
    for name, path in recipes.items():
        print(f"{name:<{width}}  {describe_recipe(path)}")
    return 0


def cmd_cache(args) -> int:
    from honed.data import cache

    if args.action == "clear":
        entries, size = cache.clear()
        print(f"removed {entries} preprocessed dataset(s), {size / 1e6:.1f} MB, from {cache.preprocessed_root()}")
        return 0
    root, entries, size = cache.info()
    print(f"{root}: {entries} preprocessed dataset(s), {size / 1e6:.1f} MB")
    return 0
