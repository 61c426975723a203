"""Search spaces: declared in the recipe or defaulted per model type, drawn by Optuna, applied as valid recipes."""

import optuna
import pytest

from honed.errors import UserError
from honed.recipe import load_recipe
from honed.tuning.space import apply, check_space, default_space, recipe_values, space_of, suggest

MODELS = [
    {"data": {"source": "synthetic_regression"}, "model": {"name": "linear"}, "optimizer": {"name": "gd"}},
    {"data": {"source": "sklearn", "name": "digits"}, "model": {"name": "mlp", "hidden": [32]}},
    {"data": {"source": "sklearn", "name": "digits"}, "model": {"name": "cnn"}},
    {"data": {"source": "imdb"}, "model": {"name": "rnn"}},
    {"data": {"source": "imdb", "ngrams": 2}, "model": {"name": "bag", "sparse": True}},
    {"data": {"source": "images", "path": "photos"}, "model": {"name": "efficientnet", "pretrained": "efficientnet-lite0"}},
]


@pytest.mark.parametrize("raw", MODELS, ids=lambda r: r["model"]["name"])
def test_the_default_space_of_every_model_type_makes_valid_recipes(raw):
    recipe = load_recipe(raw)
    space, declared = space_of(recipe)
    assert not declared and "optimizer.lr" in space
    check_space(recipe, space)  # every end and every choice is a valid recipe
    if recipe.optimizer.name == "gd":
        assert "optimizer.name" not in space and "train.batch_size" not in space
    if recipe.model.sparse:
        assert "rmsprop" not in space["optimizer.name"].choice


def test_drawn_values_come_back_as_recipe_values():
    recipe = load_recipe({"model": {"name": "mlp"}, "search": {
        "model.hidden": {"choice": [[64], [128, 64]]}, "optimizer.lr": {"loguniform": [1e-4, 1e-1]},
        "model.dropout": {"uniform": [0.0, 0.5], "step": 0.1}, "train.batch_size": {"int": [16, 128], "log": True}}})
    space, declared = space_of(recipe)
    assert declared
    trial = optuna.trial.FixedTrial({"model.hidden": "[128, 64]", "optimizer.lr": 0.01, "model.dropout": 0.3,
                                     "train.batch_size": 32})
    params = suggest(trial, space)
    assert params == {"model.hidden": [128, 64], "optimizer.lr": 0.01, "model.dropout": 0.3, "train.batch_size": 32}
    tuned = apply(recipe, params)
    assert tuned.model.hidden == [128, 64] and tuned.optimizer.lr == 0.01 and tuned.train.batch_size == 32


def test_the_recipe_as_written_is_the_first_point_when_it_lies_in_the_space():
    recipe = load_recipe({"model": {"name": "mlp", "hidden": [64]}, "optimizer": {"lr": 0.01}, "search": {
        "model.hidden": {"choice": [[64], [128]]}, "optimizer.lr": {"loguniform": [1e-4, 1e-1]}}})
    assert recipe_values(recipe, recipe.search) == {"model.hidden": "[64]", "optimizer.lr": 0.01}
    outside = load_recipe(recipe, ["optimizer.lr=0.5"])
    assert recipe_values(outside, outside.search) is None


@pytest.mark.parametrize("search, words", [
    ({"optimizer.lrr": {"loguniform": [1e-4, 1e-1]}}, ["unknown parameter 'optimizer.lrr'", "did you mean 'optimizer.lr'"]),
    ({"optimizer": {"choice": ["sgd"]}}, ["'optimizer' is a section"]),
    ({"optimizer.lr": {"uniform": [0.1, 0.01]}}, ["search.optimizer.lr", "empty"]),
    ({"optimizer.lr": {"loguniform": [0, 0.1]}}, ["low > 0"]),
    ({"model.dropout": {"choice": []}}, ["choice is empty"]),
    ({"optimizer.lr": {"uniform": [0.1, 1.0], "choice": [0.1]}}, ["exactly one"]),
])
def test_bad_search_spaces_are_one_line_errors(search, words):
    with pytest.raises(UserError) as e:
        load_recipe({"search": search})
    for word in words:
        assert word in str(e.value)


def test_a_value_the_recipe_refuses_is_named_before_any_trial_runs():
    recipe = load_recipe({"search": {"optimizer.name": {"choice": ["adam", "lion"]}}})
    with pytest.raises(UserError, match=r"search.optimizer.name: the value 'lion' makes an invalid recipe"):
        check_space(recipe, recipe.search)
    recipe = load_recipe({"search": {"model.dropout": {"uniform": [0.0, 1.5]}}})
    with pytest.raises(UserError, match="search.model.dropout: the value 1.5"):
        check_space(recipe, recipe.search)
