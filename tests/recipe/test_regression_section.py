"""The recipe's `regression:` section: its settings apply once the target turns out to be a number, a key given by
--set or by a search's trial wins over them, and what ran is what the run's recipe says."""

import pytest

import honed
from honed.errors import UserError
from honed.recipe import load_recipe, variant

SECTION = {"optimizer.lr": 0.02, "model.dropout": 0.1}


def test_a_regression_takes_the_section_and_a_classification_does_not(tmp_path):
    for data, expected in (({"source": "synthetic_regression", "n": 120, "features": 3}, (0.02, 0.1)),
                           ({"source": "sklearn", "name": "iris"}, (0.003, 0.0))):
        recipe = {"data": data, "model": {"name": "mlp", "hidden": [4]}, "optimizer": {"lr": 0.003},
                  "train": {"epochs": 1, "report": False}, "regression": SECTION}
        run = honed.train(recipe, out=tmp_path / data["source"])
        ran = run.recipe
        assert (ran.optimizer.lr, ran.model.dropout) == expected
        assert ran.regression == {}  # the run's recipe holds what ran: rerunning it repeats the run


def test_a_key_given_explicitly_wins_over_the_section():
    base = {"data": {"source": "synthetic_regression"}, "regression": SECTION}
    assert load_recipe(base, ["optimizer.lr=0.001"]).regression == {"model.dropout": 0.1}
    assert variant(load_recipe(base), {"model.dropout": 0.3}).regression == {"optimizer.lr": 0.02}  # a trial's


@pytest.mark.parametrize("section, message", [
    ({"data.n": 5}, "cannot depend on the task"),
    ({"optimizer.lrr": 0.1}, "did you mean 'optimizer.lr'"),
    ({"optimizer.lr": -1.0}, "regression: optimizer.lr: Input should be greater than 0"),
])
def test_a_wrong_key_or_value_is_one_line_when_the_recipe_is_read(section, message):
    with pytest.raises(UserError, match=message):
        load_recipe({"data": {"source": "synthetic_regression"}, "regression": section})
