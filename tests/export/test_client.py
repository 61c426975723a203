"""The bundle's own client (predict.py): predicts like the run, with honed not importable at all."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

import honed
from honed.export import TorchPredictor, export_onnx

BLOCK_HONED = "import sys, runpy; sys.modules['honed'] = None; sys.argv = ['predict.py', *sys.argv[1:]]; " \
              "runpy.run_path('predict.py', run_name='__main__')"
TEXTS = ["match goal team score", "vote election party law", "recipe cook taste bake", "unknown words here", ""]


def client_predictions(run, tmp_path, args: list[str]) -> list[dict]:
    """Export, copy the bundle somewhere else, and run its predict.py there without honed."""
    export_onnx(run)
    bundle = shutil.copytree(run / "onnx", tmp_path / "elsewhere")
    done = subprocess.run([sys.executable, "-c", BLOCK_HONED, *args], cwd=bundle, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def assert_same(client: list[dict], reference: list[dict]) -> None:
    assert len(client) == len(reference)
    for a, b in zip(client, reference):
        if "probabilities" in b:
            assert a["prediction"] == b["prediction"]
            for label, p in b["probabilities"].items():
                assert a["probabilities"][label] == pytest.approx(p, abs=1e-5)
        else:
            assert a["prediction"] == pytest.approx(b["prediction"], rel=1e-4, abs=1e-4)


def text_recipe(text_csvs, **data):
    train, test = text_csvs
    return {"data": {"source": "text_files", "train": str(train), "test": str(test)} | data,
            "model": {"name": "bag", "hidden": [16]}, "optimizer": {"lr": 0.05},
            "train": {"epochs": 3, "batch_size": 8, "checkpoint": None}}


@pytest.mark.parametrize("data", [
    {"ngrams": 2, "ngram_buckets": 5000},
    {"ngrams": 3, "ngram_buckets": 777, "unique_tokens": True, "keep_tokens": "last", "max_len": 3, "num_words": 12},
    {"tokenizer": "bpe", "num_words": 60, "max_len": 5},
], ids=["bigrams", "trigrams-unique-last", "bpe"])
def test_text_bundles_tokenize_like_training(text_csvs, tmp_path, data):
    run = honed.train(text_recipe(text_csvs, **data), out=tmp_path / "run").path
    client = client_predictions(run, tmp_path, TEXTS)
    assert [c["input"] for c in client] == TEXTS
    assert_same(client, TorchPredictor(run).predict(TEXTS))


@pytest.mark.parametrize("fixture", ["digits_run", "regression_run"])
def test_feature_bundles_standardize_like_training(fixture, request, tmp_path):
    run = request.getfixturevalue(fixture)
    predictor = TorchPredictor(run)
    rows = np.random.default_rng(0).normal(size=(6, len(predictor.pre.columns))) * 3
    by_name = [dict(zip(predictor.pre.columns, map(float, r))) for r in rows]
    (tmp_path / "rows.json").write_text(json.dumps(by_name[:3] + rows[3:].tolist()))  # by name, and by position
    client = client_predictions(run, tmp_path, ["--rows", str(tmp_path / "rows.json")])
    assert_same(client, predictor.predict(rows.astype(np.float32)))


def test_the_client_refuses_an_empty_call(regression_run, tmp_path):
    export_onnx(regression_run)
    done = subprocess.run([sys.executable, "predict.py"], cwd=regression_run / "onnx", capture_output=True, text=True)
    assert done.returncode == 2 and "give texts, --rows FILE or --images FILE..." in done.stderr


@pytest.mark.parametrize("embedding", ["periodic", "piecewise"])
def test_table_bundles_encode_categories_missing_cells_and_dates_like_training(tmp_path, embedding):
    """A table with text categories, dates and missing cells: the bundle (predict.py + bundle_tables.py, honed not
    importable) answers rows with missing cells, unseen categories and reordered columns as the run does."""
    import pandas as pd

    rng = np.random.default_rng(0)
    n = 300
    frame = pd.DataFrame({"city": rng.choice(["paris", "lima", "oslo"], n), "income": rng.lognormal(3, 1, n),
                          "signed": pd.date_range("2020-01-01", periods=n, freq="D").strftime("%Y-%m-%d"),
                          "label": rng.choice(["yes", "no"], n)})
    frame.loc[rng.random(n) < 0.1, "income"] = None
    frame.loc[rng.random(n) < 0.1, "city"] = None
    frame.to_csv(tmp_path / "t.csv", index=False)
    run = honed.train("tabular", [f"data.path={tmp_path / 't.csv'}", "data.target=label", "train.epochs=2",
                                  "model.ensemble=2", "train.report=false", f"model.numeric_embedding={embedding}"],
                      out=tmp_path / "run").path
    rows = [{"signed": "2021-06-01", "income": None, "city": "atlantis"},  # unseen city, missing income
            {"city": None, "income": 30.0, "signed": "1999-12-31", "extra": "ignored"},
            {"city": "oslo", "income": 1e6, "signed": None}]
    (tmp_path / "rows.json").write_text(json.dumps(rows))
    client = client_predictions(run, tmp_path, ["--rows", str(tmp_path / "rows.json")])
    reference = TorchPredictor(run).predict(rows)
    assert_same(client, reference)
    assert json.loads((run / "onnx" / "bundle.json").read_text())["input"]["columns"] == ["city", "income", "signed"]
    without_scipy = subprocess.run([sys.executable, "-c", "import sys; sys.modules['scipy'] = None; " + BLOCK_HONED,
                                    "--rows", str(tmp_path / "rows.json")], cwd=tmp_path / "elsewhere",
                                   capture_output=True, text=True)  # the client needs no scipy
    assert without_scipy.returncode == 0, without_scipy.stderr
    assert_same([json.loads(line) for line in without_scipy.stdout.splitlines()], reference)


def test_table_bundle_rows_missing_a_column_are_one_line(tmp_path):
    import pandas as pd

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"city": rng.choice(["paris", "oslo"], 120), "income": rng.normal(size=120),
                          "label": rng.choice(["yes", "no"], 120)})
    frame.to_csv(tmp_path / "t.csv", index=False)
    run = honed.train("tabular", [f"data.path={tmp_path / 't.csv'}", "data.target=label", "train.epochs=2",
                                  "train.steps=null", "train.report=false"], out=tmp_path / "run").path
    export_onnx(run)
    (tmp_path / "rows.json").write_text(json.dumps([{"city": "oslo"}]))
    done = subprocess.run([sys.executable, "-c", BLOCK_HONED, "--rows", str(tmp_path / "rows.json")],
                          cwd=run / "onnx", capture_output=True, text=True)
    assert done.returncode == 2 and "lack column(s) 'income'" in done.stderr
    assert "Traceback" not in done.stderr
