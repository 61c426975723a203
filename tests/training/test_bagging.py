"""model.bags: K members on K folds of every training row, their mean answered, scored out of fold."""

import numpy as np
import pandas as pd
import pytest
import torch

import honed
from honed.api import sized_for_rows
from honed.errors import UserError
from honed.recipe import load_recipe
from honed.training.bagging import deal


def table(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    return pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2],
                         "label": np.where(x[:, 0] + 0.5 * x[:, 1] > 0, "yes", "no")})


def write_texts(folder):
    rows = "".join(f"{'good fine great' if i % 2 else 'bad awful poor'} {i},{'pos' if i % 2 else 'neg'}\n"
                   for i in range(40))
    (folder / "texts.csv").write_text("text,label\n" + rows)
    return folder / "texts.csv"


@pytest.fixture
def bagged(tmp_path):
    table(300, 0).to_csv(tmp_path / "train.csv", index=False)
    table(100, 1).to_csv(tmp_path / "test.csv", index=False)
    return honed.train("tabular", [f"data.train={tmp_path / 'train.csv'}", f"data.test={tmp_path / 'test.csv'}",
                                   "data.target=label", "model.bags=3", "model.ensemble=1", "model.hidden=[16]",
                                   "train.epochs=8", "train.steps=null", "train.report=false"], out=tmp_path / "run")


def test_every_row_trains_and_the_validation_score_is_each_rows_held_out_members(bagged):
    s = bagged.summary
    assert s["sizes"]["train"] == s["sizes"]["val"] == 300  # the validation carve rejoins the training rows
    assert [m["val_rows"] for m in s["bags"]] == [100, 100, 100]
    loaded = honed.load_run(bagged.path)
    members = loaded.model.members
    assert len(members) == 3
    # the same folds again, and each row scored by the one member that never trained on it
    bundle = honed.data.build_data(loaded.recipe.data)
    x = torch.cat([bundle.train.x, bundle.val.x])
    y = torch.cat([bundle.train.y, bundle.val.y])
    from honed.data.bundle import Split

    folds = deal(Split(x, y), "binary", 3, loaded.recipe.seed)
    with torch.no_grad():
        oof = torch.stack([members[int(f)].eval()(x[i: i + 1])[0] for i, f in enumerate(folds)])
    assert s["val"]["accuracy"] == pytest.approx(((oof > 0).float() == y).float().mean().item())
    # the run hands back the same out-of-fold outputs (honed tune's tie test compares trials on them)
    outputs, labels = bagged.out_of_fold
    assert torch.equal(labels, y) and torch.allclose(outputs, oof, atol=1e-5)
    # the run answers the members' mean
    test = table(100, 1).drop(columns=["label"])
    probs = honed.predict(bagged.path, test)["prob_yes"].to_numpy()
    x_test = loaded.pre.inputs(test)
    with torch.no_grad():
        mean = torch.stack([m(x_test) for m in members]).mean(0)
    np.testing.assert_allclose(probs, torch.sigmoid(mean).numpy(), atol=1e-5)
    assert s["test"]["accuracy"] >= 0.85  # a learnt rule (half would be chance)


def test_a_class_rarer_than_the_folds_has_each_row_in_its_own_fold():
    from honed.data.bundle import Split

    y = torch.tensor([0] * 40 + [1] * 30 + [2] * 3)  # 3 rows of a class, 5 folds
    folds = deal(Split(torch.zeros(len(y), 1), y), "multiclass", 5, seed=0)
    assert sorted(folds[y == 2].tolist()) == sorted(set(folds[y == 2].tolist()))  # three different folds
    for f in range(5):  # each member trains on at least two of the three, validates on both large classes
        assert (y[folds != f] == 2).sum() >= 2 and set(y[folds == f].tolist()) >= {0, 1}


def test_auto_bags_follow_rows_times_inputs():
    recipe = load_recipe({"model": {"name": "mlp", "bags": "auto", "numeric_embedding": "periodic", "numeric_dim": 9}})
    assert sized_for_rows(recipe, 9_000, 100, 0).model.bags == 5  # 900,000 cells
    assert sized_for_rows(recipe, 9_000, 100, 30).model.bags == 1  # 30 numbers embedded 9 wide: 3.33 million
    assert sized_for_rows(recipe, 40_000, 10, 0).model.bags == 1


def test_what_a_bag_cannot_do_is_one_line(tmp_path):
    table(60, 0).to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(UserError, match="model.bags = 2 does not work with train.checkpoint"):
        honed.train("tabular", [f"data.path={tmp_path / 't.csv'}", "data.target=label", "model.bags=2",
                                "train.checkpoint.every_epochs=1"], out=tmp_path / "run")
    assert not (tmp_path / "run").exists()
    with pytest.raises(UserError, match=r"model.bags = 2 does not work with text \(feature rows only"):
        honed.train({"data": {"source": "text_files", "path": str(write_texts(tmp_path))}, "model": {
            "name": "bag", "bags": 2}, "train": {"epochs": 1, "checkpoint": None}}, out=tmp_path / "text")
    assert not (tmp_path / "text").exists()


def test_hooks_watch_the_last_member_unless_they_act_on_every_member(tmp_path):
    from honed.training import Hook

    class Seen(Hook):
        def __init__(self, every: bool) -> None:
            self.every_member, self.members = every, []

        def on_fit_start(self, trainer) -> None:
            self.members.append(trainer.member)

    table(90, 0).to_csv(tmp_path / "train.csv", index=False)
    each, last = Seen(True), Seen(False)
    honed.train("tabular", [f"data.train={tmp_path / 'train.csv'}", "data.target=label", "model.bags=3",
                            "model.hidden=[8]", "train.epochs=2", "train.steps=null", "train.report=false"],
                out=tmp_path / "run", hooks=[each, last])
    assert each.members == [0, 1, 2] and last.members == [2]
