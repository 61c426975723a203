"""The README's worked examples, checked against references."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import honed
from honed.data.build import load_raw, split_raw
from honed.recipe import load_recipe

RECIPES = Path(__file__).resolve().parent.parent / "recipes"


def least_squares(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    design = np.c_[x, np.ones(len(x))].astype(np.float64)
    coef, *_ = np.linalg.lstsq(design, y.astype(np.float64), rcond=None)
    return coef


def predict_ls(coef: np.ndarray, x: np.ndarray) -> np.ndarray:
    return np.c_[x, np.ones(len(x))] @ coef


def training_rows(recipe):
    train, _, _ = split_raw(load_raw(recipe.data), recipe.data)
    return train.x, train.y


def test_linear_regression_by_gd_lands_on_the_closed_form_fit(tmp_path):
    run = honed.train(RECIPES / "linear_regression.yaml", out=tmp_path / "run")
    recipe = load_recipe(RECIPES / "linear_regression.yaml")
    coef = least_squares(*training_rows(recipe))
    new = np.random.default_rng(42).normal(size=(50, 3)) * 2
    frame = pd.DataFrame(new, columns=["x0", "x1", "x2"])
    frame.to_csv(tmp_path / "new.csv", index=False)
    got = honed.predict(run.path, tmp_path / "new.csv")["prediction"].to_numpy()
    expected = predict_ls(coef, new)
    assert np.allclose(got, expected, rtol=1e-3, atol=1e-3 * np.abs(expected).mean())
    assert run.summary["epochs_run"] == 1000


def test_linear_regression_on_a_users_csv(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.uniform(-3, 3, size=(300, 2)) * [1.0, 10.0] + [5.0, -20.0]
    frame = pd.DataFrame(x, columns=["rooms", "age"])
    frame["price"] = 3.0 * frame.rooms - 0.5 * frame.age + 7 + rng.normal(0, 0.2, 300)
    frame.to_csv(tmp_path / "houses.csv", index=False)
    overrides = [f"data.path={tmp_path / 'houses.csv'}", "data.target=price"]
    run = honed.train(RECIPES / "linear_regression.yaml", overrides, out=tmp_path / "run")
    coef = least_squares(*training_rows(load_recipe(RECIPES / "linear_regression.yaml", overrides)))
    new = frame[["rooms", "age"]].iloc[:20]
    got = honed.predict(run.path, new)["prediction"].to_numpy()
    expected = predict_ls(coef, new.to_numpy())
    assert np.allclose(got, expected, rtol=1e-3)


def test_same_recipe_and_seed_give_the_same_summary(tmp_path):
    fields = {"data": {"source": "sklearn", "name": "iris"}, "model": {"name": "mlp", "hidden": [8], "dropout": 0.1},
              "train": {"epochs": 3, "batch_size": 16}}
    a = honed.train(fields, out=tmp_path / "a").summary
    b = honed.train(fields, out=tmp_path / "b").summary
    c = honed.train(fields, ["seed=1"], out=tmp_path / "c").summary
    timing = ("train_seconds", "total_seconds", "samples_per_second", "timing")
    strip = lambda s: {k: v for k, v in s.items() if k not in timing}  # noqa: E731
    assert strip(a) == strip(b)
    assert strip(a) != strip(c)


@pytest.mark.parametrize("model", [{"name": "bag", "hidden": [24]}, {"name": "cnn", "channels": [8]},
                                   {"name": "rnn", "cell": "gru", "hidden_size": 8}])
def test_imdb_recipe_on_a_small_archive(tmp_path, imdb_archive, model):
    overrides = [f"data.path={imdb_archive}", "train.epochs=15", "optimizer.lr=0.02", "data.max_len=20",
                 "data.num_words=100", "train.batch_size=8"]
    run = honed.train(RECIPES / "imdb_seed.yaml", overrides + [f"model={model}"], out=tmp_path / "run")
    s = run.summary
    assert s["task"] == "binary" and s["labels"] == ["neg", "pos"]
    assert s["test"]["accuracy"] == 1.0  # the generated reviews are separable by their words
    texts = tmp_path / "texts.txt"
    texts.write_text("a wonderful film, great acting\nan awful, boring mess\n")
    out = honed.predict(run.path, texts)
    assert out["prediction"].tolist() == ["pos", "neg"]
    assert np.allclose(out["prob_neg"] + out["prob_pos"], 1.0)


def test_text_files_multiclass_train_evaluate_predict(tmp_path, text_csvs):
    train, test = text_csvs
    recipe = {"data": {"source": "text_files", "train": str(train), "test": str(test), "max_len": 8},
              "model": {"name": "bag", "hidden": [16]}, "optimizer": {"name": "adam", "lr": 0.05},
              "train": {"epochs": 20, "batch_size": 8}}
    run = honed.train(recipe, out=tmp_path / "run")
    assert run.summary["test"]["accuracy"] == 1.0
    assert np.array(run.summary["test"]["confusion_matrix"]).trace() == 15
    again = honed.evaluate(run.path)
    assert again["accuracy"] == pytest.approx(run.summary["test"]["accuracy"])
    out = honed.predict(run.path, ["goal team win", "vote party law"])
    assert out["prediction"].tolist() == ["sports", "politics"]
    assert {"prob_food", "prob_politics", "prob_sports"} <= set(out.columns)


@pytest.mark.parametrize("name", ["digits_cnn", "diabetes_mlp"])
def test_bundled_offline_recipes_learn(tmp_path, name):
    s = honed.train(RECIPES / f"{name}.yaml", ["train.epochs=12"], out=tmp_path / "run").summary
    if name == "digits_cnn":
        assert s["test"]["accuracy"] > 0.9
    else:
        assert s["test"]["r2"] > 0.3


def test_evaluate_on_other_data_and_parquet_input(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=400), "b": rng.normal(size=400)})
    frame["label"] = np.where(frame.a + frame.b > 0, "yes", "no")
    frame.iloc[:300].to_parquet(tmp_path / "train.parquet")
    shifted = frame.iloc[300:].copy()
    shifted["label"] = np.where(shifted.label == "yes", "no", "yes")  # every label flipped
    shifted.to_csv(tmp_path / "flipped.csv", index=False)
    recipe = {"data": {"source": "tabular", "path": str(tmp_path / "train.parquet"), "target": "label"},
              "model": {"name": "logistic"}, "optimizer": {"name": "adam", "lr": 0.1}, "train": {"epochs": 30}}
    run = honed.train(recipe, out=tmp_path / "run")
    assert run.summary["task"] == "binary" and run.summary["test"]["accuracy"] > 0.95
    flipped = honed.evaluate(run.path, ["data.path=" + str(tmp_path / "flipped.csv"), "data.test_fraction=0.5"])
    assert flipped["accuracy"] < 0.05


def test_predict_input_errors(tmp_path):
    run = honed.train(RECIPES / "linear_regression.yaml", ["train.epochs=2"], out=tmp_path / "run")
    pd.DataFrame({"x0": [1.0], "x1": [2.0]}).to_csv(tmp_path / "short.csv", index=False)
    with pytest.raises(honed.UserError, match="column 'x2' is not in"):
        honed.predict(run.path, tmp_path / "short.csv")
    with pytest.raises(honed.UserError, match="file not found"):
        honed.predict(run.path, tmp_path / "missing.csv")


@pytest.mark.parametrize("recipe", ["imdb_fast", "imdb_best_cpu"])
def test_fast_imdb_recipes_on_a_small_archive(tmp_path, imdb_archive, recipe):
    """Hashed n-grams, unique tokens, sparse embeddings and bucketing, end to end through predict."""
    overrides = [f"data.path={imdb_archive}", "train.epochs=8", "train.batch_size=8", "data.num_words=100",
                 "data.ngram_buckets=1000", "train.target.value=0.9", "train.early_stopping=null"]
    run = honed.train(RECIPES / f"{recipe}.yaml", overrides, out=tmp_path / "run")
    s = run.summary
    assert s["test"]["accuracy"] == 1.0
    reached = s["time_to_target"]
    assert reached["reached"] and 0 < reached["seconds"] <= s["total_seconds"] and reached["epoch"] >= 1
    out = honed.predict(run.path, ["a wonderful film, great acting", "an awful, boring mess"])
    assert out["prediction"].tolist() == ["pos", "neg"]
