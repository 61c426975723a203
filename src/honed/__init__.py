"""honed: from a YAML recipe to a trained, evaluated, optimized model.

    import honed
    run = honed.train("recipes/linear_regression.yaml", ["optimizer.lr=0.05"])
    honed.predict(run.path, "new_rows.csv")
    honed.lr_find(recipe) · honed.tune(recipe, budget=300) · honed.compare(recipe, ["optimizer.name=sgd,adam"])
    honed.cv(recipe, folds=5) · honed.doctor(run.path) · honed.build_report(run.path)
    honed.export_onnx(run.path) · honed.quantize(run.path) · honed.prune(run.path) · honed.distill(teacher, student) · honed.list_runs("runs")
    honed.serve(run.path) · honed.Run.open(path): a run folder's recipe, summary, history, model, test outputs

Attributes load lazily, so `honed --help` and recipe errors answer without importing torch.
"""

__version__ = "0.1.0"

_API = {"train", "resume", "evaluate", "predict", "load_run", "Run", "build_report"}
_TUNING = {"lr_find", "tune", "compare", "compare_runs", "cv"}
# (honed.export is a subpackage: a function of that name would be replaced by the package on import; honed.serve
# is a callable subpackage)
_SHIP = {"export_onnx": ("honed.export.onnx", "export_onnx"), "quantize": ("honed.export.quantize", "quantize"),
         "prune": ("honed.export.prune", "prune"),
         "distill": ("honed.tuning.distill", "distill"), "list_runs": ("honed.run.listing", "list_runs"),
         "prepare_model": ("honed.api", "prepare_model"), "prepare": ("honed.api", "prepare")}
__all__ = sorted(_API | _TUNING | set(_SHIP) | {"explain", "doctor", "load_recipe", "Recipe", "UserError", "serve",
                                                 "__version__"})


def __getattr__(name: str):
    if name in _API:
        from honed import api

        return getattr(api, name)
    if name in _TUNING:
        from honed import tuning

        return getattr(tuning, name)
    if name in _SHIP:  # export, quantize, distill, runs: the commands that ship or list runs
        import importlib

        module, attribute = _SHIP[name]
        return getattr(importlib.import_module(module), attribute)
    if name == "explain":
        from honed.explanation import explain

        return explain
    if name == "doctor":
        from honed.diagnosis import doctor

        return doctor
    if name in ("load_recipe", "Recipe"):
        from honed import recipe

        return getattr(recipe, name)
    if name == "serve":  # the subpackage, callable: honed.serve(run_dir) serves the run
        import importlib

        return importlib.import_module("honed.serve")
    if name == "UserError":
        from honed.errors import UserError

        return UserError
    raise AttributeError(f"module 'honed' has no attribute {name!r}")
