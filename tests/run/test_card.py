"""Every finished run has a model card (RUN_DIR/README.md) that says what its own files say."""

import json

import yaml

import honed


def test_a_run_writes_its_model_card_from_its_recipe_and_summary(tmp_path, text_run):
    card = (text_run / "README.md").read_text()
    summary = json.loads((text_run / "summary.json").read_text())
    header = yaml.safe_load(card.split("---")[1])
    assert header["library_name"] == "honed" and "accuracy" in header["metrics"]
    low, high = summary["test"]["ci95"]["accuracy"]
    assert f"| accuracy | {100 * summary['test']['accuracy']:.2f}% (95% CI {100 * low:.2f}% – {100 * high:.2f}%) |" in card
    assert f"{summary['sizes']['train']:,} training" in card and f"{summary['params']:,} parameters" in card
    assert f"torch {__import__('torch').__version__}" in card and f"honed {honed.__version__}" in card
    assert "## Intended use and limits" in card and "honed predict RUN_DIR" in card
