import importlib

import honed


def test_public_functions_survive_importing_every_stage():
    for stage in ("recipe", "data", "models", "training", "evaluation", "explanation", "run", "cli"):
        importlib.import_module(f"honed.{stage}")
    assert callable(honed.train) and callable(honed.evaluate) and callable(honed.predict) and callable(honed.explain)
    assert honed.train.__module__ == "honed.api"
