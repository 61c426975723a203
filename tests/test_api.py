import importlib

import honed


def test_public_functions_survive_importing_every_stage():
    for stage in ("recipe", "data", "models", "training", "evaluation", "run", "cli"):
        importlib.import_module(f"honed.{stage}")
    assert callable(honed.train) and callable(honed.evaluate) and callable(honed.predict)
    assert honed.train.__module__ == "honed.api"
