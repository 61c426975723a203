"""The command line: exit codes, one-line errors, run directory contents."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from honed.cli import main

RECIPES = Path(__file__).resolve().parent.parent / "recipes"


def run_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "honed", *args], capture_output=True, text=True)


def test_train_writes_a_complete_run_directory(tmp_path, capsys):
    code = main(["train", str(RECIPES / "linear_regression.yaml"), "--set", "train.epochs=20", "--out",
                 str(tmp_path / "run"), "--quiet"])
    assert code == 0
    run = tmp_path / "run"
    for name in ("recipe.yaml", "metrics.jsonl", "summary.json", "model.safetensors", "model.json",
                 "preprocess.json", "curves.png"):
        assert (run / name).is_file(), name
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 20
    assert {"epoch", "step", "train_loss", "val_loss", "lr", "grad_norm", "seconds"} <= set(records[0])
    summary = json.loads((run / "summary.json").read_text())
    for key in ("test", "val", "train_seconds", "total_seconds", "epochs_run", "best_epoch", "params",
                "samples_per_second"):
        assert key in summary
    assert "train.epochs" not in (run / "recipe.yaml").read_text() and "epochs: 20" in (run / "recipe.yaml").read_text()
    assert (run / "curves.png").read_bytes()[:4] == b"\x89PNG"
    capsys.readouterr()
    assert main(["evaluate", str(run)]) == 0
    assert json.loads(capsys.readouterr().out)["mse"] == pytest.approx(summary["test"]["mse"], rel=1e-5)


def test_recipes_lists_the_bundled_ones(capsys):
    assert main(["recipes"]) == 0
    out = capsys.readouterr().out
    for name in ("linear_regression", "imdb_seed", "digits_cnn", "diabetes_mlp"):
        assert name in out


def test_a_bundled_recipe_runs_by_name(tmp_path):
    assert main(["train", "linear_regression", "--set", "train.epochs=2", "--out", str(tmp_path / "r"), "--quiet"]) == 0


@pytest.mark.parametrize("args, words", [
    (["train", "nope.yaml"], ["recipe file not found", "nope.yaml"]),
    (["train", "linear_regression", "--set", "optimizer.lrr=1"], ["optimizer.lrr", "did you mean 'lr'"]),
    (["train", "linear_regression", "--set", "optimizer.name=adamm"], ["'adamm'", "'adam'"]),
    (["train", "linear_regression", "--set", "data.path=missing.csv", "--set", "data.target=y"], ["data.path", "missing.csv", "not found"]),
    (["train", "linear_regression", "--set", "optimizer.lr=1e9", "--set", "train.epochs=50"], ["loss became", "epoch", "step", "last good weights"]),
    (["evaluate", "not_a_run"], ["run directory not found"]),
    (["train"], ["needs a recipe, or --resume"]),
    (["train", "linear_regression", "--resume", "runs/x"], ["not both"]),
    (["train", "--resume", "runs/x", "--set", "train.epochs=3"], ["--set and --out cannot change it"]),
    (["train", "--resume", "no_such_run"], ["--resume no_such_run", "not a honed run directory"]),
    (["train", "linear_regression", "--nproc", "2", "--nnodes", "2"], ["--nnodes 2", "--rdzv-endpoint"]),
    (["train", "linear_regression", "--set", "train.strategy=fsdp", "--set", "regularization.l2=0.1"],
     ["regularization.l2", "fsdp", "weight_decay"]),
    (["train", "linear_regression", "--set", "optimizer.name=gd", "--set", "train.accumulate=4"],
     ["train.accumulate", "gd"]),
    (["train", "linear_regression", "--set", "train.precision=fp8"], ["train.precision", "'fp8'", "bf16-mixed"]),
    (["predict", "not_a_run", "--input", "x.csv"], ["run directory not found"]),
    (["lr-find", "linear_regression", "--min-lr", "1", "--max-lr", "0.1"], ["--min-lr 1", "need 0 < min-lr < max-lr"]),
    (["tune", "linear_regression", "--budget", "0"], ["--budget 0", "positive"]),
    (["tune", "linear_regression", "--budget", "10", "--storage", "sqlite:////no/such/dir/s.db"],
     ["--storage sqlite:////no/such/dir/s.db", "cannot open"]),
    (["tune", "linear_regression", "--budget", "10", "--storage", "nosuchdb://x"], ["--storage nosuchdb://x", "cannot open"]),
    (["tune", "linear_regression", "--budget", "10", "--storage", "postgresql://u:p@127.0.0.1:1/db"],
     ["--storage postgresql://u:***@127.0.0.1:1/db", "cannot open"]),
    (["tune", "linear_regression", "--budget", "10", "--pruner", "median"], ["--pruner 'median'", "hyperband"]),
    (["compare", "linear_regression", "--vary", "optimizer.nme=gd,sgd"], ["--vary optimizer.nme", "optimizer.name"]),
    (["compare", "not_a_run", "other_run"], ["not_a_run", "not a finished honed run"]),
    (["distill", "not_a_run", "linear_regression"], ["run directory not found"]),
    (["export", "not_a_run"], ["run directory not found"]),
    (["quantize", "not_a_run"], ["run directory not found"]),
    (["serve", "not_a_run"], ["run directory not found"]),
    (["prune", "not_a_run"], ["run directory not found"]),
    (["prune", "not_a_run", "--target", "1.5"], ["--target 1.5", "above 0 and below 1"]),
    (["prune", "not_a_run", "--rounds", "0"], ["--rounds 0", "1 to 20"]),
    (["prune", "not_a_run", "--budget", "10", "--finetune-epochs", "2"], ["--budget and --finetune-epochs"]),
])
def test_user_errors_are_one_line_and_exit_2(args, words, tmp_path):
    result = run_cli(*args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("honed: error: "), result.stderr
    for w in words:
        assert w in lines[0]
    assert "Traceback" not in result.stderr


def test_a_folder_that_is_not_a_run(tmp_path):
    (tmp_path / "d").mkdir()
    result = run_cli("evaluate", str(tmp_path / "d"))
    assert result.returncode == 2 and "is not a honed run" in result.stderr


def test_missing_column_and_wrong_label_count(tmp_path):
    (tmp_path / "t.csv").write_text("text,label\nhello,a\nworld,a\nagain,a\nmore,a\n")
    result = run_cli("train", "linear_regression", "--set", "data.source=text_files", "--set",
                     f"data.train={tmp_path / 't.csv'}", "--set", "data.text_column=body", "--set", "model.name=bag")
    assert result.returncode == 2 and "column 'body' is not in" in result.stderr
    result = run_cli("train", "linear_regression", "--set", "data.source=text_files", "--set",
                     f"data.train={tmp_path / 't.csv'}", "--set", "model.name=bag", "--set", "data.val_fraction=0")
    assert result.returncode == 2 and "only one class" in result.stderr


def test_debug_shows_the_traceback():
    result = run_cli("--debug", "train", "nope.yaml")
    assert result.returncode != 0 and "Traceback" in result.stderr


@pytest.mark.parametrize("search, words", [
    ("optimizer.lrr: {loguniform: [0.0001, 0.1]}", ["unknown parameter 'optimizer.lrr'", "did you mean 'optimizer.lr'"]),
    ("optimizer.lr: {uniform: [0.1, 0.01]}", ["search.optimizer.lr", "is empty"]),
])
def test_bad_search_spaces_exit_2_with_one_line(search, words, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text((RECIPES / "linear_regression.yaml").read_text() + f"search:\n  {search}\n")
    result = run_cli("tune", str(recipe), "--budget", "10", "--out", str(tmp_path / "t"))
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    for word in words:
        assert word in result.stderr
    assert not (tmp_path / "t").exists()  # nothing half-made


def test_lr_find_prints_a_rate_and_applies_it(tmp_path):
    result = run_cli("lr-find", "linear_regression", "--out", str(tmp_path / "f"), "--apply", str(tmp_path / "r.yaml"))
    assert result.returncode == 0, result.stderr
    assert "suggested optimizer.lr:" in result.stdout
    rate = float(result.stdout.split("suggested optimizer.lr:")[1].split()[0])
    from honed.recipe import load_recipe

    assert load_recipe(tmp_path / "r.yaml").optimizer.lr == pytest.approx(rate, rel=1e-2)


def test_distill_export_and_serve_refuse_bad_settings_in_one_line(tmp_path):
    run = tmp_path / "run"
    assert main(["train", "linear_regression", "--set", "train.epochs=2", "--out", str(run), "--quiet"]) == 0
    for args, words in ((["distill", str(run), "linear_regression", "--temperature", "0"], "--temperature 0"),
                        (["distill", str(run), "linear_regression", "--alpha", "2"], "--alpha 2"),
                        (["serve", str(run), "--backend", "tpu"], "--backend 'tpu'"),
                        (["serve", str(run), "--backend", "auto"], "run honed quantize")):
        result = run_cli(*args)
        assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert words in result.stderr


def test_the_command_ends_with_its_worker_processes(tmp_path):
    """`honed` skips the interpreter's teardown, but not the exit handlers that stop the
    preprocessing pool: a forked worker left behind would keep the output pipe open."""
    import pandas as pd

    texts = [f"review {i} {'great fun' if i % 2 else 'dull mess'} word{i % 97}" for i in range(5000)]
    pd.DataFrame({"text": texts, "label": [i % 2 for i in range(5000)]}).to_csv(tmp_path / "t.csv", index=False)
    args = ["train", "text_classification", "--set", f"data.train={tmp_path / 't.csv'}", "--set",
            f"data.test={tmp_path / 't.csv'}", "--set", "train.epochs=1", "--set", "data.ngram_buckets=1000",
            "--out", str(tmp_path / "run"), "--quiet"]
    done = subprocess.run([sys.executable, "-m", "honed", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HONED_CACHE": str(tmp_path / "cache")})
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["test"]["accuracy"] == 1.0


def test_an_out_holding_a_finished_run_is_refused_before_any_data_is_read(tmp_path, capsys, monkeypatch):
    args = ["train", "linear_regression", "--set", "train.epochs=1", "--out", str(tmp_path / "r"), "--quiet"]
    assert main(args) == 0

    def no_data(*_):
        raise AssertionError("data was read")

    monkeypatch.setattr("honed.api.data_stage.build_data", no_data)
    capsys.readouterr()
    assert main(args) == 2
    assert "a finished run is already there" in capsys.readouterr().err


def test_every_help_page_prints():
    import argparse

    from honed.cli import parser

    p = parser()
    assert "doctor" in p.format_help() and "report" in p.format_help()
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                assert name in sub.format_help()  # a stray % in a help text would raise here
