"""One owner of the run directory (honed.api.Run) and one way to start a model (honed.api.prepare_model):
the range test and the doctor's race start from the model training starts from, explain rebuilds the
run's own architecture, and no module joins a run path with a literal file name."""

import ast
from pathlib import Path

import numpy as np
import pytest
import torch

import honed
from honed import runfiles
from honed.api import Run, prepare_model
from honed.data import build_data
from honed.models.layers import TokenPool
from honed.recipe import load_recipe

SRC = Path(honed.__file__).parent


def tfidf_recipe(text_csvs):
    train, test = text_csvs
    return load_recipe({"name": "tfidf", "data": {"source": "text_files", "train": str(train), "test": str(test)},
                        "model": {"name": "logistic", "pooling": "tfidf"},
                        "optimizer": {"name": "adam", "lr": 0.05}, "train": {"epochs": 2, "batch_size": 4,
                                                                             "checkpoint": None}})


def idf_of(model: torch.nn.Module) -> torch.Tensor:
    return next(m for m in model.modules() if isinstance(m, TokenPool)).idf.detach().clone()


def fitted_models(monkeypatch) -> list:
    """Every model honed.api.prepare starts a Trainer with."""
    import honed.api as api

    seen = []
    real = api.prepare_model
    monkeypatch.setattr(api, "prepare_model", lambda *a, **k: seen.append(real(*a, **k)) or seen[-1])
    return seen


def test_the_range_test_measures_the_tfidf_model_that_trains(monkeypatch, text_csvs):
    from honed.tuning.lr_find import range_test

    recipe = tfidf_recipe(text_csvs)
    bundle = build_data(recipe.data)
    trained_idf = idf_of(prepare_model(recipe, bundle))
    assert not torch.allclose(trained_idf, torch.ones_like(trained_idf))  # the idf is fitted: not all ones
    seen = fitted_models(monkeypatch)
    sweep = range_test(recipe, bundle, 0, 1e-4, 1.0, 6)
    assert len(seen) == 1 and len(sweep.losses) > 0  # the sweep trained the model prepare started
    assert torch.equal(idf_of(seen[0]), trained_idf)  # buffers are not trained: the idf it started from


def test_the_doctors_race_starts_from_the_tfidf_model_that_trains(monkeypatch, text_csvs):
    from honed.diagnosis.probes import minibatch_race

    recipe = tfidf_recipe(text_csvs)
    bundle = build_data(recipe.data)
    seen = fitted_models(monkeypatch)
    result = minibatch_race(recipe, bundle, target_loss=0.0, seconds=0.5, max_epochs=2)
    assert len(seen) == 1 and torch.equal(idf_of(seen[0]), idf_of(prepare_model(recipe, bundle)))
    assert result["epochs"] <= 2


def test_training_is_prepare_then_run(tmp_path, text_csvs):
    """honed.train's weights are those of api.prepare + training.run on the same recipe and rows: one way in."""
    from honed.api import prepare
    from honed.training import run
    from honed.training.device import seed_everything

    recipe = tfidf_recipe(text_csvs)
    trained = honed.train(recipe, out=tmp_path / "run").model
    seed_everything(recipe.seed)
    bundle = build_data(recipe.data)
    trainer = run(prepare(recipe, bundle))
    assert trainer.epoch == 2
    for (name, a), b in zip(trained.state_dict().items(), trainer.model.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), name


def test_explain_sanity_runs_on_an_image_cnn(tmp_path):
    pytest.importorskip("captum")
    import pandas as pd

    run = honed.train({"name": "digits_cnn", "data": {"source": "sklearn", "name": "digits"},
                       "model": {"name": "cnn", "channels": [4], "kernel_size": 3},
                       "train": {"epochs": 1, "batch_size": 128, "checkpoint": None, "report": False}},
                      out=tmp_path / "cnn")
    owner = Run.open(run.path)
    assert owner.shape.image_shape == (1, 8, 8)
    rows = pd.DataFrame(np.full((2, 64), 8.0), columns=owner.load().pre.columns)
    result = honed.explain(run.path, rows, steps=8, sanity=True)
    assert result.kind == "image" and "median_rank_correlation" in result.sanity
    from honed.explanation import explain_test_rows

    ranked = explain_test_rows(run.path, rows=20, steps=8)  # --global: test rows as numbers, not a file
    assert len(ranked.items) == 20 and set(ranked.overall) <= {str(d) for d in range(10)} and ranked.overall


def test_a_run_reads_back_what_training_wrote(digits_run):
    owner = Run.open(digits_run)
    assert owner.recipe.name == "digits_mlp" and owner.summary["name"] == "digits_mlp"
    assert [r["epoch"] for r in owner.history if "epoch" in r][-1] == owner.summary["epochs_run"]
    assert owner.shape.input_dim == 64 and owner.shape.output_dim == 10
    recipe, model, pre = owner.load()  # a LoadedRun unpacks like the old 3-tuple
    kept, targets, task = owner.test_outputs()  # test_outputs.npz, kept by training
    split = owner.test_split()
    with torch.no_grad():
        fresh = model(split.x)
    assert task == "multiclass" and torch.equal(targets, split.y)
    assert torch.allclose(kept, fresh, atol=1e-5)
    accuracy = float((kept.argmax(1) == targets).float().mean())
    assert accuracy == pytest.approx(owner.summary["test"]["accuracy"])


def test_a_damaged_model_json_is_one_line(digits_run):
    (Path(digits_run) / runfiles.MODEL).write_text('{"shape": {"input_kind": "pixels"}}')
    with pytest.raises(honed.UserError, match="model.json: damaged"):
        honed.load_run(digits_run)


RUN_FILE_NAMES = {v for k, v in vars(runfiles).items() if k.isupper() and isinstance(v, str)}
# client.py ships alone in bundles (it cannot import honed); cache.py names its own cache entries
OUTSIDE_RUNS = {"runfiles.py", "client.py"}


def test_no_module_joins_a_run_path_with_a_literal_file_name():
    found = []
    for path in SRC.rglob("*.py"):
        if path.name in OUTSIDE_RUNS:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
                right = node.right
                if isinstance(right, ast.Constant) and right.value in RUN_FILE_NAMES:
                    found.append(f"{path.relative_to(SRC)}:{node.lineno} {right.value}")
    assert found == []
