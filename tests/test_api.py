import importlib
import pkgutil
import types

import honed


def test_every_public_name_survives_importing_every_subpackage():
    """A subpackage named like a facade function (honed.report, honed.export, honed.serve) would replace it on the
    `honed` module as soon as it is imported: every name in __all__ must still be a function or class."""
    for module in pkgutil.iter_modules(honed.__path__):
        if module.name != "__main__":  # (runs the command line)
            importlib.import_module(f"honed.{module.name}")
    for name in honed.__all__:
        value = getattr(honed, name)
        if name != "serve":  # the one callable subpackage: honed.serve(run_dir) is honed.serve.serve(run_dir)
            assert not isinstance(value, types.ModuleType), f"honed.{name} is the subpackage, not the function"
        assert callable(value) or name == "__version__", name
    from honed.serve import serve

    assert callable(honed.serve) and honed.serve.serve is serve
    assert honed.train.__module__ == "honed.api" and honed.build_report.__module__ == "honed.api"
