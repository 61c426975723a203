"""honed cv: folds that are stratified, disjoint, complete and group-respecting; fold runs that validate on
exactly their fold and never score the test split; statistics equal numpy's and scipy's."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import honed
from honed.data.split import fold_ids
from honed.errors import UserError


def test_folds_are_stratified_disjoint_and_cover_every_row_once():
    labels = np.array(["a"] * 50 + ["b"] * 23 + ["c"] * 7, dtype=object)
    folds = fold_ids(labels, 5, seed=3)
    assert sorted(np.bincount(folds)) == [16, 16, 16, 16, 16]  # every row in exactly one fold, sizes even
    for label in ("a", "b", "c"):
        counts = np.bincount(folds[labels == label], minlength=5)
        assert counts.max() - counts.min() <= 1  # each class spread as evenly as it can be
    assert not np.array_equal(folds, fold_ids(labels, 5, seed=4))  # the seed reshuffles (repeats)


def test_groups_never_sit_in_two_folds():
    rng = np.random.default_rng(0)
    groups = np.array([f"user{g}" for g in rng.integers(0, 30, 400)], dtype=object)
    folds = fold_ids(None, 4, seed=0, groups=groups)
    for g in set(groups):
        assert len(set(folds[groups == g])) == 1
    assert np.bincount(folds).min() > 60  # largest groups first, each to the emptiest fold: balanced folds


def test_a_regression_target_deals_its_rows_into_even_folds():
    folds = fold_ids(None, 4, seed=0, rows=102)  # no classes to stratify on, no groups: a seeded shuffle
    assert sorted(np.bincount(folds)) == [25, 25, 26, 26]
    assert not np.array_equal(folds, fold_ids(None, 4, seed=1, rows=102))


def test_folds_that_cannot_be_made_say_why():
    with pytest.raises(UserError, match="class 'c' has only 2 training rows; use at most 2 folds"):
        fold_ids(np.array(["a"] * 10 + ["c"] * 2, dtype=object), 3, seed=0)
    with pytest.raises(UserError, match="class 'c' has a single training row"):
        fold_ids(np.array(["a"] * 10 + ["c"], dtype=object), 3, seed=0)
    with pytest.raises(UserError, match="only 2 groups"):
        fold_ids(None, 3, seed=0, groups=np.array(["x", "y", "x"], dtype=object))


def table_recipe(tmp_path, rows=120):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=rows), "b": rng.normal(size=rows)})
    frame["y"] = (frame.a + 0.5 * frame.b + 0.3 * rng.normal(size=rows) > 0).astype(int)
    frame["user"] = [f"u{i % 17}" for i in range(rows)]
    frame.to_csv(tmp_path / "t.csv", index=False)
    return {"name": "cvtable", "data": {"source": "tabular", "path": str(tmp_path / "t.csv"), "target": "y",
                                        "columns": ["a", "b"]},
            "model": {"name": "logistic"}, "optimizer": {"name": "adam", "lr": 0.05},
            "train": {"epochs": 3, "batch_size": 32, "checkpoint": None}}


def test_each_fold_validates_on_its_own_rows_and_the_statistics_are_numpys_and_scipys(tmp_path):
    result = honed.cv(table_recipe(tmp_path), folds=4, repeats=2, out=tmp_path / "cv")
    assert len(result.folds) == 8
    for repeat in (0, 1):  # the four validation folds of a repeat hold every training row once
        rows = [r for r in result.folds if r["repeat"] == repeat]
        assert sum(r["val rows"] for r in rows) == rows[0]["val rows"] + rows[0]["train rows"] == 96
    accuracies = np.array([r["accuracy"] for r in result.folds])
    s = result.stats["accuracy"]
    assert s["mean"] == pytest.approx(accuracies.mean()) and s["std"] == pytest.approx(accuracies.std(ddof=1))
    low, high = stats.t.interval(0.95, len(accuracies) - 1, loc=accuracies.mean(), scale=stats.sem(accuracies))
    assert s["ci95"] == pytest.approx([low, high])
    for r in result.folds:  # no fold run scored the test split
        assert json.loads((tmp_path / "cv" / "folds" / f"r{r['repeat']}-f{r['fold']}" / "summary.json").read_text())["test"] == {}
    report = json.loads((tmp_path / "cv" / "cv.json").read_text())
    assert report["test"] is None and (tmp_path / "cv" / "cv.png").stat().st_size > 10_000
    page = (tmp_path / "cv" / "cv.html").read_text()
    assert page.count("<tr>") == (1 + len(result.stats)) + (1 + len(result.folds)) and f"{s['mean']:.4g}" in page


def test_grouped_cv_validates_on_whole_groups_and_test_scores_once_on_every_training_row(tmp_path):
    result = honed.cv(table_recipe(tmp_path), folds=3, group_column="user", test=True, out=tmp_path / "cv")
    assert sum(r["val rows"] for r in result.folds) == 96 and all(r["val rows"] > 0 for r in result.folds)
    final = json.loads((tmp_path / "cv" / "final" / "summary.json").read_text())
    assert final["sizes"]["train"] == 96 and result.test["accuracy"] == final["test"]["accuracy"]
    assert "ci95" in result.test


def test_cv_command_errors_are_one_line(tmp_path):
    (tmp_path / "r.yaml").write_text(json.dumps(table_recipe(tmp_path)))
    for args, words in ((["--folds", "1"], "at least 2 folds"), (["--group-column", "nope"], "column 'nope' is not in")):
        done = subprocess.run([sys.executable, "-m", "honed", "cv", str(tmp_path / "r.yaml"), *args],
                              capture_output=True, text=True, cwd=tmp_path)
        assert done.returncode == 2 and words in done.stderr and "Traceback" not in done.stderr


def test_seeds_train_once_per_seed_and_report_numpys_spread(tmp_path):
    from honed.tuning.seeds import across_seeds, parse_seeds

    report = across_seeds(table_recipe(tmp_path), [0, 1, 2], out=tmp_path / "seeds")
    accuracies = np.array([r["accuracy"] for r in report["runs"]])
    assert report["stats"]["accuracy"]["std"] == pytest.approx(accuracies.std(ddof=1))
    recorded = [honed.load_recipe(tmp_path / "seeds" / f"seed-{s}" / "recipe.yaml") for s in (0, 1, 2)]
    assert [(r.seed, r.data.seed) for r in recorded] == [(0, 0), (1, 1), (2, 2)]
    for bad in ("0", "0,0", "a,b"):
        with pytest.raises(UserError, match="--seeds"):
            parse_seeds(bad)


def test_cv_on_a_mixed_regression_table_covers_every_row_once(tmp_path):
    """A table with a text category, missing cells and a number to predict: each fold is encoded on its own
    training rows, and the folds of a regression target (nothing to stratify) still hold every row once."""
    rng = np.random.default_rng(1)
    rows = 90
    frame = pd.DataFrame({"city": rng.choice(["oslo", "lima", None], rows), "size": rng.normal(size=rows)})
    frame["price"] = frame["size"] * 2 + (frame["city"] == "oslo") + 0.1 * rng.normal(size=rows)
    frame.loc[::7, "size"] = None
    frame.to_csv(tmp_path / "t.csv", index=False)
    result = honed.cv("tabular", [f"data.path={tmp_path / 't.csv'}", "data.target=price", "train.epochs=2",
                                  "train.steps=null", "model.ensemble=2", "model.hidden=[16]"], folds=3,
                      out=tmp_path / "cv")
    assert sum(r["val rows"] for r in result.folds) == result.folds[0]["val rows"] + result.folds[0]["train rows"] == 72
    assert set(result.stats) >= {"rmse", "r2"} and len(result.folds) == 3
