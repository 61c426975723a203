"""The run report: its numbers against references, its rebuild from the run's files, and the page itself
rendered in a real browser (headless Chromium through Playwright)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import honed
from honed.data.profile import text_profile
from honed.data.words import TextSettings
from honed.evaluation.calibration import confident_mistakes, reliability
from honed.recipe import load_recipe
from honed.recipe.reference import changed_keys

HOSTILE = "<script>alert('x')</script><img src=x onerror=alert(1)> & \"quoted\""


def test_ece_of_overconfident_predictions_is_the_gap_between_confidence_and_accuracy():
    # every row predicted with probability 0.9 and 60% of them right: one bin, ECE = |0.6 - 0.9| = 0.3
    probs = np.tile([0.1, 0.9], (100, 1))
    targets = np.r_[np.ones(60), np.zeros(40)]
    result = reliability(probs, targets)
    assert result.ece == pytest.approx(0.3)
    assert result.rows.tolist() == [100] and result.accuracy.tolist() == pytest.approx([0.6])


def test_ece_of_calibrated_predictions_is_near_zero_and_bins_weigh_by_rows():
    rng = np.random.default_rng(0)
    p1 = rng.uniform(0, 1, 200_000)
    y = (rng.uniform(0, 1, len(p1)) < p1).astype(int)  # labels drawn with the stated probability
    assert reliability(np.c_[1 - p1, p1], y).ece < 0.01
    # two groups by hand: 0.95 confident and always right (gap 0.05), 0.55 confident and half right (gap 0.05)
    probs = np.r_[np.tile([0.05, 0.95], (30, 1)), np.tile([0.45, 0.55], (10, 1))]
    targets = np.r_[np.ones(30), np.r_[np.ones(5), np.zeros(5)]]
    assert reliability(probs, targets).ece == pytest.approx((30 * 0.05 + 10 * 0.05) / 40)


def test_confident_mistakes_are_the_wrong_rows_by_descending_probability():
    scores = torch.tensor([3.0, -2.0, 0.5, -4.0, 1.0])  # binary logits: p(1) = sigmoid
    targets = torch.tensor([0.0, 0.0, 0.0, 1.0, 1.0])
    mistakes = confident_mistakes(scores, targets, "binary")
    assert [m["row"] for m in mistakes] == [3, 0, 2]  # p(0)=0.982 on row 3, p(1)=0.953 on row 0, 0.622 on row 2
    assert mistakes[0]["probability"] == pytest.approx(float(torch.sigmoid(torch.tensor(4.0))))
    assert (mistakes[0]["true"], mistakes[0]["predicted"]) == (1, 0)


def test_text_profile_counts_cut_empty_and_unknown_words():
    texts = ["one two three four", "", "one two", "five six seven eight nine ten"]
    vocab = {"<pad>": 0, "<unk>": 1, "one": 2, "two": 3}
    profile = text_profile(texts, TextSettings(max_len=3), vocab)
    assert profile["truncated_share"] == 0.5 and profile["empty_share"] == 0.25
    assert profile["out_of_vocabulary_share"] == pytest.approx(8 / 12)  # 12 words, 4 of them known
    assert profile["words_max"] == 6 and profile["words_median"] == 3.0


def test_changed_keys_are_the_values_that_differ_from_the_schema_defaults():
    recipe = load_recipe({"name": "x", "optimizer": {"lr": 0.01, "name": "adam"}, "train": {"epochs": 10}})
    changed = {k: (v, d) for k, v, d in changed_keys(recipe)}
    assert changed == {"name": ("x", "run"), "optimizer.lr": (0.01, 0.001)}  # adam and 10 epochs are defaults


def hostile_text_run(tmp_path: Path) -> Path:
    rows = [{"text": f"{'great fine good' if i % 2 else 'awful bad poor'} item {i}", "label": "pos" if i % 2 else "neg"}
            for i in range(80)]
    # test rows that a good model gets confidently wrong, one of them a hostile text
    test = rows[:30] + [{"text": HOSTILE + " great fine good", "label": "neg"},
                        {"text": "awful bad poor awful", "label": "pos"}]
    pd.DataFrame(rows).to_csv(tmp_path / "train.csv", index=False)
    pd.DataFrame(test).to_csv(tmp_path / "test.csv", index=False)
    return honed.train({"name": "reviews", "data": {"source": "text_files", "train": str(tmp_path / "train.csv"),
                                                    "test": str(tmp_path / "test.csv"), "val_fraction": 0.25},
                        "model": {"name": "bag"}, "optimizer": {"lr": 0.1},
                        "train": {"epochs": 8, "batch_size": 8, "checkpoint": None}}, out=tmp_path / "run").path


def test_a_trained_run_keeps_the_evidence_its_page_is_built_from(tmp_path):
    run = hostile_text_run(tmp_path)
    summary = json.loads((run / "summary.json").read_text())
    with np.load(run / "test_outputs.npz", allow_pickle=False) as saved:
        outputs, targets = saved["outputs"], saved["targets"]
    _, model, pre = honed.load_run(run)
    again, y, _ = honed.api.test_outputs(run)
    np.testing.assert_allclose(outputs, again.numpy(), atol=1e-6)  # the outputs the test split was scored from
    assert np.mean((outputs > 0) == (targets > 0.5)) == pytest.approx(summary["test"]["accuracy"])
    mistakes = json.loads((run / "mistakes.json").read_text())
    assert {m["row"] for m in mistakes[:2]} == {30, 31}  # the planted mistakes come first, with their texts
    assert {m["text"] for m in mistakes[:2]} == {HOSTILE + " great fine good", "awful bad poor awful"}
    assert summary["data"]["class_counts"]["test"] == [16, 16]
    assert set(summary["timing"]) == {"data", "setup", "training", "validation and hooks", "evaluation", "writing"}
    assert sum(summary["timing"].values()) <= summary["total_seconds"] + 1e-6
    profile = json.loads((run / "preprocess.json").read_text())["profile"]
    assert profile["texts_measured"] == 60 and profile["empty_share"] == 0.0


def test_honed_report_rebuilds_the_page_and_the_evidence_of_a_run_without_them(tmp_path):
    run = hostile_text_run(tmp_path)
    first = (run / "mistakes.json").read_text()
    page = (run / "report.html").read_text()
    for name in ("report.html", "test_outputs.npz", "mistakes.json"):
        (run / name).unlink()
    done = subprocess.run([sys.executable, "-m", "honed", "report", str(run)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"report: {run / 'report.html'}"
    assert (run / "mistakes.json").read_text() == first
    rebuilt = (run / "report.html").read_text()
    assert rebuilt == page  # same files in, same page out
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in rebuilt and "<script>" not in rebuilt


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.fixture
def browser():
    """Headless Chromium (Debian's package) driven by Playwright; skipped, saying why, where either is missing,
    unless HONED_REQUIRE_BROWSER is set (CI installs both and sets it)."""
    required = bool(os.environ.get("HONED_REQUIRE_BROWSER"))
    path = chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if path is None or sync_playwright is None:
        reason = "no chromium on PATH (apt install chromium)" if path is None else "playwright is not installed"
        if required:
            pytest.fail(reason)
        pytest.skip(reason)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=["--no-sandbox"])
        yield b
        b.close()


def open_page(browser, path: Path):
    """The page, the console messages and page errors it produced, and whether each image decoded."""
    page = browser.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(path.resolve().as_uri())
    images = page.evaluate("Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)")
    return page, problems, images, requests


def test_the_classifier_page_loads_cleanly_in_a_browser_with_its_numbers(browser, tmp_path):
    run = hostile_text_run(tmp_path)
    summary = json.loads((run / "summary.json").read_text())
    page, problems, images, requests = open_page(browser, run / "report.html")
    assert problems == []
    assert len(images) == 2 and all(images)  # curves; ROC, precision-recall and reliability
    assert requests == [(run / "report.html").resolve().as_uri()] or all(
        u.startswith(("file:", "data:")) for u in requests)  # nothing from the network
    text = page.inner_text("body")
    assert f"{100 * summary['test']['accuracy']:.2f}%" in text
    low, high = summary["test"]["ci95"]["accuracy"]
    assert f"{100 * low:.2f}% – {100 * high:.2f}%" in text
    ece = reliability(*probabilities_and_targets(run)).ece
    assert f"Expected calibration error {ece:.4f}" in text
    assert HOSTILE in text  # shown as text, never run
    assert page.evaluate("document.scripts.length") == 0
    assert page.evaluate("document.querySelectorAll('.mistake img').length") == 0
    assert "optimizer.lr" in text and "0.1" in text  # a key changed from its default, highlighted
    counts = summary["data"]["class_counts"]["train"]
    assert f"{counts[0]} ({100 * counts[0] / sum(counts):.1f}%)" in text


def probabilities_and_targets(run: Path):
    with np.load(run / "test_outputs.npz", allow_pickle=False) as saved:
        p1 = torch.sigmoid(torch.from_numpy(saved["outputs"])).numpy()
        return np.c_[1 - p1, p1], saved["targets"]


def test_the_regression_page_shows_its_errors_and_feature_ranges(browser, regression_run):
    page, problems, images, _ = open_page(browser, regression_run / "report.html")
    assert problems == [] and len(images) == 2 and all(images)  # curves; predicted-vs-true and residuals
    text = page.inner_text("body")
    summary = json.loads((regression_run / "summary.json").read_text())
    assert f"RMSE {summary['test']['rmse']:.4g}" in text
    assert "Features (training split)" in text and "x0" in text
    assert "Where the classifier goes wrong" not in text


def test_a_stopped_run_gets_a_page_from_what_it_recorded(browser, tmp_path, killed_at_step):
    recipe = {"name": "stopped", "data": {"source": "synthetic_regression", "n": 400}, "model": {"name": "mlp",
              "hidden": [8]}, "train": {"epochs": 6, "batch_size": 32, "checkpoint": {"every_epochs": 1}}}
    run = killed_at_step(recipe, tmp_path / "run", 40)
    done = subprocess.run([sys.executable, "-m", "honed", "report", str(run)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    page, problems, images, _ = open_page(browser, run / "report.html")
    assert problems == [] and len(images) == 1 and all(images)
    assert "not finished: stopped after epoch" in page.inner_text("body")


def test_a_section_switched_off_shows_the_defaults_it_replaced():
    recipe = load_recipe({"train": {"checkpoint": None}})
    changed = {k: d for k, _, d in changed_keys(recipe)}
    assert changed == {"train.checkpoint": load_recipe({}).train.checkpoint.model_dump(mode="json")}
