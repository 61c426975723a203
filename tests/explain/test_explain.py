"""honed explain: integrated gradients against the analytic answer, a planted word found by every text
model, completeness, the randomization check, words folded back from n-grams, and one-line errors."""

import random

import numpy as np
import pandas as pd
import pytest
import torch

import honed
from honed.errors import UserError

pytest.importorskip("captum")

FILLER = "the a film story plot scene actor music time day place thing way part end".split()


def planted_csvs(tmp_path, rows=400):
    """Labels decided by one planted word ("zebra": yes, "walrus": no) among random filler words."""
    rng = random.Random(0)
    frames = []
    for split, n in (("train", rows), ("test", 60)):
        texts, labels = [], []
        for i in range(n):
            words = rng.choices(FILLER, k=rng.randint(5, 12))
            words.insert(rng.randrange(len(words) + 1), "zebra" if i % 2 else "walrus")
            texts.append(" ".join(words))
            labels.append("yes" if i % 2 else "no")
        frames.append(pd.DataFrame({"text": texts, "label": labels}))
        frames[-1].to_csv(tmp_path / f"{split}.csv", index=False)
    return tmp_path / "train.csv", tmp_path / "test.csv", frames[1]


MODELS = {
    "bag": ({"name": "bag", "hidden": [8]}, {"name": "adam", "lr": 0.05}, {}),
    "cnn": ({"name": "cnn", "channels": [16], "kernel_size": 3}, {"name": "adam", "lr": 0.01}, {}),
    "rnn": ({"name": "rnn", "hidden_size": 16}, {"name": "adam", "lr": 0.02}, {}),
    "logistic, n-grams": ({"name": "logistic", "pooling": "tfidf", "embedding_init": "zeros"},
                          {"name": "lbfgs", "lr": 1.0},
                          {"ngrams": 2, "char_ngrams": [2, 4], "unique_tokens": True, "ngram_buckets": 4096}),
}


def trained(tmp_path, kind):
    train, test, frame = planted_csvs(tmp_path)
    model, optimizer, data = MODELS[kind]
    run = honed.train({"name": "planted", "seed": 0,
                       "data": {"source": "text_files", "train": str(train), "test": str(test), "val_fraction": 0,
                                **data},
                       "model": model, "optimizer": optimizer,
                       "train": {"epochs": 8 if optimizer["name"] != "lbfgs" else 3, "batch_size": 32,
                                 "checkpoint": None}}, out=tmp_path / kind)
    assert run.summary["test"]["accuracy"] >= 0.95
    return run, frame


@pytest.mark.parametrize("kind", list(MODELS))
def test_the_planted_word_gets_the_largest_attribution_and_completeness_holds(tmp_path, kind):
    run, frame = trained(tmp_path, kind)
    result = honed.explain(run.path, frame["text"].tolist())
    top = [it["names"][int(np.argmax(np.abs(it["attributions"])))] for it in result.items]
    planted = ["zebra" if "zebra" in t.split() else "walrus" for t in frame["text"]]
    assert np.mean([a == b for a, b in zip(top, planted)]) >= 0.95
    for it in result.items:  # the words' attributions add up to output minus baseline output
        assert it["completeness_gap"] <= 0.05
        assert sum(it["attributions"]) == pytest.approx(it["output"] - it["baseline_output"], rel=0.05, abs=1e-3)


def test_integrated_gradients_of_a_logistic_model_on_a_table_equal_w_times_x(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200) * 3 + 1, "c": rng.normal(size=200)})
    frame["y"] = (frame.a - frame.b / 3 > 0).astype(int)
    frame.to_csv(tmp_path / "t.csv", index=False)
    run = honed.train({"data": {"source": "tabular", "path": str(tmp_path / "t.csv"), "target": "y"},
                       "model": {"name": "logistic"}, "optimizer": {"name": "adam", "lr": 0.05},
                       "train": {"epochs": 5, "checkpoint": None}}, out=tmp_path / "run")
    rows = frame[["a", "b", "c"]].iloc[:7]
    result = honed.explain(run.path, rows)
    _, model, pre = honed.load_run(run.path)
    x = pre.inputs(rows.to_numpy(dtype=np.float32))  # standardized: the training mean is 0, the baseline
    expected = (model.linear.weight[0] * x).detach().numpy()
    got = np.array([it["attributions"] for it in result.items])
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
    assert result.items[0]["names"] == ["a", "b", "c"]


def test_too_few_steps_are_raised_until_completeness_holds(tmp_path):
    run, frame = trained(tmp_path, "rnn")
    result = honed.explain(run.path, frame["text"].tolist()[:5], steps=2)
    assert result.steps > 2 and result.converged and max(it["completeness_gap"] for it in result.items) <= 0.05


def test_the_randomization_check_tells_the_trained_model_from_a_random_one(tmp_path):
    run, frame = trained(tmp_path, "bag")
    result = honed.explain(run.path, frame["text"].tolist()[:20], sanity=True)
    assert result.sanity["passed"] and abs(result.sanity["median_rank_correlation"]) < 0.5


def test_bad_requests_are_one_line_errors(tmp_path):
    run, _ = trained(tmp_path, "bag")
    with pytest.raises(UserError, match="is empty"):
        honed.explain(run.path, ["zebra film", "  "])
    with pytest.raises(UserError, match="takes 2 to 10,000 steps"):
        honed.explain(run.path, ["zebra film"], steps=1)
    with pytest.raises(UserError, match="at most 1,000"):
        honed.explain(run.path, ["zebra"] * 1001)


def test_the_page_and_the_numbers_are_written(tmp_path):
    from honed.explanation import write_report

    run, frame = trained(tmp_path, "bag")
    data, page = write_report(honed.explain(run.path, ["a zebra in the film <b>"]), tmp_path / "out")
    html = page.read_text()
    assert "zebra" in html and "&lt;b&gt;" not in html.split("<body>")[0] and "<script" not in html
    assert "completeness gap" in html and data.is_file()


def test_a_multiclass_model_explains_the_predicted_classs_logit_completely(text_run):
    result = honed.explain(text_run, ["the team scored a goal", "bake the bread for dinner"])
    _, model, pre = honed.load_run(text_run)
    with torch.no_grad():
        scores = model.eval()(pre.inputs(["the team scored a goal", "bake the bread for dinner"])[:])
    for it, row in zip(result.items, scores):
        assert it["output"] == pytest.approx(float(row.max()), rel=1e-5)  # the predicted class's logit
        assert sum(it["attributions"]) == pytest.approx(it["output"] - it["baseline_output"], rel=0.05)


def test_the_global_view_ranks_each_planted_word_first_for_its_class(tmp_path):
    from honed.explanation import explain_test_rows

    run, _ = trained(tmp_path, "bag")
    result = explain_test_rows(run.path, rows=40)
    assert len(result.items) == 40
    assert result.overall["yes"][0]["name"] == "zebra" and result.overall["no"][0]["name"] == "walrus"


@pytest.mark.parametrize("method", ["occlusion", "gradient_shap"])
def test_other_methods_agree_with_the_analytic_answer_on_a_linear_table_and_find_the_planted_word(tmp_path, method):
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)})
    frame["y"] = (frame.a - frame.b > 0).astype(int)
    frame.to_csv(tmp_path / "t.csv", index=False)
    run = honed.train({"data": {"source": "tabular", "path": str(tmp_path / "t.csv"), "target": "y"},
                       "model": {"name": "logistic"}, "optimizer": {"name": "adam", "lr": 0.05},
                       "train": {"epochs": 5, "checkpoint": None}}, out=tmp_path / "table")
    rows = frame[["a", "b"]].iloc[:5]
    _, model, pre = honed.load_run(run.path)
    expected = (model.linear.weight[0] * pre.inputs(rows.to_numpy(dtype=np.float32))).detach().numpy()
    got = np.array([it["attributions"] for it in honed.explain(run.path, rows, method=method).items])
    # occlusion of a linear model is exact; GradientSHAP's noisy baselines average out to it
    np.testing.assert_allclose(got, expected, atol=1e-5 if method == "occlusion" else 0.05 * np.abs(expected).max())
    text_run, frame = trained(tmp_path, "bag")
    result = honed.explain(text_run.path, frame["text"].tolist()[:30], method=method)
    top = [it["names"][int(np.argmax(np.abs(it["attributions"])))] for it in result.items]
    planted = ["zebra" if "zebra" in t.split() else "walrus" for t in frame["text"].tolist()[:30]]
    assert np.mean([a == b for a, b in zip(top, planted)]) >= 0.95
    with pytest.raises(UserError, match="--method 'lime'"):
        honed.explain(text_run.path, ["zebra"], method="lime")


def test_images_start_from_black_and_get_a_saliency_map(tmp_path, digits_run):
    import json

    from honed.explanation import write_report

    _, model, pre = honed.load_run(digits_run)
    rows = pd.DataFrame(np.full((2, 64), 8.0), columns=pre.columns)
    result = honed.explain(digits_run, rows)
    with torch.no_grad():
        black = model.eval()(pre.inputs(np.zeros((1, 64), dtype=np.float32)))[0]
    for it in result.items:
        predicted = pre.labels.names.index(it["prediction"])  # the explained logit: the predicted class's
        assert it["baseline_output"] == pytest.approx(float(black[predicted]), rel=1e-5)
        assert it["completeness_gap"] <= 0.05
    data, page = write_report(result, tmp_path / "out")
    assert json.loads(data.read_text())["baseline"] == "every input at zero (black)"
    assert (tmp_path / "out" / "saliency-1.png").stat().st_size > 1000 and "data:image/png;base64" in page.read_text()
    mean = honed.explain(digits_run, rows, baseline="mean")
    assert mean.items[0]["baseline_output"] != pytest.approx(result.items[0]["baseline_output"])
    with pytest.raises(UserError, match="--baseline 'white'"):
        honed.explain(digits_run, rows, baseline="white")
