"""Recipes: the YAML contract every other package reads. Imports nothing of honed but errors."""

from honed.recipe.load import dump_recipe, load_recipe, parse_override, variant
from honed.recipe.schema import Recipe

__all__ = ["Recipe", "load_recipe", "dump_recipe", "parse_override", "variant"]
