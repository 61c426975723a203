import typing

import pytest

from honed.data import SOURCES
from honed.errors import UserError
from honed.evaluation import METRICS
from honed.models import INITS, MODELS
from honed.recipe import load_recipe, parse_override
from honed.recipe import schema
from honed.training import LOSSES, OPTIMIZERS, SCHEDULES


def test_overrides_are_yaml_scalars():
    assert parse_override("optimizer.lr=1e-3") == ("optimizer.lr", 0.001)
    assert parse_override("train.shuffle=false") == ("train.shuffle", False)
    assert parse_override("model.hidden=[8, 4]") == ("model.hidden", [8, 4])
    r = load_recipe({}, ["optimizer.lr=0.5", "model.hidden=[8,4]", "train.early_stopping.patience=7"])
    assert r.optimizer.lr == 0.5 and r.model.hidden == [8, 4] and r.train.early_stopping.patience == 7


def test_recipe_file_and_override(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("optimizer:\n  name: sgd\n  lr: 0.1\n")
    r = load_recipe(path, ["optimizer.momentum=0.9"])
    assert (r.name, r.optimizer.name, r.optimizer.lr, r.optimizer.momentum) == ("r", "sgd", 0.1, 0.9)


@pytest.mark.parametrize("override, words", [
    ("optimzer.lr=1", ["'optimzer'", "did you mean 'optimizer'"]),
    ("optimizer.lrr=1", ["'optimizer.lrr'", "did you mean 'lr'", "allowed here"]),
    ("optimizer.name=adm", ["optimizer.name", "'adm'", "did you mean 'adam'", "'sgd'"]),
    ("optimizer.lr=-1", ["optimizer.lr", "-1", "greater than 0"]),
    ("train.epochs=many", ["train.epochs", "'many'", "integer"]),
    ("schedule.name=cosin", ["schedule.name", "'cosin'", "'cosine'"]),
    ("optimizer.nesterov=true", ["nesterov", "momentum"]),
])
def test_bad_values_name_key_value_and_allowed(override, words):
    with pytest.raises(UserError) as e:
        load_recipe({}, [override])
    message = str(e.value)
    assert "\n" not in message
    for w in words:
        assert w in message


def test_bad_files(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_recipe(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_recipe(bad)


def test_data_path_turns_generated_data_into_a_file():
    r = load_recipe({"data": {"source": "synthetic_regression"}}, ["data.path=x.csv", "data.target=y"])
    assert r.data.source == "tabular"


def literal_values(alias) -> set[str]:
    return set(typing.get_args(alias))


@pytest.mark.parametrize("alias, registry", [
    (schema.DataSource, SOURCES), (schema.ModelName, MODELS), (schema.InitName, INITS),
    (schema.OptimizerName, OPTIMIZERS), (schema.ScheduleName, SCHEDULES), (schema.MetricName, METRICS),
])
def test_every_name_in_the_schema_has_a_component(alias, registry):
    assert literal_values(alias) == set(registry.names())


def test_loss_names_match_registry_plus_auto():
    assert literal_values(schema.LossName) == set(LOSSES.names()) | {"auto"}
