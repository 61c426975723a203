"""honed: from a YAML recipe to a trained, evaluated, optimized model."""

__version__ = "0.1.0"

from honed.api import Run, evaluate, load_run, predict, train  # noqa: E402
from honed.errors import UserError  # noqa: E402
from honed.recipe import Recipe, load_recipe  # noqa: E402

__all__ = ["train", "evaluate", "predict", "load_run", "load_recipe", "Recipe", "Run", "UserError", "__version__"]
