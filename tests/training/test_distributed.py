"""Two workers under torchrun end where one worker with the same global batch ends."""

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file

import honed
from honed.errors import UserError
from honed.launch import torchrun_command, worker_argv

# No dropout: each worker would draw its own masks. 1150 training rows in batches of 53: the
# last batch has 37 rows, split 19/18 between the workers, which the share weights make exact.
RECIPE = {
    "name": "ddp", "seed": 1,
    "data": {"source": "sklearn", "name": "digits"},
    "model": {"name": "mlp", "hidden": [32]},
    "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9},  # unlike Adam, SGD would show a summed gradient
    "schedule": {"name": "linear"},
    "regularization": {"l2": 1e-4},
    "train": {"epochs": 2, "batch_size": 53, "accumulate": 2, "device": "cpu"},  # CPU workers even beside a GPU
}


def launch(recipe: dict, out: Path, nproc: int = 2) -> subprocess.CompletedProcess:
    path = out.parent / f"{out.name}.yaml"
    path.write_text(json.dumps(recipe))  # JSON is YAML
    env = dict(os.environ, CI="1", OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "honed", "train", str(path), "--out", str(out), "--nproc", str(nproc)],
                          capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    return honed.train(RECIPE, out=tmp_path_factory.mktemp("single") / "run")


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_workers_end_with_the_parameters_of_one(tmp_path, single, strategy):
    recipe = RECIPE | {"train": RECIPE["train"] | {"strategy": strategy}}
    if strategy == "fsdp":
        recipe["regularization"] = {}  # penalties need whole weights; fsdp refuses them
        reference = honed.train(recipe | {"train": recipe["train"] | {"strategy": "auto"}}, out=tmp_path / "one")
    else:
        reference = single
    done = launch(recipe, tmp_path / "two")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "distributed: 2 workers (gloo)" in done.stderr
    two, one = load_file(str(tmp_path / "two" / "model.safetensors")), load_file(str(reference.path / "model.safetensors"))
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=1e-4, atol=1e-5)  # gradient averaging, proven
    summary = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert summary["workers"] == 2 and summary["strategy"] == strategy
    assert summary["val"]["accuracy"] == pytest.approx(reference.summary["val"]["accuracy"], abs=1e-3)
    first = [json.loads(line) for line in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    ref = [json.loads(line) for line in (reference.path / "metrics.jsonl").read_text().splitlines()]
    # validation is scored on shares and gathered; the training loss is all-reduced
    assert [r["val_loss"] for r in first] == pytest.approx([r["val_loss"] for r in ref], rel=1e-4)
    assert [r["train_loss"] for r in first] == pytest.approx([r["train_loss"] for r in ref], rel=1e-4)


def test_a_failing_worker_fails_the_whole_command(tmp_path):
    recipe = RECIPE | {"optimizer": {"name": "sgd", "lr": 1e30}}
    done = launch(recipe, tmp_path / "run")
    assert done.returncode != 0
    assert "loss became" in done.stderr


def test_launcher_flags_are_not_passed_to_the_workers():
    argv = ["train", "r.yaml", "--nproc", "2", "--set", "a=1", "--nnodes=2", "--node-rank", "1",
            "--rdzv-endpoint", "h:29400", "--quiet"]
    assert worker_argv(argv) == ["train", "r.yaml", "--set", "a=1", "--quiet"]
    args = SimpleNamespace(nproc=2, nnodes=2, node_rank=1, rdzv_endpoint="h:29400", master_addr=None, master_port=29500)
    command = torchrun_command(args, argv)
    assert command[1] == "-c" and "runpy.run_module('torch.distributed.run'" in command[2]  # torchrun, dying
    assert "die_with_parent" in command[2]  # with the launcher
    assert {"--nproc-per-node=2", "--nnodes=2", "--node-rank=1", "--rdzv-endpoint=h:29400"} <= set(command)
    assert command[-7:] == ["-m", "honed", "train", "r.yaml", "--set", "a=1", "--quiet"]
    alone = torchrun_command(SimpleNamespace(nproc=2, nnodes=1, node_rank=0, rdzv_endpoint=None, master_addr=None,
                                             master_port=29500), ["train", "r.yaml", "--nproc", "2"])
    assert "--standalone" in alone


@pytest.mark.parametrize("fields,message", [
    ({"nproc": 0}, "at least 1"),
    ({"nnodes": 2}, "--rdzv-endpoint"),
    ({"nnodes": 2, "node_rank": 2, "master_addr": "h"}, "--node-rank 2"),
])
def test_bad_launcher_flags_get_one_line(fields, message):
    args = SimpleNamespace(**({"nproc": 2, "nnodes": 1, "node_rank": 0, "rdzv_endpoint": None, "master_addr": None,
                               "master_port": 29500} | fields))
    with pytest.raises(UserError, match=message):
        torchrun_command(args, ["train", "r.yaml"])
