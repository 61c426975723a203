"""Greedy ensemble selection over a search's trials, and the assembled run (model.members)."""

import importlib
import subprocess
import sys

import pytest
import torch
from sklearn.metrics import log_loss

import honed
from honed import api
from honed.errors import UserError
from honed.export.onnx import export_onnx
from honed.export.prune import prune
from honed.recipe import load_recipe
from honed.tuning import ensemble

TABLE = {"name": "small", "seed": 0, "data": {"source": "sklearn", "name": "breast_cancer"},
         "model": {"name": "mlp", "hidden": [8], "bags": 2}, "optimizer": {"name": "adam", "lr": 0.01},
         "train": {"epochs": 2, "batch_size": 64, "checkpoint": None}}


def test_two_regressors_off_by_plus_and_minus_one_are_blended_half_and_half_to_zero_error():
    y = torch.randn(50, 1)
    weights, loss = ensemble.select({3: y + 1, 7: y - 1, 9: y + 3}, y, "regression")
    assert weights == {3: 0.5, 7: 0.5} and loss == pytest.approx(0.0, abs=1e-12)


def test_the_kept_loss_is_the_blends_log_loss_and_never_worse_than_the_best_trial():
    generator = torch.Generator().manual_seed(0)
    targets = torch.randint(0, 3, (400,), generator=generator)
    truth = torch.nn.functional.one_hot(targets, 3).float()
    outputs = {t: 2 * truth + torch.randn(400, 3, generator=generator) * (1 + t) for t in range(4)}
    weights, loss = ensemble.select(outputs, targets, "multiclass")
    assert sum(weights.values()) == pytest.approx(1.0) and len(weights) > 1
    blend = ensemble.blend(outputs, weights)
    assert loss == pytest.approx(log_loss(targets.numpy(), torch.softmax(blend.double(), 1).numpy()), rel=1e-5)
    single = min(log_loss(targets.numpy(), torch.softmax(o.double(), 1).numpy()) for o in outputs.values())
    assert loss <= single
    rounds = sum(1 for _ in range(ensemble.ROUNDS))
    assert all(any(w == pytest.approx(k / n) for n in range(1, rounds + 1) for k in range(1, n + 1))
               for w in weights.values())  # a trial's weight: how often it was added, over the kept round


def test_a_binary_blend_scores_as_sklearn_says():
    generator = torch.Generator().manual_seed(1)
    targets = torch.randint(0, 2, (300,), generator=generator)
    outputs = {t: (2 * targets - 1).float().unsqueeze(1) + torch.randn(300, 1, generator=generator) * 2
               for t in range(3)}
    weights, loss = ensemble.select(outputs, targets, "binary")
    blend = ensemble.blend(outputs, weights)
    assert loss == pytest.approx(log_loss(targets.numpy(), torch.sigmoid(blend.double()).numpy()[:, 0]), rel=1e-5)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("members")
    first = honed.train(TABLE, out=root / "a")
    second = honed.train(TABLE | {"model": TABLE["model"] | {"hidden": [16, 8], "dropout": 0.1}}, out=root / "b")
    return root, first, second


def test_an_assembled_run_answers_the_weighted_mean_of_its_members_everywhere(two_runs):
    root, first, second = two_runs
    run = api.assemble([(first.path, 3.0), (second.path, 1.0)], root / "ensemble")
    recipe = load_recipe(run.path / "recipe.yaml")
    assert [m.weight for m in recipe.model.members] == [0.75, 0.25]
    assert recipe.model.members[0].set == {} and recipe.model.members[1].set == {"hidden": [16, 8], "dropout": 0.1}
    _, model_a, _ = api.load_run(first.path)
    _, model_b, _ = api.load_run(second.path)
    _, model, _ = api.load_run(run.path)
    test = api.Run.open(run.path).test_split()
    with torch.no_grad():
        expected = 0.75 * model_a(test.x) + 0.25 * model_b(test.x)
        torch.testing.assert_close(model(test.x), expected)
    assert run.summary["test"]["accuracy"] == pytest.approx(api.evaluate(run.path)["accuracy"])
    assert run.summary["params"] == first.summary["params"] + second.summary["params"]
    exported = export_onnx(run.path)  # the members inside one graph, checked against PyTorch by the export
    assert exported["check"]["max_abs_difference"] < 1e-4
    with pytest.raises(UserError, match="not fine-tuned again"):
        prune(run.path, target=0.5)


def test_an_ensemble_is_not_trained_again_and_members_must_share_their_data(two_runs, tmp_path):
    root, first, second = two_runs
    done = subprocess.run([sys.executable, "-m", "honed", "train", str(first.path / "recipe.yaml"), "--set",
                           "model.members=[{weight: 1.0}]", "--out", str(tmp_path / "x")], capture_output=True,
                          text=True)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "not trained again" in done.stderr
    other = honed.train(TABLE | {"data": {"source": "sklearn", "name": "breast_cancer", "val_fraction": 0.3}},
                        out=tmp_path / "other")
    with pytest.raises(UserError, match="share their preprocessing"):
        api.assemble([(first.path, 1.0), (other.path, 1.0)], tmp_path / "mixed")
    with pytest.raises(UserError, match="sum to 0.7, not 1"):
        load_recipe(TABLE, ["model.members=[{weight: 0.5}, {weight: 0.2}]"])
    with pytest.raises(UserError, match="not a model key"):
        load_recipe(TABLE, ["model.members=[{weight: 1.0, set: {lr: 0.1}}]"])


def test_a_search_over_bagged_trials_ends_on_the_selected_ensemble(tmp_path, monkeypatch):
    """Trials that are bags (out-of-fold outputs on every training row) are selected from; when the selection keeps
    two, the final run is their ensemble, scored on the test split once, and best.yaml stays a trainable recipe."""
    tuning = importlib.import_module("honed.tuning.tune")
    seen = {}

    def pick_two(outputs, targets, task):
        seen.update(outputs=outputs, targets=targets)
        first, second = list(outputs)[:2]
        return {first: 0.5, second: 0.5}, 0.0

    monkeypatch.setattr(tuning.ensemble, "select", pick_two)
    recipe = TABLE | {"search": {"model.hidden": {"choice": [[8], [16]]}, "optimizer.lr": {"choice": [0.01, 0.003]}}}
    result = honed.tune(recipe, budget=120, trials=3, out=tmp_path / "t")
    chosen = result.summary["tune"]["ensemble"]
    assert len(chosen) == 2 and result.best["run_dir"].endswith("best-ensemble")
    assert {len(o) for o in seen["outputs"].values()} == {result.summary["sizes"]["train"]}  # out of fold, every row
    _, model, _ = api.load_run(result.best["run_dir"])
    members = [api.load_run(tmp_path / "t" / "trials" / f"trial-{int(t):04d}")[1] for t in chosen]
    test = api.Run.open(result.best["run_dir"]).test_split()
    with torch.no_grad():
        torch.testing.assert_close(model(test.x), 0.5 * members[0](test.x) + 0.5 * members[1](test.x))
    assert "ci95" in result.summary["test"]
    assert not load_recipe(result.out / "best.yaml").model.members  # the top trial's recipe: it trains
