"""honed runs: every run under a folder with its status, filtered and sorted; bad conditions in one line."""

import json
import subprocess
import sys

import pytest

import honed
from honed.errors import UserError
from honed.run.listing import list_runs

LINEAR = {"name": "lin", "data": {"source": "synthetic_regression", "n": 200}, "model": {"name": "linear"},
          "optimizer": {"name": "gd", "lr": 0.1}, "train": {"checkpoint": None}}


def runs_folder(tmp_path):
    folder = tmp_path / "runs"
    for epochs in (2, 30):
        honed.train(LINEAR | {"train": {"epochs": epochs, "checkpoint": None}}, out=folder / f"e{epochs}")
    unfinished = folder / "killed"  # a run that died before its first checkpoint
    unfinished.mkdir()
    (unfinished / "recipe.yaml").write_text("name: lin\nmodel: {name: mlp}\n")
    resumable = folder / "nested" / "stopped"
    (resumable / "checkpoints").mkdir(parents=True)
    (resumable / "recipe.yaml").write_text("name: lin\n")
    (resumable / "checkpoints" / "step-00000004.json").write_text("{}")
    return folder


def test_statuses_filters_and_sorting(tmp_path):
    folder = runs_folder(tmp_path)
    rows = {r["run"]: r for r in list_runs(folder)}
    assert {k: r["status"] for k, r in rows.items()} == {"e2": "finished", "e30": "finished", "killed": "unfinished",
                                                           "nested/stopped": "resumable"}
    summary = json.loads((folder / "e30" / "summary.json").read_text())
    assert rows["e30"]["test.mse"] == summary["test"]["mse"] and rows["e30"]["epochs"] == 30
    best = list_runs(folder, sort="test.mse")
    assert [r["run"] for r in best][:2] == ["e30", "e2"] and best[-1].get("test.mse") is None
    assert [r["run"] for r in list_runs(folder, where=["epochs>=10"])] == ["e30"]
    assert [r["run"] for r in list_runs(folder, where=["model=mlp"])] == ["killed"]
    with pytest.raises(UserError, match="write KEY OP VALUE"):
        list_runs(folder, where=["accuracy"])
    with pytest.raises(UserError, match="no run has 'test.accurcy'"):
        list_runs(folder, sort="test.accurcy")


def test_the_command_prints_json_and_csv(tmp_path):
    folder = runs_folder(tmp_path)
    done = subprocess.run([sys.executable, "-m", "honed", "runs", str(folder), "--sort", "epochs", "--desc", "--json"],
                          capture_output=True, text=True, check=True)
    assert [r["run"] for r in json.loads(done.stdout)][:2] == ["e30", "e2"]
    done = subprocess.run([sys.executable, "-m", "honed", "runs", str(folder), "--csv", "--where", "status=finished"],
                          capture_output=True, text=True, check=True)
    assert done.stdout.splitlines()[0].startswith("run,when,recipe") and len(done.stdout.splitlines()) == 3
