"""honed compare: a grid of recipe variants, or finished runs, in one report."""

import json

import pytest

import honed
from honed.errors import UserError
from honed.tuning.compare import parse_vary, variants

LINEAR = {"name": "lin", "data": {"source": "synthetic_regression", "n": 300}, "model": {"name": "linear"},
          "optimizer": {"name": "gd", "lr": 0.1}, "train": {"epochs": 15}}


def test_vary_makes_the_grid_of_values():
    vary = parse_vary(["optimizer.name=gd,sgd,adam", "schedule.name=constant,exponential"])
    assert vary == {"optimizer.name": ["gd", "sgd", "adam"], "schedule.name": ["constant", "exponential"]}
    grid = variants(vary)
    assert len(grid) == 6 and grid[1] == {"optimizer.name": "gd", "schedule.name": "exponential"}
    assert parse_vary(["optimizer.lr=0.1,1e-3"]) == {"optimizer.lr": [0.1, 0.001]}


@pytest.mark.parametrize("items, words", [
    (["optimizer.nam=gd,sgd"], ["--vary optimizer.nam", "did you mean 'optimizer.name'"]),
    (["optimizer.name"], ["must look like"]),
    (["optimizer.lr=0.1", "optimizer.lr=0.2"], ["given twice"]),
])
def test_bad_vary_is_a_one_line_error(items, words):
    with pytest.raises(UserError) as e:
        parse_vary(items)
    for word in words:
        assert word in str(e.value)


def test_variants_share_seed_and_data_and_the_report_holds_them_all(tmp_path):
    result = honed.compare(LINEAR, ["optimizer.name=gd,sgd", "schedule.name=constant,exponential"],
                           ["train.target.metric=mse", "train.target.value=5.0"], out=tmp_path / "c")
    assert [r["run"] for r in result.rows] == ["optimizer.name=gd schedule.name=constant",
                                               "optimizer.name=gd schedule.name=exponential",
                                               "optimizer.name=sgd schedule.name=constant",
                                               "optimizer.name=sgd schedule.name=exponential"]
    for row in result.rows:
        summary = json.loads((tmp_path / "c" / "runs" / row["path"].split("/runs/")[-1] / "summary.json").read_text())
        assert summary["seed"] == 0
        assert row["test mse"] == pytest.approx(summary["test"]["mse"])
        assert row["s per epoch"] == pytest.approx(summary["train_seconds"] / summary["epochs_run"])
    sizes = {json.dumps(json.loads((tmp_path / "c" / "runs" / r["path"].split("/runs/")[-1] / "summary.json")
                                   .read_text())["sizes"]) for r in result.rows}
    assert len(sizes) == 1  # the same data for every variant
    html = (tmp_path / "c" / "compare.html").read_text()
    assert "data:image/png;base64," in html and html.count("<tr>") == 5
    assert (tmp_path / "c" / "compare.png").read_bytes()[:4] == b"\x89PNG"
    assert len((tmp_path / "c" / "compare.csv").read_text().splitlines()) == 5
    assert any(r["time to target s"] is not None for r in result.rows)


def test_a_diverging_variant_is_reported_not_fatal(tmp_path):
    result = honed.compare(LINEAR, ["optimizer.lr=0.1,1e6"], out=tmp_path / "c")
    ok, broken = result.rows
    assert ok["stopped"] == "finished all epochs"
    assert "loss became" in broken["stopped"]


def test_finished_runs_are_compared_as_they_are(tmp_path):
    a = honed.train(LINEAR, out=tmp_path / "a").path
    b = honed.train(LINEAR, ["optimizer.lr=0.01"], out=tmp_path / "b").path
    result = honed.compare_runs([a, b], out=tmp_path / "c")
    assert [r["run"] for r in result.rows] == ["a", "b"] and result.metric == "val_mse"
    assert result.rows[0]["val_mse"] < result.rows[1]["val_mse"]  # lr 0.1 gets further in 15 steps
    with pytest.raises(UserError, match="not a finished honed run"):
        honed.compare_runs([a, tmp_path], out=tmp_path / "d")


def test_each_variant_is_tested_against_the_best_by_validation_on_the_same_test_rows(tmp_path, text_csvs):
    import numpy as np
    from scipy import stats

    from honed.api import test_outputs
    from honed.tuning.compare import SIGNIFICANCE

    train, test = text_csvs
    recipe = {"name": "topics", "data": {"source": "text_files", "train": str(train), "test": str(test)},
              "model": {"name": "bag", "hidden": []}, "optimizer": {"lr": 0.05},
              "train": {"epochs": 3, "batch_size": 8, "checkpoint": None}}
    result = honed.compare(recipe, ["optimizer.lr=0.0001,0.05"], out=tmp_path / "c")
    best = max(result.rows, key=lambda r: r["val_accuracy"])
    assert best[SIGNIFICANCE] == "best by val_accuracy"
    other = next(r for r in result.rows if r is not best)
    right = {}
    for row in (best, other):
        scores, targets, _ = test_outputs(row["path"])
        right[row["run"]] = (scores.argmax(dim=1) == targets).numpy()
    b = int(np.sum(right[other["run"]] & ~right[best["run"]]))
    c = int(np.sum(~right[other["run"]] & right[best["run"]]))
    expected = 1.0 if b + c == 0 else stats.binomtest(b, b + c, 0.5).pvalue
    assert other["p vs best"] == pytest.approx(expected)
    assert ("significant" if expected < 0.05 else "within noise") in other[SIGNIFICANCE]
    low, high = json.loads((tmp_path / "c" / "runs" / "optimizer.lr=0.05" / "summary.json").read_text())["test"]["ci95"][
        "accuracy"]
    shown = next(r for r in result.rows if r["run"] == "lr=0.05")["test accuracy 95% CI"]
    assert shown == f"{low:.4g}-{high:.4g}"
