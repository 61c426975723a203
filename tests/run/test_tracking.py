"""train.track: TensorBoard's own reader finds every epoch metric honed logged, and the per-step loss."""

import json

import pytest

import honed

pytest.importorskip("tensorboard")


def test_tensorboard_holds_the_epoch_metrics_of_metrics_jsonl_and_the_step_losses(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = honed.train({"data": {"source": "sklearn", "name": "breast_cancer"}, "model": {"name": "logistic"},
                       "optimizer": {"name": "adam", "lr": 0.01}, "schedule": {"name": "cosine"},
                       "train": {"epochs": 3, "batch_size": 64, "checkpoint": None, "track": ["tensorboard"]}},
                      out=tmp_path / "run")
    events = EventAccumulator(str(run.path / "tensorboard")).Reload()
    records = [json.loads(line) for line in (run.path / "metrics.jsonl").read_text().splitlines()]
    for key in ("train_loss", "val_loss", "val_accuracy", "lr"):
        logged = events.Scalars(f"epoch/{key}")
        assert [e.step for e in logged] == [r["epoch"] for r in records]
        assert [e.value for e in logged] == pytest.approx([r[key] for r in records], rel=1e-6)
    steps = events.Scalars("step/train_loss")
    assert len(steps) == records[-1]["step"] and steps[-1].step == records[-1]["step"]
    assert any(tag.startswith("recipe") for tag in events.Tags()["tensors"])  # the recipe as text


def test_an_unknown_tracker_is_refused_by_the_recipe(tmp_path):
    with pytest.raises(honed.UserError, match="train.track"):
        honed.load_recipe({"train": {"track": ["wandb"]}})
