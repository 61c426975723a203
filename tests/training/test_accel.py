"""The step switches: gradient accumulation, clipping, mixed precision, compile, determinism."""

import logging

import pytest
import torch

from honed.data import build_data
from honed.models import Shape, build_model
from honed.recipe import load_recipe
from honed.training import accel, fit


def setup(train: dict, model: dict | None = None, optimizer: dict | None = None):
    recipe = load_recipe({"data": {"source": "sklearn", "name": "breast_cancer"},
                          "model": model or {"name": "mlp", "hidden": [16]},
                          "optimizer": optimizer or {"name": "adam", "lr": 0.01},
                          "train": {"epochs": 2, "checkpoint": None} | train})
    bundle = build_data(recipe.data)
    torch.manual_seed(0)
    net = build_model(recipe.model, Shape(bundle.input_kind, bundle.input_dim, bundle.output_dim))
    return recipe, bundle, net


def trained(train: dict, **kw) -> dict[str, torch.Tensor]:
    recipe, bundle, net = setup(train, **kw)
    trainer = fit(net, bundle, recipe, seed=0)
    return {k: v.detach().clone() for k, v in net.state_dict().items()} | {"_history": trainer.history}


def assert_same_weights(a: dict, b: dict, atol: float) -> None:
    for key in a:
        if not key.startswith("_"):
            torch.testing.assert_close(a[key], b[key], atol=atol, rtol=0)


def test_accumulating_four_batches_of_16_equals_batches_of_64():
    big = trained({"batch_size": 64})
    small = trained({"batch_size": 16, "accumulate": 4})
    assert_same_weights(big, small, atol=1e-5)
    assert [r["step"] for r in big["_history"]] == [r["step"] for r in small["_history"]]
    assert small["_history"][-1]["train_loss"] == pytest.approx(big["_history"][-1]["train_loss"], rel=1e-5)


def test_clipping_scales_the_gradient_to_the_given_norm():
    # One full-batch gd step of lr 1: the update is exactly the clipped gradient.
    recipe, bundle, net = setup({"epochs": 1, "clip_grad_norm": 0.05}, model={"name": "logistic"},
                                optimizer={"name": "gd", "lr": 1.0})
    w0, b0 = net.linear.weight.detach().clone(), net.linear.bias.detach().clone()
    fit(net, bundle, recipe)
    w, b = w0.clone().requires_grad_(), b0.clone().requires_grad_()
    logits = (bundle.train.x @ w.T).squeeze(-1) + b
    loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, bundle.train.y.float())
    gw, gb = torch.autograd.grad(loss, [w, b])
    norm = torch.cat([gw.flatten(), gb]).norm()
    assert norm > 0.05  # the clip is active
    torch.testing.assert_close(net.linear.weight, w0 - gw * 0.05 / norm)
    torch.testing.assert_close(net.linear.bias, b0 - gb * 0.05 / norm)


@pytest.mark.parametrize("precision", ["bf16-mixed", "fp16-mixed"])
def test_mixed_precision_trains_close_to_fp32_and_warns_on_this_cpu(precision, caplog):
    reference = trained({})
    with caplog.at_level(logging.WARNING, logger="honed"):
        mixed = trained({"precision": precision})
    assert mixed["_history"][-1]["val_accuracy"] == pytest.approx(reference["_history"][-1]["val_accuracy"], abs=0.03)
    assert mixed["_history"][-1]["train_loss"] == pytest.approx(reference["_history"][-1]["train_loss"], rel=0.1)
    capability = torch.backends.cpu.get_cpu_capability()
    if precision == "fp16-mixed" or ("AVX512" not in capability and "AMX" not in capability):
        assert precision in caplog.text


def test_fp16_uses_a_loss_scaler_and_fp32_does_not():
    cpu = torch.device("cpu")
    assert accel.grad_scaler("fp16-mixed", cpu).is_enabled()
    assert not accel.grad_scaler("fp32", cpu).is_enabled()
    assert not accel.grad_scaler("bf16-mixed", cpu).is_enabled()
    with accel.autocast("bf16-mixed", cpu):
        assert torch.nn.Linear(3, 2)(torch.randn(4, 3)).dtype == torch.bfloat16


def test_compiled_training_matches_eager(monkeypatch):
    monkeypatch.setattr(accel, "BACKEND", "eager")  # dynamo's graph capture without the slow C++ build
    torch._dynamo.reset()
    assert_same_weights(trained({}), trained({"compile": True}), atol=1e-6)


def test_a_failing_compiler_falls_back_to_eager_with_a_warning(monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("no C++ compiler found")

    monkeypatch.setattr(accel, "BACKEND", broken)
    torch._dynamo.reset()
    with caplog.at_level(logging.WARNING, logger="honed"):
        compiled = trained({"compile": True})
    assert "compilation failed" in caplog.text and "training without it" in caplog.text
    assert_same_weights(trained({}), compiled, atol=1e-6)


def test_deterministic_mode_is_on_during_training_only():
    seen = []

    from honed.training import Hook

    class Check(Hook):
        def on_step_end(self, trainer, loss):
            seen.append(torch.are_deterministic_algorithms_enabled())

    with accel.deterministic(True):
        recipe, bundle, net = setup({"epochs": 1, "deterministic": True})
        fit(net, bundle, recipe, [Check()])
    assert seen and all(seen)
    assert not torch.are_deterministic_algorithms_enabled()


RUN_WITHOUT_COMPILER = """
import sys, honed, torch
run = honed.train({"data": {"source": "sklearn", "name": "breast_cancer"}, "model": {"name": "mlp", "hidden": [8]},
                   "optimizer": {"name": "OPT", "lr": 0.01}, "schedule": {"name": "cosine"},
                   "train": {"epochs": 2, "clip_grad_norm": 1.0, "checkpoint": None}}, out="run-OPT")
print("torch._dynamo" in sys.modules, float(run.summary["test"]["loss"]))
"""


@pytest.mark.parametrize("optimizer", ["lbfgs", "adamw"])
def test_a_run_that_compiles_nothing_never_imports_the_compiler_and_trains_the_same(tmp_path, optimizer):
    """warmup.eager_optimizers keeps torch._dynamo (1.1 s) out of runs that compile nothing, optimizer steps
    included; the run's numbers equal those of the same run in a process that imported the compiler first."""
    import subprocess
    import sys

    code = RUN_WITHOUT_COMPILER.replace("OPT", optimizer)
    if optimizer == "lbfgs":
        code = code.replace('"schedule": {"name": "cosine"},', "").replace('"clip_grad_norm": 1.0, ', "")
        code = code.replace('"mlp", "hidden": [8]', '"logistic"')
    plain = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=True)
    imported = subprocess.run([sys.executable, "-c", "import torch._dynamo\n" + code.replace("run-", "again-")],
                              capture_output=True, text=True, cwd=tmp_path, check=True)
    assert plain.stdout.split()[0] == "False" and imported.stdout.split()[0] == "True"
    assert plain.stdout.split()[1] == imported.stdout.split()[1]


def test_the_marks_that_keep_the_compiler_out_are_removed_after_the_run():
    from honed import warmup

    wrapped = [m.__wrapped__ for m in vars(torch.optim.Optimizer).values() if hasattr(m, "__wrapped__")]
    before = [getattr(f, warmup.DYNAMO_CACHE, None) for f in wrapped]
    steps = {cls: cls.__dict__["step"] for cls in (torch.optim.Adam, torch.optim.SGD)}
    with warmup.eager_optimizers():
        assert all(getattr(f, warmup.DYNAMO_CACHE, None) is not None for f in wrapped)
        assert all(cls.__dict__["step"] is not step for cls, step in steps.items())
    assert [getattr(f, warmup.DYNAMO_CACHE, None) for f in wrapped] == before
    assert all(cls.__dict__["step"] is step for cls, step in steps.items())
