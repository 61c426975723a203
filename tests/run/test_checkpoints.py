"""Checkpoints and --resume: a run killed mid-epoch ends exactly as an uninterrupted one."""

import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import honed
from honed.errors import UserError
from honed.run import checkpoints

# Dropout, a cosine schedule with warmup, Adam with decoupled decay, early stopping and a
# target: every piece of state a resume must restore exactly.
RECIPE = {
    "name": "resumable", "seed": 3,
    "data": {"source": "sklearn", "name": "digits"},
    "model": {"name": "mlp", "hidden": [32], "dropout": 0.2},
    "optimizer": {"name": "adamw", "lr": 0.01, "weight_decay": 0.01},
    "schedule": {"name": "cosine", "warmup_epochs": 0.5},
    "train": {"epochs": 4, "batch_size": 64, "early_stopping": {"patience": 10},
              "target": {"metric": "accuracy", "value": 0.5},
              "checkpoint": {"every_steps": 5, "every_epochs": 1, "keep": 2}},
}
KILL_AT_STEP = 23  # epoch 2 of 4 (18 steps per epoch): mid-epoch, 3 steps after the checkpoint at step 20

KILLER = textwrap.dedent(f"""
    import json, os, signal, sys
    import honed
    from honed.training import Hook

    class Kill(Hook):
        def on_step_end(self, trainer, loss):
            if trainer.step == {KILL_AT_STEP}:
                os.kill(os.getpid(), signal.SIGKILL)

    honed.train(json.loads(sys.argv[1]), out=sys.argv[2], hooks=[Kill()])
""")


@pytest.fixture(scope="module")
def killed(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("killed") / "run"
    done = subprocess.run([sys.executable, "-c", KILLER, json.dumps(RECIPE), str(path)], capture_output=True, text=True)
    assert done.returncode == -9, done.stderr  # really SIGKILLed
    assert not (path / "summary.json").exists()
    return path


@pytest.fixture
def killed_run(killed):
    """A fresh copy of the killed run's directory for each test."""
    return lambda path: Path(shutil.copytree(killed, path))


def history(run_dir: Path) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in lines]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    return honed.train(RECIPE, out=tmp_path_factory.mktemp("whole") / "run")


def assert_same_run(resumed, whole) -> None:
    a, b = load_file(str(resumed.path / "model.safetensors")), load_file(str(whole.path / "model.safetensors"))
    for key in b:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6)
    test, reference = dict(resumed.summary["test"]), dict(whole.summary["test"])
    assert test.pop("confusion_matrix") == reference.pop("confusion_matrix")
    intervals, reference_intervals = test.pop("ci95"), reference.pop("ci95")
    assert test == pytest.approx(reference)
    for name in reference_intervals:
        assert intervals[name] == pytest.approx(reference_intervals[name])
    resumed_history, whole_history = history(resumed.path), history(whole.path)
    assert len(resumed_history) == len(whole_history) == 4
    for a, b in zip(resumed_history, whole_history):
        assert a == pytest.approx(b)
    assert resumed.summary["best_epoch"] == whole.summary["best_epoch"]
    assert resumed.summary["time_to_target"]["epoch"] == whole.summary["time_to_target"]["epoch"]


def test_a_sigkilled_run_resumes_to_the_same_parameters_and_metrics(tmp_path, uninterrupted, killed_run):
    run_dir = killed_run(tmp_path / "run")
    kept = sorted(p.name for p in (run_dir / "checkpoints").glob("*.pt"))
    assert kept == ["step-00000018.pt", "step-00000020.pt"]  # epoch 1's end and step 20; only the newest 2
    resumed = honed.resume(run_dir)
    assert_same_run(resumed, uninterrupted)
    assert not (run_dir / "checkpoints").exists()  # removed once the run finished (keep_final: false)


def test_a_truncated_checkpoint_is_reported_and_the_previous_one_used(tmp_path, uninterrupted, killed_run, caplog):
    run_dir = killed_run(tmp_path / "run")
    newest = run_dir / "checkpoints" / "step-00000020.pt"
    newest.write_bytes(newest.read_bytes()[:1000])
    with caplog.at_level(logging.INFO, logger="honed"):
        resumed = honed.resume(run_dir)
    assert "step-00000020.pt is unusable" in caplog.text and "truncated" in caplog.text
    assert "step 18" in caplog.text
    assert_same_run(resumed, uninterrupted)  # resuming from an older checkpoint is just as exact


def test_a_checkpoint_that_fails_its_checksum_is_skipped(tmp_path, killed_run):
    run_dir = killed_run(tmp_path / "run")
    newest = run_dir / "checkpoints" / "step-00000020.pt"
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0xFF
    newest.write_bytes(bytes(data))
    assert checkpoints.check(run_dir / "checkpoints" / "step-00000020.json") == "checksum mismatch"
    assert checkpoints.load_latest(run_dir)["step"] == 18


def test_resume_refuses_finished_runs_runs_without_checkpoints_and_damaged_ones(tmp_path, uninterrupted, killed_run):
    with pytest.raises(UserError, match="already finished"):
        honed.resume(uninterrupted.path)
    with pytest.raises(UserError, match="not a honed run"):
        honed.resume(tmp_path / "nowhere")
    run_dir = killed_run(tmp_path / "run")
    for pt in (run_dir / "checkpoints").glob("*.pt"):
        pt.write_bytes(b"")
    with pytest.raises(UserError, match="every checkpoint .* is damaged"):
        honed.resume(run_dir)


def test_resume_from_the_command_line(tmp_path, uninterrupted, killed_run):
    run_dir = killed_run(tmp_path / "run")
    env = dict(os.environ, CI="1")
    done = subprocess.run([sys.executable, "-m", "honed", "train", "--resume", str(run_dir)],
                          capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert "resuming from" in done.stderr and f"run: {run_dir}" in done.stdout
    bad = subprocess.run([sys.executable, "-m", "honed", "train", "--resume", str(run_dir)],
                         capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and "already finished" in bad.stderr and "Traceback" not in bad.stderr


def test_checkpoints_hold_no_code():
    # weights_only=True refuses anything but tensors and plain containers, so a state that loads is safe
    state = {"a": torch.zeros(2), "b": [1, 2.0, None, (3, "x")], "c": {"inf": float("inf")}}
    import io

    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    assert torch.load(buffer, weights_only=True)["b"] == [1, 2.0, None, (3, "x")]


def test_checkpoints_by_time_a_short_run_writes_none_and_a_due_one_logs_its_cost(tmp_path, caplog):
    import logging

    caplog.set_level(logging.INFO, logger="honed")
    quick = {**RECIPE, "train": {"epochs": 2, "batch_size": 64, "checkpoint": {"keep_final": True}}}
    run = honed.train(quick, out=tmp_path / "quick")  # default policy: every 10 minutes
    assert not (run.path / "checkpoints").exists()
    due = {**RECIPE, "train": {"epochs": 2, "batch_size": 64,
                               "checkpoint": {"every_minutes": 1e-9, "keep": 5, "keep_final": True}}}
    run = honed.train(due, out=tmp_path / "due")
    written = sorted(p.name for p in (run.path / "checkpoints").glob("*.pt"))
    steps = run.summary["sizes"]["train"] // 64 + 1
    assert written == [f"step-{s:08d}.pt" for s in range(2 * steps - 4, 2 * steps + 1)]  # due at every step; keep 5
    assert f"checkpoint step-{2 * steps:08d}.pt:" in caplog.text and " MB in " in caplog.text
