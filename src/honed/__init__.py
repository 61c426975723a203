"""honed: from a YAML recipe to a trained, evaluated, optimized model.

    import honed
    run = honed.train("recipes/linear_regression.yaml", ["optimizer.lr=0.05"])
    honed.predict(run.path, "new_rows.csv")
    honed.lr_find(recipe) · honed.tune(recipe, budget=300) · honed.compare(recipe, ["optimizer.name=sgd,adam"])
    honed.cv(recipe, folds=5) · honed.doctor(run.path) · honed.report(run.path)

Attributes load lazily, so `honed --help` and recipe errors answer without importing torch.
"""

__version__ = "0.1.0"

_API = {"train", "resume", "evaluate", "predict", "load_run", "Run"}
_TUNING = {"lr_find", "tune", "compare", "compare_runs", "cv"}
__all__ = sorted(_API | _TUNING | {"explain", "doctor", "report", "load_recipe", "Recipe", "UserError", "__version__"})


def __getattr__(name: str):
    if name in _API:
        from honed import api

        return getattr(api, name)
    if name in _TUNING:
        from honed import tuning

        return getattr(tuning, name)
    if name == "explain":
        from honed.explanation import explain

        return explain
    if name == "doctor":
        from honed.diagnosis import doctor

        return doctor
    if name == "report":
        from honed.report import report

        return report
    if name in ("load_recipe", "Recipe"):
        from honed import recipe

        return getattr(recipe, name)
    if name == "UserError":
        from honed.errors import UserError

        return UserError
    raise AttributeError(f"module 'honed' has no attribute {name!r}")
